//! effectum: an embedded job queue on SQLite, with leases (expiry and heartbeats), retries with backoff
//! and priorities. It writes every job to disk, so it is reported in its own "durable" group, on a
//! database in a temporary directory, and runs fewer jobs than the in-memory contenders.
//!
//! Its worker runs jobs as tokio tasks; it gets a runtime with as many threads as the other contenders
//! have consumers and a `max_concurrency` of the same number.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use effectum::{Job, JobRunner, Queue, RunningJob, Worker};
use tokio::sync::Notify;

use crate::{durable, latency, rate, validity, Row, Tally};

const JOB_TYPE: &str = "noop";

/// How long a run may take before it is reported as stalled rather than waited for.
const STALL: Duration = Duration::from_secs(60);

/// The state the handler sees (effectum's job context).
#[derive(Debug, Clone)]
struct Ctx(Arc<Run>);

struct Run {
    tally: Tally,
    finished: Notify,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("target", &self.tally.target).finish_non_exhaustive()
    }
}

impl Run {
    fn new(n: u64, fail_tenth: bool, with_latency: bool) -> Arc<Self> {
        Arc::new(Run { tally: Tally::new(n, fail_tenth, with_latency), finished: Notify::new() })
    }

    /// Waits until every job was handled, or reports a stall.
    async fn wait(&self) -> Result<(), String> {
        let finished = self.finished.notified();
        if self.tally.done() >= self.tally.target {
            return Ok(());
        }
        tokio::time::timeout(STALL, finished).await.map_err(|_| {
            format!("INVALID: stalled after {} of {} jobs", self.tally.done(), self.tally.target)
        })
    }
}

/// The payload: the job number and, for W3, when it was pushed.
fn payload(job: u64, at: u64) -> Vec<u8> {
    [job.to_le_bytes(), at.to_le_bytes()].concat()
}

fn unpack(bytes: &[u8]) -> (u64, u64) {
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("16 bytes"));
    (word(0), word(1))
}

async fn handle(job: RunningJob, ctx: Ctx) -> Result<(), String> {
    let run = &ctx.0;
    let (number, at) = unpack(&job.payload);
    if run.tally.fails(number) {
        return Err("transient".into());
    }
    if run.tally.handled(number, at) {
        run.finished.notify_one();
    }
    Ok(())
}

fn job(number: u64, at: u64) -> Job {
    Job::builder(JOB_TYPE)
        .payload(payload(number, at))
        // Three attempts would be `max_retries(2)`, but effectum 0.7.0's retry adds one to the try count
        // of every job in the database (`UPDATE jobs SET current_try = current_try + 1` has no `WHERE`, in
        // src/db_writer/retry.rs), so after a few retries every later failure would be final and its job
        // never handled. With a limit no run reaches, each job still fails once and is retried once.
        .max_retries(1_000_000)
        .backoff_initial_interval(Duration::ZERO)
        .build()
}

/// A fresh database in a temporary directory, removed when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("leasequeue-peers-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDb(dir)
    }

    fn path(&self) -> PathBuf {
        self.0.join("effectum.db")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn worker(queue: &Queue, run: &Arc<Run>, consumers: usize) -> Worker {
    Worker::builder(queue, Ctx(Arc::clone(run)))
        .max_concurrency(consumers as u16)
        .jobs([JobRunner::builder(JOB_TYPE, handle).build()])
        .build()
        .await
        .expect("effectum worker")
}

/// Stops the worker, then the queue.
async fn stop(worker: Worker, queue: &Queue) {
    let _ = worker.unregister(None).await;
    let _ = queue.close(Duration::from_secs(5)).await;
}

fn row(workload: &'static str, n: u64, elapsed: Duration, note: String) -> Row {
    Row { workload, contender: "effectum (SQLite)", jobs_per_sec: rate(n, elapsed), note }
}

/// W1 to W3 on effectum with `n` jobs, W4 with `failing` jobs.
pub fn all(n: u64, failing: u64, consumers: usize, rows: &mut Vec<Row>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(consumers)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // W1 then W2: push one job at a time, then drain.
        let db = TempDb::new("drain");
        let queue = Queue::new(&db.path()).await.expect("effectum queue");
        let start = Instant::now();
        for i in 0..n {
            queue.add_job(job(i, 0)).await.expect("add_job");
        }
        rows.push(row(durable::PUSH_1, n, start.elapsed(), "one transaction each".into()));
        let run = Run::new(n, false, false);
        let start = Instant::now();
        let w = worker(&queue, &run, consumers).await;
        let outcome = run.wait().await;
        let elapsed = start.elapsed();
        stop(w, &queue).await;
        rows.push(row(durable::DRAIN, n, elapsed, outcome.err().unwrap_or_else(|| validity(run.tally.seen.check()))));

        // Batches of 1 000 (`add_jobs`, one transaction each).
        let db = TempDb::new("batch");
        let queue = Queue::new(&db.path()).await.expect("effectum queue");
        let start = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            queue.add_jobs(chunk.iter().map(|&i| job(i, 0)).collect()).await.expect("add_jobs");
        }
        rows.push(row(durable::BATCH, n, start.elapsed(), "one transaction per batch".into()));
        let _ = queue.close(Duration::from_secs(5)).await;

        // W3: two producer tasks push while the worker runs.
        let db = TempDb::new("steady");
        let queue = Arc::new(Queue::new(&db.path()).await.expect("effectum queue"));
        let run = Run::new(n - n % 2, false, true);
        let w = worker(&queue, &run, consumers).await;
        let per = n / 2;
        let start = Instant::now();
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let (queue, run) = (Arc::clone(&queue), Arc::clone(&run));
                tokio::spawn(async move {
                    for i in p * per..(p + 1) * per {
                        queue.add_job(job(i, run.tally.stamp())).await.expect("add_job");
                    }
                })
            })
            .collect();
        for p in producers {
            p.await.expect("producer");
        }
        let outcome = run.wait().await;
        let elapsed = start.elapsed();
        stop(w, &queue).await;
        let note = outcome
            .err()
            .unwrap_or_else(|| format!("{}; {}", latency("push-to-handle", &run.tally.histogram()), validity(run.tally.seen.check())));
        rows.push(row(durable::POOL, run.tally.target, elapsed, note));

        // W4: every tenth job fails once and is retried with no backoff. Fewer jobs: each retry rewrites
        // every row (see `job`), so the run grows with the square of the job count.
        let n = failing;
        let db = TempDb::new("failing");
        let queue = Queue::new(&db.path()).await.expect("effectum queue");
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            queue.add_jobs(chunk.iter().map(|&i| job(i, 0)).collect()).await.expect("add_jobs");
        }
        let run = Run::new(n, true, false);
        let start = Instant::now();
        let w = worker(&queue, &run, consumers).await;
        let outcome = run.wait().await;
        let elapsed = start.elapsed();
        stop(w, &queue).await;
        let retries = run.tally.failures();
        let expected = n.div_ceil(10);
        let note = outcome.err().unwrap_or_else(|| {
            format!(
                "{n} jobs; {retries} retries (expected {expected}), retry limit lifted (see the harness); {}{}",
                validity(run.tally.seen.check()),
                if retries == expected { "" } else { "; INVALID counts" }
            )
        });
        rows.push(row("W4 10% fail once", n, elapsed, note));
    });
}
