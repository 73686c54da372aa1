//! What happened to a job, for observers, logs and tests.

use std::fmt;
use std::time::Instant;

use crate::{DeadLetterReason, JobId};

/// What happened.
///
/// # Examples
///
/// ```
/// assert_eq!(leasequeue::EventKind::Acked.to_string(), "acked");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The job was pushed.
    Pushed,
    /// A push was dropped as a duplicate of this job (see `PushOptions::dedup_key`).
    Deduplicated,
    /// A lease of the job was handed out (attempt `attempt`).
    Leased,
    /// The job was acked.
    Acked,
    /// An attempt was nacked (by the holder, or by dropping the lease).
    Nacked,
    /// The job was rejected.
    Rejected,
    /// The job was released without spending its attempt.
    Released,
    /// A lease lapsed.
    Lapsed,
    /// The job was dead-lettered.
    DeadLettered(DeadLetterReason),
    /// The job was removed by [`Queue::purge`](crate::Queue::purge).
    Purged,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Pushed => f.write_str("pushed"),
            EventKind::Deduplicated => f.write_str("deduplicated"),
            EventKind::Leased => f.write_str("leased"),
            EventKind::Acked => f.write_str("acked"),
            EventKind::Nacked => f.write_str("nacked"),
            EventKind::Rejected => f.write_str("rejected"),
            EventKind::Released => f.write_str("released"),
            EventKind::Lapsed => f.write_str("lapsed"),
            EventKind::DeadLettered(reason) => write!(f, "dead-lettered ({reason})"),
            EventKind::Purged => f.write_str("purged"),
        }
    }
}

/// One thing that happened to one job, as an observer sees it (see
/// [`QueueBuilder::observer`](crate::QueueBuilder::observer)).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use leasequeue::{Event, EventKind, Queue};
///
/// let log: Arc<Mutex<Vec<Event>>> = Arc::default();
/// let sink = Arc::clone(&log);
/// let queue = Queue::builder().observer(move |e: &Event| sink.lock().unwrap().push(e.clone())).build().unwrap();
/// queue.push("job").unwrap();
/// queue.try_lease().unwrap().ack().unwrap();
/// let kinds: Vec<EventKind> = log.lock().unwrap().iter().map(|e| e.kind).collect();
/// assert_eq!(kinds, [EventKind::Pushed, EventKind::Leased, EventKind::Acked]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// To which job.
    pub id: JobId,
    /// The job's attempt at the time (0 before its first lease).
    pub attempt: u32,
    /// When, on the queue's clock.
    pub at: Instant,
}
