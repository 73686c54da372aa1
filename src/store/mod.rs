//! Stores: where a queue's jobs live. A store changes durability and reach, never semantics: every store
//! passes the same conformance suite (`tests/integration/main.rs`).
//!
//! Today there is one, [`memory`]: the locked in-memory store, the default. Its core bookkeeping
//! ([`crate::core::State`]) knows nothing of `T`, of storage or of clocks; the store adds the payloads,
//! the lock and the waiting, the dead-letter store, and the calls out to user code after the lock.
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

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Tick;
use crate::core::Config;
use crate::panics::PanicHook;
use crate::{Alarm, AlarmEvent, Backoff, Clock, DeadLetterSink, Event, Overflow};

#[cfg(feature = "journal")]
pub(crate) mod journal;
pub(crate) mod memory;

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
}
