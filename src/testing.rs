//! Helpers for testing your own jobs: run a queue's jobs on the calling thread through every retry,
//! inline processing, inspection, and assertions that read well.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::clock::NEVER;
use crate::core::Listed;
use crate::handler::{self, Handler, IntoOutcome, Job, Outcome, Settled};
use crate::{DeadLetter, DeadLetterReason, JobId, Lease, PushError, Queue};

/// How many handler runs [`Queue::run_until_idle`] and [`Inline`] make at most in one call, so that a job
/// deferred forever cannot hang a test.
pub const MAX_RUNS: usize = 100_000;

/// What [`Queue::run_until_idle`] (or [`Inline`], or a pool's
/// [`run_until_idle`](crate::WorkerPool::run_until_idle)) did.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::builder().clock(leasequeue::TestClock::new()).build().unwrap();
/// queue.push(3).unwrap();
/// let summary = queue.run_until_idle(|job| if job.attempt() < *job { Err("not yet") } else { Ok(()) });
/// assert_eq!((summary.acked, summary.retried), (1, 2));
/// assert_eq!(summary.attempts.len(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Jobs acked.
    pub acked: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Jobs dead-lettered: rejected, or failed on their last attempt.
    pub dead_lettered: u64,
    /// Jobs deferred without spending an attempt.
    pub deferred: u64,
    /// Handler panics (counted in `retried` or `dead_lettered` too).
    pub panicked: u64,
    /// Every handler run, in order.
    pub attempts: Vec<Attempt>,
    /// False if the run stopped at [`MAX_RUNS`] with work left.
    pub complete: bool,
}

/// One handler run in a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The job.
    pub id: JobId,
    /// Its attempt number.
    pub attempt: u32,
    /// When the run started, on the queue's clock.
    pub at: Instant,
    /// What the handler decided; a panic shows as a retry with the panic's message.
    pub outcome: Outcome,
}

impl Summary {
    /// Counts one handler run and keeps it.
    pub(crate) fn record(&mut self, attempt: Attempt, panicked: bool, settled: Option<Settled>) {
        if panicked {
            self.panicked += 1;
        }
        match settled {
            Some(Settled::Acked) => self.acked += 1,
            Some(Settled::Retrying) => self.retried += 1,
            Some(Settled::Exhausted | Settled::Rejected) => self.dead_lettered += 1,
            Some(Settled::Deferred) => self.deferred += 1,
            None => {}
        }
        self.attempts.push(attempt);
    }

    /// The runs of one job, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::builder().clock(leasequeue::TestClock::new()).build().unwrap();
    /// let id = queue.push(()).unwrap();
    /// let summary = queue.run_until_idle(|_job| ());
    /// assert_eq!(summary.attempts_of(id).count(), 1);
    /// ```
    pub fn attempts_of(&self, id: JobId) -> impl Iterator<Item = &Attempt> + '_ {
        self.attempts.iter().filter(move |a| a.id == id)
    }
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// Runs `handler` on this thread on every job that is due, then, on a [`TestClock`](crate::TestClock),
    /// moves the clock to the next delayed job or retry and goes on, until no job is ready or scheduled.
    /// The handler's return value settles each job as in a [`WorkerPool`](crate::WorkerPool): retries
    /// back off, and dead letters go to the sink or store. On the system clock it only runs what is due
    /// now. Stops after [`MAX_RUNS`] runs.
    ///
    /// A test of your own handler then reads: push, run until idle, assert.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Backoff, Queue, TestClock};
    ///
    /// let clock = TestClock::new();
    /// let queue = Queue::builder()
    ///     .clock(clock.clone())
    ///     .backoff(Backoff::exponential(Duration::from_secs(60), 2.0))
    ///     .build()
    ///     .unwrap();
    /// queue.push("flaky").unwrap();
    /// let summary = queue.run_until_idle(|job| if job.attempt() < 4 { Err("503") } else { Ok(()) });
    /// assert_eq!((summary.retried, summary.acked), (3, 1));
    /// assert_eq!(clock.elapsed(), Duration::from_secs(60 + 120 + 240));
    /// ```
    pub fn run_until_idle<F, R>(&self, handler: F) -> Summary
    where
        F: Fn(Job<'_, T>) -> R,
        R: IntoOutcome,
    {
        drain(self, &|job: Job<'_, T>| handler(job).into_outcome(), true)
    }

    /// Every live job (ready, delayed, waiting behind its group, leased), oldest first, with its attempt
    /// and its next time. For tests and debugging: it copies the queue's bookkeeping, O(n).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{JobState, PushOptions, Queue};
    ///
    /// let queue = Queue::new();
    /// queue.push(1).unwrap();
    /// queue.push_with(2, PushOptions::new().delay(Duration::from_secs(60))).unwrap();
    /// let jobs = queue.jobs();
    /// assert_eq!(jobs[0].state, JobState::Ready);
    /// assert_eq!(jobs[1].state, JobState::Delayed);
    /// ```
    pub fn jobs(&self) -> Vec<JobInfo> {
        self.fire_schedules();
        let clock = self.clock().clone();
        self.list_jobs(|st| st.jobs().iter().map(|listed| job_info(listed, &clock)).collect())
    }
}

/// A live job as [`Queue::jobs`] reports it.
pub(crate) fn job_info(listed: &Listed, clock: &crate::Clock) -> JobInfo {
    use crate::core::Phase;
    let due = listed.due;
    let (state, next) = match listed.phase {
        Phase::Ready => (JobState::Ready, None),
        Phase::Delayed => (JobState::Delayed, Some(due)),
        Phase::Waiting => (JobState::Waiting, (due != NEVER).then_some(due)),
        Phase::Leased | Phase::Free => (JobState::Leased, Some(due)),
    };
    JobInfo {
        id: JobId::from_u64(listed.id),
        state,
        attempt: listed.attempt,
        priority: listed.priority,
        pushed_at: clock.instant(listed.pushed_at),
        next: next.map(|t| clock.instant(t)),
    }
}

/// Runs due jobs on this thread; with `jump`, moves a test clock to the next timed event when none is due.
fn drain<T, H>(queue: &Queue<T>, handler: &H, jump: bool) -> Summary
where
    T: Send + Sync + 'static,
    H: Fn(Job<'_, T>) -> Outcome + ?Sized,
{
    let clock = queue.clock();
    let test_clock = clock.test_clock().filter(|_| jump);
    let cancelled = AtomicBool::new(false);
    let mut summary = Summary::default();
    while summary.attempts.len() < MAX_RUNS {
        match queue.try_lease() {
            Ok(mut lease) => {
                let (id, attempt, at) = (lease.id(), lease.attempt(), clock.now());
                let ran = handler::run(handler, &mut lease, clock, &cancelled, NEVER);
                let (outcome, panicked) = handler::outcome_of(&ran);
                // An error: the lease was lost (the handler let the test clock run past it).
                let settled = handler::settle(lease, ran, Lease::ack).ok();
                summary.record(Attempt { id, attempt, at, outcome }, panicked, settled);
            }
            Err(_) => match (&test_clock, queue.next_event()) {
                (Some(test), Some(at)) => test.advance_to(at),
                _ => {
                    summary.complete = true;
                    return summary;
                }
            },
        }
    }
    summary.complete = queue.try_lease().is_err() && queue.next_event().is_none();
    summary
}

/// A job's state, as [`Queue::jobs`] reports it.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::new();
/// queue.push(1).unwrap();
/// let lease = queue.try_lease().unwrap();
/// assert_eq!(queue.jobs()[0].state, leasequeue::JobState::Leased);
/// # lease.ack().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Can be leased now.
    Ready,
    /// Scheduled for later, or backing off after a failure.
    Delayed,
    /// Held back behind an earlier job of its group.
    Waiting,
    /// In flight under a lease.
    Leased,
}

/// One live job, as [`Queue::jobs`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's id.
    pub id: JobId,
    /// Its state.
    pub state: JobState,
    /// Its current (or last) attempt; 0 before its first lease.
    pub attempt: u32,
    /// Its priority level.
    pub priority: u8,
    /// When it was pushed.
    pub pushed_at: Instant,
    /// Delayed or waiting: when it becomes ready (at the earliest). Leased: its lease deadline.
    pub next: Option<Instant>,
}

/// Runs a handler on the pushing thread: every push runs the jobs that are due at once, with the same
/// retry and dead-letter semantics as a [`WorkerPool`](crate::WorkerPool), and
/// [`run_until_idle`](Inline::run_until_idle) goes on through every retry on a test clock. For unit
/// tests that do not care about concurrency.
///
/// # Examples
///
/// ```
/// use leasequeue::{Inline, Outcome, Queue, TestClock};
///
/// let queue = Queue::builder().clock(TestClock::new()).max_attempts(3).build().unwrap();
/// let inline = Inline::new(queue.clone(), |job| {
///     if *job == "poison" { Outcome::reject("bad input") } else { Outcome::Done }
/// });
/// assert_eq!(inline.push("hello").unwrap().acked, 1); // handled before `push` returns
/// assert_eq!(inline.push("poison").unwrap().dead_lettered, 1);
/// ```
pub struct Inline<T: Send + Sync + 'static> {
    queue: Queue<T>,
    handler: Box<Handler<T>>,
}

impl<T: Send + Sync + 'static> Inline<T> {
    /// Runs `handler` on `queue`'s jobs on the threads that push.
    ///
    /// # Examples
    ///
    /// ```
    /// let inline = leasequeue::Inline::new(leasequeue::Queue::new(), |job| println!("{}", *job));
    /// inline.push("hi").unwrap();
    /// ```
    pub fn new<F, R>(queue: Queue<T>, handler: F) -> Self
    where
        F: Fn(Job<'_, T>) -> R + Send + Sync + 'static,
        R: IntoOutcome,
    {
        Inline { queue, handler: Box::new(move |job| handler(job).into_outcome()) }
    }

    /// Pushes a job, then runs every job due now (this one included) before returning.
    ///
    /// # Errors
    ///
    /// As [`Queue::push`]: the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// let inline = leasequeue::Inline::new(leasequeue::Queue::new(), |_job| Err::<(), _>("down"));
    /// let summary = inline.push(1).unwrap();
    /// assert_eq!(summary.retried, 1); // backing off now
    /// ```
    pub fn push(&self, job: T) -> Result<Summary, PushError<T>> {
        self.queue.push(job)?;
        Ok(drain(&self.queue, &*self.handler, false))
    }

    /// Runs every due job, moving a test clock through every delay and retry, until nothing is left to
    /// do (see [`Queue::run_until_idle`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue: leasequeue::Queue<u8> =
    ///     leasequeue::Queue::builder().clock(leasequeue::TestClock::new()).build().unwrap();
    /// let inline = leasequeue::Inline::new(queue, |job| if job.attempt() < 2 { Err("once") } else { Ok(()) });
    /// inline.push(1).unwrap();
    /// assert_eq!(inline.run_until_idle().acked, 1);
    /// ```
    pub fn run_until_idle(&self) -> Summary {
        drain(&self.queue, &*self.handler, true)
    }

    /// The queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let inline = leasequeue::Inline::new(leasequeue::Queue::<u8>::new(), |_job| ());
    /// assert!(inline.queue().is_empty());
    /// ```
    pub fn queue(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Inline<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline").field("queue", &self.queue).finish_non_exhaustive()
    }
}

/// Asserts that the queue's built-in dead-letter store holds a dead letter with `reason` whose job
/// matches `matches`, and returns it.
///
/// # Panics
///
/// When there is none; the message lists the dead letters the store holds.
///
/// # Examples
///
/// ```
/// use leasequeue::{assert_dead_lettered, DeadLetterReason, Queue};
///
/// let queue = Queue::new();
/// queue.push("corrupt.mp4").unwrap();
/// queue.try_lease().unwrap().reject("not a video").unwrap();
/// let dead = assert_dead_lettered(&queue, DeadLetterReason::Rejected, |job| job.ends_with(".mp4"));
/// assert_eq!(dead.history()[0].message.as_deref(), Some("not a video"));
/// ```
#[track_caller]
pub fn assert_dead_lettered<T: Send + Sync + 'static>(
    queue: &Queue<T>,
    reason: DeadLetterReason,
    matches: impl Fn(&T) -> bool,
) -> DeadLetter<T> {
    let dead = queue.dead_letters();
    if let Some(found) = dead.iter().find(|d| d.reason() == reason && matches(d.job())) {
        return found.clone();
    }
    let held: Vec<String> = dead
        .iter()
        .map(|d| {
            format!("{} ({}, {} attempts, matches: {})", d.id(), d.reason(), d.attempts(), matches(d.job()))
        })
        .collect();
    panic!("no dead letter with reason {reason} matches; the store holds [{}]", held.join(", "));
}
