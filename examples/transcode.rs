//! The worked example of the message-queue pattern: video uploads are transcoded into several
//! resolutions in the background.
//!
//! - The upload "request" stores the file and enqueues a transcode job, then returns at once.
//! - A pool of workers (scaling from 1 to 6 with the backlog) transcodes at its own pace. The visibility
//!   timeout is longer than the work, and the heartbeat keeps a long job's lease up to its job timeout.
//! - The handler is idempotent, keyed on the upload id: renditions already written are skipped, so a
//!   redelivered or retried job does not redo them.
//! - Transient failures retry with backoff; a corrupt upload fails every attempt and ends in the
//!   dead-letter queue, where an "alert" fires.
//! - A burst of uploads makes the pool scale up; then a graceful shutdown.
//!
//! ```sh
//! cargo run --example transcode
//! ```
#![allow(clippy::disallowed_methods)] // the demo sleeps to pretend to work

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use leasequeue::{Backoff, DeadLetter, Job, Outcome, Queue, WorkerPool};

const RESOLUTIONS: [u32; 3] = [360, 720, 1080];

#[derive(Debug)]
struct Upload {
    id: u64,
    file: String,
}

/// The object store the renditions go to (S3, in the real thing).
#[derive(Default)]
struct Store {
    renditions: Mutex<HashMap<u64, HashSet<u32>>>,
    skipped: AtomicUsize,
}

fn transcode(store: &Store, job: Job<'_, Upload>) -> Outcome {
    let worker = thread::current().name().unwrap_or("?").to_owned();
    for resolution in RESOLUTIONS {
        if store.renditions.lock().unwrap().get(&job.id).is_some_and(|done| done.contains(&resolution)) {
            // Idempotent: a retry or a redelivery skips what an earlier attempt already wrote.
            store.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if job.is_cancelled() {
            return Outcome::defer(Duration::ZERO); // shutting down: give the rest back untouched
        }
        if job.file.ends_with(".corrupt") {
            return Outcome::retry(format!("decoder error in {} at {resolution}p", job.file));
        }
        if job.id % 10 == 3 && resolution == 720 && job.attempt() == 1 {
            return Outcome::retry("transient: scratch disk full");
        }
        thread::sleep(Duration::from_millis(15)); // the actual transcoding
        store.renditions.lock().unwrap().entry(job.id).or_default().insert(resolution);
    }
    println!("{worker}: upload {} ({}) transcoded on attempt {}", job.id, job.file, job.attempt());
    Outcome::Done
}

/// The upload endpoint: store the file, enqueue the work, answer 202 at once.
fn upload(queue: &Queue<Upload>, id: u64, file: &str) {
    queue.push(Upload { id, file: file.to_owned() }).expect("the queue is open");
}

fn main() {
    let alerts: Queue<DeadLetter<Upload>> = Queue::new();
    let queue: Queue<Upload> = Queue::builder()
        .visibility_timeout(Duration::from_secs(30)) // longer than any transcode
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_millis(50), 2.0))
        .dead_letter(alerts.clone())
        .build()
        .expect("valid queue");

    let store = Arc::new(Store::default());
    let handler_store = Arc::clone(&store);
    let peak = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (peak_hook, started_hook) = (Arc::clone(&peak), Arc::clone(&started));
    let pool = WorkerPool::builder(queue.clone())
        .workers(1..=6)
        .name("transcoder")
        .job_timeout(Duration::from_secs(60))
        .heartbeat(true)
        .idle_timeout(Duration::from_millis(200))
        .on_worker_start(move |_| {
            let now = started_hook.fetch_add(1, Ordering::Relaxed) + 1;
            peak_hook.fetch_max(now, Ordering::Relaxed);
        })
        .on_worker_stop(move |_| {
            started.fetch_sub(1, Ordering::Relaxed);
        })
        .build(move |job| transcode(&handler_store, job))
        .expect("valid pool");

    let begin = Instant::now();
    println!("a burst of 30 uploads arrives; each request returns as soon as its job is queued");
    for id in 1..=30 {
        let file = if id == 17 { format!("upload-{id}.corrupt") } else { format!("upload-{id}.mp4") };
        upload(&queue, id, &file);
    }
    println!("all 30 accepted in {:?}; {} ready in the queue", begin.elapsed(), queue.stats().ready);

    while queue.stats().acked + queue.stats().dead_lettered < 30 {
        thread::sleep(Duration::from_millis(10));
    }
    println!(
        "burst drained in {:?}; the pool peaked at {} workers",
        begin.elapsed(),
        peak.load(Ordering::Relaxed)
    );

    while let Ok(alert) = alerts.try_lease() {
        println!(
            "ALERT dead letter: upload {} after {} attempts ({}): {:?}",
            alert.job().id,
            alert.attempts(),
            alert.reason(),
            alert.history().last().and_then(|f| f.message.as_deref())
        );
        alert.ack().expect("our lease is current");
    }

    thread::sleep(Duration::from_millis(400)); // idle: the extra workers retire
    println!("after the burst the pool is back to {} worker(s)", pool.workers());
    let stats = pool.stats();
    let report = pool.shutdown(Duration::from_secs(5));
    println!(
        "shutdown: {} jobs completed during the grace period, {} released, {} threads left",
        report.completed, report.released, report.threads_left
    );
    println!(
        "pool: {} runs, {} transcoded, {} retried, {} dead-lettered; {} renditions skipped as already done",
        stats.processed,
        stats.succeeded,
        stats.failed,
        stats.dead_lettered,
        store.skipped.load(Ordering::Relaxed)
    );
    assert_eq!((stats.succeeded, stats.dead_lettered), (29, 1));
}
