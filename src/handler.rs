//! What a worker pool's handler sees (`Job`) and returns (`Outcome`).

use std::fmt;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::clock::{Tick, NEVER};
use crate::{Clock, FailureKind, JobId, Lease, LeaseLost, NackOutcome};

/// A job as a [`WorkerPool`](crate::WorkerPool) handler sees it: dereferences to the job, and carries its
/// context (attempt, id, heartbeat, cancellation).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Job, Outcome, Queue, WorkerPool};
///
/// fn transcode(job: Job<'_, String>) -> Outcome {
///     for chunk in 0..3 {
///         if job.is_cancelled() {
///             return Outcome::defer(Duration::ZERO); // shutting down: give it back untouched
///         }
///         println!("{}: chunk {chunk} (attempt {})", *job, job.attempt());
///     }
///     Outcome::Done
/// }
///
/// let queue = Queue::new();
/// queue.push("cat.mp4".to_string()).unwrap();
/// let pool = WorkerPool::builder(queue.clone()).workers(1).build(transcode).unwrap();
/// # while queue.stats().acked < 1 { std::thread::yield_now(); }
/// pool.shutdown(Duration::from_secs(5));
/// ```
pub struct Job<'a, T: Send + Sync + 'static> {
    pub(crate) lease: &'a mut Lease<T>,
    pub(crate) clock: &'a Clock,
    pub(crate) cancelled: &'a AtomicBool,
    /// When the job's own timeout passes, or [`NEVER`].
    pub(crate) timeout_at: Tick,
}

impl<T: Send + Sync + 'static> Job<'_, T> {
    /// The job's id.
    ///
    /// # Examples
    ///
    /// ```
    /// # use leasequeue::Job;
    /// fn handler(job: Job<'_, u32>) { println!("job {}", job.id()); }
    /// ```
    pub fn id(&self) -> JobId {
        self.lease.id()
    }

    /// Which attempt this is (1 for the first delivery).
    ///
    /// # Examples
    ///
    /// ```
    /// # use leasequeue::Job;
    /// fn handler(job: Job<'_, u32>) -> Result<(), String> {
    ///     if job.attempt() < 3 { Err("not yet".into()) } else { Ok(()) }
    /// }
    /// ```
    pub fn attempt(&self) -> u32 {
        self.lease.attempt()
    }

    /// Extends the job's lease to now + `by` (a manual heartbeat). See [`Lease::extend`].
    ///
    /// # Errors
    ///
    /// [`LeaseLost`] if the lease is no longer current (it lapsed and the job was leased again).
    ///
    /// # Examples
    ///
    /// ```
    /// # use leasequeue::Job;
    /// use std::time::Duration;
    /// fn handler(mut job: Job<'_, u32>) -> Result<(), leasequeue::LeaseLost> {
    ///     for _step in 0..10 {
    ///         job.extend(Duration::from_secs(60))?; // still alive: keep the job
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn extend(&mut self, by: Duration) -> Result<(), LeaseLost> {
        self.lease.extend(by)
    }

    /// The lease's current deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// # use leasequeue::Job;
    /// fn handler(job: Job<'_, u32>) { println!("due by {:?}", job.deadline()); }
    /// ```
    pub fn deadline(&self) -> Instant {
        self.lease.deadline()
    }

    /// Whether the handler should stop: the pool is shutting down, or the job's own timeout
    /// ([`WorkerPoolBuilder::job_timeout`](crate::WorkerPoolBuilder::job_timeout)) has passed.
    /// Cancellation is cooperative: threads are never killed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use leasequeue::{Job, Outcome};
    /// fn handler(job: Job<'_, u32>) -> Outcome {
    ///     if job.is_cancelled() { Outcome::retry("cancelled") } else { Outcome::Done }
    /// }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || (self.timeout_at != NEVER && self.clock.tick() >= self.timeout_at)
    }
}

impl<T: Send + Sync + 'static> Deref for Job<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        Deref::deref(&*self.lease)
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Job<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id())
            .field("attempt", &self.attempt())
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// What a handler decides for its job.
///
/// Handlers usually return `Result<(), E>` (`Ok` acks, `Err` retries with the error's text in the job's
/// history); an `Outcome` (or `Result<Outcome, E>`) gives the full choice.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::Outcome;
///
/// fn decide(status: u16) -> Outcome {
///     match status {
///         200 => Outcome::Done,
///         429 => Outcome::defer(Duration::from_secs(30)), // rate limited: not an attempt
///         400 => Outcome::reject("bad request"),          // will never succeed: dead-letter now
///         _ => Outcome::retry(format!("http {status}")),  // retry after the backoff
///     }
/// }
/// assert_eq!(decide(200), Outcome::Done);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Success: ack.
    Done,
    /// A retryable failure: nack, retried after the backoff (or `delay`), dead-lettered after the last
    /// attempt.
    Retry {
        /// Recorded in the job's failure history.
        reason: String,
        /// Retry after this delay instead of the backoff.
        delay: Option<Duration>,
    },
    /// A permanent failure: dead-letter now (reject).
    Reject {
        /// Recorded in the job's failure history.
        reason: String,
    },
    /// Not now: give the job back, ready after `delay`, without spending an attempt. This releases the lease
    /// ([`Lease::release_after`](crate::Lease::release_after)); counted in
    /// [`Stats::released`](crate::Stats::released) and [`PoolStats::deferred`](crate::PoolStats::deferred).
    Defer {
        /// How long until the job is ready again.
        delay: Duration,
    },
}

impl Outcome {
    /// A retryable failure.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = leasequeue::Outcome::retry("timeout");
    /// assert!(matches!(o, leasequeue::Outcome::Retry { delay: None, .. }));
    /// ```
    pub fn retry(reason: impl fmt::Display) -> Self {
        Outcome::Retry { reason: reason.to_string(), delay: None }
    }

    /// A retryable failure, retried after `delay` instead of the backoff.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = leasequeue::Outcome::retry_after("503", Duration::from_secs(5));
    /// assert!(matches!(o, leasequeue::Outcome::Retry { delay: Some(_), .. }));
    /// ```
    pub fn retry_after(reason: impl fmt::Display, delay: Duration) -> Self {
        Outcome::Retry { reason: reason.to_string(), delay: Some(delay) }
    }

    /// A permanent failure: dead-letter now.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = leasequeue::Outcome::reject("malformed");
    /// assert!(matches!(o, leasequeue::Outcome::Reject { .. }));
    /// ```
    pub fn reject(reason: impl fmt::Display) -> Self {
        Outcome::Reject { reason: reason.to_string() }
    }

    /// Not now: ready again after `delay`, without spending an attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = leasequeue::Outcome::defer(Duration::from_secs(1));
    /// assert_eq!(o, leasequeue::Outcome::Defer { delay: Duration::from_secs(1) });
    /// ```
    pub fn defer(delay: Duration) -> Self {
        Outcome::Defer { delay }
    }
}

/// What a handler may return: `()`, [`Outcome`], `Result<(), E>` or `Result<Outcome, E>` with
/// `E: Display` (an `Err` is a retryable failure with the error's text).
///
/// # Examples
///
/// ```
/// use leasequeue::{IntoOutcome, Outcome};
/// assert_eq!(().into_outcome(), Outcome::Done);
/// assert_eq!(Err::<(), _>("boom").into_outcome(), Outcome::retry("boom"));
/// assert_eq!(Ok::<_, String>(Outcome::reject("x")).into_outcome(), Outcome::reject("x"));
/// ```
pub trait IntoOutcome {
    /// Converts the handler's return value.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Outcome {
        self
    }
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Outcome::Done
    }
}

impl<E: fmt::Display> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::retry(e),
        }
    }
}

impl<E: fmt::Display> IntoOutcome for Result<Outcome, E> {
    fn into_outcome(self) -> Outcome {
        self.unwrap_or_else(Outcome::retry)
    }
}

/// A handler as the pool and the inline runner hold it.
pub(crate) type Handler<T> = dyn Fn(Job<'_, T>) -> Outcome + Send + Sync;

/// What running a handler on one job gave.
pub(crate) enum Ran {
    Returned(Outcome),
    Panicked(String),
}

/// How a job was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    Acked,
    /// A failed attempt, to be retried.
    Retrying,
    /// A failed last attempt: dead-lettered.
    Exhausted,
    /// Rejected: dead-lettered.
    Rejected,
    Deferred,
}

/// Runs `handler` on the leased job, catching a panic.
pub(crate) fn run<T: Send + Sync + 'static, H: Fn(Job<'_, T>) -> Outcome + ?Sized>(
    handler: &H,
    lease: &mut Lease<T>,
    clock: &Clock,
    cancelled: &AtomicBool,
    timeout_at: Tick,
) -> Ran {
    let result =
        panic::catch_unwind(AssertUnwindSafe(|| handler(Job { lease, clock, cancelled, timeout_at })));
    match result {
        Ok(outcome) => Ran::Returned(outcome),
        Err(payload) => Ran::Panicked(crate::panics::message(&*payload)),
    }
}

/// What a run decided, as a [`Summary`](crate::Summary) shows it (a panic as a retry with its message),
/// and whether it panicked.
pub(crate) fn outcome_of(ran: &Ran) -> (Outcome, bool) {
    match ran {
        Ran::Returned(outcome) => (outcome.clone(), false),
        Ran::Panicked(message) => (Outcome::retry(format!("panicked: {message}")), true),
    }
}

/// Settles the job as the handler decided; a panic is a failed attempt with the panic's message.
///
/// `ack` acks a job that is done: `Lease::ack`, or a pool worker's ack that takes its next jobs in the
/// same critical section (see `Lease::ack_and_take`).
pub(crate) fn settle<T: Send + Sync + 'static>(
    lease: Lease<T>,
    ran: Ran,
    ack: impl FnOnce(Lease<T>) -> Result<(), LeaseLost>,
) -> Result<Settled, LeaseLost> {
    let retried = |n: NackOutcome| match n {
        NackOutcome::DeadLettered => Settled::Exhausted,
        _ => Settled::Retrying,
    };
    match ran {
        Ran::Returned(Outcome::Done) => ack(lease).map(|()| Settled::Acked),
        Ran::Returned(Outcome::Retry { reason, delay: Some(delay) }) => {
            lease.nack_after(reason, delay).map(retried)
        }
        Ran::Returned(Outcome::Retry { reason, delay: None }) => lease.nack_with(reason).map(retried),
        Ran::Returned(Outcome::Reject { reason }) => lease.reject(reason).map(|()| Settled::Rejected),
        Ran::Returned(Outcome::Defer { delay }) => lease.release_after(delay).map(|()| Settled::Deferred),
        Ran::Panicked(message) => {
            let delay = lease.backoff_delay();
            lease.fail_as(FailureKind::Panicked, delay, Some(format!("panicked: {message}"))).map(retried)
        }
    }
}
