//! A webhook sender limited to 10 calls a second per customer (`QueueBuilder::group_rate_limit`), and
//! to 25 a second in all (`rate_limit`), driven on a `TestClock`: a burst of 120 webhooks for three
//! customers is delivered in order per customer, never faster than the limits, in simulated seconds and
//! real microseconds.
//!
//! ```text
//! cargo run --example webhooks
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use leasequeue::{PushOptions, Queue, TestClock, WorkerPool};

#[derive(Debug)]
struct Webhook {
    customer: &'static str,
    event: u32,
}

fn main() {
    let clock = TestClock::new();
    let queue: Queue<Webhook> = Queue::builder()
        .clock(clock.clone())
        .group_rate_limit(10, Duration::from_secs(1)) // per customer
        .rate_limit(25, Duration::from_secs(1)) // for the sender as a whole
        .build()
        .expect("a valid configuration");
    let customers = ["acme", "globex", "initech"];
    for event in 0..120 {
        let customer = customers[event as usize % 3];
        // One group per customer: its webhooks go out in order, one at a time, within its own limit.
        queue.push_with(Webhook { customer, event }, PushOptions::new().group(customer)).expect("push");
    }

    let start = clock.now();
    let pool = WorkerPool::builder(queue.clone())
        .workers(4)
        .build(|hook| {
            // A real sender would POST here; the lease keeps the webhook if it fails.
            let _ = (hook.customer, hook.event);
        })
        .expect("a valid pool");
    let summary = pool.run_until_idle();

    // The calls per customer in each second, from the runs the pool recorded.
    let mut per_second: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for attempt in &summary.attempts {
        let second = (attempt.at - start).as_secs();
        let customer = customers[(attempt.id.as_u64() - 1) as usize % 3];
        *per_second.entry((second, customer.to_string())).or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    println!(
        "{} webhooks delivered in {:?} of queue time; at most {busiest} calls to one customer in a second",
        summary.acked,
        clock.now() - start,
    );
    for ((second, customer), calls) in per_second.iter().take(6) {
        println!("  second {second}: {calls} calls to {customer}");
    }
    assert_eq!(summary.acked, 120);
    assert!(busiest <= 10, "a customer got {busiest} calls in one second");
}
