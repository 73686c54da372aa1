//! Public-API tests, one module per concept. Time-dependent tests run on a `TestClock`.

mod backoff;
mod clock;
mod dead_letter;
mod drop_count;
mod integrations;
mod lapse;
mod lease;
mod model;
mod operations;
mod panics;
mod pool;
mod push;
mod routing;
mod scheduling;
mod send_sync;
#[cfg(feature = "serde")]
mod snapshot;
mod testing;
mod threads;

use std::time::Duration;

use leasequeue::{Backoff, Queue, QueueBuilder, TestClock};

/// A queue builder on a fresh test clock: 30 s visibility, 3 attempts, fixed 10 s backoff, no jitter.
pub fn builder<T: Send + Sync + 'static>() -> (QueueBuilder<T>, TestClock) {
    let clock = TestClock::new();
    let builder = Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(secs(30))
        .max_attempts(3)
        .backoff(Backoff::fixed(secs(10)));
    (builder, clock)
}

pub fn queue<T: Send + Sync + 'static>() -> (Queue<T>, TestClock) {
    let (builder, clock) = builder();
    (builder.build().unwrap(), clock)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Spins until `cond` holds: for waiting until another thread has blocked inside the queue, which no
/// clock or channel can signal.
pub fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        std::thread::yield_now();
    }
}
