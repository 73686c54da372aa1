//! "Send welcome email" jobs, consumed by three worker threads on the system clock. Some sends fail
//! transiently and are retried with backoff; one address is malformed, so its job is rejected as poison
//! and lands in the dead-letter queue. Runs in about a second.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::thread;
use std::time::Duration;

use leasequeue::{Backoff, DeadLetter, NackOutcome, Queue};

#[derive(Debug)]
struct WelcomeEmail {
    user: u32,
    address: String,
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
    if email.user % 3 == 0 && attempt == 1 {
        return Err(SendError::Transient("451 try again later".into()));
    }
    Ok(())
}

enum SendError {
    Transient(String),
    Permanent(String),
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

    let workers: Vec<_> = (1..=3)
        .map(|worker| {
            let queue = queue.clone();
            thread::spawn(move || {
                // `lease` blocks until a job is ready, and fails once the queue is closed and drained.
                while let Ok(lease) = queue.lease() {
                    match send(&lease, lease.attempt()) {
                        Ok(()) => {
                            println!(
                                "worker {worker}: sent to {} (attempt {})",
                                lease.address,
                                lease.attempt()
                            );
                            lease.ack().expect("our lease is current");
                        }
                        Err(SendError::Transient(why)) => {
                            let user = lease.user;
                            if let Ok(NackOutcome::Retrying { at }) = lease.nack_with(why.clone()) {
                                let wait = at.saturating_duration_since(queue.clock().now());
                                println!(
                                    "worker {worker}: user {user} failed ({why}), retrying in {wait:.0?}"
                                );
                            }
                        }
                        Err(SendError::Permanent(why)) => {
                            println!("worker {worker}: user {} is poison: {why}", lease.user);
                            lease.reject(why).expect("our lease is current");
                        }
                    }
                }
            })
        })
        .collect();

    for user in 1..=12 {
        let address =
            if user == 7 { "grace.example.com".to_owned() } else { format!("user{user}@example.com") };
        queue.push(WelcomeEmail { user, address }).expect("the queue is open");
    }
    println!("pushed 12 welcome emails; the producer is free to go on");

    // Stop taking new jobs; workers drain everything, retries included, then `lease` fails and they exit.
    queue.close();
    for worker in workers {
        worker.join().expect("worker thread");
    }

    while let Ok(dead) = dead_letters.try_lease() {
        let history = dead.history().iter().map(|f| f.message.as_deref().unwrap_or("-")).collect::<Vec<_>>();
        println!("dead letter: user {} ({}), history {history:?}", dead.job().user, dead.reason());
        dead.ack().expect("our lease is current");
    }
    let stats = queue.stats();
    println!(
        "stats: pushed {}, acked {}, nacked {}, dead-lettered {}, left {}",
        stats.pushed,
        stats.acked,
        stats.nacked,
        stats.dead_lettered,
        stats.len()
    );
    assert_eq!((stats.acked, stats.dead_lettered, stats.len()), (11, 1, 0));
}
