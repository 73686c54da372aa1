//! Job identity and per-push options.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{ticks, Clock, Tick, NEVER};
use crate::core::{Placement, PRIORITY_LEVELS};

/// A job's id, unique within its queue. Ids are handed out in push order, starting at 1.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::new();
/// let a = queue.push("a").unwrap();
/// let b = queue.push("b").unwrap();
/// assert!(a < b);
/// assert_eq!(queue.try_lease().unwrap().id(), a);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct JobId(u64);

impl JobId {
    /// The id as a number.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// assert_eq!(queue.push(()).unwrap().as_u64(), 1);
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// An id from a number, for tests and for [`Backoff::delay_for`](crate::Backoff::delay_for).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::JobId::from_u64(3).as_u64(), 3);
    /// ```
    pub fn from_u64(id: u64) -> Self {
        JobId(id)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a push with options did: the job was enqueued, or its dedup key was already reserved and the
/// job was dropped as a duplicate.
///
/// # Examples
///
/// ```
/// use leasequeue::{PushOptions, Pushed, Queue};
///
/// let queue = Queue::new();
/// let first = queue.push_with("charge order 42", PushOptions::new().dedup_key("order-42")).unwrap();
/// let again = queue.push_with("charge order 42", PushOptions::new().dedup_key("order-42")).unwrap();
/// assert_eq!(again, Pushed::Duplicate(first.id()));
/// assert_eq!(queue.len(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pushed {
    /// The job was enqueued under this id.
    Enqueued(JobId),
    /// The job was not enqueued: its dedup key is reserved for this earlier job.
    Duplicate(JobId),
}

impl Pushed {
    /// The id of the job enqueued, or of the earlier job this one duplicates.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// let pushed = queue.push_with(1, leasequeue::PushOptions::new()).unwrap();
    /// assert_eq!(pushed.id().as_u64(), 1);
    /// ```
    pub fn id(self) -> JobId {
        match self {
            Pushed::Enqueued(id) | Pushed::Duplicate(id) => id,
        }
    }

    /// Whether the job was dropped as a duplicate.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// assert!(!queue.push_with(1, leasequeue::PushOptions::new()).unwrap().is_duplicate());
    /// ```
    pub fn is_duplicate(self) -> bool {
        matches!(self, Pushed::Duplicate(_))
    }
}

/// Options for one push: when the job becomes ready, its priority, its group, its dedup key and its time
/// to live. Each is optional; they combine.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{PushOptions, Queue};
///
/// let queue = Queue::new();
/// let options = PushOptions::new()
///     .delay(Duration::from_secs(60))   // ready in a minute
///     .priority(5)                      // before lower levels
///     .group("customer-17")             // one at a time, in order, per customer
///     .dedup_key("invoice-2026-11-17")  // a second push within the window is dropped
///     .ttl(Duration::from_secs(3600));  // dead-lettered as expired if not done within the hour
/// queue.push_with("send invoice", options).unwrap();
/// assert_eq!(queue.stats().delayed, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushOptions {
    ready: Ready,
    priority: u8,
    group: Option<Arc<str>>,
    dedup: Option<Arc<str>>,
    ttl: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Ready {
    #[default]
    Now,
    After(Duration),
    At(Instant),
}

impl PushOptions {
    /// The highest priority level; the lowest, and the default, is 0.
    pub const MAX_PRIORITY: u8 = PRIORITY_LEVELS as u8 - 1;

    /// [`new`](PushOptions::new)'s options, for a plain push to pass by reference.
    pub(crate) const PLAIN: PushOptions =
        PushOptions { ready: Ready::Now, priority: 0, group: None, dedup: None, ttl: None };

    /// Ready at once, priority 0, no group, no dedup key, no time to live of its own: a plain push.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push_with(1, leasequeue::PushOptions::new()).unwrap();
    /// assert_eq!(queue.stats().ready, 1);
    /// ```
    pub fn new() -> Self {
        PushOptions::PLAIN
    }

    /// The job becomes ready `delay` after the push (SQS `DelaySeconds`). Replaces any `ready_at`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = leasequeue::PushOptions::new().delay(Duration::from_secs(5));
    /// # let _ = opts;
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.ready = Ready::After(delay);
        self
    }

    /// The job becomes ready at `at`, on the queue's clock; a time in the past means at once. Replaces any
    /// `delay`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{PushOptions, Queue, TestClock};
    ///
    /// let clock = TestClock::new();
    /// let queue = Queue::builder().clock(clock.clone()).build().unwrap();
    /// let nine_am = clock.now() + Duration::from_secs(9 * 3600);
    /// queue.push_with("digest", PushOptions::new().ready_at(nine_am)).unwrap();
    /// clock.advance_to(nine_am);
    /// assert_eq!(*queue.try_lease().unwrap(), "digest");
    /// ```
    pub fn ready_at(mut self, at: Instant) -> Self {
        self.ready = Ready::At(at);
        self
    }

    /// The job's priority, from 0 (the default, lowest) to [`MAX_PRIORITY`](Self::MAX_PRIORITY) (7);
    /// higher values are taken as 7. Priorities are strict: a ready job of a higher level is always leased
    /// before any of a lower level; within a level jobs come out first in, first out. A retried job keeps
    /// its priority.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{PushOptions, Queue};
    /// let queue = Queue::new();
    /// queue.push("newsletter").unwrap();
    /// queue.push_with("password reset", PushOptions::new().priority(7)).unwrap();
    /// assert_eq!(*queue.try_lease().unwrap(), "password reset");
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority.min(Self::MAX_PRIORITY);
        self
    }

    /// Puts the job in a group (SQS FIFO message groups): jobs of one group are delivered one at a time,
    /// in push order. While a job of the group is leased or backing off after a failure, later jobs of
    /// the group wait (counted as delayed); when it leaves the queue (acked or dead-lettered) the next one
    /// becomes ready. Other groups, and jobs without a group, go on meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{PushOptions, Queue};
    /// let queue = Queue::new();
    /// queue.push_with("debit account 9", PushOptions::new().group("account-9")).unwrap();
    /// queue.push_with("credit account 9", PushOptions::new().group("account-9")).unwrap();
    /// let first = queue.try_lease().unwrap();
    /// assert!(queue.try_lease().is_err()); // the group's next job waits for the first
    /// first.ack().unwrap();
    /// assert_eq!(*queue.try_lease().unwrap(), "credit account 9");
    /// ```
    pub fn group(mut self, key: impl Into<Arc<str>>) -> Self {
        self.group = Some(key.into());
        self
    }

    /// A deduplication key: a push whose key was pushed before, within the queue's dedup window (5 minutes
    /// by default, as SQS; see [`QueueBuilder::dedup_window`](crate::QueueBuilder::dedup_window)), is
    /// accepted but not enqueued, and returns [`Pushed::Duplicate`] with the earlier job's id. The key stays
    /// reserved for the whole window, even after its job was acked (as SQS does).
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{PushOptions, Queue};
    /// let queue = Queue::new();
    /// queue.push_with("charge", PushOptions::new().dedup_key("order-1")).unwrap();
    /// assert!(queue.push_with("charge", PushOptions::new().dedup_key("order-1")).unwrap().is_duplicate());
    /// ```
    pub fn dedup_key(mut self, key: impl Into<Arc<str>>) -> Self {
        self.dedup = Some(key.into());
        self
    }

    /// The job's time to live, from the push: a job not done by then is never delivered again and is
    /// dead-lettered with reason [`Expired`](crate::DeadLetterReason::Expired) when the clock passes it (a
    /// job leased at that moment keeps its lease, and is dead-lettered if that attempt does not succeed).
    /// With a queue-wide [`QueueBuilder::ttl`](crate::QueueBuilder::ttl) as well, the lower wins.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{DeadLetterReason, PushOptions, Queue, TestClock};
    /// let clock = TestClock::new();
    /// let queue = Queue::builder().clock(clock.clone()).build().unwrap();
    /// queue.push_with("flash sale email", PushOptions::new().ttl(Duration::from_secs(60))).unwrap();
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(queue.drain_dead_letters()[0].reason(), DeadLetterReason::Expired);
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    pub(crate) fn dedup(&self) -> Option<&Arc<str>> {
        self.dedup.as_ref()
    }

    /// Whether the job is ready at once, with no dedup key or time to live of its own (a push the hot
    /// path can take, at any priority, in a group or not).
    #[inline]
    pub(crate) fn is_immediate(&self) -> bool {
        self.ready == Ready::Now && self.dedup.is_none() && self.ttl.is_none()
    }

    /// Whether the job goes in a group.
    #[inline(always)]
    pub(crate) fn is_grouped(&self) -> bool {
        self.group.is_some()
    }

    /// Where an immediate job goes (see [`is_immediate`](PushOptions::is_immediate)), pushed at `now`;
    /// `grouped` is [`is_grouped`](PushOptions::is_grouped), for the caller to make it a constant.
    #[inline(always)]
    pub(crate) fn immediate_placement(&self, now: Tick, grouped: bool) -> Placement {
        let group = if grouped { self.group.clone() } else { None };
        Placement { ready_at: now, priority: self.priority, group, expires_at: NEVER }
    }

    /// Where and when the job goes, pushed at `now` on a queue whose own time to live is `queue_ttl`.
    #[inline]
    pub(crate) fn placement(&self, now: Tick, clock: &Clock, queue_ttl: Option<Duration>) -> Placement {
        let ready_at = match self.ready {
            Ready::Now => now,
            Ready::After(d) => now.saturating_add(ticks(d)),
            Ready::At(at) => clock.tick_of(at),
        };
        let ttl = match (self.ttl, queue_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Placement {
            ready_at,
            priority: self.priority,
            group: self.group.clone(),
            expires_at: ttl.map_or(NEVER, |ttl| now.saturating_add(ticks(ttl))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_options_are_the_defaults() {
        assert_eq!(PushOptions::PLAIN, PushOptions::default());
    }
}
