//! "Send welcome email" jobs, handled by a pool of three worker threads on the system clock. Some sends
//! fail transiently and are retried with backoff; one address is malformed, so its job is rejected as
//! poison and lands in the dead-letter queue. Runs in about a second.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::thread;
use std::time::Duration;

use leasequeue::{Backoff, DeadLetter, Job, Outcome, Queue, WorkerPool};

#[derive(Debug)]
struct WelcomeEmail {
    user: u32,
    address: String,
}

enum SendError {
    Transient(String),
    Permanent(String),
}

/// Pretends to talk to an SMTP server: every third user's first attempt hits a transient error, and an
/// address without an `@` can never be delivered.
fn send(email: &WelcomeEmail, attempt: u32) -> Result<(), SendError> {
    if !email.address.contains('@') {
        return Err(SendError::Permanent(format!("malformed address {:?}", email.address)));
    }
    // Pretend the network takes a moment.
    #[allow(clippy::disallowed_methods)]
    thread::sleep(Duration::from_millis(20));
    if email.user.is_multiple_of(3) && attempt == 1 {
        return Err(SendError::Transient("451 try again later".into()));
    }
    Ok(())
}

/// The handler: its `Outcome` tells the pool what to do with the job.
fn handle(job: Job<'_, WelcomeEmail>) -> Outcome {
    let worker = thread::current().name().unwrap_or("?").to_owned();
    match send(&job, job.attempt()) {
        Ok(()) => {
            println!("{worker}: sent to {} (attempt {})", job.address, job.attempt());
            Outcome::Done
        }
        Err(SendError::Transient(why)) => {
            println!("{worker}: user {} failed ({why}), will retry", job.user);
            Outcome::retry(why)
        }
        Err(SendError::Permanent(why)) => {
            println!("{worker}: user {} is poison: {why}", job.user);
            Outcome::reject(why)
        }
    }
}

fn main() {
    let dead_letters: Queue<DeadLetter<WelcomeEmail>> = Queue::new();
    let queue: Queue<WelcomeEmail> = Queue::builder()
        .visibility_timeout(Duration::from_secs(10))
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(100), 2.0).max(Duration::from_secs(1)))
        .dead_letter(dead_letters.clone())
        .build()
        .expect("valid configuration");
    let pool = WorkerPool::builder(queue.clone()).workers(3).name("mailer").build(handle).expect("pool");

    for user in 1..=12 {
        let address =
            if user == 7 { "grace.example.com".to_owned() } else { format!("user{user}@example.com") };
        queue.push(WelcomeEmail { user, address }).expect("the queue is open");
    }
    println!("pushed 12 welcome emails; the producer is free to go on");

    // No more jobs: the workers drain everything, retries included, then exit.
    queue.close();
    let pool_stats = pool.join();

    while let Ok(dead) = dead_letters.try_lease() {
        let history = dead.history().iter().map(|f| f.message.as_deref().unwrap_or("-")).collect::<Vec<_>>();
        println!("dead letter: user {} ({}), history {history:?}", dead.job().user, dead.reason());
        dead.ack().expect("our lease is current");
    }
    let stats = queue.stats();
    println!(
        "queue: pushed {}, acked {}, nacked {}, dead-lettered {}, left {}",
        stats.pushed,
        stats.acked,
        stats.nacked,
        stats.dead_lettered,
        stats.len()
    );
    println!(
        "pool: {} handler runs, {} succeeded, {} retried, {} dead-lettered",
        pool_stats.processed, pool_stats.succeeded, pool_stats.failed, pool_stats.dead_lettered
    );
    assert_eq!((stats.acked, stats.dead_lettered, stats.len()), (11, 1, 0));
}
