//! Threshold alarms on a queue's depth, dead letters and lag.

use std::fmt;
use std::time::Duration;

use crate::clock::ticks;

/// What an [`Alarm`] watches.
///
/// # Examples
///
/// ```
/// assert_eq!(leasequeue::AlarmMetric::ReadyDepth.to_string(), "ready depth");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlarmMetric {
    /// Jobs ready and waiting for a consumer: the earliest overload signal.
    ReadyDepth,
    /// Dead letters held in the built-in store.
    DeadLetters,
    /// How long the longest-waiting ready job has waited, in nanoseconds.
    OldestReadyAge,
}

impl fmt::Display for AlarmMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlarmMetric::ReadyDepth => "ready depth",
            AlarmMetric::DeadLetters => "dead letters",
            AlarmMetric::OldestReadyAge => "oldest ready age",
        })
    }
}

/// A threshold with hysteresis: raised once when the metric reaches `raise_at`, cleared once when it
/// falls to `clear_at` or below, and raised again only after that. Add one with
/// [`QueueBuilder::alarm`](crate::QueueBuilder::alarm); it is checked after every operation on the queue
/// (and every advance of a test clock), with no thread of its own. A threshold of zero would always be
/// crossed, so [`QueueBuilder::build`](crate::QueueBuilder::build) refuses it.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use leasequeue::{Alarm, AlarmEvent, Queue};
///
/// let pages: Arc<Mutex<Vec<AlarmEvent>>> = Arc::default();
/// let pager = Arc::clone(&pages);
/// let queue = Queue::builder()
///     .alarm(Alarm::ready_depth(3).clear_at(1), move |e| pager.lock().unwrap().push(*e))
///     .build()
///     .unwrap();
/// for i in 0..4 {
///     queue.push(i).unwrap(); // raised once, at 3
/// }
/// for _ in 0..3 {
///     queue.try_lease().unwrap().ack().unwrap(); // cleared once, at 1
/// }
/// let pages = pages.lock().unwrap();
/// assert_eq!(pages.iter().map(|e| (e.raised, e.value)).collect::<Vec<_>>(), [(true, 3), (false, 1)]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alarm {
    pub(crate) metric: AlarmMetric,
    pub(crate) raise_at: u64,
    pub(crate) clear_at: u64,
}

impl Alarm {
    /// Raised when `depth` jobs are ready; cleared at half that by default.
    ///
    /// # Examples
    ///
    /// ```
    /// let alarm = leasequeue::Alarm::ready_depth(10_000);
    /// # let _ = alarm;
    /// ```
    pub fn ready_depth(depth: usize) -> Self {
        Self::new(AlarmMetric::ReadyDepth, depth as u64)
    }

    /// Raised when the built-in store holds `count` dead letters; cleared at half that by default.
    ///
    /// # Examples
    ///
    /// ```
    /// let alarm = leasequeue::Alarm::dead_letters(1); // page on the first dead letter
    /// # let _ = alarm;
    /// ```
    pub fn dead_letters(count: usize) -> Self {
        Self::new(AlarmMetric::DeadLetters, count as u64)
    }

    /// Raised when the longest-waiting ready job has waited `age`; cleared at half that by default.
    ///
    /// # Examples
    ///
    /// ```
    /// let alarm = leasequeue::Alarm::oldest_ready_age(std::time::Duration::from_secs(60));
    /// # let _ = alarm;
    /// ```
    pub fn oldest_ready_age(age: Duration) -> Self {
        Self::new(AlarmMetric::OldestReadyAge, ticks(age))
    }

    fn new(metric: AlarmMetric, raise_at: u64) -> Self {
        Alarm { metric, raise_at, clear_at: raise_at / 2 }
    }

    /// The value at or below which a raised alarm clears (taken as below `raise_at`).
    ///
    /// # Examples
    ///
    /// ```
    /// let alarm = leasequeue::Alarm::ready_depth(100).clear_at(20);
    /// # let _ = alarm;
    /// ```
    pub fn clear_at(mut self, value: u64) -> Self {
        self.clear_at = value.min(self.raise_at.saturating_sub(1));
        self
    }

    /// Whether an alarm that is `raised` (or not) changes state at `value`: `Some(true)` raises it,
    /// `Some(false)` clears it.
    pub(crate) fn crossing(&self, raised: bool, value: u64) -> Option<bool> {
        if !raised && value >= self.raise_at {
            Some(true)
        } else if raised && value <= self.clear_at {
            Some(false)
        } else {
            None
        }
    }
}

/// An alarm raised or cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlarmEvent {
    /// What the alarm watches.
    pub metric: AlarmMetric,
    /// Raised (true) or cleared (false).
    pub raised: bool,
    /// The metric's value then (nanoseconds for the age).
    pub value: u64,
}
