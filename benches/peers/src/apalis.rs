//! apalis-core's `MemoryStorage`, the most-used Rust job crate's in-memory backend: W1 (push) and W2
//! (drain). It cannot be shared by several workers, so one worker drains it on a tokio runtime with as many
//! threads as the other contenders have consumers. It has no leases, redelivery or dead letters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use apalis_core::backend::memory::MemoryStorage;
use apalis_core::backend::TaskSink;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;

use crate::{rate, validity, Row, Seen};

static SEEN: OnceLock<Seen> = OnceLock::new();
static DONE: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU64 = AtomicU64::new(0);

async fn handle(job: u64, ctx: WorkerContext) {
    if let Some(seen) = SEEN.get() {
        seen.mark(job);
    }
    if DONE.fetch_add(1, Ordering::Relaxed) + 1 == TARGET.load(Ordering::Relaxed) {
        let _ = ctx.stop();
    }
}

pub fn w1_w2(n: u64, threads: usize, rows: &mut Vec<Row>) {
    let seen = SEEN.get_or_init(|| Seen::new(n));
    TARGET.store(n, Ordering::Relaxed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
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
        let worker = WorkerBuilder::new("peers").backend(storage).build(handle);
        worker.run().await.expect("worker");
        rows.push(Row {
            workload: "W2 drain",
            contender: "apalis MemoryStorage",
            jobs_per_sec: rate(n, start.elapsed()),
            note: validity(seen.check()),
        });
    });
}
