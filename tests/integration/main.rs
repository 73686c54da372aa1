//! Public-API tests, one module per concept. Time-dependent tests run on a `TestClock`.
//!
//! **The conformance suite.** The modules that define the queue's semantics (leases, lapses, dead
//! letters, scheduling, pools, routing, panics, the model-based property test, ...) are written once and
//! compiled once per store, inside a module named after the store (`memory::lease::...`): each store has a
//! file here (`memory.rs`, `journal.rs`) that expands the `conformance!` macro below with a builder for a
//! queue on that store. The macro gives the tests the constructors they use instead of `Queue::new()` and
//! `Queue::builder()`: `store()`, `new_queue()`, and the `builder()` / `queue()` helpers on a fresh test
//! clock. A new store adds a file of three lines and passes the same tests: a store changes durability,
//! never semantics. On the journal store (`journal.rs`) every queue also checks, when dropped, that
//! replaying its journal gives its state; what survives a restart or a crash is `durability.rs`'s.
//!
//! Modules that do not depend on the store (backoff arithmetic, `Send`/`Sync`, the tracing and metrics
//! integrations, the memory store's snapshots) run once.

// The conformance suite compiles the same test files once per store, by design.
#![allow(clippy::duplicate_mod)]

mod backoff;
#[cfg(feature = "dashboard")]
mod browser;
#[cfg(feature = "journal")]
mod crash;
#[cfg(feature = "cron")]
mod cron_props;
#[cfg(feature = "dashboard")]
mod dashboard;
#[cfg(feature = "journal")]
mod durability;
mod integrations;
#[cfg(feature = "postgres")]
mod pg_processes;
#[cfg(feature = "postgres")]
mod pg_store;
mod send_sync;
#[cfg(feature = "serde")]
mod snapshot;

use std::time::Duration;

use leasequeue::{Backoff, QueueBuilder, TestClock};

/// The conformance suite for one store, expanded in that store's file (`memory.rs`): the constructors the
/// semantic tests use, then the tests themselves. `$builder` is a builder for a queue on the store.
macro_rules! conformance {
    ($builder:expr) => {
        conformance!($builder, lacks: []);
    };
    ($builder:expr, lacks: [$($lack:expr),*]) => {
        use leasequeue::{Queue, QueueBuilder, TestClock};

        pub use crate::{secs, until, Needs};

        /// Whether this store lacks what a test needs (an option its builder refuses): the test then
        /// says so and returns at once.
        pub fn lacks(need: Needs) -> bool {
            let lacking: &[Needs] = &[$($lack),*];
            let lacks = lacking.contains(&need);
            if lacks {
                eprintln!("skipped on this store, which does not support {need:?}");
            }
            lacks
        }

        /// A builder for a queue on this store, with every default.
        pub fn store<T: Send + Sync + 'static>() -> QueueBuilder<T> {
            $builder
        }

        /// A queue on this store with every default.
        pub fn new_queue<T: Send + Sync + 'static>() -> Queue<T> {
            store().build().unwrap()
        }

        /// A builder on this store and a fresh test clock (see [`crate::configure`]).
        pub fn builder<T: Send + Sync + 'static>() -> (QueueBuilder<T>, TestClock) {
            crate::configure(store())
        }

        pub fn queue<T: Send + Sync + 'static>() -> (Queue<T>, TestClock) {
            let (builder, clock) = builder();
            (builder.build().unwrap(), clock)
        }

        #[path = "clock.rs"]
        mod clock;
        #[path = "dead_letter.rs"]
        mod dead_letter;
        #[path = "drop_count.rs"]
        mod drop_count;
        #[path = "lapse.rs"]
        mod lapse;
        #[path = "lease.rs"]
        mod lease;
        #[path = "limits.rs"]
        mod limits;
        #[path = "model.rs"]
        mod model;
        #[path = "operations.rs"]
        mod operations;
        #[path = "panics.rs"]
        mod panics;
        #[path = "periodic.rs"]
        mod periodic;
        #[path = "pool.rs"]
        mod pool;
        #[path = "push.rs"]
        mod push;
        #[path = "routing.rs"]
        mod routing;
        #[path = "scheduling.rs"]
        mod scheduling;
        #[path = "testing.rs"]
        mod testing;
        #[path = "threads.rs"]
        mod threads;
    };
}

#[cfg(feature = "journal")]
mod journal;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;

/// The environment variable naming the PostgreSQL server for the tests.
#[cfg(feature = "postgres")]
pub const POSTGRES_URL: &str = "LEASEQUEUE_POSTGRES_URL";

/// A builder of PostgreSQL conformance queues on the server `POSTGRES_URL` names; without one, says
/// (once) that the PostgreSQL tests are skipped, and how to run them, and builds in-memory queues.
#[cfg(feature = "postgres")]
pub fn pg_builder<T: Send + Sync + 'static>() -> QueueBuilder<T> {
    match std::env::var(POSTGRES_URL) {
        Ok(url) => leasequeue::Queue::builder().postgres_conformance(url),
        Err(_) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL conformance skipped (its tests run on memory): set {POSTGRES_URL}, e.g. \
                     postgres://postgres@127.0.0.1:5432/test (see the README)"
                );
            });
            leasequeue::Queue::builder()
        }
    }
}

/// What some conformance tests need that a store may lack: options its builder refuses with a
/// `BuildError` (the README's table of what differs between stores says which), or speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // every store has each of them but PostgreSQL
pub enum Needs {
    /// `capacity` and `overflow`.
    Capacity,
    /// A dead-letter sink (`dead_letter`).
    Sink,
    Observer,
    Alarms,
    /// `rate_limit` and `group_rate_limit`.
    RateLimit,
    /// `group_concurrency` above 1.
    GroupConcurrency,
    /// Not an option: `MAX_RUNS` (100 000) handler runs in seconds. A store that makes a few round
    /// trips to a server per run takes minutes over the tests of the run limit.
    ManyRuns,
}

/// The test configuration on a fresh test clock: 30 s visibility, 3 attempts, fixed 10 s backoff, no
/// jitter.
pub fn configure<T: Send + Sync + 'static>(builder: QueueBuilder<T>) -> (QueueBuilder<T>, TestClock) {
    let clock = TestClock::new();
    let builder = builder
        .clock(clock.clone())
        .visibility_timeout(secs(30))
        .max_attempts(3)
        .backoff(Backoff::fixed(secs(10)));
    (builder, clock)
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
