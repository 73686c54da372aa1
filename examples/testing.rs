//! Testing your own jobs deterministically, without waiting:
//!
//! 1. `run_until_idle` on a plain queue: push, run until idle, assert;
//! 2. a real `WorkerPool` on an auto-advancing `TestClock`: a webhook that fails five times under
//!    exponential backoff capped at one hour, then succeeds, in well under a second of wall time;
//! 3. `Inline` mode and `assert_dead_lettered` for a poison job.
//!
//! ```sh
//! cargo run --example testing
//! ```
#![allow(clippy::disallowed_methods)] // it reports the wall time it took

use std::time::{Duration, Instant};

use leasequeue::{
    assert_dead_lettered, Backoff, DeadLetterReason, Inline, Jitter, Job, Outcome, Queue, TestClock,
    WorkerPool,
};

/// The code under test: delivers a webhook, failing while the receiver is down.
fn deliver(job: Job<'_, &'static str>) -> Result<(), String> {
    if job.attempt() <= 5 {
        Err(format!("503 from {} (attempt {})", *job, job.attempt()))
    } else {
        Ok(())
    }
}

fn backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(60), 4.0)
        .max(Duration::from_secs(3600))
        .jitter(Jitter::Full)
        .seed(1)
}

fn main() {
    // 1. A plain queue: push, run until idle, assert.
    let clock = TestClock::new();
    let queue = Queue::builder().clock(clock.clone()).backoff(backoff()).build().unwrap();
    queue.push("https://example.com/hook").unwrap();
    let summary = queue.run_until_idle(deliver);
    assert_eq!((summary.retried, summary.acked), (5, 1));
    println!("run_until_idle: {} attempts over {:?} of test time", summary.attempts.len(), clock.elapsed());

    // 2. The same handler in a real worker pool, on a clock that jumps ahead whenever every worker is idle.
    let wall = Instant::now();
    let clock = TestClock::auto_advancing();
    let queue = Queue::builder().clock(clock.clone()).backoff(backoff()).build().unwrap();
    let pool = WorkerPool::builder(queue.clone()).workers(4).build(deliver).unwrap();
    queue.push("https://example.com/hook").unwrap();
    let summary = pool.run_until_idle();
    assert_eq!((summary.retried, summary.acked), (5, 1));
    println!(
        "worker pool: five failures then success, {:?} of backoff in {:?} of wall time",
        clock.elapsed(),
        wall.elapsed()
    );
    pool.shutdown(Duration::ZERO);

    // 3. Inline mode: the handler runs on the pushing thread; assertions that read well.
    let queue = Queue::builder().clock(TestClock::new()).max_attempts(3).build().unwrap();
    let inline = Inline::new(queue.clone(), |job: Job<'_, &str>| {
        if job.ends_with(".corrupt") {
            Outcome::reject("cannot decode")
        } else {
            Outcome::Done
        }
    });
    inline.push("cat.mp4").unwrap();
    inline.push("dog.corrupt").unwrap();
    let dead = assert_dead_lettered(&queue, DeadLetterReason::Rejected, |job| *job == "dog.corrupt");
    println!("inline: {} dead-lettered ({}) after {} attempt", dead.job(), dead.reason(), dead.attempts());
}
