//! A chaos soak that checks nothing is lost. Producers push N uniquely numbered jobs while a worker pool
//! handles them with random transient failures, poison, random panics and random stalls past the visibility
//! timeout; the user code the queue calls panics too: the dead-letter sink for some dead letters, the
//! observer for some events, and the job's own `Drop` for some jobs. In the middle the pool is shut down
//! and a new one started. At the end every job is classified as in the Jepsen RabbitMQ checker:
//!
//! - lost: pushed, but neither acked nor dead-lettered;
//! - unexpected: handled, but never pushed;
//! - duplicated: handled successfully more than once (allowed only through a lapsed or revoked lease,
//!   and counted);
//! - dead-lettered.
//!
//! It prints the table and exits non-zero if anything was lost or unexpected.
//!
//! ```sh
//! cargo run --release --example soak -- 1000000      # jobs (default 100000)
//! ```
#![allow(clippy::disallowed_methods)] // stalls are real sleeps on the system clock

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use leasequeue::{Backoff, DeadLetter, Event, Jitter, Job, Outcome, Queue, WorkerPool};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const PRODUCERS: u64 = 2;
const WORKERS: usize = 8;
const VISIBILITY: Duration = Duration::from_millis(100);
const STALL: Duration = Duration::from_millis(150); // longer than the visibility timeout

/// A numbered job whose `Drop` panics for one number in 97 while the run is armed.
struct Numbered {
    number: u64,
}

/// Whether `Numbered`'s drop, the sink and the observer panic (off for the final count).
static ARMED: AtomicBool = AtomicBool::new(true);

impl Drop for Numbered {
    fn drop(&mut self) {
        if self.number.is_multiple_of(97) && ARMED.load(Ordering::Relaxed) {
            panic!("chaos drop of job {}", self.number);
        }
    }
}

/// Whether the chaos strikes here: a pseudo-random draw, reproducible from its inputs, true `1/in_n` of the
/// time.
fn strikes(a: u64, b: u64, in_n: u64) -> bool {
    ARMED.load(Ordering::Relaxed)
        && (a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            .is_multiple_of(in_n)
}

struct Chaos {
    /// Successful handler runs per job number.
    successes: Vec<AtomicU32>,
    unexpected: AtomicU32,
    /// Silences the default panic message of the deliberate panics.
    quiet: AtomicBool,
}

fn handle(chaos: &Chaos, job: Job<'_, Numbered>, n: u64) -> Outcome {
    let number = job.number;
    let Some(successes) = chaos.successes.get(number as usize) else {
        chaos.unexpected.fetch_add(1, Ordering::Relaxed);
        return Outcome::Done;
    };
    // One generator per delivery: the chaos is reproducible from the job number and attempt.
    let mut rng =
        SmallRng::seed_from_u64(number.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(job.attempt()) ^ n);
    let roll: f64 = rng.random();
    if roll < 0.05 {
        return Outcome::retry("transient failure");
    }
    if roll < 0.06 {
        panic!("chaos panic on job {number}");
    }
    if roll < 0.062 {
        return Outcome::reject("chaos poison"); // dead-lettered: the sink panics for some
    }
    if roll < 0.0625 {
        thread::sleep(STALL); // the lease lapses; the job is delivered again meanwhile
    }
    successes.fetch_add(1, Ordering::Relaxed);
    Outcome::Done
}

fn main() -> ExitCode {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let begin = Instant::now();
    let (dead_tx, dead_rx) = crossbeam_channel::unbounded::<DeadLetter<Numbered>>();
    let queue: Queue<Numbered> = Queue::builder()
        .visibility_timeout(VISIBILITY)
        .max_attempts(5)
        .backoff(
            Backoff::exponential(Duration::from_millis(1), 2.0)
                .max(Duration::from_millis(20))
                .jitter(Jitter::Full),
        )
        .capacity(50_000)
        // One dead letter in 4 makes the sink panic: the queue keeps that one in its built-in store.
        .dead_letter(move |dead: DeadLetter<Numbered>| {
            if strikes(dead.job().number, 1, 4) {
                panic!("chaos sink");
            }
            dead_tx.send(dead).expect("the receiver lives");
        })
        // One event in 1 000 makes the observer panic; the operation it reports keeps its result.
        .observer(|e: &Event| {
            if strikes(e.id.as_u64(), u64::from(e.attempt), 1000) {
                panic!("chaos observer");
            }
        })
        .build()
        .expect("valid queue");
    let chaos = Arc::new(Chaos {
        successes: (0..n).map(|_| AtomicU32::new(0)).collect(),
        unexpected: AtomicU32::new(0),
        quiet: AtomicBool::new(true),
    });
    let quiet = Arc::clone(&chaos);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !quiet.quiet.load(Ordering::Relaxed) {
            default_hook(info);
        }
    }));

    let start_pool = |chaos: &Arc<Chaos>| {
        let chaos = Arc::clone(chaos);
        WorkerPool::builder(queue.clone())
            .workers(WORKERS)
            .name("soak")
            .build(move |job| handle(&chaos, job, n))
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let queue = queue.clone();
            thread::spawn(move || {
                for number in (p..n).step_by(PRODUCERS as usize) {
                    queue.push(Numbered { number }).expect("the queue is open");
                }
            })
        })
        .collect();

    let pool = start_pool(&chaos).expect("valid pool");
    while pool.stats().processed < n / 2 {
        thread::sleep(Duration::from_millis(5));
    }
    let first = pool.stats();
    let report = pool.shutdown(Duration::from_millis(20));
    println!(
        "mid-run shutdown: {} completed in the grace period, {} leases released, {} threads left behind",
        report.completed, report.released, report.threads_left
    );
    let pool = start_pool(&chaos).expect("valid pool");

    for producer in producers {
        producer.join().expect("producer");
    }
    queue.close();
    let stats = pool.join();
    thread::sleep(STALL * 2); // let the threads the first pool left behind finish their stalls
    chaos.quiet.store(false, Ordering::Relaxed);
    ARMED.store(false, Ordering::Relaxed);

    // Dead letters went to the channel, or to the built-in store where the sink panicked.
    let stored = queue.drain_dead_letters();
    let dead: Vec<u64> = dead_rx.try_iter().chain(stored).map(|d| d.job().number).collect();
    let mut is_dead = vec![false; n as usize];
    for &number in &dead {
        is_dead[number as usize] = true;
    }
    let successes: Vec<u32> = chaos.successes.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    let lost = (0..n as usize).filter(|&i| successes[i] == 0 && !is_dead[i]).count();
    let duplicated = successes.iter().filter(|&&s| s > 1).count();
    let unexpected = chaos.unexpected.load(Ordering::Relaxed);
    let q = queue.stats();

    println!();
    println!("| class | jobs |");
    println!("|---|---|");
    println!("| pushed | {} |", q.pushed);
    println!("| acked | {} |", q.acked);
    println!("| dead-lettered | {} |", dead.len());
    println!("| lost | {lost} |");
    println!("| unexpected | {unexpected} |");
    println!("| duplicated (through lapses or revocations) | {duplicated} |");
    println!();
    println!(
        "lapses {}, nacks {}, handler panics {}, other user-code panics caught {}, released {}; {:.1?} for {n} jobs",
        q.lapsed,
        q.nacked,
        first.panicked + stats.panicked,
        q.panics,
        q.released,
        begin.elapsed()
    );
    let consistent = q.pushed == n && q.acked + q.dead_lettered == n && q.is_empty();
    // A job runs twice only when a lease lapsed or shutdown took it back.
    let explained = duplicated as u64 <= q.lapsed + q.released;
    if lost != 0 || unexpected != 0 || !consistent || !explained {
        eprintln!(
            "FAILED: lost {lost}, unexpected {unexpected}, queue consistent: {consistent}, \
             duplicates explained by lapses and revocations: {explained}"
        );
        return ExitCode::FAILURE;
    }
    println!("nothing lost, nothing unexpected");
    ExitCode::SUCCESS
}
