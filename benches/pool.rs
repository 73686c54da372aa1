//! A `WorkerPool` with a no-op handler next to a plain crossbeam-channel + threads pipeline with the same
//! number of threads: one producer pushes a batch of jobs, the workers drain it.
//!
//! Run with `cargo bench --bench pool`; compare ratios within one run, not absolute times.
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leasequeue::{Backoff, Queue, WorkerPool};

const BATCH: u64 = 10_000;

fn wait_for(counter: &AtomicU64, target: u64) {
    while counter.load(Ordering::Acquire) < target {
        thread::yield_now();
    }
}

fn contention_pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention_pipeline");
    group.throughput(Throughput::Elements(BATCH));
    for workers in [2usize, 4] {
        group.bench_with_input(BenchmarkId::new("crossbeam_threads", workers), &workers, |b, &workers| {
            let (tx, rx) = crossbeam_channel::unbounded::<u64>();
            let done = Arc::new(AtomicU64::new(0));
            let threads: Vec<_> = (0..workers)
                .map(|_| {
                    let (rx, done) = (rx.clone(), Arc::clone(&done));
                    thread::spawn(move || {
                        while let Ok(job) = rx.recv() {
                            black_box(job);
                            done.fetch_add(1, Ordering::Release);
                        }
                    })
                })
                .collect();
            b.iter_custom(|iters| drain(iters, &done, |i| tx.send(i).unwrap()));
            drop(tx);
            threads.into_iter().for_each(|t| t.join().unwrap());
        });
        group.bench_with_input(BenchmarkId::new("leasequeue_pool", workers), &workers, |b, &workers| {
            let queue = Queue::builder().backoff(Backoff::none()).build().unwrap();
            let done = Arc::new(AtomicU64::new(0));
            let counter = Arc::clone(&done);
            let pool = WorkerPool::builder(queue.clone())
                .workers(workers)
                .build(move |job| {
                    black_box(*job);
                    counter.fetch_add(1, Ordering::Release);
                })
                .unwrap();
            b.iter_custom(|iters| {
                drain(iters, &done, |i| {
                    queue.push(i).unwrap();
                })
            });
            pool.shutdown(Duration::from_secs(10));
        });
    }
    group.finish();
}

/// Pushes `iters` batches, waiting for each to be handled; returns the time taken.
fn drain(iters: u64, done: &AtomicU64, mut push: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let target = done.load(Ordering::Acquire) + BATCH;
        for i in 0..BATCH {
            push(i);
        }
        wait_for(done, target);
    }
    start.elapsed()
}

criterion_group!(benches, contention_pipeline);
criterion_main!(benches);
