//! What a snapshot keeps of the bookkeeping, and how a restore puts it back (feature `serde`).

use std::collections::HashMap;
use std::sync::Arc;

use super::{FailureRecord, Phase, Placement, State, TTL_PASSED};
use crate::clock::Tick;

/// A live job as a snapshot keeps it.
pub(crate) struct SavedJob {
    pub slot: u32,
    pub id: u64,
    pub attempt: u32,
    pub priority: u8,
    pub pushed_at: Tick,
    /// When it may become ready (0: now).
    pub ready_at: Tick,
    pub group: Option<Arc<str>>,
    pub expires_at: Option<Tick>,
    /// Its failures so far, oldest first.
    pub history: Vec<FailureRecord>,
    /// The deadline of its lease, if it is leased (a journal's checkpoint keeps it).
    #[cfg_attr(not(feature = "journal"), allow(dead_code))]
    pub lease: Option<Tick>,
}

/// A job as a snapshot gives it back.
pub(crate) struct RestoredJob {
    pub id: u64,
    pub attempt: u32,
    pub pushed_at: Tick,
    pub history: Vec<FailureRecord>,
}

impl State {
    /// What a snapshot keeps of every live job, oldest first.
    pub fn snapshot(&self) -> Vec<SavedJob> {
        let expiries: HashMap<u64, Tick> = self
            .expiry
            .iter()
            .filter(|t| self.slots[t.slot as usize].id == t.id)
            .map(|t| (t.id, t.at))
            .collect();
        let mut jobs: Vec<SavedJob> = (0..self.slots.len() as u32)
            .filter(|&slot| self.slots[slot as usize].phase != Phase::Free)
            .map(|slot| {
                let s = &self.slots[slot as usize];
                SavedJob {
                    slot,
                    id: s.id,
                    attempt: s.attempt,
                    priority: s.priority,
                    pushed_at: s.pushed_at,
                    ready_at: match s.phase {
                        Phase::Delayed | Phase::Waiting => s.due,
                        _ => 0, // ready now; a leased job is saved as ready, its attempt counted
                    },
                    group: self.groups.of(slot).map(|group| Arc::clone(&group.key)),
                    expires_at: if s.flags & TTL_PASSED != 0 {
                        Some(self.now)
                    } else {
                        expiries.get(&s.id).copied()
                    },
                    history: self.history(slot),
                    lease: (s.phase == Phase::Leased).then_some(s.due),
                }
            })
            .collect();
        jobs.sort_unstable_by_key(|j| j.id);
        jobs
    }

    /// The dedup reservations still running at `now`: key, job id, end.
    pub fn reservations(&self, now: Tick) -> Vec<(Arc<str>, u64, Tick)> {
        self.dedup
            .iter()
            .filter(|(_, &(_, until))| until > now)
            .map(|(k, &(id, until))| (Arc::clone(k), id, until))
            .collect()
    }

    /// Adds a job restored from a snapshot, with its id, attempts and failure history (counted as pushed
    /// into this queue); ids must come in increasing order, below [`MAX_ID`](super::MAX_ID).
    pub fn restore(&mut self, now: Tick, job: RestoredJob, place: Placement) -> u32 {
        self.next_id = job.id;
        let (slot, _) = self.push(now, place); // counted as pushed into this queue
        let s = &mut self.slots[slot as usize];
        s.attempt = job.attempt;
        s.pushed_at = job.pushed_at;
        for failure in job.history {
            self.record(slot, failure);
        }
        slot
    }

    /// Makes a job just restored leased until `deadline`, without counting an attempt (its attempt was
    /// counted when it was leased before the restart). A journal restores the leases that were out at a
    /// crash this way, with a deadline that has passed, so that the next `advance` lapses them as any
    /// lapse: a failure recorded, the job ready again or dead-lettered if that was its last attempt.
    #[cfg(feature = "journal")]
    pub fn restore_lease(&mut self, slot: u32, deadline: Tick) {
        if self.slots[slot as usize].phase == Phase::Ready {
            self.unlink(slot);
            let s = &mut self.slots[slot as usize];
            s.epoch = s.epoch.wrapping_add(1);
            self.make_leased(slot, deadline);
        }
    }

    /// Sets the next id to hand out and re-creates a dedup reservation, after a restore.
    pub fn restore_tail(&mut self, next_id: u64, reservations: Vec<(Arc<str>, u64, Tick)>) {
        self.next_id = self.next_id.max(next_id);
        for (key, id, until) in reservations {
            self.dedup.insert(Arc::clone(&key), (id, until));
            self.dedup_order.push_back((until, key));
        }
        self.dedup_order.make_contiguous().sort_by_key(|(until, _)| *until);
    }
}
