//! Job identity and per-push options.

use std::fmt;
use std::time::{Duration, Instant};

use crate::clock::{ticks, Clock, Tick};

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

/// Options for one push: when the job becomes ready.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{PushOptions, Queue};
///
/// let queue = Queue::new();
/// queue.push_with("reminder", PushOptions::new().delay(Duration::from_secs(3600))).unwrap();
/// assert_eq!(queue.stats().delayed, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushOptions {
    ready: Ready,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Ready {
    #[default]
    Now,
    After(Duration),
    At(Instant),
}

impl PushOptions {
    /// Ready at once: the same as a plain push.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::new();
    /// queue.push_with(1, leasequeue::PushOptions::new()).unwrap();
    /// assert_eq!(queue.stats().ready, 1);
    /// ```
    pub fn new() -> Self {
        PushOptions::default()
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

    pub(crate) fn ready_tick(&self, now: Tick, clock: &Clock) -> Tick {
        match self.ready {
            Ready::Now => now,
            Ready::After(d) => now.saturating_add(ticks(d)),
            Ready::At(at) => clock.tick_of(at),
        }
    }
}
