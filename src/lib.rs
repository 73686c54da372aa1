//! An embeddable job queue: do work "later, reliably", inside your own process.
//!
//! Producers push jobs and return at once; competing consumers lease them. A lease hides its job for a
//! visibility timeout; the holder acks it (done), nacks it (retry later, with backoff), rejects it
//! (poison), releases it (not now) or extends it (heartbeat). A lease that lapses is delivered again.
//! After too many failed attempts a job goes to a dead-letter sink with its history, never silently lost.
//! Every timeout, delay and backoff reads one injectable [`Clock`], so a test drives hours of retries in
//! microseconds with a [`TestClock`].
//!
//! ```
//! use leasequeue::Queue;
//!
//! let queue = Queue::new();
//! queue.push("send welcome email to ada@example.com").unwrap();
//!
//! let consumer = queue.clone();
//! std::thread::spawn(move || {
//!     let lease = consumer.lease().unwrap();
//!     println!("sending: {}", *lease);
//!     lease.ack().unwrap();
//! })
//! .join()
//! .unwrap();
//! assert!(queue.is_empty());
//! ```
//!
//! # Leases and visibility
//!
//! [`Queue::lease`] hands out a [`Lease`]: a guard that dereferences to the job and hides it from other
//! consumers until its deadline ([`QueueBuilder::visibility_timeout`], 30 s by default). Settle it with
//! exactly one outcome; each consumes the lease:
//!
//! | outcome | effect |
//! |---|---|
//! | [`ack`](Lease::ack) | done: the job leaves the queue |
//! | [`nack`](Lease::nack), [`nack_with`](Lease::nack_with), [`nack_after`](Lease::nack_after) | failed: retried after the backoff (or the given delay), or dead-lettered after the last attempt |
//! | [`reject`](Lease::reject) | poison: dead-lettered now |
//! | [`release`](Lease::release), [`release_after`](Lease::release_after) | not now: back without spending the attempt |
//! | drop | counts as `nack`: a panicking worker's job is retried, never lost |
//!
//! [`extend`](Lease::extend) moves the deadline to now + d (a heartbeat for long jobs).
//! [`ack_and_try_lease`](Lease::ack_and_try_lease) acks and leases the next ready job in one critical
//! section, for a consumer that loops over lease and ack.
//!
//! Delivery is **at-least-once**: when a deadline passes the attempt counts as failed and the job is ready
//! again at once (or dead-lettered if it was the last attempt), so a stalled worker's job is done by
//! someone else, and handlers must be idempotent. Leases are **fenced**: an outcome or `extend` succeeds
//! only while the lease is the job's current one. A lapsed lease whose job nobody else has leased yet is
//! still current, so a slow worker's finished work is accepted; once the job is leased again, or has left
//! the queue, the old lease gets a typed [`LeaseLost`] and changes nothing.
//!
//! First deliveries come out in the order jobs became ready (FIFO), within a priority level: for jobs
//! pushed ready, that is push order; a delayed job, a retry, or a group's next job takes its place in line
//! when it becomes ready (its due time, as SQS does), behind jobs already waiting. Redeliveries after a
//! lapse may reorder.
//!
//! # Retries and backoff
//!
//! A nacked job waits [`Backoff::delay_for`] its attempt before it is ready again. The default is
//! exponential from 1 s, doubling, capped at 15 minutes, with ±20 % jitter; fixed, linear, custom and
//! other jitters are available. Jitter is drawn from a generator seeded by the backoff's seed, the job id
//! and the attempt, so a seeded test is reproducible.
//!
//! # Scheduling
//!
//! [`Queue::push_with`] takes [`PushOptions`]: a delay or a ready time; a priority (0 to 7, strict
//! between levels, FIFO within one); a group key (jobs of a group are delivered one at a time, in push
//! order, as SQS FIFO message groups); a dedup key (a second push within the queue's dedup window is
//! dropped and reported as [`Pushed::Duplicate`]); and a time to live (a job not done by then is
//! dead-lettered as expired). A bounded queue's [`Overflow`] policy decides what a push to a full queue
//! does: wait, fail, or drop the oldest ready job.
//!
//! ```
//! use std::time::Duration;
//! use leasequeue::{PushOptions, Queue};
//!
//! let queue = Queue::new();
//! queue.push_with("nightly report", PushOptions::new().delay(Duration::from_secs(3600))).unwrap();
//! queue.push_with("password reset", PushOptions::new().priority(7)).unwrap();
//! queue.push("welcome email").unwrap();
//! assert_eq!(*queue.try_lease().unwrap(), "password reset");
//! ```
//!
//! # Routing and fan-out
//!
//! A [`Router`] (an exchange) delivers each published job to every queue whose [`Binding`] matches its
//! routing key: direct (the exact key), topic (`*` one word, `#` zero or more, dot-separated, as in
//! RabbitMQ) or fan-out (every queue). Each queue keeps its own consumers, retries and dead letters.
//! Route `Arc<Payload>` to share one payload between queues.
//!
//! ```
//! use std::sync::Arc;
//! use leasequeue::{Binding, Queue, Router};
//!
//! let (billing, analytics) = (Queue::new(), Queue::new());
//! let router = Router::new();
//! router.bind(Binding::direct("order.created"), billing.clone());
//! router.bind(Binding::topic("order.#"), analytics.clone());
//! assert_eq!(router.publish("order.created", Arc::new("order 42")).unwrap().queues(), 2);
//! ```
//!
//! # Dead letters
//!
//! A job that fails its last attempt ([`QueueBuilder::max_attempts`], 10 by default) or is rejected
//! becomes a [`DeadLetter`]: the job, its id, the [`DeadLetterReason`], its attempts, the history of its
//! failures and when it was pushed and dead-lettered. It goes to the [`DeadLetterSink`] given to
//! [`QueueBuilder::dead_letter`] (a closure, a `crossbeam_channel::Sender`, or another `Queue` acting as a
//! dead-letter queue), called outside every lock. Without a sink, or when the sink hands one back, dead
//! letters are kept in the queue's built-in store ([`Queue::dead_letters`], [`Queue::drain_dead_letters`]).
//!
//! # Worker pools
//!
//! Most users hand a handler to a [`WorkerPool`] instead of writing the lease loop: N threads lease from
//! one queue (competing consumers) and run the handler, whose return value settles the job: `Ok` acks,
//! `Err` retries with backoff (the error's text goes into the history), and an [`Outcome`] can also
//! dead-letter the job now or defer it without spending an attempt. A panicking handler is caught and
//! counted as a failure with the panic's message; the worker goes on. The handler's [`Job`] carries the
//! attempt, the id, a heartbeat ([`Job::extend`]) and a cooperative cancellation flag raised at shutdown or
//! when the job's own timeout passes.
//!
//! ```
//! use std::time::Duration;
//! use leasequeue::{Queue, WorkerPool};
//!
//! let queue: Queue<String> = Queue::new();
//! let pool = WorkerPool::builder(queue.clone())
//!     .workers(2..=8) // scales with the backlog
//!     .build(|job| -> Result<(), String> {
//!         println!("thumbnail for {}", *job);
//!         Ok(())
//!     })
//!     .unwrap();
//! queue.push("cat.png".to_string()).unwrap();
//! // ...
//! let report = pool.shutdown(Duration::from_secs(25)); // stop, wait, release what still runs
//! assert_eq!(report.threads_left, 0);
//! ```
//!
//! # Deterministic testing
//!
//! Build the queue on a [`TestClock`]. Time stands still until the test calls [`TestClock::advance`],
//! which makes the queue process what fell due and wakes every blocked consumer and producer:
//!
//! ```
//! use std::time::Duration;
//! use leasequeue::{Backoff, DeadLetterReason, Queue, TestClock};
//!
//! let clock = TestClock::new();
//! let queue = Queue::builder()
//!     .clock(clock.clone())
//!     .max_attempts(3)
//!     .backoff(Backoff::exponential(Duration::from_secs(60), 2.0))
//!     .build()
//!     .unwrap();
//! queue.push("flaky webhook").unwrap();
//!
//! for attempt in 1..=3 {
//!     let lease = queue.try_lease().unwrap();
//!     assert_eq!(lease.attempt(), attempt);
//!     lease.nack_with("502 bad gateway").unwrap();
//!     clock.advance(Duration::from_secs(3600)); // an hour passes in no time
//! }
//! let dead = queue.drain_dead_letters();
//! assert_eq!(dead[0].reason(), DeadLetterReason::MaxAttempts);
//! assert_eq!(dead[0].history().len(), 3);
//! ```
//!
//! # Testing your jobs
//!
//! Helpers make a test of your own handler read as "push, run until idle, assert":
//! [`Queue::run_until_idle`] runs a handler on the calling thread through every retry, moving the test
//! clock from one due job to the next, and returns a [`Summary`]; [`WorkerPool::run_until_idle`] does
//! the same for a pool; [`TestClock::auto_advancing`] jumps ahead on its own whenever no job is ready or
//! leased; [`Inline`] runs the handler on the pushing thread; [`Queue::jobs`] lists every live job; and
//! [`assert_dead_lettered`] finds a dead letter or says what the store holds. An observer
//! ([`QueueBuilder::observer`]) sees every [`Event`], and a seeded scenario gives the same events every run.
//!
//! ```
//! use std::time::Duration;
//! use leasequeue::{Backoff, Job, Queue, TestClock};
//!
//! fn deliver(job: Job<'_, &str>) -> Result<(), String> {
//!     if job.attempt() <= 5 { Err("503".into()) } else { Ok(()) }
//! }
//!
//! let clock = TestClock::new();
//! let queue = Queue::builder()
//!     .clock(clock.clone())
//!     .backoff(Backoff::exponential(Duration::from_secs(60), 4.0).max(Duration::from_secs(3600)))
//!     .build()
//!     .unwrap();
//! queue.push("https://example.com/hook").unwrap();
//! let summary = queue.run_until_idle(deliver);
//! assert_eq!((summary.retried, summary.acked), (5, 1));
//! assert!(clock.elapsed() > Duration::from_secs(2 * 3600)); // hours of backoff, in microseconds
//! ```
//!
//! # Snapshot and restore
//!
//! With the `serde` feature, `Queue::snapshot` writes every live job to any `std::io::Write`, and
//! `QueueBuilder::restore` rebuilds a queue from it, so a planned restart or deploy loses nothing. The
//! format is one JSON document, versioned:
//!
//! ```text
//! {
//!   "format": "leasequeue-snapshot",
//!   "version": 2,
//!   "next_id": 42,                       // the next job id the queue would hand out
//!   "jobs": [                            // every live job, oldest first
//!     {
//!       "id": 7,
//!       "job": ...,                      // the job, as its own Serialize writes it
//!       "attempt": 2,                    // attempts so far (a leased job's running attempt counts)
//!       "priority": 0,
//!       "group": "customer-17",          // or null
//!       "age_ns": 1500000000,            // how long ago it was pushed
//!       "ready_in_ns": 0,                // how long until it may be leased (0: ready)
//!       "expires_in_ns": null,           // how long until its time to live runs out, or null
//!       "history": [                     // its failures so far, oldest first (bounded)
//!         { "attempt": 1, "ago_ns": 900000000, "kind": "nacked", "message": "smtp 451" }
//!       ]
//!     }
//!   ],
//!   "dedup": [{ "key": "order-42", "id": 7, "expires_in_ns": 120000000000 }],
//!   "dead": [                            // the built-in dead-letter store, oldest first
//!     {
//!       "id": 3, "job": ..., "reason": "max_attempts", "attempts": 10,
//!       "history": [...],                // as a job's
//!       "age_ns": 7200000000000,         // how long ago it was pushed
//!       "dead_ago_ns": 60000000000       // how long ago it was dead-lettered
//!     }
//!   ]
//! }
//! ```
//!
//! Times are durations from the snapshot, so the restored queue goes on from the moment of the restore
//! on its own clock. Leased jobs are saved as ready with their attempt counted. Failure kinds are
//! `nacked`, `rejected`, `lapsed`, `dropped`, `panicked`; reasons `max_attempts`, `rejected`, `expired`,
//! `overflow`. The counters are not saved. Version 1 (without histories and dead letters) is still read.
//! A corrupt snapshot (ids not increasing, or not below `next_id`, or `next_id` above 2^63; an unknown
//! kind or reason; a job that does not deserialize), or one of a newer version, is a `RestoreError`, and
//! no queue is built.
//!
//! # Durability
//!
//! With the `journal` feature, `QueueBuilder::open(dir)` builds the same queue over a crash-safe journal
//! on local disk (for `T: Serialize + DeserializeOwned`): every change is recorded (postcard, framed with
//! its length and a CRC-32C) before the call that made it returns, and a later `open` of the directory
//! replays it. What each `SyncPolicy` can lose, the recovery report (`Queue::recovery`) and the journal's
//! errors (`JournalError`) are documented on those items. A lease that was out when the process died
//! lapses on recovery, an attempt spent; times are carried across the restart by the wall clock. A pool
//! worker's ack does not wait for its own sync (its next lease does), so a crash may deliver a job
//! whose handler returned again, as at-least-once allows.
//!
//! # Many processes
//!
//! With the `postgres` feature, `QueueBuilder::connect(url, name)` opens the same queue in a PostgreSQL
//! database, shared by every process that connects to the same name (for
//! `T: Serialize + DeserializeOwned`, stored as JSON), and `Queue::push_in` pushes inside the caller's
//! transaction. Every outcome is fenced by a lease token in the row; times are the database's clock (or a
//! test clock's). The options it does not support yet are refused by name (`PostgresError`); the README
//! lists what differs from the in-memory store.
//!
//! # Crate features
//!
//! - `serde`: `Serialize` and `Deserialize` for [`JobId`]; `Queue::snapshot` and
//!   `QueueBuilder::restore` (adds `serde_json`).
//! - `tracing`: `trace_event`, an observer that emits every job event as a `tracing` event.
//! - `metrics`: `count_events`, an observer that counts job events with the `metrics` crate, and
//!   `Queue::record_metrics`, which sets gauges for depth, in flight, dead letters and the oldest job's
//!   age.
//! - `journal`: durable queues on local disk (`QueueBuilder::open`; adds `crc32c` and `postcard`,
//!   implies `serde`).
//! - `postgres`: one queue shared by many processes in PostgreSQL (`QueueBuilder::connect`,
//!   `Queue::push_in`; adds `postgres`, implies `serde`).
//! - `cron`: cron expressions for periodic jobs (`Schedule::cron`; adds `croner` and `chrono`).
//! - `dashboard`: `Dashboard`, pages, actions and `/metrics` over named queues, served by `tiny_http`
//!   or mounted in your own server (adds `tiny_http`).
//!
//! # What never happens
//!
//! A job pushed successfully is never lost, and never delivered twice except through a lapsed lease. The
//! crate does not panic on any input, holds no lock while user code runs (sinks, job destructors), and
//! never deadlocks when a sink calls back into the queue.
//!
//! A panic in user code (a dead-letter sink, the observer, an alarm hook, a backoff function, a pool's
//! handler or hooks, a redrive filter, the job's own `Drop` or `Clone`) is caught where the queue calls
//! it. The operation that called it has already taken effect and keeps its result; no job is lost, no
//! attempt is spent for it, no worker thread dies, and no unrelated caller sees the panic. A dead letter
//! whose sink panicked goes to the built-in store. Each one is counted in [`Stats::panics`] and handed to
//! the hook set with [`QueueBuilder::on_panic`] as a [`UserPanic`].
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod alarm;
mod backoff;
mod builder;
mod clock;
mod core;
#[cfg(feature = "dashboard")]
mod dashboard;
mod dead_letter;
mod deliver;
mod error;
mod event;
mod handler;
mod integrations;
mod job;
mod lease;
mod panics;
mod pool;
mod queue;
mod redrive;
mod router;
mod schedule;
#[cfg(feature = "serde")]
mod snapshot;
mod stats;
mod store;
mod testing;
mod wait;

pub use alarm::{Alarm, AlarmEvent, AlarmMetric};
pub use backoff::{Backoff, Jitter};
pub use builder::{Overflow, QueueBuilder};
pub use clock::{Clock, TestClock};
#[cfg(feature = "dashboard")]
pub use dashboard::{Dashboard, DashboardBuilder, DashboardRequest, DashboardResponse, DashboardServer};
pub use dead_letter::{DeadLetter, DeadLetterReason, DeadLetterSink, Failure, FailureKind};
pub use error::{
    BuildError, LeaseError, LeaseLost, LeaseTimeoutError, PushError, PushTimeoutError, StoreError,
    TryLeaseError, TryPushError,
};
pub use event::{Event, EventKind};
pub use handler::{IntoOutcome, Job, Outcome};
#[cfg(feature = "metrics")]
pub use integrations::count_events;
#[cfg(feature = "tracing")]
pub use integrations::trace_event;
pub use job::{JobId, PushOptions, Pushed};
pub use lease::{Lease, NackOutcome};
pub use panics::{PanicSite, UserPanic};
pub use pool::{PoolStats, ShutdownReport, WorkerPool, WorkerPoolBuilder, WorkerRange, MAX_WORKERS};
pub use queue::Queue;
pub use redrive::{Redrive, RedriveCanceller, RedriveReport};
pub use router::{Binding, BindingId, PublishError, Published, Refused, Router, RouterStats, Unroutable};
pub use schedule::{Missed, Schedule, ScheduleError, ScheduleInfo};
#[cfg(feature = "serde")]
pub use snapshot::{RestoreError, SnapshotError};
pub use stats::Stats;
#[cfg(feature = "journal")]
pub use store::journal::{JournalError, Recovery, SyncPolicy, Torn, Undecodable};
#[cfg(feature = "postgres")]
pub use store::pg::open::PostgresError;
pub use testing::{assert_dead_lettered, Attempt, Inline, JobInfo, JobState, Summary, MAX_RUNS};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
