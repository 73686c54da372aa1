//! `Queue<T>`, its builder, and the locked core that every operation goes through.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::clock::{ticks, Tick, NEVER};
use crate::core::{Exit, Nacked, State, Token};
use crate::lease::{Lease, NackOutcome};
use crate::panics::Catcher;
use crate::schedule::{self, Schedules};
use crate::store::memory::Inner;
#[cfg(feature = "postgres")]
use crate::store::pg::flavor::PgQueue;
use crate::store::{Backlog, LeaseFail, LeaseParams, Parts, Payload, PushFail, Wait};
#[cfg(doc)]
use crate::Overflow;
use crate::{
    Backoff, Clock, DeadLetter, FailureKind, JobId, LeaseError, LeaseLost, LeaseTimeoutError, PanicSite,
    PushError, PushOptions, PushTimeoutError, Pushed, QueueBuilder, Schedule, ScheduleError, ScheduleInfo,
    Stats, TryLeaseError, TryPushError,
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
    /// This handle: each clone of a queue is a handle of its own, and the leases it hands out share it
    /// (see [`Queue::share`]).
    handle: Arc<Flavor<T>>,
}

/// Where a queue's jobs live (as crossbeam-channel's flavors: each method matches on it).
enum Flavor<T> {
    /// The in-memory store, journaled or not.
    Memory(Arc<Inner<T>>),
    /// A PostgreSQL database, shared by every process that opens the queue.
    #[cfg(feature = "postgres")]
    Pg(Arc<PgQueue<T>>),
}

/// Runs `$e` with `$q` bound to the queue's store, whichever flavor it is: for the operations that every
/// flavor provides under the same name.
macro_rules! on_store {
    ($self:expr, $q:ident => $e:expr) => {
        match &*$self.handle {
            Flavor::Memory($q) => $e,
            #[cfg(feature = "postgres")]
            Flavor::Pg($q) => $e,
        }
    };
}

impl PushFail {
    /// As a push that waits for room reports it, with its job.
    fn blocking<T>(self, job: T) -> PushError<T> {
        match self {
            PushFail::Closed => PushError::Closed(job),
            // A wait that never ends ends only when there is room: `NoRoom` is the policy's refusal too.
            PushFail::Rejected | PushFail::NoRoom => PushError::Full(job),
            PushFail::Store(e) => PushError::Store(job, e),
        }
    }

    /// As a `try_` push reports it, with its job.
    fn trying<T>(self, job: T) -> TryPushError<T> {
        match self {
            PushFail::Closed => TryPushError::Closed(job),
            PushFail::Rejected | PushFail::NoRoom => TryPushError::Full(job),
            PushFail::Store(e) => TryPushError::Store(job, e),
        }
    }
}

impl LeaseFail {
    /// As a `try_` lease reports it (no wait, and no stop flag: `Stopped` cannot happen, and is "empty").
    fn into_try(self, clock: &Clock) -> TryLeaseError {
        match self {
            LeaseFail::Closed => TryLeaseError::Closed,
            LeaseFail::NoJob | LeaseFail::Stopped => TryLeaseError::Empty,
            LeaseFail::Limited(until) => TryLeaseError::Limited { until: clock.instant(until) },
            LeaseFail::Store(e) => TryLeaseError::Store(e),
        }
    }

    /// As a lease with a timeout reports it (no stop flag: `Stopped` cannot happen, and is a timeout).
    fn into_timeout(self) -> LeaseTimeoutError {
        match self {
            LeaseFail::Closed => LeaseTimeoutError::Closed,
            LeaseFail::NoJob | LeaseFail::Stopped | LeaseFail::Limited(_) => LeaseTimeoutError::Timeout,
            LeaseFail::Store(e) => LeaseTimeoutError::Store(e),
        }
    }
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
        QueueBuilder::new().build_unchecked(None)
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
        self.push_options(job, &PushOptions::PLAIN).map(Pushed::id)
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
        self.push_options(job, &options)
    }

    /// [`push_with`](Queue::push_with) by reference: a plain push passes a reference to a constant, which
    /// costs neither building nor dropping.
    #[inline(always)]
    fn push_options(&self, job: T, options: &PushOptions) -> Result<Pushed, PushError<T>> {
        on_store!(self, q => q.push(job, options, Wait::Until(NEVER)))
            .map_err(|(job, fail)| fail.blocking(job))
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
        self.try_push_options(job, &PushOptions::PLAIN).map(Pushed::id)
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
        self.try_push_options(job, &options)
    }

    /// [`try_push_with`](Queue::try_push_with) by reference (see [`push_options`](Queue::push_options)).
    #[inline(always)]
    fn try_push_options(&self, job: T, options: &PushOptions) -> Result<Pushed, TryPushError<T>> {
        on_store!(self, q => q.push(job, options, Wait::No)).map_err(|(job, fail)| fail.trying(job))
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
        let until = self.clock().tick().saturating_add(ticks(timeout));
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
        self.push_until(job, self.clock().tick_of(deadline))
    }

    fn push_until(&self, job: T, until: Tick) -> Result<JobId, PushTimeoutError<T>> {
        match on_store!(self, q => q.push(job, &PushOptions::new(), Wait::Until(until))) {
            Ok(pushed) => Ok(pushed.id()),
            Err((job, PushFail::Closed)) => Err(PushTimeoutError::Closed(job)),
            Err((job, PushFail::Rejected)) => Err(PushTimeoutError::Full(job)),
            Err((job, PushFail::NoRoom)) => Err(PushTimeoutError::Timeout(job)),
            Err((job, PushFail::Store(e))) => Err(PushTimeoutError::Store(job, e)),
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
            match self.lease_scheduled(Wait::Until(NEVER), |wait| on_store!(self, q => q.lease(self, wait))) {
                Ok(lease) => return Ok(lease),
                Err(LeaseFail::Closed) => return Err(LeaseError::Closed),
                Err(LeaseFail::Store(e)) => return Err(LeaseError::Store(e)),
                // A wait that never ends, with no stop flag, ends only with a job or a close: look again.
                Err(LeaseFail::NoJob | LeaseFail::Stopped | LeaseFail::Limited(_)) => continue,
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
        self.fire_schedules();
        let leased = match &*self.handle {
            Flavor::Memory(q) => q.try_lease(self),
            #[cfg(feature = "postgres")]
            Flavor::Pg(q) => q.lease(self, Wait::No),
        };
        leased.map_err(|fail| fail.into_try(self.clock()))
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
        let until = self.clock().tick().saturating_add(ticks(timeout));
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
        self.lease_until(self.clock().tick_of(deadline))
    }

    fn lease_until(&self, until: Tick) -> Result<Lease<T>, LeaseTimeoutError> {
        self.lease_scheduled(Wait::Until(until), |wait| on_store!(self, q => q.lease(self, wait)))
            .map_err(LeaseFail::into_timeout)
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
        on_store!(self, q => q.push_many(jobs))
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
        let until = self.clock().tick().saturating_add(ticks(timeout));
        self.lease_scheduled(Wait::Until(until), |wait| self.lease_many(wait, max))
            .map_err(LeaseFail::into_timeout)
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
        self.fire_schedules();
        self.lease_many(Wait::No, max).map_err(|fail| fail.into_try(self.clock()))
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

    /// Acks every lease in `leases` and refills it with up to `max` ready jobs, leased under the same lock
    /// (never waiting for one): a consumer that works in batches settles the batch it ran and takes the
    /// next in one critical section. Returns each ack's result, in the order the leases were in (as
    /// [`ack_batch`](Queue::ack_batch)); the refill happens whatever they were. `leases` holds only the
    /// new leases afterwards, empty when no job was ready. Leases of another queue are acked through
    /// their own queue.
    ///
    /// The trade-offs, as [`Lease::ack_and_try_lease`]'s: the new leases' visibility timeouts count from
    /// this call, while the caller still has the whole batch to run (size batches so that the last job of
    /// one starts well within the timeout); and a consumer about to stop should
    /// [`ack_batch`](Queue::ack_batch) instead, or release what it took. Two consumers that each hold a
    /// batch of 32 leave one another less to take than two that hold one job each. In exchange, the lock
    /// is taken once per batch instead of twice per job: under contention, several times the throughput.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push_batch(0..100);
    /// let mut leases = queue.try_lease_batch(32).unwrap();
    /// let mut done = 0;
    /// while !leases.is_empty() {
    ///     done += leases.len(); // run the jobs
    ///     assert!(queue.ack_and_try_lease_batch(&mut leases, 32).iter().all(Result::is_ok));
    /// }
    /// assert_eq!(done, 100);
    /// assert!(queue.is_empty());
    /// ```
    pub fn ack_and_try_lease_batch(
        &self,
        leases: &mut Vec<Lease<T>>,
        max: usize,
    ) -> Vec<Result<(), LeaseLost>> {
        self.fire_schedules();
        let Some(inner) = self.memory() else {
            // PostgreSQL: the acks, then one statement that leases the next jobs.
            let acked = self.ack_batch(leases.drain(..));
            leases.extend(self.lease_many(Wait::No, max).unwrap_or_default());
            return acked;
        };
        if leases.iter().all(|lease| lease.is_of(self)) {
            // The common case: the results are the acks' own, in order (no map from one to the other).
            let tokens: Vec<Token> = leases.drain(..).map(Lease::disarm).collect();
            leases.reserve(max.min(1024)); // the refill does not grow it under the lock
            let mut acked = vec![Ok(()); tokens.len()];
            inner.ack_many_then_lease_into(self, &tokens, &mut acked, true, max, None, true, &mut |lease| {
                leases.push(lease)
            });
            return acked;
        }
        let mut results = Vec::with_capacity(leases.len());
        let (mut tokens, mut positions) =
            (Vec::with_capacity(leases.len()), Vec::with_capacity(leases.len()));
        for lease in leases.drain(..) {
            if lease.is_of(self) {
                positions.push(results.len());
                tokens.push(lease.disarm());
                results.push(Ok(()));
            } else {
                results.push(lease.ack());
            }
        }
        let mut acked = vec![Ok(()); tokens.len()];
        inner.ack_many_then_lease_into(self, &tokens, &mut acked, true, max, None, true, &mut |lease| {
            leases.push(lease)
        });
        for (position, result) in positions.into_iter().zip(acked) {
            results[position] = result;
        }
        results
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
        let clock = self.clock();
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
        // One statement per lease on a store without a lock to share (PostgreSQL). A panicking iterator
        // leaves the leases it yielded settled, as below.
        let Some(inner) = self.memory() else { return leases.into_iter().map(single).collect() };
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
        for (index, result) in positions.into_iter().zip(inner.settle_many(mine, op)) {
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
        on_store!(self, q => q.close());
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
        on_store!(self, q => q.set_paused(true));
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
        on_store!(self, q => q.set_paused(false));
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
        on_store!(self, q => q.is_paused())
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
        on_store!(self, q => q.purge())
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
        on_store!(self, q => q.is_closed())
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
        self.fire_schedules();
        on_store!(self, q => q.len())
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
        match &*self.handle {
            Flavor::Memory(inner) => inner.capacity,
            #[cfg(feature = "postgres")]
            Flavor::Pg(_) => None,
        }
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
        self.fire_schedules();
        on_store!(self, q => q.stats())
    }

    /// Adds a periodic job: `schedule` pushes the job that `job` makes for each of its ticks (given the
    /// tick's wall-clock time), on this queue's clock. Replaces the schedule of the same name, if any, once
    /// its ticks already due have fired.
    /// The queue fires the ticks that fell due whenever it looks (every lease, `len`, `is_empty`,
    /// `stats`, `jobs`), and a consumer blocked in a lease, a [`WorkerPool`](crate::WorkerPool)'s worker
    /// included, wakes at the next tick; every tick that falls due while the schedule is on the queue
    /// fires, in order. Each tick's job has the dedup key `schedule:{name}@{tick in ns since the epoch}`,
    /// so processes that share a PostgreSQL queue and add the same schedule push one job per tick between
    /// them (within the queue's dedup window). Schedules belong to this process: add them again after a
    /// restart, with [`Schedule::since`] for the ticks missed meanwhile.
    ///
    /// `job` is user code: a panic is caught and reported ([`PanicSite::ScheduleJob`]), and that tick
    /// pushes nothing.
    ///
    /// On a test clock, [`run_until_idle`](crate::WorkerPool::run_until_idle) does not move the clock to
    /// schedule ticks (a schedule never runs out of them): it runs what is due. On an auto-advancing
    /// clock, though, a waiting worker moves the clock to the next tick by itself, so a pool keeps firing
    /// the schedule until it is shut down: stop it on a condition of your test (as
    /// `examples/nightly_report.rs` does), not with `run_until_idle`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Name`] for an empty name.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Queue, Schedule, TestClock};
    ///
    /// let clock = TestClock::new();
    /// let queue = Queue::builder().clock(clock.clone()).build().unwrap();
    /// queue.add_schedule("report", Schedule::every(Duration::from_secs(3600)).unwrap(), |_| "report").unwrap();
    /// clock.advance(Duration::from_secs(24 * 3600));
    /// assert_eq!(queue.len(), 24); // one job per hour of the day
    /// ```
    pub fn add_schedule<F>(&self, name: &str, schedule: Schedule, job: F) -> Result<(), ScheduleError>
    where
        F: Fn(SystemTime) -> T + Send + Sync + 'static,
    {
        if name.is_empty() {
            return Err(ScheduleError::Name);
        }
        self.fire_schedules(); // the ticks already due, of a schedule this one replaces included
        self.schedule_list().add(self.clock(), name.into(), schedule, Arc::new(job));
        Ok(())
    }

    /// Removes the schedule `name`, once its ticks already due have fired; returns whether there was one.
    /// Jobs it pushed stay in the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::new();
    /// let hourly = leasequeue::Schedule::every(Duration::from_secs(3600)).unwrap();
    /// queue.add_schedule("report", hourly, |_| "report").unwrap();
    /// assert!(queue.remove_schedule("report"));
    /// assert!(!queue.remove_schedule("report"));
    /// ```
    pub fn remove_schedule(&self, name: &str) -> bool {
        self.fire_schedules(); // the ticks already due
        self.schedule_list().remove(name)
    }

    /// The schedules on this queue, in the order they were added, each with its next tick and counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::new();
    /// let hourly = leasequeue::Schedule::every(Duration::from_secs(3600)).unwrap();
    /// queue.add_schedule("report", hourly, |_| "report").unwrap();
    /// assert_eq!(&*queue.schedules()[0].name, "report");
    /// ```
    pub fn schedules(&self) -> Vec<ScheduleInfo> {
        self.schedule_list().list()
    }

    fn schedule_list(&self) -> &Schedules<T> {
        on_store!(self, q => &q.schedules)
    }

    /// Pushes the jobs of the schedule ticks that are due; returns when the next one is, on the queue's
    /// clock ([`NEVER`] without schedules: then this is one atomic load).
    #[inline]
    pub(crate) fn fire_schedules(&self) -> Tick {
        if self.schedule_list().next_nanos() == NEVER {
            return NEVER;
        }
        self.fire_schedules_due()
    }

    /// [`fire_schedules`](Queue::fire_schedules) on a queue that has schedules.
    #[inline(never)]
    fn fire_schedules_due(&self) -> Tick {
        let schedules = self.schedule_list();
        let clock = self.clock();
        let now = clock.tick();
        let wall = clock.wall(now);
        if schedules.next_nanos() > schedule::wall_nanos(wall) {
            return self.next_schedule_tick();
        }
        let _firing = schedules.begin_firing();
        for due in schedules.take_due(now, wall) {
            let job = self.catcher().call(PanicSite::ScheduleJob, None, || (due.job)(due.at));
            let pushed = job.is_some_and(|job| {
                let options = PushOptions::new().dedup_key(schedule::dedup_key(&due.name, due.at));
                self.try_push_with(job, options).is_ok()
            });
            schedules.record(&due.name, pushed);
        }
        schedules.fired();
        self.next_schedule_tick()
    }

    /// When the next schedule tick is due on the queue's clock.
    fn next_schedule_tick(&self) -> Tick {
        match self.schedule_list().next_nanos() {
            NEVER => NEVER,
            nanos => self.clock().tick_at_wall(std::time::UNIX_EPOCH + Duration::from_nanos(nanos)),
        }
    }

    /// A lease that waits as `wait` says, firing the schedule ticks that fall due meanwhile: it waits at
    /// most until the next tick, fires it, and goes on.
    fn lease_scheduled<R>(
        &self,
        wait: Wait,
        mut lease: impl FnMut(Wait) -> Result<R, LeaseFail>,
    ) -> Result<R, LeaseFail> {
        loop {
            let next = self.fire_schedules();
            match wait {
                Wait::Until(until) if next < until => match lease(Wait::Until(next)) {
                    Err(LeaseFail::NoJob) => continue,
                    other => return other,
                },
                _ => return lease(wait),
            }
        }
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
        on_store!(self, q => &q.clock)
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
        on_store!(self, q => q.dead_letters(usize::MAX))
    }

    /// Copies of the first `limit` dead letters, oldest first (a page of them, for the dashboard).
    #[cfg(feature = "dashboard")]
    pub(crate) fn first_dead_letters(&self, limit: usize) -> Vec<DeadLetter<T>> {
        on_store!(self, q => q.dead_letters(limit))
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
        on_store!(self, q => q.drain_dead_letters())
    }
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// A queue on the in-memory store, from checked parts (see [`QueueBuilder::build`]).
    pub(crate) fn from_parts(parts: Parts<T>) -> Queue<T> {
        Queue { handle: Arc::new(Flavor::Memory(Inner::new(parts))) }
    }

    /// This handle once more, for a lease to settle through. A lease holds a handle of its queue, and
    /// taking one writes the handle's reference count: were every handle one count, every consumer's
    /// every lease would write the same cache line, and under contention that line moving between cores
    /// costs more than the rest of the lease. So each clone of a queue (one per consumer thread, as a
    /// rule) is a handle with a count of its own, which only its own leases write.
    pub(crate) fn share(&self) -> Queue<T> {
        Queue { handle: Arc::clone(&self.handle) }
    }

    /// A handle of a PostgreSQL queue.
    #[cfg(feature = "postgres")]
    pub(crate) fn of_pg(queue: Arc<PgQueue<T>>) -> Queue<T> {
        Queue { handle: Arc::new(Flavor::Pg(queue)) }
    }

    /// The PostgreSQL store, if the queue is in one.
    #[cfg(feature = "postgres")]
    pub(crate) fn pg(&self) -> Option<&Arc<PgQueue<T>>> {
        match &*self.handle {
            Flavor::Pg(pg) => Some(pg),
            Flavor::Memory(_) => None,
        }
    }

    /// The in-memory store, unless the queue is of another flavor.
    fn memory(&self) -> Option<&Arc<Inner<T>>> {
        match &*self.handle {
            Flavor::Memory(inner) => Some(inner),
            #[cfg(feature = "postgres")]
            Flavor::Pg(_) => None,
        }
    }
}

// ----- the crate-internal interface -----
//
// What the lease, the worker pool, redrive, snapshots and the testing helpers use of a queue: everything a
// store provides beyond the public API. Nothing outside this file reaches into the store itself.

impl<T> Queue<T> {
    /// Whether `other` is a handle of this same queue.
    pub(crate) fn same_as(&self, other: &Queue<T>) -> bool {
        match (&*self.handle, &*other.handle) {
            (Flavor::Memory(a), Flavor::Memory(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "postgres")]
            (Flavor::Pg(a), Flavor::Pg(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "postgres")]
            _ => false,
        }
    }
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// Runs user code for this queue: catches, counts and reports its panics.
    pub(crate) fn catcher(&self) -> &Catcher {
        on_store!(self, q => &q.catcher)
    }

    /// The backoff that nacks without an explicit delay use.
    pub(crate) fn backoff(&self) -> &Backoff {
        match &*self.handle {
            Flavor::Memory(inner) => inner.backoff(),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => &pg.backoff,
        }
    }

    // The outcomes of a lease, fenced by its token.

    pub(crate) fn ack_lease(&self, token: Token) -> Result<(), LeaseLost> {
        match &*self.handle {
            Flavor::Memory(inner) => inner.ack(token),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.ack(token, true),
        }
    }

    /// Acks and leases the next ready job, if any, under one lock ([`Lease::ack_and_try_lease`]).
    pub(crate) fn ack_and_try_lease(&self, token: Token) -> Result<Option<Lease<T>>, LeaseLost> {
        match &*self.handle {
            Flavor::Memory(inner) => inner.ack_and_try_lease(self, token),
            #[cfg(feature = "postgres")]
            Flavor::Pg(_) => {
                let mut next = None;
                self.ack_then_lease_into(token, 1, None, true, &mut |lease| next = Some(lease))?;
                Ok(next)
            }
        }
    }

    /// Acks and leases up to `max` ready jobs under one lock (see `Inner::ack_then_lease_into`).
    pub(crate) fn ack_then_lease_into(
        &self,
        token: Token,
        max: usize,
        visibility: Option<Tick>,
        synced: bool,
        take: &mut impl FnMut(Lease<T>),
    ) -> Result<(), LeaseLost> {
        match &*self.handle {
            Flavor::Memory(inner) => inner.ack_then_lease_into(self, token, max, visibility, synced, take),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => {
                pg.ack(token, synced)?;
                let params = LeaseParams { wait: Wait::No, visibility, stop: None };
                // The ack stands; a failure to lease the next ones is only "none taken".
                let _ = pg.lease_into(self, params, max, take);
                Ok(())
            }
        }
    }

    /// Acks the jobs of `tokens` without waiting for a durable store's sync, each result in its place in
    /// `acked`, and leases up to `max` ready jobs under one lock (see `Inner::ack_many_then_lease_into`):
    /// a pool worker's deferred acks (see `pool::Taken::deferring`).
    pub(crate) fn ack_many_then_lease_into(
        &self,
        tokens: &[Token],
        acked: &mut [Result<(), LeaseLost>],
        max: usize,
        visibility: Option<Tick>,
        take: &mut impl FnMut(Lease<T>),
    ) {
        match &*self.handle {
            Flavor::Memory(inner) => {
                inner.ack_many_then_lease_into(self, tokens, acked, true, max, visibility, false, take)
            }
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => {
                for (&token, result) in tokens.iter().zip(acked.iter_mut()) {
                    *result = pg.ack(token, false);
                }
                if max > 0 {
                    let params = LeaseParams { wait: Wait::No, visibility, stop: None };
                    let _ = pg.lease_into(self, params, max, take);
                }
            }
        }
    }

    /// An ack that does not wait for a durable store's sync (see `Lease::ack_unsynced`).
    pub(crate) fn ack_lease_unsynced(&self, token: Token) -> Result<(), LeaseLost> {
        match &*self.handle {
            Flavor::Memory(inner) => inner.ack_unsynced(token),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.ack(token, false),
        }
    }

    /// A pool worker's ack that does not wait for a durable store's sync, and an extension of the next
    /// job it took by `by` (its visibility counted from now, when it starts): on PostgreSQL one round trip
    /// for both. Each has its own result, the extension's the new deadline.
    pub(crate) fn ack_extend_unsynced(
        &self,
        token: Token,
        next: Token,
        by: Duration,
    ) -> (Result<(), LeaseLost>, Result<Tick, LeaseLost>) {
        match &*self.handle {
            Flavor::Memory(inner) => (inner.ack_unsynced(token), inner.extend(next, by)),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.ack_extend(token, next, by),
        }
    }

    /// Waits until every change so far is durable (at once for the memory store).
    pub(crate) fn commit(&self) -> Result<(), crate::StoreError> {
        self.memory().map_or(Ok(()), |inner| inner.commit())
    }

    /// A failed attempt: retried after `delay` (returns when it is due), or dead-lettered (`None`).
    pub(crate) fn nack_lease(
        &self,
        token: Token,
        delay: Duration,
        kind: FailureKind,
        message: Option<String>,
    ) -> Result<Option<Tick>, LeaseLost> {
        on_store!(self, q => q.nack(token, delay, kind, message))
    }

    pub(crate) fn reject_lease(&self, token: Token, message: Option<String>) -> Result<(), LeaseLost> {
        on_store!(self, q => q.reject(token, message))
    }

    pub(crate) fn release_lease(&self, token: Token, delay: Duration) -> Result<(), LeaseLost> {
        on_store!(self, q => q.release(token, delay))
    }

    /// Takes a lease back: the job is ready again without spending the attempt, and the lease is stale.
    pub(crate) fn revoke_lease(&self, token: Token) -> Result<(), LeaseLost> {
        on_store!(self, q => q.revoke(token))
    }

    /// Moves a lease's deadline to now + `by`; returns the new deadline.
    pub(crate) fn extend_lease(&self, token: Token, by: Duration) -> Result<Tick, LeaseLost> {
        on_store!(self, q => q.extend(token, by))
    }

    /// Leases up to `max` jobs, waiting as `wait` says for the first (schedules are the caller's).
    fn lease_many(&self, wait: Wait, max: usize) -> Result<Vec<Lease<T>>, LeaseFail> {
        let mut leases = Vec::with_capacity(max.min(1024));
        if max > 0 {
            let params = LeaseParams { wait, visibility: None, stop: None };
            on_store!(self, q => q.lease_into(self, params, max, &mut |lease| leases.push(lease)))?;
        }
        Ok(leases)
    }

    // For a worker pool.

    /// Leases as `params` say (a stop flag, a visibility timeout of the pool's own).
    /// Leases up to `max` jobs (at least one), waiting as `params` say for the first, and hands each to
    /// `take`.
    pub(crate) fn lease_into(
        &self,
        params: LeaseParams<'_>,
        max: usize,
        take: &mut impl FnMut(Lease<T>),
    ) -> Result<(), LeaseFail> {
        let LeaseParams { wait, visibility, stop } = params;
        self.lease_scheduled(wait, |wait| {
            on_store!(self, q => q.lease_into(self, LeaseParams { wait, visibility, stop }, max, &mut *take))
        })
    }

    /// Whether the queue is durable (every lease waits for a sync, which a batch of leases shares).
    pub(crate) fn is_durable(&self) -> bool {
        match &*self.handle {
            Flavor::Memory(inner) => inner.durable.is_some(),
            // Each lease is a round trip, which a batch shares.
            #[cfg(feature = "postgres")]
            Flavor::Pg(_) => true,
        }
    }

    /// The queue's visibility timeout, in ticks.
    pub(crate) fn visibility(&self) -> Tick {
        match &*self.handle {
            Flavor::Memory(inner) => inner.inspect(|st| st.default_visibility()),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.visibility_ticks(),
        }
    }

    /// Wakes every blocked consumer so that it rechecks its stop flag. Raise the flag first.
    pub(crate) fn interrupt(&self) {
        on_store!(self, q => q.interrupt());
    }

    /// Keeps the ready hint current from now on (a worker pool sizes its batches by it).
    pub(crate) fn want_ready_hint(&self) {
        match &*self.handle {
            Flavor::Memory(inner) => inner.want_ready_hint(),
            #[cfg(feature = "postgres")]
            Flavor::Pg(_) => {} // kept current always (see `PgQueue::ready_hint`)
        }
    }

    /// The number of ready jobs as of the last operation, without the lock (exact up to 64, then within a
    /// factor of two), once [`want_ready_hint`](Queue::want_ready_hint) was called.
    pub(crate) fn ready_hint(&self) -> usize {
        on_store!(self, q => q.ready_hint())
    }

    /// Registers a watcher of pushes (a scaling pool).
    pub(crate) fn watch_backlog(&self, watcher: Weak<dyn Backlog>) {
        on_store!(self, q => q.watch_backlog(watcher));
    }

    /// In one look under the lock: whether a job is ready or leased, and the tick of the next timed event
    /// ([`NEVER`] if none).
    pub(crate) fn activity(&self) -> (bool, Tick) {
        match &*self.handle {
            Flavor::Memory(inner) => inner.inspect(|st| {
                let counts = st.counts();
                // Ready jobs that a rate limit holds back wait for time, as delayed ones do.
                let ready = counts.ready > 0 && st.limited_until().is_none();
                (ready || counts.leased > 0, st.next_event())
            }),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.activity(),
        }
    }

    // For redrive.

    /// Pushes a job that is already shared (a dead letter's), or a new one, as [`Wait`] says.
    pub(crate) fn push_shared<J: Payload<T>>(
        &self,
        job: J,
        options: &PushOptions,
        wait: Wait,
    ) -> Result<Pushed, (J, PushFail)> {
        on_store!(self, q => q.push_shared(job, options, wait))
    }

    /// Takes the dead letter of job `id` out of the built-in store, looking at index `hint` first.
    pub(crate) fn take_dead_letter(&self, id: JobId, hint: usize) -> Option<DeadLetter<T>> {
        match &*self.handle {
            Flavor::Memory(inner) => inner.take_dead_letter(id, hint),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.take_dead_letter(id),
        }
    }

    /// Puts a dead letter back at the front of the built-in store.
    pub(crate) fn restore_dead_letter(&self, dead: DeadLetter<T>) {
        on_store!(self, q => q.restore_dead_letter(dead));
    }

    /// What makes the queue durable, if anything does.
    #[cfg(feature = "journal")]
    pub(crate) fn durable(&self) -> Option<&dyn crate::store::Durable<T>> {
        self.memory()?.durable.as_deref()
    }

    /// Writes the whole state to the durable store, replacing its earlier records (after processing what
    /// fell due). Nothing to do for the memory store.
    #[cfg(feature = "journal")]
    pub(crate) fn checkpoint(&self) -> Result<(), crate::StoreError> {
        let Some(inner) = self.memory() else { return Ok(()) };
        let Some(durable) = &inner.durable else { return Ok(()) };
        // The state is copied under the lock; the checkpoint is written after it.
        let pending = inner.locked(|core| durable.checkpoint(core))?;
        // Encoding the jobs runs their `Serialize`: a panic is caught and fails this checkpoint only.
        let written = inner.catcher.call(crate::PanicSite::PayloadSerialize, None, pending);
        written.unwrap_or_else(|| {
            Err(crate::StoreError::new(std::io::Error::other("a job's Serialize panicked")))
        })
    }

    /// A dead letter taken with [`take_dead_letter`](Queue::take_dead_letter) was redriven.
    pub(crate) fn dead_letter_moved(&self, id: JobId) {
        on_store!(self, q => q.dead_letter_moved(id));
    }

    // For inspection, snapshots and the testing helpers.

    /// Every live job, oldest first (see [`Queue::jobs`]).
    pub(crate) fn list_jobs(&self, f: impl FnOnce(&mut State) -> Vec<crate::JobInfo>) -> Vec<crate::JobInfo> {
        match &*self.handle {
            Flavor::Memory(inner) => inner.inspect(f),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.jobs(),
        }
    }

    /// The first `limit` live jobs, oldest first, each with its payload where the store holds it in this
    /// process (memory and journal; PostgreSQL: `None`). A payload is shared: drop it through the
    /// queue's catcher, since this copy may be the last.
    #[cfg(feature = "dashboard")]
    pub(crate) fn jobs_with_payloads(&self, limit: usize) -> Vec<(crate::JobInfo, Option<Arc<T>>)> {
        self.fire_schedules();
        let clock = self.clock().clone();
        match &*self.handle {
            Flavor::Memory(inner) => inner.locked(|core| {
                let listed = core.st.oldest_jobs(limit);
                listed
                    .iter()
                    .map(|l| {
                        (
                            crate::testing::job_info(l, &clock),
                            core.jobs.get(l.slot as usize).cloned().flatten(),
                        )
                    })
                    .collect()
            }),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => pg.jobs().into_iter().take(limit).map(|job| (job, None)).collect(),
        }
    }

    /// Runs `f` on the bookkeeping, the payloads and the dead-letter store, under one lock; `None` for a
    /// store that keeps them elsewhere (PostgreSQL).
    #[cfg(feature = "serde")]
    pub(crate) fn inspect_core<R>(
        &self,
        f: impl FnOnce(&mut State, &mut Vec<Option<Arc<T>>>, &mut std::collections::VecDeque<DeadLetter<T>>) -> R,
    ) -> Option<R> {
        Some(self.memory()?.inspect_core(f))
    }

    /// When the next timed event (a delayed job or retry, a lapse, an expiry) is due, if any.
    pub(crate) fn next_event(&self) -> Option<Instant> {
        on_store!(self, q => q.next_event())
    }
}

impl<T: Send + Sync + 'static> Default for Queue<T> {
    fn default() -> Self {
        Queue::new()
    }
}

/// A new handle of the same queue (a small allocation). Leases taken through a handle hold that handle,
/// so give each consumer thread a clone of its own: its leases then count on its own handle, not on one
/// that every consumer writes (which, under contention, costs more than the rest of a lease).
impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        let flavor = match &*self.handle {
            Flavor::Memory(inner) => Flavor::Memory(Arc::clone(inner)),
            #[cfg(feature = "postgres")]
            Flavor::Pg(pg) => Flavor::Pg(Arc::clone(pg)),
        };
        Queue { handle: Arc::new(flavor) }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        on_store!(self, q => q.fmt_fields(f.debug_struct("Queue"))).finish_non_exhaustive()
    }
}
