//! Fan-out: an `order.created` event published once and delivered to billing, shipping and analytics,
//! each with its own worker pool, retries and dead letters. Analytics fails its first attempts and
//! retries on its own; billing and shipping are not held up.
//!
//! ```sh
//! cargo run --example fanout
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leasequeue::{Backoff, Binding, Job, Queue, Router, WorkerPool};

/// The event: shared by the three queues through one `Arc`, never cloned.
#[derive(Debug)]
struct OrderCreated {
    order: u32,
    amount_cents: u64,
}

type Event = Arc<OrderCreated>;

fn queue() -> Queue<Event> {
    Queue::builder()
        .max_attempts(5)
        .backoff(Backoff::exponential(Duration::from_millis(20), 2.0))
        .build()
        .expect("valid queue")
}

fn main() {
    let (billing, shipping, analytics) = (queue(), queue(), queue());
    let router: Router<Event> = Router::new();
    router.bind(Binding::direct("order.created"), billing.clone());
    router.bind(Binding::topic("order.*"), shipping.clone());
    router.bind(Binding::topic("#"), analytics.clone()); // everything

    let charge = WorkerPool::builder(billing.clone())
        .workers(2)
        .name("billing")
        .build(|job: Job<'_, Event>| {
            println!("billing: charged {} cents for order {}", job.amount_cents, job.order);
        })
        .expect("pool");
    let ship = WorkerPool::builder(shipping.clone())
        .workers(2)
        .name("shipping")
        .build(|job: Job<'_, Event>| println!("shipping: label printed for order {}", job.order))
        .expect("pool");
    let flaky = Arc::new(AtomicU32::new(0));
    let outages = Arc::clone(&flaky);
    let track = WorkerPool::builder(analytics.clone())
        .workers(1)
        .name("analytics")
        .build(move |job: Job<'_, Event>| -> Result<(), String> {
            if job.attempt() < 3 {
                outages.fetch_add(1, Ordering::Relaxed);
                println!("analytics: warehouse down for order {} (attempt {})", job.order, job.attempt());
                return Err("warehouse unavailable".into());
            }
            println!("analytics: recorded order {} on attempt {}", job.order, job.attempt());
            Ok(())
        })
        .expect("pool");

    for order in 1..=3 {
        let event = Arc::new(OrderCreated { order, amount_cents: 1999 * u64::from(order) });
        let published = router.publish("order.created", event).expect("bound queues are open");
        println!("published order {order} to {} queues", published.queues());
    }
    // Not an order: only analytics ("#") takes it.
    router.publish("user.signed_up", Arc::new(OrderCreated { order: 0, amount_cents: 0 })).unwrap();

    for queue in [&billing, &shipping, &analytics] {
        queue.close(); // no more events: each pool drains its queue, retries included, and stops
    }
    let (b, s, a) = (charge.join(), ship.join(), track.join());
    println!(
        "billing {} ok, shipping {} ok, analytics {} ok after {} failed attempts",
        b.succeeded, s.succeeded, a.succeeded, a.failed
    );
    assert_eq!((b.succeeded, s.succeeded, a.succeeded), (3, 3, 4));
    assert_eq!(flaky.load(Ordering::Relaxed), 8);
    let stats = router.stats();
    println!("router: {} published, {} copies delivered", stats.published, stats.delivered);
}
