//! A nightly report on a schedule (feature `cron`): `0 2 * * MON-FRI` pushes a report job at 02:00 UTC
//! every weekday, and an hourly interval pushes a cache cleanup. A `WorkerPool` runs them on an
//! auto-advancing `TestClock`: a whole week of the schedule goes by, Friday's report failing once and
//! being retried a minute later, in milliseconds of real time.
//!
//! ```text
//! cargo run --features cron --example nightly_report
//! ```
#![allow(clippy::disallowed_methods)] // the example reports the real time it took

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use leasequeue::{Backoff, Job, Queue, Schedule, TestClock, WorkerPool};

#[derive(Debug)]
enum Task {
    /// The report of the day before the tick.
    Report {
        at: SystemTime,
    },
    Cleanup,
}

/// "Tue 02:00" for a time on the test clock, whose calendar starts on Monday 2026-01-05 at 00:00 UTC.
fn weekday_time(start: SystemTime, at: SystemTime) -> String {
    let secs = at.duration_since(start).expect("after the start").as_secs();
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(secs / 86_400 % 7) as usize];
    format!("{day} {:02}:{:02}", secs / 3600 % 24, secs / 60 % 60)
}

fn main() {
    let clock = TestClock::auto_advancing();
    let start = clock.wall_time();
    let queue: Queue<Task> = Queue::builder()
        .clock(clock.clone())
        .backoff(Backoff::fixed(Duration::from_secs(60)))
        .build()
        .expect("a valid configuration");
    let weekdays_at_two = Schedule::cron("0 2 * * MON-FRI").expect("a valid expression");
    queue.add_schedule("nightly-report", weekdays_at_two, |at| Task::Report { at }).expect("a name");
    let hourly = Schedule::every(Duration::from_secs(3600)).expect("not zero");
    queue.add_schedule("cache-cleanup", hourly, |_| Task::Cleanup).expect("a name");

    let reports = Arc::new(Mutex::new(Vec::new()));
    let cleanups = Arc::new(Mutex::new(0u32));
    let (seen, swept, handler_clock) = (Arc::clone(&reports), Arc::clone(&cleanups), clock.clone());
    let real = Instant::now();
    let pool = WorkerPool::builder(queue.clone())
        .workers(2)
        .build(move |job: Job<'_, Task>| -> Result<(), String> {
            match &*job {
                Task::Report { at } => {
                    let tick = weekday_time(start, *at);
                    if tick.starts_with("Fri") && job.attempt() == 1 {
                        return Err("the warehouse was not ready".into()); // retried a minute later
                    }
                    let ran = weekday_time(start, handler_clock.wall_time());
                    println!("report of {tick} ran at {ran} (attempt {})", job.attempt());
                    seen.lock().unwrap().push(tick);
                }
                Task::Cleanup => *swept.lock().unwrap() += 1,
            }
            Ok(())
        })
        .expect("a valid pool");
    while reports.lock().unwrap().len() < 5 {
        std::thread::yield_now(); // the pool moves the clock; this thread only watches
    }
    pool.shutdown(Duration::ZERO);

    let reports = reports.lock().unwrap();
    assert_eq!(*reports, ["Mon 02:00", "Tue 02:00", "Wed 02:00", "Thu 02:00", "Fri 02:00"]);
    let cleanups = *cleanups.lock().unwrap();
    assert!(cleanups >= 4 * 24 + 2, "the hourly cleanup ran alongside: {cleanups}");
    println!(
        "a working week of schedules ({} reports, {cleanups} cleanups) in {:.1} ms of real time; schedules: {:?}",
        reports.len(),
        real.elapsed().as_secs_f64() * 1000.0,
        queue.schedules().iter().map(|s| (&*s.name, s.fired)).collect::<Vec<_>>()
    );
}
