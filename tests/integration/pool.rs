use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded};
use leasequeue::{DeadLetterReason, FailureKind, Job, LeaseLost, Outcome, Queue, WorkerPool};

use super::{builder, lacks, new_queue, queue, secs, store, until, Needs};

#[test]
fn every_job_is_handled_once_and_join_returns_after_close() {
    let q = super::new_queue();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let pool = WorkerPool::builder(q.clone())
        .workers(3)
        .build(move |job: Job<'_, u32>| log.lock().unwrap().push(*job))
        .unwrap();
    for i in 0..300 {
        q.push(i).unwrap();
    }
    q.close();
    let stats = pool.join();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    assert_eq!((stats.processed, stats.succeeded, stats.workers), (300, 300, 0));
    assert_eq!(q.stats().acked, 300);
}

#[test]
fn an_error_retries_with_its_text_in_the_history() {
    let (b, clock) = builder::<&str>();
    let q = b.max_attempts(2).build().unwrap();
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .build(|job: Job<'_, &str>| Err::<(), _>(format!("smtp down ({})", job.attempt())))
        .unwrap();
    q.push("mail").unwrap();
    until(|| pool.stats().processed == 1);
    clock.advance(secs(10)); // the backoff
    until(|| pool.stats().processed == 2);
    let dead = q.drain_dead_letters();
    assert_eq!(dead[0].reason(), DeadLetterReason::MaxAttempts);
    let messages: Vec<_> = dead[0].history().iter().map(|f| f.message.clone().unwrap()).collect();
    assert_eq!(messages, ["smtp down (1)", "smtp down (2)"]);
    let stats = pool.stats();
    assert_eq!((stats.failed, stats.dead_lettered, stats.succeeded), (2, 1, 0));
}

#[test]
fn each_outcome_settles_the_job_as_it_says() {
    let (q, clock) = queue::<u32>();
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .build(|job: Job<'_, u32>| match (*job, job.attempt()) {
            (0, _) => Outcome::Done,
            (1, 1) => Outcome::retry_after("429", secs(100)),
            (2, _) => Outcome::reject("poison"),
            (3, 1) => Outcome::defer(secs(50)),
            _ => Outcome::Done,
        })
        .unwrap();
    for i in 0..4 {
        q.push(i).unwrap();
    }
    until(|| pool.stats().processed == 4);
    let stats = pool.stats();
    assert_eq!((stats.succeeded, stats.failed, stats.dead_lettered, stats.deferred), (1, 1, 1, 1));
    assert_eq!(q.drain_dead_letters()[0].history()[0].message.as_deref(), Some("poison"));
    assert_eq!(q.stats().delayed, 2);
    clock.advance(secs(50)); // the deferred job: same attempt, so deferred again... no: attempt 1 was not spent
    until(|| pool.stats().processed == 5);
    assert_eq!(pool.stats().deferred, 2, "a deferral does not spend the attempt");
    clock.advance(secs(50));
    until(|| pool.stats().processed >= 6);
    assert_eq!(pool.stats().succeeded, 2); // the 429 job, on its second attempt
    pool.shutdown(Duration::ZERO);
}

#[test]
fn a_panicking_handler_is_a_failure_and_the_worker_survives() {
    let (q, _clock) = queue::<u32>();
    let started = Arc::new(AtomicUsize::new(0));
    let starts = Arc::clone(&started);
    let panics = Arc::new(Mutex::new(Vec::new()));
    let hook_log = Arc::clone(&panics);
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .on_worker_start(move |_| {
            starts.fetch_add(1, Ordering::SeqCst);
        })
        .on_panic(move |id, message| hook_log.lock().unwrap().push((id, message.to_owned())))
        .build(|job: Job<'_, u32>| {
            if *job == 0 {
                panic!("bug in handler");
            }
        })
        .unwrap();
    let id = q.push(0).unwrap();
    q.push(1).unwrap();
    until(|| pool.stats().processed == 2);
    let stats = pool.stats();
    assert_eq!((stats.panicked, stats.failed, stats.succeeded, stats.workers), (1, 1, 1, 1));
    assert_eq!(started.load(Ordering::SeqCst), 1, "the same worker thread went on");
    assert_eq!(*panics.lock().unwrap(), [(id, "bug in handler".to_owned())]);
    let report = pool.shutdown(Duration::ZERO);
    assert_eq!(report.threads_left, 0);
    // The panicked job is backing off, with the panic in its history.
    assert_eq!(q.stats().delayed, 1);
    q.close();
}

#[test]
fn the_handler_sees_its_context() {
    let (q, _clock) = queue::<u32>();
    let (tx, rx) = unbounded();
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .build(move |mut job: Job<'_, u32>| {
            let before = job.deadline();
            job.extend(secs(100)).unwrap();
            tx.send((job.id(), job.attempt(), job.deadline() > before, job.is_cancelled())).unwrap();
        })
        .unwrap();
    let id = q.push(7).unwrap();
    assert_eq!(rx.recv().unwrap(), (id, 1, true, false));
    drop(pool);
}

#[test]
fn a_heartbeat_keeps_a_long_job_past_the_visibility_timeout() {
    let (q, clock) = queue::<u32>();
    let (started_tx, started) = bounded(1);
    let (finish, finish_rx) = bounded::<()>(1);
    let pool = WorkerPool::builder(q.clone())
        .workers(2)
        .heartbeat(true)
        .job_timeout(secs(600))
        .build(move |job: Job<'_, u32>| {
            started_tx.send(job.attempt()).unwrap();
            finish_rx.recv().unwrap();
        })
        .unwrap();
    q.push(1).unwrap();
    assert_eq!(started.recv().unwrap(), 1);
    clock.advance(secs(300)); // ten visibility timeouts
    let stats = q.stats();
    assert_eq!((stats.lapsed, stats.leased, stats.ready), (0, 1, 0));
    finish.send(()).unwrap();
    until(|| pool.stats().succeeded == 1);
    assert_eq!(pool.stats().lost, 0);
    pool.shutdown(Duration::ZERO);
}

#[test]
fn a_hung_job_lapses_at_its_timeout_and_is_delivered_elsewhere() {
    let (q, clock) = queue::<u32>();
    let (started_tx, started) = unbounded();
    let (release, release_rx) = unbounded::<()>();
    let pool = WorkerPool::builder(q.clone())
        .workers(2)
        .heartbeat(true)
        .job_timeout(secs(60))
        .build(move |job: Job<'_, u32>| {
            started_tx.send((job.attempt(), job.is_cancelled())).unwrap();
            if job.attempt() == 1 {
                release_rx.recv().unwrap(); // hangs
                assert!(job.is_cancelled(), "its timeout has passed");
            }
        })
        .unwrap();
    q.push(1).unwrap();
    assert_eq!(started.recv().unwrap(), (1, false));
    clock.advance(secs(59));
    assert_eq!(q.stats().leased, 1);
    clock.advance(secs(1));
    assert_eq!(started.recv().unwrap(), (2, false), "delivered to the other worker");
    until(|| pool.stats().succeeded == 1);
    release.send(()).unwrap();
    until(|| pool.stats().processed == 2);
    assert_eq!(pool.stats().lost, 1, "the hung worker's late outcome is refused");
    assert_eq!(q.stats().lapsed, 1);
    pool.shutdown(Duration::ZERO);
}

#[test]
fn shutdown_waits_for_running_jobs_within_the_grace_period() {
    let (q, _clock) = queue::<u32>();
    let (started_tx, started) = bounded(1);
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .build(move |job: Job<'_, u32>| {
            started_tx.send(()).unwrap();
            while !job.is_cancelled() {
                thread::yield_now();
            }
        })
        .unwrap();
    q.push(1).unwrap();
    q.push(2).unwrap();
    started.recv().unwrap();
    let report = pool.shutdown(Duration::from_secs(3600));
    assert_eq!((report.completed, report.released, report.threads_left), (1, 0, 0));
    assert_eq!(q.stats().ready, 1, "queued jobs stay in the queue");
}

#[test]
fn shutdown_releases_jobs_still_running_without_spending_an_attempt() {
    let (q, clock) = queue::<u32>();
    let (started_tx, started) = bounded(1);
    let (unblock, unblock_rx) = bounded::<()>(1);
    let (outcome_tx, outcome) = bounded(1);
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .heartbeat(true) // the lease never lapses while the test clock races ahead
        .build(move |job: Job<'_, u32>| {
            started_tx.send(()).unwrap();
            unblock_rx.recv().unwrap(); // ignores cancellation
            outcome_tx.send(job.is_cancelled()).unwrap();
        })
        .unwrap();
    q.push(1).unwrap();
    started.recv().unwrap();
    let shutting_down = thread::spawn(move || pool.shutdown(secs(10)));
    while !shutting_down.is_finished() {
        clock.advance(secs(10)); // the grace period runs on the test clock
        thread::yield_now();
    }
    let report = shutting_down.join().unwrap();
    assert_eq!((report.completed, report.released, report.threads_left), (0, 1, 1));
    let stats = q.stats();
    assert_eq!((stats.ready, stats.leased, stats.released), (1, 0, 1));
    let again = q.try_lease().unwrap();
    assert_eq!(again.attempt(), 1, "no attempt spent");
    unblock.send(()).unwrap();
    assert!(outcome.recv().unwrap(), "the handler saw the cancellation");
    again.ack().unwrap();
}

#[test]
fn a_revoked_lease_says_so() {
    // The handler's own outcome after shutdown took its job back is refused with `Revoked`.
    let (q, clock) = queue::<u32>();
    let (started_tx, started) = bounded(1);
    let (unblock, unblock_rx) = bounded::<()>(1);
    let (result_tx, result) = bounded(1);
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .heartbeat(true)
        .build(move |mut job: Job<'_, u32>| {
            started_tx.send(()).unwrap();
            unblock_rx.recv().unwrap();
            result_tx.send(job.extend(secs(1))).unwrap();
        })
        .unwrap();
    q.push(1).unwrap();
    started.recv().unwrap();
    let shutting_down = thread::spawn(move || pool.shutdown(secs(1)));
    while !shutting_down.is_finished() {
        clock.advance(secs(1));
        thread::yield_now();
    }
    unblock.send(()).unwrap();
    assert_eq!(result.recv().unwrap(), Err(LeaseLost::Revoked));
}

#[test]
fn the_pool_scales_up_with_depth_and_down_when_idle() {
    let (q, clock) = queue::<u32>();
    let (gate, gate_rx) = unbounded::<()>();
    let pool = WorkerPool::builder(q.clone())
        .workers(1..=4)
        .idle_timeout(secs(10))
        .build(move |_job: Job<'_, u32>| {
            gate_rx.recv().unwrap();
        })
        .unwrap();
    let watched = pool;
    for i in 0..10 {
        q.push(i).unwrap();
    }
    until(|| watched.stats().busy == 4);
    assert_eq!(watched.workers(), 4, "grew to the maximum, and no further");
    for _ in 0..10 {
        gate.send(()).unwrap();
    }
    until(|| watched.stats().processed == 10);
    while watched.workers() > 1 {
        clock.advance(secs(10)); // idle workers retire
        thread::yield_now();
    }
    assert_eq!(watched.workers(), 1, "down to the minimum, and no further");
    clock.advance(secs(100));
    assert_eq!(watched.workers(), 1);
    q.push(99).unwrap();
    gate.send(()).unwrap();
    until(|| watched.stats().processed == 11);
}

#[test]
fn dropping_the_pool_loses_no_job() {
    let (q, _clock) = queue::<u32>();
    let (started_tx, started) = bounded(1);
    let (finish, finish_rx) = bounded::<()>(1);
    let (stopped_tx, stopped) = bounded(1);
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .on_worker_stop(move |_| stopped_tx.send(()).unwrap())
        .build(move |_job: Job<'_, u32>| {
            started_tx.send(()).unwrap();
            finish_rx.recv().unwrap();
        })
        .unwrap();
    q.push(1).unwrap();
    q.push(2).unwrap();
    started.recv().unwrap();
    drop(pool); // never blocks
    finish.send(()).unwrap();
    stopped.recv().unwrap();
    let stats = q.stats();
    assert_eq!((stats.acked, stats.ready, stats.leased), (1, 1, 0), "the running job finished, job 2 waits");
}

#[test]
fn invalid_pool_configuration_is_an_error() {
    let q = super::new_queue::<u8>();
    let build = |b: leasequeue::WorkerPoolBuilder<u8>| b.build(|_job| ()).unwrap_err().option();
    assert_eq!(build(WorkerPool::builder(q.clone()).workers(0)), "workers");
    #[allow(clippy::reversed_empty_ranges)] // the point: a range whose maximum is below its minimum
    let backwards = 4..=2;
    assert_eq!(build(WorkerPool::builder(q.clone()).workers(backwards)), "workers");
    assert_eq!(build(WorkerPool::builder(q.clone()).job_timeout(Duration::ZERO)), "job_timeout");
    assert_eq!(build(WorkerPool::builder(q.clone()).idle_timeout(Duration::ZERO)), "idle_timeout");
    assert_eq!(build(WorkerPool::builder(q.clone()).scale_up_depth(0)), "scale_up_depth");
}

#[test]
fn a_panic_records_its_message_in_the_history() {
    let (b, _clock) = builder::<u32>();
    let q = b.max_attempts(1).build().unwrap();
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .build(|_job: Job<'_, u32>| -> () { panic!("boom") })
        .unwrap();
    q.push(1).unwrap();
    until(|| pool.stats().processed == 1);
    let dead = q.drain_dead_letters();
    assert_eq!(dead[0].history()[0].kind, FailureKind::Panicked);
    assert_eq!(dead[0].history()[0].message.as_deref(), Some("panicked: boom"));
    assert_eq!(pool.stats().dead_lettered, 1);
}

/// A pool of 1..=4 whose handler blocks until the gate lets it go, with one long job already running.
fn one_long_job_running() -> (Queue<u32>, WorkerPool<u32>, crossbeam_channel::Sender<()>) {
    let (q, _clock) = queue::<u32>();
    let (gate, gate_rx) = unbounded::<()>();
    let pool = WorkerPool::builder(q.clone())
        .workers(1..=4)
        .build(move |_job: Job<'_, u32>| {
            let _ = gate_rx.recv(); // returns when let go, or when the gate is dropped
        })
        .unwrap();
    q.push(0).unwrap();
    until(|| pool.stats().busy == 1); // the only worker is on a long job
    (q, pool, gate)
}

#[test]
fn a_backlog_pushed_while_every_worker_is_busy_scales_the_pool_up() {
    let (q, pool, gate) = one_long_job_running();
    for n in 1..=20 {
        q.push(n).unwrap();
    }
    // The first push found the backlog at the threshold and no idle worker: it started one at once.
    assert!(pool.workers() >= 2, "workers: {}", pool.workers());
    until(|| pool.workers() == 4 && pool.stats().busy == 4);
    drop(gate); // every handler returns
    q.close();
    let stats = pool.join();
    assert_eq!(stats.succeeded, 21);
}

#[test]
fn a_backlog_pushed_as_a_batch_scales_the_same_way() {
    let (q, pool, gate) = one_long_job_running();
    assert!(q.push_batch(1..=20).iter().all(Result::is_ok));
    assert!(pool.workers() >= 2, "workers: {}", pool.workers());
    until(|| pool.workers() == 4 && pool.stats().busy == 4);
    drop(gate);
    q.close();
    assert_eq!(pool.join().succeeded, 21);
}

#[test]
fn a_push_with_an_idle_worker_starts_no_other() {
    let (q, _clock) = queue::<u32>();
    let (gate, gate_rx) = unbounded::<()>();
    let pool = WorkerPool::builder(q.clone())
        .workers(2..=4)
        .build(move |_job: Job<'_, u32>| {
            gate_rx.recv().unwrap();
        })
        .unwrap();
    until(|| q.stats().consumers_waiting == 2);
    q.push(1).unwrap(); // an idle worker takes it
    until(|| pool.stats().busy == 1);
    assert_eq!(pool.workers(), 2);
    gate.send(()).unwrap();
    until(|| pool.stats().processed == 1);
}

#[test]
fn workers_beyond_the_limit_are_refused() {
    let err = WorkerPool::builder(super::new_queue::<u8>()).workers(1..=usize::MAX).build(|_job| ()).unwrap_err();
    assert_eq!(err.option(), "workers");
    assert!(err.to_string().contains("4096"), "{err}");
    assert!(WorkerPool::builder(super::new_queue::<u8>())
        .workers(1..=leasequeue::MAX_WORKERS)
        .build(|_job| ())
        .is_ok());
}

/// A job whose `Drop` takes a while (a payload that flushes a buffer, say).
struct SlowDrop(Arc<AtomicUsize>);

impl Drop for SlowDrop {
    #[allow(clippy::disallowed_methods)] // a real stall: the point is that it takes time
    fn drop(&mut self) {
        thread::sleep(Duration::from_millis(30));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn run_until_idle_returns_final_counts() {
    let (b, _clock) = builder::<SlowDrop>();
    let q = b.build().unwrap();
    let pool = WorkerPool::builder(q.clone()).workers(1).build(|_job: Job<'_, SlowDrop>| ()).unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    q.push(SlowDrop(Arc::clone(&dropped))).unwrap();
    let summary = pool.run_until_idle();
    assert_eq!((summary.acked, summary.attempts.len()), (1, 1));
    let stats = pool.stats();
    assert_eq!((stats.busy, stats.processed, stats.succeeded), (0, 1, 1));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn run_until_idle_on_an_auto_advancing_clock_is_the_same_every_time() {
    // The README's scenario: five failures then success, four workers, with a thread polling stats().
    let reference: Vec<(u32, Duration)> = (1..=6).map(|n| (n, secs(10) * (n - 1))).collect();
    let runs = if cfg!(debug_assertions) { 200 } else { 1000 };
    for _ in 0..runs {
        let clock = leasequeue::TestClock::auto_advancing();
        let q: Queue<u32> = super::store()
            .clock(clock.clone())
            .visibility_timeout(secs(30))
            .max_attempts(10)
            .backoff(leasequeue::Backoff::fixed(secs(10)))
            .build()
            .unwrap();
        let pool = WorkerPool::builder(q.clone())
            .workers(4)
            .build(|job: Job<'_, u32>| if job.attempt() <= 5 { Err("503") } else { Ok(()) })
            .unwrap();
        let start = clock.now();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let (q, stop) = (q.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = q.stats();
                    thread::yield_now();
                }
            })
        };
        q.push(1).unwrap();
        let summary = pool.run_until_idle();
        stop.store(true, Ordering::Relaxed);
        poller.join().unwrap();
        let schedule: Vec<(u32, Duration)> =
            summary.attempts.iter().map(|a| (a.attempt, a.at - start)).collect();
        assert_eq!(schedule, reference);
        assert_eq!((summary.retried, summary.acked), (5, 1));
        let (stats, qs) = (pool.stats(), q.stats());
        assert_eq!((stats.lost, stats.busy, qs.lapsed, qs.len()), (0, 0, 0, 0));
        pool.shutdown(Duration::ZERO);
    }
}

#[test]
fn run_until_idle_stops_for_a_handler_that_defers_forever() {
    if lacks(Needs::ManyRuns) {
        return;
    }
    let (q, _clock) = queue::<u8>();
    let pool =
        WorkerPool::builder(q.clone()).workers(2).build(|_job| Outcome::defer(Duration::ZERO)).unwrap();
    q.push(1).unwrap();
    let summary = pool.run_until_idle();
    assert!(!summary.complete);
    assert!(pool.stats().processed >= leasequeue::MAX_RUNS as u64);
    assert!(summary.attempts.len() <= leasequeue::MAX_RUNS, "the record is bounded");
    pool.shutdown(Duration::ZERO);
}

#[test]
fn a_pool_that_settles_in_batches_counts_every_outcome_once() {
    // On the system clock an in-memory pool acks a batch of jobs under one lock, at the batch's end;
    // whatever the batching, every outcome lands once and the counts agree with the queue's.
    let q = store::<u32>().max_attempts(1).build().unwrap();
    let pool = WorkerPool::builder(q.clone())
        .workers(2)
        .build(|job: Job<'_, u32>| match *job % 10 {
            3 => Outcome::retry("flaky"), // the only attempt: dead-lettered
            7 => Outcome::reject("poison"),
            _ => Outcome::Done,
        })
        .unwrap();
    let results = q.push_batch(0..5_000);
    assert!(results.iter().all(Result::is_ok));
    q.close();
    let stats = pool.join();
    assert_eq!((stats.processed, stats.succeeded, stats.dead_lettered, stats.lost), (5_000, 4_000, 1_000, 0));
    let queue = q.stats();
    assert_eq!((queue.acked, queue.dead_lettered, queue.leased, queue.ready), (4_000, 1_000, 0, 0));
}

#[test]
fn shutdown_acks_the_jobs_a_worker_finished_and_releases_the_one_it_runs() {
    // On the system clock a worker defers the acks of a batch's jobs to the batch's end: a shutdown
    // that ends while the batch's last job still runs acks the finished ones itself, so that none of
    // them is delivered again.
    let q = new_queue::<u32>();
    let (started_tx, started) = bounded(1);
    let (unblock, unblock_rx) = bounded::<()>(1);
    let results = q.push_batch(1..=20);
    assert!(results.iter().all(Result::is_ok));
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .build(move |job: Job<'_, u32>| {
            if *job == 20 {
                started_tx.send(()).unwrap();
                unblock_rx.recv().unwrap(); // ignores cancellation
            }
        })
        .unwrap();
    started.recv().unwrap();
    let report = pool.shutdown(Duration::ZERO);
    assert_eq!((report.released, report.threads_left), (1, 1));
    let stats = q.stats();
    assert_eq!((stats.acked, stats.leased, stats.ready), (19, 0, 1), "{stats:?}");
    let again = q.try_lease().unwrap();
    assert_eq!((*again, again.attempt()), (20, 1), "released without spending an attempt");
    unblock.send(()).unwrap();
    again.ack().unwrap();
}
