//! The helpers for testing users' own jobs: auto-advance, run until idle, inline mode, inspection,
//! assertions, events and reproducibility.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use leasequeue::{
    JobId,
    assert_dead_lettered, Backoff, DeadLetterReason, Event, EventKind, Inline, Jitter, JobState, Outcome,
    PushOptions, Queue, TestClock, WorkerPool,
};

use super::{builder, lacks, queue, secs, until, Needs};

fn five_failures_backoff() -> Backoff {
    Backoff::exponential(secs(60), 4.0).max(secs(3600)).jitter(Jitter::Proportional(0.1)).seed(7)
}

/// The scenario: a job fails five times under exponential backoff capped at one hour, then
/// succeeds, through a real worker pool, with no real sleep.
#[test]
fn auto_advance_runs_hours_of_backoff_through_a_pool() {
    let run = || {
        let clock = TestClock::auto_advancing();
        let queue: Queue<&str> =
            super::store().clock(clock.clone()).backoff(five_failures_backoff()).build().unwrap();
        let pool =
            WorkerPool::builder(queue.clone())
                .workers(2)
                .build(|job| {
                    if job.attempt() <= 5 {
                        Err(format!("503 on attempt {}", job.attempt()))
                    } else {
                        Ok(())
                    }
                })
                .unwrap();
        let id = queue.push("webhook").unwrap();
        until(|| pool.stats().succeeded == 1);
        let stats = pool.shutdown(Duration::ZERO);
        assert_eq!(stats.threads_left, 0);
        let expected: Duration = (1..=5).map(|n| five_failures_backoff().delay_for(id, n)).sum();
        assert_eq!(clock.elapsed(), expected, "the clock jumped exactly through the five backoffs");
        assert!(clock.elapsed() > secs(2 * 3600));
        (queue.stats().nacked, queue.stats().acked, clock.elapsed(), id)
    };
    let first = run();
    assert_eq!(first.0, 5);
    // Each run goes exactly through its job's backoffs (above); the jitter is the job id's, which a
    // store may number differently each run (the PostgreSQL store's ids are unique across its queues).
    let again = run();
    assert_eq!((first.0, first.1), (again.0, again.1), "the same outcome every run");
    if first.3 == again.3 {
        assert_eq!(first.2, again.2, "the same schedule for the same job");
    }
}

#[test]
fn auto_advance_jumps_to_a_blocked_consumers_own_timeout() {
    let clock = TestClock::auto_advancing();
    let q: Queue<u8> = super::store().clock(clock.clone()).build().unwrap();
    assert!(q.lease_timeout(secs(3600)).unwrap_err().is_timeout());
    assert_eq!(clock.elapsed(), secs(3600));
}

#[test]
fn auto_advance_waits_while_a_job_is_leased_and_moves_on_once_the_queue_is_idle() {
    let clock = TestClock::auto_advancing();
    let q: Queue<u8> = super::store().clock(clock.clone()).build().unwrap();
    q.push(1).unwrap();
    q.push_with(2, PushOptions::new().delay(secs(10))).unwrap();
    let held = q.try_lease().unwrap();
    let consumer = q.clone();
    let blocked = std::thread::spawn(move || {
        consumer.lease().map(|l| {
            let job = *l;
            l.ack().unwrap();
            job
        })
    });
    until(|| q.stats().consumers_waiting == 1);
    assert_eq!(clock.elapsed(), Duration::ZERO, "someone is working: time stands still");
    held.ack().unwrap();
    assert_eq!(blocked.join().unwrap(), Ok(2));
    assert_eq!(clock.elapsed(), secs(10));
}

#[test]
fn run_until_idle_processes_every_retry_and_summarises() {
    let (q, clock) = queue::<&str>();
    q.push("ok").unwrap();
    let flaky_id = q.push("flaky").unwrap();
    q.push("poison").unwrap();
    let summary = q.run_until_idle(|job| match *job {
        "flaky" if job.attempt() < 3 => Outcome::retry("timeout"),
        "poison" => Outcome::reject("bad"),
        _ => Outcome::Done,
    });
    assert!(summary.complete);
    assert_eq!((summary.acked, summary.retried, summary.dead_lettered), (2, 2, 1));
    assert_eq!(summary.attempts.len(), 5);
    let flaky: Vec<u32> = summary.attempts_of(flaky_id).map(|a| a.attempt).collect();
    assert_eq!(flaky, [1, 2, 3]);
    assert_eq!(clock.elapsed(), secs(20), "two backoffs of 10 s");
    assert!(q.is_empty());
}

#[test]
fn run_until_idle_counts_panics_and_dead_letters_after_max_attempts() {
    let (q, _clock) = queue::<u8>();
    q.push(1).unwrap();
    let summary = q.run_until_idle(|_job| -> () { panic!("handler bug") });
    assert_eq!((summary.panicked, summary.retried, summary.dead_lettered), (3, 2, 1));
    assert_eq!(summary.attempts[0].outcome, Outcome::retry("panicked: handler bug"));
    assert_dead_lettered(&q, DeadLetterReason::MaxAttempts, |job| *job == 1);
}

#[test]
fn run_until_idle_on_the_system_clock_runs_what_is_due() {
    let q = super::new_queue();
    q.push(1).unwrap();
    q.push_with(2, PushOptions::new().delay(secs(3600))).unwrap();
    let summary = q.run_until_idle(|_job| ());
    assert_eq!(summary.acked, 1);
    assert!(summary.complete);
    assert_eq!(q.stats().delayed, 1);
}

#[test]
fn a_job_deferred_forever_stops_at_the_run_limit() {
    if lacks(Needs::ManyRuns) {
        return;
    }
    let (q, _clock) = queue::<u8>();
    q.push(1).unwrap();
    let summary = q.run_until_idle(|_job| Outcome::defer(Duration::ZERO));
    assert!(!summary.complete);
    assert_eq!(summary.attempts.len(), leasequeue::MAX_RUNS);
}

#[test]
fn a_pool_runs_until_idle_on_a_manual_clock() {
    let (q, clock) = queue::<u32>();
    let pool = WorkerPool::builder(q.clone())
        .workers(2)
        .build(|job| if job.attempt() < *job { Err("again") } else { Ok(()) })
        .unwrap();
    for n in 1..=3 {
        q.push(n).unwrap();
    }
    let summary = pool.run_until_idle();
    assert_eq!((summary.acked, summary.retried, summary.attempts.len()), (3, 3, 6));
    assert!(summary.complete);
    assert_eq!(clock.elapsed(), secs(20));
    assert!(q.is_empty());
}

#[test]
fn inline_mode_runs_the_handler_on_the_pushing_thread() {
    let (q, clock) = queue::<&str>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let inline = Inline::new(q.clone(), move |job| {
        log.lock().unwrap().push((*job, std::thread::current().id(), job.attempt()));
        if *job == "flaky" && job.attempt() == 1 {
            Err("once")
        } else {
            Ok(())
        }
    });
    let summary = inline.push("hello").unwrap();
    assert_eq!(summary.acked, 1);
    let summary = inline.push("flaky").unwrap();
    assert_eq!((summary.acked, summary.retried), (0, 1));
    assert_eq!(q.stats().delayed, 1, "the retry waits for the test clock");
    let summary = inline.run_until_idle();
    assert_eq!(summary.acked, 1);
    assert_eq!(clock.elapsed(), secs(10));
    let me = std::thread::current().id();
    assert!(seen.lock().unwrap().iter().all(|(_, thread, _)| *thread == me));
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn jobs_lists_every_state_with_attempts_and_next_times() {
    let (q, clock) = queue::<u8>();
    let ids = [
        q.push(1).unwrap(),
        q.push(2).unwrap(),
        q.push_with(3, PushOptions::new().delay(secs(60))).unwrap().id(),
        q.push_with(4, PushOptions::new().group("g")).unwrap().id(),
        q.push_with(5, PushOptions::new().group("g").priority(3)).unwrap().id(),
    ];
    let leased = q.try_lease().unwrap(); // job 1
    let nacked = q.try_lease().unwrap(); // job 2
    nacked.nack().unwrap();
    let jobs = q.jobs();
    let states: Vec<(JobId, JobState, u32)> = jobs.iter().map(|j| (j.id, j.state, j.attempt)).collect();
    assert_eq!(
        states,
        [
            (ids[0], JobState::Leased, 1),
            (ids[1], JobState::Delayed, 1),
            (ids[2], JobState::Delayed, 0),
            (ids[3], JobState::Ready, 0),
            (ids[4], JobState::Waiting, 0),
        ]
    );
    assert_eq!(jobs[0].next, Some(clock.now() + secs(30)));
    assert_eq!(jobs[1].next, Some(clock.now() + secs(10)));
    assert_eq!(jobs[2].next, Some(clock.now() + secs(60)));
    assert_eq!((jobs[3].next, jobs[4].priority), (None, 3));
    leased.ack().unwrap();
}

#[test]
fn assert_dead_lettered_says_what_the_store_holds() {
    let (b, _clock) = builder::<u8>();
    let q = b.max_attempts(1).build().unwrap();
    let id = q.push(1).unwrap();
    q.try_lease().unwrap().nack().unwrap();
    let check = std::panic::AssertUnwindSafe(|| assert_dead_lettered(&q, DeadLetterReason::Rejected, |_| true));
    let panic = std::panic::catch_unwind(check);
    let payload = panic.expect_err("no dead letter matches");
    let message = payload.downcast_ref::<String>().expect("a formatted message");
    let says = format!("no dead letter with reason rejected matches; the store holds [{id} (max attempts, 1 attempts");
    assert!(message.contains(&says), "{message}");
}

fn scenario_log() -> Vec<(EventKind, u64, u32, Duration)> {
    let clock = TestClock::new();
    let start = clock.now();
    let log: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&log);
    let q = super::store()
        .clock(clock.clone())
        .max_attempts(4)
        .backoff(Backoff::exponential(secs(1), 3.0).jitter(Jitter::Full).seed(2026))
        .observer(move |e: &Event| sink.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    for n in 0..20u32 {
        q.push_with(n, PushOptions::new().priority((n % 3) as u8).delay(secs(u64::from(n % 4)))).unwrap();
    }
    q.run_until_idle(|job| match *job % 5 {
        0 => Outcome::Done,
        1 if job.attempt() < 3 => Outcome::retry("flaky"),
        2 => Outcome::retry("always"),
        3 => Outcome::reject("poison"),
        _ => Outcome::Done,
    });
    let log = log.lock().unwrap();
    log.iter().map(|e| (e.kind, e.id.as_u64(), e.attempt, e.at - start)).collect()
}

#[test]
fn a_seeded_scenario_produces_the_same_event_log_every_run() {
    if lacks(Needs::Observer) {
        return;
    }
    let first = scenario_log();
    assert!(first.len() > 60, "{}", first.len());
    assert!(first.iter().any(|e| e.0 == EventKind::DeadLettered(DeadLetterReason::MaxAttempts)));
    assert_eq!(first, scenario_log());
}

#[test]
fn the_observer_sees_lapses_and_dead_letters_in_order() {
    if lacks(Needs::Observer) {
        return;
    }
    let log: Arc<Mutex<Vec<(EventKind, u32)>>> = Arc::default();
    let sink = Arc::clone(&log);
    let (b, clock) = builder::<u8>();
    let q = b
        .max_attempts(1)
        .observer(move |e: &Event| sink.lock().unwrap().push((e.kind, e.attempt)))
        .build()
        .unwrap();
    q.push(1).unwrap();
    let _lease = q.try_lease().unwrap();
    clock.advance(secs(30));
    assert_eq!(
        *log.lock().unwrap(),
        [
            (EventKind::Pushed, 0),
            (EventKind::Leased, 1),
            (EventKind::Lapsed, 1),
            (EventKind::DeadLettered(DeadLetterReason::MaxAttempts), 1)
        ]
    );
}

#[test]
fn an_observer_may_call_back_into_the_queue() {
    if lacks(Needs::Observer) {
        return;
    }
    let slot: Arc<Mutex<Option<Queue<u8>>>> = Arc::default();
    let inner = Arc::clone(&slot);
    let q = super::store()
        .observer(move |e: &Event| {
            if let Some(q) = inner.lock().unwrap().as_ref() {
                let _ = q.stats();
                let _ = e;
            }
        })
        .build()
        .unwrap();
    *slot.lock().unwrap() = Some(q.clone());
    q.push(1).unwrap();
    q.try_lease().unwrap().ack().unwrap();
    slot.lock().unwrap().take();
    assert_eq!(q.stats().acked, 1);
}

#[test]
fn auto_advance_moves_on_after_a_nack_from_a_thread_that_then_stops() {
    let clock = TestClock::auto_advancing();
    let q: Queue<u8> =
        super::store().clock(clock.clone()).backoff(Backoff::fixed(secs(30))).build().unwrap();
    q.push(1).unwrap();
    let held = q.try_lease().unwrap();
    let consumer = q.clone();
    let blocked = std::thread::spawn(move || {
        consumer.lease().map(|l| {
            let attempt = l.attempt();
            l.ack().unwrap();
            attempt
        })
    });
    until(|| q.stats().consumers_waiting == 1);
    held.nack().unwrap(); // this thread leases nothing more: the blocked consumer must move the clock
    assert_eq!(blocked.join().unwrap(), Ok(2));
    assert_eq!(clock.elapsed(), secs(30));
}
