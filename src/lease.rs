//! The lease guard and its outcomes.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Tick;
use crate::core::{Grant, Token};
use crate::{FailureKind, JobId, LeaseLost, PanicSite, Queue};

/// A leased job: hidden from other consumers until the lease is settled or its deadline passes.
///
/// Dereferences to the job. Settle it with one outcome, each consuming the lease:
/// [`ack`](Lease::ack) (done), [`nack`](Lease::nack) (failed: retry after backoff, or dead-letter after
/// the last attempt), [`reject`](Lease::reject) (poison: dead-letter now) or [`release`](Lease::release)
/// (give it back without spending the attempt). [`extend`](Lease::extend) moves the deadline (a
/// heartbeat).
///
/// **Drop** without an outcome counts as [`nack`](Lease::nack), so a panicking worker's job is retried with
/// backoff, never lost. Drop never blocks on other consumers and never panics.
///
/// **Fencing.** Every outcome and `extend` succeeds if and only if this lease is still the job's current
/// lease: no newer lease of the job was handed out, and the job has not left the queue. A lease whose
/// deadline passed is still current until someone else leases the job, so a slow worker's late ack is
/// accepted. A stale lease gets a [`LeaseLost`] saying which case it is, and changes nothing.
///
/// ```compile_fail
/// let queue = leasequeue::Queue::new();
/// queue.push(1).unwrap();
/// let lease = queue.try_lease().unwrap();
/// lease.ack().unwrap();
/// lease.ack().unwrap(); // error: use of moved value: an outcome consumes the lease
/// ```
///
/// # Examples
///
/// ```
/// use leasequeue::{NackOutcome, Queue};
///
/// let queue = Queue::new();
/// queue.push("resize cat.png").unwrap();
///
/// let lease = queue.try_lease().unwrap();
/// assert_eq!(lease.attempt(), 1);
/// match lease.nack_with("storage unavailable").unwrap() {
///     NackOutcome::Retrying { .. } => {} // comes back after the backoff
///     NackOutcome::DeadLettered => unreachable!("ten attempts by default"),
///     _ => {}
/// }
/// assert_eq!(queue.stats().delayed, 1);
/// ```
#[must_use = "a lease dropped without an outcome counts as a failed attempt (nack)"]
pub struct Lease<T: Send + Sync + 'static> {
    queue: Queue<T>,
    /// `None` only once an outcome has consumed the lease.
    job: Option<Arc<T>>,
    token: Token,
    attempt: u32,
    deadline: Tick,
}

/// What [`Lease::nack`] did with the job.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::builder().max_attempts(1).build().unwrap();
/// queue.push(1).unwrap();
/// let outcome = queue.try_lease().unwrap().nack().unwrap();
/// assert_eq!(outcome, leasequeue::NackOutcome::DeadLettered);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NackOutcome {
    /// The job will be ready again at `at` (on the queue's clock).
    Retrying {
        /// When the job becomes ready again.
        at: Instant,
    },
    /// The job was dead-lettered: that was its last attempt (reason
    /// [`MaxAttempts`](crate::DeadLetterReason::MaxAttempts)), or its time to live passed while it was
    /// leased (reason [`Expired`](crate::DeadLetterReason::Expired)).
    DeadLettered,
}

impl<T: Send + Sync + 'static> Lease<T> {
    pub(crate) fn new(queue: Queue<T>, job: Arc<T>, token: Token, attempt: u32, deadline: Tick) -> Self {
        Lease { queue, job: Some(job), token, attempt, deadline }
    }

    /// The lease of `job` as the state granted it, holding a share of `handle` (see `Queue::share`).
    #[inline]
    pub(crate) fn granted(handle: &Queue<T>, grant: Grant, job: Arc<T>) -> Self {
        Lease::new(handle.share(), job, grant.token, grant.attempt, grant.deadline)
    }

    /// The job's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let id = queue.push(1).unwrap();
    /// assert_eq!(queue.try_lease().unwrap().id(), id);
    /// ```
    pub fn id(&self) -> JobId {
        JobId::from_u64(self.token.id)
    }

    /// Which attempt this lease is: 1 for the first delivery. Releases do not count.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::builder().backoff(leasequeue::Backoff::none()).build().unwrap();
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().nack().unwrap();
    /// assert_eq!(queue.try_lease().unwrap().attempt(), 2);
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the lease lapses, on the queue's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = leasequeue::TestClock::new();
    /// let queue = leasequeue::Queue::builder().clock(clock.clone()).build().unwrap();
    /// queue.push(1).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// assert_eq!(lease.deadline(), clock.now() + Duration::from_secs(30));
    /// # lease.ack().unwrap();
    /// ```
    pub fn deadline(&self) -> Instant {
        self.queue.clock().instant(self.deadline)
    }

    /// Whether the deadline has passed: the lease lapsed. It may still be current (see the type's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = leasequeue::TestClock::new();
    /// let queue = leasequeue::Queue::builder().clock(clock.clone()).build().unwrap();
    /// queue.push(1).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// assert!(!lease.is_lapsed());
    /// clock.advance(Duration::from_secs(30));
    /// assert!(lease.is_lapsed());
    /// lease.ack().unwrap(); // late, but nobody else leased the job: accepted
    /// ```
    pub fn is_lapsed(&self) -> bool {
        self.queue.clock().tick() >= self.deadline
    }

    /// The same as [`is_lapsed`](Lease::is_lapsed), under its old name.
    ///
    /// # Examples
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// assert_eq!(lease.is_expired(), lease.is_lapsed());
    /// # lease.ack().unwrap();
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `is_lapsed`: `expired` means a time to live that passed"
    )]
    pub fn is_expired(&self) -> bool {
        self.is_lapsed()
    }

    /// The job is done: it leaves the queue.
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().ack().unwrap();
    /// assert_eq!(queue.stats().acked, 1);
    /// ```
    #[inline]
    pub fn ack(mut self) -> Result<(), LeaseLost> {
        self.put_down();
        self.queue.ack_lease(self.token)
    }

    /// The attempt failed. If it was the last allowed attempt the job is dead-lettered with reason
    /// [`MaxAttempts`](crate::DeadLetterReason::MaxAttempts); otherwise it is retried after the queue's
    /// backoff.
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().nack().unwrap();
    /// assert_eq!(queue.stats().delayed, 1);
    /// ```
    pub fn nack(self) -> Result<NackOutcome, LeaseLost> {
        let delay = self.backoff_delay();
        self.fail(delay, None)
    }

    /// Like [`nack`](Lease::nack), recording `description` in the job's failure history.
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().nack_with("timeout talking to smtp").unwrap();
    /// ```
    pub fn nack_with(self, description: impl Into<String>) -> Result<NackOutcome, LeaseLost> {
        let delay = self.backoff_delay();
        self.fail(delay, Some(description.into()))
    }

    /// Like [`nack_with`](Lease::nack_with), retrying after `delay` instead of the backoff (for example a
    /// server's `Retry-After`).
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// lease.nack_after("429 too many requests", Duration::from_secs(120)).unwrap();
    /// ```
    pub fn nack_after(
        self,
        description: impl Into<String>,
        delay: Duration,
    ) -> Result<NackOutcome, LeaseLost> {
        self.fail(delay, Some(description.into()))
    }

    fn fail(self, delay: Duration, message: Option<String>) -> Result<NackOutcome, LeaseLost> {
        self.fail_as(FailureKind::Nacked, delay, message)
    }

    /// A failed attempt of the given kind (for a worker pool's panics).
    pub(crate) fn fail_as(
        mut self,
        kind: FailureKind,
        delay: Duration,
        message: Option<String>,
    ) -> Result<NackOutcome, LeaseLost> {
        self.put_down();
        let queue = &self.queue;
        let retry = queue.nack_lease(self.token, delay, kind, message)?;
        Ok(match retry {
            Some(at) => NackOutcome::Retrying { at: queue.clock().instant(at) },
            None => NackOutcome::DeadLettered,
        })
    }

    /// The job is poison: it is dead-lettered now with reason
    /// [`Rejected`](crate::DeadLetterReason::Rejected) and `description` in its history, whatever attempts
    /// it had left.
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push("{not json").unwrap();
    /// queue.try_lease().unwrap().reject("malformed payload").unwrap();
    /// assert_eq!(queue.stats().dead_lettered, 1);
    /// ```
    pub fn reject(mut self, description: impl Into<String>) -> Result<(), LeaseLost> {
        self.put_down();
        self.queue.reject_lease(self.token, Some(description.into()))
    }

    /// Gives the job back, ready at once, without counting a failure: the next lease has the same attempt
    /// number. For shutdown, rate limits, "not now". A pool handler's [`Outcome::Defer`](crate::Outcome::Defer)
    /// is this (with a delay); both are counted in [`Stats::released`](crate::Stats::released), and a pool's
    /// in [`PoolStats::deferred`](crate::PoolStats::deferred).
    ///
    /// If the lease had already lapsed, the lapse counted the attempt and a release does not undo that.
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().release().unwrap();
    /// assert_eq!(queue.try_lease().unwrap().attempt(), 1);
    /// ```
    pub fn release(self) -> Result<(), LeaseLost> {
        self.release_after(Duration::ZERO)
    }

    /// Like [`release`](Lease::release), with the job ready again only after `delay`.
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().release_after(Duration::from_secs(60)).unwrap();
    /// assert_eq!(queue.stats().delayed, 1);
    /// ```
    pub fn release_after(mut self, delay: Duration) -> Result<(), LeaseLost> {
        self.put_down();
        self.queue.release_lease(self.token, delay)
    }

    /// Moves the deadline to now + `by` (measured from now, as SQS `ChangeMessageVisibility`; it can
    /// shorten the lease, and `Duration::ZERO` makes it lapse at once). A heartbeat for long jobs.
    ///
    /// Extending a lease that lapsed but that nobody else leased takes the job back.
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = leasequeue::TestClock::new();
    /// let queue = leasequeue::Queue::builder().clock(clock.clone()).build().unwrap();
    /// queue.push(1).unwrap();
    /// let mut lease = queue.try_lease().unwrap();
    /// clock.advance(Duration::from_secs(20));
    /// lease.extend(Duration::from_secs(30)).unwrap();
    /// assert_eq!(lease.deadline(), clock.now() + Duration::from_secs(30));
    /// # lease.ack().unwrap();
    /// ```
    pub fn extend(&mut self, by: Duration) -> Result<(), LeaseLost> {
        self.deadline = self.queue.extend_lease(self.token, by)?;
        Ok(())
    }

    /// Lets go of the lease's copy of the job, once an outcome is chosen. Usually the queue still holds
    /// one; where this was the last (the job was purged), the job's `Drop` runs here, and a panic of it is
    /// caught and reported.
    fn put_down(&mut self) {
        self.queue.catcher().dispose_job(self.job.take());
    }

    /// Acks the job and leases the next ready one, if any, in one critical section: what a consumer that
    /// loops over `lease` and `ack` does, with one lock acquisition instead of two. `Ok(None)`: the job
    /// is acked and no job was ready (this never waits for one).
    ///
    /// The trade-off: the next lease is taken before this call returns, so its visibility timeout counts
    /// from now, while the caller still has to come back to it; a consumer about to stop should
    /// [`ack`](Lease::ack) instead (or release what it took).
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if this lease is no longer the job's current lease; nothing changes and nothing is
    /// leased.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push_batch([1, 2, 3]);
    /// let mut next = queue.try_lease().ok();
    /// let mut done = Vec::new();
    /// while let Some(lease) = next {
    ///     done.push(*lease);
    ///     next = lease.ack_and_try_lease().unwrap();
    /// }
    /// assert_eq!(done, [1, 2, 3]);
    /// assert!(queue.is_empty());
    /// ```
    pub fn ack_and_try_lease(mut self) -> Result<Option<Lease<T>>, LeaseLost> {
        self.put_down();
        self.queue.ack_and_try_lease(self.token)
    }

    /// Acks the job and leases up to `max` ready jobs under one lock, handed to `take` (a pool worker
    /// settling its job and taking the next ones). The ack does not wait for a durable store's sync;
    /// the leases do.
    pub(crate) fn ack_and_take(
        mut self,
        max: usize,
        visibility: Option<Tick>,
        take: &mut impl FnMut(Lease<T>),
    ) -> Result<(), LeaseLost> {
        self.put_down();
        self.queue.ack_then_lease_into(self.token, max, visibility, false, take)
    }

    /// An ack that does not wait for a durable store's sync: a pool worker's next lease (or its exit)
    /// waits for both. A crash in between delivers the job again, as at-least-once allows; the handler
    /// has returned, and nobody else waits on this ack.
    pub(crate) fn ack_unsynced(mut self) -> Result<(), LeaseLost> {
        self.put_down();
        self.queue.ack_lease_unsynced(self.token)
    }

    /// [`ack_unsynced`](Lease::ack_unsynced), and `next` extended by `by` from now (a pool worker's next
    /// taken job, about to start), in one call to the store. Returns the ack's result and whether `next`
    /// is still held.
    pub(crate) fn ack_and_extend(
        mut self,
        next: &mut Lease<T>,
        by: Duration,
    ) -> (Result<(), LeaseLost>, bool) {
        self.put_down();
        let (acked, extended) = self.queue.ack_extend_unsynced(self.token, next.token, by);
        let held = extended.map(|deadline| next.deadline = deadline).is_ok();
        (acked, held)
    }

    pub(crate) fn token(&self) -> Token {
        self.token
    }

    /// Whether this lease belongs to `queue`.
    pub(crate) fn is_of(&self, queue: &Queue<T>) -> bool {
        self.queue.same_as(queue)
    }

    /// Takes the lease apart for a batch outcome settled by its queue: dropping it does nothing any more.
    pub(crate) fn disarm(mut self) -> Token {
        self.put_down();
        self.token
    }

    pub(crate) fn backoff_delay(&self) -> Duration {
        let queue = &self.queue;
        let id = self.id();
        // A user's backoff function must not turn a nack (or a drop during unwinding) into a panic.
        queue
            .catcher()
            .call(PanicSite::Backoff, Some(id), || queue.backoff().delay_for(id, self.attempt))
            .unwrap_or(Duration::ZERO)
    }
}

impl<T: Send + Sync + 'static> Deref for Lease<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.job {
            Some(job) => job,
            None => unreachable!("only an outcome, which consumes the lease, takes the job"),
        }
    }
}

impl<T: Send + Sync + 'static> Drop for Lease<T> {
    #[inline]
    fn drop(&mut self) {
        // Settled by an outcome, as a rule: one test, inlined where the lease ends.
        if self.job.is_some() {
            self.drop_unsettled();
        }
    }
}

impl<T: Send + Sync + 'static> Lease<T> {
    /// A lease dropped without an outcome: a nack.
    #[cold]
    #[inline(never)]
    fn drop_unsettled(&mut self) {
        self.put_down();
        let message = if std::thread::panicking() {
            "lease dropped while its thread was panicking"
        } else {
            "lease dropped without an outcome"
        };
        let delay = self.backoff_delay();
        // A stale lease's drop changes nothing, like any other stale outcome. The nack runs no user code
        // that could panic here: the queue catches its sink's, observer's and hooks' panics.
        let _ = self.queue.nack_lease(self.token, delay, FailureKind::Dropped, Some(message.to_owned()));
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id())
            .field("attempt", &self.attempt)
            .field("deadline", &self.deadline())
            .finish_non_exhaustive()
    }
}
