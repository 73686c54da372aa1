//! A snapshot of a queue's counts and counters.

use std::time::Duration;

/// Counts and counters of a queue, exact at the moment [`Queue::stats`](crate::Queue::stats) read them.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::new();
/// queue.push("a").unwrap();
/// queue.push("b").unwrap();
/// let lease = queue.try_lease().unwrap();
/// let stats = queue.stats();
/// assert_eq!((stats.ready, stats.leased, stats.pushed), (1, 1, 2));
/// assert_eq!(stats.len(), 2);
/// # lease.ack().unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Jobs that can be leased now.
    pub ready: usize,
    /// Jobs not yet visible: scheduled for later, backing off after a failure, or waiting behind an
    /// earlier job of their group.
    pub delayed: usize,
    /// Of `delayed`, the jobs waiting behind an earlier job of their group.
    pub waiting: usize,
    /// Jobs in flight under a lease.
    pub leased: usize,
    /// Dead letters held in the queue's built-in store.
    pub dead: usize,
    /// Jobs pushed, ever.
    pub pushed: u64,
    /// Jobs acked (done).
    pub acked: u64,
    /// Nacks accepted, including leases dropped without an outcome.
    pub nacked: u64,
    /// Releases accepted: [`Lease::release`](crate::Lease::release) and `release_after`, a pool handler's
    /// [`Outcome::Defer`](crate::Outcome::Defer), and leases a pool's shutdown took back.
    pub released: u64,
    /// Rejections accepted.
    pub rejected: u64,
    /// Leases that lapsed (their deadline passed without an outcome). "Lapsed" is the word for leases;
    /// "expired" is for a job's time to live ([`DeadLetterReason::Expired`](crate::DeadLetterReason::Expired)).
    pub lapsed: u64,
    /// The same count as [`lapsed`](Stats::lapsed), under its old name.
    #[deprecated(since = "0.1.0", note = "renamed to `lapsed`: `expired` means a time to live that passed")]
    pub expired: u64,
    /// Jobs dead-lettered, for any reason, to the sink or the built-in store.
    pub dead_lettered: u64,
    /// Pushes dropped as duplicates of a reserved dedup key.
    pub deduplicated: u64,
    /// Jobs removed by `purge`.
    pub purged: u64,
    /// How long the job at the head of the ready queue has been waiting to be leased; `None` when no job
    /// is ready.
    pub oldest_ready_age: Option<Duration>,
    /// Consumers blocked in `lease` or `lease_timeout` right now, waiting for a job.
    pub consumers_waiting: usize,
    /// Producers blocked in `push` or `push_timeout` right now, waiting for room (backpressure).
    pub producers_waiting: usize,
    /// Panics in user code that the queue caught (a dead-letter sink, an observer, an alarm hook, a job's
    /// `Drop`, a backoff function, a worker pool's hooks, a redrive filter; see [`UserPanic`](crate::UserPanic)).
    /// A pool's handler panics are counted in [`PoolStats::panicked`](crate::PoolStats::panicked) instead.
    pub panics: u64,
    /// Of `ready`, the jobs the queue's rate limit holds back now
    /// ([`QueueBuilder::rate_limit`](crate::QueueBuilder::rate_limit)).
    pub limited: usize,
    /// A durable queue's syncs (`fdatasync`) since it was opened: under group commit, fewer than the
    /// calls that waited for one. 0 for a queue in memory.
    pub syncs: u64,
    /// Bytes of a torn tail cut off the journal when the queue was opened (see
    /// [`Queue::recovery`](crate::Queue::recovery), feature `journal`). 0 for a queue in memory.
    pub torn_bytes: u64,
}

impl Stats {
    /// Live jobs: ready, delayed and leased.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::Queue::<u8>::new().stats().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.ready + self.delayed + self.leased
    }

    /// Whether there is no live job.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::Queue::<u8>::new().stats().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
