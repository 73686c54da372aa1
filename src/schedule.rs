//! Periodic jobs: named schedules on a queue, each pushing one job per tick, on the queue's clock.
//!
//! A schedule's ticks are wall-clock times (what calendars and cron expressions speak): the system's, or
//! a test clock's (see [`TestClock::wall_time`](crate::TestClock::wall_time)). The queue fires the ticks
//! that fell due whenever it looks: every lease, `len`, `is_empty`, `stats` and `jobs`, and a consumer
//! blocked in a lease wakes at the next tick. So a test clock's advance by a day, followed by any of
//! those calls, fires exactly the ticks of that day, in order, with no thread of its own anywhere. A
//! jump of the wall clock (the calendar moving further than the queue's monotonic clock between two
//! looks) makes missed ticks instead, which the schedule's [`Missed`] policy fires or skips. Each
//! tick's job carries a dedup key made of the schedule's name and the tick, so that processes sharing a
//! PostgreSQL queue push one job per tick between them (within the queue's dedup window).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, ReentrantMutex, ReentrantMutexGuard};
use thiserror::Error;

use crate::clock::{Clock, Tick, NEVER};

/// When a schedule fires: a fixed interval or a cron expression, in UTC or a fixed offset from it, and
/// what to do with the ticks it missed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Missed, Schedule};
///
/// let hourly = Schedule::every(Duration::from_secs(3600)).unwrap();
/// let resumed = hourly.clone().missed(Missed::RunOnce);
/// # let _ = resumed;
/// ```
#[derive(Clone)]
pub struct Schedule {
    kind: Kind,
    /// Seconds east of UTC.
    offset: i32,
    missed: Missed,
    since: Option<SystemTime>,
}

#[derive(Clone)]
enum Kind {
    Every(Duration),
    #[cfg(feature = "cron")]
    Cron(Arc<croner::Cron>, Arc<str>),
}

/// What a schedule does with the ticks it missed: those between [`Schedule::since`] (when a previous
/// run of the program last fired it, say) and the moment it is added to a queue, and those that a jump
/// of the wall clock skipped over while it was on the queue (a machine waking from sleep, a stepped
/// clock; on a test clock, [`TestClock::jump_wall_time`](crate::TestClock::jump_wall_time)). Every other
/// tick fires, in order, however late the queue looks: a test clock advanced by a day fires that day's
/// ticks.
///
/// # Examples
///
/// ```
/// use leasequeue::Missed;
/// assert_eq!(Missed::default(), Missed::Skip);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Missed {
    /// None of them fires (the default, as Sidekiq-cron and Oban's cron do).
    #[default]
    Skip,
    /// The latest of them fires, once.
    RunOnce,
    /// Each of them fires, the latest `n` at most, in order.
    CatchUp(u32),
}

/// A schedule that cannot be made: an invalid cron expression (naming the bad field), a zero interval, an
/// offset out of range, an empty name.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Schedule, ScheduleError};
/// assert_eq!(Schedule::every(Duration::ZERO).unwrap_err(), ScheduleError::ZeroInterval);
/// ```
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse; `field` names the first field that is wrong (`"second"`,
    /// `"minute"`, `"hour"`, `"day of month"`, `"month"`, `"day of week"`), or the whole expression
    /// (`"expression"`) when no single field is.
    #[error("invalid cron expression {expression:?}: bad {field} ({reason})")]
    Cron {
        /// The expression given.
        expression: String,
        /// The field found wrong.
        field: &'static str,
        /// The parser's words.
        reason: String,
    },
    /// An interval of zero.
    #[error("a schedule's interval must be longer than zero")]
    ZeroInterval,
    /// An offset from UTC beyond ±18 hours.
    #[error("a UTC offset must be within ±18 hours, not {0} s")]
    Offset(i32),
    /// An empty schedule name.
    #[error("a schedule needs a name that is not empty")]
    Name,
}

impl Schedule {
    /// Every `interval`, at whole multiples of it since the Unix epoch (shifted by the schedule's
    /// [`utc_offset`](Schedule::utc_offset)): every process computes the same ticks, so a daily
    /// interval fires at midnight.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::ZeroInterval`] for an interval of zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let every_hour = leasequeue::Schedule::every(Duration::from_secs(3600)).unwrap();
    /// let next = every_hour.next_after(UNIX_EPOCH + Duration::from_secs(90)).unwrap();
    /// assert_eq!(next, UNIX_EPOCH + Duration::from_secs(3600));
    /// ```
    pub fn every(interval: Duration) -> Result<Schedule, ScheduleError> {
        if interval.is_zero() {
            return Err(ScheduleError::ZeroInterval);
        }
        Ok(Schedule { kind: Kind::Every(interval), offset: 0, missed: Missed::Skip, since: None })
    }

    /// A cron expression (feature `cron`, parsed by the `croner` crate): five fields (minute, hour, day of
    /// month, month, day of week) or six with seconds first, with ranges, steps, lists, names (`MON`,
    /// `JAN`), `L`, `W` and `#`. In UTC unless given a [`utc_offset`](Schedule::utc_offset).
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Cron`], naming the first field that is wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Schedule, ScheduleError};
    /// let nightly = Schedule::cron("0 2 * * *").unwrap(); // 02:00 every day
    /// match Schedule::cron("0 25 * * *") {
    ///     Err(ScheduleError::Cron { field, .. }) => assert_eq!(field, "hour"),
    ///     other => panic!("{:?}", other.map(|_| ())),
    /// }
    /// # let _ = nightly;
    /// ```
    #[cfg(feature = "cron")]
    pub fn cron(expression: &str) -> Result<Schedule, ScheduleError> {
        let cron = parse_cron(expression).map_err(|reason| ScheduleError::Cron {
            expression: expression.to_owned(),
            field: bad_field(expression),
            reason,
        })?;
        Ok(Schedule {
            kind: Kind::Cron(Arc::new(cron), expression.into()),
            offset: 0,
            missed: Missed::Skip,
            since: None,
        })
    }

    /// The schedule's times are `seconds_east` of UTC (for example `2 * 3600` for UTC+2). A fixed
    /// offset does not follow daylight-saving changes: a job at 02:00 in UTC+1 stays at 01:00 UTC all year.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Offset`] beyond ±18 hours.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let daily = leasequeue::Schedule::every(Duration::from_secs(86_400)).unwrap();
    /// let at_cet_midnight = daily.utc_offset(3600).unwrap();
    /// let next = at_cet_midnight.next_after(UNIX_EPOCH).unwrap();
    /// assert_eq!(next, UNIX_EPOCH + Duration::from_secs(86_400 - 3600)); // 23:00 UTC
    /// ```
    pub fn utc_offset(mut self, seconds_east: i32) -> Result<Schedule, ScheduleError> {
        if seconds_east.unsigned_abs() > 18 * 3600 {
            return Err(ScheduleError::Offset(seconds_east));
        }
        self.offset = seconds_east;
        Ok(self)
    }

    /// What to do with the ticks missed since [`since`](Schedule::since). Default [`Missed::Skip`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Missed, Schedule};
    /// let s = Schedule::every(Duration::from_secs(60)).unwrap().missed(Missed::CatchUp(10));
    /// # let _ = s;
    /// ```
    pub fn missed(mut self, policy: Missed) -> Schedule {
        self.missed = policy;
        self
    }

    /// The schedule last fired at `at` (a previous run of the program, which kept it): the ticks after
    /// it and before the schedule is added to a queue are missed ticks, which the
    /// [`missed`](Schedule::missed) policy fires or skips. Without it, a schedule starts from the moment
    /// it is added.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Missed, Queue, Schedule, TestClock};
    ///
    /// let clock = TestClock::new();
    /// let queue = Queue::builder().clock(clock.clone()).build().unwrap();
    /// // The program was down for the last three hours.
    /// let last_run = clock.wall_time() - Duration::from_secs(3 * 3600);
    /// let hourly = Schedule::every(Duration::from_secs(3600)).unwrap();
    /// queue.add_schedule("sync", hourly.since(last_run).missed(Missed::RunOnce), |_| "sync").unwrap();
    /// assert_eq!(queue.len(), 1); // the three missed ticks fire once
    /// ```
    pub fn since(mut self, at: SystemTime) -> Schedule {
        self.since = Some(at);
        self
    }

    /// The schedule's first tick strictly after `t`; `None` if there is none (a cron expression that
    /// matches no date any more).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let s = leasequeue::Schedule::every(Duration::from_secs(10)).unwrap();
    /// assert_eq!(s.next_after(UNIX_EPOCH + Duration::from_secs(10)), Some(UNIX_EPOCH + Duration::from_secs(20)));
    /// ```
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        match &self.kind {
            Kind::Every(interval) => {
                let step = interval.as_nanos();
                // Times as nanoseconds since the epoch, shifted into the schedule's zone.
                let shift = i128::from(self.offset) * 1_000_000_000;
                let local = nanos_since_epoch(t) + shift;
                let next = (local.div_euclid(step as i128) + 1) * step as i128 - shift;
                time_of_nanos(next)
            }
            #[cfg(feature = "cron")]
            Kind::Cron(cron, _) => {
                use chrono::{DateTime, FixedOffset};
                let zone = FixedOffset::east_opt(self.offset)?;
                let nanos = nanos_since_epoch(t);
                let at = DateTime::from_timestamp(
                    i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?,
                    nanos.rem_euclid(1_000_000_000) as u32,
                )?
                .with_timezone(&zone);
                let next: DateTime<FixedOffset> = cron.find_next_occurrence(&at, false).ok()?;
                let secs = i128::from(next.timestamp());
                time_of_nanos(secs * 1_000_000_000 + i128::from(next.timestamp_subsec_nanos()))
            }
        }
    }

    /// The last `keep` ticks after `from` up to `to` inclusive, in order (held `keep` at a time, however
    /// many there are).
    fn last_ticks(&self, from: SystemTime, to: SystemTime, keep: usize) -> Vec<SystemTime> {
        let mut kept = Kept::new(keep);
        let mut at = from;
        while let Some(next) = self.next_after(at).filter(|&next| next <= to) {
            kept.push(next);
            at = next;
        }
        kept.into_vec()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Schedule");
        match &self.kind {
            Kind::Every(interval) => d.field("every", interval),
            #[cfg(feature = "cron")]
            Kind::Cron(_, expression) => d.field("cron", expression),
        };
        d.field("utc_offset", &self.offset).field("missed", &self.missed).field("since", &self.since).finish()
    }
}

fn nanos_since_epoch(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

fn time_of_nanos(nanos: i128) -> Option<SystemTime> {
    let magnitude = Duration::new(
        u64::try_from(nanos.unsigned_abs() / 1_000_000_000).ok()?,
        (nanos.unsigned_abs() % 1_000_000_000) as u32,
    );
    if nanos >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

#[cfg(feature = "cron")]
fn parse_cron(expression: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
}

/// The first field of `expression` that is wrong: the first whose replacement by `*` makes the rest
/// parse, else the whole expression.
#[cfg(feature = "cron")]
fn bad_field(expression: &str) -> &'static str {
    const SIX: [&str; 6] = ["second", "minute", "hour", "day of month", "month", "day of week"];
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let names: &[&str] = match fields.len() {
        5 => &SIX[1..],
        6 => &SIX,
        _ => return "expression",
    };
    for i in 0..fields.len() {
        let mut fixed = fields.clone();
        fixed[i] = "*";
        if parse_cron(&fixed.join(" ")).is_ok() {
            return names[i];
        }
    }
    "expression"
}

/// What [`Queue::schedules`](crate::Queue::schedules) reports of one schedule.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Queue, Schedule, TestClock};
///
/// let clock = TestClock::new();
/// let queue = Queue::builder().clock(clock.clone()).build().unwrap();
/// queue.add_schedule("tick", Schedule::every(Duration::from_secs(60)).unwrap(), |_| 1).unwrap();
/// let info = &queue.schedules()[0];
/// assert_eq!((&*info.name, info.next), ("tick", Some(clock.wall_time() + Duration::from_secs(60))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// The schedule's name.
    pub name: Arc<str>,
    /// Its next tick, if it has one.
    pub next: Option<SystemTime>,
    /// Ticks it fired: jobs pushed (a duplicate of another process's push for the same tick included).
    pub fired: u64,
    /// Ticks whose job was not pushed: the job function panicked, or the push failed (a full queue that
    /// rejects, a closed queue).
    pub skipped: u64,
}

/// A schedule's job function: the tick's wall-clock time in, the job out.
pub(crate) type JobFn<T> = Arc<dyn Fn(SystemTime) -> T + Send + Sync>;

struct Entry<T> {
    name: Arc<str>,
    schedule: Schedule,
    job: JobFn<T>,
    /// The tick it fires next, if any.
    next: Option<SystemTime>,
    /// Missed ticks still to fire (see [`Missed`]).
    missed: Vec<SystemTime>,
    fired: u64,
    skipped: u64,
}

/// A tick due: its schedule's name, its time, and the job function.
pub(crate) struct Due<T> {
    pub name: Arc<str>,
    pub at: SystemTime,
    pub job: JobFn<T>,
}

/// A queue's schedules.
pub(crate) struct Schedules<T> {
    /// The earliest tick of any schedule, in nanoseconds since the Unix epoch (0 while missed ticks wait
    /// to fire, [`NEVER`] without a schedule): read without the lock by every operation that fires them,
    /// so that a queue without schedules pays one load.
    next: AtomicU64,
    entries: Mutex<Vec<Entry<T>>>,
    /// The queue's clock and the wall-clock time at the last look: a wall clock that moved further than
    /// the queue's clock since then jumped (a machine waking from sleep, a stepped clock), and the ticks
    /// in the jump are missed ticks.
    anchor: Mutex<Option<(Tick, SystemTime)>>,
    /// Held while due ticks are taken and their jobs pushed: `next` moves past them only once they are
    /// in the queue, so that no consumer sees a quiet queue (and moves an auto-advancing test clock on)
    /// while a tick is on its way. Reentrant: a job function, or an observer of the push, may look at the
    /// queue. It is the one lock held while user code runs (the job function, the push's observer), and
    /// only other firings wait on it: a job function that waits for another thread's queue call would
    /// deadlock (a known limit: publishing the next tick only after the pushes, without a lock, needs the
    /// auto-advance to see "a tick in flight" as busy).
    firing: ReentrantMutex<()>,
}

/// The most ticks one look fires for one schedule (a clock moved by years over a schedule of seconds);
/// the rest fire at the next look.
const MAX_PER_LOOK: usize = 100_000;

/// How far the wall clock may run ahead of the queue's clock between two looks before the difference
/// counts as a jump: a second, plus 1 % of the time between the looks (a wall clock that NTP slews runs
/// at most 0.05 % fast or slow).
fn jump_threshold(between: Duration) -> Duration {
    Duration::from_secs(1) + between / 100
}

impl<T> Schedules<T> {
    pub(crate) fn new() -> Self {
        Schedules {
            next: AtomicU64::new(NEVER),
            entries: Mutex::new(Vec::new()),
            anchor: Mutex::new(None),
            firing: ReentrantMutex::new(()),
        }
    }

    /// The earliest next tick, in nanoseconds since the Unix epoch: 0 while missed ticks wait to fire,
    /// [`NEVER`] without schedules (which the caller checks before reading any clock).
    pub(crate) fn next_nanos(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Adds `schedule` as `name`, replacing one of that name; its missed ticks (see [`Missed`]) fire at
    /// the next look.
    pub(crate) fn add(&self, clock: &Clock, name: Arc<str>, schedule: Schedule, job: JobFn<T>) {
        let tick = clock.tick();
        let now = clock.wall(tick);
        self.anchor.lock().get_or_insert((tick, now));
        let missed = match schedule.since {
            Some(since) => schedule.last_ticks(since, now, kept(schedule.missed)),
            None => Vec::new(),
        };
        let next = schedule.next_after(now);
        let mut entries = self.entries.lock();
        entries.retain(|e| e.name != name);
        entries.push(Entry { name, schedule, job, next, missed, fired: 0, skipped: 0 });
        self.publish(&entries);
    }

    pub(crate) fn remove(&self, name: &str) -> bool {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|e| &*e.name != name);
        self.publish(&entries);
        entries.len() < before
    }

    pub(crate) fn list(&self) -> Vec<ScheduleInfo> {
        self.entries
            .lock()
            .iter()
            .map(|e| ScheduleInfo { name: e.name.clone(), next: e.next, fired: e.fired, skipped: e.skipped })
            .collect()
    }

    /// Begins firing: held until the jobs of the ticks [`take_due`](Schedules::take_due) returns are
    /// pushed, then [`fired`](Schedules::fired).
    pub(crate) fn begin_firing(&self) -> ReentrantMutexGuard<'_, ()> {
        self.firing.lock()
    }

    /// Takes the ticks due at `now` on the queue's clock (`wall` on the wall clock), oldest first, and
    /// moves each schedule past them; the next tick is published by [`fired`](Schedules::fired), once
    /// their jobs are pushed. Ticks in a jump of the wall clock since the last look are missed ones, which
    /// the schedule's [`Missed`] policy fires or skips.
    pub(crate) fn take_due(&self, now: Tick, wall: SystemTime) -> Vec<Due<T>> {
        let jumped_from = {
            let mut anchor = self.anchor.lock();
            let expected = anchor.map(|(tick, at)| {
                let between = Duration::from_nanos(now.saturating_sub(tick));
                (at + between, jump_threshold(between))
            });
            *anchor = Some((now, wall));
            expected
                .filter(|&(expected, threshold)| wall > expected + threshold)
                .map(|(expected, _)| expected)
        };
        let mut entries = self.entries.lock();
        let mut due = Vec::new();
        for e in entries.iter_mut() {
            let mut ticks = std::mem::take(&mut e.missed);
            let mut jumped = Kept::new(kept(e.schedule.missed));
            while let Some(at) = e.next.filter(|&at| at <= wall && ticks.len() < MAX_PER_LOOK) {
                if jumped_from.is_some_and(|from| at > from) {
                    jumped.push(at);
                } else {
                    ticks.push(at);
                }
                e.next = e.schedule.next_after(at);
            }
            ticks.extend(jumped.into_vec());
            due.extend(ticks.into_iter().map(|at| Due { name: e.name.clone(), at, job: e.job.clone() }));
        }
        due.sort_by_key(|d| d.at); // stable: schedules in the order they were added
        due
    }

    /// The jobs of the ticks taken are pushed: publishes the next tick.
    pub(crate) fn fired(&self) {
        self.publish(&self.entries.lock());
    }

    /// Counts a tick's outcome.
    pub(crate) fn record(&self, name: &str, pushed: bool) {
        if let Some(e) = self.entries.lock().iter_mut().find(|e| &*e.name == name) {
            if pushed {
                e.fired += 1;
            } else {
                e.skipped += 1;
            }
        }
    }

    fn publish(&self, entries: &[Entry<T>]) {
        let next = entries
            .iter()
            .map(|e| if e.missed.is_empty() { e.next.map_or(NEVER, wall_nanos) } else { 0 })
            .min()
            .unwrap_or(NEVER);
        self.next.store(next, Ordering::Release);
    }
}

/// How many of the latest missed ticks `policy` fires.
fn kept(policy: Missed) -> usize {
    match policy {
        Missed::Skip => 0,
        Missed::RunOnce => 1,
        Missed::CatchUp(n) => n as usize,
    }
}

/// The last `keep` ticks pushed to it, oldest first.
struct Kept {
    keep: usize,
    ticks: std::collections::VecDeque<SystemTime>,
}

impl Kept {
    fn new(keep: usize) -> Self {
        Kept { keep, ticks: std::collections::VecDeque::new() }
    }

    fn push(&mut self, at: SystemTime) {
        if self.keep == 0 {
            return;
        }
        if self.ticks.len() == self.keep {
            self.ticks.pop_front();
        }
        self.ticks.push_back(at);
    }

    fn into_vec(self) -> Vec<SystemTime> {
        self.ticks.into()
    }
}

/// A wall-clock time as [`Schedules::next_nanos`] holds it (saturating, and never [`NEVER`]).
pub(crate) fn wall_nanos(at: SystemTime) -> u64 {
    u64::try_from(nanos_since_epoch(at).max(1)).unwrap_or(NEVER - 1).min(NEVER - 1)
}

/// The dedup key of a schedule's tick: one job per tick, across processes.
pub(crate) fn dedup_key(name: &str, at: SystemTime) -> String {
    format!("schedule:{name}@{}", nanos_since_epoch(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn intervals_are_aligned_to_the_epoch_in_their_zone() {
        let hourly = Schedule::every(Duration::from_secs(3600)).unwrap();
        assert_eq!(hourly.next_after(secs(0)), Some(secs(3600)));
        assert_eq!(hourly.next_after(secs(3599)), Some(secs(3600)));
        assert_eq!(hourly.last_ticks(secs(0), secs(3 * 3600), 10), [secs(3600), secs(7200), secs(10800)]);
        assert_eq!(hourly.last_ticks(secs(0), secs(30 * 24 * 3600), 2), [secs(719 * 3600), secs(720 * 3600)]);
        assert!(hourly.last_ticks(secs(0), secs(3 * 3600), 0).is_empty());
        let daily_east = Schedule::every(Duration::from_secs(86_400)).unwrap().utc_offset(-5 * 3600).unwrap();
        assert_eq!(daily_east.next_after(secs(0)), Some(secs(5 * 3600)), "midnight in UTC-5");
    }

    #[test]
    fn offsets_beyond_eighteen_hours_are_refused() {
        let s = Schedule::every(Duration::from_secs(1)).unwrap();
        assert_eq!(s.clone().utc_offset(18 * 3600 + 1).unwrap_err(), ScheduleError::Offset(18 * 3600 + 1));
        assert!(s.utc_offset(-18 * 3600).is_ok());
    }

    #[cfg(feature = "cron")]
    #[test]
    fn cron_errors_name_the_bad_field() {
        let field = |e: &str| match Schedule::cron(e) {
            Err(ScheduleError::Cron { field, .. }) => field,
            other => panic!("{e}: {:?}", other.map(|_| ())),
        };
        assert_eq!(field("61 * * * *"), "minute");
        assert_eq!(field("0 0 32 * *"), "day of month");
        assert_eq!(field("0 0 * 13 *"), "month");
        assert_eq!(field("0 0 * * FUNDAY"), "day of week");
        assert_eq!(field("99 0 0 * * *"), "second");
        assert_eq!(field("* * *"), "expression");
        assert!(Schedule::cron("*/15 9-17 * * MON-FRI").is_ok());
    }

    #[cfg(feature = "cron")]
    #[test]
    fn cron_ticks_follow_the_offset() {
        // 02:00 every day in UTC+2 is 00:00 UTC.
        let s = Schedule::cron("0 2 * * *").unwrap().utc_offset(2 * 3600).unwrap();
        assert_eq!(s.next_after(secs(0)), Some(secs(86_400)));
        let utc = Schedule::cron("0 2 * * *").unwrap();
        assert_eq!(utc.next_after(secs(0)), Some(secs(2 * 3600)));
        let every_ten_seconds = Schedule::cron("*/10 * * * * *").unwrap();
        assert_eq!(every_ten_seconds.next_after(secs(5)), Some(secs(10)));
    }
}
