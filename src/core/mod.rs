//! The queue's bookkeeping, free of the job type so it is compiled once.
//!
//! Jobs live in a slab of [`Slot`]s addressed by a `u32` index. A slot is in one [`Phase`]. The two
//! orders every job goes through, a ready FIFO per priority level and the FIFO of lease deadlines, are
//! lists threaded through the slots (see [`crate::core::list`]): O(1) in and out, nothing to skip. The
//! others (the delayed heap, the heap of lease deadlines that break the FIFO's order, the expiry heap)
//! hold small entries and are cleaned lazily (see [`crate::core::index`]): a slot's `ticket` is bumped
//! whenever it leaves one of them other than by being popped, and on every entry made, so an entry
//! whose ticket no longer matches is stale and skipped.
//!
//! Fencing uses the slot's `epoch`, bumped when a lease is handed out and when the job leaves: a lease is
//! current exactly while the epoch it was handed out with still matches. A lapse does not bump it, so a
//! late outcome from a lapsed lease is accepted until someone else leases the job.
//!
//! Groups keep only their head job in the indices; later jobs of the group wait in the group's own FIFO
//! (phase `Waiting`) until the head leaves the queue.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

mod free;
mod groups;
pub(crate) mod index;
mod list;
#[cfg(feature = "serde")]
mod saved;

#[cfg(feature = "serde")]
pub(crate) use saved::{RestoredJob, SavedJob};

use self::free::FreeSlots;
use self::groups::Groups;
use self::index::{fit, Lazy};
use self::list::{Links, List, Node};
use crate::clock::{Tick, NEVER};
use crate::{DeadLetterReason, EventKind, FailureKind, LeaseLost};

/// The highest job id a queue hands out (2^63 - 1). A queue that has handed it out refuses further pushes
/// as if closed: ids are never reused, and at a billion pushes a second that takes 292 years. A snapshot
/// whose next id is above it is refused.
pub(crate) const MAX_ID: u64 = (1 << 63) - 1;

/// Below this many slots the slab never shrinks (see [`State::shrink`]); tests set a smaller one.
const SHRINK_MIN: usize = 4096;

/// Leases between two sweeps of the groups' rate-limit windows (see `State::take_group_token`).
const SWEEP_EVERY: u32 = 1024;

/// Up to this many ready jobs, the ready hint is exact (see [`State::hint_due`]).
pub(crate) const HINT_EXACT: usize = 64;

/// [`State::owed`] bits: events recorded, a thread blocked, the slab shrank, the ready hint read, upkeep
/// at every end.
const OWE_EVENTS: u8 = 1;
const OWE_WAITERS: u8 = 2;
const OWE_SHRUNK: u8 = 4;
const OWE_HINT: u8 = 8;
const OWE_ALWAYS: u8 = 16;

/// Priority levels: 0 (the default, lowest) to `PRIORITY_LEVELS - 1` (highest).
pub(crate) const PRIORITY_LEVELS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Free,
    Ready,
    Delayed,
    Leased,
    /// Held back behind an earlier job of its group.
    Waiting,
}

/// A failure as recorded; turned into a public [`crate::Failure`] when the job is dead-lettered.
#[derive(Clone, Debug)]
pub(crate) struct FailureRecord {
    pub attempt: u32,
    pub at: Tick,
    pub kind: FailureKind,
    pub message: Option<String>,
}

// Slot flags.
/// The last lease was revoked (its epoch bumped without a new lease), to say so to its holder.
const REVOKED: u8 = 1;
/// The lease deadline is in the lease heap, not the FIFO.
const IN_HEAP: u8 = 1 << 1;
/// The job belongs to a group (see `State::groups`).
const GROUPED: u8 = 1 << 2;
/// The job has an entry in the expiry heap.
const HAS_TTL: u8 = 1 << 3;
/// The job's time to live passed while it was leased: it is not delivered again.
const TTL_PASSED: u8 = 1 << 4;
/// The job has a failure history (in `State::histories`).
const HAS_HISTORY: u8 = 1 << 5;

struct Slot {
    /// The job's id; 0 while the slot is free.
    id: u64,
    pushed_at: Tick,
    /// Ready: since when. Delayed and Waiting: when it may become ready. Leased: the lease deadline.
    due: Tick,
    epoch: u32,
    ticket: u32,
    /// Leases handed out, less releases: the number of the current (or last) attempt.
    attempt: u32,
    phase: Phase,
    priority: u8,
    flags: u8,
    /// Its place in its ready level's FIFO while ready, in the lease FIFO while leased in order.
    links: Links,
}

impl Node for Slot {
    #[inline(always)]
    fn links(&mut self) -> &mut Links {
        &mut self.links
    }
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

/// Who blocks: a consumer waits for a job, a producer for room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiter {
    Consumer,
    Producer,
}

/// An event recorded while an observer is registered, for the queue to hand to it after the lock.
pub(crate) struct Noted {
    pub kind: EventKind,
    pub id: u64,
    pub attempt: u32,
    pub at: Tick,
}

/// A live job as [`State::jobs`] lists it.
pub(crate) struct Listed {
    pub id: u64,
    /// Where its payload is (for the dashboard's list of jobs).
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub slot: u32,
    pub phase: Phase,
    pub attempt: u32,
    pub priority: u8,
    pub pushed_at: Tick,
    /// Ready: since when. Delayed and waiting: when it may become ready. Leased: the lease deadline.
    pub due: Tick,
}

/// Where and when a new job goes.
pub(crate) struct Placement {
    pub ready_at: Tick,
    pub priority: u8,
    pub group: Option<Arc<str>>,
    /// When its time to live runs out, or [`NEVER`].
    pub expires_at: Tick,
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counters {
    pub pushed: u64,
    pub acked: u64,
    pub nacked: u64,
    pub released: u64,
    pub rejected: u64,
    pub lapsed: u64,
    pub dead_lettered: u64,
    pub deduplicated: u64,
    pub purged: u64,
}

/// Live jobs by phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub ready: usize,
    pub delayed: usize,
    pub waiting: usize,
    pub leased: usize,
}

/// Wake-ups owed to blocked threads since they were last handed out.
#[derive(Default)]
pub(crate) struct Wakes {
    /// Jobs that became ready.
    pub ready: u32,
    /// The earliest timed event moved earlier: waiting consumers must recompute their wake time.
    pub rescheduled: bool,
}

pub(crate) struct Config {
    pub visibility: Tick,
    pub max_attempts: u32,
    pub history_limit: usize,
    pub dedup_window: Tick,
    /// At most this many leases in any window of this length, if set (see [`RateLimit`]).
    pub rate: Option<(usize, Tick)>,
    /// The same for each group key, on its own.
    pub group_rate: Option<(usize, Tick)>,
    /// How many jobs of one group key may be in the queue's indices (ready, delayed or leased) at once:
    /// 1 for ordered groups, one at a time.
    pub group_concurrency: usize,
}

/// A rate limit: at most `n` leases in any window of `period`, kept as the times of the leases of the
/// last `period` (a sliding window, so that no window of `period` ever holds more than `n`; a token bucket
/// lets twice as many through a window that straddles a burst and its refill). 8 bytes per lease in the
/// window.
struct RateLimit {
    n: usize,
    period: Tick,
    /// The times of the last (at most `n`) leases, oldest first.
    times: VecDeque<Tick>,
}

impl RateLimit {
    /// When the next lease may be granted, at `now` or later.
    fn next_allowed(&self, now: Tick) -> Tick {
        match self.times.front() {
            Some(&oldest) if self.times.len() >= self.n => oldest.saturating_add(self.period).max(now),
            _ => now,
        }
    }

    /// Counts a lease at `now`; forgets the leases whose window has passed, so that the window holds at
    /// most the leases of the last `period` (and never more than `n`).
    fn take(&mut self, now: Tick) {
        while self
            .times
            .front()
            .is_some_and(|&t| t.saturating_add(self.period) <= now || self.times.len() >= self.n)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
    }
}

/// Laid out in declaration order (`repr(C)`), the fields every push, lease and ack touch first, so that
/// they share a few cache lines: under contention each line the lock's holder touches is a transfer
/// from the core that held it before.
#[repr(C)]
pub(crate) struct State {
    // ----- the hot path's -----
    slots: Vec<Slot>,
    /// Free slots, lowest first: new jobs fill the slab from the bottom, so that after a burst the live
    /// jobs gather there and the free top can be given back (see [`State::shrink`]).
    free: FreeSlots,
    /// Leased jobs in the order they were taken, whose deadlines are in order (with one visibility
    /// timeout, all of them); the others are in `lease_heap`.
    lease_fifo: List,
    /// No timed event is due before this: a lower bound of the earliest entry of the timed indices,
    /// lowered on every insertion and made exact whenever `advance` processes events.
    next_at: Tick,
    now: Tick,
    next_id: u64,
    n_ready: usize,
    n_delayed: usize,
    n_waiting: usize,
    n_leased: usize,
    /// The ready count last published as the hint (see [`hint_due`](State::hint_due)).
    hint: usize,
    waiting_consumers: usize,
    waiting_producers: usize,
    /// Producers woken to push and not yet back under the lock (see `Inner::wake`).
    producers_woken: usize,
    /// Frees until the next look at whether the slab should shrink.
    shrink_countdown: usize,
    /// The rate limit on leases, if any.
    limit: Option<Box<RateLimit>>,
    /// The rate limit of each group key (`n`, `period`), if any, and each key's window. A window is kept
    /// while it holds a lease of the last period (swept every [`SWEEP_EVERY`] leases).
    group_rate: Option<(usize, Tick)>,
    wakes: Wakes,
    /// Bit `l` is set while level `l`'s FIFO holds jobs.
    ready_levels: u32,
    closed: bool,
    /// Leasing is paused: no job is handed out (pushes are still accepted).
    paused: bool,
    /// Whether to record events (an observer is registered), and those recorded since the last drain.
    observing: bool,
    /// What an operation's end owes beyond releasing the lock (see [`owes`](State::owes)): `OWE_*` bits.
    owed: u8,
    counters: Counters,
    ready: [List; PRIORITY_LEVELS],
    // ----- the rest -----
    /// Below this many slots the slab never shrinks ([`SHRINK_MIN`]; smaller in tests).
    shrink_min: usize,
    delayed: Lazy<Timed>,
    /// Deadlines that would break the FIFO's order (extended or shortened leases).
    lease_heap: Lazy<Timed>,
    /// Times to live, keyed by job id (an entry is live while its job is).
    expiry: Lazy<Timed>,
    /// The groups with a job in the queue, each with its heads and the jobs waiting behind them.
    groups: Groups,
    /// Dedup keys reserved, with the job id and when the reservation ends.
    dedup: HashMap<Arc<str>, (u64, Tick)>,
    dedup_order: VecDeque<(Tick, Arc<str>)>,
    group_limits: HashMap<Arc<str>, RateLimit>,
    /// See `Config::group_concurrency`.
    group_concurrency: usize,
    /// Leases until the next sweep of the group windows.
    sweep_countdown: u32,
    events: Vec<Noted>,
    /// The failures of the jobs that have any (flag `HAS_HISTORY`), oldest first, by slot: kept beside the
    /// slab, so that a job that never failed pays nothing for them.
    histories: HashMap<u32, VecDeque<FailureRecord>>,
    cfg: Config,
}

/// Which timed event comes next; at equal times an expiry goes first (a job past its time to live is
/// never delivered), then a delayed job, then a lapse.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Expiry,
    Delayed,
    LeaseFifo,
    LeaseHeap,
}

impl State {
    pub fn new(cfg: Config) -> Self {
        State {
            slots: Vec::new(),
            free: FreeSlots::default(),
            shrink_countdown: 0,
            shrink_min: SHRINK_MIN,
            ready: Default::default(),
            ready_levels: 0,
            delayed: Lazy::default(),
            lease_fifo: List::default(),
            lease_heap: Lazy::default(),
            expiry: Lazy::default(),
            groups: Groups::default(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            next_at: NEVER,
            n_ready: 0,
            n_delayed: 0,
            n_waiting: 0,
            n_leased: 0,
            hint: 0,
            counters: Counters::default(),
            next_id: 1,
            now: 0,
            closed: false,
            paused: false,
            waiting_consumers: 0,
            waiting_producers: 0,
            producers_woken: 0,
            wakes: Wakes::default(),
            limit: cfg.rate.map(|(n, period)| Box::new(RateLimit { n, period, times: VecDeque::new() })),
            group_rate: cfg.group_rate,
            group_concurrency: cfg.group_concurrency.max(1),
            group_limits: HashMap::new(),
            sweep_countdown: SWEEP_EVERY,
            observing: false,
            owed: 0,
            events: Vec::new(),
            histories: HashMap::new(),
            cfg,
        }
    }

    /// Records an event if an observer is registered (one test when none is).
    #[inline(always)]
    fn note(&mut self, kind: EventKind, slot: u32, at: Tick) {
        if self.observing {
            self.record_event(kind, slot, at);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_event(&mut self, kind: EventKind, slot: u32, at: Tick) {
        let s = &self.slots[slot as usize];
        self.events.push(Noted { kind, id: s.id, attempt: s.attempt, at });
        self.owed |= OWE_EVENTS;
    }

    /// Records events from now on (an observer is registered).
    pub fn observe_events(&mut self) {
        self.observing = true;
    }

    /// Whether events were recorded since the last [`take_events`](State::take_events).
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The events recorded since the last call, oldest first.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, Noted> {
        self.owed &= !OWE_EVENTS;
        self.events.drain(..)
    }

    /// Whether an operation's end has more to do than release the lock: events to hand out, blocked
    /// threads to wake, a slab that shrank, the ready hint to keep (see [`owe_hint`](State::owe_hint)),
    /// or what [`owe_always`](State::owe_always) asked for. One test on the hot path for all of them.
    #[inline(always)]
    pub fn owes(&self) -> bool {
        self.owed != 0
    }

    /// Makes every operation's end bring the ready hint up to date (see [`hint_due`](State::hint_due)) from
    /// now on: something reads it.
    pub fn owe_hint(&mut self) {
        self.owed |= OWE_HINT;
    }

    /// Whether [`owe_hint`](State::owe_hint) was called.
    pub fn owes_hint(&self) -> bool {
        self.owed & OWE_HINT != 0
    }

    /// Makes [`owes`](State::owes) true from now on: the queue has features whose upkeep runs at every
    /// operation's end (alarms, a durable store, a test clock).
    pub fn owe_always(&mut self) {
        self.owed |= OWE_ALWAYS;
    }

    /// Whether [`owe_always`](State::owe_always) was called.
    pub fn owes_always(&self) -> bool {
        self.owed & OWE_ALWAYS != 0
    }

    /// Whether the slab shrank since the last call (the payloads beside it shrink then too).
    pub fn take_shrunk(&mut self) -> bool {
        let shrunk = self.owed & OWE_SHRUNK != 0;
        self.owed &= !OWE_SHRUNK;
        shrunk
    }

    /// The wake-ups owed since the last call, or since the first waiter began waiting (see `crate::wait`).
    pub fn take_wakes(&mut self) -> Wakes {
        std::mem::take(&mut self.wakes)
    }

    /// Pushes are refused from now on; leasing goes on until the queue drains.
    pub fn close(&mut self) {
        self.closed = true;
    }

    #[inline]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether leasing is paused (no job is handed out).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    #[inline]
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// A consumer or producer begins a blocking wait. Wake-ups counted while nobody waited are owed to
    /// nobody: the first waiter starts from none.
    pub fn wait_begins(&mut self, who: Waiter) {
        if !self.has_waiters() {
            self.wakes = Wakes::default();
        }
        *self.waiting(who) += 1;
        self.owed |= OWE_WAITERS;
    }

    /// Whether a consumer or producer is blocked (only then are wake-ups handed out).
    #[inline(always)]
    pub fn has_waiters(&self) -> bool {
        self.waiting_consumers | self.waiting_producers != 0
    }

    /// A consumer or producer ends a blocking wait (woken, or at its deadline).
    pub fn wait_ends(&mut self, who: Waiter) {
        *self.waiting(who) -= 1;
        if !self.has_waiters() {
            self.owed &= !OWE_WAITERS;
        }
        if who == Waiter::Producer {
            // Back under the lock: if it was the producer woken to push, the next may be woken.
            self.producers_woken = self.producers_woken.saturating_sub(1);
        }
    }

    /// Producers woken to push that are not back under the lock yet.
    pub fn producers_woken(&self) -> usize {
        self.producers_woken
    }

    /// A blocked producer was woken to push.
    pub fn producer_woken(&mut self) {
        self.producers_woken += 1;
    }

    fn waiting(&mut self, who: Waiter) -> &mut usize {
        match who {
            Waiter::Consumer => &mut self.waiting_consumers,
            Waiter::Producer => &mut self.waiting_producers,
        }
    }

    pub fn waiting_consumers(&self) -> usize {
        self.waiting_consumers
    }

    pub fn waiting_producers(&self) -> usize {
        self.waiting_producers
    }

    /// The number of ready jobs, if the hint that consumers and pools read without the lock should be
    /// brought up to it: exact up to [`HINT_EXACT`] jobs, above that within a factor of two (a queue
    /// drained by several consumers would otherwise have every operation write the hint's cache line,
    /// which every consumer reads).
    #[inline(always)]
    pub fn hint_due(&mut self) -> Option<usize> {
        let (ready, hint) = (self.n_ready, self.hint);
        if ready == hint
            || ready.min(hint) >= HINT_EXACT
                && ready < hint.saturating_mul(2)
                && ready.saturating_mul(2) > hint
        {
            return None;
        }
        self.hint = ready;
        Some(ready)
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Folds a clock reading into the state's time, which never goes back (readings taken outside the lock
    /// by racing threads may arrive out of order).
    #[inline]
    pub fn catch_up(&mut self, reading: Tick) -> Tick {
        self.now = self.now.max(reading);
        self.now
    }

    #[inline]
    pub fn now(&self) -> Tick {
        self.now
    }

    #[inline]
    pub fn live(&self) -> usize {
        self.n_ready + self.n_delayed + self.n_waiting + self.n_leased
    }

    #[inline]
    pub fn counts(&self) -> Counts {
        Counts {
            ready: self.n_ready,
            delayed: self.n_delayed,
            waiting: self.n_waiting,
            leased: self.n_leased,
        }
    }

    /// Every live job, oldest first.
    pub fn jobs(&self) -> Vec<Listed> {
        self.oldest_jobs(usize::MAX)
    }

    /// The `limit` oldest live jobs, oldest first: one pass over the slab, keeping the `limit` lowest ids
    /// seen (O(n log limit), and no list of every job: the dashboard asks for a page of a large queue
    /// under its lock).
    pub fn oldest_jobs(&self, limit: usize) -> Vec<Listed> {
        let live = self.slots.iter().enumerate().filter(|(_, s)| s.phase != Phase::Free);
        let mut jobs: Vec<(u64, u32)> = if limit >= self.live() {
            live.map(|(slot, s)| (s.id, slot as u32)).collect()
        } else {
            let mut kept: BinaryHeap<(u64, u32)> = BinaryHeap::with_capacity(limit + 1);
            for (slot, s) in live {
                kept.push((s.id, slot as u32));
                if kept.len() > limit {
                    kept.pop(); // the newest of them
                }
            }
            kept.into_vec()
        };
        jobs.sort_unstable();
        jobs.into_iter()
            .map(|(id, slot)| {
                let s = &self.slots[slot as usize];
                Listed {
                    id,
                    slot,
                    phase: s.phase,
                    attempt: s.attempt,
                    priority: s.priority,
                    pushed_at: s.pushed_at,
                    due: s.due,
                }
            })
            .collect()
    }

    /// Since when the longest-waiting ready job has been ready.
    pub fn oldest_ready_since(&self) -> Option<Tick> {
        self.ready.iter().filter_map(List::front).map(|slot| self.slots[slot as usize].due).min()
    }

    // ----- push -----

    /// The job a dedup key is reserved for, if the reservation has not ended by `now`.
    pub fn deduplicate(&mut self, now: Tick, key: &str) -> Option<u64> {
        while let Some((at, _)) = self.dedup_order.front() {
            if *at > now {
                break;
            }
            if let Some((at, key)) = self.dedup_order.pop_front() {
                if self.dedup.get(&key).is_some_and(|&(_, until)| until == at) {
                    self.dedup.remove(&key);
                }
            }
        }
        let id = self.dedup.get(key).map(|&(id, _)| id);
        if let Some(id) = id {
            self.counters.deduplicated += 1;
            if self.observing {
                self.events.push(Noted { kind: EventKind::Deduplicated, id, attempt: 0, at: now });
                self.owed |= OWE_EVENTS;
            }
        }
        id
    }

    /// Reserves a dedup key for job `id` for the queue's dedup window from `now`.
    pub fn reserve(&mut self, now: Tick, key: Arc<str>, id: u64) {
        let until = now.saturating_add(self.cfg.dedup_window);
        self.dedup.insert(Arc::clone(&key), (id, until));
        self.dedup_order.push_back((until, key));
    }

    /// Whether every job id has been handed out (see [`MAX_ID`]): the queue takes no more jobs.
    #[inline]
    pub fn ids_exhausted(&self) -> bool {
        self.next_id > MAX_ID
    }

    /// Adds a job. The caller has checked capacity, closing and [`ids_exhausted`](State::ids_exhausted), and has called
    /// [`advance`](State::advance) at `now`.
    #[inline(always)]
    pub fn push(&mut self, now: Tick, place: Placement) -> (u32, u64) {
        debug_assert!(!self.ids_exhausted(), "the caller checks ids_exhausted before a push");
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
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
                    priority: 0,
                    flags: 0,
                    links: Links::NONE,
                });
                u32::try_from(self.slots.len() - 1).expect("fewer than u32::MAX live jobs")
            }
        };
        let s = &mut self.slots[slot as usize];
        s.id = id;
        s.pushed_at = now;
        s.attempt = 0;
        s.priority = place.priority.min(PRIORITY_LEVELS as u8 - 1);
        s.flags = 0;
        self.note(EventKind::Pushed, slot, now);
        let s = &mut self.slots[slot as usize];
        if place.expires_at != NEVER {
            s.flags |= HAS_TTL;
            self.expiry.push(Timed { at: place.expires_at, id, slot, ticket: 0 });
            self.schedule_event(place.expires_at);
        }
        if let Some(key) = place.group {
            self.slots[slot as usize].flags |= GROUPED;
            let group = self.groups.join(slot, key);
            if group.heads.len() >= self.group_concurrency {
                group.waiting.push_back((slot, id));
                let s = &mut self.slots[slot as usize];
                s.phase = Phase::Waiting;
                s.due = place.ready_at;
                self.n_waiting += 1;
                return (slot, id);
            }
            group.heads.push(slot);
        }
        if place.ready_at > now {
            self.make_delayed(slot, place.ready_at);
        } else {
            self.make_ready(slot, now);
        }
        (slot, id)
    }

    /// Takes job `id` back out of `slot` if it has not been leased yet (it is ready, delayed or waiting),
    /// as if it had not been pushed: a durable store whose sync failed after the push undoes it this way.
    /// Returns whether it did.
    pub fn withdraw(&mut self, slot: u32, id: u64) -> bool {
        let Some(s) = self.slots.get(slot as usize) else { return false };
        if s.id != id || !matches!(s.phase, Phase::Ready | Phase::Delayed | Phase::Waiting) {
            return false;
        }
        self.counters.pushed -= 1;
        self.unlink(slot);
        self.free_slot(slot, self.now);
        true
    }

    /// A live job as a journal records it after a nack, a release or a revoke: its id, attempt, when it is
    /// due (its phase's time: see [`Listed::due`]) and its failures, oldest first.
    #[cfg(feature = "journal")]
    pub fn requeued(&self, slot: u32) -> Option<(u64, u32, Tick, Vec<FailureRecord>)> {
        let s = self.slots.get(slot as usize).filter(|s| s.phase != Phase::Free)?;
        Some((s.id, s.attempt, s.due, self.history(slot)))
    }

    /// The failures of the job in `slot`, oldest first.
    #[cfg(any(feature = "journal", feature = "serde"))]
    fn history(&self, slot: u32) -> Vec<FailureRecord> {
        self.histories.get(&slot).map_or_else(Vec::new, |h| h.iter().cloned().collect())
    }

    /// The id of the job in `slot`, if one is there.
    pub fn job_id(&self, slot: u32) -> Option<u64> {
        self.slots.get(slot as usize).filter(|s| s.phase != Phase::Free).map(|s| s.id)
    }

    /// The id the next push gets.
    #[inline]
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// How long a dedup key stays reserved.
    pub fn dedup_window(&self) -> Tick {
        self.cfg.dedup_window
    }

    /// Removes every live job, leased ones included (their leases become stale); returns their slots so
    /// that the caller drops the payloads.
    pub fn purge(&mut self, now: Tick) -> Vec<u32> {
        let live: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&slot| self.slots[slot as usize].phase != Phase::Free)
            .collect();
        for &slot in &live {
            // A job of a group may have been promoted by an earlier removal: it is unlinked from there.
            self.counters.purged += 1;
            self.note(EventKind::Purged, slot, now);
            self.unlink(slot);
            self.free_slot(slot, now);
        }
        live
    }

    /// Makes room in a full queue: dead-letters the oldest ready job of the lowest priority level that
    /// has one, with reason `Overflow`.
    pub fn evict(&mut self, now: Tick) -> Option<Exit> {
        let slot = self.ready.iter().find_map(List::front)?;
        Some(self.exit(slot, DeadLetterReason::Overflow, now))
    }

    // ----- lease -----

    /// Hands out the oldest ready job of the highest priority level that has one. The caller has called
    /// `advance` at `now`.
    #[inline(always)]
    pub fn lease(&mut self, now: Tick, visibility: Tick) -> Option<Grant> {
        if self.limit.is_some() || self.group_rate.is_some() {
            return self.lease_limited(now, visibility);
        }
        let slot = self.pop_ready()?;
        self.n_ready -= 1;
        let deadline = now.saturating_add(visibility);
        self.schedule_event(deadline);
        Some(self.lease_slot(slot, now, deadline))
    }

    /// [`lease`](State::lease) under a rate limit, of the queue or of groups.
    #[inline(never)]
    fn lease_limited(&mut self, now: Tick, visibility: Tick) -> Option<Grant> {
        if let Some(limit) = &self.limit {
            if limit.next_allowed(now) > now || self.n_ready == 0 {
                return None;
            }
        }
        let slot = loop {
            let slot = self.pop_ready()?;
            self.n_ready -= 1;
            match self.group_held_until(slot, now) {
                // Its group's limit holds it back: it waits as a delayed job, and rejoins the line then.
                Some(until) => self.make_delayed(slot, until),
                None => break slot,
            }
        };
        if let Some(limit) = &mut self.limit {
            limit.take(now);
        }
        self.take_group_token(slot, now);
        let deadline = now.saturating_add(visibility);
        self.schedule_event(deadline);
        Some(self.lease_slot(slot, now, deadline))
    }

    /// Leases up to `max` ready jobs at `now`, as that many calls of [`lease`](State::lease) would, handing
    /// each grant to `each`; returns how many. Without rate limits the loop only takes jobs off the
    /// ready lines (one deadline for all, no limit checked per job): a pool worker's batch.
    pub fn lease_many(
        &mut self,
        now: Tick,
        visibility: Tick,
        max: usize,
        mut each: impl FnMut(Grant),
    ) -> usize {
        let mut taken = 0;
        if self.limit.is_some() || self.group_rate.is_some() {
            while taken < max {
                let Some(grant) = self.lease(now, visibility) else { break };
                each(grant);
                taken += 1;
            }
            return taken;
        }
        let deadline = now.saturating_add(visibility);
        while taken < max {
            let Some(slot) = self.pop_ready() else { break };
            self.n_ready -= 1;
            if taken == 0 {
                self.schedule_event(deadline); // one deadline for all
            }
            each(self.lease_slot(slot, now, deadline));
            taken += 1;
        }
        taken
    }

    /// Leases the job in `slot`, just taken off its ready line (and counted against its limits), until
    /// `deadline`, which the caller has scheduled (see [`schedule_event`](State::schedule_event)).
    #[inline(always)]
    fn lease_slot(&mut self, slot: u32, now: Tick, deadline: Tick) -> Grant {
        let s = &mut self.slots[slot as usize];
        s.attempt = s.attempt.saturating_add(1);
        s.epoch = s.epoch.wrapping_add(1);
        s.flags &= !REVOKED;
        let grant = Grant { token: Token { slot, epoch: s.epoch, id: s.id }, attempt: s.attempt, deadline };
        self.link_leased(slot, deadline);
        self.note(EventKind::Leased, slot, now);
        grant
    }

    /// When the rate limit of `slot`'s group lets it be leased, if that is after `now`.
    fn group_held_until(&self, slot: u32, now: Tick) -> Option<Tick> {
        self.group_rate?;
        if self.slots[slot as usize].flags & GROUPED == 0 {
            return None;
        }
        let limit = self.group_limits.get(&self.groups.of(slot)?.key)?;
        let at = limit.next_allowed(now);
        (at > now).then_some(at)
    }

    /// Counts a lease of `slot`'s job against its group's rate limit, if it has one.
    fn take_group_token(&mut self, slot: u32, now: Tick) {
        let Some((n, period)) = self.group_rate else { return };
        if self.slots[slot as usize].flags & GROUPED == 0 {
            return;
        }
        let Some(group) = self.groups.of(slot) else { return };
        let limit = self.group_limits.entry(Arc::clone(&group.key)).or_insert_with(|| RateLimit {
            n,
            period,
            times: VecDeque::new(),
        });
        limit.take(now);
        if self.sweep_countdown == 0 {
            // Forget the windows of keys with no lease in the last period: they hold nothing back.
            self.group_limits
                .retain(|_, limit| limit.times.back().is_some_and(|&t| t.saturating_add(period) > now));
            self.sweep_countdown = SWEEP_EVERY;
        } else {
            self.sweep_countdown -= 1;
        }
    }

    /// Takes the oldest ready job of the highest level that has one out of its FIFO.
    #[inline(always)]
    fn pop_ready(&mut self) -> Option<u32> {
        if self.ready_levels == 0 {
            return None;
        }
        let level = (u32::BITS - 1 - self.ready_levels.leading_zeros()) as usize;
        let slot = self.ready[level].pop_front(&mut self.slots)?;
        if self.ready[level].is_empty() {
            self.ready_levels &= !(1 << level);
        }
        Some(slot)
    }

    #[inline]
    pub fn default_visibility(&self) -> Tick {
        self.cfg.visibility
    }

    // ----- fencing and outcomes -----

    /// Whether `token` is the job's current lease; returns the job's phase if so.
    #[inline]
    pub fn current(&self, token: Token) -> Result<Phase, LeaseLost> {
        // A slot past the end was given back by `shrink`: its job left long ago.
        let Some(s) = self.slots.get(token.slot as usize) else { return Err(LeaseLost::Gone) };
        if s.id != token.id || s.phase == Phase::Free {
            Err(LeaseLost::Gone)
        } else if s.epoch != token.epoch {
            if s.flags & REVOKED != 0 && s.epoch == token.epoch.wrapping_add(1) {
                Err(LeaseLost::Revoked)
            } else {
                Err(LeaseLost::Superseded { attempt: s.attempt })
            }
        } else {
            Ok(s.phase)
        }
    }

    #[inline(always)]
    pub fn ack(&mut self, token: Token) -> Result<(), LeaseLost> {
        self.current(token)?;
        self.counters.acked += 1;
        self.note(EventKind::Acked, token.slot, self.now);
        let s = &mut self.slots[token.slot as usize];
        if s.phase == Phase::Leased && s.flags & IN_HEAP == 0 {
            // The common case, inline: a lease in the FIFO of leases in deadline order.
            s.phase = Phase::Free;
            self.n_leased -= 1;
            self.lease_fifo.unlink(&mut self.slots, token.slot);
        } else {
            self.unlink(token.slot);
        }
        // No clock reading: the state's time is the latest any operation observed.
        self.free_slot(token.slot, self.now);
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
        self.note(EventKind::Nacked, slot, now);
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
        if self.ttl_passed(slot) {
            return Ok(Nacked::Dead(self.exit(slot, DeadLetterReason::Expired, now)));
        }
        let at = now.saturating_add(delay);
        self.unlink(slot);
        self.schedule(slot, now, at);
        Ok(Nacked::Retry { at })
    }

    pub fn reject(&mut self, token: Token, now: Tick, message: Option<String>) -> Result<Exit, LeaseLost> {
        self.current(token)?;
        let slot = token.slot;
        self.counters.rejected += 1;
        self.note(EventKind::Rejected, slot, now);
        let attempt = self.slots[slot as usize].attempt;
        self.record(slot, FailureRecord { attempt, at: now, kind: FailureKind::Rejected, message });
        Ok(self.exit(slot, DeadLetterReason::Rejected, now))
    }

    /// Gives the job back without spending the attempt (unless a lapse already counted it). A revoked
    /// lease is made stale, so that its holder can no longer settle it. Returns the job if it was
    /// dead-lettered instead because its time to live passed while it was leased.
    pub fn release(
        &mut self,
        token: Token,
        now: Tick,
        delay: Tick,
        revoke: bool,
    ) -> Result<Option<Exit>, LeaseLost> {
        let phase = self.current(token)?;
        let slot = token.slot;
        self.counters.released += 1;
        self.note(EventKind::Released, slot, now);
        let s = &mut self.slots[slot as usize];
        if phase == Phase::Leased {
            s.attempt = s.attempt.saturating_sub(1);
        }
        if revoke {
            s.epoch = s.epoch.wrapping_add(1);
            s.flags |= REVOKED;
        }
        if self.ttl_passed(slot) {
            return Ok(Some(self.exit(slot, DeadLetterReason::Expired, now)));
        }
        let at = now.saturating_add(delay);
        self.unlink(slot);
        self.schedule(slot, now, at);
        Ok(None)
    }

    /// Moves the lease deadline to `now + by`; a lapsed but current lease is taken back.
    pub fn extend(&mut self, token: Token, now: Tick, by: Tick) -> Result<Tick, LeaseLost> {
        self.current(token)?;
        let deadline = now.saturating_add(by);
        self.unlink(token.slot);
        self.make_leased(token.slot, deadline);
        Ok(deadline)
    }

    // ----- time -----

    /// Whether a timed event may be due at `now` (see [`advance`](State::advance)).
    #[inline]
    pub fn is_due(&self, now: Tick) -> bool {
        now >= self.next_at
    }

    /// Processes every timed event due at or before `now`, in time order: jobs past their time to live
    /// are dead-lettered, delayed jobs become ready, lapsed leases become ready or are dead-lettered. Jobs
    /// that leave are pushed to `exits`.
    pub fn advance(&mut self, now: Tick, exits: &mut Vec<Exit>) {
        if now < self.next_at {
            return; // the common case, in one comparison
        }
        while let Some((at, event)) = self.next_due(now) {
            match event {
                Timer::Expiry => {
                    let Some(t) = self.expiry.pop(|_: &Timed| true) else { return };
                    self.expire(t.slot, at, exits);
                }
                Timer::Delayed => {
                    let Some(t) = self.delayed.pop(|_: &Timed| true) else { return };
                    self.n_delayed -= 1;
                    self.make_ready(t.slot, t.at);
                }
                Timer::LeaseFifo => {
                    let Some(slot) = self.lease_fifo.pop_front(&mut self.slots) else { return };
                    self.lapse(slot, at, exits);
                }
                Timer::LeaseHeap => {
                    let Some(t) = self.lease_heap.pop(|_: &Timed| true) else { return };
                    self.lapse(t.slot, t.at, exits);
                }
            }
        }
        self.next_at = self.next_timed();
    }

    /// The earliest time at which something changes by itself: [`advance`](State::advance) has work, or
    /// a rate limit lets a ready job be leased. [`NEVER`] if nothing will.
    pub fn next_event(&mut self) -> Tick {
        self.next_timed().min(self.limited_until().unwrap_or(NEVER))
    }

    /// The earliest time at which [`advance`](State::advance) would do something, or [`NEVER`].
    fn next_timed(&mut self) -> Tick {
        self.heads().into_iter().map(|(at, _)| at).min().unwrap_or(NEVER)
    }

    /// When the rate limit lets the next lease through, if it holds back a ready job now.
    pub fn limited_until(&self) -> Option<Tick> {
        let limit = self.limit.as_ref()?;
        let at = limit.next_allowed(self.now);
        (self.n_ready > 0 && at > self.now).then_some(at)
    }

    fn next_due(&mut self, now: Tick) -> Option<(Tick, Timer)> {
        self.heads().into_iter().min().filter(|&(at, _)| at <= now)
    }

    /// The time of the first live entry of each timed index.
    fn heads(&mut self) -> [(Tick, Timer); 4] {
        let slots = &self.slots;
        let by_ticket = |t: &Timed| slots[t.slot as usize].ticket == t.ticket;
        let by_id = |t: &Timed| slots[t.slot as usize].id == t.id;
        let at = |t: Option<&Timed>| t.map_or(NEVER, |t| t.at);
        [
            (at(self.expiry.head(by_id)), Timer::Expiry),
            (at(self.delayed.head(by_ticket)), Timer::Delayed),
            (self.lease_fifo.front().map_or(NEVER, |slot| slots[slot as usize].due), Timer::LeaseFifo),
            (at(self.lease_heap.head(by_ticket)), Timer::LeaseHeap),
        ]
    }

    fn lapse(&mut self, slot: u32, deadline: Tick, exits: &mut Vec<Exit>) {
        self.n_leased -= 1;
        self.counters.lapsed += 1;
        self.note(EventKind::Lapsed, slot, deadline);
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Free; // unlinked: it was just taken out of its index
        let attempt = s.attempt;
        self.record(slot, FailureRecord { attempt, at: deadline, kind: FailureKind::Lapsed, message: None });
        if self.ttl_passed(slot) {
            exits.push(self.exit_unlinked(slot, DeadLetterReason::Expired, deadline));
        } else if attempt >= self.cfg.max_attempts {
            exits.push(self.exit_unlinked(slot, DeadLetterReason::MaxAttempts, deadline));
        } else {
            self.make_ready(slot, deadline);
        }
    }

    /// A job's time to live ran out: dead-letter it unless it is leased, in which case it is not
    /// delivered again.
    fn expire(&mut self, slot: u32, at: Tick, exits: &mut Vec<Exit>) {
        let s = &mut self.slots[slot as usize];
        s.flags &= !HAS_TTL; // its entry was just popped
        if s.phase == Phase::Leased {
            s.flags |= TTL_PASSED;
            return;
        }
        exits.push(self.exit(slot, DeadLetterReason::Expired, at));
    }

    fn ttl_passed(&self, slot: u32) -> bool {
        self.slots[slot as usize].flags & TTL_PASSED != 0
    }

    // ----- phase changes -----

    /// Ready at `at` if it is in the future, otherwise now.
    fn schedule(&mut self, slot: u32, now: Tick, at: Tick) {
        if at > now {
            self.make_delayed(slot, at);
        } else {
            self.make_ready(slot, now);
        }
    }

    #[inline]
    fn make_ready(&mut self, slot: u32, since: Tick) {
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Ready;
        s.due = since;
        let level = s.priority as usize;
        self.ready[level].push_back(&mut self.slots, slot);
        self.ready_levels |= 1 << level;
        self.n_ready += 1;
        self.wakes.ready = self.wakes.ready.wrapping_add(1);
    }

    /// Blocked consumers wait until the earliest timed event: one that comes earlier must wake them.
    #[inline]
    fn schedule_event(&mut self, at: Tick) {
        if self.waiting_consumers > 0 && at < self.next_event() {
            self.wakes.rescheduled = true;
        }
        self.next_at = self.next_at.min(at);
    }

    fn make_delayed(&mut self, slot: u32, at: Tick) {
        self.schedule_event(at);
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Delayed;
        s.due = at;
        let id = s.id;
        let ticket = self.bump_ticket(slot);
        self.delayed.push(Timed { at, id, slot, ticket });
        self.n_delayed += 1;
    }

    fn make_leased(&mut self, slot: u32, deadline: Tick) {
        self.schedule_event(deadline);
        self.link_leased(slot, deadline);
    }

    /// [`make_leased`](State::make_leased) once its deadline is scheduled.
    #[inline(always)]
    fn link_leased(&mut self, slot: u32, deadline: Tick) {
        let in_order = self.lease_fifo.back().is_none_or(|back| self.slots[back as usize].due <= deadline);
        let s = &mut self.slots[slot as usize];
        s.phase = Phase::Leased;
        s.due = deadline;
        if in_order {
            s.flags &= !IN_HEAP;
            self.lease_fifo.push_back(&mut self.slots, slot);
        } else {
            s.flags |= IN_HEAP;
            let id = s.id;
            let entry = Timed { at: deadline, id, slot, ticket: self.bump_ticket(slot) };
            self.lease_heap.push(entry);
        }
        self.n_leased += 1;
    }

    /// Moves a slot to its next ticket, which makes every index entry it has stale; returns the new ticket.
    ///
    /// Tickets are 32 bits, so after 2^32 phase changes of one slot a value comes round again, and an entry
    /// left stale in an index since then would look live. So when the ticket wraps to 0, every entry of the
    /// slot is dropped from the indices first: at that moment none of them is live (the caller pushes the
    /// slot's new entry after this), and none older than the wrap survives it.
    #[inline]
    fn bump_ticket(&mut self, slot: u32) -> u32 {
        let s = &mut self.slots[slot as usize];
        s.ticket = s.ticket.wrapping_add(1);
        let ticket = s.ticket;
        if ticket == 0 {
            self.forget_entries(slot);
        }
        ticket
    }

    /// Drops every index entry of `slot` (see [`bump_ticket`](State::bump_ticket)).
    #[cold]
    fn forget_entries(&mut self, slot: u32) {
        let others = |t: &Timed| t.slot != slot;
        self.delayed.sweep(others);
        self.lease_heap.sweep(others);
    }

    /// Takes a job out of whichever index holds it: out of a list at once, while a heap's entry is left
    /// stale.
    #[inline]
    fn unlink(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let (phase, flags, level) = (s.phase, s.flags, s.priority as usize);
        s.phase = Phase::Free;
        match phase {
            Phase::Ready => {
                self.n_ready -= 1;
                self.ready[level].unlink(&mut self.slots, slot);
                if self.ready[level].is_empty() {
                    self.ready_levels &= !(1 << level);
                }
            }
            Phase::Leased if flags & IN_HEAP == 0 => {
                self.n_leased -= 1;
                self.lease_fifo.unlink(&mut self.slots, slot);
            }
            Phase::Delayed | Phase::Leased => {
                let s = &self.slots[slot as usize];
                let old = Timed { at: s.due, id: s.id, slot, ticket: s.ticket };
                self.bump_ticket(slot);
                let slots = &self.slots;
                let by_ticket = |t: &Timed| slots[t.slot as usize].ticket == t.ticket;
                if phase == Phase::Delayed {
                    self.n_delayed -= 1;
                    self.delayed.remove(&old, by_ticket);
                } else {
                    self.n_leased -= 1;
                    self.lease_heap.remove(&old, by_ticket);
                }
            }
            Phase::Waiting => {
                // Its entry in the group's FIFO is skipped when the group moves on.
                self.n_waiting -= 1;
            }
            Phase::Free => {}
        }
    }

    fn record(&mut self, slot: u32, failure: FailureRecord) {
        let limit = self.cfg.history_limit;
        if limit == 0 {
            return;
        }
        self.slots[slot as usize].flags |= HAS_HISTORY;
        let history = self.histories.entry(slot).or_default();
        if history.len() >= limit {
            history.pop_front();
        }
        history.push_back(failure);
    }

    fn describe_last_failure(&mut self, slot: u32, message: String) {
        if let Some(last) = self.histories.get_mut(&slot).and_then(|h| h.back_mut()) {
            last.message = Some(message);
        }
    }

    fn exit(&mut self, slot: u32, reason: DeadLetterReason, at: Tick) -> Exit {
        self.unlink(slot);
        self.exit_unlinked(slot, reason, at)
    }

    fn exit_unlinked(&mut self, slot: u32, reason: DeadLetterReason, at: Tick) -> Exit {
        self.counters.dead_lettered += 1;
        self.note(EventKind::DeadLettered(reason), slot, at);
        let s = &mut self.slots[slot as usize];
        let exit = Exit {
            slot,
            id: s.id,
            reason,
            attempts: s.attempt,
            pushed_at: s.pushed_at,
            at,
            history: self.histories.remove(&slot).map(Vec::from).unwrap_or_default(),
        };
        s.flags &= !HAS_HISTORY; // taken: `free_slot` need not look for it
        self.free_slot(slot, at);
        exit
    }

    /// Frees the slot of a job that left the queue (already unlinked) at `at`, and lets its group move on.
    #[inline]
    fn free_slot(&mut self, slot: u32, at: Tick) {
        let s = &mut self.slots[slot as usize];
        let flags = s.flags;
        let id = s.id;
        s.id = 0;
        s.phase = Phase::Free;
        s.epoch = s.epoch.wrapping_add(1);
        s.flags = 0;
        self.free.push(slot);
        if flags & (HAS_HISTORY | HAS_TTL | GROUPED) != 0 {
            self.free_extras(slot, id, flags, at);
        }
        if self.shrink_countdown == 0 {
            self.shrink();
        } else {
            self.shrink_countdown -= 1;
        }
    }

    /// [`free_slot`](State::free_slot) of a job that had a failure history, a time to live or a group.
    #[inline(never)]
    fn free_extras(&mut self, slot: u32, id: u64, flags: u8, at: Tick) {
        if flags & HAS_HISTORY != 0 {
            self.histories.remove(&slot);
        }
        if flags & HAS_TTL != 0 {
            let slots = &self.slots;
            let gone = Timed { at: NEVER, id, slot, ticket: 0 }; // never the head: counted stale
            self.expiry.remove(&gone, |t: &Timed| slots[t.slot as usize].id == t.id);
        }
        if flags & GROUPED != 0 {
            self.leave_group(slot, at);
        }
    }

    /// After a burst, gives memory back once the queue is mostly empty: if at most a quarter of the slab's
    /// slots hold live jobs and the top half is free, the slab is cut above its highest live job, index
    /// entries of the cut slots (all stale) are dropped, and every buffer whose capacity is over four times
    /// its length shrinks to twice it. It runs once per quarter of the slab's length in frees, so its O(n)
    /// cost is spread over the frees; a queue that stays at one size never shrinks, and one that shrank
    /// must grow past twice its size to shrink again.
    fn shrink(&mut self) {
        let len = self.slots.len();
        self.shrink_countdown = (len / 4).max(self.shrink_min / 4);
        if len < self.shrink_min || self.live() * 4 > len {
            return;
        }
        let keep = self.slots.iter().rposition(|s| s.phase != Phase::Free).map_or(0, |last| last + 1);
        if keep <= len / 2 {
            self.slots.truncate(keep);
            self.owed |= OWE_SHRUNK;
            let kept = |slot: u32| (slot as usize) < keep;
            self.free.retain(kept);
            // The lists hold only live jobs, all below the cut.
            for index in [&mut self.delayed, &mut self.lease_heap, &mut self.expiry] {
                index.sweep(|t: &Timed| kept(t.slot));
            }
            self.groups.cut(keep);
        }
        fit(&mut self.slots);
        self.free.fit();
        for index in [&mut self.delayed, &mut self.lease_heap, &mut self.expiry] {
            index.fit();
        }
        fit(&mut self.histories);
        fit(&mut self.dedup_order);
        self.groups.fit();
    }

    /// The number of slots in the slab (the payload vector beside it follows it).
    #[inline]
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// A job of a group left the queue at `at`: if it was one of the group's heads, the next waiting job
    /// takes its place, ready from `at` (or later, if it was pushed with a later ready time).
    fn leave_group(&mut self, slot: u32, at: Tick) {
        let Some(index) = self.groups.leave(slot) else { return };
        let Some(group) = self.groups.get_mut(index) else { return };
        let Some(head) = group.heads.iter().position(|&h| h == slot) else {
            return; // a waiting job left (its time to live ran out): skipped when the group moves on
        };
        group.heads.remove(head);
        let mut promoted = None;
        while let Some((next, id)) = group.waiting.pop_front() {
            let s = &self.slots[next as usize];
            if s.id == id && s.phase == Phase::Waiting {
                promoted = Some(next);
                break;
            }
        }
        let Some(next) = promoted else {
            if group.heads.is_empty() {
                self.groups.remove(index);
            }
            return;
        };
        group.heads.push(next);
        self.n_waiting -= 1;
        let ready_at = self.slots[next as usize].due;
        self.schedule(next, at, ready_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_attempts: u32) -> State {
        State::new(Config {
            visibility: 10,
            max_attempts,
            history_limit: 4,
            dedup_window: 100,
            rate: None,
            group_rate: None,
            group_concurrency: 1,
        })
    }

    fn place(ready_at: Tick) -> Placement {
        Placement { ready_at, priority: 0, group: None, expires_at: NEVER }
    }

    #[test]
    fn a_batch_of_leases_grants_what_as_many_single_leases_would() {
        for rate in [None, Some((3, 100))] {
            let (mut one, mut many) = (state(3), state(3));
            for st in [&mut one, &mut many] {
                st.limit = rate.map(|(n, period)| Box::new(RateLimit { n, period, times: VecDeque::new() }));
                for i in 0..10u8 {
                    st.push(0, Placement { priority: i % 3, ..place(0) });
                }
            }
            let singles: Vec<_> = (0..6).map_while(|_| one.lease(5, 10)).collect();
            let mut batch = Vec::new();
            let taken = many.lease_many(5, 10, 6, |grant| batch.push(grant));
            assert_eq!(taken, batch.len());
            assert_eq!(singles.len(), if rate.is_some() { 3 } else { 6 }, "{rate:?}");
            let key = |g: &Grant| (g.token, g.attempt, g.deadline);
            assert_eq!(
                singles.iter().map(key).collect::<Vec<_>>(),
                batch.iter().map(key).collect::<Vec<_>>()
            );
            assert_eq!(one.counts(), many.counts());
            assert_eq!((one.next_event(), one.n_leased), (many.next_event(), many.n_leased));
        }
    }

    #[test]
    fn the_oldest_jobs_are_the_first_of_all_jobs() {
        let mut st = state(3);
        for _ in 0..10 {
            st.push(0, place(0));
        }
        // Free some slots and fill them again, so that slab order is not id order.
        for _ in 0..4 {
            let grant = st.lease(0, 10).unwrap();
            st.ack(grant.token).unwrap();
        }
        for _ in 0..3 {
            st.push(0, place(0));
        }
        let all: Vec<u64> = st.jobs().iter().map(|j| j.id).collect();
        assert_eq!(all, (5..=13).collect::<Vec<_>>());
        for limit in [0, 1, 3, 9, 20] {
            let oldest: Vec<u64> = st.oldest_jobs(limit).iter().map(|j| j.id).collect();
            assert_eq!(oldest, all[..limit.min(all.len())], "limit {limit}");
        }
    }

    mod shrinking {
        //! A state that shrinks at tiny sizes behaves exactly like one that never shrinks: the same
        //! grants, outcomes, dead letters and counts under any sequence of operations.

        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Burst(u8),
            Delayed(u8),
            Lease,
            Ack(u8),
            Nack(u8, u8),
            Release(u8),
            Extend(u8, u8),
            Reject(u8),
            Advance(u8),
            DrainAll,
            Purge,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                2 => (1..60u8).prop_map(Op::Burst),
                1 => (1..30u8).prop_map(Op::Delayed),
                4 => Just(Op::Lease),
                3 => any::<u8>().prop_map(Op::Ack),
                2 => (any::<u8>(), 0..20u8).prop_map(|(i, d)| Op::Nack(i, d)),
                1 => any::<u8>().prop_map(Op::Release),
                1 => (any::<u8>(), 0..30u8).prop_map(|(i, d)| Op::Extend(i, d)),
                1 => any::<u8>().prop_map(Op::Reject),
                2 => (0..40u8).prop_map(Op::Advance),
                1 => Just(Op::DrainAll),
                1 => (0..8u8).prop_map(|_| Op::Purge).prop_filter("rare", |_| true),
            ]
        }

        /// What an outcome shows from outside: ids, attempts and times, never slots or fencing epochs
        /// (those of a slot the shrinking state cut away and grew again start afresh).
        fn shown<V: std::fmt::Debug>(r: &Result<V, LeaseLost>) -> String {
            match r {
                Ok(v) => format!("ok {v:?}"),
                Err(e) => format!("err {e:?}"),
            }
        }

        fn exits(exits: &[Exit]) -> Vec<(u64, DeadLetterReason, u32)> {
            exits.iter().map(|e| (e.id, e.reason, e.attempts)).collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn shrinking_changes_nothing_that_shows(ops in prop::collection::vec(op(), 1..200)) {
                let mut small = state(3);
                small.shrink_min = 8;
                let mut plain = state(3);
                plain.shrink_min = usize::MAX;
                let mut held: Vec<(Token, Token)> = Vec::new();
                let mut now = 0;
                // A burst drained to a trickle: the small state cuts its slab, and the random operations
                // below run on slots cut away and grown again.
                for st in [&mut small, &mut plain] {
                    burst_then_trickle(st);
                }
                prop_assert!(small.slots.len() < plain.slots.len());
                for op in ops {
                    let (mut ea, mut eb) = (Vec::new(), Vec::new());
                    small.advance(now, &mut ea);
                    plain.advance(now, &mut eb);
                    prop_assert_eq!(exits(&ea), exits(&eb));
                    let pick = |held: &mut Vec<(Token, Token)>, i: u8| {
                        (!held.is_empty()).then(|| held.swap_remove(i as usize % held.len()))
                    };
                    match op {
                        Op::Burst(n) => {
                            for _ in 0..n {
                                prop_assert_eq!(small.push(now, place(now)).1, plain.push(now, place(now)).1);
                            }
                        }
                        Op::Delayed(n) => {
                            for k in 0..n {
                                let at = now + u64::from(k % 7) * 3;
                                prop_assert_eq!(small.push(now, place(at)).1, plain.push(now, place(at)).1);
                            }
                        }
                        Op::Lease => {
                            let (a, b) = (small.lease(now, 10), plain.lease(now, 10));
                            prop_assert_eq!(a.as_ref().map(|g| (g.token.id, g.attempt, g.deadline)), b.as_ref().map(|g| (g.token.id, g.attempt, g.deadline)));
                            if let (Some(a), Some(b)) = (a, b) {
                                held.push((a.token, b.token));
                            }
                        }
                        Op::Ack(i) => if let Some((a, b)) = pick(&mut held, i) {
                            prop_assert_eq!(shown(&small.ack(a)), shown(&plain.ack(b)));
                        },
                        Op::Nack(i, d) => if let Some((a, b)) = pick(&mut held, i) {
                            let d = u64::from(d);
                            let ra = small.nack(a, now, d, FailureKind::Nacked, None).map(|n| match n { Nacked::Retry { at } => (at, 0), Nacked::Dead(e) => (0, e.id) });
                            let rb = plain.nack(b, now, d, FailureKind::Nacked, None).map(|n| match n { Nacked::Retry { at } => (at, 0), Nacked::Dead(e) => (0, e.id) });
                            prop_assert_eq!(shown(&ra), shown(&rb));
                        },
                        Op::Release(i) => if let Some((a, b)) = pick(&mut held, i) {
                            let ra = small.release(a, now, 0, false).map(|e| e.map(|e| e.id));
                            let rb = plain.release(b, now, 0, false).map(|e| e.map(|e| e.id));
                            prop_assert_eq!(shown(&ra), shown(&rb));
                        },
                        Op::Extend(i, by) => if let Some(&(a, b)) = held.get(i as usize % held.len().max(1)) {
                            let by = u64::from(by);
                            prop_assert_eq!(shown(&small.extend(a, now, by)), shown(&plain.extend(b, now, by)));
                        },
                        Op::Reject(i) => if let Some((a, b)) = pick(&mut held, i) {
                            let ra = small.reject(a, now, None).map(|e| e.id);
                            let rb = plain.reject(b, now, None).map(|e| e.id);
                            prop_assert_eq!(shown(&ra), shown(&rb));
                        },
                        Op::Advance(dt) => now += u64::from(dt),
                        Op::DrainAll => {
                            while let (Some(a), Some(b)) = (small.lease(now, 10), plain.lease(now, 10)) {
                                prop_assert_eq!(a.token.id, b.token.id);
                                prop_assert_eq!(shown(&small.ack(a.token)), shown(&plain.ack(b.token)));
                            }
                        }
                        Op::Purge => {
                            prop_assert_eq!(small.purge(now).len(), plain.purge(now).len());
                            held.clear();
                        }
                    }
                    let (ca, cb) = (small.counts(), plain.counts());
                    prop_assert_eq!((ca.ready, ca.delayed, ca.waiting, ca.leased), (cb.ready, cb.delayed, cb.waiting, cb.leased));
                    prop_assert_eq!(small.next_event(), plain.next_event());
                }
            }
        }

        /// A burst of 100 jobs, drained, then a trickle of 40.
        fn burst_then_trickle(st: &mut State) {
            for _ in 0..100 {
                st.push(0, place(0));
            }
            while let Some(g) = st.lease(0, 10) {
                st.ack(g.token).unwrap();
            }
            for _ in 0..40 {
                st.push(0, place(0));
                let g = st.lease(0, 10).unwrap();
                st.ack(g.token).unwrap();
            }
        }
    }

    #[test]
    fn the_slab_shrinks_once_a_burst_has_drained_to_a_trickle() {
        let mut st = state(5);
        let burst = 100_000;
        for _ in 0..burst {
            st.push(0, place(0));
        }
        // Drain all but the last ten, FIFO: those sit at the top of the slab.
        let mut old = Vec::new();
        for i in 0..burst {
            let g = st.lease(0, 10).unwrap();
            if i < burst - 10 {
                st.ack(g.token).unwrap();
            } else {
                old.push(g.token);
            }
        }
        assert_eq!(st.slots.len(), burst, "ten live jobs at the top hold the slab");
        // A trickle: each new job takes the lowest free slot.
        for _ in 0..burst {
            let (slot, _) = st.push(0, place(0));
            assert!(slot < 16);
            let g = st.lease(0, 10).unwrap();
            st.ack(g.token).unwrap();
        }
        for token in &old {
            st.ack(*token).unwrap();
        }
        let (trickle, _) = st.push(0, place(0)); // live: 1, at the bottom
        for _ in 0..burst / 2 {
            let g = st.lease(0, 10).unwrap();
            st.ack(g.token).unwrap();
            st.push(0, place(0));
        }
        assert!(st.slots.len() < SHRINK_MIN, "slab: {}", st.slots.len());
        assert!(st.slots.capacity() <= 2 * SHRINK_MIN, "slab capacity: {}", st.slots.capacity());
        assert!(st.lease_heap.capacity() < SHRINK_MIN);
        assert_eq!(st.live(), 1);
        assert!(trickle < 16);
        // A lease of a slot that was cut away is simply gone.
        assert_eq!(st.ack(old[0]), Err(LeaseLost::Gone));
    }

    #[test]
    fn a_ticket_that_wraps_revives_no_stale_entry() {
        let mut st = state(5);
        let (b, _) = st.push(0, place(500));
        let (a, _) = st.push(0, place(1000));
        let stale = st.slots[a as usize].ticket;
        st.unlink(a); // its delayed entry stays behind b's, stale
                      // As if the slot had changed phase 2^32 times since: its ticket comes round to the stale entry's.
        st.slots[a as usize].ticket = u32::MAX;
        while st.bump_ticket(a) != stale {}
        let mut exits = Vec::new();
        st.advance(1000, &mut exits);
        let counts = st.counts();
        assert_eq!((counts.ready, counts.delayed), (1, 0), "only b became ready");
        assert_eq!(st.lease(1000, 10).unwrap().token.slot, b);
        assert!(st.lease(1000, 10).is_none());
    }

    #[test]
    fn out_of_order_acks_leave_the_lease_index_small() {
        let mut st = state(5);
        let mut grants = Vec::new();
        for _ in 0..1000 {
            st.push(0, place(0));
            grants.push(st.lease(0, 10).unwrap());
        }
        // Ack newest first: each ack leaves a stale entry behind live ones until compaction.
        for g in grants.iter().rev() {
            st.ack(g.token).unwrap();
        }
        assert!(st.lease_heap.len() <= 200);
        assert!(st.lease_fifo.is_empty());
        assert_eq!(st.live(), 0);
        assert_eq!(st.next_event(), NEVER);
    }

    #[test]
    fn lapses_and_delays_are_processed_in_time_order() {
        let mut st = state(5);
        let (a, _) = st.push(0, place(0));
        let g = st.lease(0, 10).unwrap(); // deadline 10
        assert_eq!(g.token.slot, a);
        let (b, _) = st.push(0, place(5)); // ready at 5
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
        st.push(0, place(0));
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

    #[test]
    fn failure_histories_give_their_memory_back_after_a_burst() {
        let mut st = state(5);
        st.shrink_min = 64;
        for _ in 0..1000 {
            st.push(0, place(0));
        }
        for _ in 0..1000 {
            let g = st.lease(0, 10).unwrap();
            st.nack(g.token, 0, 0, FailureKind::Nacked, None).unwrap();
        }
        assert_eq!(st.histories.len(), 1000);
        for _ in 0..1000 {
            let g = st.lease(0, 10).unwrap();
            st.ack(g.token).unwrap();
        }
        assert!(st.histories.is_empty(), "a job's history leaves with it");
        for _ in 0..1000 {
            st.push(0, place(0));
            let g = st.lease(0, 10).unwrap();
            st.ack(g.token).unwrap();
        }
        assert!(st.histories.capacity() < 256, "histories: {}", st.histories.capacity());
    }

    #[test]
    fn the_slot_stays_small() {
        assert!(std::mem::size_of::<Slot>() <= 48, "{}", std::mem::size_of::<Slot>());
    }
}
