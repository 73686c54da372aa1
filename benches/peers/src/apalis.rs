//! apalis-core's `MemoryStorage`, the most-used Rust job crate's in-memory backend, on W1 to W4.
//!
//! It cannot be shared by several workers (`BackendFactory` is not supported), so one worker drains it on a
//! tokio runtime with as many threads as the other contenders have consumers. It has no leases, redelivery
//! or dead letters; W4's retries come from the `apalis` crate's retry layer, which runs a failed task again
//! in place rather than handing it back to the storage.

use std::sync::atomic::{AtomicUsize, Ordering};
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

use crate::{latency, rate, validity, Row, Tally, ROUNDS};

// Handlers are plain `async fn`s, so a run's tally lives in a static, one per round (see `round`).
static DRAIN: [OnceLock<Tally>; ROUNDS] = [const { OnceLock::new() }; ROUNDS];
static STEADY: [OnceLock<Tally>; ROUNDS] = [const { OnceLock::new() }; ROUNDS];
static FAILING: [OnceLock<Tally>; ROUNDS] = [const { OnceLock::new() }; ROUNDS];
static ROUND: AtomicUsize = AtomicUsize::new(0);

/// The round the next runs belong to (below [`ROUNDS`]): each keeps its own tallies.
pub fn round(round: usize) {
    ROUND.store(round, Ordering::Relaxed);
}

/// The tally of this round's run of `workload`.
fn tally(workload: &'static [OnceLock<Tally>; ROUNDS]) -> &'static OnceLock<Tally> {
    &workload[ROUND.load(Ordering::Relaxed)]
}

/// The last job handled stops the worker.
fn handled(run: &Tally, job: u64, stamp: u64, ctx: &WorkerContext) {
    if run.handled(job, stamp) {
        let _ = ctx.stop();
    }
}

async fn drain(job: u64, ctx: WorkerContext) {
    handled(tally(&DRAIN).get().expect("set before the worker starts"), job, 0, &ctx);
}

async fn steady((job, at): (u64, u64), ctx: WorkerContext) {
    handled(tally(&STEADY).get().expect("set before the worker starts"), job, at, &ctx);
}

async fn fail_once(job: u64, ctx: WorkerContext) -> Result<(), BoxDynError> {
    let run = tally(&FAILING).get().expect("set before the worker starts");
    if run.fails(job) {
        return Err("transient".into());
    }
    handled(run, job, 0, &ctx);
    Ok(())
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime")
}

/// W1 (push) and W2 (drain with one worker).
pub fn w1_w2(n: u64, threads: usize, rows: &mut Vec<Row>) {
    let run = tally(&DRAIN).get_or_init(|| Tally::new(n, false, false));
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
    let run = tally(&STEADY).get_or_init(|| Tally::new(total, false, true));
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
    rows.push(Row {
        workload: "W3 steady",
        contender: "apalis MemoryStorage",
        jobs_per_sec: rate(total, elapsed),
        note: format!("{}; {}", latency("push-to-handle", &run.histogram()), validity(run.seen.check())),
    });
}

/// W4: 10 % of jobs fail once, retried at once by the retry layer (3 attempts at most).
pub fn w4(n: u64, threads: usize, rows: &mut Vec<Row>) {
    let run = tally(&FAILING).get_or_init(|| Tally::new(n, true, false));
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
        let retries = run.failures();
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
