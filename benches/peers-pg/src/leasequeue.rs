//! leasequeue's PostgreSQL store: `Queue<u64>` over the server, `push` and `push_batch`, `WorkerPool` threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use leasequeue::{Queue, WorkerPool};

use crate::{latency_note, rate, steady, validity, Row, Seen};

pub const NAME: &str = "leasequeue (PostgreSQL)";

/// A fresh queue of this name: its rows from an earlier run purged.
fn open(url: &str, name: &str) -> Queue<u64> {
    let queue: Queue<u64> = Queue::builder().connect(url, name).expect("the server");
    queue.purge();
    queue.drain_dead_letters();
    queue
}

pub fn all(url: &str, n: u64, rows: &mut Vec<Row>) {
    let queue = open(url, "peers-push");
    let start = Instant::now();
    for i in 0..n {
        queue.push(i).unwrap();
    }
    let note = if queue.len() as u64 == n { "all pushed" } else { "INVALID: lost" };
    rows.push(Row {
        workload: "P1 push, 1 producer",
        contender: NAME,
        jobs_per_sec: rate(n, start.elapsed()),
        note: note.into(),
    });

    let queue = open(url, "peers-batch");
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        assert!(queue.push_batch(chunk.iter().copied()).iter().all(Result::is_ok));
    }
    rows.push(Row {
        workload: "P2 push_batch of 1 000",
        contender: NAME,
        jobs_per_sec: rate(n, start.elapsed()),
        note: "one statement per batch".into(),
    });

    for (workload, workers) in [("P3 drain, 2 workers", 2), ("P4 drain, 8 workers", 8)] {
        // Prefilled (untimed), then a pool drains it.
        let queue = open(url, "peers-drain");
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            assert!(queue.push_batch(chunk.iter().copied()).iter().all(Result::is_ok));
        }
        crate::vacuum_now(url, "leasequeue_jobs");
        let seen = Arc::new(Seen::new(n));
        let marks = Arc::clone(&seen);
        let start = Instant::now();
        let pool = WorkerPool::builder(queue.clone())
            .workers(workers)
            .build(move |job: leasequeue::Job<'_, u64>| marks.mark(*job))
            .unwrap();
        pool.run_until_idle();
        let elapsed = start.elapsed();
        pool.shutdown(Duration::from_secs(5));
        rows.push(Row {
            workload,
            contender: NAME,
            jobs_per_sec: rate(n, elapsed),
            note: validity(seen.check()),
        });
    }

    // Steady load: 2 workers waiting on LISTEN, a producer pushing 200 jobs a second; latency from the
    // push's call (the job carries the time it was pushed) to the handler's start.
    let queue = open(url, "peers-latency");
    let origin = Instant::now();
    let latencies = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new(3).unwrap()));
    let (record, handled) = (Arc::clone(&latencies), Arc::new(AtomicU64::new(0)));
    let count = Arc::clone(&handled);
    let pool = WorkerPool::builder(queue.clone())
        .workers(2)
        .build(move |job: leasequeue::Job<'_, u64>| {
            let waited = origin.elapsed().as_micros() as u64 - *job;
            record.lock().unwrap().record(waited).unwrap();
            count.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    let steady = steady(n);
    for _ in 0..steady {
        queue.push(origin.elapsed().as_micros() as u64).unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    while handled.load(Ordering::Relaxed) < steady {
        thread::sleep(Duration::from_millis(1));
    }
    pool.shutdown(Duration::from_secs(5));
    let latencies = latencies.lock().unwrap();
    rows.push(Row {
        workload: "P5 push to handler start, 200/s",
        contender: NAME,
        jobs_per_sec: rate(steady, Duration::from_secs_f64(steady as f64 / 200.0)),
        note: latency_note(&latencies, steady),
    });
}
