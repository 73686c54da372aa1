//! The in-memory store: a queue's state behind one lock, with the payloads and the built-in dead-letter
//! store beside it. Every operation takes the lock once, reads the clock outside it, processes what fell
//! due (`advance`), does its work, wakes whom it owes a wake-up (see [`crate::wait`]), releases the lock
//! in [`finish`](Inner::finish), and only then runs user code (see [`crate::deliver`]).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::clock::{address, ticks, Listener, Tick, NEVER};
use crate::core::index::fit;
use crate::core::{Exit, Grant, Nacked, Placement, State, Token, Waiter};
use crate::deliver::Outbox;
use crate::lease::Lease;
use crate::panics::Catcher;
use crate::store::{
    AlarmHook, Backlog, Change, Durable, LeaseFail, LeaseParams, Observer, Parts, Payload, Pending, PushFail,
    Wait,
};
use crate::wait::{SPIN_ROUNDS, YIELD_ROUNDS};
use crate::{
    Alarm, Backoff, Clock, DeadLetter, DeadLetterSink, FailureKind, JobId, LeaseLost, Overflow, PanicSite,
    PushOptions, Pushed, Queue, Stats, StoreError, TryPushError,
};

pub(crate) struct Inner<T> {
    /// The state, written under the lock by every operation: on cache lines of its own, so that reading
    /// the settings below does not pull a line another core is writing.
    pub(crate) core: Padded<Mutex<Core<T>>>,
    pub(crate) consumers: Condvar,
    pub(crate) producers: Condvar,
    pub(crate) clock: Clock,
    pub(crate) backoff: Backoff,
    pub(crate) sink: Option<Box<dyn DeadLetterSink<T>>>,
    pub(crate) observer: Option<Observer>,
    pub(crate) alarms: Vec<(Alarm, AlarmHook)>,
    pub(crate) capacity: Option<usize>,
    pub(crate) overflow: Overflow,
    /// The queue-wide time to live.
    pub(crate) ttl: Option<Duration>,
    /// What makes the queue durable (a journal), if anything does: told of every change.
    pub(crate) durable: Option<Box<dyn Durable<T>>>,
    /// The number of ready jobs as of the last operation (exact up to 64, then within a factor of two:
    /// see `State::hint_due`), once something reads it (see [`want_ready_hint`](Inner::want_ready_hint)):
    /// read without the lock by a worker pool, which sizes its batches and scales by it, and by consumers
    /// that spin a little before they block.
    pub(crate) ready_hint: Padded<AtomicUsize>,
    /// Runs user code: catches, counts and reports its panics.
    pub(crate) catcher: Catcher,
    /// Told of every push (see [`Backlog`]); `watched` says whether there is any, without the lock.
    pub(crate) watchers: Mutex<Vec<Weak<dyn Backlog>>>,
    pub(crate) watched: AtomicBool,
    /// The queue's periodic jobs (see [`crate::Schedule`]).
    pub(crate) schedules: crate::schedule::Schedules<T>,
    /// Whether the clock is a test clock (read on every operation; the clock's kind never changes).
    pub(crate) manual: bool,
    /// Whether a push of a job ready at once is only that: no capacity to check, no queue-wide time to
    /// live to set, no durable store to tell (see [`push_plain`](Inner::push_plain)), for every push.
    pub(crate) plain: bool,
    /// On an auto-advancing test clock, as of the last operation: [`BUSY`](crate::wait::BUSY) while a job is ready or leased,
    /// else the tick of the next timed event (see [`Listener::quiet_until`]).
    pub(crate) quiet: AtomicU64,
}

/// A value alone on its cache lines (two, for CPUs that fetch lines in pairs), against false sharing.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Core<T> {
    /// The job in a live slot. Every live slot holds its job (pushed with it, emptied only as it leaves):
    /// a debug build checks it; a release build reports a broken invariant as `None`, never a panic.
    pub(crate) fn job(&self, slot: u32) -> Option<&Arc<T>> {
        job_in(&self.jobs, slot)
    }

    /// Takes the job out of a slot whose job leaves the queue (see [`job`](Core::job)).
    pub(crate) fn take_job(&mut self, slot: u32) -> Option<Arc<T>> {
        let job = self.jobs.get_mut(slot as usize).and_then(Option::take);
        debug_assert!(job.is_some(), "a live slot holds its job");
        job
    }

    /// Takes the job of an acked slot out, keeping its allocation for a later push if the job type has
    /// nothing to drop and nobody else holds it (see [`spare`](Core::spare)); returns it otherwise, to
    /// drop after the lock.
    ///
    /// Whether nobody else holds it is read from the counts with plain loads rather than `Arc::get_mut`
    /// (an atomic read-modify-write): no `Weak` of a job is ever made, and with one strong count left
    /// nobody can make another, so the count cannot rise again; a job kept on a stale reading is only
    /// reused once [`make_shared`](Core::make_shared)'s `Arc::get_mut` finds it unique.
    #[inline]
    pub(crate) fn take_acked(&mut self, slot: u32) -> Option<Arc<T>> {
        let job = self.take_job(slot)?;
        let unique = Arc::strong_count(&job) == 1 && Arc::weak_count(&job) == 0;
        if !mem::needs_drop::<T>() && self.spare.len() < spare_max::<T>() && unique {
            self.spare.push(job);
            return None;
        }
        Some(job)
    }

    /// A job made shared for a push: in a kept allocation if there is one (see
    /// [`take_acked`](Core::take_acked)).
    #[inline]
    pub(crate) fn make_shared(&mut self, job: T) -> Arc<T> {
        if let Some(mut kept) = self.spare.pop() {
            if let Some(old) = Arc::get_mut(&mut kept) {
                *old = job; // the old value has nothing to drop: only such jobs are kept
                return kept;
            }
        }
        Arc::new(job)
    }
}

/// How many acked jobs' allocations a queue keeps for later pushes: up to 16 KiB of them, and none for
/// a job type of more than 1 KiB.
const fn spare_max<T>() -> usize {
    let size = mem::size_of::<T>() + 2 * mem::size_of::<usize>(); // an `Arc`'s allocation
    if size > 1024 {
        0
    } else {
        16 * 1024 / size
    }
}

/// A few values gathered under the lock for after it: the payloads of acked jobs (dropped outside the
/// lock). One value, the common case, needs no allocation.
pub(crate) struct Few<X> {
    first: Option<X>,
    rest: Vec<X>,
}

impl<X> Few<X> {
    /// Room for `n` values (up to 256; a larger batch grows as it must), allocated once and not at all
    /// for one: a batch of 32 would otherwise grow its vector five times.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Few { first: None, rest: Vec::with_capacity(n.clamp(1, 256) - 1) }
    }

    fn push(&mut self, value: X) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.rest.push(value);
        }
    }

    /// Calls `f` on each value, in the order they were pushed.
    fn for_each(self, mut f: impl FnMut(X)) {
        if let Some(first) = self.first {
            f(first);
            if !self.rest.is_empty() {
                self.rest.into_iter().for_each(f);
            }
        }
    }
}

/// Where the leases granted in one critical section go: one (`Option`, made into a [`Lease`] after the
/// critical section), or many ([`Handing`]).
pub(crate) trait Granted<T> {
    /// Whether it takes many (then the state leases them in one loop; see `State::lease_many`).
    const MANY: bool;

    fn add(&mut self, grant: Grant, job: Arc<T>);
}

impl<T> Granted<T> for Option<(Grant, Arc<T>)> {
    const MANY: bool = false;

    #[inline]
    fn add(&mut self, grant: Grant, job: Arc<T>) {
        debug_assert!(self.is_none(), "one lease at most");
        *self = Some((grant, job));
    }
}

/// Leases made as they are granted, under the lock, and handed to `take` (the caller's closure that
/// keeps them: no user code). Each holds a share of the caller's `handle` (see `Queue::share`), a
/// reference count no other thread writes as a rule: writing it in the critical section costs less than
/// gathering the grants in a buffer allocated per batch to make the leases after it.
///
/// `take` must keep every lease it is given: one dropped there would nack under the queue's lock, which
/// it would wait for forever (the callers push them into a vector or a deque).
pub(crate) struct Handing<'a, T: Send + Sync + 'static, F> {
    handle: &'a Queue<T>,
    take: &'a mut F,
}

impl<T: Send + Sync + 'static, F: FnMut(Lease<T>)> Granted<T> for Handing<'_, T, F> {
    const MANY: bool = true;

    #[inline]
    fn add(&mut self, grant: Grant, job: Arc<T>) {
        (self.take)(Lease::granted(self.handle, grant, job));
    }
}

pub(crate) struct Core<T> {
    pub(crate) st: State,
    /// Which alarms are raised, in the order of `Inner::alarms`.
    pub(crate) raised: Vec<bool>,
    /// Payloads, indexed by slot.
    pub(crate) jobs: Vec<Option<Arc<T>>>,
    /// The built-in dead-letter store.
    pub(crate) dead: VecDeque<DeadLetter<T>>,
    /// The allocations of acked jobs whose type has nothing to drop, kept for the next pushes: a job
    /// shared by the queue and its lease costs an allocation, which the ack would free (on another
    /// thread's cache, often) and the next push allocate again.
    pub(crate) spare: Vec<Arc<T>>,
}

impl<T> Inner<T> {
    /// The queue's `Debug` fields.
    pub(crate) fn fmt_fields<'a, 'b>(&self, mut f: fmt::DebugStruct<'a, 'b>) -> fmt::DebugStruct<'a, 'b> {
        let core = self.core.lock();
        let counts = core.st.counts();
        f.field("ready", &counts.ready)
            .field("delayed", &(counts.delayed + counts.waiting))
            .field("leased", &counts.leased)
            .field("dead", &core.dead.len())
            .field("capacity", &self.capacity)
            .field("closed", &core.st.is_closed());
        f
    }
}

impl<T> Drop for Inner<T> {
    /// The last handle is gone: the jobs and dead letters still held drop here, each on its own, so that
    /// one job's panicking `Drop` neither stops the others' nor reaches whoever dropped the queue.
    fn drop(&mut self) {
        let core = self.core.0.get_mut();
        if let Some(durable) = &self.durable {
            durable.closing(core);
        }
        for job in core.jobs.drain(..) {
            self.catcher.dispose(job);
        }
        for dead in core.dead.drain(..) {
            self.catcher.dispose(dead);
        }
    }
}

impl<T: Send + Sync + 'static> Inner<T> {
    /// Runs `f` on the core after processing what fell due, then wakes waiters and delivers dead letters.
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&mut Core<T>) -> R) -> R {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut core = self.core.lock();
        let now = core.st.catch_up(reading);
        self.advance(&mut core, now, &mut out);
        let result = f(&mut core);
        self.finish(core, out);
        result
    }

    /// Processes what fell due by `now` (nearly always nothing: one comparison).
    #[inline(always)]
    pub(crate) fn advance(&self, core: &mut Core<T>, now: Tick, out: &mut Outbox<T>) {
        if core.st.is_due(now) {
            self.advance_due(core, now, out);
        }
    }

    #[cold]
    #[inline(never)]
    fn advance_due(&self, core: &mut Core<T>, now: Tick, out: &mut Outbox<T>) {
        let mut exits = Vec::new();
        core.st.advance(now, &mut exits);
        self.bury_all(core, exits, out);
    }

    /// Wakes the threads owed a wake-up, keeps the ready hint and the features' upkeep, releases the lock,
    /// then hands events to the observer and dead letters to the sink. Inlined into each operation (a call
    /// here cost the cycle 8 %); all but the lock's release is out of line, behind one test.
    #[inline(always)]
    pub(crate) fn finish(&self, core: MutexGuard<'_, Core<T>>, out: Outbox<T>) {
        // One test: nearly every operation owes nothing but the lock's release.
        if core.st.owes() {
            return self.finish_owed(core, out);
        }
        drop(core);
        if !out.is_empty() {
            self.deliver(out);
        }
    }

    /// [`finish`](Inner::finish) when the state owes more (see `State::owes`).
    #[inline(never)]
    fn finish_owed(&self, mut core: MutexGuard<'_, Core<T>>, mut out: Outbox<T>) {
        if core.st.has_events() {
            self.collect_events(&mut core.st, &mut out);
        }
        if core.st.has_waiters() {
            self.wake(&mut core.st);
        }
        if core.st.take_shrunk() && core.jobs.len() > core.st.slot_count() {
            shrink_jobs(&mut core);
        }
        if core.st.owes_hint() {
            if let Some(ready) = core.st.hint_due() {
                self.ready_hint.store(ready, Ordering::Relaxed);
            }
        }
        if core.st.owes_always() {
            return self.finish_extras(core, out);
        }
        drop(core);
        if !out.is_empty() {
            self.deliver(out);
        }
    }

    /// [`finish`](Inner::finish)'s end for the features a queue may not have (alarms, a durable store,
    /// a test clock), behind one test: alarms checked, a durable store's compaction started (and written
    /// after the lock), and on a test clock the quiet hint kept current.
    #[inline(never)]
    fn finish_extras(&self, mut core: MutexGuard<'_, Core<T>>, mut out: Outbox<T>) {
        if !self.alarms.is_empty() {
            self.check_alarms(&mut core, &mut out);
        }
        let pending = self.durable.as_ref().and_then(|durable| after_cold(&**durable, &core));
        // On a test clock (auto-advance may be turned on at any time), keep the hint current.
        let went_quiet = self.manual && self.publish_quiet(&mut core.st) && self.clock.auto_advances();
        drop(core);
        if let Some(pending) = pending {
            // A checkpoint that fails (or whose jobs' `Serialize` panics: caught, never this caller's)
            // leaves the journal as it was; the next one tries again.
            let _ = self.catcher.call(PanicSite::PayloadSerialize, None, pending);
        }
        if went_quiet {
            // A consumer of another queue on this clock may be waiting for this one to go quiet.
            self.clock.nudge_others(address(self));
        }
        if !out.is_empty() {
            self.deliver(out);
        }
    }

    /// A push: one that is ready at once, with no dedup key or time to live, takes the hot path (see
    /// [`push_plain`](Inner::push_plain)).
    #[inline(always)]
    pub(crate) fn push(&self, job: T, options: &PushOptions, wait: Wait) -> Result<Pushed, (T, PushFail)> {
        if options.is_immediate() {
            return self.push_plain(job, options, wait);
        }
        self.push_shared(job, options, wait)
    }

    /// A push whose job is ready at once (see [`PushOptions::is_immediate`]): on a queue with no capacity,
    /// time to live or durable store (see [`plain`](Inner::plain)) the hot path, which does only what such
    /// a push does; anything else, and a push that finds an event due or the queue closed, goes the
    /// general way.
    #[inline]
    fn push_plain(&self, job: T, options: &PushOptions, wait: Wait) -> Result<Pushed, (T, PushFail)> {
        if !self.plain {
            return self.push_shared(job, options, wait);
        }
        let Some((mut core, now)) = self.lock_lean(|st| st.is_closed() || st.ids_exhausted()) else {
            return self.push_shared(job, options, wait);
        };
        let job = core.make_shared(job);
        // Two copies of the state's push: one with no group, which the compiler strips of the group's
        // code (17 instructions of the plain cycle), and one for a job in a group.
        let id = if options.is_grouped() {
            self.insert_at(&mut core, now, job, options.immediate_placement(now, true))
        } else {
            self.insert_at(&mut core, now, job, options.immediate_placement(now, false))
        };
        self.finish(core, Outbox::new());
        self.pushed();
        Ok(Pushed::Enqueued(id))
    }

    /// The lock and the time for a lean call: `None`, with the lock let go and nothing changed, if a timed
    /// event is due or `aside` says the call goes the general way (which processes the events, or says
    /// why not).
    #[inline(always)]
    fn lock_lean(&self, aside: impl FnOnce(&State) -> bool) -> Option<(MutexGuard<'_, Core<T>>, Tick)> {
        let reading = self.clock.tick();
        let mut core = self.core.lock();
        let now = core.st.catch_up(reading);
        if core.st.is_due(now) || aside(&core.st) {
            return None;
        }
        Some((core, now))
    }

    /// Pushes a job, or one that is already shared (a redriven dead letter's): it becomes an `Arc` only
    /// once it is in, so a refused job comes back exactly as it was given.
    pub(crate) fn push_shared<J: Payload<T>>(
        &self,
        job: J,
        options: &PushOptions,
        wait: Wait,
    ) -> Result<Pushed, (J, PushFail)> {
        if self.durable.is_some() {
            return self.push_durable(job, options, wait);
        }
        self.push_with_record(job, None, options, wait)
    }

    /// A push to a durable queue: the job's record is serialized first, before the lock (serializing runs
    /// user code).
    #[cold]
    #[inline(never)]
    fn push_durable<J: Payload<T>>(
        &self,
        job: J,
        options: &PushOptions,
        wait: Wait,
    ) -> Result<Pushed, (J, PushFail)> {
        match self.encode(job.borrow(), None) {
            Some(Err(e)) => Err((job, PushFail::Store(e))),
            encoded => {
                let payload = encoded.and_then(Result::ok);
                self.push_with_record(job, payload.as_deref(), options, wait)
            }
        }
    }

    /// A push under the lock, with the payload of its durable record (`None` in memory).
    #[inline(always)]
    fn push_with_record<J: Payload<T>>(
        &self,
        job: J,
        payload: Option<&[u8]>,
        options: &PushOptions,
        wait: Wait,
    ) -> Result<Pushed, (J, PushFail)> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut duplicate = None;
        let mut core = self.core.lock();
        let now = core.st.catch_up(reading);
        let result = match self.push_once(&mut core, &mut out, job, &mut duplicate, payload, options, now) {
            Err((job, PushFail::NoRoom)) if matches!(wait, Wait::Until(until) if now < until) => {
                self.push_waiting(&mut core, &mut out, job, &mut duplicate, payload, options, wait)
            }
            result => result,
        };
        self.finish(core, out);
        if duplicate.is_some() {
            self.catcher.dispose(duplicate); // a duplicate is dropped here, outside the lock
        }
        let pushed = result?;
        if let Err(e) = self.commit() {
            return self.unpush(pushed, e);
        }
        self.pushed();
        Ok(pushed)
    }

    /// Waits until the changes recorded so far are durable (at once for the memory store).
    #[inline(always)]
    pub(crate) fn commit(&self) -> Result<(), StoreError> {
        match &self.durable {
            None => Ok(()),
            Some(durable) => commit_cold(&**durable),
        }
    }

    /// Whether the store takes changes (always, for the memory store).
    #[inline(always)]
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match &self.durable {
            None => Ok(()),
            Some(durable) => check_cold(&**durable),
        }
    }

    /// Tells the durable store, if there is one, of a change (made only then).
    #[inline(always)]
    pub(crate) fn record<'a>(&self, change: impl FnOnce() -> Change<'a>) {
        if let Some(durable) = &self.durable {
            record_cold(&**durable, change());
        }
    }

    /// A push whose record could not be made durable: takes the job back out and hands it back, if no
    /// consumer has leased it yet. One that was leased meanwhile is being processed: the push reports
    /// success then (the store has failed, and every later call says so).
    #[cold]
    #[inline(never)]
    fn unpush<J: Payload<T>>(&self, pushed: Pushed, e: StoreError) -> Result<Pushed, (J, PushFail)> {
        let Pushed::Enqueued(id) = pushed else { return Ok(pushed) };
        let job = self.withdraw(&mut self.core.lock(), id);
        match job.map(J::from_shared) {
            Some(Ok(job)) => Err((job, PushFail::Store(e))),
            Some(Err(shared)) => {
                self.catcher.dispose(shared);
                Ok(pushed)
            }
            None => Ok(pushed),
        }
    }

    /// One try at a push at `now`, under the lock: a duplicate goes to `duplicate`, to be dropped after
    /// the lock. Inlined into the quick try and the waiting loop alike (a call here costs the cycle 5 %).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // the push's parts, passed through from its one caller
    pub(crate) fn push_once<J: Payload<T>>(
        &self,
        core: &mut Core<T>,
        out: &mut Outbox<T>,
        job: J,
        duplicate: &mut Option<J>,
        payload: Option<&[u8]>,
        options: &PushOptions,
        now: Tick,
    ) -> Result<Pushed, (J, PushFail)> {
        if core.st.is_closed() || core.st.ids_exhausted() {
            return Err((job, PushFail::Closed));
        }
        self.advance(core, now, out);
        if let Some(id) = options.dedup().and_then(|key| core.st.deduplicate(now, key)) {
            *duplicate = Some(job);
            return Ok(Pushed::Duplicate(JobId::from_u64(id)));
        }
        if let Err(fail) = self.room(core, now, out) {
            return Err((job, fail));
        }
        if let (Some(durable), Some(payload)) = (&self.durable, payload) {
            if let Err(e) = self.record_push(&**durable, &core.st, now, payload, options) {
                return Err((job, PushFail::Store(e)));
            }
        }
        let job = job.into_shared_with(|job| core.make_shared(job));
        let id = self.insert(core, now, job, options);
        if let Some(key) = options.dedup() {
            core.st.reserve(now, Arc::clone(key), id.as_u64());
        }
        Ok(Pushed::Enqueued(id))
    }

    /// A push that waits for room (a bounded queue under [`Overflow::Block`]) until `wait` ends.
    #[cold]
    #[allow(clippy::too_many_arguments)] // as `push_once`
    pub(crate) fn push_waiting<J: Payload<T>>(
        &self,
        core: &mut MutexGuard<'_, Core<T>>,
        out: &mut Outbox<T>,
        mut job: J,
        duplicate: &mut Option<J>,
        payload: Option<&[u8]>,
        options: &PushOptions,
        wait: Wait,
    ) -> Result<Pushed, (J, PushFail)> {
        let Wait::Until(until) = wait else { return Err((job, PushFail::NoRoom)) };
        loop {
            self.block(core, out, Waiter::Producer, until);
            let now = core.st.catch_up(self.clock.tick());
            match self.push_once(core, out, job, duplicate, payload, options, now) {
                Err((back, PushFail::NoRoom)) if now < until => job = back,
                result => return result,
            }
        }
    }

    /// Makes room for one more job under the overflow policy, or says why there is none.
    #[inline(always)]
    pub(crate) fn room(&self, core: &mut Core<T>, now: Tick, out: &mut Outbox<T>) -> Result<(), PushFail> {
        if self.capacity.is_none_or(|cap| core.st.live() < cap) {
            return Ok(());
        }
        match self.overflow {
            Overflow::RejectNew => Err(PushFail::Rejected),
            Overflow::DropOldest => match core.st.evict(now) {
                Some(exit) => {
                    self.bury(core, exit, out);
                    Ok(())
                }
                None => Err(PushFail::NoRoom), // nothing ready to drop: wait as under `Block`
            },
            Overflow::Block => Err(PushFail::NoRoom),
        }
    }

    /// Writes a push's record to the durable store, before the push (see [`Durable::push`]).
    #[cold]
    #[inline(never)]
    fn record_push(
        &self,
        durable: &dyn Durable<T>,
        st: &State,
        now: Tick,
        payload: &[u8],
        options: &PushOptions,
    ) -> Result<(), StoreError> {
        let place = options.placement(now, &self.clock, self.ttl);
        let dedup = options.dedup().map(|key| (&**key, now.saturating_add(st.dedup_window())));
        durable.push(st.next_id(), now, &place, dedup, payload)
    }

    /// Puts a job in where `options` place it (see [`insert_at`](Inner::insert_at)).
    #[inline(always)]
    pub(crate) fn insert(&self, core: &mut Core<T>, now: Tick, job: Arc<T>, options: &PushOptions) -> JobId {
        self.insert_at(core, now, job, options.placement(now, &self.clock, self.ttl))
    }

    /// Puts a job in where `place` says: the one place the payloads grow. The caller checked closing, ids
    /// and room.
    #[inline(always)]
    fn insert_at(&self, core: &mut Core<T>, now: Tick, job: Arc<T>, place: Placement) -> JobId {
        let (slot, id) = core.st.push(now, place);
        let slot = slot as usize;
        if slot == core.jobs.len() {
            core.jobs.push(None);
        }
        core.jobs[slot] = Some(job);
        JobId::from_u64(id)
    }

    /// Takes the dead letter of job `id` out of the built-in store, if it is there. `hint` is where it
    /// probably is (checked first, so that a redrive over a large store does not rescan it per move).
    pub(crate) fn take_dead_letter(&self, id: JobId, hint: usize) -> Option<DeadLetter<T>> {
        let mut core = self.core.lock();
        let index = if core.dead.get(hint).is_some_and(|d| d.id == id) {
            hint
        } else {
            core.dead.iter().position(|d| d.id == id)?
        };
        core.dead.remove(index)
    }

    /// Puts a dead letter back at the front of the built-in store.
    pub(crate) fn restore_dead_letter(&self, dead: DeadLetter<T>) {
        self.bury_durably(&dead);
        self.core.lock().dead.push_front(dead);
    }

    /// Serializes a job for the durable store, outside every lock, catching a panic of its `Serialize`
    /// (user code): `None` without a durable store.
    fn encode(&self, job: &T, id: Option<JobId>) -> Option<Result<Vec<u8>, StoreError>> {
        let durable = self.durable.as_ref()?;
        let encoded = self.catcher.call(PanicSite::PayloadSerialize, id, || durable.encode(job));
        Some(
            encoded.unwrap_or_else(|| Err(StoreError::new(io::Error::other("the job's Serialize panicked")))),
        )
    }

    /// Records a dead letter put (back) into the built-in store, before it goes there (outside the lock:
    /// serializing it runs user code). One that cannot be serialized fails the durable store.
    pub(crate) fn bury_durably(&self, dead: &DeadLetter<T>) {
        let Some(durable) = &self.durable else { return };
        match self.encode(&dead.job, Some(dead.id)) {
            Some(Ok(payload)) => durable.bury(dead, &payload),
            Some(Err(e)) => {
                durable.fail(format!("dead letter {} could not be recorded: {e}", dead.id.as_u64()))
            }
            None => {}
        }
    }

    pub(crate) fn lease(self: &Arc<Self>, handle: &Queue<T>, wait: Wait) -> Result<Lease<T>, LeaseFail> {
        self.lease_with(handle, LeaseParams { wait, visibility: None, stop: None })
    }

    /// A single lease that does not wait, at the queue's visibility timeout ([`Queue::try_lease`]): on a
    /// queue with no durable store the hot path, which does only what such a lease does; anything else,
    /// and a lease that finds an event due or leasing paused, goes the general way.
    #[inline]
    pub(crate) fn try_lease(self: &Arc<Self>, handle: &Queue<T>) -> Result<Lease<T>, LeaseFail> {
        if self.durable.is_some() {
            return self.lease(handle, Wait::No);
        }
        let Some((mut core, now)) = self.lock_lean(State::is_paused) else {
            return self.lease(handle, Wait::No);
        };
        let visibility = core.st.default_visibility();
        let Some(grant) = core.st.lease(now, visibility) else {
            let fail = Self::none_granted(&core.st);
            self.finish(core, Outbox::new());
            return Err(fail);
        };
        // None: a broken invariant (see `Core::job`), never a panic.
        let job = core.job(grant.token.slot).map(Arc::clone);
        self.finish(core, Outbox::new());
        let job = job.ok_or(LeaseFail::NoJob)?;
        Ok(Lease::granted(handle, grant, job))
    }

    #[inline(always)]
    pub(crate) fn lease_with(
        self: &Arc<Self>,
        handle: &Queue<T>,
        params: LeaseParams<'_>,
    ) -> Result<Lease<T>, LeaseFail> {
        let mut granted = None;
        let result = self.grant(&params, 1, &mut granted);
        let lease = granted.map(|(grant, job)| Lease::granted(handle, grant, job));
        result?;
        // A lease's record must be durable before its holder runs the job: a job that crashes the process
        // every time then still runs out of attempts.
        self.commit().map_err(LeaseFail::Store)?;
        // A grant that succeeds grants at least one; were it not to, there was no job.
        lease.ok_or(LeaseFail::NoJob)
    }

    /// Waits as `params` say for a ready job, then hands out up to `max` (at least one) to `take`, under
    /// one lock (`take` must keep them: see [`Handing`]).
    pub(crate) fn lease_into(
        self: &Arc<Self>,
        handle: &Queue<T>,
        params: LeaseParams<'_>,
        max: usize,
        take: &mut impl FnMut(Lease<T>),
    ) -> Result<(), LeaseFail> {
        self.grant(&params, max, &mut Handing { handle, take })?;
        self.commit().map_err(LeaseFail::Store) // as in `lease_with`
    }

    /// Waits as `params` say for a ready job, then grants up to `max` (at least one) into `granted`, under
    /// one lock.
    #[inline(always)]
    fn grant(
        self: &Arc<Self>,
        params: &LeaseParams<'_>,
        max: usize,
        granted: &mut impl Granted<T>,
    ) -> Result<(), LeaseFail> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut core = self.core.lock();
        let now = core.st.catch_up(reading);
        let result = match self.lease_once(&mut core, &mut out, params, max, granted, now) {
            Err(LeaseFail::NoJob | LeaseFail::Limited(_)) if matches!(params.wait, Wait::Until(until) if now < until) => {
                self.lease_waiting(&mut core, &mut out, params, max, granted)
            }
            result => result,
        };
        self.finish(core, out);
        result
    }

    /// One try at leasing at `now`, under the lock. Inlined, as [`push_once`](Inner::push_once).
    #[inline(always)]
    pub(crate) fn lease_once<G: Granted<T>>(
        self: &Arc<Self>,
        core: &mut Core<T>,
        out: &mut Outbox<T>,
        params: &LeaseParams<'_>,
        max: usize,
        granted: &mut G,
        now: Tick,
    ) -> Result<(), LeaseFail> {
        if params.stop.is_some_and(|stop| stop.load(Ordering::Acquire)) {
            return Err(LeaseFail::Stopped);
        }
        self.advance(core, now, out);
        let visibility = params.visibility.unwrap_or_else(|| core.st.default_visibility());
        let mut taken = 0;
        // A batch in one loop of the state; a single lease through `State::lease` alone (the loop would
        // cost the push -> lease -> ack cycle 33 instructions).
        if G::MANY && !core.st.is_paused() {
            let Core { st, jobs, .. } = core;
            st.lease_many(now, visibility, max, |grant| {
                let (id, attempt, deadline) = (grant.token.id, grant.attempt, grant.deadline);
                self.record(|| Change::Lease { id, attempt, deadline });
                if let Some(job) = job_in(jobs, grant.token.slot) {
                    granted.add(grant, Arc::clone(job));
                    taken += 1;
                }
            });
        }
        while !G::MANY && taken < max && !core.st.is_paused() {
            let Some(grant) = core.st.lease(now, visibility) else { break };
            let (id, attempt, deadline) = (grant.token.id, grant.attempt, grant.deadline);
            self.record(|| Change::Lease { id, attempt, deadline });
            if let Some(job) = core.job(grant.token.slot) {
                granted.add(grant, Arc::clone(job));
                taken += 1;
            }
        }
        if taken > 0 {
            Ok(())
        } else {
            Err(Self::none_granted(&core.st))
        }
    }

    /// Why a lease found no job to grant.
    #[cold]
    fn none_granted(st: &State) -> LeaseFail {
        if st.is_closed() && st.live() == 0 {
            LeaseFail::Closed
        } else if let Some(until) = st.limited_until().filter(|_| !st.is_paused()) {
            LeaseFail::Limited(until)
        } else {
            LeaseFail::NoJob
        }
    }

    /// A lease that waits for a job until `params.wait` ends: a short spin without the lock first (jobs
    /// that flow steadily arrive within it), then blocking (see [`block`](Inner::block)).
    #[cold]
    pub(crate) fn lease_waiting(
        self: &Arc<Self>,
        core: &mut MutexGuard<'_, Core<T>>,
        out: &mut Outbox<T>,
        params: &LeaseParams<'_>,
        max: usize,
        granted: &mut impl Granted<T>,
    ) -> Result<(), LeaseFail> {
        let Wait::Until(until) = params.wait else { return Err(LeaseFail::NoJob) };
        if !core.st.owes_hint() {
            self.keep_ready_hint(core); // the spin watches it
        }
        let mut round = 0;
        loop {
            if round < SPIN_ROUNDS + YIELD_ROUNDS && out.is_empty() {
                MutexGuard::unlocked(core, || self.spin(round));
                round += 1;
            } else {
                self.block(core, out, Waiter::Consumer, until);
            }
            let now = core.st.catch_up(self.clock.tick());
            match self.lease_once(core, out, params, max, granted, now) {
                Err(LeaseFail::NoJob | LeaseFail::Limited(_)) if now < until => {}
                result => return result,
            }
        }
    }

    /// Pushes jobs under one lock; never blocks. Jobs the queue has no room for come back `Full`.
    pub(crate) fn push_many(&self, jobs: impl IntoIterator<Item = T>) -> Vec<Result<JobId, TryPushError<T>>> {
        if self.durable.is_some() {
            // A durable store's records of the jobs are made before the lock: serializing runs user code.
            let encoded: Vec<_> = jobs.into_iter().map(|job| (self.encode(&job, None), job)).collect();
            return self.push_encoded(encoded.into_iter().map(|(payload, job)| (job, payload)));
        }
        self.push_encoded(jobs.into_iter().map(|job| (job, None)))
    }

    /// [`push_many`](Inner::push_many), each job with its durable record's payload (`None` without a
    /// durable store; an error refuses that job).
    fn push_encoded(
        &self,
        jobs: impl Iterator<Item = (T, Option<Result<Vec<u8>, StoreError>>)>,
    ) -> Vec<Result<JobId, TryPushError<T>>> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut core = self.core.lock();
        let now = core.st.catch_up(reading);
        self.advance(&mut core, now, &mut out);
        let options = PushOptions::new();
        let expires_at = options.placement(now, &self.clock, self.ttl).expires_at;
        if let Some(durable) = &self.durable {
            durable.batch(); // one write for the whole batch, made below
        }
        let mut results: Vec<_> = jobs
            .map(|(job, payload)| {
                if core.st.is_closed() || core.st.ids_exhausted() {
                    return Err(TryPushError::Closed(job));
                }
                if let Err(fail) = self.room(&mut core, now, &mut out) {
                    return Err(match fail {
                        PushFail::Closed => TryPushError::Closed(job),
                        PushFail::Rejected | PushFail::NoRoom => TryPushError::Full(job),
                        PushFail::Store(e) => TryPushError::Store(job, e),
                    });
                }
                if let (Some(durable), Some(payload)) = (&self.durable, payload) {
                    let recorded =
                        payload.and_then(|p| self.record_push(&**durable, &core.st, now, &p, &options));
                    if let Err(e) = recorded {
                        return Err(TryPushError::Store(job, e));
                    }
                }
                let job = core.make_shared(job);
                // `options`' placement, made here so that the state's push is stripped of what such a
                // job does not have (a delay, a group).
                let place = Placement { ready_at: now, priority: 0, group: None, expires_at };
                Ok(self.insert_at(&mut core, now, job, place))
            })
            .collect();
        if let Some(durable) = &self.durable {
            if let Err(e) = durable.flush() {
                // No record was written: the batch is undone, under the same lock, and every job handed back.
                results = self.unpush_batch(&mut core, results, &e);
            }
        }
        self.finish(core, out);
        if let Err(e) = self.commit() {
            return self.unpush_batch(&mut self.core.lock(), results, &e);
        }
        self.pushed();
        results
    }

    /// Undoes the pushes of a batch whose records were not written or not synced (see
    /// [`unpush`](Inner::unpush)): each job still in the queue unleased comes back with `e`.
    #[cold]
    fn unpush_batch(
        &self,
        core: &mut Core<T>,
        results: Vec<Result<JobId, TryPushError<T>>>,
        e: &StoreError,
    ) -> Vec<Result<JobId, TryPushError<T>>> {
        // Where each job is, found in one pass over the slab rather than one per job.
        let slots: HashMap<u64, u32> =
            (0..core.st.slot_count() as u32).filter_map(|slot| Some((core.st.job_id(slot)?, slot))).collect();
        results
            .into_iter()
            .map(|result| {
                let id = result?;
                let slot = slots.get(&id.as_u64()).copied();
                self.unpush_one(core, id, slot, e)
            })
            .collect()
    }

    /// Undoes one push of a batch, if its job is still in `slot` unleased.
    fn unpush_one(
        &self,
        core: &mut Core<T>,
        id: JobId,
        slot: Option<u32>,
        e: &StoreError,
    ) -> Result<JobId, TryPushError<T>> {
        let withdrawn =
            slot.filter(|&slot| core.st.withdraw(slot, id.as_u64())).and_then(|slot| core.take_job(slot));
        match withdrawn.map(Arc::try_unwrap) {
            Some(Ok(job)) => Err(TryPushError::Store(job, e.clone())),
            Some(Err(shared)) => {
                self.catcher.dispose(shared);
                Ok(id)
            }
            None => Ok(id),
        }
    }

    /// Takes job `id` back out of the queue if it has not been leased yet (see [`State::withdraw`]).
    #[cold]
    fn withdraw(&self, core: &mut Core<T>, id: JobId) -> Option<Arc<T>> {
        let id = id.as_u64();
        let slot = (0..core.st.slot_count() as u32).rev().find(|&slot| core.st.job_id(slot) == Some(id))?;
        if core.st.withdraw(slot, id) {
            core.take_job(slot)
        } else {
            None
        }
    }

    /// Settles many leases of this queue under one lock. `op` settles one, and says whether the job left
    /// the queue without an exit (an ack), so that its payload is dropped (after the lock).
    pub(crate) fn settle_many<V, P>(
        &self,
        items: Vec<(Token, P)>,
        mut op: impl FnMut(&mut State, Token, P, Tick, &mut Vec<Exit>) -> Result<(V, bool), LeaseLost>,
    ) -> Vec<Result<V, LeaseLost>> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut exits = Vec::new();
        let mut dropped = Vec::new();
        let mut core = self.core.lock();
        let now = core.st.catch_up(reading);
        core.st.advance(now, &mut exits);
        let mut results = Vec::with_capacity(items.len());
        if let Err(e) = self.check() {
            results.extend(items.iter().map(|_| Err(LeaseLost::Store(e.clone()))));
        } else {
            for (token, prepared) in items {
                results.push(op(&mut core.st, token, prepared, now, &mut exits).map(|(value, left)| {
                    if left {
                        dropped.push(core.take_job(token.slot));
                    }
                    if left {
                        self.record(|| Change::Ack(token.id));
                    } else {
                        self.requeued(&core.st, token);
                    }
                    value
                }));
            }
        }
        self.bury_all(&mut core, exits, &mut out);
        self.finish(core, out);
        self.catcher.dispose(dropped);
        if let Err(e) = self.commit() {
            for result in &mut results {
                if result.is_ok() {
                    *result = Err(LeaseLost::Store(e.clone()));
                }
            }
        }
        results
    }

    /// Runs `f` on the state after processing what fell due.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.locked(|core| f(&mut core.st))
    }

    /// Runs `f` on the state, the payloads and the dead-letter store, after processing what fell due; a
    /// restore fills a new queue this way, under one lock.
    #[cfg(feature = "serde")]
    pub(crate) fn inspect_core<R>(
        &self,
        f: impl FnOnce(&mut State, &mut Vec<Option<Arc<T>>>, &mut VecDeque<DeadLetter<T>>) -> R,
    ) -> R {
        self.locked(|core| f(&mut core.st, &mut core.jobs, &mut core.dead))
    }

    /// When the next timed event (a delayed job or retry, a lapse, an expiry) is due, if any.
    pub(crate) fn next_event(&self) -> Option<Instant> {
        let next = self.inspect(|st| st.next_event());
        (next != NEVER).then(|| self.clock.instant(next))
    }

    /// Registers a watcher of pushes (see [`Backlog`]).
    pub(crate) fn watch_backlog(&self, watcher: Weak<dyn Backlog>) {
        let mut watchers = self.watchers.lock();
        watchers.retain(|w| w.strong_count() > 0);
        watchers.push(watcher);
        self.watched.store(true, Ordering::Release);
    }

    /// Tells the watchers a push happened, outside the queue's lock.
    #[inline(always)]
    pub(crate) fn pushed(&self) {
        if self.watched.load(Ordering::Acquire) {
            self.tell_watchers();
        }
    }

    #[cold]
    #[inline(never)]
    fn tell_watchers(&self) {
        let watchers: Vec<_> = self.watchers.lock().iter().filter_map(Weak::upgrade).collect();
        for watcher in watchers {
            watcher.on_push();
        }
    }

    /// Keeps [`ready_hint`](Inner::ready_hint) current from now on (a worker pool reads it); until then
    /// no operation spends time on it.
    pub(crate) fn want_ready_hint(&self) {
        self.keep_ready_hint(&mut self.core.lock());
    }

    /// [`want_ready_hint`](Inner::want_ready_hint) under the lock.
    #[cold]
    fn keep_ready_hint(&self, core: &mut Core<T>) {
        core.st.owe_hint();
        if let Some(ready) = core.st.hint_due() {
            self.ready_hint.store(ready, Ordering::Relaxed);
        }
    }

    /// The number of ready jobs, without processing what fell due (a cheap hint for scaling), once
    /// [`want_ready_hint`](Inner::want_ready_hint) was called.
    pub(crate) fn ready_hint(&self) -> usize {
        self.ready_hint.load(Ordering::Relaxed)
    }

    // ----- lifecycle and inspection, for the public API -----

    /// Refuses pushes from now on; wakes everyone (producers fail, consumers drain or return).
    pub(crate) fn close(&self) {
        let mut core = self.core.lock();
        core.st.close();
        self.producers.notify_all();
        self.consumers.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.core.lock().st.is_closed()
    }

    /// Pauses or resumes leasing; a resume wakes blocked consumers.
    pub(crate) fn set_paused(&self, paused: bool) {
        let mut core = self.core.lock();
        core.st.set_paused(paused);
        self.record(|| Change::Paused(paused));
        if !paused {
            self.consumers.notify_all();
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.core.lock().st.is_paused()
    }

    /// Removes every live job; returns how many. The jobs are dropped after the lock.
    pub(crate) fn purge(&self) -> usize {
        let removed: Vec<Option<Arc<T>>> = self.locked(|core| {
            let now = core.st.now();
            let slots = core.st.purge(now);
            self.record(|| Change::Purge);
            slots.iter().map(|&slot| core.take_job(slot)).collect()
        });
        let purged = removed.len();
        self.catcher.dispose(removed);
        // A purge is not undone by a failed sync: the jobs are gone here; the store reports its failure
        // on the next call that waits for it.
        let _ = self.commit();
        purged
    }

    /// The number of live jobs, after processing what fell due.
    pub(crate) fn len(&self) -> usize {
        self.locked(|core| core.st.live())
    }

    /// Counts and counters, exact at the moment they are read.
    pub(crate) fn stats(&self) -> Stats {
        let (syncs, torn_bytes) = self.durable.as_ref().map_or((0, 0), |durable| durable.counts());
        self.locked(|core| {
            let counts = core.st.counts();
            let now = core.st.now();
            let c = core.st.counters();
            Stats {
                ready: counts.ready,
                delayed: counts.delayed + counts.waiting,
                waiting: counts.waiting,
                leased: counts.leased,
                dead: core.dead.len(),
                pushed: c.pushed,
                acked: c.acked,
                nacked: c.nacked,
                released: c.released,
                rejected: c.rejected,
                lapsed: c.lapsed,
                #[allow(deprecated)]
                expired: c.lapsed,
                dead_lettered: c.dead_lettered,
                deduplicated: c.deduplicated,
                purged: c.purged,
                oldest_ready_age: core.st.oldest_ready_since().map(|t| Duration::from_nanos(now - t)),
                consumers_waiting: core.st.waiting_consumers(),
                producers_waiting: core.st.waiting_producers(),
                panics: self.catcher.count(),
                limited: if core.st.limited_until().is_some() { counts.ready } else { 0 },
                syncs,
                torn_bytes,
            }
        })
    }

    /// Copies of the first `limit` dead letters of the built-in store, oldest first.
    pub(crate) fn dead_letters(&self, limit: usize) -> Vec<DeadLetter<T>> {
        self.core.lock().dead.iter().take(limit).cloned().collect()
    }

    pub(crate) fn drain_dead_letters(&self) -> Vec<DeadLetter<T>> {
        let drained = self.locked(|core| {
            self.record(|| Change::DrainDead);
            core.dead.drain(..).collect()
        });
        let _ = self.commit(); // as for `purge`
        drained
    }

    /// A dead letter taken with [`take_dead_letter`](Inner::take_dead_letter) was redriven: it is not
    /// put back.
    pub(crate) fn dead_letter_moved(&self, id: JobId) {
        self.record(|| Change::Unbury(id.as_u64()));
    }

    // ----- lease outcomes, called by `Lease` -----

    pub(crate) fn ack(&self, token: Token) -> Result<(), LeaseLost> {
        self.ack_unsynced(token)?;
        self.commit().map_err(LeaseLost::Store)
    }

    /// Acks the job of `token` and, if that succeeded, leases up to `max` ready jobs (without waiting),
    /// handed to `take`, all under one lock: a consumer settles the job it ran and takes the next in one
    /// critical section. With `synced`, returns once a durable store has the ack on disk; without, only
    /// the leases taken are waited for (a pool worker's ack: see [`ack_unsynced`](Inner::ack_unsynced)).
    pub(crate) fn ack_then_lease_into(
        self: &Arc<Self>,
        handle: &Queue<T>,
        token: Token,
        max: usize,
        visibility: Option<Tick>,
        synced: bool,
        take: &mut impl FnMut(Lease<T>),
    ) -> Result<(), LeaseLost> {
        let mut acked = [Ok(())];
        self.ack_many_then_lease_into(handle, &[token], &mut acked, false, max, visibility, synced, take);
        let [acked] = acked;
        acked
    }

    /// Acks the job of `token` and, if that succeeded, leases the next ready job (without waiting) at the
    /// queue's visibility timeout, under one lock ([`Lease::ack_and_try_lease`]): on a queue with no
    /// durable store the hot path, an ack and a plain lease (see [`try_lease`](Inner::try_lease));
    /// otherwise, or when an event is due or leasing is paused, the general way.
    pub(crate) fn ack_and_try_lease(
        self: &Arc<Self>,
        handle: &Queue<T>,
        token: Token,
    ) -> Result<Option<Lease<T>>, LeaseLost> {
        let general = || {
            let mut next = None;
            self.ack_then_lease_into(handle, token, 1, None, true, &mut |lease| next = Some(lease))?;
            Ok(next)
        };
        if self.durable.is_some() {
            return general();
        }
        let Some((mut core, now)) = self.lock_lean(State::is_paused) else {
            return general();
        };
        if let Err(lost) = core.st.ack(token) {
            self.finish(core, Outbox::new());
            return Err(lost);
        }
        let acked = core.take_acked(token.slot);
        let visibility = core.st.default_visibility();
        let next = core.st.lease(now, visibility);
        // None: a broken invariant (see `Core::job`), never a panic.
        let job = next.as_ref().and_then(|grant| core.job(grant.token.slot)).map(Arc::clone);
        self.finish(core, Outbox::new());
        self.catcher.dispose_job(acked); // the job's destructor runs outside the lock
        Ok(next.zip(job).map(|(grant, job)| Lease::granted(handle, grant, job)))
    }

    /// Acks the jobs of `tokens`, each result written to its place in `acked` (as long as `tokens`), and
    /// leases up to `max` ready jobs (without waiting), handed to `take` as they are granted (see
    /// [`Handing`]), all under one lock. Leases unless every ack failed, or whatever the acks did with
    /// `always`. With `synced`, returns once a durable store has the acks on disk (a failed sync turns
    /// the acks' results into its error); without, only the leases taken are waited for.
    #[allow(clippy::too_many_arguments)] // crate-internal, called by the single and the batch form
    pub(crate) fn ack_many_then_lease_into(
        self: &Arc<Self>,
        handle: &Queue<T>,
        tokens: &[Token],
        acked: &mut [Result<(), LeaseLost>],
        always: bool,
        max: usize,
        visibility: Option<Tick>,
        synced: bool,
        take: &mut impl FnMut(Lease<T>),
    ) {
        debug_assert_eq!(tokens.len(), acked.len());
        let reading = (max > 0).then(|| self.clock.tick());
        let mut out = Outbox::new();
        let mut granted = Handing { handle, take };
        let mut dropped = Few::with_capacity(tokens.len());
        let mut core = self.core.lock();
        let mut any = tokens.is_empty();
        for (&token, result) in tokens.iter().zip(acked.iter_mut()) {
            *result = core.st.ack(token);
            if result.is_ok() {
                any = true;
                self.record(|| Change::Ack(token.id));
                dropped.push(core.take_acked(token.slot));
            }
        }
        let mut taken = false;
        if let Some(reading) = reading.filter(|_| any || always) {
            let now = core.st.catch_up(reading);
            let params = LeaseParams { wait: Wait::No, visibility, stop: None };
            taken = self.lease_once(&mut core, &mut out, &params, max, &mut granted, now).is_ok();
        }
        self.finish(core, out);
        // The jobs' destructors run outside the lock.
        dropped.for_each(|job| self.catcher.dispose_job(job));
        if synced || taken {
            if let Err(e) = self.commit() {
                for result in acked.iter_mut().filter(|r| r.is_ok()) {
                    *result = Err(LeaseLost::Store(e.clone()));
                }
            }
        }
    }

    /// An ack that does not wait for a durable store's sync: the next operation that waits covers it (a
    /// pool worker's next lease). A crash before then delivers the job again.
    pub(crate) fn ack_unsynced(&self, token: Token) -> Result<(), LeaseLost> {
        let mut core = self.core.lock();
        let result = core.st.ack(token);
        let job = match result {
            Ok(()) => {
                self.record(|| Change::Ack(token.id));
                core.take_acked(token.slot)
            }
            Err(_) => None,
        };
        self.finish(core, Outbox::new());
        self.catcher.dispose_job(job); // the job's destructor runs outside the lock
        result
    }

    /// A failed attempt: retried after `delay` (returns when it is due), or dead-lettered if it was the
    /// last (returns `None`).
    pub(crate) fn nack(
        &self,
        token: Token,
        delay: Duration,
        kind: FailureKind,
        message: Option<String>,
    ) -> Result<Option<Tick>, LeaseLost> {
        let delay = ticks(delay);
        self.settle(|st, now, exits| {
            Ok(match st.nack(token, now, delay, kind, message)? {
                Nacked::Retry { at } => {
                    self.requeued(st, token);
                    Some(at)
                }
                Nacked::Dead(exit) => {
                    exits.push(exit);
                    None
                }
            })
        })
    }

    pub(crate) fn reject(&self, token: Token, message: Option<String>) -> Result<(), LeaseLost> {
        self.settle(|st, now, exits| {
            exits.push(st.reject(token, now, message)?);
            Ok(())
        })
    }

    pub(crate) fn release(&self, token: Token, delay: Duration) -> Result<(), LeaseLost> {
        let delay = ticks(delay);
        self.settle(|st, now, exits| {
            exits.extend(st.release(token, now, delay, false)?);
            self.requeued(st, token);
            Ok(())
        })
    }

    /// Takes a lease back: the job is ready again without spending the attempt, and the lease is stale.
    pub(crate) fn revoke(&self, token: Token) -> Result<(), LeaseLost> {
        self.settle(|st, now, exits| {
            exits.extend(st.release(token, now, 0, true)?);
            self.requeued(st, token);
            Ok(())
        })
    }

    /// Records that the job of `token` is back in the queue, if it is (not dead-lettered instead).
    fn requeued(&self, st: &State, token: Token) {
        if st.job_id(token.slot) == Some(token.id) {
            self.record(|| Change::Requeue(st, token.slot));
        }
    }

    pub(crate) fn extend(&self, token: Token, by: Duration) -> Result<Tick, LeaseLost> {
        let by = ticks(by);
        // Nothing of an extension is recorded (a lease out at a crash lapses on recovery whatever its
        // deadline), so it waits for no sync.
        let unsynced = |st: &mut State, now, exits: &mut Vec<Exit>| {
            let deadline = st.extend(token, now, by)?;
            // An extension to "now" lapses at once.
            st.advance(now, exits);
            Ok(deadline)
        };
        self.settle_with(unsynced, false)
    }

    /// Runs one lease operation at the current time, after processing what fell due, and waits for a
    /// durable store's sync. The operation pushes the jobs it dead-letters to `exits`.
    pub(crate) fn settle<V>(
        &self,
        op: impl FnOnce(&mut State, Tick, &mut Vec<Exit>) -> Result<V, LeaseLost>,
    ) -> Result<V, LeaseLost> {
        self.settle_with(op, true)
    }

    /// [`settle`](Inner::settle), waiting for the sync or not.
    fn settle_with<V>(
        &self,
        op: impl FnOnce(&mut State, Tick, &mut Vec<Exit>) -> Result<V, LeaseLost>,
        sync: bool,
    ) -> Result<V, LeaseLost> {
        self.check().map_err(LeaseLost::Store)?;
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut exits = Vec::new();
        let mut core = self.core.lock();
        let now = core.st.catch_up(reading);
        core.st.advance(now, &mut exits);
        let result = op(&mut core.st, now, &mut exits);
        self.bury_all(&mut core, exits, &mut out);
        self.finish(core, out);
        let value = result?;
        if sync {
            self.commit().map_err(LeaseLost::Store)?;
        }
        Ok(value)
    }

    /// The backoff that nacks without an explicit delay use.
    pub(crate) fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// A new store from checked parts, registered with its clock.
    pub(crate) fn new(parts: Parts<T>) -> Arc<Inner<T>> {
        let mut st = State::new(parts.cfg);
        if parts.observer.is_some() {
            st.observe_events();
        }
        let manual = parts.clock.is_manual();
        let plain = parts.capacity.is_none() && parts.ttl.is_none() && parts.durable.is_none();
        if manual || !parts.alarms.is_empty() || parts.durable.is_some() {
            st.owe_always(); // see `finish_extras`
        }
        let inner = Arc::new(Inner {
            schedules: crate::schedule::Schedules::new(),
            core: Padded(Mutex::new(Core {
                st,
                raised: vec![false; parts.alarms.len()],
                jobs: Vec::new(),
                dead: VecDeque::new(),
                spare: Vec::new(),
            })),
            consumers: Condvar::new(),
            producers: Condvar::new(),
            clock: parts.clock,
            backoff: parts.backoff,
            sink: parts.sink,
            observer: parts.observer,
            alarms: parts.alarms,
            capacity: parts.capacity,
            overflow: parts.overflow,
            ttl: parts.ttl,
            durable: parts.durable,
            ready_hint: Padded(AtomicUsize::new(0)),
            catcher: Catcher::new(parts.panic_hook),
            watchers: Mutex::new(Vec::new()),
            watched: AtomicBool::new(false),
            quiet: AtomicU64::new(NEVER),
            manual,
            plain,
        });
        let listener: Arc<dyn Listener> = inner.clone();
        inner.clock.register(Arc::downgrade(&listener));
        inner
    }
}

/// [`Core::job`] on the payloads alone (for a caller that holds the state apart).
fn job_in<T>(jobs: &[Option<Arc<T>>], slot: u32) -> Option<&Arc<T>> {
    let job = jobs.get(slot as usize).and_then(Option::as_ref);
    debug_assert!(job.is_some(), "a live slot holds its job");
    job
}

/// The slab shrank after a burst: the payloads' slots beyond it are free (`None`), and go too.
#[cold]
#[inline(never)]
fn shrink_jobs<T>(core: &mut Core<T>) {
    let slots = core.st.slot_count();
    core.jobs.truncate(slots);
    fit(&mut core.jobs);
}

// The durable store's calls, out of the memory store's hot path: without one, each costs a test of
// `Inner::durable` and a branch not taken.

#[cold]
#[inline(never)]
fn commit_cold<T>(durable: &dyn Durable<T>) -> Result<(), StoreError> {
    durable.commit()
}

#[cold]
#[inline(never)]
fn check_cold<T>(durable: &dyn Durable<T>) -> Result<(), StoreError> {
    durable.check()
}

#[cold]
#[inline(never)]
fn record_cold<T>(durable: &dyn Durable<T>, change: Change<'_>) {
    durable.record(change);
}

#[cold]
#[inline(never)]
fn after_cold<'a, T>(durable: &'a dyn Durable<T>, core: &Core<T>) -> Option<Pending<'a>> {
    durable.after(core)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Lease, Queue, TestClock};

    #[test]
    fn an_acked_jobs_allocation_is_reused_when_it_has_nothing_to_drop() {
        let queue = Queue::new();
        queue.push(1u64).unwrap();
        let lease = queue.try_lease().unwrap();
        let first: *const u64 = &*lease;
        lease.ack().unwrap();
        // An allocation of the same size, which a freed one would be handed to.
        let other = Box::new([0u64; 3]);
        queue.push(2u64).unwrap();
        let lease = queue.try_lease().unwrap();
        assert_eq!(&*lease as *const u64, first, "the allocation was kept for the next push");
        drop(other);
        assert_eq!(*lease, 2);
    }

    // The lean push, `try_lease` and `ack_and_try_lease` leave an operation that finds a timed event due
    // to the general path, which processes it first. On a test clock events are processed as it advances;
    // `advance_unheard` moves it as the system clock moves, unannounced.

    /// A queue on a test clock with job 1 leased (the lease is returned) and its lapse due, unannounced.
    fn a_lapse_due() -> (Queue<u32>, Lease<u32>) {
        let clock = TestClock::new();
        let queue = Queue::builder().clock(clock.clone()).build().unwrap();
        queue.push(1).unwrap();
        let lapsing = queue.try_lease().unwrap();
        clock.advance_unheard(Duration::from_secs(31));
        (queue, lapsing)
    }

    #[test]
    fn a_push_that_finds_a_lapse_due_processes_it_first() {
        let (queue, _lapsing) = a_lapse_due();
        queue.push(2).unwrap();
        let again = queue.try_lease().unwrap();
        assert_eq!((*again, again.attempt()), (1, 2), "redelivered ahead of the job pushed after its lapse");
    }

    #[test]
    fn a_try_lease_that_finds_a_lapse_due_takes_the_lapsed_job() {
        let (queue, lapsing) = a_lapse_due();
        let again = queue.try_lease().expect("the lapse is processed before the lease");
        assert_eq!((*again, again.attempt()), (1, 2));
        assert!(lapsing.ack().is_err(), "the lapsed lease is fenced");
    }

    #[test]
    fn an_ack_and_try_lease_that_finds_a_lapse_due_takes_the_lapsed_job() {
        let clock = TestClock::new();
        let queue = Queue::builder().clock(clock.clone()).build().unwrap();
        queue.push_batch([1u32, 2]);
        let lapsing = queue.try_lease().unwrap(); // deadline 30 s
        clock.advance_unheard(Duration::from_secs(10));
        let second = queue.try_lease().unwrap(); // deadline 40 s
        clock.advance_unheard(Duration::from_secs(25));
        let next = second.ack_and_try_lease().unwrap().expect("job 1's lapse is processed first");
        assert_eq!((*next, next.attempt(), queue.stats().acked), (1, 2, 1));
        drop(lapsing);
    }

    #[test]
    fn a_job_a_stale_lease_still_reads_is_not_reused() {
        let clock = TestClock::new();
        let queue = Queue::builder().clock(clock.clone()).build().unwrap();
        queue.push(1u64).unwrap();
        let stale = queue.try_lease().unwrap();
        clock.advance(Duration::from_secs(31)); // lapses: redelivered while `stale` still holds the job
        queue.try_lease().unwrap().ack().unwrap();
        queue.push(2u64).unwrap();
        let lease = queue.try_lease().unwrap();
        assert_eq!((*stale, *lease), (1, 2), "the stale lease's job was not overwritten");
        assert_ne!(&*stale as *const u64, &*lease as *const u64);
    }
}
