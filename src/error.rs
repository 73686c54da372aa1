//! Each operation's own error. Errors of operations that took a job hand it back.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

macro_rules! debug_without_payload {
    ($ty:ident { $($variant:ident),* }) => {
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)")),)*
                    $ty::Store(_, cause) => f.debug_tuple("Store").field(&"..").field(cause).finish(),
                }
            }
        }
    };
}

/// A failure of the store beneath a queue: a journal's disk, a database connection. The in-memory store
/// never fails; a durable store reports what its medium said, kept as this error's
/// [`source`](std::error::Error::source). Cheap to clone (the cause is shared); two are equal when they
/// are clones of one failure.
///
/// Every operation's error has a store variant, which hands back the job where the operation took one.
///
/// # Examples
///
/// ```
/// use leasequeue::{PushError, StoreError};
///
/// fn describe(err: &PushError<String>) -> String {
///     match err {
///         PushError::Store(_, cause) => format!("retry later: {cause}"),
///         other => other.to_string(),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Clone)]
pub struct StoreError {
    cause: Arc<dyn std::error::Error + Send + Sync + 'static>,
}

impl StoreError {
    /// A store failure caused by `cause`.
    #[allow(dead_code)] // the first durable store uses it
    pub(crate) fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError { cause: Arc::new(cause) }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the queue's store failed: {}", self.cause)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreError").field(&self.cause).finish()
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.cause, &other.cause)
    }
}

impl Eq for StoreError {}

/// The error of [`Queue::push`](crate::Queue::push). The job comes back inside.
///
/// A blocking push fails only when the queue is closed, or, under
/// [`Overflow::RejectNew`](crate::Overflow::RejectNew), when a bounded queue is full.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::new();
/// queue.close();
/// let err = queue.push("welcome email").unwrap_err();
/// assert!(err.is_closed());
/// assert_eq!(err.to_string(), "queue is closed");
/// assert_eq!(err.into_inner(), "welcome email");
/// ```
#[derive(Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum PushError<T> {
    /// A bounded queue is full and its overflow policy rejects new jobs.
    #[error("queue is full")]
    Full(T),
    /// The queue is closed.
    #[error("queue is closed")]
    Closed(T),
    /// The queue's store failed (a durable store's disk or database); the job was not pushed.
    #[error("the queue's store failed; the job was not pushed")]
    Store(T, #[source] StoreError),
}
debug_without_payload!(PushError { Full, Closed });

impl<T> PushError<T> {
    /// The job that was not pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::PushError::Closed(5).into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(job) | PushError::Closed(job) | PushError::Store(job, _) => job,
        }
    }

    /// Whether the queue was full.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::PushError::Full(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, PushError::Full(_))
    }

    /// Whether the queue was closed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::PushError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, PushError::Closed(_))
    }
}

/// The error of [`Queue::try_push`](crate::Queue::try_push). The job comes back inside.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::builder().capacity(1).build().unwrap();
/// queue.try_push(1).unwrap();
/// let err = queue.try_push(2).unwrap_err();
/// assert!(err.is_full());
/// assert_eq!(err.into_inner(), 2);
/// ```
#[derive(Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum TryPushError<T> {
    /// A bounded queue is at capacity.
    #[error("queue is full")]
    Full(T),
    /// The queue is closed.
    #[error("queue is closed")]
    Closed(T),
    /// The queue's store failed (a durable store's disk or database); the job was not pushed.
    #[error("the queue's store failed; the job was not pushed")]
    Store(T, #[source] StoreError),
}
debug_without_payload!(TryPushError { Full, Closed });

impl<T> TryPushError<T> {
    /// The job that was not pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::TryPushError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TryPushError::Full(job) | TryPushError::Closed(job) | TryPushError::Store(job, _) => job,
        }
    }

    /// Whether the queue was full.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::TryPushError::Full(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TryPushError::Full(_))
    }

    /// Whether the queue was closed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::TryPushError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TryPushError::Closed(_))
    }
}

/// The error of [`Queue::push_timeout`](crate::Queue::push_timeout). The job comes back inside.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let queue = leasequeue::Queue::builder().capacity(1).build().unwrap();
/// queue.push(1).unwrap();
/// let err = queue.push_timeout(2, Duration::ZERO).unwrap_err();
/// assert!(err.is_timeout());
/// assert_eq!(err.into_inner(), 2);
/// ```
#[derive(Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum PushTimeoutError<T> {
    /// The queue stayed full until the timeout.
    #[error("timed out waiting for room in the queue")]
    Timeout(T),
    /// The queue is full and its overflow policy rejects new jobs.
    #[error("queue is full")]
    Full(T),
    /// The queue is closed.
    #[error("queue is closed")]
    Closed(T),
    /// The queue's store failed (a durable store's disk or database); the job was not pushed.
    #[error("the queue's store failed; the job was not pushed")]
    Store(T, #[source] StoreError),
}
debug_without_payload!(PushTimeoutError { Timeout, Full, Closed });

impl<T> PushTimeoutError<T> {
    /// The job that was not pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::PushTimeoutError::Closed(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PushTimeoutError::Timeout(job)
            | PushTimeoutError::Full(job)
            | PushTimeoutError::Closed(job)
            | PushTimeoutError::Store(job, _) => job,
        }
    }

    /// Whether the wait timed out.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::PushTimeoutError::Timeout(()).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, PushTimeoutError::Timeout(_))
    }

    /// Whether the queue was full and its overflow policy rejects new jobs.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::PushTimeoutError::Full(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, PushTimeoutError::Full(_))
    }

    /// Whether the queue was closed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::PushTimeoutError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, PushTimeoutError::Closed(_))
    }
}

/// Why [`Queue::lease`](crate::Queue::lease) returned without a job: the queue is closed and holds no job
/// any more, or its store failed.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::<u32>::new();
/// queue.close();
/// assert_eq!(queue.lease().unwrap_err(), leasequeue::LeaseError::Closed);
/// assert!(queue.lease().unwrap_err().is_closed());
/// ```
#[derive(Error, Debug, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum LeaseError {
    /// The queue is closed and holds no job (ready, delayed or leased) any more.
    #[error("queue is closed and drained")]
    Closed,
    /// The queue's store failed (a durable store's disk or database).
    #[error("the queue's store failed")]
    Store(#[source] StoreError),
}

impl LeaseError {
    /// Whether the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// queue.close();
    /// assert!(queue.lease().unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, LeaseError::Closed)
    }
}

/// The error of [`Queue::try_lease`](crate::Queue::try_lease).
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::<u32>::new();
/// assert_eq!(queue.try_lease().unwrap_err(), leasequeue::TryLeaseError::Empty);
/// ```
#[derive(Error, Debug, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum TryLeaseError {
    /// No job is ready now (some may be delayed or leased).
    #[error("no job is ready")]
    Empty,
    /// The queue is closed and holds no job any more.
    #[error("queue is closed and drained")]
    Closed,
    /// The queue's store failed (a durable store's disk or database).
    #[error("the queue's store failed")]
    Store(#[source] StoreError),
    /// A job is ready, but the queue's rate limit ([`QueueBuilder::rate_limit`](crate::QueueBuilder::rate_limit))
    /// lets the next lease through only at `until`.
    #[error("the rate limit holds the next lease until later")]
    Limited {
        /// When the next lease may be taken, on the queue's clock.
        until: std::time::Instant,
    },
}

impl TryLeaseError {
    /// Whether no job was ready.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::TryLeaseError::Empty.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, TryLeaseError::Empty)
    }

    /// Whether the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::TryLeaseError::Closed.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TryLeaseError::Closed)
    }
}

/// The error of [`Queue::lease_timeout`](crate::Queue::lease_timeout).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let queue = leasequeue::Queue::<u32>::new();
/// let err = queue.lease_timeout(Duration::ZERO).unwrap_err();
/// assert!(err.is_timeout());
/// ```
#[derive(Error, Debug, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum LeaseTimeoutError {
    /// No job became ready before the timeout.
    #[error("timed out waiting for a job")]
    Timeout,
    /// The queue is closed and holds no job any more.
    #[error("queue is closed and drained")]
    Closed,
    /// The queue's store failed (a durable store's disk or database).
    #[error("the queue's store failed")]
    Store(#[source] StoreError),
}

impl LeaseTimeoutError {
    /// Whether the wait timed out.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::LeaseTimeoutError::Timeout.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, LeaseTimeoutError::Timeout)
    }

    /// Whether the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::LeaseTimeoutError::Closed.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, LeaseTimeoutError::Closed)
    }
}

/// Why an outcome or `extend` on a [`Lease`](crate::Lease) was refused: the lease is no longer the job's
/// current lease. The refused call changed nothing.
///
/// The lease still dereferences to the job, so nothing needs handing back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{LeaseLost, Queue, TestClock};
///
/// let clock = TestClock::new();
/// let queue = Queue::builder()
///     .clock(clock.clone())
///     .visibility_timeout(Duration::from_secs(30))
///     .build()
///     .unwrap();
/// queue.push("job").unwrap();
/// let stale = queue.try_lease().unwrap();
/// clock.advance(Duration::from_secs(31)); // the first lease lapses...
/// let fresh = queue.try_lease().unwrap(); // ...and the job is delivered again
/// assert_eq!(stale.ack(), Err(LeaseLost::Superseded { attempt: 2 }));
/// fresh.ack().unwrap();
/// ```
#[derive(Error, Debug, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum LeaseLost {
    /// The job was leased again after this lease lapsed; `attempt` is the newer lease's attempt.
    #[error("the job was leased again (attempt {attempt}) after this lease lapsed")]
    Superseded {
        /// The attempt number of the job's current lease.
        attempt: u32,
    },
    /// The job has left the queue: acked, dead-lettered or purged.
    #[error("the job has left the queue")]
    Gone,
    /// The lease was taken back and the job returned to the queue, as a
    /// [`WorkerPool`](crate::WorkerPool) does with the jobs still running when its shutdown grace ends.
    #[error("the lease was revoked and its job returned to the queue")]
    Revoked,
    /// The queue's store failed to record the outcome (a durable store's disk or database): it is not
    /// durable, and the lease may still be current (its deadline decides, as for any lease). A journal
    /// that failed so refuses every later call until the queue is reopened, which recovers what is on
    /// disk.
    #[error("the queue's store failed; the outcome was not recorded")]
    Store(#[source] StoreError),
}

/// Invalid configuration given to a builder.
///
/// # Examples
///
/// ```
/// let err = leasequeue::Queue::<u32>::builder().capacity(0).build().unwrap_err();
/// assert_eq!(err.to_string(), "invalid queue configuration: capacity must be at least 1");
/// assert_eq!(err.option(), "capacity");
/// ```
#[derive(Error, Debug, Clone)]
#[error("invalid {what} configuration: {option} {message}")]
pub struct BuildError {
    what: &'static str,
    option: &'static str,
    message: &'static str,
    /// What the system said, where it refused (a thread that could not be spawned).
    #[source]
    cause: Option<Arc<std::io::Error>>,
}

impl PartialEq for BuildError {
    fn eq(&self, other: &Self) -> bool {
        (self.what, self.option, self.message) == (other.what, other.option, other.message)
    }
}

impl Eq for BuildError {}

impl BuildError {
    pub(crate) fn new(what: &'static str, option: &'static str, message: &'static str) -> Self {
        BuildError { what, option, message, cause: None }
    }

    /// The same, caused by what the system said.
    pub(crate) fn caused_by(mut self, cause: std::io::Error) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// The name of the builder option that was invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = leasequeue::Queue::<u32>::builder().max_attempts(0).build().unwrap_err();
    /// assert_eq!(err.option(), "max_attempts");
    /// ```
    pub fn option(&self) -> &'static str {
        self.option
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_store_error_keeps_its_cause_and_hands_the_job_back() {
        let cause = StoreError::new(std::io::Error::other("disk full"));
        assert_eq!(cause.source().unwrap().to_string(), "disk full");
        assert_eq!(cause, cause.clone(), "clones of one failure are equal");
        assert_ne!(cause, StoreError::new(std::io::Error::other("disk full")));
        let err = PushError::Store("job", cause.clone());
        assert_eq!(err.source().unwrap().to_string(), cause.to_string());
        assert_eq!(format!("{err:?}"), format!("Store(\"..\", {cause:?})"));
        assert_eq!(err.into_inner(), "job");
        assert!(!LeaseError::Store(cause.clone()).is_closed());
        assert!(LeaseLost::Store(cause).source().is_some());
    }

    #[test]
    fn a_build_error_keeps_what_the_system_said() {
        let err = BuildError::new("worker pool", "workers", "could not all be spawned as threads")
            .caused_by(std::io::Error::other("out of threads"));
        assert_eq!(err.source().unwrap().to_string(), "out of threads");
        assert_eq!(err, BuildError::new("worker pool", "workers", "could not all be spawned as threads"));
    }
}
