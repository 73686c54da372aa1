//! apalis-core's `MemoryStorage`, the most-used Rust job crate's in-memory backend, on W1 to W4.
//!
//! It cannot be shared by several workers (`BackendFactory` is not supported), so one worker drains it on a
//! tokio runtime with as many threads as the other contenders have consumers. It has no leases, redelivery
//! or dead letters; W4's retries come from the `apalis` crate's retry layer, which runs a failed task again
//! in place rather than handing it back to the storage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Instant;

use apalis::layers::retry::RetryPolicy;
use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::memory::{MemorySink, MemoryStorage, MemoryStorageError};
use apalis_core::backend::TaskSink;
use apalis_core::error::BoxDynError;
use apalis_core::task::task_id::{RandomId, TaskId};
use apalis_core::task::Task;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;

use crate::{latency, rate, validity, FailOnce, Row, Seen};

/// What a handler needs: handlers are plain `async fn`s, so a run's state lives in a static.
struct Run {
    seen: Seen,
    done: AtomicU64,
    target: u64,
    failures: AtomicU64,
    fail_once: FailOnce,
    /// Push-to-handle latency per job, in nanoseconds (W3).
    latency: Vec<AtomicU64>,
    epoch: Instant,
}

impl Run {
    fn new(n: u64, with_latency: bool) -> Self {
        Run {
            seen: Seen::new(n),
            done: AtomicU64::new(0),
            target: n,
            failures: AtomicU64::new(0),
            fail_once: FailOnce::new(n),
            latency: (0..if with_latency { n } else { 0 }).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    fn stamp(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Counts one handled job; the last one stops the worker.
    fn finish(&self, ctx: &WorkerContext) {
        if self.done.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            let _ = ctx.stop();
        }
    }
}

static DRAIN: OnceLock<Run> = OnceLock::new();
static STEADY: OnceLock<Run> = OnceLock::new();
static FAILING: OnceLock<Run> = OnceLock::new();

async fn drain(job: u64, ctx: WorkerContext) {
    let run = DRAIN.get().expect("set before the worker starts");
    run.seen.mark(job);
    run.finish(&ctx);
}

async fn steady((job, at): (u64, u64), ctx: WorkerContext) {
    let run = STEADY.get().expect("set before the worker starts");
    run.seen.mark(job);
    run.latency[job as usize].store(run.stamp().saturating_sub(at), Ordering::Relaxed);
    run.finish(&ctx);
}

async fn fail_once(job: u64, ctx: WorkerContext) -> Result<(), BoxDynError> {
    let run = FAILING.get().expect("set before the worker starts");
    if run.fail_once.fails(job) {
        run.failures.fetch_add(1, Ordering::Relaxed);
        return Err("transient".into());
    }
    run.seen.mark(job);
    run.finish(&ctx);
    Ok(())
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime")
}

/// W1 (push) and W2 (drain with one worker).
pub fn w1_w2(n: u64, threads: usize, rows: &mut Vec<Row>) {
    let run = DRAIN.get_or_init(|| Run::new(n, false));
    runtime(threads).block_on(async {
        let mut storage = MemoryStorage::new();
        let start = Instant::now();
        for i in 0..n {
            storage.push(i).await.expect("push");
        }
        rows.push(Row {
            workload: "W1 push",
            contender: "apalis MemoryStorage",
            jobs_per_sec: rate(n, start.elapsed()),
            note: String::new(),
        });
        let start = Instant::now();
        let worker = WorkerBuilder::new("peers").backend(storage).build(drain);
        worker.run().await.expect("worker");
        rows.push(Row {
            workload: "W2 drain",
            contender: "apalis MemoryStorage",
            jobs_per_sec: rate(n, start.elapsed()),
            note: validity(run.seen.check()),
        });
    });
}

/// W3: `producers` plain threads push while the worker runs, into a channel bounded like the other
/// contenders' (4 096 jobs).
///
/// The producers send into the storage's channel directly, each with its own sender, as `MemorySink`
/// would: two producers sharing one `MemorySink` can panic in its `start_send` (a `try_lock().unwrap()`
/// on the lock its `poll_ready` took).
pub fn w3(n: u64, producers: u64, threads: usize, rows: &mut Vec<Row>) {
    let per = n / producers;
    let total = per * producers;
    let run = STEADY.get_or_init(|| Run::new(total, true));
    // The bound is the buffer plus one slot per sender.
    let (tx, rx) = futures_channel::mpsc::channel::<Task<(u64, u64)>>(4096 - producers as usize - 1);
    let sink = Box::new(tx.clone().sink_map_err(MemoryStorageError::from));
    let storage =
        MemoryStorage::new_with(MemorySink::new(Arc::new(futures_util::lock::Mutex::new(sink))), rx.boxed());
    let start = Instant::now();
    let ps: Vec<_> = (0..producers)
        .map(|p| {
            let mut tx = tx.clone();
            thread::spawn(move || {
                for i in p * per..(p + 1) * per {
                    let task = Task::new((i, run.stamp()))
                        .into_builder()
                        .task_id(TaskId::from_string(RandomId::default()))
                        .build();
                    futures_executor::block_on(tx.send(task)).expect("send");
                }
            })
        })
        .collect();
    drop(tx);
    runtime(threads).block_on(async {
        let worker = WorkerBuilder::new("peers-steady").backend(storage).build(steady);
        worker.run().await.expect("worker");
    });
    ps.into_iter().for_each(|p| p.join().unwrap());
    let elapsed = start.elapsed();
    let mut h = Histogram::<u64>::new(3).unwrap();
    run.latency.iter().for_each(|l| {
        let _ = h.record(l.load(Ordering::Relaxed));
    });
    rows.push(Row {
        workload: "W3 steady",
        contender: "apalis MemoryStorage",
        jobs_per_sec: rate(total, elapsed),
        note: format!("{}; {}", latency("push-to-handle", &h), validity(run.seen.check())),
    });
}

/// W4: 10 % of jobs fail once, retried at once by the retry layer (3 attempts at most).
pub fn w4(n: u64, threads: usize, rows: &mut Vec<Row>) {
    let run = FAILING.get_or_init(|| Run::new(n, false));
    runtime(threads).block_on(async {
        let mut storage = MemoryStorage::new();
        for i in 0..n {
            storage.push(i).await.expect("push");
        }
        let start = Instant::now();
        let worker = WorkerBuilder::new("peers-failing")
            .backend(storage)
            .retry(RetryPolicy::retries(2))
            .build(fail_once);
        worker.run().await.expect("worker");
        let elapsed = start.elapsed();
        let retries = run.failures.load(Ordering::Relaxed);
        let expected = n.div_ceil(10);
        rows.push(Row {
            workload: "W4 10% fail once",
            contender: "apalis MemoryStorage",
            jobs_per_sec: rate(n, elapsed),
            note: format!(
                "{retries} retries (expected {expected}), retried in place by the retry layer; {}{}",
                validity(run.seen.check()),
                if retries == expected { "" } else { "; INVALID counts" }
            ),
        });
    });
}
