//! `Queue<T>`, its builder, and the locked core that every operation goes through.

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::clock::{address, ticks, Listener, Tick, NEVER};
use crate::lease::{Lease, NackOutcome};
use crate::panics::{Catcher, PanicHook};
use crate::state::{Config, Exit, Grant, Nacked, State, Token};
use crate::{
    Alarm, AlarmEvent, AlarmMetric, Backoff, Clock, DeadLetter, DeadLetterSink, Event, Failure, FailureKind,
    JobId, LeaseError, LeaseLost, LeaseTimeoutError, Overflow, PanicSite, PushError, PushOptions,
    PushTimeoutError, Pushed, QueueBuilder, Stats, TryLeaseError, TryPushError,
};

/// A job queue with leases, retries, dead letters and an injectable clock.
///
/// `Queue` is a cheap handle: clones share one queue. Producers [`push`](Queue::push) jobs and return at
/// once; competing consumers [`lease`](Queue::lease) them. A leased job is hidden from other consumers
/// until its lease is settled ([`Lease::ack`], [`Lease::nack`], [`Lease::reject`], [`Lease::release`]) or
/// its deadline passes, when it is delivered again (at-least-once). See the [crate docs](crate) for the
/// whole contract.
///
/// Jobs must be `Send + Sync`: a job is shared (`Arc<T>`) between the queue and its lease, so that a lapsed
/// lease can be redelivered while a stalled worker still holds the old one. Wrap a job that is only `Send`
/// in a `Mutex`.
///
/// # Examples
///
/// ```
/// use leasequeue::Queue;
///
/// let queue = Queue::new();
/// queue.push("send welcome email to ada@example.com").unwrap();
///
/// let lease = queue.lease().unwrap();
/// assert_eq!(lease.attempt(), 1);
/// println!("working on {}", *lease);
/// lease.ack().unwrap();
/// assert!(queue.is_empty());
/// ```
pub struct Queue<T> {
    pub(crate) inner: Arc<Inner<T>>,
}

pub(crate) struct Inner<T> {
    /// The state, written under the lock by every operation: on cache lines of its own, so that reading
    /// the settings below does not pull a line another core is writing.
    core: Padded<Mutex<Core<T>>>,
    consumers: Condvar,
    producers: Condvar,
    pub(crate) clock: Clock,
    backoff: Backoff,
    sink: Option<Box<dyn DeadLetterSink<T>>>,
    observer: Option<Observer>,
    alarms: Vec<(Alarm, AlarmHook)>,
    capacity: Option<usize>,
    overflow: Overflow,
    /// The queue-wide time to live.
    ttl: Option<Duration>,
    /// The number of ready jobs as of the last operation: read without the lock by consumers that spin
    /// a little before they block.
    ready_hint: Padded<AtomicUsize>,
    /// Runs user code: catches, counts and reports its panics.
    pub(crate) catcher: Catcher,
    /// Told of every push (see [`Backlog`]); `watched` says whether there is any, without the lock.
    watchers: Mutex<Vec<Weak<dyn Backlog>>>,
    watched: AtomicBool,
    /// Whether the clock is a test clock (read on every operation; the clock's kind never changes).
    manual: bool,
    /// On an auto-advancing test clock, as of the last operation: [`BUSY`] while a job is ready or leased,
    /// else the tick of the next timed event (see [`Listener::quiet_until`]).
    quiet: AtomicU64,
}

/// `Inner::quiet` while the queue has work in flight. Tick 0 is never an idle queue's next event (events
/// lie after the clock's epoch).
const BUSY: Tick = 0;

/// A value alone on its cache lines (two, for CPUs that fetch lines in pairs), against false sharing.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Rounds a consumer spins (then yields) waiting for a job before it blocks: parking and waking a thread
/// costs two system calls, far more than a short spin when jobs flow steadily.
const SPIN_ROUNDS: u32 = 6;
const YIELD_ROUNDS: u32 = 4;

struct Core<T> {
    st: State,
    /// Which alarms are raised, in the order of `Inner::alarms`.
    raised: Vec<bool>,
    /// Payloads, indexed by slot.
    jobs: Vec<Option<Arc<T>>>,
    /// The built-in dead-letter store.
    dead: VecDeque<DeadLetter<T>>,
}

/// Dead letters, events and alarms to hand out once the lock is released. Nearly every operation has
/// none, so the lists are only allocated for the first item: an empty outbox is a null pointer to create,
/// test and drop.
struct Outbox<T>(Option<Box<Mail<T>>>);

struct Mail<T> {
    dead: Vec<DeadLetter<T>>,
    events: Vec<Event>,
    alarms: Vec<(usize, AlarmEvent)>,
}

impl<T> Outbox<T> {
    fn new() -> Self {
        Outbox(None)
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The lists, to add to.
    fn mail(&mut self) -> &mut Mail<T> {
        self.0.get_or_insert_with(|| {
            Box::new(Mail { dead: Vec::new(), events: Vec::new(), alarms: Vec::new() })
        })
    }
}

/// Something that wants to hear of every push: a scaling worker pool, which starts a worker when the
/// backlog builds up while every worker is busy.
pub(crate) trait Backlog: Send + Sync {
    fn on_push(self: Arc<Self>);
}

pub(crate) type Observer = Box<dyn Fn(&Event) + Send + Sync>;
pub(crate) type AlarmHook = Box<dyn Fn(&AlarmEvent) + Send + Sync>;

/// How long a blocking call may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    No,
    /// Until this tick; [`NEVER`] waits forever.
    Until(Tick),
}

/// Why a push did not take its job. Each public push maps it to its own error, exhaustively.
pub(crate) enum PushFail {
    Closed,
    /// The overflow policy ([`Overflow::RejectNew`]) refused it at once.
    Rejected,
    /// No room came within the wait (none, for a `try_` push).
    NoRoom,
}

/// Why a lease call returned no lease. Each public lease maps it to its own error, exhaustively.
pub(crate) enum LeaseFail {
    /// The queue is closed and drained.
    Closed,
    /// No job became ready within the wait (none, for a `try_` lease).
    NoJob,
    /// The caller's stop flag was raised.
    Stopped,
}

impl LeaseFail {
    /// As a `try_` lease reports it (no wait, and no stop flag: `Stopped` cannot happen, and is "empty").
    fn into_try(self) -> TryLeaseError {
        match self {
            LeaseFail::Closed => TryLeaseError::Closed,
            LeaseFail::NoJob | LeaseFail::Stopped => TryLeaseError::Empty,
        }
    }

    /// As a lease with a timeout reports it (no stop flag: `Stopped` cannot happen, and is a timeout).
    fn into_timeout(self) -> LeaseTimeoutError {
        match self {
            LeaseFail::Closed => LeaseTimeoutError::Closed,
            LeaseFail::NoJob | LeaseFail::Stopped => LeaseTimeoutError::Timeout,
        }
    }
}

/// How a consumer leases: how long it waits, the lease's visibility timeout if not the queue's, and a
/// flag that interrupts the wait (see [`Inner::interrupt`]).
pub(crate) struct LeaseParams<'a> {
    pub wait: Wait,
    pub visibility: Option<Tick>,
    pub stop: Option<&'a AtomicBool>,
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// A builder to configure a queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue: leasequeue::Queue<String> = leasequeue::Queue::builder()
    ///     .visibility_timeout(Duration::from_secs(60))
    ///     .max_attempts(5)
    ///     .capacity(10_000)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(queue.capacity(), Some(10_000));
    /// ```
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder::new()
    }

    /// A queue with every default (see [`QueueBuilder`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u64>::new();
    /// assert_eq!(queue.capacity(), None);
    /// ```
    pub fn new() -> Self {
        QueueBuilder::new().build_unchecked()
    }

    // ----- push -----

    /// Pushes a job, ready at once, and returns its id. Blocks while a bounded queue is full (under the
    /// default [`Overflow::Block`]).
    ///
    /// # Errors
    ///
    /// The queue is closed, or full under [`Overflow::RejectNew`]; the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let id = queue.push("thumbnail 42").unwrap();
    /// assert_eq!(queue.try_lease().unwrap().id(), id);
    /// ```
    pub fn push(&self, job: T) -> Result<JobId, PushError<T>> {
        self.push_with(job, PushOptions::new()).map(Pushed::id)
    }

    /// Pushes a job with options: a delay or a ready time, a priority, a group, a dedup key, a time to
    /// live (see [`PushOptions`]). Blocks while a bounded queue is full (under the default
    /// [`Overflow::Block`]). Returns [`Pushed::Duplicate`] when the dedup key is already reserved: the job
    /// is then dropped, not enqueued.
    ///
    /// # Errors
    ///
    /// The queue is closed, or full under [`Overflow::RejectNew`]; the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::new();
    /// queue.push_with(1, leasequeue::PushOptions::new().delay(Duration::from_secs(10))).unwrap();
    /// assert!(queue.try_lease().is_err());
    /// ```
    pub fn push_with(&self, job: T, options: PushOptions) -> Result<Pushed, PushError<T>> {
        self.inner.push(job, &options, Wait::Until(NEVER)).map_err(|(job, fail)| match fail {
            PushFail::Closed => PushError::Closed(job),
            // A wait that never ends ends only when there is room: `NoRoom` is the policy's refusal too.
            PushFail::Rejected | PushFail::NoRoom => PushError::Full(job),
        })
    }

    /// Pushes a job if there is room now; never blocks.
    ///
    /// # Errors
    ///
    /// The queue is full or closed; the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::builder().capacity(1).build().unwrap();
    /// queue.try_push("a").unwrap();
    /// assert!(queue.try_push("b").unwrap_err().is_full());
    /// ```
    pub fn try_push(&self, job: T) -> Result<JobId, TryPushError<T>> {
        self.try_push_with(job, PushOptions::new()).map(Pushed::id)
    }

    /// Pushes a job with options (see [`push_with`](Queue::push_with)) if there is room now; never
    /// blocks.
    ///
    /// # Errors
    ///
    /// The queue is full or closed; the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::new();
    /// let opts = leasequeue::PushOptions::new().delay(Duration::from_secs(1));
    /// queue.try_push_with("later", opts).unwrap();
    /// ```
    pub fn try_push_with(&self, job: T, options: PushOptions) -> Result<Pushed, TryPushError<T>> {
        self.inner.push(job, &options, Wait::No).map_err(|(job, fail)| match fail {
            PushFail::Closed => TryPushError::Closed(job),
            PushFail::Rejected | PushFail::NoRoom => TryPushError::Full(job),
        })
    }

    /// Pushes a job, waiting up to `timeout` (on the queue's clock) for room in a bounded queue.
    /// `Duration::MAX` waits forever.
    ///
    /// # Errors
    ///
    /// The wait timed out or the queue is closed; the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::builder().capacity(1).build().unwrap();
    /// queue.push(1).unwrap();
    /// let err = queue.push_timeout(2, Duration::from_millis(1)).unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    pub fn push_timeout(&self, job: T, timeout: Duration) -> Result<JobId, PushTimeoutError<T>> {
        let until = self.inner.clock.tick().saturating_add(ticks(timeout));
        self.push_until(job, until)
    }

    /// Pushes a job, waiting until `deadline` (on the queue's clock) for room in a bounded queue.
    ///
    /// # Errors
    ///
    /// The deadline passed or the queue is closed; the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let deadline = queue.clock().now();
    /// queue.push_deadline("a", deadline).unwrap(); // room now: no wait
    /// ```
    pub fn push_deadline(&self, job: T, deadline: Instant) -> Result<JobId, PushTimeoutError<T>> {
        self.push_until(job, self.inner.clock.tick_of(deadline))
    }

    fn push_until(&self, job: T, until: Tick) -> Result<JobId, PushTimeoutError<T>> {
        match self.inner.push(job, &PushOptions::new(), Wait::Until(until)) {
            Ok(pushed) => Ok(pushed.id()),
            Err((job, PushFail::Closed)) => Err(PushTimeoutError::Closed(job)),
            Err((job, PushFail::Rejected)) => Err(PushTimeoutError::Full(job)),
            Err((job, PushFail::NoRoom)) => Err(PushTimeoutError::Timeout(job)),
        }
    }

    // ----- lease -----

    /// Leases the next ready job, blocking until one is ready (a long poll).
    ///
    /// Wakes when a job is pushed, when a delayed job or a lapsed lease comes due, and when a
    /// [`TestClock`](crate::TestClock) the queue runs on is advanced.
    ///
    /// # Errors
    ///
    /// The queue is closed and holds no job (ready, delayed or leased) any more.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let producer = queue.clone();
    /// std::thread::spawn(move || producer.push(7).unwrap());
    /// let lease = queue.lease().unwrap();
    /// assert_eq!(*lease, 7);
    /// lease.ack().unwrap();
    /// ```
    pub fn lease(&self) -> Result<Lease<T>, LeaseError> {
        loop {
            match self.inner.lease(Wait::Until(NEVER)) {
                Ok(lease) => return Ok(lease),
                Err(LeaseFail::Closed) => return Err(LeaseError::Closed),
                // A wait that never ends, with no stop flag, ends only with a job or a close: look again.
                Err(LeaseFail::NoJob | LeaseFail::Stopped) => continue,
            }
        }
    }

    /// Leases the next ready job if there is one now; never blocks.
    ///
    /// # Errors
    ///
    /// No job is ready, or the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// assert!(queue.try_lease().unwrap_err().is_empty());
    /// ```
    pub fn try_lease(&self) -> Result<Lease<T>, TryLeaseError> {
        self.inner.lease(Wait::No).map_err(LeaseFail::into_try)
    }

    /// Leases the next ready job, waiting up to `timeout` on the queue's clock. `Duration::MAX` waits
    /// forever.
    ///
    /// # Errors
    ///
    /// No job became ready in time, or the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::<u8>::new();
    /// assert!(queue.lease_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
    /// ```
    pub fn lease_timeout(&self, timeout: Duration) -> Result<Lease<T>, LeaseTimeoutError> {
        let until = self.inner.clock.tick().saturating_add(ticks(timeout));
        self.lease_until(until)
    }

    /// Leases the next ready job, waiting until `deadline` on the queue's clock.
    ///
    /// # Errors
    ///
    /// No job became ready in time, or the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// let now = queue.clock().now();
    /// assert!(queue.lease_deadline(now).unwrap_err().is_timeout());
    /// ```
    pub fn lease_deadline(&self, deadline: Instant) -> Result<Lease<T>, LeaseTimeoutError> {
        self.lease_until(self.inner.clock.tick_of(deadline))
    }

    fn lease_until(&self, until: Tick) -> Result<Lease<T>, LeaseTimeoutError> {
        self.inner.lease(Wait::Until(until)).map_err(LeaseFail::into_timeout)
    }

    // ----- batches -----

    /// Pushes many jobs, ready at once, under one lock; never blocks. Each job has its own result: a
    /// bounded queue that fills up part way hands the rest back as [`TryPushError::Full`] (under
    /// [`Overflow::DropOldest`] it makes room as for a single push), a closed queue hands every job back.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::builder().capacity(2).build().unwrap();
    /// let results = queue.push_batch(["a", "b", "c"]);
    /// assert!(results[0].is_ok() && results[1].is_ok());
    /// assert_eq!(results[2].clone().unwrap_err().into_inner(), "c");
    /// ```
    pub fn push_batch(&self, jobs: impl IntoIterator<Item = T>) -> Vec<Result<JobId, TryPushError<T>>> {
        self.inner.push_many(jobs)
    }

    /// Leases up to `max` ready jobs under one lock, waiting up to `timeout` (on the queue's clock) for
    /// the first; the others are taken only if they are ready now. `Duration::MAX` waits forever.
    ///
    /// # Errors
    ///
    /// No job became ready in time, or the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::new();
    /// queue.push_batch(0..10);
    /// let leases = queue.lease_batch(4, Duration::from_secs(1)).unwrap();
    /// assert_eq!(leases.len(), 4);
    /// queue.ack_batch(leases);
    /// ```
    pub fn lease_batch(&self, max: usize, timeout: Duration) -> Result<Vec<Lease<T>>, LeaseTimeoutError> {
        let until = self.inner.clock.tick().saturating_add(ticks(timeout));
        self.inner.lease_many(Wait::Until(until), max).map_err(LeaseFail::into_timeout)
    }

    /// Leases up to `max` jobs that are ready now; never blocks.
    ///
    /// # Errors
    ///
    /// No job is ready, or the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push_batch([1, 2]);
    /// assert_eq!(queue.try_lease_batch(10).unwrap().len(), 2);
    /// ```
    pub fn try_lease_batch(&self, max: usize) -> Result<Vec<Lease<T>>, TryLeaseError> {
        self.inner.lease_many(Wait::No, max).map_err(LeaseFail::into_try)
    }

    /// Acks many leases under one lock. Each has its own result, as [`Lease::ack`]. Leases of another
    /// queue are acked through their own queue.
    ///
    /// # Panics
    ///
    /// If `leases`' iterator panics, the leases it yielded before are acked, then the panic is resumed.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push_batch([1, 2, 3]);
    /// let leases = queue.try_lease_batch(3).unwrap();
    /// assert!(queue.ack_batch(leases).iter().all(Result::is_ok));
    /// assert!(queue.is_empty());
    /// ```
    pub fn ack_batch(&self, leases: impl IntoIterator<Item = Lease<T>>) -> Vec<Result<(), LeaseLost>> {
        self.batch(leases, Lease::ack, |_| (), |st, token, (), _, _| st.ack(token).map(|()| ((), true)))
    }

    /// Nacks many leases under one lock, each retried after the queue's backoff or dead-lettered after
    /// its last attempt. Each has its own result, as [`Lease::nack`]. Leases of another queue are nacked
    /// through their own queue.
    ///
    /// # Panics
    ///
    /// If `leases`' iterator panics, the leases it yielded before are nacked, then the panic is resumed.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push_batch([1, 2]);
    /// let leases = queue.try_lease_batch(2).unwrap();
    /// assert!(queue.nack_batch(leases).iter().all(Result::is_ok));
    /// assert_eq!(queue.stats().delayed, 2);
    /// ```
    pub fn nack_batch(
        &self,
        leases: impl IntoIterator<Item = Lease<T>>,
    ) -> Vec<Result<NackOutcome, LeaseLost>> {
        let clock = &self.inner.clock;
        self.batch(leases, Lease::nack, Lease::backoff_delay, |st, token, delay, now, exits| {
            Ok(match st.nack(token, now, ticks(delay), FailureKind::Nacked, None)? {
                Nacked::Retry { at } => (NackOutcome::Retrying { at: clock.instant(at) }, false),
                Nacked::Dead(exit) => {
                    exits.push(exit);
                    (NackOutcome::DeadLettered, false)
                }
            })
        })
    }

    /// Settles leases in one batch: those of this queue under one lock with `op` (given what `prepare`
    /// computed from each lease outside the lock), the others one by one with `single`.
    fn batch<V, P>(
        &self,
        leases: impl IntoIterator<Item = Lease<T>>,
        single: impl Fn(Lease<T>) -> Result<V, LeaseLost>,
        prepare: impl Fn(&Lease<T>) -> P,
        op: impl FnMut(&mut State, Token, P, Tick, &mut Vec<Exit>) -> Result<(V, bool), LeaseLost>,
    ) -> Vec<Result<V, LeaseLost>> {
        let mut results: Vec<Option<Result<V, LeaseLost>>> = Vec::new();
        let mut positions = Vec::new();
        let mut mine = Vec::new();
        // The caller's iterator may panic part way: the leases it yielded before are settled all the same
        // (they were taken apart, and would otherwise wait out their visibility timeout), then the panic
        // goes on to the caller, whose own code it is.
        let collected = panic::catch_unwind(AssertUnwindSafe(|| {
            for lease in leases {
                if lease.is_of(self) {
                    positions.push(results.len());
                    let prepared = prepare(&lease);
                    mine.push((lease.disarm(), prepared));
                    results.push(None);
                } else {
                    results.push(Some(single(lease)));
                }
            }
        }));
        for (index, result) in positions.into_iter().zip(self.inner.settle_many(mine, op)) {
            results[index] = Some(result);
        }
        if let Err(payload) = collected {
            panic::resume_unwind(payload);
        }
        results.into_iter().map(|r| r.unwrap_or(Err(LeaseLost::Gone))).collect()
    }

    // ----- lifecycle and inspection -----

    /// Closes the queue: pushes fail from now on (handing the job back), while leasing goes on until no job
    /// is ready, delayed or leased; then blocked and later `lease` calls return a closed error. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.close();
    /// assert!(queue.push(2).is_err());
    /// queue.lease().unwrap().ack().unwrap(); // still drains
    /// assert!(queue.lease().is_err());
    /// ```
    pub fn close(&self) {
        let mut core = self.inner.core.lock();
        core.st.closed = true;
        self.inner.producers.notify_all();
        self.inner.consumers.notify_all();
    }

    /// Pauses leasing: no job is handed out until [`resume`](Queue::resume) (blocked consumers keep
    /// waiting, `try_lease` finds nothing), while pushes are still accepted and time goes on (delayed jobs
    /// come due, leases already out may lapse). Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.pause();
    /// assert!(queue.try_lease().is_err());
    /// queue.resume();
    /// assert_eq!(*queue.try_lease().unwrap(), 1);
    /// ```
    pub fn pause(&self) {
        self.inner.core.lock().st.paused = true;
    }

    /// Resumes leasing after [`pause`](Queue::pause), waking blocked consumers.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// queue.pause();
    /// queue.resume();
    /// assert!(!queue.is_paused());
    /// ```
    pub fn resume(&self) {
        let mut core = self.inner.core.lock();
        core.st.paused = false;
        self.inner.consumers.notify_all();
    }

    /// Whether leasing is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// queue.pause();
    /// assert!(queue.is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.inner.core.lock().st.paused
    }

    /// Removes every live job (ready, delayed, waiting and leased) without dead-lettering them, and
    /// returns how many. Leases outstanding on purged jobs are fenced: their outcomes and `extend` get
    /// [`LeaseLost::Gone`] and change nothing. Dedup reservations stay until their window ends; the
    /// built-in dead-letter store is left alone (see [`drain_dead_letters`](Queue::drain_dead_letters)).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.push(2).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// assert_eq!(queue.purge(), 2);
    /// assert!(queue.is_empty());
    /// assert_eq!(lease.ack(), Err(leasequeue::LeaseLost::Gone));
    /// ```
    pub fn purge(&self) -> usize {
        let removed: Vec<Option<Arc<T>>> = self.inner.observe(|core| {
            let now = core.st.now();
            let slots = core.st.purge(now);
            slots.iter().map(|&slot| core.jobs[slot as usize].take()).collect()
        });
        let purged = removed.len();
        self.inner.catcher.dispose(removed); // outside the lock
        purged
    }

    /// Whether [`close`](Queue::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// queue.close();
    /// assert!(queue.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.core.lock().st.closed
    }

    /// The number of live jobs: ready, delayed and leased.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// assert_eq!(queue.len(), 1); // leased jobs count
    /// lease.ack().unwrap();
    /// assert_eq!(queue.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.observe(|core| core.st.live())
    }

    /// Whether the queue holds no live job.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::Queue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most live jobs the queue holds, or `None` if unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::Queue::<u8>::builder().capacity(8).build().unwrap().capacity(), Some(8));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity
    }

    /// Counts and counters, exact at the moment they are read (lapses and delays that fell due are
    /// processed first).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.push(2).unwrap();
    /// queue.try_lease().unwrap().ack().unwrap();
    /// let stats = queue.stats();
    /// assert_eq!((stats.pushed, stats.acked, stats.ready), (2, 1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.observe(|core| {
            let counts = core.st.counts();
            let now = core.st.now();
            let c = core.st.counters;
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
                consumers_waiting: core.st.waiting_consumers,
                producers_waiting: core.st.waiting_producers,
                panics: self.inner.catcher.count(),
            }
        })
    }

    /// The queue's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// assert!(!queue.clock().is_manual());
    /// ```
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Copies of the dead letters in the built-in store, oldest first. The store holds the dead letters of
    /// a queue built without a sink, and those a sink handed back.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push("bad").unwrap();
    /// queue.try_lease().unwrap().reject("malformed").unwrap();
    /// assert_eq!(queue.dead_letters().len(), 1);
    /// assert_eq!(queue.stats().dead, 1); // still stored
    /// ```
    pub fn dead_letters(&self) -> Vec<DeadLetter<T>> {
        self.inner.core.lock().dead.iter().cloned().collect()
    }

    /// Takes every dead letter out of the built-in store, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push("bad").unwrap();
    /// queue.try_lease().unwrap().reject("malformed").unwrap();
    /// assert_eq!(queue.drain_dead_letters().len(), 1);
    /// assert_eq!(queue.stats().dead, 0);
    /// ```
    pub fn drain_dead_letters(&self) -> Vec<DeadLetter<T>> {
        self.inner.observe(|core| core.dead.drain(..).collect())
    }
}

impl<T: Send + Sync + 'static> Default for Queue<T> {
    fn default() -> Self {
        Queue::new()
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { inner: Arc::clone(&self.inner) }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.inner.core.lock();
        let counts = core.st.counts();
        f.debug_struct("Queue")
            .field("ready", &counts.ready)
            .field("delayed", &(counts.delayed + counts.waiting))
            .field("leased", &counts.leased)
            .field("dead", &core.dead.len())
            .field("capacity", &self.inner.capacity)
            .field("closed", &core.st.closed)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Inner<T> {
    /// The last handle is gone: the jobs and dead letters still held drop here, each on its own, so that
    /// one job's panicking `Drop` neither stops the others' nor reaches whoever dropped the queue.
    fn drop(&mut self) {
        let core = self.core.0.get_mut();
        for job in core.jobs.drain(..) {
            self.catcher.dispose(job);
        }
        for dead in core.dead.drain(..) {
            self.catcher.dispose(dead);
        }
    }
}

// ----- the locked core -----

impl<T: Send + Sync + 'static> Inner<T> {
    /// Runs `f` on the core after processing what fell due, then wakes waiters and delivers dead letters.
    fn observe<R>(&self, f: impl FnOnce(&mut Core<T>) -> R) -> R {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut core = self.core.lock();
        let now = core.st.observe(reading);
        self.advance(&mut core, now, &mut out);
        let result = f(&mut core);
        self.finish(core, out);
        result
    }

    fn advance(&self, core: &mut Core<T>, now: Tick, out: &mut Outbox<T>) {
        let mut exits = Vec::new();
        core.st.advance(now, &mut exits);
        self.bury_all(core, exits, out);
    }

    fn bury_all(&self, core: &mut Core<T>, exits: Vec<Exit>, out: &mut Outbox<T>) {
        if !exits.is_empty() {
            for exit in exits {
                self.bury(core, exit, out);
            }
        }
    }

    /// Turns a job that left by dead-lettering into a dead letter for the sink or the built-in store.
    fn bury(&self, core: &mut Core<T>, exit: Exit, out: &mut Outbox<T>) {
        let Some(job) = core.jobs[exit.slot as usize].take() else {
            return; // unreachable: a live slot always holds its job
        };
        let dead = DeadLetter {
            job,
            id: JobId::from_u64(exit.id),
            reason: exit.reason,
            attempts: exit.attempts,
            history: exit
                .history
                .into_iter()
                .map(|r| Failure {
                    attempt: r.attempt,
                    at: self.clock.instant(r.at),
                    kind: r.kind,
                    message: r.message,
                })
                .collect(),
            pushed_at: self.clock.instant(exit.pushed_at),
            dead_lettered_at: self.clock.instant(exit.at),
        };
        if self.sink.is_some() {
            out.mail().dead.push(dead);
        } else {
            core.dead.push_back(dead);
        }
    }

    /// Wakes the threads owed a wake-up, releases the lock, then hands events to the observer and dead
    /// letters to the sink.
    fn finish(&self, mut core: MutexGuard<'_, Core<T>>, mut out: Outbox<T>) {
        // Checked here rather than in the callees: nearly every operation has nothing to hand out.
        if !core.st.events.is_empty() {
            self.collect_events(&mut core.st, &mut out);
        }
        if !self.alarms.is_empty() {
            self.check_alarms(&mut core, &mut out);
        }
        self.wake(&mut core.st);
        self.ready_hint.store(core.st.counts().ready, Ordering::Relaxed);
        if core.jobs.len() > core.st.slot_count() {
            // The slab shrank after a burst: the payloads' slots beyond it are free (`None`).
            let slots = core.st.slot_count();
            core.jobs.truncate(slots);
            if core.jobs.capacity() > 4 * slots + 64 {
                core.jobs.shrink_to(2 * slots);
            }
        }
        // On a test clock (auto-advance may be turned on at any time), keep the hint current.
        let went_quiet = self.manual && self.publish_quiet(&mut core.st) && self.clock.auto_advances();
        drop(core);
        if went_quiet {
            // A consumer of another queue on this clock may be waiting for this one to go quiet.
            self.clock.nudge_others(address(self));
        }
        if !out.is_empty() {
            self.deliver(out);
        }
    }

    /// Publishes whether the queue is quiet and its next event (for auto-advance on a shared test clock);
    /// returns whether it just went quiet.
    fn publish_quiet(&self, st: &mut State) -> bool {
        let counts = st.counts();
        let quiet = if counts.ready > 0 || counts.leased > 0 { BUSY } else { st.next_event().max(BUSY + 1) };
        self.quiet.swap(quiet, Ordering::AcqRel) == BUSY && quiet != BUSY
    }

    fn wake(&self, st: &mut State) {
        let wakes = mem::take(&mut st.wakes);
        if st.waiting_consumers > 0 {
            let idle = || {
                let counts = st.counts();
                counts.ready == 0 && counts.leased == 0
            };
            // On an auto-advancing test clock, an idle queue (a job just acked, nacked, released...) needs a
            // blocked consumer to move the clock on.
            let auto_idle = self.clock.auto_advances() && idle();
            if wakes.rescheduled || auto_idle || (st.closed && st.live() == 0) {
                self.consumers.notify_all();
            } else {
                for _ in 0..(wakes.ready as usize).min(st.waiting_consumers) {
                    self.consumers.notify_one();
                }
            }
        }
        if st.waiting_producers > 0 {
            for _ in 0..(wakes.freed as usize).min(st.waiting_producers) {
                self.producers.notify_one();
            }
        }
    }

    fn check_alarms(&self, core: &mut Core<T>, out: &mut Outbox<T>) {
        let now = core.st.now();
        for (i, (alarm, _)) in self.alarms.iter().enumerate() {
            let value = match alarm.metric {
                AlarmMetric::ReadyDepth => core.st.counts().ready as u64,
                AlarmMetric::DeadLetters => core.dead.len() as u64,
                AlarmMetric::OldestReadyAge => core.st.oldest_ready_since().map_or(0, |since| now - since),
            };
            if let Some(raised) = alarm.crossing(core.raised[i], value) {
                core.raised[i] = raised;
                out.mail().alarms.push((i, AlarmEvent { metric: alarm.metric, raised, value }));
            }
        }
    }

    fn collect_events(&self, st: &mut State, out: &mut Outbox<T>) {
        if st.events.is_empty() {
            return;
        }
        let clock = &self.clock;
        out.mail().events.extend(st.events.drain(..).map(|(kind, id, attempt, at)| Event {
            kind,
            id: JobId::from_u64(id),
            attempt,
            at: clock.instant(at),
        }));
    }

    /// Hands alarms and events to their hooks and dead letters to the sink, outside every lock. What the
    /// sink hands back goes to the store. User code that panics here is caught and reported, never
    /// re-raised: the operation that delivers has already taken effect. While the sink runs the queue
    /// keeps a copy of the dead letter (cheap: the job is shared), so that a sink that panics loses
    /// nothing: the copy goes to the built-in store.
    fn deliver(&self, out: Outbox<T>) {
        let Some(out) = out.0 else { return };
        let Mail { dead, events, alarms } = *out;
        let catcher = &self.catcher;
        for (i, event) in &alarms {
            let hook = &self.alarms[*i].1;
            catcher.call(PanicSite::AlarmHook, None, || hook(event));
        }
        if let Some(observer) = &self.observer {
            for event in &events {
                catcher.call(PanicSite::Observer, Some(event.id), || observer(event));
            }
        }
        // Dead letters are only collected here when there is a sink; without one they went to the store.
        if let Some(sink) = &self.sink {
            for dead in dead {
                let (id, copy) = (dead.id, dead.clone());
                match catcher.call(PanicSite::DeadLetterSink, Some(id), || sink.send(dead)) {
                    Some(Ok(())) => catcher.dispose(copy),
                    Some(Err(back)) => {
                        catcher.dispose(copy);
                        self.core.lock().dead.push_back(back);
                    }
                    None => self.core.lock().dead.push_back(copy),
                }
            }
        }
    }

    /// Blocks on `condvar` until woken or `until` (or the next timed event, for consumers) passes.
    fn block(&self, core: &mut MutexGuard<'_, Core<T>>, out: &mut Outbox<T>, consumer: bool, until: Tick) {
        self.collect_events(&mut core.st, out);
        if !out.is_empty() {
            let pending = mem::replace(out, Outbox::new());
            MutexGuard::unlocked(core, || self.deliver(pending));
            return; // the state may have changed: look again before waiting
        }
        if consumer {
            let wake_at = until.min(core.st.next_event());
            let idle = {
                let counts = core.st.counts();
                counts.ready == 0 && counts.leased == 0
            };
            if idle && self.clock.auto_advances() {
                // If every other queue on the clock is quiet too, nothing can happen before the earliest
                // of their next events and `wake_at`: jump there instead of waiting. If one is busy, wait:
                // it nudges this queue's consumers when it goes quiet.
                if let (Some(others), Some(test)) =
                    (self.clock.others_quiet_until(address(self)), self.clock.test_clock())
                {
                    let at = wake_at.min(others);
                    if at != NEVER {
                        if at <= core.st.now() {
                            // Another queue's event is due but nobody has looked: have every queue process
                            // what fell due (and publish its next event), then look again.
                            MutexGuard::unlocked(core, || test.advance(Duration::ZERO));
                        } else {
                            let at = self.clock.instant(at);
                            MutexGuard::unlocked(core, || test.advance_to(at));
                        }
                        return;
                    }
                }
            }
            core.st.waiting_consumers += 1;
            self.clock.wait(&self.consumers, core, wake_at);
            core.st.waiting_consumers -= 1;
        } else {
            core.st.waiting_producers += 1;
            self.clock.wait(&self.producers, core, until);
            core.st.waiting_producers -= 1;
        }
    }

    fn push(&self, job: T, options: &PushOptions, wait: Wait) -> Result<Pushed, (T, PushFail)> {
        self.push_shared(job, options, wait)
    }

    /// Pushes a job, or one that is already shared (a redriven dead letter's): it becomes an `Arc` only
    /// once it is in, so a refused job comes back exactly as it was given.
    pub(crate) fn push_shared<J: Into<Arc<T>>>(
        &self,
        job: J,
        options: &PushOptions,
        wait: Wait,
    ) -> Result<Pushed, (J, PushFail)> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut core = self.core.lock();
        let now = core.st.observe(reading);
        let result = match self.push_once(&mut core, &mut out, job, options, now) {
            Err((job, PushFail::NoRoom)) if matches!(wait, Wait::Until(until) if now < until) => {
                self.push_waiting(&mut core, &mut out, job, options, wait)
            }
            result => result,
        };
        self.finish(core, out);
        let (pushed, duplicate) = result?;
        self.catcher.dispose(duplicate); // a duplicate is dropped here, outside the lock
        self.pushed();
        Ok(pushed)
    }

    /// One try at a push at `now`, under the lock: a duplicate comes back to be dropped after the lock.
    /// Inlined into the quick try and the waiting loop alike (a call here costs the cycle 5 %).
    #[inline(always)]
    fn push_once<J: Into<Arc<T>>>(
        &self,
        core: &mut Core<T>,
        out: &mut Outbox<T>,
        job: J,
        options: &PushOptions,
        now: Tick,
    ) -> Result<(Pushed, Option<J>), (J, PushFail)> {
        if core.st.closed || core.st.ids_exhausted() {
            return Err((job, PushFail::Closed));
        }
        self.advance(core, now, out);
        if let Some(id) = options.dedup().and_then(|key| core.st.deduplicate(now, key)) {
            return Ok((Pushed::Duplicate(JobId::from_u64(id)), Some(job)));
        }
        if let Err(fail) = self.room(core, now, out) {
            return Err((job, fail));
        }
        let id = self.insert(core, now, job.into(), options);
        if let Some(key) = options.dedup() {
            core.st.reserve(now, Arc::clone(key), id.as_u64());
        }
        Ok((Pushed::Enqueued(id), None))
    }

    /// A push that waits for room (a bounded queue under [`Overflow::Block`]) until `wait` ends.
    #[cold]
    fn push_waiting<J: Into<Arc<T>>>(
        &self,
        core: &mut MutexGuard<'_, Core<T>>,
        out: &mut Outbox<T>,
        mut job: J,
        options: &PushOptions,
        wait: Wait,
    ) -> Result<(Pushed, Option<J>), (J, PushFail)> {
        let Wait::Until(until) = wait else { return Err((job, PushFail::NoRoom)) };
        loop {
            self.block(core, out, false, until);
            let now = core.st.observe(self.clock.tick());
            match self.push_once(core, out, job, options, now) {
                Err((back, PushFail::NoRoom)) if now < until => job = back,
                result => return result,
            }
        }
    }

    /// Makes room for one more job under the overflow policy, or says why there is none.
    #[inline]
    fn room(&self, core: &mut Core<T>, now: Tick, out: &mut Outbox<T>) -> Result<(), PushFail> {
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

    /// Puts a job in: the one place the payloads grow. The caller checked closing, ids and room.
    #[inline]
    fn insert(&self, core: &mut Core<T>, now: Tick, job: Arc<T>, options: &PushOptions) -> JobId {
        let (slot, id) = core.st.push(now, options.placement(now, &self.clock, self.ttl));
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
        self.core.lock().dead.push_front(dead);
    }

    fn lease(self: &Arc<Self>, wait: Wait) -> Result<Lease<T>, LeaseFail> {
        self.lease_with(LeaseParams { wait, visibility: None, stop: None })
    }

    pub(crate) fn lease_with(self: &Arc<Self>, params: LeaseParams<'_>) -> Result<Lease<T>, LeaseFail> {
        let mut lease = None;
        self.lease_into(params, 1, &mut |l| lease = Some(l))?;
        // `lease_into` hands out at least one lease when it succeeds; were it not to, there was no job.
        lease.ok_or(LeaseFail::NoJob)
    }

    /// Waits as `params` say for a ready job, then hands out up to `max` (at least one) to `take`, under
    /// one lock.
    fn lease_into(
        self: &Arc<Self>,
        params: LeaseParams<'_>,
        max: usize,
        take: &mut impl FnMut(Lease<T>),
    ) -> Result<(), LeaseFail> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut core = self.core.lock();
        let now = core.st.observe(reading);
        let result = match self.lease_once(&mut core, &mut out, &params, max, take, now) {
            Err(LeaseFail::NoJob) if matches!(params.wait, Wait::Until(until) if now < until) => {
                self.lease_waiting(&mut core, &mut out, &params, max, take)
            }
            result => result,
        };
        self.finish(core, out);
        result
    }

    /// One try at leasing at `now`, under the lock. Inlined, as [`push_once`](Inner::push_once).
    #[inline(always)]
    fn lease_once(
        self: &Arc<Self>,
        core: &mut Core<T>,
        out: &mut Outbox<T>,
        params: &LeaseParams<'_>,
        max: usize,
        take: &mut impl FnMut(Lease<T>),
        now: Tick,
    ) -> Result<(), LeaseFail> {
        if params.stop.is_some_and(|stop| stop.load(Ordering::Acquire)) {
            return Err(LeaseFail::Stopped);
        }
        self.advance(core, now, out);
        let visibility = params.visibility.unwrap_or_else(|| core.st.default_visibility());
        let mut taken = 0;
        while taken < max && !core.st.paused {
            let Some(grant) = core.st.lease(now, visibility) else { break };
            take(self.lease_of(core, grant));
            taken += 1;
        }
        if taken > 0 {
            Ok(())
        } else if core.st.closed && core.st.live() == 0 {
            Err(LeaseFail::Closed)
        } else {
            Err(LeaseFail::NoJob)
        }
    }

    /// A lease that waits for a job until `params.wait` ends: a short spin without the lock first (jobs
    /// that flow steadily arrive within it), then blocking (see [`block`](Inner::block)).
    #[cold]
    fn lease_waiting(
        self: &Arc<Self>,
        core: &mut MutexGuard<'_, Core<T>>,
        out: &mut Outbox<T>,
        params: &LeaseParams<'_>,
        max: usize,
        take: &mut impl FnMut(Lease<T>),
    ) -> Result<(), LeaseFail> {
        let Wait::Until(until) = params.wait else { return Err(LeaseFail::NoJob) };
        let mut round = 0;
        loop {
            if round < SPIN_ROUNDS + YIELD_ROUNDS && out.is_empty() {
                MutexGuard::unlocked(core, || self.spin(round));
                round += 1;
            } else {
                self.block(core, out, true, until);
            }
            let now = core.st.observe(self.clock.tick());
            match self.lease_once(core, out, params, max, take, now) {
                Err(LeaseFail::NoJob) if now < until => {}
                result => return result,
            }
        }
    }

    /// Leases up to `max` jobs, waiting as `wait` says for the first.
    fn lease_many(self: &Arc<Self>, wait: Wait, max: usize) -> Result<Vec<Lease<T>>, LeaseFail> {
        let mut leases = Vec::with_capacity(max.min(1024));
        if max > 0 {
            self.lease_into(LeaseParams { wait, visibility: None, stop: None }, max, &mut |l| {
                leases.push(l)
            })?;
        }
        Ok(leases)
    }

    /// Pushes jobs under one lock; never blocks. Jobs the queue has no room for come back `Full`.
    fn push_many(&self, jobs: impl IntoIterator<Item = T>) -> Vec<Result<JobId, TryPushError<T>>> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut core = self.core.lock();
        let now = core.st.observe(reading);
        self.advance(&mut core, now, &mut out);
        let options = PushOptions::new();
        let results = jobs
            .into_iter()
            .map(|job| {
                if core.st.closed || core.st.ids_exhausted() {
                    return Err(TryPushError::Closed(job));
                }
                match self.room(&mut core, now, &mut out) {
                    Ok(()) => Ok(self.insert(&mut core, now, Arc::new(job), &options)),
                    Err(PushFail::Closed) => Err(TryPushError::Closed(job)),
                    Err(PushFail::Rejected | PushFail::NoRoom) => Err(TryPushError::Full(job)),
                }
            })
            .collect();
        self.finish(core, out);
        self.pushed();
        results
    }

    /// Settles many leases of this queue under one lock. `op` settles one, and says whether the job left
    /// the queue without an exit (an ack), so that its payload is dropped (after the lock).
    fn settle_many<V, P>(
        &self,
        items: Vec<(Token, P)>,
        mut op: impl FnMut(&mut State, Token, P, Tick, &mut Vec<Exit>) -> Result<(V, bool), LeaseLost>,
    ) -> Vec<Result<V, LeaseLost>> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut exits = Vec::new();
        let mut dropped = Vec::new();
        let mut core = self.core.lock();
        let now = core.st.observe(reading);
        core.st.advance(now, &mut exits);
        let mut results = Vec::with_capacity(items.len());
        for (token, prepared) in items {
            results.push(op(&mut core.st, token, prepared, now, &mut exits).map(|(value, left)| {
                if left {
                    dropped.push(core.jobs[token.slot as usize].take());
                }
                value
            }));
        }
        self.bury_all(&mut core, exits, &mut out);
        self.finish(core, out);
        self.catcher.dispose(dropped);
        results
    }

    /// Waits a little, without the lock, for a job to become ready.
    fn spin(&self, round: u32) {
        if round < SPIN_ROUNDS {
            for _ in 0..1 << round {
                if self.ready_hint.load(Ordering::Relaxed) > 0 {
                    return;
                }
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }

    /// Runs `f` on the state after processing what fell due.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.observe(|core| f(&mut core.st))
    }

    /// Runs `f` on the state, the payloads and the dead-letter store, after processing what fell due; a
    /// restore fills a new queue this way, under one lock.
    #[cfg(feature = "serde")]
    pub(crate) fn inspect_core<R>(
        &self,
        f: impl FnOnce(&mut State, &mut Vec<Option<Arc<T>>>, &mut VecDeque<DeadLetter<T>>) -> R,
    ) -> R {
        self.observe(|core| f(&mut core.st, &mut core.jobs, &mut core.dead))
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
    fn pushed(&self) {
        if self.watched.load(Ordering::Acquire) {
            let watchers: Vec<_> = self.watchers.lock().iter().filter_map(Weak::upgrade).collect();
            for watcher in watchers {
                watcher.on_push();
            }
        }
    }

    /// Wakes every blocked consumer so that it rechecks its stop flag. Raise the flag first.
    pub(crate) fn interrupt(&self) {
        let _core = self.core.lock();
        self.consumers.notify_all();
    }

    /// The number of ready jobs, without processing what fell due (a cheap hint for scaling).
    pub(crate) fn ready_hint(&self) -> usize {
        self.ready_hint.load(Ordering::Relaxed)
    }

    fn lease_of(self: &Arc<Self>, core: &Core<T>, grant: Grant) -> Lease<T> {
        let job = match &core.jobs[grant.token.slot as usize] {
            Some(job) => Arc::clone(job),
            None => unreachable!("a leased slot holds its job"),
        };
        Lease::new(Queue { inner: Arc::clone(self) }, job, grant.token, grant.attempt, grant.deadline)
    }

    // ----- lease outcomes, called by `Lease` -----

    pub(crate) fn ack(&self, token: Token) -> Result<(), LeaseLost> {
        let mut core = self.core.lock();
        let result = core.st.ack(token);
        let job = match result {
            Ok(()) => core.jobs[token.slot as usize].take(),
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
                Nacked::Retry { at } => Some(at),
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
            Ok(())
        })
    }

    /// Takes a lease back: the job is ready again without spending the attempt, and the lease is stale.
    pub(crate) fn revoke(&self, token: Token) -> Result<(), LeaseLost> {
        self.settle(|st, now, exits| {
            exits.extend(st.release(token, now, 0, true)?);
            Ok(())
        })
    }

    pub(crate) fn extend(&self, token: Token, by: Duration) -> Result<Tick, LeaseLost> {
        let by = ticks(by);
        self.settle(|st, now, exits| {
            let deadline = st.extend(token, now, by)?;
            // An extension to "now" lapses at once.
            st.advance(now, exits);
            Ok(deadline)
        })
    }

    /// Runs one lease operation at the current time, after processing what fell due. The operation pushes
    /// the jobs it dead-letters to `exits`.
    fn settle<V>(
        &self,
        op: impl FnOnce(&mut State, Tick, &mut Vec<Exit>) -> Result<V, LeaseLost>,
    ) -> Result<V, LeaseLost> {
        let reading = self.clock.tick();
        let mut out = Outbox::new();
        let mut exits = Vec::new();
        let mut core = self.core.lock();
        let now = core.st.observe(reading);
        core.st.advance(now, &mut exits);
        let result = op(&mut core.st, now, &mut exits);
        self.bury_all(&mut core, exits, &mut out);
        self.finish(core, out);
        result
    }

    /// The backoff that nacks without an explicit delay use.
    pub(crate) fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

impl<T: Send + Sync + 'static> Listener for Inner<T> {
    fn on_advance(&self) {
        self.observe(|_| ());
        // Blocked calls with a timeout recheck it against the new time.
        self.consumers.notify_all();
        self.producers.notify_all();
    }

    fn quiet_until(&self) -> Option<Tick> {
        let quiet = self.quiet.load(Ordering::Acquire);
        (quiet != BUSY).then_some(quiet)
    }

    fn nudge(&self) {
        // Under the lock, so that a consumer between its look at the other queues and its wait is not
        // missed.
        let _core = self.core.lock();
        self.consumers.notify_all();
    }
}

/// Everything a queue is built from, checked by its builder.
pub(crate) struct Parts<T> {
    pub cfg: Config,
    pub clock: Clock,
    pub backoff: Backoff,
    pub sink: Option<Box<dyn DeadLetterSink<T>>>,
    pub observer: Option<Observer>,
    pub alarms: Vec<(Alarm, AlarmHook)>,
    pub capacity: Option<usize>,
    pub overflow: Overflow,
    pub ttl: Option<Duration>,
    pub panic_hook: Option<PanicHook>,
}

impl<T: Send + Sync + 'static> Queue<T> {
    pub(crate) fn from_parts(parts: Parts<T>) -> Queue<T> {
        let mut st = State::new(parts.cfg);
        st.observing = parts.observer.is_some();
        let manual = parts.clock.is_manual();
        let inner = Arc::new(Inner {
            core: Padded(Mutex::new(Core {
                st,
                raised: vec![false; parts.alarms.len()],
                jobs: Vec::new(),
                dead: VecDeque::new(),
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
            ready_hint: Padded(AtomicUsize::new(0)),
            catcher: Catcher::new(parts.panic_hook),
            watchers: Mutex::new(Vec::new()),
            watched: AtomicBool::new(false),
            quiet: AtomicU64::new(NEVER),
            manual,
        });
        let listener: Arc<dyn Listener> = inner.clone();
        inner.clock.register(Arc::downgrade(&listener));
        Queue { inner }
    }
}
