//! apalis-postgres 1.0 on the same server and the same PostgreSQL workloads as leasequeue's store (P1 to P5).
//!
//! Each apalis worker takes jobs in batches (its default `batch_size` of 10) and runs them one at a time; the
//! drains run 2 and 8 workers on one tokio runtime, the latency run 2 workers woken by LISTEN/NOTIFY
//! (`with_pubsub`). The harness's own tables are apalis's (`apalis.jobs`), migrated by `setup`; each run uses
//! a queue name of its own, on emptied tables.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis_core::backend::TaskSink;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_postgres::{Config, PgPool, PostgresStorage};

use crate::{latency_note, rate, steady, validity, Row, Seen};

const APALIS: &str = "apalis-postgres 1.0";

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime")
}

/// A pool on the server with apalis's migrations run, and apalis's tables emptied and vacuumed: apalis
/// keeps the rows of finished jobs (and registered workers), which the harness's earlier workloads and
/// runs would otherwise leave for this one to step over.
async fn fresh(url: &str, name: &str) -> (PgPool, PostgresStorage<u64>) {
    let pool = PgPool::connect(url).await.expect("the server");
    PostgresStorage::setup(&pool).await.expect("apalis's migrations");
    for table in ["apalis.jobs", "apalis.workers"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&pool)
            .await
            .expect("empty apalis's tables");
        crate::vacuum(url, table).await;
    }
    let storage = PostgresStorage::new(&pool).with_config(Config::default().queue(name));
    (pool, storage)
}

/// The last job's handler (the `n`th) tells the waiting harness.
struct Run {
    seen: Seen,
    handled: AtomicU64,
    n: u64,
    epoch: Instant,
    /// For P5: push-to-start latency in microseconds, by job.
    latency: Vec<AtomicU64>,
}

impl Run {
    fn new(n: u64, with_latency: bool) -> Arc<Self> {
        Arc::new(Run {
            seen: Seen::new(n),
            handled: AtomicU64::new(0),
            n,
            epoch: Instant::now(),
            latency: (0..if with_latency { n } else { 0 }).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn handle(&self, job: u64, pushed: u64) {
        if let Some(slot) = self.latency.get(job as usize) {
            slot.store(self.micros().saturating_sub(pushed), Ordering::Relaxed);
        }
        self.seen.mark(job);
        self.handled.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits (polling every millisecond) until every job was handled at least once.
    async fn finished(&self) {
        while self.handled.load(Ordering::Acquire) < self.n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

pub fn all(url: &str, n: u64, rows: &mut Vec<Row>) {
    let rt = runtime(8);
    rt.block_on(async {
        let (_pool, mut storage) = fresh(url, "peers-apalis-push").await;
        let start = Instant::now();
        for i in 0..n {
            storage.push(i).await.expect("push");
        }
        rows.push(Row {
            workload: "P1 push, 1 producer",
            contender: APALIS,
            jobs_per_sec: rate(n, start.elapsed()),
            note: String::new(),
        });

        let (_pool, mut storage) = fresh(url, "peers-apalis-batch").await;
        let start = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            storage.push_bulk(chunk.to_vec()).await.expect("push_bulk");
        }
        rows.push(Row {
            workload: "P2 push_batch of 1 000",
            contender: APALIS,
            jobs_per_sec: rate(n, start.elapsed()),
            note: "push_bulk".into(),
        });

        for (workload, workers) in [("P3 drain, 2 workers", 2), ("P4 drain, 8 workers", 8)] {
            let name = format!("peers-apalis-drain-{workers}");
            let (_pool, mut storage) = fresh(url, &name).await;
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                storage.push_bulk(chunk.to_vec()).await.expect("push_bulk");
            }
            crate::vacuum(url, "apalis.jobs").await;
            let run = Run::new(n, false);
            let start = Instant::now();
            let tasks: Vec<_> = (0..workers)
                .map(|w| {
                    let run = Arc::clone(&run);
                    let worker = WorkerBuilder::new(format!("{name}-{w}")).backend(storage.clone()).build(
                        move |job: u64| {
                            let run = Arc::clone(&run);
                            async move { run.handle(job, 0) }
                        },
                    );
                    tokio::spawn(worker.run())
                })
                .collect();
            run.finished().await;
            let elapsed = start.elapsed();
            tasks.iter().for_each(|t| t.abort());
            rows.push(Row {
                workload,
                contender: APALIS,
                jobs_per_sec: rate(n, elapsed),
                note: validity(run.seen.check()),
            });
        }

        // Steady load: 2 workers woken by LISTEN/NOTIFY, 200 pushes a second; latency from the push's call
        // to the handler's start.
        let steady = steady(n);
        let (pool, storage) = fresh(url, "peers-apalis-latency").await;
        let run = Run::new(steady, true);
        let tasks: Vec<_> = (0..2)
            .map(|w| {
                let run = Arc::clone(&run);
                let backend = PostgresStorage::<(u64, u64)>::new(&pool)
                    .with_config(storage.config().clone())
                    .with_pubsub();
                let worker = WorkerBuilder::new(format!("peers-apalis-latency-{w}")).backend(backend).build(
                    move |(job, pushed): (u64, u64)| {
                        let run = Arc::clone(&run);
                        async move { run.handle(job, pushed) }
                    },
                );
                tokio::spawn(worker.run())
            })
            .collect();
        let mut sink = PostgresStorage::<(u64, u64)>::new(&pool).with_config(storage.config().clone());
        for i in 0..steady {
            sink.push((i, run.micros())).await.expect("push");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        run.finished().await;
        tasks.iter().for_each(|t| t.abort());
        let mut latencies = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        run.latency.iter().for_each(|l| latencies.record(l.load(Ordering::Relaxed)).unwrap());
        rows.push(Row {
            workload: "P5 push to handler start, 200/s",
            contender: APALIS,
            jobs_per_sec: rate(steady, Duration::from_secs_f64(steady as f64 / 200.0)),
            note: format!("{}; {}", latency_note(&latencies, steady), validity(run.seen.check())),
        });
    });
}
