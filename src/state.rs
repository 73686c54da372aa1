//! The queue's bookkeeping, free of the job type so it is compiled once.
//!
//! Jobs live in a slab of [`Slot`]s addressed by a `u32` index. A slot is in one [`Phase`]; the indices
//! that order jobs (the ready FIFO, the delayed heap, the lease-deadline FIFO and heap) hold
//! `(slot, ticket)` entries and are cleaned lazily: every phase change bumps the slot's `ticket`, so an
//! entry whose ticket no longer matches is stale and skipped. Stale entries are popped when they reach the
//! front and compacted away when they outnumber live ones, so every operation is O(1) or O(log n)
//! amortised.
//!
//! Fencing uses the slot's `epoch`, bumped when a lease is handed out and when the job leaves: a lease is
//! current exactly while the epoch it was handed out with still matches. A lapse does not bump it, so a
//! late outcome from a lapsed lease is accepted until someone else leases the job.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::clock::{Tick, NEVER};
use crate::{DeadLetterReason, FailureKind, LeaseLost};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Free,
    Ready,
    Delayed,
    Leased,
}

/// A failure as recorded; turned into a public [`crate::Failure`] when the job is dead-lettered.
#[derive(Clone, Debug)]
pub(crate) struct FailureRecord {
    pub attempt: u32,
    pub at: Tick,
    pub kind: FailureKind,
    pub message: Option<String>,
}

struct Slot {
    /// The job's id; 0 while the slot is free.
    id: u64,
    pushed_at: Tick,
    /// Ready: since when. Delayed: when it becomes ready. Leased: the lease deadline.
    due: Tick,
    epoch: u32,
    ticket: u32,
    /// Leases handed out, less releases: the number of the current (or last) attempt.
    attempt: u32,
    phase: Phase,
    /// Whether the last lease was revoked (its epoch bumped without a new lease), to say so to its holder.
    revoked: bool,
    /// Boxed so that a job that never failed pays one pointer for it, not a `VecDeque`'s four words.
    #[allow(clippy::box_collection)]
    history: Option<Box<VecDeque<FailureRecord>>>,
}

#[derive(Clone, Copy)]
struct Entry {
    slot: u32,
    ticket: u32,
}

/// An index entry ordered by time, earliest first in a `BinaryHeap`; ties go to the older job.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Timed {
    at: Tick,
    id: u64,
    slot: u32,
    ticket: u32,
}

impl Ord for Timed {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.id).cmp(&(self.at, self.id))
    }
}

impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What identifies one lease of one job: the slot, the epoch it was handed out in, and the job's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub slot: u32,
    pub epoch: u32,
    pub id: u64,
}

/// A lease just handed out.
pub(crate) struct Grant {
    pub token: Token,
    pub attempt: u32,
    pub deadline: Tick,
}

/// A job that just left the queue by dead-lettering; its slot is already free.
pub(crate) struct Exit {
    pub slot: u32,
    pub id: u64,
    pub reason: DeadLetterReason,
    pub attempts: u32,
    pub pushed_at: Tick,
    pub at: Tick,
    pub history: Vec<FailureRecord>,
}

/// What a nack did.
pub(crate) enum Nacked {
    Retry { at: Tick },
    Dead(Exit),
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counters {
    pub pushed: u64,
    pub acked: u64,
    pub nacked: u64,
    pub released: u64,
    pub rejected: u64,
    pub expired: u64,
    pub dead_lettered: u64,
}

/// Wake-ups owed to blocked threads since they were last handed out.
#[derive(Default)]
pub(crate) struct Wakes {
    /// Jobs that became ready.
    pub ready: u32,
    /// Jobs that left the queue (room for a blocked producer).
    pub freed: u32,
    /// The earliest timed event moved earlier: waiting consumers must recompute their wake time.
    pub rescheduled: bool,
}

pub(crate) struct Config {
    pub visibility: Tick,
    pub max_attempts: u32,
    pub history_limit: usize,
}

pub(crate) struct State {
    slots: Vec<Slot>,
    free: Vec<u32>,
    ready: VecDeque<Entry>,
    ready_stale: usize,
    delayed: BinaryHeap<Timed>,
    delayed_stale: usize,
    /// Deadlines of leases in the order they were taken: with one visibility timeout they are sorted.
    lease_fifo: VecDeque<Timed>,
    /// Deadlines that would break the FIFO's order (extended or shortened leases).
    lease_heap: BinaryHeap<Timed>,
    lease_stale: usize,
    n_ready: usize,
    n_delayed: usize,
    n_leased: usize,
    pub counters: Counters,
    next_id: u64,
    now: Tick,
    pub closed: bool,
    pub waiting_consumers: usize,
    pub waiting_producers: usize,
    pub wakes: Wakes,
    cfg: Config,
}

/// Below this many stale entries an index is never compacted.
const COMPACT_MIN: usize = 64;

impl State {
    pub fn new(cfg: Config) -> Self {
        State {
            slots: Vec::new(),
            free: Vec::new(),
            ready: VecDeque::new(),
            ready_stale: 0,
            delayed: BinaryHeap::new(),
            delayed_stale: 0,
            lease_fifo: VecDeque::new(),
            lease_heap: BinaryHeap::new(),
            lease_stale: 0,
            n_ready: 0,
            n_delayed: 0,
            n_leased: 0,
            counters: Counters::default(),
            next_id: 1,
            now: 0,
            closed: false,
            waiting_consumers: 0,
            waiting_producers: 0,
            wakes: Wakes::default(),
            cfg,
        }
    }

    /// Folds a clock reading into the state's time, which never goes back (readings taken outside the lock
    /// by racing threads may arrive out of order).
    pub fn observe(&mut self, reading: Tick) -> Tick {
        self.now = self.now.max(reading);
        self.now
    }

    pub fn now(&self) -> Tick {
        self.now
    }

    pub fn live(&self) -> usize {
        self.n_ready + self.n_delayed + self.n_leased
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        (self.n_ready, self.n_delayed, self.n_leased)
    }

    /// How long the job at the head of the ready FIFO has been ready.
    pub fn oldest_ready_since(&mut self) -> Option<Tick> {
        self.clean_ready_front();
        self.ready.front().map(|e| self.slots[e.slot as usize].due)
    }

    // ----- push -----

    /// Adds a job, ready now or delayed until `ready_at`. The caller has checked capacity and closing, and
    /// has called [`advance`](State::advance) at `now`.
    pub fn push(&mut self, now: Tick, ready_at: Tick) -> (u32, u64) {
        let id = self.next_id;
        self.next_id += 1;
        self.counters.pushed += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot {
                    id: 0,
                    pushed_at: 0,
                    due: 0,
                    epoch: 0,
                    ticket: 0,
                    attempt: 0,
                    phase: Phase::Free,
                    revoked: false,
                    history: None,
                });
                u32::try_from(self.slots.len() - 1).expect("more than u32::MAX live jobs")
            }
        };
        let s = &mut self.slots[slot as usize];
        s.id = id;
        s.pushed_at = now;
        s.attempt = 0;
        debug_assert!(s.history.is_none());
        if ready_at > now {
            self.make_delayed(slot, ready_at);
        } else {
            self.make_ready(slot, now);
        }
        (slot, id)
    }

    // ----- lease -----

    /// Hands out the job at the head of the ready FIFO. The caller has called `advance` at `now`.
    pub fn lease(&mut self, now: Tick, visibility: Tick) -> Option<Grant> {
        self.clean_ready_front();
        let entry = self.ready.pop_front()?;
        let slot = entry.slot;
        self.n_ready -= 1;
        let deadline = now.saturating_add(visibility);
        let s = &mut self.slots[slot as usize];
        s.attempt = s.attempt.saturating_add(1);
        s.epoch = s.epoch.wrapping_add(1);
        s.revoked = false;
        let grant = Grant { token: Token { slot, epoch: s.epoch, id: s.id }, attempt: s.attempt, deadline };
        self.make_leased(slot, deadline);
        Some(grant)
    }

    pub fn default_visibility(&self) -> Tick {
        self.cfg.visibility
    }

    // ----- fencing and outcomes -----

    /// Whether `token` is the job's current lease; returns the job's phase if so.
    pub fn current(&self, token: Token) -> Result<Phase, LeaseLost> {
        let s = &self.slots[token.slot as usize];
        if s.id != token.id || s.phase == Phase::Free {
            Err(LeaseLost::Gone)
        } else if s.epoch != token.epoch {
            if s.revoked && s.epoch == token.epoch.wrapping_add(1) {
                Err(LeaseLost::Revoked)
            } else {
                Err(LeaseLost::Superseded { attempt: s.attempt })
            }
        } else {
            Ok(s.phase)
        }
    }

    pub fn ack(&mut self, token: Token) -> Result<(), LeaseLost> {
        self.current(token)?;
        let slot = token.slot;
        self.counters.acked += 1;
        self.unlink(slot);
        self.free_slot(slot);
        Ok(())
    }

    /// A failed attempt. `delay` is the retry delay to use if the job has attempts left.
    pub fn nack(
        &mut self,
        token: Token,
        now: Tick,
        delay: Tick,
        kind: FailureKind,
        message: Option<String>,
    ) -> Result<Nacked, LeaseLost> {
        let phase = self.current(token)?;
        let slot = token.slot;
        self.counters.nacked += 1;
        let attempt = self.slots[slot as usize].attempt;
        if phase == Phase::Leased {
            self.record(slot, FailureRecord { attempt, at: now, kind, message });
            if attempt >= self.cfg.max_attempts {
                return Ok(Nacked::Dead(self.exit(slot, DeadLetterReason::MaxAttempts, now)));
            }
        } else if let Some(message) = message {
            // The lapse already counted this attempt as failed: keep the holder's description of it.
            self.describe_last_failure(slot, message);
        }
        let at = now.saturating_add(delay);
        self.unlink(slot);
        if at > now {
            self.make_delayed(slot, at);
        } else {
            self.make_ready(slot, now);
        }
        Ok(Nacked::Retry { at })
    }

    pub fn reject(&mut self, token: Token, now: Tick, message: Option<String>) -> Result<Exit, LeaseLost> {
        self.current(token)?;
        let slot = token.slot;
        self.counters.rejected += 1;
        let attempt = self.slots[slot as usize].attempt;
        self.record(slot, FailureRecord { attempt, at: now, kind: FailureKind::Rejected, message });
        Ok(self.exit(slot, DeadLetterReason::Rejected, now))
    }

    /// Gives the job back without spending the attempt (unless a lapse already counted it). A revoked
    /// lease is made stale, so that its holder can no longer settle it.
    pub fn release(&mut self, token: Token, now: Tick, delay: Tick, revoke: bool) -> Result<(), LeaseLost> {
        let phase = self.current(token)?;
        let slot = token.slot;
        self.counters.released += 1;
        if phase == Phase::Leased {
            let s = &mut self.slots[slot as usize];
            s.attempt = s.attempt.saturating_sub(1);
        }
        if revoke {
            let s = &mut self.slots[slot as usize];
            s.epoch = s.epoch.wrapping_add(1);
            s.revoked = true;
        }
        let at = now.saturating_add(delay);
        self.unlink(slot);
        if at > now {
            self.make_delayed(slot, at);
        } else {
            self.make_ready(slot, now);
        }
        Ok(())
    }

    /// Moves the lease deadline to `now + by`; a lapsed but current lease is taken back.
    pub fn extend(&mut self, token: Token, now: Tick, by: Tick) -> Result<Tick, LeaseLost> {
        self.current(token)?;
        let slot = token.slot;
        let deadline = now.saturating_add(by);
        self.unlink(slot);
        self.make_leased(slot, deadline);
        Ok(deadline)
    }

    // ----- time -----

    /// Processes every timed event due at or before `now`, in time order: delayed jobs become ready,
    /// lapsed leases become ready or are dead-lettered (pushed to `exits`).
    pub fn advance(&mut self, now: Tick, exits: &mut Vec<Exit>) {
        loop {
            let delayed = self.delayed_head();
            let fifo = self.lease_fifo_head();
            let heap = self.lease_heap_head();
            let lease = fifo.min(heap);
            let next = delayed.min(lease);
            if next > now {
                return;
            }
            if delayed <= lease {
                let t = self.delayed.pop().expect("delayed head exists");
                self.n_delayed -= 1;
                self.make_ready(t.slot, t.at);
            } else {
                let t = if fifo <= heap { self.lease_fifo.pop_front() } else { self.lease_heap.pop() }
                    .expect("lease head exists");
                self.lapse(t.slot, t.at, exits);
            }
        }
    }

    /// The earliest time at which [`advance`](State::advance) would do something, or [`NEVER`].
    pub fn next_event(&mut self) -> Tick {
        self.delayed_head().min(self.lease_fifo_head()).min(self.lease_heap_head())
    }

    fn lapse(&mut self, slot: u32, deadline: Tick, exits: &mut Vec<Exit>) {
        self.n_leased -= 1;
        self.counters.expired += 1;
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Free; // unlinked: its index entry was just popped
        let attempt = s.attempt;
        self.record(slot, FailureRecord { attempt, at: deadline, kind: FailureKind::Lapsed, message: None });
        if attempt >= self.cfg.max_attempts {
            exits.push(self.exit_unlinked(slot, DeadLetterReason::MaxAttempts, deadline));
        } else {
            self.make_ready(slot, deadline);
        }
    }

    // ----- phase changes -----

    fn make_ready(&mut self, slot: u32, since: Tick) {
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Ready;
        s.due = since;
        s.ticket = s.ticket.wrapping_add(1);
        self.ready.push_back(Entry { slot, ticket: s.ticket });
        self.n_ready += 1;
        self.wakes.ready += 1;
    }

    fn make_delayed(&mut self, slot: u32, at: Tick) {
        if at < self.next_event() {
            self.wakes.rescheduled = true;
        }
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Delayed;
        s.due = at;
        s.ticket = s.ticket.wrapping_add(1);
        self.delayed.push(Timed { at, id: s.id, slot, ticket: s.ticket });
        self.n_delayed += 1;
    }

    fn make_leased(&mut self, slot: u32, deadline: Tick) {
        if deadline < self.next_event() {
            self.wakes.rescheduled = true;
        }
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Leased;
        s.due = deadline;
        s.ticket = s.ticket.wrapping_add(1);
        let entry = Timed { at: deadline, id: s.id, slot, ticket: s.ticket };
        if self.lease_fifo.back().is_none_or(|b| b.at <= deadline) {
            self.lease_fifo.push_back(entry);
        } else {
            self.lease_heap.push(entry);
        }
        self.n_leased += 1;
    }

    /// Takes a job out of whichever index holds it, leaving its entry there stale.
    fn unlink(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let (phase, ticket) = (s.phase, s.ticket);
        s.phase = Phase::Free;
        s.ticket = s.ticket.wrapping_add(1);
        match phase {
            Phase::Ready => {
                self.n_ready -= 1;
                if self.ready.front().is_some_and(|e| e.slot == slot && e.ticket == ticket) {
                    self.ready.pop_front();
                } else {
                    self.ready_stale += 1;
                    self.maybe_compact_ready();
                }
            }
            Phase::Delayed => {
                self.n_delayed -= 1;
                self.delayed_stale += 1;
                self.maybe_compact_delayed();
            }
            Phase::Leased => {
                self.n_leased -= 1;
                if self.lease_fifo.front().is_some_and(|e| e.slot == slot && e.ticket == ticket) {
                    self.lease_fifo.pop_front();
                } else {
                    self.lease_stale += 1;
                    self.maybe_compact_leases();
                }
            }
            Phase::Free => {}
        }
    }

    fn record(&mut self, slot: u32, failure: FailureRecord) {
        let limit = self.cfg.history_limit;
        if limit == 0 {
            return;
        }
        let history = self.slots[slot as usize].history.get_or_insert_with(Default::default);
        if history.len() >= limit {
            history.pop_front();
        }
        history.push_back(failure);
    }

    fn describe_last_failure(&mut self, slot: u32, message: String) {
        if let Some(last) = self.slots[slot as usize].history.as_mut().and_then(|h| h.back_mut()) {
            last.message = Some(message);
        }
    }

    fn exit(&mut self, slot: u32, reason: DeadLetterReason, at: Tick) -> Exit {
        self.unlink(slot);
        self.exit_unlinked(slot, reason, at)
    }

    fn exit_unlinked(&mut self, slot: u32, reason: DeadLetterReason, at: Tick) -> Exit {
        self.counters.dead_lettered += 1;
        let s = &mut self.slots[slot as usize];
        let exit = Exit {
            slot,
            id: s.id,
            reason,
            attempts: s.attempt,
            pushed_at: s.pushed_at,
            at,
            history: s.history.take().map(|h| Vec::from(*h)).unwrap_or_default(),
        };
        self.free_slot(slot);
        exit
    }

    fn free_slot(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.id = 0;
        s.phase = Phase::Free;
        s.epoch = s.epoch.wrapping_add(1);
        s.history = None;
        self.free.push(slot);
        self.wakes.freed += 1;
    }

    // ----- index maintenance -----

    fn is_current(&self, slot: u32, ticket: u32) -> bool {
        self.slots[slot as usize].ticket == ticket
    }

    fn clean_ready_front(&mut self) {
        while let Some(e) = self.ready.front() {
            if self.is_current(e.slot, e.ticket) {
                break;
            }
            self.ready.pop_front();
            self.ready_stale -= 1;
        }
    }

    fn delayed_head(&mut self) -> Tick {
        while let Some(t) = self.delayed.peek() {
            if self.is_current(t.slot, t.ticket) {
                return t.at;
            }
            self.delayed.pop();
            self.delayed_stale -= 1;
        }
        NEVER
    }

    fn lease_fifo_head(&mut self) -> Tick {
        while let Some(t) = self.lease_fifo.front() {
            if self.is_current(t.slot, t.ticket) {
                return t.at;
            }
            self.lease_fifo.pop_front();
            self.lease_stale -= 1;
        }
        NEVER
    }

    fn lease_heap_head(&mut self) -> Tick {
        while let Some(t) = self.lease_heap.peek() {
            if self.is_current(t.slot, t.ticket) {
                return t.at;
            }
            self.lease_heap.pop();
            self.lease_stale -= 1;
        }
        NEVER
    }

    fn maybe_compact_ready(&mut self) {
        if self.ready_stale >= COMPACT_MIN && self.ready_stale * 2 > self.ready.len() {
            let slots = &self.slots;
            self.ready.retain(|e| slots[e.slot as usize].ticket == e.ticket);
            self.ready_stale = 0;
        }
    }

    fn maybe_compact_delayed(&mut self) {
        if self.delayed_stale >= COMPACT_MIN && self.delayed_stale * 2 > self.delayed.len() {
            let slots = &self.slots;
            self.delayed.retain(|t| slots[t.slot as usize].ticket == t.ticket);
            self.delayed_stale = 0;
        }
    }

    fn maybe_compact_leases(&mut self) {
        if self.lease_stale >= COMPACT_MIN
            && self.lease_stale * 2 > self.lease_fifo.len() + self.lease_heap.len()
        {
            let slots = &self.slots;
            self.lease_fifo.retain(|t| slots[t.slot as usize].ticket == t.ticket);
            self.lease_heap.retain(|t| slots[t.slot as usize].ticket == t.ticket);
            self.lease_stale = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_attempts: u32) -> State {
        State::new(Config { visibility: 10, max_attempts, history_limit: 4 })
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut st = state(5);
        let mut grants = Vec::new();
        for _ in 0..1000 {
            st.push(0, 0);
            grants.push(st.lease(0, 10).unwrap());
        }
        // Ack newest first: each ack leaves a stale entry behind live ones until compaction.
        for g in grants.iter().rev() {
            st.ack(g.token).unwrap();
        }
        assert!(st.lease_fifo.len() + st.lease_heap.len() <= 2 * COMPACT_MIN);
        assert_eq!(st.live(), 0);
        assert_eq!(st.next_event(), NEVER);
    }

    #[test]
    fn lapses_and_delays_are_processed_in_time_order() {
        let mut st = state(5);
        let (a, _) = st.push(0, 0);
        let g = st.lease(0, 10).unwrap(); // deadline 10
        assert_eq!(g.token.slot, a);
        let (b, _) = st.push(0, 5); // ready at 5
        let mut exits = Vec::new();
        st.advance(20, &mut exits);
        assert!(exits.is_empty());
        // b became ready at 5, a lapsed at 10: b comes first.
        assert_eq!(st.lease(20, 10).unwrap().token.slot, b);
        assert_eq!(st.lease(20, 10).unwrap().token.slot, a);
    }

    #[test]
    fn history_is_bounded() {
        let mut st = state(100);
        st.push(0, 0);
        for i in 0..10 {
            let g = st.lease(i, 10).unwrap();
            st.nack(g.token, i, 0, FailureKind::Nacked, Some(i.to_string())).unwrap();
        }
        let g = st.lease(10, 10).unwrap();
        let exit = st.reject(g.token, 10, None).unwrap();
        assert_eq!(exit.history.len(), 4);
        assert_eq!(exit.history[0].message.as_deref(), Some("7"));
        assert_eq!(exit.attempts, 11);
    }
}
