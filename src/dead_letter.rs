//! Jobs that left the queue without succeeding, and where they go.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::{JobId, Queue};

/// Why a job was dead-lettered.
///
/// # Examples
///
/// ```
/// assert_eq!(leasequeue::DeadLetterReason::MaxAttempts.to_string(), "max attempts");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// Its last allowed attempt failed (a nack, a lapsed lease or a dropped lease).
    MaxAttempts,
    /// The lease holder rejected it as poison.
    Rejected,
    /// It outlived its time to live before it could be delivered.
    Expired,
    /// It was pushed out of a full bounded queue.
    Overflow,
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeadLetterReason::MaxAttempts => "max attempts",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Overflow => "overflow",
        })
    }
}

/// How an attempt failed.
///
/// # Examples
///
/// ```
/// assert_eq!(leasequeue::FailureKind::Lapsed.to_string(), "lease lapsed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The lease holder nacked it.
    Nacked,
    /// The lease holder rejected it.
    Rejected,
    /// The lease's deadline passed without an outcome.
    Lapsed,
    /// The lease was dropped without an outcome (for example while its thread panicked).
    Dropped,
    /// A [`WorkerPool`](crate::WorkerPool) handler panicked; the message is the panic's.
    Panicked,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Nacked => "nacked",
            FailureKind::Rejected => "rejected",
            FailureKind::Lapsed => "lease lapsed",
            FailureKind::Dropped => "lease dropped",
            FailureKind::Panicked => "handler panicked",
        })
    }
}

/// One failed attempt in a job's history.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::builder().max_attempts(1).build().unwrap();
/// queue.push("x").unwrap();
/// queue.try_lease().unwrap().nack_with("smtp 451").unwrap();
/// let dead = queue.drain_dead_letters();
/// let failure = &dead[0].history()[0];
/// assert_eq!(failure.attempt, 1);
/// assert_eq!(failure.kind, leasequeue::FailureKind::Nacked);
/// assert_eq!(failure.message.as_deref(), Some("smtp 451"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// When it failed, on the queue's clock.
    pub at: Instant,
    /// How it failed.
    pub kind: FailureKind,
    /// The description given by the lease holder, if any.
    pub message: Option<String>,
}

/// A job that left its queue without succeeding, with its reason and history.
///
/// The job itself is shared (`Arc<T>`) because a lease that lapsed on its last attempt may still be held
/// by a stalled worker: [`job`](DeadLetter::job) borrows it, [`into_shared`](DeadLetter::into_shared)
/// takes the `Arc`, and [`try_into_job`](DeadLetter::try_into_job) takes the value when nobody else holds
/// it (the usual case). Cloning a `DeadLetter` is cheap and needs no `T: Clone`.
///
/// # Examples
///
/// ```
/// use leasequeue::{DeadLetterReason, Queue};
///
/// let queue = Queue::new();
/// queue.push("corrupt.mp4").unwrap();
/// queue.try_lease().unwrap().reject("not a video").unwrap();
///
/// let dead = queue.drain_dead_letters().pop().unwrap();
/// assert_eq!(dead.reason(), DeadLetterReason::Rejected);
/// assert_eq!(dead.attempts(), 1);
/// assert_eq!(dead.history()[0].message.as_deref(), Some("not a video"));
/// assert_eq!(dead.try_into_job().ok(), Some("corrupt.mp4"));
/// ```
pub struct DeadLetter<T> {
    pub(crate) job: Arc<T>,
    pub(crate) id: JobId,
    pub(crate) reason: DeadLetterReason,
    pub(crate) attempts: u32,
    pub(crate) history: Vec<Failure>,
    pub(crate) pushed_at: Instant,
    pub(crate) dead_lettered_at: Instant,
}

impl<T> DeadLetter<T> {
    /// The job.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(7).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// assert_eq!(*queue.drain_dead_letters()[0].job(), 7);
    /// ```
    pub fn job(&self) -> &T {
        &self.job
    }

    /// The job's id in the queue it left.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let id = queue.push(7).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// assert_eq!(queue.drain_dead_letters()[0].id(), id);
    /// ```
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Why the job was dead-lettered.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::builder().max_attempts(1).build().unwrap();
    /// queue.push(7).unwrap();
    /// queue.try_lease().unwrap().nack().unwrap();
    /// assert_eq!(queue.drain_dead_letters()[0].reason(), leasequeue::DeadLetterReason::MaxAttempts);
    /// ```
    pub fn reason(&self) -> DeadLetterReason {
        self.reason
    }

    /// How many attempts the job had (leases handed out, less releases).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::builder()
    ///     .max_attempts(2)
    ///     .backoff(leasequeue::Backoff::none())
    ///     .build()
    ///     .unwrap();
    /// queue.push(7).unwrap();
    /// queue.try_lease().unwrap().nack().unwrap();
    /// queue.try_lease().unwrap().nack().unwrap();
    /// assert_eq!(queue.drain_dead_letters()[0].attempts(), 2);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The failed attempts, oldest first; only the most recent are kept (see
    /// [`QueueBuilder::history_limit`](crate::QueueBuilder::history_limit)).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(7).unwrap();
    /// queue.try_lease().unwrap().reject("bad input").unwrap();
    /// let dead = queue.drain_dead_letters();
    /// assert_eq!(dead[0].history().len(), 1);
    /// ```
    pub fn history(&self) -> &[Failure] {
        &self.history
    }

    /// When the job was first pushed, on the queue's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let before = queue.clock().now();
    /// queue.push(7).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// assert!(queue.drain_dead_letters()[0].pushed_at() >= before);
    /// ```
    pub fn pushed_at(&self) -> Instant {
        self.pushed_at
    }

    /// When the job was dead-lettered, on the queue's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(7).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// let dead = queue.drain_dead_letters();
    /// assert!(dead[0].dead_lettered_at() >= dead[0].pushed_at());
    /// ```
    pub fn dead_lettered_at(&self) -> Instant {
        self.dead_lettered_at
    }

    /// The shared job.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(7).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// let job: std::sync::Arc<i32> = queue.drain_dead_letters().pop().unwrap().into_shared();
    /// assert_eq!(*job, 7);
    /// ```
    pub fn into_shared(self) -> Arc<T> {
        self.job
    }

    /// The job by value, if no lease or clone of this dead letter still shares it. Inside a
    /// [`DeadLetterSink`], and on another thread while the sink that sent it there has not returned yet,
    /// the queue still holds a copy (see [`DeadLetterSink`]).
    ///
    /// # Errors
    ///
    /// Gives the dead letter back when the job is still shared.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(String::from("x")).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// let dead = queue.drain_dead_letters().pop().unwrap();
    /// let copy = dead.clone();
    /// let dead = dead.try_into_job().unwrap_err(); // `copy` shares it
    /// drop(copy);
    /// assert_eq!(dead.try_into_job().unwrap(), "x");
    /// ```
    pub fn try_into_job(self) -> Result<T, Self> {
        let DeadLetter { job, id, reason, attempts, history, pushed_at, dead_lettered_at } = self;
        Arc::try_unwrap(job).map_err(|job| DeadLetter {
            job,
            id,
            reason,
            attempts,
            history,
            pushed_at,
            dead_lettered_at,
        })
    }

    /// The job by value, cloned only if it is still shared.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(String::from("x")).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// assert_eq!(queue.drain_dead_letters().pop().unwrap().into_job(), "x");
    /// ```
    pub fn into_job(self) -> T
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self.job)
    }
}

impl<T> Clone for DeadLetter<T> {
    fn clone(&self) -> Self {
        DeadLetter {
            job: Arc::clone(&self.job),
            id: self.id,
            reason: self.reason,
            attempts: self.attempts,
            history: self.history.clone(),
            pushed_at: self.pushed_at,
            dead_lettered_at: self.dead_lettered_at,
        }
    }
}

impl<T> fmt::Debug for DeadLetter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("id", &self.id)
            .field("reason", &self.reason)
            .field("attempts", &self.attempts)
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

/// Where a queue sends its dead letters.
///
/// [`send`](DeadLetterSink::send) is called once per dead letter, on the thread whose operation
/// dead-lettered the job (an outcome, a lease drop, a lease or push that observed a lapse, or
/// [`TestClock::advance`](crate::TestClock::advance)), outside every lock of the queue: it may call back
/// into the queue. It should not block for long.
///
/// A sink that cannot take a dead letter returns it, and the queue keeps it in its built-in dead-letter
/// store. A sink that panics has the panic caught (counted in [`Stats::panics`](crate::Stats::panics) and
/// reported to the [panic hook](crate::QueueBuilder::on_panic)) and the dead letter kept in the store too:
/// a dead letter is never silently dropped, and the panic never reaches the caller whose operation
/// dead-lettered the job. For this the queue keeps a copy of the dead letter (it shares the job) until
/// `send` returns, so within `send`, [`DeadLetter::try_into_job`] finds the job shared: take it with
/// [`into_shared`](DeadLetter::into_shared), or borrow it with [`job`](DeadLetter::job).
///
/// Implemented for closures, for `crossbeam_channel::Sender<DeadLetter<T>>` (with `try_send`, so a full
/// channel hands the dead letter back instead of blocking) and for `Queue<DeadLetter<T>>` (a dead-letter
/// queue that can itself be leased, inspected and redriven; with `try_push`).
///
/// # Examples
///
/// ```
/// use leasequeue::{DeadLetter, Queue};
///
/// let dlq: Queue<DeadLetter<&str>> = Queue::new();
/// let queue = Queue::builder().dead_letter(dlq.clone()).build().unwrap();
/// queue.push("poison").unwrap();
/// queue.try_lease().unwrap().reject("malformed").unwrap();
///
/// let dead = dlq.try_lease().unwrap();
/// assert_eq!(*dead.job(), "poison");
/// dead.ack().unwrap();
/// ```
pub trait DeadLetterSink<T>: Send + Sync {
    /// Takes one dead letter.
    ///
    /// # Errors
    ///
    /// Returns the dead letter when the sink cannot take it; the queue then keeps it in its built-in store.
    fn send(&self, dead: DeadLetter<T>) -> Result<(), DeadLetter<T>>;
}

impl<T, F> DeadLetterSink<T> for F
where
    F: Fn(DeadLetter<T>) + Send + Sync,
{
    fn send(&self, dead: DeadLetter<T>) -> Result<(), DeadLetter<T>> {
        self(dead);
        Ok(())
    }
}

impl<T: Send + Sync> DeadLetterSink<T> for crossbeam_channel::Sender<DeadLetter<T>> {
    fn send(&self, dead: DeadLetter<T>) -> Result<(), DeadLetter<T>> {
        self.try_send(dead).map_err(crossbeam_channel::TrySendError::into_inner)
    }
}

impl<T: Send + Sync + 'static> DeadLetterSink<T> for Queue<DeadLetter<T>> {
    fn send(&self, dead: DeadLetter<T>) -> Result<(), DeadLetter<T>> {
        self.try_push(dead).map(drop).map_err(crate::TryPushError::into_inner)
    }
}
