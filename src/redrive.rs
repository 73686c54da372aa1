//! Dead-letter redrive: moving dead letters back into a queue to be tried again.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use crate::clock::{Listener, Tick, NEVER};
use crate::store::Wait;
use crate::{DeadLetter, PanicSite, PushOptions, Queue};

type Filter<T> = Box<dyn Fn(&DeadLetter<T>) -> bool + Send + Sync>;

/// Moves dead letters back into a queue as new jobs (attempts reset), from a queue's built-in dead-letter
/// store or from a dead-letter queue: all of them or those matching a predicate, up to a limit and a rate,
/// until done or cancelled. One redrive runs at a time per call of [`run`](Redrive::run), on the calling
/// thread.
///
/// The job itself is moved, not cloned: the dead letter's shared job becomes the new job. A dead letter
/// the target queue refuses (full or closed) stays where it was, and the redrive stops.
///
/// # Examples
///
/// ```
/// use leasequeue::{DeadLetterReason, Queue};
///
/// let queue = Queue::new();
/// queue.push("webhook").unwrap();
/// queue.try_lease().unwrap().reject("receiver was down").unwrap();
///
/// // The receiver is back: try the rejected jobs again.
/// let report = queue.redrive().matching(|d| d.reason() == DeadLetterReason::Rejected).run();
/// assert_eq!(report.moved, 1);
/// let lease = queue.try_lease().unwrap();
/// assert_eq!((*lease, lease.attempt()), ("webhook", 1));
/// # lease.ack().unwrap();
/// ```
pub struct Redrive<T: Send + Sync + 'static> {
    source: Source<T>,
    target: Queue<T>,
    filter: Option<Filter<T>>,
    limit: usize,
    per_second: Option<u32>,
    cancel: Arc<Cancel>,
}

enum Source<T> {
    Store(Queue<T>),
    Queue(Queue<DeadLetter<T>>),
}

/// Stops a running [`Redrive`] from another thread.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::<u8>::new();
/// let redrive = queue.redrive();
/// let cancel = redrive.canceller();
/// cancel.cancel();
/// assert!(redrive.run().cancelled);
/// ```
#[derive(Clone)]
pub struct RedriveCanceller {
    cancel: Arc<Cancel>,
}

struct Cancel {
    cancelled: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Listener for Cancel {
    fn on_advance(&self) {
        let _guard = self.lock.lock();
        self.wake.notify_all();
    }
}

/// What a [`Redrive`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedriveReport {
    /// Dead letters moved back as new jobs.
    pub moved: usize,
    /// Dead letters left where they were because they did not match.
    pub skipped: usize,
    /// Whether the target refused a job (full or closed), which stopped the redrive.
    pub refused: bool,
    /// Whether the redrive was cancelled.
    pub cancelled: bool,
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// A redrive of this queue's built-in dead-letter store back into this queue (see [`Redrive`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// assert_eq!(queue.redrive().run().moved, 1);
    /// assert_eq!(queue.len(), 1);
    /// ```
    pub fn redrive(&self) -> Redrive<T> {
        Redrive::new(Source::Store(self.clone()), self.clone())
    }
}

impl<T: Send + Sync + 'static> Redrive<T> {
    fn new(source: Source<T>, target: Queue<T>) -> Self {
        let cancel = Arc::new(Cancel {
            cancelled: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let listener: Arc<dyn Listener> = cancel.clone();
        target.clock().register(Arc::downgrade(&listener) as Weak<dyn Listener>);
        Redrive { source, target, filter: None, limit: usize::MAX, per_second: None, cancel }
    }

    /// A redrive from a dead-letter queue (a `Queue<DeadLetter<T>>` used as a sink) into `target`. Dead
    /// letters moved are acked in the dead-letter queue; the others are released, untouched.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{DeadLetter, Queue, Redrive};
    /// let dlq: Queue<DeadLetter<&str>> = Queue::new();
    /// let queue = Queue::builder().dead_letter(dlq.clone()).build().unwrap();
    /// queue.push("job").unwrap();
    /// queue.try_lease().unwrap().reject("bad").unwrap();
    /// assert_eq!(Redrive::from_queue(&dlq, &queue).run().moved, 1);
    /// assert!(dlq.is_empty());
    /// assert_eq!(queue.len(), 1);
    /// ```
    pub fn from_queue(dead_letters: &Queue<DeadLetter<T>>, target: &Queue<T>) -> Self {
        Redrive::new(Source::Queue(dead_letters.clone()), target.clone())
    }

    /// Moves the dead letters into `target` instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let (queue, other) = (leasequeue::Queue::new(), leasequeue::Queue::new());
    /// queue.push(1).unwrap();
    /// queue.try_lease().unwrap().reject("no").unwrap();
    /// queue.redrive().to(&other).run();
    /// assert_eq!(other.len(), 1);
    /// ```
    pub fn to(mut self, target: &Queue<T>) -> Self {
        self.target = target.clone();
        self
    }

    /// Moves only the dead letters for which `filter` is true. It runs outside every lock. A filter that
    /// panics is caught and reported to the target queue's [panic hook](crate::QueueBuilder::on_panic): that
    /// dead letter counts as not matched (skipped, left where it was, no attempt spent), and the redrive
    /// goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let redrive = queue.redrive().matching(|d| *d.job() > 10);
    /// # let _ = redrive;
    /// # queue.push(1).unwrap();
    /// ```
    pub fn matching(mut self, filter: impl Fn(&DeadLetter<T>) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Moves at most `limit` dead letters.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// assert_eq!(queue.redrive().limit(100).run().moved, 0);
    /// ```
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Moves at most `per_second` dead letters per second of the target queue's clock (0 means no limit).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// let redrive = queue.redrive().per_second(50); // gentle on a recovering downstream
    /// # let _ = redrive;
    /// ```
    pub fn per_second(mut self, per_second: u32) -> Self {
        self.per_second = (per_second > 0).then_some(per_second);
        self
    }

    /// A handle that cancels this redrive from another thread, even while it waits for its rate.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// let redrive = queue.redrive();
    /// let canceller = redrive.canceller();
    /// std::thread::spawn(move || canceller.cancel());
    /// # let _ = redrive;
    /// ```
    pub fn canceller(&self) -> RedriveCanceller {
        RedriveCanceller { cancel: Arc::clone(&self.cancel) }
    }

    /// Runs the redrive on this thread until every matching dead letter is moved, the limit is reached, the
    /// target refuses one, or it is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// for i in 0..3 {
    ///     queue.push(i).unwrap();
    ///     queue.try_lease().unwrap().reject("no").unwrap();
    /// }
    /// let report = queue.redrive().limit(2).run();
    /// assert_eq!((report.moved, queue.stats().dead), (2, 1));
    /// ```
    pub fn run(self) -> RedriveReport {
        let mut report = RedriveReport::default();
        let clock = self.target.clock();
        let start = clock.tick();
        // A filter that panics is caught and reported; its dead letter is skipped and stays where it was.
        let catcher = self.target.catcher();
        let matches = |d: &DeadLetter<T>| {
            self.filter
                .as_ref()
                .is_none_or(|f| catcher.call(PanicSite::RedriveFilter, Some(d.id), || f(d)).unwrap_or(false))
        };
        match &self.source {
            Source::Store(queue) => {
                // The filter runs on copies, outside the store's lock; each move then takes its dead letter,
                // which sits where the copy was, less the ones moved before it (unless the store changed).
                for (index, candidate) in queue.dead_letters().into_iter().enumerate() {
                    if !self.proceed(&mut report, start) {
                        break;
                    }
                    if !matches(&candidate) {
                        report.skipped += 1;
                        continue;
                    }
                    let id = candidate.id;
                    drop(candidate);
                    let Some(dead) = queue.take_dead_letter(id, index - report.moved) else { continue };
                    let job = Arc::clone(&dead.job);
                    if self.target.push_shared(job, &PushOptions::new(), Wait::No).is_err() {
                        queue.restore_dead_letter(dead);
                        report.refused = true;
                        break;
                    }
                    queue.dead_letter_moved(id);
                    report.moved += 1;
                }
            }
            Source::Queue(dlq) => {
                let mut kept = Vec::new();
                while self.proceed(&mut report, start) {
                    let Ok(lease) = dlq.try_lease() else { break };
                    if !matches(&lease) {
                        report.skipped += 1;
                        kept.push(lease); // released at the end, so that it is not leased again here
                        continue;
                    }
                    let dead: &DeadLetter<T> = &lease;
                    let job = Arc::clone(&dead.job);
                    if self.target.push_shared(job, &PushOptions::new(), Wait::No).is_err() {
                        kept.push(lease);
                        report.refused = true;
                        break;
                    }
                    let _ = lease.ack();
                    report.moved += 1;
                }
                for lease in kept {
                    let _ = lease.release();
                }
            }
        }
        report.cancelled = self.cancel.cancelled.load(Ordering::Acquire);
        report
    }

    /// Whether to move another dead letter: not cancelled, under the limit, and (waiting if needed) within
    /// the rate.
    fn proceed(&self, report: &mut RedriveReport, start: Tick) -> bool {
        if report.moved >= self.limit || self.cancel.cancelled.load(Ordering::Acquire) {
            return false;
        }
        let Some(rate) = self.per_second else { return true };
        let clock = self.target.clock();
        let due = start.saturating_add(report.moved as u64 * 1_000_000_000 / u64::from(rate));
        let mut guard = self.cancel.lock.lock();
        while clock.tick() < due && !self.cancel.cancelled.load(Ordering::Acquire) {
            clock.wait(&self.cancel.wake, &mut guard, due.min(NEVER - 1));
        }
        !self.cancel.cancelled.load(Ordering::Acquire)
    }
}

impl RedriveCanceller {
    /// Cancels the redrive: it stops before its next move.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// let redrive = queue.redrive();
    /// redrive.canceller().cancel();
    /// assert!(redrive.run().cancelled);
    /// ```
    pub fn cancel(&self) {
        self.cancel.cancelled.store(true, Ordering::Release);
        let _guard = self.cancel.lock.lock();
        self.cancel.wake.notify_all();
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Redrive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redrive")
            .field("limit", &self.limit)
            .field("per_second", &self.per_second)
            .field("cancelled", &self.cancel.cancelled.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedriveCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedriveCanceller").finish_non_exhaustive()
    }
}
