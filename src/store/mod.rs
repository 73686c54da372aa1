//! Stores: where a queue's jobs live. A store changes durability and reach, never semantics: every store
//! passes the same conformance suite (`tests/integration/main.rs`).
//!
//! [`memory`] is the locked in-memory store, the default. Its core bookkeeping ([`crate::core::State`])
//! knows nothing of `T`, of storage or of clocks; the store adds the payloads, the lock and the waiting,
//! the dead-letter store, and the calls out to user code after the lock. The journal (`journal`, feature
//! `journal`) makes it durable; PostgreSQL (`pg`, feature `postgres`) is a second flavor behind `Queue`.
//!
//! **Adding a store.** A journal on local disk is the memory store plus a log of its transitions (the
//! state changes the core already makes, written with a checksum before the operation returns), not a
//! second scheduler: it plugs in where the memory store changes its state. A store with its own
//! scheduler (PostgreSQL, which keeps the state in SQL) becomes a second flavor beside `memory` behind
//! [`Queue`](crate::Queue) (as crossbeam-channel's flavors: the public type matches on the flavor in each
//! method). Either way it provides what this module names: the waits ([`Wait`]), the failures
//! ([`PushFail`], [`LeaseFail`]) that every public operation maps to its own error, and the
//! crate-internal interface on `Queue` (`src/queue.rs`, "the crate-internal interface") that the lease,
//! the pool, redrive, snapshots and the testing helpers use.

use std::borrow::Borrow;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Tick;
use crate::core::{Config, Exit, Placement, State};
use crate::panics::PanicHook;
use crate::store::memory::Core;
use crate::{Alarm, AlarmEvent, Backoff, Clock, DeadLetter, DeadLetterSink, Event, Overflow, StoreError};

#[cfg(any(feature = "journal", feature = "postgres"))]
pub(crate) mod codes;
#[cfg(feature = "journal")]
pub(crate) mod journal;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod pg;

/// Something that wants to hear of every push: a scaling worker pool, which starts a worker when the
/// backlog builds up while every worker is busy.
pub(crate) trait Backlog: Send + Sync {
    fn on_push(self: Arc<Self>);
}

pub(crate) type Observer = Box<dyn Fn(&Event) + Send + Sync>;
pub(crate) type AlarmHook = Box<dyn Fn(&AlarmEvent) + Send + Sync>;

/// How long a blocking call may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    No,
    /// Until this tick; [`NEVER`](crate::clock::NEVER) waits forever.
    Until(Tick),
}

/// Why a push did not take its job. Each public push maps it to its own error, exhaustively.
pub(crate) enum PushFail {
    Closed,
    /// The store could not record it.
    Store(StoreError),
    /// The overflow policy ([`Overflow::RejectNew`]) refused it at once.
    Rejected,
    /// No room came within the wait (none, for a `try_` push).
    NoRoom,
}

/// Why a lease call returned no lease. Each public lease maps it to its own error, exhaustively.
pub(crate) enum LeaseFail {
    /// The queue is closed and drained.
    Closed,
    /// No job became ready within the wait (none, for a `try_` lease).
    NoJob,
    /// The caller's stop flag was raised.
    Stopped,
    /// A job is ready, but the rate limit lets the next lease through only at this tick.
    Limited(Tick),
    /// The store could not record the lease.
    Store(StoreError),
}

/// How a consumer leases: how long it waits, the lease's visibility timeout if not the queue's, and a
/// flag that interrupts the wait (see [`Inner::interrupt`](memory::Inner::interrupt)).
pub(crate) struct LeaseParams<'a> {
    pub wait: Wait,
    pub visibility: Option<Tick>,
    pub stop: Option<&'a AtomicBool>,
}

/// Everything a queue is built from, checked by its builder.
pub(crate) struct Parts<T> {
    pub cfg: Config,
    pub clock: Clock,
    pub backoff: Backoff,
    pub sink: Option<Box<dyn DeadLetterSink<T>>>,
    pub observer: Option<Observer>,
    pub alarms: Vec<(Alarm, AlarmHook)>,
    pub capacity: Option<usize>,
    pub overflow: Overflow,
    pub ttl: Option<Duration>,
    pub panic_hook: Option<PanicHook>,
    /// What makes the queue durable, if anything does.
    pub durable: Option<Box<dyn Durable<T>>>,
}

/// A job as a push takes it: owned, or already shared (a redriven dead letter's). A push that fails
/// after the job went in (a durable store's sync failed) takes it back out and hands it back when no
/// one else holds it.
pub(crate) trait Payload<T>: Into<Arc<T>> + Borrow<T> + Sized {
    fn from_shared(job: Arc<T>) -> Result<Self, Arc<T>>;

    /// The job shared, by `share` if it is owned (the memory store reuses allocations that way).
    fn into_shared_with(self, share: impl FnOnce(T) -> Arc<T>) -> Arc<T>;
}

impl<T> Payload<T> for T {
    fn from_shared(job: Arc<T>) -> Result<T, Arc<T>> {
        Arc::try_unwrap(job)
    }

    #[inline]
    fn into_shared_with(self, share: impl FnOnce(T) -> Arc<T>) -> Arc<T> {
        share(self)
    }
}

impl<T> Payload<T> for Arc<T> {
    fn from_shared(job: Arc<T>) -> Result<Arc<T>, Arc<T>> {
        Ok(job)
    }

    fn into_shared_with(self, _: impl FnOnce(T) -> Arc<T>) -> Arc<T> {
        self
    }
}

/// What a durable store adds to the memory store: a record of every change, written under the queue's
/// lock so that the records' order is the core's, and made durable after the lock is released, before
/// the operation returns (see the `journal` module).
// Implemented by the journal store, behind its feature.
#[cfg_attr(not(feature = "journal"), allow(dead_code))]
pub(crate) trait Durable<T>: Send + Sync {
    /// Serializes a job for its records. It runs the job's `Serialize` (user code): the caller calls it
    /// outside every lock and catches its panic.
    fn encode(&self, job: &T) -> Result<Vec<u8>, StoreError>;
    /// Writes a push's record (the job as [`encode`](Durable::encode) gave it), before the push takes
    /// effect: an error refuses the push, and nothing changed.
    fn push(
        &self,
        id: u64,
        now: Tick,
        place: &Placement,
        dedup: Option<(&str, Tick)>,
        payload: &[u8],
    ) -> Result<(), StoreError>;
    /// Records a change that has taken effect. A record that cannot be written fails the store: every
    /// later call reports it (what is on disk no longer follows the queue).
    fn record(&self, change: Change<'_>);
    /// Records a dead letter put (back) into the built-in store (its job as [`encode`](Durable::encode)
    /// gave it): one the sink refused or panicked on, or one a redrive could not move.
    fn bury(&self, letter: &DeadLetter<T>, payload: &[u8]);
    /// Fails the store: a change took effect that it could not record (see [`record`](Durable::record)).
    fn fail(&self, what: String);
    /// Gathers the records from now on into one write, made by [`flush`](Durable::flush) (a batch of
    /// pushes).
    fn batch(&self);
    /// Writes the records gathered since [`batch`](Durable::batch). An error writes none of them: the
    /// caller undoes their changes.
    fn flush(&self) -> Result<(), StoreError>;
    /// Whether the store takes records: an operation asks before it changes anything.
    fn check(&self) -> Result<(), StoreError>;
    /// Returns once every change recorded so far is as durable as the store promises.
    fn commit(&self) -> Result<(), StoreError>;
    /// Under the lock, after an operation: starts compacting the store if that is due, and returns the
    /// writing to do once the lock is released.
    fn after(&self, core: &Core<T>) -> Option<Pending<'_>>;
    /// Under the lock: starts writing the whole state, which replaces every earlier record, and returns
    /// the writing to do once the lock is released.
    fn checkpoint(&self, core: &Core<T>) -> Result<Pending<'_>, StoreError>;
    /// Its syncs since it was opened, and the bytes of a torn tail it cut off then (see [`crate::Stats`]).
    fn counts(&self) -> (u64, u64);
    /// The queue is being dropped: the last look at its state.
    fn closing(&self, _core: &Core<T>) {}
    /// The store itself, for what only it knows (a journal's recovery report).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Work a durable store does after the queue's lock is released (writing a checkpoint).
pub(crate) type Pending<'a> = Box<dyn FnOnce() -> Result<(), StoreError> + 'a>;

/// A change for a durable store to record (see [`Durable::record`]).
#[cfg_attr(not(feature = "journal"), allow(dead_code))]
pub(crate) enum Change<'a> {
    Lease {
        id: u64,
        attempt: u32,
        deadline: Tick,
    },
    Ack(u64),
    /// A job back in the queue after a nack, a release or a revoke: its slot, read from the state.
    Requeue(&'a State, u32),
    Dead(&'a Exit),
    /// A dead letter taken out of the built-in store: by the sink, or redriven.
    Unbury(u64),
    DrainDead,
    Purge,
    Paused(bool),
}
