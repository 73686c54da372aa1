//! `QueueBuilder` and the overflow policy.

use std::fmt;
use std::time::Duration;

use crate::clock::ticks;
use crate::core::Config;
use crate::panics::PanicHook;
use crate::store::{AlarmHook, Durable, Observer, Parts};
use crate::{Alarm, AlarmEvent, Backoff, BuildError, Clock, DeadLetterSink, Event, Queue, UserPanic};

/// What a push to a full bounded queue does.
///
/// # Examples
///
/// ```
/// use leasequeue::{DeadLetterReason, Overflow, Queue};
/// let queue = Queue::builder().capacity(2).overflow(Overflow::DropOldest).build().unwrap();
/// for job in ["a", "b", "c"] {
///     queue.push(job).unwrap();
/// }
/// let dropped = queue.drain_dead_letters();
/// assert_eq!((*dropped[0].job(), dropped[0].reason()), ("a", DeadLetterReason::Overflow));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Backpressure: `push` blocks until there is room, `try_push` fails with the job.
    #[default]
    Block,
    /// Every push fails at once with the job (`PushError::Full`).
    RejectNew,
    /// The oldest ready job of the lowest priority level is dead-lettered with reason
    /// [`Overflow`](crate::DeadLetterReason::Overflow) to make room. When no job is ready (all are leased
    /// or delayed) the push waits as under `Block`.
    DropOldest,
}

/// Configures and builds a [`Queue`]. Every option has a default; [`build`](QueueBuilder::build) checks
/// them.
///
/// | option | default |
/// |---|---|
/// | [`visibility_timeout`](QueueBuilder::visibility_timeout) | 30 s (as SQS) |
/// | [`max_attempts`](QueueBuilder::max_attempts) | 10 |
/// | [`backoff`](QueueBuilder::backoff) | exponential from 1 s, ×2, capped at 15 min, ±20 % jitter |
/// | [`dead_letter`](QueueBuilder::dead_letter) | none: the built-in dead-letter store |
/// | [`capacity`](QueueBuilder::capacity) | unbounded |
/// | [`overflow`](QueueBuilder::overflow) | [`Overflow::Block`] |
/// | [`ttl`](QueueBuilder::ttl) | none |
/// | [`dedup_window`](QueueBuilder::dedup_window) | 5 minutes (as SQS) |
/// | [`clock`](QueueBuilder::clock) | the system's monotonic clock |
/// | [`history_limit`](QueueBuilder::history_limit) | 16 failures per job |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Backoff, Queue, TestClock};
///
/// let clock = TestClock::new();
/// let queue: Queue<String> = Queue::builder()
///     .visibility_timeout(Duration::from_secs(120))
///     .max_attempts(3)
///     .backoff(Backoff::fixed(Duration::from_secs(10)))
///     .clock(clock)
///     .build()
///     .unwrap();
/// # let _ = queue;
/// ```
pub struct QueueBuilder<T> {
    visibility: Duration,
    max_attempts: u32,
    backoff: Backoff,
    sink: Option<Box<dyn DeadLetterSink<T>>>,
    observer: Option<Observer>,
    alarms: Vec<(Alarm, AlarmHook)>,
    capacity: Option<usize>,
    overflow: Overflow,
    pub(crate) clock: Clock,
    pub(crate) history_limit: usize,
    dedup_window: Duration,
    ttl: Option<Duration>,
    rate: Option<(u32, Duration)>,
    group_rate: Option<(u32, Duration)>,
    group_concurrency: usize,
    panic_hook: Option<PanicHook>,
    #[cfg(feature = "journal")]
    pub(crate) journal: crate::store::journal::JournalOptions,
    /// The server of [`postgres_conformance`](QueueBuilder::postgres_conformance)'s queues.
    #[cfg(feature = "postgres")]
    pub(crate) pg_conformance: Option<String>,
    /// See [`poll_only`](QueueBuilder::poll_only).
    #[cfg(feature = "postgres")]
    pub(crate) pg_poll: Option<Duration>,
    /// See [`keep_acked_for`](QueueBuilder::keep_acked_for).
    #[cfg(feature = "postgres")]
    pub(crate) pg_keep_acked: Duration,
}

impl<T: Send + Sync + 'static> QueueBuilder<T> {
    pub(crate) fn new() -> Self {
        QueueBuilder {
            visibility: Duration::from_secs(30),
            max_attempts: 10,
            backoff: Backoff::default(),
            sink: None,
            observer: None,
            alarms: Vec::new(),
            capacity: None,
            overflow: Overflow::Block,
            clock: Clock::system(),
            history_limit: 16,
            dedup_window: Duration::from_secs(5 * 60),
            ttl: None,
            rate: None,
            group_rate: None,
            group_concurrency: 1,
            panic_hook: None,
            #[cfg(feature = "journal")]
            journal: Default::default(),
            #[cfg(feature = "postgres")]
            pg_conformance: None,
            #[cfg(feature = "postgres")]
            pg_poll: None,
            #[cfg(feature = "postgres")]
            pg_keep_acked: Duration::ZERO,
        }
    }

    /// How long a lease hides its job before the job is delivered again. Default 30 s. Must not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Queue::<u8>::builder().visibility_timeout(Duration::from_secs(300));
    /// # let _ = b;
    /// ```
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility = timeout;
        self
    }

    /// How many attempts a job gets before it is dead-lettered with reason
    /// [`MaxAttempts`](crate::DeadLetterReason::MaxAttempts). Default 10. Must not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::Queue::<u8>::builder().max_attempts(25);
    /// # let _ = b;
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delay before a nacked job is retried. Default: exponential from 1 s, doubling, capped at
    /// 15 minutes, with ±20 % jitter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Queue::<u8>::builder()
    ///     .backoff(leasequeue::Backoff::linear(Duration::from_secs(5)));
    /// # let _ = b;
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Where dead letters go. Default: the queue's built-in store (see [`Queue::drain_dead_letters`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let queue = leasequeue::Queue::builder().dead_letter(tx).build().unwrap();
    /// queue.push("poison").unwrap();
    /// queue.try_lease().unwrap().reject("bad").unwrap();
    /// assert_eq!(*rx.try_recv().unwrap().job(), "poison");
    /// ```
    pub fn dead_letter(mut self, sink: impl DeadLetterSink<T> + 'static) -> Self {
        self.sink = Some(Box::new(sink));
        self
    }

    /// Bounds the number of live jobs (ready, delayed and leased: every job the queue holds); what a push
    /// to a full queue does is the [`overflow`](QueueBuilder::overflow) policy. Default unbounded. Must
    /// not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u8>::builder().capacity(1000).build().unwrap();
    /// assert_eq!(queue.capacity(), Some(1000));
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The clock every deadline, delay and timeout is read from. Default: the system's monotonic clock.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = leasequeue::TestClock::new();
    /// let queue = leasequeue::Queue::<u8>::builder().clock(clock).build().unwrap();
    /// assert!(queue.clock().is_manual());
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Called with every [`Event`] (pushed, leased, acked, nacked, rejected, released, lapsed,
    /// dead-lettered, deduplicated), in order, outside every lock, on the thread whose operation caused it
    /// (or the one that advanced a test clock). It should be quick; it may call back into the queue.
    /// Without an observer, events cost nothing. Default none.
    ///
    /// An observer that panics is caught and reported ([`on_panic`](QueueBuilder::on_panic)); the
    /// operation whose event it was keeps its result (a lease stays leased, a push stays pushed).
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Event, Queue};
    /// let queue = Queue::builder()
    ///     .observer(|e: &Event| println!("{} {} (attempt {})", e.id, e.kind, e.attempt))
    ///     .build()
    ///     .unwrap();
    /// queue.push("job").unwrap();
    /// ```
    pub fn observer(mut self, observer: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Adds an [`Alarm`]: `hook` is called once when it is raised and once when it clears, outside every
    /// lock, on the thread whose operation crossed the threshold. For paging and autoscaling. A hook that
    /// panics is caught and reported ([`on_panic`](QueueBuilder::on_panic)), and changes nothing else.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Alarm, Queue};
    /// let queue = Queue::<String>::builder()
    ///     .alarm(Alarm::dead_letters(1), |e| eprintln!("dead letters: {} (raised: {})", e.value, e.raised))
    ///     .build()
    ///     .unwrap();
    /// # let _ = queue;
    /// ```
    pub fn alarm(mut self, alarm: Alarm, hook: impl Fn(&AlarmEvent) + Send + Sync + 'static) -> Self {
        self.alarms.push((alarm, Box::new(hook)));
        self
    }

    /// Called with every panic in user code that the queue caught: a dead-letter sink, the observer, an
    /// alarm hook, a job's `Drop`, a backoff function, a [`WorkerPool`](crate::WorkerPool)'s hooks, a
    /// redrive filter. Such a panic never reaches an unrelated caller (the pusher, the leaser, whoever
    /// advanced the clock): the operation that ran the code has already taken effect and keeps its result,
    /// nothing is lost and no attempt is spent for it. Every one is counted in [`Stats::panics`](crate::Stats::panics); this hook
    /// is for logging or alerting (the standard panic hook has printed the panic already). It runs outside
    /// every lock; a panic of its own is swallowed. Default none.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Event, EventKind, Queue, UserPanic};
    /// let queue: Queue<u32> = Queue::builder()
    ///     .observer(|e: &Event| assert_ne!(e.kind, EventKind::Leased, "observer bug"))
    ///     .on_panic(|p: &UserPanic| eprintln!("leasequeue: {p}"))
    ///     .build()
    ///     .unwrap();
    /// queue.push(1).unwrap();
    /// let lease = queue.try_lease().unwrap(); // granted, whatever the observer did
    /// assert_eq!(lease.attempt(), 1);
    /// lease.ack().unwrap();
    /// assert_eq!(queue.stats().panics, 1);
    /// ```
    pub fn on_panic(mut self, hook: impl Fn(&UserPanic) + Send + Sync + 'static) -> Self {
        self.panic_hook = Some(Box::new(hook));
        self
    }

    /// What a push to a full bounded queue does. Default [`Overflow::Block`].
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Overflow, Queue};
    /// let queue = Queue::builder().capacity(1).overflow(Overflow::RejectNew).build().unwrap();
    /// queue.push(1).unwrap();
    /// assert!(queue.push(2).unwrap_err().is_full()); // does not block
    /// ```
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// How long a dedup key stays reserved after its push (see [`PushOptions::dedup_key`](crate::PushOptions::dedup_key)). Default 5
    /// minutes, as SQS.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Queue::<u8>::builder().dedup_window(Duration::from_secs(3600));
    /// # let _ = b;
    /// ```
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// A time to live for every job, from its push: a job not done by then is dead-lettered with reason
    /// [`Expired`](crate::DeadLetterReason::Expired) (see [`PushOptions::ttl`](crate::PushOptions::ttl); with both, the lower
    /// wins). Default none. Must not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Queue::<u8>::builder().ttl(Duration::from_secs(24 * 3600));
    /// # let _ = b;
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// At most `leases` leases in any window of `per`, on the queue's clock (a webhook sender allowed 10
    /// calls a second). A lease the limit holds back waits for its turn in the blocking forms
    /// ([`lease`](Queue::lease), [`lease_timeout`](Queue::lease_timeout), a [`WorkerPool`](crate::WorkerPool)),
    /// and reports when it comes in the `try_` forms ([`TryLeaseError::Limited`](crate::TryLeaseError::Limited));
    /// [`Stats::limited`](crate::Stats::limited) counts the ready jobs it holds back. The window slides:
    /// no window of `per` ever holds more than `leases` leases (a token bucket lets up to twice as many
    /// through a window that straddles a burst and its refill). It is kept in memory: it starts empty when
    /// a durable queue is opened again. Default none. Both must be above zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Queue, TestClock, TryLeaseError};
    ///
    /// let clock = TestClock::new();
    /// let queue = Queue::builder().clock(clock.clone()).rate_limit(2, Duration::from_secs(1)).build().unwrap();
    /// queue.push_batch(["a", "b", "c"]);
    /// let (a, b) = (queue.try_lease().unwrap(), queue.try_lease().unwrap());
    /// let until = match queue.try_lease() {
    ///     Err(TryLeaseError::Limited { until }) => until,
    ///     other => panic!("{other:?}"),
    /// };
    /// assert_eq!(until - clock.now(), Duration::from_secs(1));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(*queue.try_lease().unwrap(), "c");
    /// # drop((a, b));
    /// ```
    pub fn rate_limit(mut self, leases: u32, per: Duration) -> Self {
        self.rate = Some((leases, per));
        self
    }

    /// At most `leases` leases of each group key in any window of `per`, on the queue's clock: each key
    /// ([`PushOptions::group`](crate::PushOptions::group)) has a window of its own (a webhook sender allowed
    /// 10 calls a second per customer). A group's next job that its limit holds back waits as a delayed
    /// job until its turn, and other groups' jobs go on. With [`rate_limit`](QueueBuilder::rate_limit) both
    /// apply. Jobs without a group are not limited by it. Kept in memory, as `rate_limit`. Default none.
    /// Both must be above zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{PushOptions, Queue, TestClock};
    ///
    /// let clock = TestClock::new();
    /// let queue = Queue::builder().clock(clock.clone()).group_rate_limit(1, Duration::from_secs(1)).build().unwrap();
    /// for (customer, call) in [("ada", 1), ("ada", 2), ("bob", 3)] {
    ///     queue.push_with(call, PushOptions::new().group(customer)).unwrap();
    /// }
    /// let first = queue.try_lease().unwrap();
    /// let bob = queue.try_lease().unwrap();
    /// first.ack().unwrap(); // ada's next call is due only a second after her first
    /// assert!(queue.try_lease().is_err());
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(*queue.try_lease().unwrap(), 2);
    /// # drop(bob);
    /// ```
    pub fn group_rate_limit(mut self, leases: u32, per: Duration) -> Self {
        self.group_rate = Some((leases, per));
        self
    }

    /// How many jobs of one group key ([`PushOptions::group`](crate::PushOptions::group)) may be in the
    /// queue at once, ready, delayed or leased: the earliest `jobs` pushed of the group's jobs still in the
    /// queue; the later ones wait their turn. Default 1: ordered groups, one job at a time, in push order
    /// (SQS FIFO message groups). With more, a group's jobs start in push order, up to `jobs` at once,
    /// and may finish in any order (a customer's imports, at most three at a time). Jobs without a group
    /// are not limited by it. Not yet on PostgreSQL.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{PushOptions, Queue};
    ///
    /// let queue = Queue::builder().group_concurrency(2).build().unwrap();
    /// for job in 1..=3 {
    ///     queue.push_with(job, PushOptions::new().group("acme")).unwrap();
    /// }
    /// let (first, second) = (queue.try_lease().unwrap(), queue.try_lease().unwrap());
    /// assert_eq!((*first, *second), (1, 2));
    /// assert!(queue.try_lease().is_err()); // acme has two jobs leased: the third waits
    /// first.ack().unwrap();
    /// assert_eq!(*queue.try_lease().unwrap(), 3);
    /// # second.ack().unwrap();
    /// ```
    pub fn group_concurrency(mut self, jobs: usize) -> Self {
        self.group_concurrency = jobs;
        self
    }

    /// How many failures a job's history keeps (the most recent). Default 16; 0 keeps none.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = leasequeue::Queue::<u8>::builder().history_limit(4);
    /// # let _ = b;
    /// ```
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// Builds the queue.
    ///
    /// # Errors
    ///
    /// A zero visibility timeout, zero max attempts or zero capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = leasequeue::Queue::<u8>::builder()
    ///     .visibility_timeout(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.option(), "visibility_timeout");
    /// ```
    pub fn build(self) -> Result<Queue<T>, BuildError> {
        self.build_with(None)
    }

    /// Builds the queue over `durable`, if given, after checking the options.
    #[cfg_attr(not(any(feature = "journal", feature = "postgres")), allow(unused_mut))] // conformance flags
    pub(crate) fn build_with(mut self, durable: Option<Box<dyn Durable<T>>>) -> Result<Queue<T>, BuildError> {
        #[cfg(feature = "postgres")]
        if let Some(url) = self.pg_conformance.take() {
            return crate::store::pg::open::conformance(self, &url);
        }
        #[cfg(feature = "journal")]
        if std::mem::take(&mut self.journal.conformance) {
            return crate::store::journal::conformance(self);
        }
        self.validate()?;
        Ok(self.build_unchecked(durable))
    }

    /// Checks the options.
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        let invalid = |option, message| Err(BuildError::new("queue", option, message));
        if self.visibility.is_zero() {
            return invalid("visibility_timeout", "must not be zero");
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        if self.capacity == Some(0) {
            return invalid("capacity", "must be at least 1");
        }
        if self.ttl == Some(Duration::ZERO) {
            return invalid("ttl", "must not be zero");
        }
        if self.rate.is_some_and(|(leases, per)| leases == 0 || per.is_zero()) {
            return invalid("rate_limit", "must allow at least one lease in a window longer than zero");
        }
        if self.group_concurrency == 0 {
            return invalid("group_concurrency", "must be at least 1");
        }
        if self.group_rate.is_some_and(|(leases, per)| leases == 0 || per.is_zero()) {
            return invalid("group_rate_limit", "must allow at least one lease in a window longer than zero");
        }
        if self.alarms.iter().any(|(alarm, _)| alarm.raise_at == 0) {
            // It would be raised and cleared on every operation.
            return invalid("alarm", "must have a threshold above zero");
        }
        Ok(())
    }

    /// Checks the options for a PostgreSQL queue, and takes what it uses.
    #[cfg(feature = "postgres")]
    pub(crate) fn pg_settings(self) -> Result<crate::store::pg::open::Settings, BuildError> {
        self.validate()?;
        let unsupported = |option| {
            Err(BuildError::new("PostgreSQL queue", option, "is not supported by the PostgreSQL store (yet)"))
        };
        if self.capacity.is_some() || self.overflow != Overflow::Block {
            return unsupported(if self.capacity.is_some() { "capacity" } else { "overflow" });
        }
        if self.sink.is_some() {
            return unsupported("dead_letter");
        }
        if self.observer.is_some() {
            return unsupported("observer");
        }
        if !self.alarms.is_empty() {
            return unsupported("alarm");
        }
        if self.rate.is_some() {
            return unsupported("rate_limit");
        }
        if self.group_rate.is_some() {
            return unsupported("group_rate_limit");
        }
        if self.group_concurrency != 1 {
            return unsupported("group_concurrency");
        }
        Ok(crate::store::pg::open::Settings {
            cfg: crate::store::pg::PgConfig {
                visibility: crate::store::pg::span(self.visibility).max(1),
                max_attempts: i32::try_from(self.max_attempts).unwrap_or(i32::MAX),
                history_limit: i64::try_from(self.history_limit).unwrap_or(i64::MAX),
                dedup_window: crate::store::pg::span(self.dedup_window),
                keep_acked: crate::store::pg::span(self.pg_keep_acked),
            },
            clock: self.clock,
            backoff: self.backoff,
            ttl: self.ttl,
            panic_hook: self.panic_hook,
            poll: self.pg_poll,
        })
    }

    pub(crate) fn build_unchecked(self, durable: Option<Box<dyn Durable<T>>>) -> Queue<T> {
        let cfg = Config {
            visibility: ticks(self.visibility),
            max_attempts: self.max_attempts,
            history_limit: self.history_limit,
            dedup_window: ticks(self.dedup_window),
            rate: self.rate.map(|(leases, per)| (leases as usize, ticks(per))),
            group_rate: self.group_rate.map(|(leases, per)| (leases as usize, ticks(per))),
            group_concurrency: self.group_concurrency,
        };
        Queue::from_parts(Parts {
            cfg,
            clock: self.clock,
            backoff: self.backoff,
            sink: self.sink,
            observer: self.observer,
            alarms: self.alarms,
            capacity: self.capacity,
            overflow: self.overflow,
            ttl: self.ttl,
            panic_hook: self.panic_hook,
            durable,
        })
    }
}

impl<T> fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("visibility_timeout", &self.visibility)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("dead_letter", &self.sink.as_ref().map(|_| "custom sink"))
            .field("observer", &self.observer.as_ref().map(|_| "custom observer"))
            .field("alarms", &self.alarms.iter().map(|(a, _)| a).collect::<Vec<_>>())
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .field("clock", &self.clock)
            .field("history_limit", &self.history_limit)
            .field("dedup_window", &self.dedup_window)
            .field("ttl", &self.ttl)
            .finish()
    }
}
