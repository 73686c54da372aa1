//! `WorkerPool`: competing-consumer threads running a handler over a queue.

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::clock::{ticks, Listener, Tick, NEVER};
use crate::core::Token;
use crate::handler::{self, Handler, IntoOutcome, Job, Ran, Settled};
use crate::store::Backlog;
use crate::store::{LeaseFail, LeaseParams, Wait};
use crate::{Attempt, BuildError, JobId, Lease, LeaseLost, PanicSite, Queue, Summary, MAX_RUNS};

type PanicHook = Box<dyn Fn(JobId, &str) + Send + Sync>;
type WorkerHook = Box<dyn Fn(usize) + Send + Sync>;

/// A pool of worker threads, each leasing jobs from one queue and running a handler on them (competing
/// consumers: each job goes to one worker at a time).
///
/// The handler's return value settles the job (see [`IntoOutcome`]): `Ok` acks, `Err` retries with
/// backoff (the error's text goes into the job's history), and an [`Outcome`](crate::Outcome) can also dead-letter the
/// job now or defer it without spending an attempt. A panicking handler is caught: the attempt counts as
/// failed with the panic's message, and the worker goes on.
///
/// The pool scales between a minimum and a maximum number of workers (at most [`MAX_WORKERS`]): a push
/// that leaves at least [`scale_up_depth`](WorkerPoolBuilder::scale_up_depth) jobs ready while every
/// worker is busy starts another worker, and so does a worker that leases a job while that many more are
/// ready; a worker idle for [`idle_timeout`](WorkerPoolBuilder::idle_timeout) retires, down to the minimum.
/// So a burst that arrives while every worker runs a long job scales the pool at once, whether it is
/// pushed job by job or as a batch.
///
/// **Batches.** A worker settles the job it ran and takes the next in one critical section. Under a
/// backlog it takes several at once, its share of the backlog and no more than it runs in half a
/// visibility timeout at the handler's average run time: on a durable queue up to 16, which share one
/// sync; in memory on the system clock up to 256 and no more than it runs in about a millisecond, whose
/// acks wait for the batch's last, which acks them all and takes the next batch under one lock (a handler
/// that runs a millisecond or longer takes its jobs one at a time). A job's lease is then taken when its
/// batch is (its deadline counts from there), and [`PoolStats::succeeded`] counts its ack when it lands,
/// at most a batch later.
/// A failed job is settled at once, and [`shutdown`](WorkerPool::shutdown) acks the jobs a worker
/// finished and had not acked yet. On a test clock every job is settled on its own, as it ends.
///
/// [`shutdown`](WorkerPool::shutdown) stops gracefully. Dropping the pool without it only signals the
/// workers to stop (it never blocks): they stop leasing, running handlers see
/// [`Job::is_cancelled`], and each job still settles through its handler's outcome (or, if the handler
/// hangs, its lease lapses and the job is delivered again). Jobs still queued stay in the queue. Nothing
/// is lost either way.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Queue, WorkerPool};
///
/// fn send_email(to: &str) -> Result<(), String> {
///     println!("welcome, {to}");
///     Ok(())
/// }
///
/// let queue: Queue<&str> = Queue::new();
/// let pool = WorkerPool::builder(queue.clone()).workers(4).build(|job| send_email(&job)).unwrap();
/// queue.push("ada@example.com").unwrap();
/// queue.close();       // no more jobs: the workers drain the queue and exit
/// let stats = pool.join();
/// assert_eq!(stats.succeeded, 1);
/// ```
pub struct WorkerPool<T: Send + Sync + 'static> {
    shared: Arc<Shared<T>>,
}

/// The jobs a worker leased and has not started, oldest first. The first of those an ack took is
/// fresh (leased just as the job before it ended): it runs without extending its lease. On a durable
/// queue the others wait their turn, and their visibility is counted again when they start; in memory
/// they are all fresh (see `deferring`).
struct Taken<T: Send + Sync + 'static> {
    leases: VecDeque<(Lease<T>, bool)>,
    /// The worker's own handle of the queue (see `Queue::share`), for the acks it makes for a batch.
    handle: Queue<T>,
    /// Whether the worker takes batches (a durable queue).
    batched: bool,
    /// Whether the worker takes batches in memory and defers the acks of a batch's jobs to the ack of
    /// its last, which acks them all and takes the next batch under one lock (the queue's system clock;
    /// on a test clock every job is settled on its own). A batch is sized as on a durable queue (see
    /// `Shared::batch_size`), so that its last job starts within half its visibility timeout; its
    /// leases' timeouts count from when they were taken.
    deferring: bool,
    /// The ack just made was deferred (its outcome is counted when the batch's acks land).
    deferred_now: bool,
    /// The token of the job whose ack was deferred last, until the next job's start moves it to the
    /// slot's `done` under the lock it takes anyway (no user code runs in between), or the batch's end
    /// acks it with the others.
    done_now: Option<Token>,
    /// When the batch now running was taken, and how many jobs it had (to time the handler).
    batch_from: Tick,
    batch_len: usize,
    /// The visibility a lease is taken with: the pool's job timeout under a heartbeat, else the queue's.
    visibility: Option<Tick>,
    own_visibility: Duration,
    own_ticks: Tick,
    /// Buffers kept from one batch's acks to the next, so that a warm worker allocates none: the tokens
    /// (swapped with the slot's list of deferred acks) and the acks' outcomes.
    spare_tokens: Vec<Token>,
    spare_acked: Vec<Result<(), LeaseLost>>,
}

impl<T: Send + Sync + 'static> Taken<T> {
    /// The tokens of the jobs whose acks were deferred, the slot's list left empty (with the spare
    /// buffer's room), and as many outcomes to fill in.
    fn deferred(&mut self, slot: &WorkerSlot) -> (Vec<Token>, Vec<Result<(), LeaseLost>>) {
        let mut tokens = mem::take(&mut self.spare_tokens);
        mem::swap(&mut tokens, &mut slot.jobs.lock().done);
        tokens.extend(self.done_now.take());
        let mut acked = mem::take(&mut self.spare_acked);
        acked.clear();
        acked.resize(tokens.len(), Ok(()));
        (tokens, acked)
    }

    /// Keeps the buffers of [`deferred`](Taken::deferred) for the next batch.
    fn keep(&mut self, mut tokens: Vec<Token>, acked: Vec<Result<(), LeaseLost>>) {
        tokens.clear();
        self.spare_tokens = tokens;
        self.spare_acked = acked;
    }
}

/// The most jobs a worker of a durable queue takes at once (see `Shared::batch_size`): they share one
/// sync, and a crash of the process spends an attempt of each, so a few.
const MAX_TAKEN: usize = 16;

/// The most jobs a worker of an in-memory queue takes at once (see `Taken::deferring`).
const MAX_DEFERRED: usize = 256;

/// How long a batch of a worker of an in-memory queue runs at most, at the handler's average run time:
/// the acks of its jobs wait for its last, and a job pushed meanwhile (a more urgent one too) waits for
/// a worker to end its batch. A handler that runs this long or longer takes its jobs one at a time.
const DEFERRED_SPAN: Duration = Duration::from_millis(1);

/// How long a worker waits after the store failed before it leases again: doubled after each failure in
/// a row (a database that is down is not asked hundreds of times a second), up to [`STORE_RETRY_MAX`].
const STORE_RETRY: Duration = Duration::from_millis(200);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

/// The wait after `failures` store failures in a row (one at least).
fn store_retry(failures: u32) -> Duration {
    STORE_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(5)).min(STORE_RETRY_MAX)
}

struct Shared<T: Send + Sync + 'static> {
    queue: Queue<T>,
    handler: Box<Handler<T>>,
    cfg: Config,
    /// Workers stop leasing.
    stopping: AtomicBool,
    /// Running handlers are asked to stop.
    cancelled: AtomicBool,
    state: Mutex<PoolState>,
    /// Signalled when a worker thread finishes, and when a test clock advances.
    changed: Condvar,
    busy: AtomicUsize,
    counters: Counters,
    /// Whether handler runs are recorded for `run_until_idle`: always on a test clock, else during the call.
    recording: AtomicBool,
    /// The runs recorded since the pool was built or since `run_until_idle` last returned.
    runs: Mutex<Vec<Run>>,
    /// How long a handler runs, on the queue's clock (a moving average, in ticks; [`NEVER`] before the
    /// first run): it bounds how many jobs a worker of a durable queue takes at once.
    run_time: AtomicU64,
}

/// What may start a worker (see `Shared::scale_up`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Growth {
    Push,
    Lease,
}

/// One handler run as `run_until_idle` records it: the attempt, whether it panicked, how it was settled.
type Run = (Attempt, bool, Option<Settled>);

/// The most worker threads a pool may have; [`WorkerPoolBuilder::build`] refuses a larger maximum. A pool
/// that scaled towards `usize::MAX` threads under a backlog would abort the process when the system ran
/// out of them.
///
/// # Examples
///
/// ```
/// use leasequeue::{Queue, WorkerPool, MAX_WORKERS};
/// let err = WorkerPool::builder(Queue::<u8>::new()).workers(1..=MAX_WORKERS + 1).build(|_job| ()).unwrap_err();
/// assert_eq!(err.option(), "workers");
/// ```
pub const MAX_WORKERS: usize = 4096;

fn cfg_scales(cfg: &Config) -> bool {
    cfg.workers.max > cfg.workers.min
}

/// The pool's configuration: what the builder collects, checked by `build`.
struct Config {
    workers: WorkerRange,
    name: String,
    job_timeout: Option<Duration>,
    heartbeat: bool,
    idle_timeout: Duration,
    scale_up_depth: usize,
    on_panic: Option<PanicHook>,
    on_start: Option<WorkerHook>,
    on_stop: Option<WorkerHook>,
}

#[derive(Default)]
struct PoolState {
    /// Workers counted for scaling (a retiring worker leaves this count before its thread ends).
    workers: usize,
    /// Worker threads not yet finished.
    alive: usize,
    next_index: usize,
    threads: Vec<Worker>,
}

struct Worker {
    slot: Arc<WorkerSlot>,
    handle: JoinHandle<()>,
}

struct WorkerSlot {
    index: usize,
    /// The worker's jobs that shutdown may have to settle: one lock a job (see [`Shared::start`]).
    jobs: Mutex<SlotJobs>,
    /// Whether the job in `jobs.running` has returned from its handler: the worker settles it itself,
    /// and shutdown leaves it alone. Set without the lock (one store a job instead of a lock), cleared
    /// under it with `running`.
    ran: AtomicBool,
    /// Whether the worker counts as busy for its whole batch (see [`hold_busy`]); only the worker's own
    /// thread reads and writes it.
    holding_busy: AtomicBool,
    finished: AtomicBool,
}

/// What a worker's slot shows shutdown.
#[derive(Default)]
struct SlotJobs {
    /// The lease of the job this worker is running, for shutdown to take back unless `WorkerSlot::ran`.
    running: Option<Token>,
    /// The leases of jobs this worker ran to success whose acks wait for the end of its batch (see
    /// `Taken::deferring`): acked by the worker, or by shutdown if the worker is still running then.
    done: Vec<Token>,
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    dead_lettered: AtomicU64,
    deferred: AtomicU64,
    lost: AtomicU64,
}

/// Counters of a [`WorkerPool`].
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::<u8>::new();
/// let pool = leasequeue::WorkerPool::builder(queue).workers(2).build(|_job| ()).unwrap();
/// assert_eq!(pool.stats().workers, 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Workers now.
    pub workers: usize,
    /// Workers running a handler now.
    pub busy: usize,
    /// Handler runs finished (any outcome, panics included). A run whose ack waits for the end of its
    /// batch (see [`WorkerPool`], "Batches") counts when the ack lands.
    pub processed: u64,
    /// Jobs acked.
    pub succeeded: u64,
    /// Failed attempts (errors and panics), the last attempt of a job that was then dead-lettered
    /// included: `failed` = [`Summary::retried`](crate::Summary::retried) + the jobs dead-lettered after
    /// their last attempt.
    pub failed: u64,
    /// Handler panics.
    pub panicked: u64,
    /// Jobs dead-lettered: rejected, or failed on their last attempt.
    pub dead_lettered: u64,
    /// Jobs deferred ([`Outcome::Defer`](crate::Outcome::Defer): the lease released without spending an
    /// attempt, as [`Lease::release_after`]; the queue counts them in
    /// [`Stats::released`](crate::Stats::released)).
    pub deferred: u64,
    /// Outcomes refused because the lease was no longer current (it lapsed and the job was leased
    /// again, or shutdown took it back).
    pub lost: u64,
}

/// What [`WorkerPool::shutdown`] did.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let queue = leasequeue::Queue::<u8>::new();
/// let pool = leasequeue::WorkerPool::builder(queue).workers(2).build(|_job| ()).unwrap();
/// let report = pool.shutdown(Duration::from_secs(1));
/// assert_eq!((report.completed, report.released, report.threads_left), (0, 0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs whose handlers finished during the grace period (and those that finished just before, whose
    /// acks waited for the end of their batch: see [`WorkerPool`], "Batches").
    pub completed: u64,
    /// Jobs still running when the grace period ended, whose leases were released (no attempt spent):
    /// they are ready in the queue again.
    pub released: usize,
    /// Worker threads still running a handler when the grace period ended, left to finish on their own
    /// (threads are never killed; their late outcomes are refused).
    pub threads_left: usize,
}

/// How many workers a pool runs: a fixed number (`4`) or a range to scale in (`2..=8`).
///
/// # Examples
///
/// ```
/// use leasequeue::WorkerRange;
/// assert_eq!(WorkerRange::from(4), WorkerRange::from(4..=4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerRange {
    min: usize,
    max: usize,
}

impl From<usize> for WorkerRange {
    fn from(n: usize) -> Self {
        WorkerRange { min: n, max: n }
    }
}

impl From<RangeInclusive<usize>> for WorkerRange {
    fn from(range: RangeInclusive<usize>) -> Self {
        WorkerRange { min: *range.start(), max: *range.end() }
    }
}

impl<T: Send + Sync + 'static> WorkerPool<T> {
    /// A builder for a pool over `queue`.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<String>::new();
    /// let pool = leasequeue::WorkerPool::builder(queue).workers(1..=8).build(|job| {
    ///     println!("{}", *job);
    /// });
    /// assert!(pool.is_ok());
    /// ```
    pub fn builder(queue: Queue<T>) -> WorkerPoolBuilder<T> {
        WorkerPoolBuilder::new(queue)
    }

    /// The number of workers now.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .workers(3)
    ///     .build(|_job| ())
    ///     .unwrap();
    /// assert_eq!(pool.workers(), 3);
    /// ```
    pub fn workers(&self) -> usize {
        self.shared.state.lock().workers
    }

    /// The pool's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .workers(1)
    ///     .build(|_job| ())
    ///     .unwrap();
    /// assert_eq!(pool.stats().processed, 0);
    /// ```
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// The queue the pool works on.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::new();
    /// let pool = leasequeue::WorkerPool::builder(queue.clone()).workers(1).build(|_job| ()).unwrap();
    /// pool.queue().push(1).unwrap();
    /// ```
    pub fn queue(&self) -> &Queue<T> {
        &self.shared.queue
    }

    /// Stops gracefully: stop leasing, raise cancellation ([`Job::is_cancelled`]), wait up to `grace`
    /// (on the queue's clock) for running jobs to finish, release the leases of jobs still running (no
    /// attempt spent), join the threads that finished, and report. Jobs still queued stay in the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let queue = leasequeue::Queue::<u8>::new();
    /// let pool = leasequeue::WorkerPool::builder(queue.clone()).workers(2).build(|_job| ()).unwrap();
    /// let report = pool.shutdown(Duration::from_secs(25)); // Sidekiq's default grace
    /// assert_eq!(report.threads_left, 0);
    /// ```
    pub fn shutdown(self, grace: Duration) -> ShutdownReport {
        let shared = &self.shared;
        let before = shared.counters.processed.load(Ordering::Acquire);
        shared.stop();
        let clock = shared.queue.clock();
        let deadline = clock.tick().saturating_add(ticks(grace));
        let mut state = shared.state.lock();
        while state.alive > 0 && clock.tick() < deadline {
            clock.wait(&shared.changed, &mut state, deadline);
        }
        let threads = mem::take(&mut state.threads);
        drop(state);

        // Take back the jobs still running. A worker whose slot is empty runs no handler: it is on its
        // way out (one that leased a job just now sees the stop flag and releases it unrun).
        let mut released = 0;
        let mut running = Vec::with_capacity(threads.len());
        for worker in &threads {
            // Jobs the worker ran to success and has not acked yet (see `Taken::deferring`).
            let (done, token) = {
                let mut jobs = worker.slot.jobs.lock();
                let token = jobs.running.take().filter(|_| !worker.slot.ran.load(Ordering::Acquire));
                (mem::take(&mut jobs.done), token)
            };
            if !done.is_empty() {
                let mut acked = vec![Ok(()); done.len()];
                shared.queue.ack_many_then_lease_into(&done, &mut acked, 0, None, &mut |_| {});
                shared.count_acks(&acked);
            }
            if let Some(token) = token {
                if shared.queue.revoke_lease(token).is_ok() {
                    released += 1;
                }
                running.push(worker.slot.index);
            }
        }
        let completed = shared.counters.processed.load(Ordering::Acquire) - before;
        // A thread still in a handler is left to finish it on its own (threads are never killed).
        let threads_left = join_workers(threads, |w| !running.contains(&w.slot.index));
        ShutdownReport { completed, released, threads_left }
    }

    /// For tests on a [`TestClock`](crate::TestClock): waits until no job is ready or leased and every
    /// worker is idle, then moves the clock to the queue's next timed event (a delayed job or retry coming
    /// due, a time to live) and goes on, until no job is ready, leased, running or scheduled. Returns a
    /// [`Summary`] of every handler run the pool made meanwhile, with counts final: each run is settled and
    /// counted before this returns. On a test clock the summary covers every run since the pool was built
    /// or since `run_until_idle` last returned (an auto-advancing clock lets workers run before this is
    /// called), up to the last [`MAX_RUNS`]; on the system clock, the runs during the
    /// call. Its attempts are listed in the order they started on the queue's clock (then by job id and
    /// attempt), so a seeded scenario gives the same summary every run. On the system clock it only waits until the queue and the pool are
    /// idle. Waits by yielding, not sleeping.
    ///
    /// It moves the clock only while nothing is leased, so it never lapses a running job's lease. It stops
    /// (with [`Summary::complete`] false) after [`MAX_RUNS`] handler runs, for a handler
    /// that defers forever, or when the pool has no worker left to do the work.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Backoff, Queue, TestClock, WorkerPool};
    ///
    /// let clock = TestClock::new();
    /// let queue: Queue<&str> = Queue::builder()
    ///     .clock(clock.clone())
    ///     .backoff(Backoff::fixed(Duration::from_secs(3600)))
    ///     .build()
    ///     .unwrap();
    /// let pool = WorkerPool::builder(queue.clone())
    ///     .workers(2)
    ///     .build(|job| if job.attempt() < 3 { Err("flaky") } else { Ok(()) })
    ///     .unwrap();
    /// queue.push("job").unwrap();
    /// let summary = pool.run_until_idle();
    /// assert_eq!((summary.retried, summary.acked), (2, 1));
    /// assert!(summary.complete);
    /// assert_eq!(summary.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    /// assert_eq!(clock.elapsed(), Duration::from_secs(2 * 3600));
    /// ```
    pub fn run_until_idle(&self) -> Summary {
        let shared = &self.shared;
        let queue = &shared.queue;
        let test = queue.clock().test_clock();
        let manual = queue.clock().is_manual();
        shared.recording.store(true, Ordering::Release);
        let start = shared.counters.processed.load(Ordering::Acquire);
        let complete = loop {
            if shared.counters.processed.load(Ordering::Acquire) - start >= MAX_RUNS as u64 {
                break false;
            }
            // One look under the queue's lock: whether a job is ready or leased, and the next event. Then
            // the workers: a worker counts as busy from before its lease is settled until after it has
            // counted the outcome, so "idle queue, then no worker busy" means every run is counted.
            let (active, next) = queue.activity();
            if active || shared.busy.load(Ordering::Acquire) > 0 {
                if shared.stopping.load(Ordering::Acquire) || self.workers() == 0 {
                    break false; // nobody left to do the work
                }
                thread::yield_now();
                continue;
            }
            // Nothing is leased, so moving the clock to `next` lapses no lease. A worker that moved it
            // there first (an auto-advancing clock) and leased the job makes this a no-op.
            match (&test, next) {
                (Some(test), next) if next != NEVER => test.advance_to(queue.clock().instant(next)),
                _ => break true,
            }
        };
        shared.recording.store(manual, Ordering::Release);
        let mut runs = mem::take(&mut *shared.runs.lock());
        // Workers record as they finish; the summary lists runs as they started, which is reproducible.
        runs.sort_by_key(|(a, _, _)| (a.at, a.id, a.attempt));
        let mut summary = Summary { complete, ..Summary::default() };
        for (attempt, panicked, settled) in runs {
            summary.record(attempt, panicked, settled);
        }
        summary
    }

    /// Waits until every worker has exited on its own, which they do once the queue is closed and
    /// drained, and returns the final counters. Blocks forever if the queue is never closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let pool = leasequeue::WorkerPool::builder(queue.clone()).workers(2).build(|_job| ()).unwrap();
    /// for i in 0..10 {
    ///     queue.push(i).unwrap();
    /// }
    /// queue.close();
    /// assert_eq!(pool.join().succeeded, 10);
    /// ```
    pub fn join(self) -> PoolStats {
        let shared = &self.shared;
        let mut state = shared.state.lock();
        while state.alive > 0 {
            shared.changed.wait(&mut state);
        }
        let threads = mem::take(&mut state.threads);
        drop(state);
        let left = join_workers(threads, |_| false);
        debug_assert_eq!(left, 0, "every worker has finished");
        shared.stats()
    }
}

/// Joins the worker threads that have finished, and those `exiting` says are on their way out (they run
/// no user code any more, so joining waits at most for their last instructions); returns how many it left
/// running.
fn join_workers(threads: Vec<Worker>, exiting: impl Fn(&Worker) -> bool) -> usize {
    let mut left = 0;
    for worker in threads {
        if worker.slot.finished.load(Ordering::Acquire) || exiting(&worker) {
            let _ = worker.handle.join(); // a worker's panics are caught inside it: nothing to report
        } else {
            left += 1;
        }
    }
    left
}

impl<T: Send + Sync + 'static> Drop for WorkerPool<T> {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for WorkerPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.shared.cfg.name)
            .field("workers", &self.shared.cfg.workers)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Shared<T> {
    fn stats(&self) -> PoolStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Acquire);
        PoolStats {
            workers: self.state.lock().workers,
            busy: self.busy.load(Ordering::Acquire),
            processed: load(&c.processed),
            succeeded: load(&c.succeeded),
            failed: load(&c.failed),
            panicked: load(&c.panicked),
            dead_lettered: load(&c.dead_lettered),
            deferred: load(&c.deferred),
            lost: load(&c.lost),
        }
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.cancelled.store(true, Ordering::Release);
        self.queue.interrupt();
        let _state = self.state.lock(); // a worker waiting after a store failure checks `stopping` under it
        self.changed.notify_all();
    }

    /// Starts one worker thread. The caller holds the state lock.
    fn spawn(self: &Arc<Self>, state: &mut PoolState) -> std::io::Result<()> {
        let slot = Arc::new(WorkerSlot {
            index: state.next_index,
            jobs: Mutex::new(SlotJobs::default()),
            ran: AtomicBool::new(false),
            holding_busy: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        });
        let shared = Arc::clone(self);
        let worker_slot = Arc::clone(&slot);
        let handle = thread::Builder::new()
            .name(format!("{}-{}", self.cfg.name, state.next_index))
            .spawn(move || shared.work(&worker_slot))?;
        state.next_index += 1;
        state.workers += 1;
        state.alive += 1;
        state.threads.push(Worker { slot, handle });
        Ok(())
    }

    /// A worker thread's life. User code it calls (the hooks, the handler, what settling a job runs) cannot
    /// end it: its panics are caught where they are called. Should one escape all the same, the thread's
    /// bookkeeping is undone on the way out (`Leaving`), so that the pool's counts stay true and `join`
    /// returns.
    fn work(self: &Arc<Self>, slot: &WorkerSlot) {
        let mut leaving = Leaving { shared: self, slot, counted: true };
        let catcher = self.queue.catcher();
        if let Some(hook) = &self.cfg.on_start {
            catcher.call(PanicSite::WorkerStart, None, || hook(slot.index));
        }
        // The worker's own handle of the queue: its leases count on it alone (see `Queue::share`).
        let queue = &self.queue.clone();
        let visibility = self.cfg.heartbeat.then(|| self.cfg.job_timeout.map_or(NEVER, ticks));
        // A worker settles the job it ran and takes the next in one critical section (see `Taken`). On a
        // durable queue, where every lease waits for a sync, it takes a few jobs at once when there is a
        // backlog, so that they share one, and runs them in turn.
        let own_ticks = visibility.unwrap_or_else(|| queue.visibility());
        let mut taken = Taken {
            leases: VecDeque::new(),
            handle: queue.share(),
            batched: queue.is_durable(),
            deferring: !queue.is_durable() && !queue.clock().is_manual(),
            deferred_now: false,
            done_now: None,
            batch_from: 0,
            batch_len: 0,
            visibility,
            own_visibility: Duration::from_nanos(own_ticks),
            own_ticks,
            spare_tokens: Vec::new(),
            spare_acked: Vec::new(),
        };
        let mut store_failures = 0;
        loop {
            if let Some(lease) = self.next_taken(&mut taken) {
                if !self.start(slot, lease, &mut taken) {
                    break;
                }
                continue;
            }
            let may_retire = self.cfg.workers.max > self.cfg.workers.min
                && self.state.lock().workers > self.cfg.workers.min;
            let wait = if may_retire {
                Wait::Until(queue.clock().tick().saturating_add(ticks(self.cfg.idle_timeout)))
            } else {
                Wait::Until(NEVER)
            };
            let max = self.take_size(&taken);
            if self.flush(queue, slot, &mut taken, max) {
                continue; // the batch's deferred acks landed, and the next batch was taken with them
            }
            release_busy(&self.busy, slot); // the batch is over (see `hold_busy`)
            let params = LeaseParams { wait, visibility, stop: Some(&self.stopping) };
            let fresh = taken.deferring;
            taken.batch_from = queue.clock().tick();
            let leased = queue.lease_into(params, max, &mut |lease| taken.leases.push_back((lease, fresh)));
            taken.batch_len = taken.leases.len();
            store_failures = if matches!(leased, Err(LeaseFail::Store(_))) { store_failures + 1 } else { 0 };
            match leased {
                Ok(()) => {
                    let Some((lease, _)) = taken.leases.pop_front() else { continue };
                    if !self.start(slot, lease, &mut taken) {
                        break;
                    }
                }
                Err(LeaseFail::NoJob | LeaseFail::Limited(_)) => {
                    let mut state = self.state.lock();
                    if state.workers > self.cfg.workers.min {
                        state.workers -= 1;
                        leaving.counted = false;
                        break;
                    }
                }
                Err(LeaseFail::Stopped | LeaseFail::Closed) => break, // stopped, or closed and drained
                Err(LeaseFail::Store(_)) => {
                    // The store failed (a journal's disk, a lost connection to PostgreSQL): what it could not
                    // record goes back; wait (longer after each failure in a row), then try again until
                    // stopped. A PostgreSQL store connects again at the next call.
                    for (lease, _) in taken.leases.drain(..) {
                        let _ = lease.release();
                    }
                    let mut state = self.state.lock();
                    if !self.stopping.load(Ordering::Acquire) {
                        let until = queue.clock().tick().saturating_add(ticks(store_retry(store_failures)));
                        queue.clock().wait(&self.changed, &mut state, until);
                    }
                }
            }
        }
        // Jobs taken and not started go back unrun, their attempt not spent; jobs done are acked.
        for (lease, _) in taken.leases.drain(..) {
            let _ = lease.release();
        }
        self.flush(queue, slot, &mut taken, 0);
        release_busy(&self.busy, slot);
        // The worker's last acks did not wait for a durable store's sync (see `handler::settle`): now they do.
        // A failure fails the store, which every later call reports.
        let _ = queue.commit();
        if let Some(hook) = &self.cfg.on_stop {
            catcher.call(PanicSite::WorkerStop, None, || hook(slot.index));
        }
    }

    /// Runs a job this worker leased, unless the pool is stopping (it goes back unrun then). Returns
    /// whether the worker goes on.
    fn start(self: &Arc<Self>, slot: &WorkerSlot, lease: Lease<T>, taken: &mut Taken<T>) -> bool {
        {
            let mut jobs = slot.jobs.lock();
            jobs.done.extend(taken.done_now.take());
            jobs.running = Some(lease.token());
            slot.ran.store(false, Ordering::Relaxed); // published with `running` by the lock
        }
        if self.stopping.load(Ordering::Acquire) {
            // Shutdown began while this job was being leased: give it back unrun.
            let _ = lease.release();
            slot.jobs.lock().running = None;
            return false;
        }
        self.scale_up(Growth::Lease);
        self.run(slot, lease, taken);
        true
    }

    /// The next job this worker took and has not started, if any. One taken with others has its
    /// visibility counted from now, when its own run starts, as if it had been leased alone; one whose
    /// lease lapsed and was taken by another worker meanwhile is let go.
    fn next_taken(&self, taken: &mut Taken<T>) -> Option<Lease<T>> {
        while let Some((mut lease, fresh)) = taken.leases.pop_front() {
            if self.stopping.load(Ordering::Acquire) {
                taken.leases.push_front((lease, fresh));
                return None;
            }
            if fresh || lease.extend(taken.own_visibility).is_ok() {
                return Some(lease);
            }
        }
        None
    }

    /// How many jobs a worker takes at its next lease: one, or a batch (see
    /// [`batch_size`](Shared::batch_size)).
    fn take_size(&self, taken: &Taken<T>) -> usize {
        // The last job of a batch starts within half its lease.
        let in_lease = taken.own_ticks / 2;
        if taken.batched {
            self.batch_size(in_lease, MAX_TAKEN)
        } else if taken.deferring {
            self.batch_size(in_lease.min(ticks(DEFERRED_SPAN)), MAX_DEFERRED)
        } else {
            1
        }
    }

    /// Acks the jobs this worker ran whose acks were deferred, if any, and takes the next batch of up to
    /// `max` jobs in the same critical section. Counts the acks' outcomes (as busy meanwhile, for
    /// `run_until_idle`). Returns whether it took a job.
    fn flush(&self, queue: &Queue<T>, slot: &WorkerSlot, taken: &mut Taken<T>, max: usize) -> bool {
        let (tokens, mut acked) = taken.deferred(slot);
        if tokens.is_empty() {
            taken.keep(tokens, acked);
            return false;
        }
        let _busy = Busy::new(&self.busy, slot, false);
        taken.batch_from = queue.clock().tick();
        let leases = &mut taken.leases;
        queue.ack_many_then_lease_into(&tokens, &mut acked, max, taken.visibility, &mut |next| {
            leases.push_back((next, true))
        });
        taken.batch_len = taken.leases.len();
        self.count_acks(&acked);
        taken.keep(tokens, acked);
        !taken.leases.is_empty()
    }

    /// Counts the runs whose acks were deferred, and their acks' outcomes.
    fn count_acks(&self, acked: &[Result<(), LeaseLost>]) {
        let ok = acked.iter().filter(|r| r.is_ok()).count() as u64;
        let c = &self.counters;
        c.succeeded.fetch_add(ok, Ordering::AcqRel);
        c.lost.fetch_add(acked.len() as u64 - ok, Ordering::AcqRel);
        c.processed.fetch_add(acked.len() as u64, Ordering::AcqRel);
    }

    /// Acks a job that is done. With nothing taken ahead (and the pool not stopping), the same critical
    /// section takes the next job(s), the first to run at once; with jobs taken ahead, the same call to
    /// the store gives the next of them its fresh visibility (see `next_taken`); otherwise a plain ack.
    /// Either way the ack does not wait for a durable store's sync (see `Lease::ack_unsynced`).
    fn ack(&self, slot: &WorkerSlot, lease: Lease<T>, taken: &mut Taken<T>) -> Result<(), LeaseLost> {
        if self.stopping.load(Ordering::Acquire) {
            return lease.ack_unsynced();
        }
        if taken.deferring && !self.recording.load(Ordering::Acquire) {
            return self.ack_deferring(slot, lease, taken);
        }
        if let Some((next, fresh)) = taken.leases.front_mut() {
            if *fresh {
                return lease.ack_unsynced();
            }
            // The next taken job starts now: its visibility counts from here (see `next_taken`), set in
            // the same call as the ack. One that is no longer held is let go.
            let (acked, held) = lease.ack_and_extend(next, taken.own_visibility);
            if held {
                *fresh = true;
            } else {
                taken.leases.pop_front();
            }
            return acked;
        }
        let max = self.take_size(taken);
        let leases = &mut taken.leases;
        lease.ack_and_take(max, taken.visibility, &mut |next| {
            let fresh = leases.is_empty();
            leases.push_back((next, fresh));
        })
    }

    /// An ack while the worker defers them (see `Taken::deferring`): a job of the batch with more to
    /// run leaves its ack to the batch's end; the batch's last acks every job of it and takes the next
    /// batch under one lock.
    fn ack_deferring(
        &self,
        slot: &WorkerSlot,
        lease: Lease<T>,
        taken: &mut Taken<T>,
    ) -> Result<(), LeaseLost> {
        if !taken.leases.is_empty() {
            // The next job's start shows it to shutdown (see `Taken::done_now`).
            taken.done_now = Some(lease.disarm());
            taken.deferred_now = true;
            return Ok(());
        }
        let now = self.queue.clock().tick();
        if taken.batch_len > 0 {
            self.note_run_time(now.saturating_sub(taken.batch_from) / taken.batch_len as Tick);
        }
        let (mut tokens, mut acked) = taken.deferred(slot);
        tokens.push(lease.disarm());
        acked.push(Ok(()));
        let max = self.take_size(taken);
        let (queue, leases) = (&taken.handle, &mut taken.leases);
        queue.ack_many_then_lease_into(&tokens, &mut acked, max, taken.visibility, &mut |next| {
            leases.push_back((next, true))
        });
        (taken.batch_from, taken.batch_len) = (now, taken.leases.len());
        let last = acked.pop().unwrap_or(Err(LeaseLost::Gone));
        self.count_acks(&acked);
        taken.keep(tokens, acked);
        last
    }

    /// Counts a handler's run of `took` ticks into the moving average of [`run_time`](Shared::run_time).
    fn note_run_time(&self, took: Tick) {
        let average = match self.run_time.load(Ordering::Relaxed) {
            NEVER => took,
            average => average - average / 8 + took / 8,
        };
        self.run_time.store(average, Ordering::Relaxed);
    }

    /// How many jobs a worker takes at once when it takes batches (see [`batch_len`]).
    fn batch_size(&self, span: Tick, most: usize) -> usize {
        let workers = self.state.lock().workers.max(1);
        batch_len(self.queue.ready_hint() / workers, span, self.run_time.load(Ordering::Relaxed), most)
    }

    /// Starts a worker if the pool may grow and the backlog has reached `scale_up_depth`: after a push only
    /// when every worker is busy (an idle one will take the job); after a lease whatever the others do
    /// (the worker that leased leaves the backlog to others).
    #[inline]
    fn scale_up(self: &Arc<Self>, after: Growth) {
        if cfg_scales(&self.cfg) && self.queue.ready_hint() >= self.cfg.scale_up_depth {
            self.grow(after);
        }
    }

    /// [`scale_up`](Shared::scale_up) once the backlog calls for it.
    #[inline(never)]
    fn grow(self: &Arc<Self>, after: Growth) {
        let mut state = self.state.lock();
        let all_busy = self.busy.load(Ordering::Acquire) >= state.workers;
        if state.workers < self.cfg.workers.max
            && (all_busy || after == Growth::Lease)
            && !self.stopping.load(Ordering::Acquire)
        {
            // A failed spawn (out of threads) leaves the pool as it is; the next push or lease tries again.
            let _ = self.spawn(&mut state);
            let finished: Vec<Worker> = extract_finished(&mut state.threads);
            drop(state);
            join_workers(finished, |_| false);
        }
    }

    /// Runs the handler on one job and settles the job with its outcome.
    fn run(&self, slot: &WorkerSlot, mut lease: Lease<T>, taken: &mut Taken<T>) {
        let id = lease.id();
        // Recorded only while `run_until_idle` asks (always on a test clock): runs that start meanwhile.
        let recording = self.recording.load(Ordering::Acquire);
        if taken.deferring && !recording {
            hold_busy(&self.busy, slot); // for the whole batch (see `Taken::deferring`)
        }
        let mut busy = Busy::new(&self.busy, slot, true);
        let clock = self.queue.clock();
        let timeout_at = self.cfg.job_timeout.map_or(NEVER, |d| clock.tick().saturating_add(ticks(d)));
        let (attempt, at) = (lease.attempt(), recording.then(|| clock.now()));
        // Timed only where it sizes the batches a worker takes (see `batch_size`).
        let started = self.queue.is_durable().then(|| clock.tick());
        let ran = handler::run(&*self.handler, &mut lease, clock, &self.cancelled, timeout_at);
        // The handler has returned: the worker settles the job itself from here, so a shutdown must not
        // take it back, nor count the worker as one still running a handler (another worker may run the
        // job's retry, and succeed, before this one reaches its bookkeeping). It counts as busy until
        // its outcome is counted (`run_until_idle` waits for that).
        busy.ran();
        if let Some(started) = started {
            self.note_run_time(clock.tick().saturating_sub(started));
        }
        let recorded = at.map(|at| (at, handler::outcome_of(&ran)));
        let c = &self.counters;
        let count = |counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::AcqRel);
        };
        if let Ran::Panicked(message) = &ran {
            count(&c.panicked);
            if let Some(hook) = &self.cfg.on_panic {
                self.queue.catcher().call(PanicSite::HandlerPanicHook, Some(id), || hook(id, message));
            }
        }
        let settled = handler::settle(lease, ran, |lease| self.ack(slot, lease, taken));
        let deferred = mem::take(&mut taken.deferred_now);
        if taken.leases.is_empty() && self.queue.ready_hint() == 0 {
            // No next lease is likely to follow at once and wait for the ack's sync: wait for it here.
            let _ = self.queue.commit();
        }
        match settled {
            Ok(Settled::Acked) if deferred => {} // counted when the batch's acks land
            Ok(Settled::Acked) => count(&c.succeeded),
            Ok(Settled::Retrying) => count(&c.failed),
            Ok(Settled::Exhausted) => {
                count(&c.failed);
                count(&c.dead_lettered);
            }
            Ok(Settled::Rejected) => count(&c.dead_lettered),
            Ok(Settled::Deferred) => count(&c.deferred),
            Err(_) => count(&c.lost),
        }
        if let Some((at, (outcome, panicked))) = recorded {
            let mut runs = self.runs.lock();
            // Bounded: a test-clock pool that never calls `run_until_idle` keeps its last `MAX_RUNS` runs.
            if runs.len() >= MAX_RUNS {
                runs.drain(..MAX_RUNS / 2);
            }
            runs.push((Attempt { id, attempt, at, outcome }, panicked, settled.ok()));
        }
        if !deferred {
            count(&c.processed);
        }
    }
}

/// A worker busy with a job: counted in `busy` and, while its handler runs, its lease in its slot, until
/// dropped (also while unwinding).
struct Busy<'a> {
    busy: &'a AtomicUsize,
    slot: &'a WorkerSlot,
    /// Whether the slot may still show a job as running (cleared on drop, unless already).
    running: bool,
}

impl<'a> Busy<'a> {
    /// Counts the worker busy, unless it is for its whole batch already (see [`hold_busy`]); `running`:
    /// the slot shows a job running, which the drop clears unless [`ran`](Busy::ran) did.
    fn new(busy: &'a AtomicUsize, slot: &'a WorkerSlot, running: bool) -> Self {
        if !slot.holding_busy.load(Ordering::Relaxed) {
            busy.fetch_add(1, Ordering::AcqRel);
        }
        Busy { busy, slot, running }
    }

    /// The handler has returned: the slot no longer shows the job running, so that a shutdown does not
    /// take it back (the worker settles it itself).
    fn ran(&mut self) {
        self.slot.ran.store(true, Ordering::Release);
        self.running = false;
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.running {
            self.slot.jobs.lock().running = None;
        }
        if !self.slot.holding_busy.load(Ordering::Relaxed) {
            self.busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Counts the worker busy until [`release_busy`], across the jobs of a batch (see `Taken::deferring`): two
/// writes of the pool's shared count per batch instead of per job.
fn hold_busy(busy: &AtomicUsize, slot: &WorkerSlot) {
    if !slot.holding_busy.load(Ordering::Relaxed) {
        busy.fetch_add(1, Ordering::AcqRel);
        slot.holding_busy.store(true, Ordering::Relaxed);
    }
}

/// Ends [`hold_busy`]'s count, if the worker holds one.
fn release_busy(busy: &AtomicUsize, slot: &WorkerSlot) {
    if slot.holding_busy.load(Ordering::Relaxed) {
        slot.holding_busy.store(false, Ordering::Relaxed);
        busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A worker thread's exit bookkeeping, done when its loop ends, also while unwinding.
struct Leaving<'a, T: Send + Sync + 'static> {
    shared: &'a Shared<T>,
    slot: &'a WorkerSlot,
    /// Whether the worker still counts in `workers` (a retiring worker has left the count already).
    counted: bool,
}

impl<T: Send + Sync + 'static> Drop for Leaving<'_, T> {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        if self.counted {
            state.workers -= 1;
        }
        release_busy(&self.shared.busy, self.slot);
        self.slot.finished.store(true, Ordering::Release);
        state.alive -= 1;
        self.shared.changed.notify_all();
    }
}

fn extract_finished(threads: &mut Vec<Worker>) -> Vec<Worker> {
    let (finished, running) =
        mem::take(threads).into_iter().partition(|w| w.slot.finished.load(Ordering::Acquire));
    *threads = running;
    finished
}

impl<T: Send + Sync + 'static> Backlog for Shared<T> {
    fn on_push(self: Arc<Self>) {
        self.scale_up(Growth::Push);
    }
}

impl<T: Send + Sync + 'static> Listener for Shared<T> {
    fn on_advance(&self) {
        let _state = self.state.lock();
        self.changed.notify_all();
    }
}

/// Configures and builds a [`WorkerPool`]. Every option has a default; [`build`](WorkerPoolBuilder::build)
/// checks them.
///
/// | option | default |
/// |---|---|
/// | [`workers`](WorkerPoolBuilder::workers) | the number of CPUs, fixed |
/// | [`name`](WorkerPoolBuilder::name) | `"leasequeue-worker"` (threads `leasequeue-worker-0`, ...) |
/// | [`job_timeout`](WorkerPoolBuilder::job_timeout) | none |
/// | [`heartbeat`](WorkerPoolBuilder::heartbeat) | off: the queue's visibility timeout applies |
/// | [`scale_up_depth`](WorkerPoolBuilder::scale_up_depth) | 1 ready job |
/// | [`idle_timeout`](WorkerPoolBuilder::idle_timeout) | 60 s |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Queue, WorkerPool};
///
/// let queue = Queue::<String>::new();
/// let pool = WorkerPool::builder(queue)
///     .workers(2..=16)
///     .name("thumbnails")
///     .job_timeout(Duration::from_secs(120))
///     .heartbeat(true)
///     .on_panic(|id, message| eprintln!("job {id} panicked: {message}"))
///     .build(|job| -> Result<(), std::io::Error> {
///         println!("thumbnail for {}", *job);
///         Ok(())
///     })
///     .unwrap();
/// # drop(pool);
/// ```
pub struct WorkerPoolBuilder<T: Send + Sync + 'static> {
    queue: Queue<T>,
    cfg: Config,
}

impl<T: Send + Sync + 'static> WorkerPoolBuilder<T> {
    fn new(queue: Queue<T>) -> Self {
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        WorkerPoolBuilder {
            queue,
            cfg: Config {
                workers: WorkerRange::from(cpus),
                name: "leasequeue-worker".to_owned(),
                job_timeout: None,
                heartbeat: false,
                idle_timeout: Duration::from_secs(60),
                scale_up_depth: 1,
                on_panic: None,
                on_start: None,
                on_stop: None,
            },
        }
    }

    /// How many workers: a number (`4`) or a range to scale in (`2..=8`). The minimum must be at least 1.
    /// Default: the number of CPUs.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new()).workers(1..=4);
    /// # let _ = b;
    /// ```
    pub fn workers(mut self, workers: impl Into<WorkerRange>) -> Self {
        self.cfg.workers = workers.into();
        self
    }

    /// The prefix of the worker threads' names. Default `"leasequeue-worker"`.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new()).name("mailer");
    /// # let _ = b;
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.cfg.name = name.into();
        self
    }

    /// A job's own time limit, on the queue's clock: once it passes, [`Job::is_cancelled`] is true (the
    /// handler is expected to stop; threads are never killed), and with
    /// [`heartbeat`](WorkerPoolBuilder::heartbeat) the lease stops being kept alive. Default none. Must
    /// not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .job_timeout(Duration::from_secs(300));
    /// # let _ = b;
    /// ```
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.job_timeout = Some(timeout);
        self
    }

    /// Keeps the lease of a running job alive for as long as the handler runs, up to the job timeout:
    /// a job that outruns the queue's visibility timeout is not redelivered while its handler works, but
    /// a hung handler's job lapses at the job timeout and is delivered elsewhere. Without a job timeout
    /// the lease is kept for as long as the handler runs. Default off: the queue's visibility timeout
    /// applies and the handler extends it with [`Job::extend`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .job_timeout(Duration::from_secs(600))
    ///     .heartbeat(true);
    /// # let _ = b;
    /// ```
    pub fn heartbeat(mut self, on: bool) -> Self {
        self.cfg.heartbeat = on;
        self
    }

    /// Scaling up: a push that leaves at least `depth` jobs ready while every worker is busy, or a worker
    /// that leases a job while at least `depth` more are ready, starts another worker, up to the maximum.
    /// Default 1. Must not be zero. The backlog is read without the queue's lock, as the queue last
    /// published it: exact up to 64 ready jobs, within a factor of two above (a deeper `depth` may scale a
    /// little late or early).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .workers(1..=8)
    ///     .scale_up_depth(100);
    /// # let _ = b;
    /// ```
    pub fn scale_up_depth(mut self, depth: usize) -> Self {
        self.cfg.scale_up_depth = depth;
        self
    }

    /// Scaling down: a worker that finds no job for this long (on the queue's clock) retires, down to
    /// the minimum. Default 60 s. Must not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .idle_timeout(Duration::from_secs(5));
    /// # let _ = b;
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.idle_timeout = timeout;
        self
    }

    /// Called with the job id and the panic message when a handler panics (after the panic is caught,
    /// outside every lock).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .on_panic(|id, message| eprintln!("job {id}: {message}"));
    /// # let _ = b;
    /// ```
    pub fn on_panic(mut self, hook: impl Fn(JobId, &str) + Send + Sync + 'static) -> Self {
        self.cfg.on_panic = Some(Box::new(hook));
        self
    }

    /// Called on each worker thread when it starts, with the worker's index.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .on_worker_start(|i| println!("worker {i} up"));
    /// # let _ = b;
    /// ```
    pub fn on_worker_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.cfg.on_start = Some(Box::new(hook));
        self
    }

    /// Called on each worker thread when it stops, with the worker's index.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::WorkerPool::builder(leasequeue::Queue::<u8>::new())
    ///     .on_worker_stop(|i| println!("worker {i} down"));
    /// # let _ = b;
    /// ```
    pub fn on_worker_stop(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.cfg.on_stop = Some(Box::new(hook));
        self
    }

    /// Starts the minimum number of workers, running `handler` on each job.
    ///
    /// # Errors
    ///
    /// A minimum of zero workers, a maximum below the minimum, a zero job timeout, idle timeout or
    /// scale-up depth, or a worker thread that could not be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u32>::new();
    /// let err = leasequeue::WorkerPool::builder(queue).workers(0).build(|_job| ()).unwrap_err();
    /// assert_eq!(err.option(), "workers");
    /// ```
    pub fn build<F, R>(self, handler: F) -> Result<WorkerPool<T>, BuildError>
    where
        F: Fn(Job<'_, T>) -> R + Send + Sync + 'static,
        R: IntoOutcome,
    {
        let invalid = |option, message| Err(BuildError::new("worker pool", option, message));
        let cfg = self.cfg;
        let WorkerRange { min, max } = cfg.workers;
        if min == 0 {
            return invalid("workers", "must be at least 1");
        }
        if max < min {
            return invalid("workers", "must not have a maximum below its minimum");
        }
        if max > MAX_WORKERS {
            return invalid("workers", "must not exceed 4096 (MAX_WORKERS) threads");
        }
        if cfg.job_timeout == Some(Duration::ZERO) {
            return invalid("job_timeout", "must not be zero");
        }
        if cfg.idle_timeout.is_zero() {
            return invalid("idle_timeout", "must not be zero");
        }
        if cfg.scale_up_depth == 0 {
            return invalid("scale_up_depth", "must be at least 1");
        }
        let shared = Arc::new(Shared {
            queue: self.queue,
            handler: Box::new(move |job| handler(job).into_outcome()),
            cfg,
            stopping: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            state: Mutex::new(PoolState::default()),
            changed: Condvar::new(),
            busy: AtomicUsize::new(0),
            counters: Counters::default(),
            recording: AtomicBool::new(false),
            run_time: AtomicU64::new(NEVER),
            runs: Mutex::new(Vec::new()),
        });
        shared.recording.store(shared.queue.clock().is_manual(), Ordering::Release);
        shared.queue.want_ready_hint(); // batches are sized by it
        let listener: Arc<dyn Listener> = shared.clone();
        shared.queue.clock().register(Arc::downgrade(&listener) as Weak<dyn Listener>);
        if cfg_scales(&shared.cfg) {
            let watcher: Arc<dyn Backlog> = shared.clone();
            shared.queue.watch_backlog(Arc::downgrade(&watcher));
        }
        let pool = WorkerPool { shared };
        {
            let mut state = pool.shared.state.lock();
            for _ in 0..min {
                if let Err(cause) = pool.shared.spawn(&mut state) {
                    drop(state);
                    return Err(BuildError::new(
                        "worker pool",
                        "workers",
                        "could not all be spawned as threads",
                    )
                    .caused_by(cause));
                }
            }
        }
        Ok(pool)
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for WorkerPoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cfg = &self.cfg;
        f.debug_struct("WorkerPoolBuilder")
            .field("workers", &cfg.workers)
            .field("name", &cfg.name)
            .field("job_timeout", &cfg.job_timeout)
            .field("heartbeat", &cfg.heartbeat)
            .field("scale_up_depth", &cfg.scale_up_depth)
            .field("idle_timeout", &cfg.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// How many jobs a worker takes at once when it takes batches: its `share` of the backlog, at most
/// `most`, and no more than it runs within `span` at the handler's average `run_time` (one before the
/// first run, when `run_time` is [`NEVER`]); one at least.
fn batch_len(share: usize, span: Tick, run_time: Tick, most: usize) -> usize {
    let in_time = match run_time {
        NEVER => 1,
        run_time => usize::try_from(span / run_time.max(1)).unwrap_or(usize::MAX),
    };
    share.min(in_time).clamp(1, most)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_the_workers_share_of_the_backlog_within_its_span_and_cap() {
        let span = ticks(DEFERRED_SPAN);
        assert_eq!(span, 1_000_000, "a millisecond, in ticks");
        // A quick handler under a deep backlog: the cap.
        assert_eq!(batch_len(1_000_000, span, 100, MAX_DEFERRED), 256);
        // A shallow backlog: the worker's share of it.
        assert_eq!(batch_len(40, span, 100, MAX_DEFERRED), 40);
        // A 10 us handler: what runs in the span.
        assert_eq!(batch_len(1_000_000, span, 10_000, MAX_DEFERRED), 100);
        // A handler as slow as the span or slower, before any run, or no backlog: one at a time.
        assert_eq!(batch_len(1_000_000, span, 1_000_000, MAX_DEFERRED), 1);
        assert_eq!(batch_len(1_000_000, span, 5_000_000, MAX_DEFERRED), 1);
        assert_eq!(batch_len(1_000_000, span, NEVER, MAX_DEFERRED), 1);
        assert_eq!(batch_len(0, span, 100, MAX_DEFERRED), 1);
        // A run time of 0 ticks (a test clock) divides by one.
        assert_eq!(batch_len(1_000_000, span, 0, MAX_DEFERRED), 256);
    }

    #[test]
    fn the_wait_after_store_failures_doubles_up_to_its_cap() {
        let waits: Vec<u64> = [1, 2, 3, 4, 5, 6, 7, 1000].map(|n| store_retry(n).as_millis() as u64).to_vec();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(store_retry(0), STORE_RETRY);
    }
}
