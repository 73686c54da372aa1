//! Periodic jobs: schedules that push one job per tick on the queue's clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use leasequeue::{Missed, Queue, Schedule, ScheduleError, TestClock, WorkerPool};

use super::{queue, secs};

const HOUR: u64 = 3600;

fn hourly() -> Schedule {
    Schedule::every(secs(HOUR)).unwrap()
}

/// The job of a tick: its time, in seconds after the test clock's start.
fn seconds_after(start: SystemTime) -> impl Fn(SystemTime) -> u64 + Send + Sync + 'static {
    move |at| at.duration_since(start).unwrap().as_secs()
}

/// Every job in the queue, leased and acked in order.
fn drain(q: &Queue<u64>) -> Vec<u64> {
    let mut jobs = Vec::new();
    while let Ok(lease) = q.try_lease() {
        jobs.push(*lease);
        lease.ack().unwrap();
    }
    jobs
}

#[test]
fn a_day_of_an_hourly_schedule_fires_its_24_ticks_in_order() {
    let (q, clock) = queue::<u64>();
    q.add_schedule("hourly", hourly(), seconds_after(clock.wall_time())).unwrap();
    assert_eq!(q.len(), 0, "nothing before the first tick");
    clock.advance(secs(24 * HOUR));
    assert_eq!(drain(&q), (1..=24).map(|h| h * HOUR).collect::<Vec<_>>());
    let info = &q.schedules()[0];
    assert_eq!((info.fired, info.skipped), (24, 0));
    assert_eq!(info.next, Some(clock.wall_time() + secs(HOUR)));
}

#[test]
fn ticks_fire_as_the_clock_reaches_them() {
    let (q, clock) = queue::<u64>();
    q.add_schedule("hourly", hourly(), seconds_after(clock.wall_time())).unwrap();
    clock.advance(secs(HOUR - 1));
    assert!(q.try_lease().is_err(), "one second early");
    clock.advance(secs(1));
    assert_eq!(drain(&q), [HOUR]);
    clock.advance(secs(90 * 60));
    assert_eq!(drain(&q), [2 * HOUR]);
    assert_eq!(q.stats().pushed, 2);
}

#[test]
fn a_removed_schedule_fires_no_more_and_a_replaced_one_pushes_its_new_job() {
    let (q, clock) = queue::<u64>();
    q.add_schedule("s", hourly(), |_| 1).unwrap();
    clock.advance(secs(HOUR));
    q.add_schedule("s", hourly(), |_| 2).unwrap(); // replaces it
    assert_eq!(q.schedules().len(), 1);
    clock.advance(secs(HOUR));
    assert_eq!(drain(&q), [1, 2]);
    assert!(q.remove_schedule("s"));
    clock.advance(secs(10 * HOUR));
    assert!(q.is_empty());
    assert!(q.schedules().is_empty());
    assert_eq!(q.add_schedule("", hourly(), |_| 3), Err(ScheduleError::Name));
}

#[test]
fn missed_ticks_follow_the_schedules_policy() {
    for (policy, expected) in [
        (Missed::Skip, vec![]),
        (Missed::RunOnce, vec![5]),
        (Missed::CatchUp(3), vec![3, 4, 5]),
        (Missed::CatchUp(10), vec![1, 2, 3, 4, 5]),
    ] {
        let (q, clock) = queue::<u64>();
        // The program last fired it five hours ago: the ticks of the four hours since and of now are
        // missed. A tick's job is its hour after that last run.
        let since = clock.wall_time() - secs(5 * HOUR);
        let hour = move |at: SystemTime| at.duration_since(since).unwrap().as_secs() / HOUR;
        q.add_schedule("sync", hourly().since(since).missed(policy), hour).unwrap();
        assert_eq!(drain(&q), expected, "{policy:?}");
        clock.advance(secs(HOUR));
        assert_eq!(drain(&q), [6], "{policy:?}: then every tick as it comes");
    }
}

#[test]
fn a_consumer_waiting_on_an_auto_advancing_clock_wakes_at_the_next_tick() {
    let clock = TestClock::auto_advancing();
    let q: Queue<u64> = super::store().clock(clock.clone()).build().unwrap();
    q.add_schedule("hourly", hourly(), seconds_after(clock.wall_time())).unwrap();
    let lease = q.lease().unwrap(); // nothing is ready: the clock jumps to the first tick
    assert_eq!((*lease, clock.elapsed()), (HOUR, secs(HOUR)));
    lease.ack().unwrap();
    let lease = q.lease_timeout(secs(10 * HOUR)).unwrap();
    assert_eq!((*lease, clock.elapsed()), (2 * HOUR, secs(2 * HOUR)));
    lease.ack().unwrap();
}

#[test]
fn a_pool_runs_a_daily_job_through_a_week_on_an_auto_advancing_clock() {
    let clock = TestClock::auto_advancing();
    let q: Queue<u64> = super::store().clock(clock.clone()).build().unwrap();
    let daily = Schedule::every(secs(24 * HOUR)).unwrap();
    q.add_schedule("report", daily, seconds_after(clock.wall_time())).unwrap();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran);
    let pool = WorkerPool::builder(q.clone())
        .workers(2)
        .build(move |job: leasequeue::Job<'_, u64>| seen.lock().unwrap().push(*job))
        .unwrap();
    super::until(|| pool.stats().succeeded >= 7);
    pool.shutdown(Duration::ZERO);
    let ran = ran.lock().unwrap();
    assert_eq!(ran[..7], (1..=7).map(|d| d * 24 * HOUR).collect::<Vec<_>>(), "one run a day, in order");
}

#[test]
fn a_panicking_job_function_skips_its_tick_and_the_next_tick_fires() {
    let (q, clock) = queue::<u64>();
    let start = clock.wall_time();
    q.add_schedule(
        "flaky",
        hourly(),
        move |at| {
            let hour = at.duration_since(start).unwrap().as_secs() / HOUR;
            assert_ne!(hour, 2, "the second tick's job cannot be made");
            hour
        },
    )
    .unwrap();
    clock.advance(secs(3 * HOUR));
    assert_eq!(drain(&q), [1, 3]);
    let info = &q.schedules()[0];
    assert_eq!((info.fired, info.skipped), (2, 1));
}

#[test]
fn a_jump_of_the_wall_clock_makes_missed_ticks_that_follow_the_policy() {
    for (policy, expected) in [
        (Missed::Skip, vec![]),
        (Missed::RunOnce, vec![6]),
        (Missed::CatchUp(2), vec![5, 6]),
        (Missed::CatchUp(10), vec![2, 3, 4, 5, 6]),
    ] {
        let (q, clock) = queue::<u64>();
        let start = clock.wall_time();
        let hour = move |at: SystemTime| at.duration_since(start).unwrap().as_secs() / HOUR;
        q.add_schedule("sync", hourly().missed(policy), hour).unwrap();
        clock.advance(secs(HOUR));
        assert_eq!(drain(&q), [1], "{policy:?}");
        // The machine slept for five hours: the calendar moved, the queue's clock did not.
        clock.jump_wall_time(secs(5 * HOUR));
        assert_eq!(drain(&q), expected, "{policy:?}: the ticks of hours 2 to 6 are missed");
        clock.advance(secs(HOUR));
        assert_eq!(drain(&q), [7], "{policy:?}: then every tick as it comes");
    }
}
