//! How to test your own retry logic without waiting: a webhook handler that fails five times under
//! exponential backoff capped at one hour, then succeeds. About three hours of retries run in
//! microseconds on a `TestClock`, with the same outcome every run.
//!
//! ```sh
//! cargo run --example deterministic_test
//! ```
//!
//! In your own test suite the same code sits in a `#[test]` function.

use std::time::Duration;

use leasequeue::{Backoff, Jitter, NackOutcome, Queue, TestClock};

/// The code under test: delivers a webhook, failing while the receiver is down.
fn deliver(attempt: u32) -> Result<(), String> {
    if attempt <= 5 {
        Err(format!("503 service unavailable (attempt {attempt})"))
    } else {
        Ok(())
    }
}

fn main() {
    let clock = TestClock::new();
    let start = clock.now();
    let queue = Queue::builder()
        .clock(clock.clone())
        .max_attempts(10)
        .backoff(
            Backoff::exponential(Duration::from_secs(60), 4.0)
                .max(Duration::from_secs(3600))
                .jitter(Jitter::Proportional(0.1))
                .seed(42), // fixed seed: the same delays every run
        )
        .build()
        .expect("valid configuration");

    queue.push("https://example.com/hooks/order-created").unwrap();
    loop {
        let lease = queue.try_lease().expect("the job is due");
        let attempt = lease.attempt();
        match deliver(attempt) {
            Ok(()) => {
                lease.ack().unwrap();
                println!("attempt {attempt}: delivered at +{:?}", clock.now() - start);
                break;
            }
            Err(why) => match lease.nack_with(why).unwrap() {
                NackOutcome::Retrying { at } => {
                    println!("attempt {attempt}: failed, retry at +{:?}", at - start);
                    // Nothing is due before `at`...
                    assert!(queue.try_lease().is_err());
                    // ...and jumping there makes the job ready again, with no real sleep.
                    clock.advance_to(at);
                }
                _ => panic!("ten attempts allowed"),
            },
        }
    }
    let stats = queue.stats();
    assert_eq!((stats.acked, stats.nacked, stats.dead_lettered), (1, 5, 0));
    assert!(clock.now() - start > Duration::from_secs(2 * 3600));
    println!("{:?} of retries, checked in no time", clock.now() - start);
}
