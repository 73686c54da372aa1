//! The journal's records: one per state change of the core, in postcard (a documented, stable wire
//! format; see the commit that added it). Times are ticks of the writing process's clock; the checkpoint
//! that starts every journal's live records names that clock's anchor (its tick at a wall-clock time),
//! so that a later process maps them onto its own clock.
//!
//! A journal is a checkpoint (`Begin`, the live jobs, the dead letters and the dedup reservations, `End`)
//! followed by the changes since. A later complete checkpoint supersedes everything before it; one cut
//! short by a crash (no `End`) is ignored.

use serde::{Deserialize, Serialize};

use crate::clock::Tick;
use crate::core::FailureRecord;
use crate::store::codes::{kind_code, kind_of};
pub(crate) use crate::store::codes::{reason_code, reason_of};

/// One record. Variants are only ever added at the end (postcard numbers them in order).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) enum Record<'a> {
    /// Starts a checkpoint: the writing clock's anchor, the next job id, whether leasing is paused.
    Begin { wall_ns: u64, tick: Tick, next_id: u64, paused: bool },
    /// A live job, in a checkpoint. `lease` is the deadline of a lease that is out.
    Job {
        id: u64,
        pushed_at: Tick,
        ready_at: Tick,
        priority: u8,
        group: Option<&'a str>,
        expires_at: Option<Tick>,
        attempt: u32,
        lease: Option<Tick>,
        history: Vec<Failure>,
        #[serde(borrow)]
        payload: &'a [u8],
    },
    /// A dead letter in the built-in store, in a checkpoint.
    Letter {
        id: u64,
        reason: u8,
        attempts: u32,
        pushed_at: Tick,
        dead_at: Tick,
        history: Vec<Failure>,
        #[serde(borrow)]
        payload: &'a [u8],
    },
    /// A dedup reservation, in a checkpoint.
    Reserved { key: &'a str, id: u64, until: Tick },
    /// Ends a checkpoint.
    End,
    /// A job pushed (a dedup key reserved until `until`, if given).
    Push {
        id: u64,
        at: Tick,
        ready_at: Tick,
        priority: u8,
        group: Option<&'a str>,
        expires_at: Option<Tick>,
        dedup: Option<(&'a str, Tick)>,
        #[serde(borrow)]
        payload: &'a [u8],
    },
    /// A lease handed out: the job's attempt and the lease's deadline.
    Lease { id: u64, attempt: u32, deadline: Tick },
    /// A job acked: it left the queue.
    Ack { id: u64 },
    /// A job back in the queue after a nack, a release or a revoke: its attempt, when it is due, and its
    /// failures.
    Requeue { id: u64, attempt: u32, due: Tick, history: Vec<Failure> },
    /// A job dead-lettered (into the built-in store; one handed to a sink leaves it with `Unbury`).
    Dead { id: u64, reason: u8, attempts: u32, at: Tick, history: Vec<Failure> },
    /// A dead letter taken out of the built-in store (redriven, or taken by the sink).
    Unbury { id: u64 },
    /// Every dead letter taken out of the built-in store.
    DrainDead,
    /// Every live job removed.
    Purge,
    /// Leasing paused or resumed.
    Paused(bool),
}

/// A failed attempt, as a record keeps it.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub(crate) struct Failure {
    pub attempt: u32,
    pub at: Tick,
    pub kind: u8,
    pub message: Option<String>,
}

impl Failure {
    pub(crate) fn of(record: &FailureRecord) -> Failure {
        Failure {
            attempt: record.attempt,
            at: record.at,
            kind: kind_code(record.kind),
            message: record.message.clone(),
        }
    }

    /// The record, or `None` for a kind this version does not know.
    pub(crate) fn record(self) -> Option<FailureRecord> {
        Some(FailureRecord {
            attempt: self.attempt,
            at: self.at,
            kind: kind_of(self.kind)?,
            message: self.message,
        })
    }
}

pub(crate) fn failures(history: &[FailureRecord]) -> Vec<Failure> {
    history.iter().map(Failure::of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_their_encoding_is_stable() {
        let push = Record::Push {
            id: 7,
            at: 100,
            ready_at: 100,
            priority: 2,
            group: Some("customer-1"),
            expires_at: None,
            dedup: Some(("order-9", 1_100)),
            payload: b"hello",
        };
        let bytes = postcard::to_stdvec(&push).unwrap();
        // The wire format is part of the journal's format version: a change here needs a new version.
        assert_eq!(
            bytes,
            [
                5, 7, 100, 100, 2, 1, 10, 99, 117, 115, 116, 111, 109, 101, 114, 45, 49, 0, 1, 7, 111, 114,
                100, 101, 114, 45, 57, 204, 8, 5, 104, 101, 108, 108, 111
            ]
        );
        assert_eq!(postcard::from_bytes::<Record<'_>>(&bytes).unwrap(), push);
        let requeue = Record::Requeue {
            id: 3,
            attempt: 2,
            due: 5,
            history: vec![Failure { attempt: 2, at: 4, kind: 0, message: Some("timeout".into()) }],
        };
        let bytes = postcard::to_stdvec(&requeue).unwrap();
        assert_eq!(postcard::from_bytes::<Record<'_>>(&bytes).unwrap(), requeue);
    }
}
