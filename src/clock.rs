//! The one place in the crate that reads time or waits on it.
//!
//! Internally a point in time is a [`Tick`]: nanoseconds since the clock's origin, which makes deadlines
//! eight bytes wide and comparisons a single integer compare. Public APIs speak `std::time::Instant`.
//!
//! The system clock reads the CPU's time-stamp counter through `quanta` (about half the cost of
//! `Instant::now()` here, and the queue reads the clock on every push and lease); `quanta` falls back to
//! the OS clock where the counter is unreliable. Ticks map to `Instant`s through a pair of origins taken
//! together, so the two can drift apart by the counter's error (parts per million): enough to matter to
//! no deadline.
//!
//! This is the one module allowed to read the system time (see `clippy.toml`).
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, MutexGuard};

/// Nanoseconds on a clock: its origin (when it was created) is [`EPOCH`], so that times before it (the
/// push time of a job restored from a snapshot, an instant given in the past) are representable too.
pub(crate) type Tick = u64;

/// The tick of a clock's origin: about 2.3 years of room before it.
pub(crate) const EPOCH: Tick = 1 << 56;

/// A tick that is never reached: "no deadline".
pub(crate) const NEVER: Tick = u64::MAX;

/// Converts a duration to ticks, saturating at [`NEVER`].
/// Where every test clock's wall-clock time starts: Monday 2026-01-05 00:00:00 UTC.
fn wall_start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_571_200)
}

pub(crate) fn ticks(d: Duration) -> Tick {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

/// The time source of a queue: the system's monotonic clock, or a [`TestClock`] that moves only when told.
///
/// Every deadline, delay, backoff, age and timeout in the crate is read from the queue's `Clock`; nothing
/// else in the crate reads the system time or sleeps. A `Clock` is a cheap handle: clones share one time.
///
/// # Examples
///
/// ```
/// use leasequeue::{Clock, Queue, TestClock};
///
/// // The default: the system's monotonic clock.
/// let system = Clock::system();
/// let earlier = system.now();
/// assert!(system.now() >= earlier);
///
/// // A manual clock for tests.
/// let test = TestClock::new();
/// let queue: Queue<u32> = Queue::builder().clock(test.clone()).build().unwrap();
/// assert_eq!(queue.clock().now(), test.now());
/// ```
#[derive(Clone)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// `counter` read at `counter_origin` and `Instant::now()` at `origin` together; `scale` is nanoseconds
    /// per 2^32 of the counter's units, from `quanta`'s calibration (see [`scale_of`]).
    System {
        origin: Instant,
        counter: quanta::Clock,
        counter_origin: u64,
        scale: u64,
    },
    Test(Arc<TestShared>),
}

/// Nanoseconds per 2^32 units of `counter` (exact to about one part in a billion): `quanta` scales a
/// reading by a multiply and a shift, so scaling by this is the same up to rounding.
fn scale_of(counter: &quanta::Clock) -> u64 {
    counter.delta_as_nanos(0, 1 << 32)
}

impl Clock {
    /// The system's monotonic clock.
    ///
    /// It reads the CPU's time-stamp counter (through `quanta`, which falls back to the OS clock where the
    /// counter is unreliable) and reports `std::time::Instant`s. Those agree with `Instant::now()` up to the
    /// counter's calibration error, a few parts in ten thousand at worst: compute deadlines from
    /// [`Clock::now`] (for example `queue.clock().now() + delay`) rather than from `Instant::now()` when the
    /// difference matters.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = leasequeue::Clock::system();
    /// let a = clock.now();
    /// assert!(clock.now() >= a);
    /// ```
    pub fn system() -> Self {
        let counter = quanta::Clock::new();
        let scale = scale_of(&counter);
        let counter_origin = counter.raw();
        Clock { kind: Kind::System { origin: Instant::now(), counter, counter_origin, scale } }
    }

    /// The current time on this clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let test = leasequeue::TestClock::new();
    /// let clock = leasequeue::Clock::from(test.clone());
    /// let start = clock.now();
    /// test.advance(Duration::from_secs(5));
    /// assert_eq!(clock.now() - start, Duration::from_secs(5));
    /// ```
    pub fn now(&self) -> Instant {
        self.instant(self.tick())
    }

    /// Whether this is a manual [`TestClock`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!leasequeue::Clock::system().is_manual());
    /// assert!(leasequeue::Clock::from(leasequeue::TestClock::new()).is_manual());
    /// ```
    pub fn is_manual(&self) -> bool {
        matches!(self.kind, Kind::Test(_))
    }

    /// The current tick, never [`NEVER`].
    /// The wall-clock time (what calendars and cron expressions speak) at `tick`: the system's, or on a
    /// test clock its start (see [`TestClock::wall_time`]) plus the ticks since the clock began.
    pub(crate) fn wall(&self, tick: Tick) -> SystemTime {
        match &self.kind {
            Kind::System { .. } => {
                let now = self.tick();
                let wall = SystemTime::now();
                if tick >= now {
                    wall + Duration::from_nanos(tick - now)
                } else {
                    wall.checked_sub(Duration::from_nanos(now - tick)).unwrap_or(UNIX_EPOCH)
                }
            }
            Kind::Test(shared) => {
                let jump = shared.wall_jump.load(Ordering::Acquire);
                wall_start() + Duration::from_nanos(tick.saturating_sub(EPOCH).saturating_add(jump))
            }
        }
    }

    /// The tick at wall-clock time `at` (the inverse of [`wall`](Clock::wall), as of now).
    pub(crate) fn tick_at_wall(&self, at: SystemTime) -> Tick {
        let now = self.tick();
        let wall = self.wall(now);
        match at.duration_since(wall) {
            Ok(ahead) => now.saturating_add(ticks(ahead)).min(NEVER - 1),
            Err(behind) => now.saturating_sub(ticks(behind.duration())),
        }
    }

    #[inline]
    pub(crate) fn tick(&self) -> Tick {
        match &self.kind {
            Kind::System { counter, counter_origin, scale, .. } => {
                // `quanta`'s own conversion, less its checks of which counter it reads (on every push
                // and lease): a counter behind its origin (another core's) reads as the origin.
                let units = counter.raw().saturating_sub(*counter_origin);
                let nanos = (u128::from(units) * u128::from(*scale)) >> 32;
                EPOCH.saturating_add(u64::try_from(nanos).unwrap_or(u64::MAX)).min(NEVER - 1)
            }
            Kind::Test(shared) => shared.offset.load(Ordering::Acquire),
        }
    }

    fn origin(&self) -> Instant {
        match &self.kind {
            Kind::System { origin, .. } => *origin,
            Kind::Test(shared) => shared.origin,
        }
    }

    /// The instant of a tick. [`NEVER`] and ticks past the representable range saturate to a far future.
    pub(crate) fn instant(&self, tick: Tick) -> Instant {
        instant_of(self.origin(), tick)
    }

    /// The tick of an instant (saturating at tick 0, some 2.3 years before the clock's origin).
    pub(crate) fn tick_of(&self, at: Instant) -> Tick {
        tick_at(self.origin(), at)
    }

    /// Blocks on `condvar` until notified or, on the system clock, until `until` passes.
    ///
    /// On a test clock the wait is untimed: [`TestClock::advance`] notifies every queue registered with it.
    /// This is the crate's single timed wait.
    pub(crate) fn wait<S>(&self, condvar: &Condvar, guard: &mut MutexGuard<'_, S>, until: Tick) {
        match &self.kind {
            Kind::System { origin, .. } if until != NEVER => {
                match origin.checked_add(Duration::from_nanos(until.saturating_sub(EPOCH))) {
                    Some(at) => {
                        condvar.wait_until(guard, at);
                    }
                    None => condvar.wait(guard),
                }
            }
            _ => condvar.wait(guard),
        }
    }

    /// The test clock behind this handle, if it is one.
    pub(crate) fn test_clock(&self) -> Option<TestClock> {
        match &self.kind {
            Kind::Test(shared) => Some(TestClock { shared: Arc::clone(shared) }),
            Kind::System { .. } => None,
        }
    }

    /// Whether this is a test clock that jumps ahead when its queues are idle.
    pub(crate) fn auto_advances(&self) -> bool {
        matches!(&self.kind, Kind::Test(shared) if shared.auto_advance.load(Ordering::Acquire))
    }

    /// On an auto-advancing test clock, whether every listener but `me` is quiet (see
    /// [`Listener::quiet_until`]), and if so the earliest of their next events.
    pub(crate) fn others_quiet_until(&self, me: *const ()) -> Option<Tick> {
        let Kind::Test(shared) = &self.kind else { return Some(NEVER) };
        let listeners: Vec<_> = shared.listeners.lock().clone();
        let mut earliest = NEVER;
        for listener in listeners.iter().filter(|l| address(l.as_ptr()) != me).filter_map(Weak::upgrade) {
            earliest = earliest.min(listener.quiet_until()?);
        }
        Some(earliest)
    }

    /// Nudges every listener but `me` (see [`Listener::nudge`]).
    pub(crate) fn nudge_others(&self, me: *const ()) {
        if let Kind::Test(shared) = &self.kind {
            let listeners: Vec<_> = shared.listeners.lock().clone();
            for listener in listeners.iter().filter(|l| address(l.as_ptr()) != me).filter_map(Weak::upgrade) {
                listener.nudge();
            }
        }
    }

    /// Registers a listener to be called after each advance of a test clock. No-op on the system clock.
    pub(crate) fn register(&self, listener: Weak<dyn Listener>) {
        if let Kind::Test(shared) = &self.kind {
            let mut listeners = shared.listeners.lock();
            listeners.retain(|l| l.strong_count() > 0);
            listeners.push(listener);
        }
    }
}

/// The tick of `at` on a clock whose origin is `origin`.
fn tick_at(origin: Instant, at: Instant) -> Tick {
    if at >= origin {
        EPOCH.saturating_add(ticks(at - origin)).min(NEVER - 1)
    } else {
        EPOCH.saturating_sub(ticks(origin - at))
    }
}

/// The instant of `tick` on a clock whose origin is `origin`.
fn instant_of(origin: Instant, tick: Tick) -> Instant {
    if tick >= EPOCH {
        origin.checked_add(Duration::from_nanos(tick - EPOCH)).unwrap_or_else(|| far_future(origin))
    } else {
        origin.checked_sub(Duration::from_nanos(EPOCH - tick)).unwrap_or(origin)
    }
}

fn far_future(origin: Instant) -> Instant {
    // About 30 years: far enough to mean "never", near enough never to overflow `Instant`.
    origin + Duration::from_secs(30 * 365 * 24 * 3600)
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::System { .. } => f.write_str("Clock::System"),
            Kind::Test(shared) => f
                .debug_struct("Clock::Test")
                .field("elapsed", &Duration::from_nanos(shared.offset.load(Ordering::Acquire) - EPOCH))
                .finish(),
        }
    }
}

impl From<TestClock> for Clock {
    fn from(test: TestClock) -> Self {
        Clock { kind: Kind::Test(test.shared) }
    }
}

impl From<&TestClock> for Clock {
    fn from(test: &TestClock) -> Self {
        Clock { kind: Kind::Test(Arc::clone(&test.shared)) }
    }
}

/// Something that must run after a test clock moves: a queue waking its waiters and processing what fell due.
pub(crate) trait Listener: Send + Sync {
    fn on_advance(&self);

    /// For auto-advance, read without locks: `None` while this listener has work in flight (a job ready
    /// or leased), else the tick of its next timed event ([`NEVER`] if none).
    fn quiet_until(&self) -> Option<Tick> {
        Some(NEVER)
    }

    /// Wakes blocked consumers so that they reconsider auto-advancing (another listener went quiet).
    fn nudge(&self) {}
}

/// The address of a listener, to tell it apart from the others.
pub(crate) fn address<L: ?Sized>(listener: *const L) -> *const () {
    listener.cast()
}

struct TestShared {
    origin: Instant,
    offset: AtomicU64,
    /// How far the wall-clock time has jumped ahead of the clock (see [`TestClock::jump_wall_time`]), in
    /// nanoseconds.
    wall_jump: AtomicU64,
    auto_advance: AtomicBool,
    listeners: Mutex<Vec<Weak<dyn Listener>>>,
}

impl TestShared {
    fn instant(&self, tick: Tick) -> Instant {
        instant_of(self.origin, tick)
    }

    fn tick_of(&self, at: Instant) -> Tick {
        tick_at(self.origin, at)
    }
}

/// A manual clock for deterministic tests: it starts at a fixed point and moves only by [`advance`].
///
/// Clones share one time. Advancing the clock makes every queue built on it process what fell due
/// (delayed jobs becoming ready, leases lapsing) and wakes every consumer and producer blocked on it, so
/// that a test pushes a delayed job, advances the clock, and a blocked `lease()` returns it with no real
/// sleep anywhere. Timeouts given to `lease_timeout` and `push_timeout` are measured on this clock too.
///
/// [`advance`]: TestClock::advance
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{PushOptions, Queue, TestClock};
///
/// let clock = TestClock::new();
/// let queue = Queue::builder().clock(clock.clone()).build().unwrap();
/// queue.push_with("report", PushOptions::new().delay(Duration::from_secs(3600))).unwrap();
/// assert!(queue.try_lease().is_err()); // not due yet
///
/// clock.advance(Duration::from_secs(3600)); // an hour, in no time
/// let lease = queue.try_lease().unwrap();
/// assert_eq!(*lease, "report");
/// lease.ack().unwrap();
/// ```
#[derive(Clone)]
pub struct TestClock {
    shared: Arc<TestShared>,
}

impl TestClock {
    /// The wall-clock time on this clock: every test clock starts on Monday 2026-01-05 at 00:00:00 UTC
    /// and moves as it is advanced. Schedules ([`Queue::add_schedule`](crate::Queue::add_schedule)) read
    /// it as the date, so a test of a nightly job sees the same calendar every run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let clock = leasequeue::TestClock::new();
    /// assert_eq!(clock.wall_time().duration_since(UNIX_EPOCH).unwrap(), Duration::from_secs(1_767_571_200));
    /// clock.advance(Duration::from_secs(3600));
    /// assert_eq!(clock.wall_time().duration_since(UNIX_EPOCH).unwrap(), Duration::from_secs(1_767_574_800));
    /// ```
    pub fn wall_time(&self) -> SystemTime {
        wall_start() + self.elapsed() + Duration::from_nanos(self.shared.wall_jump.load(Ordering::Acquire))
    }

    /// Moves the wall-clock time forward by `by` without moving the clock itself: what a process sees
    /// when its machine wakes from sleep or its time is stepped (the monotonic clock that timeouts use
    /// does not jump; the calendar does). Schedules treat the ticks in the jump as missed, and their
    /// [`Missed`](crate::Missed) policy decides which fire; leases, delays and timeouts are unmoved.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = leasequeue::TestClock::new();
    /// let before = (clock.now(), clock.wall_time());
    /// clock.jump_wall_time(Duration::from_secs(3600));
    /// assert_eq!(clock.now(), before.0);
    /// assert_eq!(clock.wall_time(), before.1 + Duration::from_secs(3600));
    /// ```
    pub fn jump_wall_time(&self, by: Duration) {
        let by = ticks(by);
        let _ = self
            .shared
            .wall_jump
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |j| Some(j.saturating_add(by)));
        self.notify_listeners();
    }

    /// A clock standing at a fixed starting point.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = leasequeue::TestClock::new();
    /// assert_eq!(clock.now(), clock.now());
    /// ```
    pub fn new() -> Self {
        TestClock {
            shared: Arc::new(TestShared {
                origin: Instant::now(),
                offset: AtomicU64::new(EPOCH),
                wall_jump: AtomicU64::new(0),
                auto_advance: AtomicBool::new(false),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The current time on this clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = leasequeue::TestClock::new();
    /// let start = clock.now();
    /// clock.advance(Duration::from_millis(1));
    /// assert_eq!(clock.now() - start, Duration::from_millis(1));
    /// ```
    pub fn now(&self) -> Instant {
        self.shared.instant(self.shared.offset.load(Ordering::Acquire))
    }

    /// How far the clock has been advanced since it was created.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = leasequeue::TestClock::new();
    /// clock.advance(Duration::from_secs(90));
    /// assert_eq!(clock.elapsed(), Duration::from_secs(90));
    /// ```
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.shared.offset.load(Ordering::Acquire) - EPOCH)
    }

    /// Moves the clock forward by `by` (saturating: `Duration::MAX` does not panic), then has every queue on
    /// this clock process what fell due and wake its blocked consumers and producers.
    ///
    /// Dead-letter sinks of those queues may be called from within this call (on this thread, outside
    /// every lock).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Queue, TestClock};
    ///
    /// let clock = TestClock::new();
    /// let queue = Queue::builder()
    ///     .clock(clock.clone())
    ///     .visibility_timeout(Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// queue.push(1).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// clock.advance(Duration::from_secs(30)); // the lease lapses
    /// assert_eq!(queue.stats().ready, 1);
    /// # drop(lease);
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = ticks(by);
        let _ = self
            .shared
            .offset
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(t.saturating_add(by).min(NEVER - 1)));
        self.notify_listeners();
    }

    /// Moves the clock forward by `by` without telling the queues on it, as time passes on the system
    /// clock: what falls due meanwhile waits for the next operation to find it (for the queues' tests).
    #[cfg(test)]
    pub(crate) fn advance_unheard(&self, by: Duration) {
        self.shared.offset.fetch_add(ticks(by), Ordering::AcqRel);
    }

    /// Has every queue on this clock process what fell due and wake its blocked consumers and producers.
    fn notify_listeners(&self) {
        // Snapshot the listeners so that none is called under the registry lock.
        let listeners: Vec<_> = self.shared.listeners.lock().clone();
        for listener in listeners.iter().filter_map(Weak::upgrade) {
            listener.on_advance();
        }
    }

    /// A test clock that advances on its own when nothing can happen before the next deadline (see
    /// [`set_auto_advance`](TestClock::set_auto_advance)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{PushOptions, Queue, TestClock};
    ///
    /// let clock = TestClock::auto_advancing();
    /// let queue = Queue::builder().clock(clock.clone()).build().unwrap();
    /// queue.push_with("in a day", PushOptions::new().delay(Duration::from_secs(86_400))).unwrap();
    /// let lease = queue.lease().unwrap(); // no job is leased and none is ready: the clock jumps a day
    /// assert_eq!(clock.elapsed(), Duration::from_secs(86_400));
    /// lease.ack().unwrap();
    /// ```
    pub fn auto_advancing() -> Self {
        let clock = TestClock::new();
        clock.set_auto_advance(true);
        clock
    }

    /// Turns auto-advance on or off (off by default). With it on, a consumer about to block in `lease`
    /// (or `lease_timeout`) on a queue of this clock moves the clock instead of waiting, when nothing can
    /// happen before then: when no queue on this clock has a job ready or leased (so no worker is busy
    /// anywhere), it moves the clock straight to the earliest of every such queue's next timed event (a
    /// delayed job or retry coming due, a time to live running out) and the consumer's own timeout. While
    /// any queue on the clock is busy, it waits; the queue that goes quiet wakes it. This is tokio's
    /// paused clock, for threads: hours of backoff run through real [`WorkerPool`](crate::WorkerPool)s in
    /// microseconds, with the same outcome every run, and a busy worker's lease on one queue never lapses
    /// because a consumer of another queue was idle.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = leasequeue::TestClock::new();
    /// clock.set_auto_advance(true);
    /// ```
    pub fn set_auto_advance(&self, on: bool) {
        self.shared.auto_advance.store(on, Ordering::Release);
    }

    /// Moves the clock forward to `at`; does nothing if `at` is not in the clock's future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = leasequeue::TestClock::new();
    /// let target = clock.now() + Duration::from_secs(10);
    /// clock.advance_to(target);
    /// assert_eq!(clock.now(), target);
    /// ```
    pub fn advance_to(&self, at: Instant) {
        // One atomic step from whatever the time is now: two threads moving the clock to the same instant
        // at once move it there, not twice as far.
        let target = self.shared.tick_of(at);
        let moved = self
            .shared
            .offset
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| (target > t).then_some(target))
            .is_ok();
        if moved {
            self.notify_listeners();
        }
    }
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

impl fmt::Debug for TestClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClock").field("elapsed", &self.elapsed()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_advancing_to_one_instant_move_the_clock_there_once() {
        for _ in 0..200 {
            let clock = TestClock::new();
            let target = clock.now() + Duration::from_secs(10);
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let clock = clock.clone();
                    std::thread::spawn(move || clock.advance_to(target))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(clock.now(), target);
        }
    }

    #[test]
    fn the_system_clock_scales_the_counter_as_quanta_does() {
        let counter = quanta::Clock::new();
        let scale = scale_of(&counter);
        for units in [1_u64, 999, 1 << 20, 3_000_000_007, 1 << 40, 86_400 * 5_000_000_000] {
            let theirs = counter.delta_as_nanos(0, units);
            let ours = u64::try_from((u128::from(units) * u128::from(scale)) >> 32).unwrap();
            // Both round down; the scale's own rounding costs at most one nanosecond per 2^32 units.
            assert!(ours.abs_diff(theirs) <= 1 + (units >> 32), "{units}: {ours} vs {theirs}");
        }
    }

    #[test]
    fn ticks_saturate() {
        assert_eq!(ticks(Duration::MAX), NEVER);
        assert_eq!(ticks(Duration::from_nanos(7)), 7);
    }

    #[test]
    fn test_clock_advance_saturates_below_never() {
        let clock = TestClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(Clock::from(&clock).tick(), NEVER - 1);
    }

    #[test]
    fn instant_and_tick_round_trip() {
        let clock = Clock::from(TestClock::new());
        let t = EPOCH + 1_234_567;
        assert_eq!(clock.tick_of(clock.instant(t)), t);
        assert_eq!(clock.tick_of(clock.now() - Duration::from_secs(1)), EPOCH - 1_000_000_000);
        assert_eq!(clock.instant(EPOCH - 1_000_000_000), clock.now() - Duration::from_secs(1));
        assert!(clock.instant(NEVER) > clock.now());
    }
}
