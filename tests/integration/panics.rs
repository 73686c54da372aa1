//! A panic in user code is caught where the queue calls it: the operation keeps its result, nothing is
//! lost, no attempt is spent for it, no worker dies and no unrelated caller sees it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::bounded;
use leasequeue::{
    Backoff, Binding, DeadLetter, DeadLetterReason, Event, EventKind, Job, NackOutcome, Outcome, PanicSite,
    PoolStats, PublishError, Queue, Redrive, Router, UserPanic, WorkerPool,
};

use super::{builder, lacks, secs, until, Needs};

/// A job whose `Drop` panics (and counts how often it ran).
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        panic!("bomb dropped");
    }
}

fn panicking_sink<T>(_dead: DeadLetter<T>) {
    panic!("sink down");
}

/// Sites the panic hook saw.
fn recorder() -> (Arc<Mutex<Vec<PanicSite>>>, impl Fn(&UserPanic) + Send + Sync + 'static) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    (seen, move |p: &UserPanic| log.lock().unwrap().push(p.site))
}

/// Joins the pool on another thread: a worker that died would make `join` hang, which fails here instead.
fn join_within(pool: WorkerPool<u32>, limit: Duration) -> PoolStats {
    let (tx, rx) = bounded(1);
    thread::spawn(move || tx.send(pool.join()).unwrap());
    rx.recv_timeout(limit).expect("join returned: no worker died")
}

#[test]
fn a_panicking_sink_keeps_a_rejected_job_in_the_store() {
    if lacks(Needs::Sink) {
        return;
    }
    let (seen, hook) = recorder();
    let (b, _clock) = builder::<&str>();
    let q = b.dead_letter(panicking_sink::<&str>).on_panic(hook).build().unwrap();
    q.push("poison").unwrap();
    q.try_lease().unwrap().reject("bad").unwrap(); // no panic here
    let stats = q.stats();
    assert_eq!((stats.len(), stats.dead, stats.dead_lettered, stats.panics), (0, 1, 1, 1));
    assert_eq!(*q.dead_letters()[0].job(), "poison");
    assert_eq!(*seen.lock().unwrap(), [PanicSite::DeadLetterSink]);
}

#[test]
fn a_panicking_sink_keeps_a_dropped_last_attempt_in_the_store() {
    if lacks(Needs::Sink) {
        return;
    }
    let (b, _clock) = builder::<&str>();
    let q = b.max_attempts(1).dead_letter(panicking_sink::<&str>).build().unwrap();
    q.push("poison").unwrap();
    drop(q.try_lease().unwrap());
    let dead = q.drain_dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason(), DeadLetterReason::MaxAttempts);
    assert_eq!(q.stats().panics, 1);
}

#[test]
fn a_panicking_sink_on_a_lapse_keeps_the_letter_and_lets_the_clock_wake_other_queues() {
    if lacks(Needs::Sink) {
        return;
    }
    let (b, clock) = builder::<&str>();
    let first = b.max_attempts(1).dead_letter(panicking_sink::<&str>).build().unwrap();
    let second: Queue<&str> = super::store().clock(clock.clone()).build().unwrap();
    first.push("slow").unwrap();
    let lease = first.try_lease().unwrap();
    second.push_with("later", leasequeue::PushOptions::new().delay(secs(30))).unwrap();
    let (tx, rx) = bounded(1);
    let consumer = second.clone();
    thread::spawn(move || tx.send(consumer.lease().map(|l| *l)).unwrap());
    until(|| second.stats().consumers_waiting == 1);

    clock.advance(secs(30)); // the lease lapses on its last attempt; the sink panics; no panic here
    assert_eq!(rx.recv_timeout(secs(10)).unwrap().unwrap(), "later");
    assert_eq!(first.stats().dead, 1);
    assert_eq!(first.stats().panics, 1);
    assert_eq!(lease.ack(), Err(leasequeue::LeaseLost::Gone));
}

#[test]
fn an_observer_panicking_on_leased_neither_kills_the_worker_nor_loses_jobs() {
    if lacks(Needs::Observer) {
        return;
    }
    let fired = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&fired);
    let q: Queue<u32> = super::store()
        .observer(move |e: &Event| {
            if e.kind == EventKind::Leased && !f.swap(true, SeqCst) {
                panic!("once")
            }
        })
        .build()
        .unwrap();
    let pool = WorkerPool::builder(q.clone()).workers(1).build(|_job: Job<'_, u32>| ()).unwrap();
    q.push(1).unwrap();
    q.push(2).unwrap();
    q.close();
    let stats = join_within(pool, secs(30));
    assert_eq!((stats.succeeded, stats.failed, stats.workers, stats.busy), (2, 0, 0, 0));
    assert_eq!((q.stats().acked, q.stats().panics), (2, 1));
}

#[test]
fn a_panicking_sink_under_a_pool_loses_no_dead_letter_and_no_worker() {
    if lacks(Needs::Sink) {
        return;
    }
    let q: Queue<u32> = super::store().dead_letter(panicking_sink::<u32>).build().unwrap();
    let pool =
        WorkerPool::builder(q.clone()).workers(2).build(|_job: Job<'_, u32>| Outcome::reject("no")).unwrap();
    for i in 0..20 {
        q.push(i).unwrap();
    }
    q.close();
    let stats = join_within(pool, secs(30));
    assert_eq!((stats.dead_lettered, stats.workers), (20, 0));
    assert_eq!((q.stats().dead, q.stats().panics), (20, 20));
}

#[test]
fn a_job_whose_drop_panics_on_ack_costs_no_worker() {
    let drops = Arc::new(AtomicUsize::new(0));
    let q: Queue<Bomb> = super::new_queue();
    let pool = WorkerPool::builder(q.clone()).workers(2).build(|_job: Job<'_, Bomb>| ()).unwrap();
    for _ in 0..10 {
        q.push(Bomb(Arc::clone(&drops))).unwrap();
    }
    q.close();
    let (tx, rx) = bounded(1);
    thread::spawn(move || tx.send(pool.join()).unwrap());
    let stats = rx.recv_timeout(secs(30)).expect("join returned");
    assert_eq!((stats.succeeded, stats.workers), (10, 0));
    assert_eq!((drops.load(SeqCst), q.stats().panics), (10, 10));
}

#[test]
fn panicking_worker_hooks_leave_the_pool_working_and_its_counts_true() {
    let (seen, hook) = recorder();
    let q: Queue<u32> = super::store().on_panic(hook).build().unwrap();
    let pool = WorkerPool::builder(q.clone())
        .workers(2)
        .on_worker_start(|_| panic!("start"))
        .on_worker_stop(|_| panic!("stop"))
        .build(|_job: Job<'_, u32>| ())
        .unwrap();
    for i in 0..10 {
        q.push(i).unwrap();
    }
    q.close();
    let stats = join_within(pool, secs(30));
    assert_eq!((stats.succeeded, stats.workers, stats.busy), (10, 0, 0));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|s| s.to_string());
    assert_eq!(
        seen,
        [PanicSite::WorkerStart, PanicSite::WorkerStart, PanicSite::WorkerStop, PanicSite::WorkerStop]
    );
}

#[test]
fn a_panicking_handler_panic_hook_is_caught_too() {
    let (b, clock) = builder::<u32>();
    let q = b.build().unwrap();
    let pool = WorkerPool::builder(q.clone())
        .workers(1)
        .on_panic(|_, _| panic!("hook"))
        .build(|job: Job<'_, u32>| {
            if job.attempt() == 1 {
                panic!("handler")
            }
        })
        .unwrap();
    q.push(1).unwrap();
    until(|| pool.stats().processed == 1);
    clock.advance(secs(10)); // the backoff
    until(|| pool.stats().processed == 2);
    let stats = pool.stats();
    assert_eq!((stats.panicked, stats.succeeded, stats.workers), (1, 1, 1));
    assert_eq!(q.stats().panics, 1); // the hook's; the handler's is counted by the pool
}

#[test]
fn an_observer_panicking_on_leased_spends_no_attempt() {
    if lacks(Needs::Observer) {
        return;
    }
    let (b, _clock) = builder::<u32>();
    let q = b
        .max_attempts(2)
        .observer(|e: &Event| assert_ne!(e.kind, EventKind::Leased, "observer bug"))
        .build()
        .unwrap();
    q.push(1).unwrap();
    for _ in 0..3 {
        let lease = q.try_lease().unwrap(); // granted, no panic
        assert_eq!(lease.attempt(), 1);
        lease.release().unwrap();
    }
    let lease = q.try_lease().unwrap();
    lease.ack().unwrap();
    let stats = q.stats();
    assert_eq!((stats.acked, stats.dead_lettered, stats.nacked, stats.panics), (1, 0, 0, 4));
}

#[test]
fn an_observer_panicking_on_pushed_leaves_the_job_pushed_once() {
    if lacks(Needs::Observer) {
        return;
    }
    let (b, _clock) = builder::<u32>();
    let q = b.observer(|e: &Event| assert_ne!(e.kind, EventKind::Pushed, "observer bug")).build().unwrap();
    let id = q.push(7).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_lease().unwrap().id(), id);
}

#[test]
fn a_panicking_alarm_hook_changes_nothing_else() {
    if lacks(Needs::Alarms) {
        return;
    }
    let (b, _clock) = builder::<u32>();
    let q = b.alarm(leasequeue::Alarm::ready_depth(1), |_| panic!("pager down")).build().unwrap();
    q.push(1).unwrap(); // raises the alarm
    assert_eq!((q.len(), q.stats().panics), (1, 1));
    q.try_lease().unwrap().ack().unwrap(); // clears it
    assert_eq!((q.stats().acked, q.stats().panics), (1, 2));
}

#[test]
fn a_panicking_backoff_retries_at_once() {
    let (b, _clock) = builder::<u32>();
    let q = b.backoff(Backoff::custom(|_| panic!("bad formula"))).build().unwrap();
    q.push(1).unwrap();
    let outcome = q.try_lease().unwrap().nack().unwrap();
    assert!(matches!(outcome, NackOutcome::Retrying { at } if at == q.clock().now()));
    let lease = q.try_lease().unwrap();
    assert_eq!(lease.attempt(), 2);
    lease.ack().unwrap();
    assert_eq!(q.stats().panics, 1);
}

#[test]
fn a_job_whose_drop_panics_is_dropped_once_wherever_the_queue_lets_go_of_it() {
    let drops = Arc::new(AtomicUsize::new(0));
    let bomb = || Bomb(Arc::clone(&drops));
    let (b, _clock) = builder::<Bomb>();
    let q = b.build().unwrap();
    let key = || leasequeue::PushOptions::new().dedup_key("k");
    q.push_with(bomb(), key()).unwrap();
    assert!(matches!(q.push_with(bomb(), key()), Ok(leasequeue::Pushed::Duplicate(_)))); // dropped: 1
    let lease = q.try_lease().unwrap();
    q.push(bomb()).unwrap();
    assert_eq!(q.purge(), 2); // the ready one drops: 2; the leased one lives on in its lease
    assert_eq!(drops.load(SeqCst), 2);
    assert!(lease.ack().is_err()); // the lease's copy was the last: 3
    assert_eq!(drops.load(SeqCst), 3);
    q.push(bomb()).unwrap();
    q.push(bomb()).unwrap();
    let panics = q.stats().panics;
    drop(q); // the last handle: both drop, neither panic escapes
    assert_eq!((drops.load(SeqCst), panics), (5, 3));
}

#[test]
fn a_clone_that_panics_during_a_fanout_delivers_nothing_and_hands_the_job_back() {
    #[derive(Debug)]
    struct Brittle(Arc<AtomicUsize>);
    impl Clone for Brittle {
        fn clone(&self) -> Self {
            if self.0.fetch_add(1, SeqCst) == 1 {
                panic!("clone failed");
            }
            Brittle(Arc::clone(&self.0))
        }
    }
    let queues: Vec<Queue<Brittle>> = (0..3).map(|_| super::new_queue()).collect();
    let router = Router::new();
    for q in &queues {
        router.bind(Binding::Fanout, q.clone());
    }
    let clones = Arc::new(AtomicUsize::new(0));
    match router.publish("k", Brittle(Arc::clone(&clones))) {
        Err(PublishError::ClonePanicked(job)) => assert!(Arc::ptr_eq(&job.0, &clones)),
        other => panic!("expected ClonePanicked, got {other:?}"),
    }
    assert!(queues.iter().all(Queue::is_empty));
    let stats = router.stats();
    assert_eq!((stats.delivered, stats.panics), (0, 1));
}

#[test]
fn ack_batch_settles_what_a_panicking_iterator_yielded_before_the_panic() {
    let (q, _clock) = super::queue::<u32>();
    q.push_batch(0..3);
    let leases = q.try_lease_batch(3).unwrap();
    let yielded = AtomicUsize::new(0);
    let leases = leases.into_iter().inspect(|_| {
        if yielded.fetch_add(1, SeqCst) == 2 {
            panic!("iterator bug");
        }
    });
    let result = catch_unwind(AssertUnwindSafe(|| q.ack_batch(leases)));
    assert!(result.is_err(), "the caller's own panic comes back to it");
    let stats = q.stats();
    // Two acked; the third lease was dropped by the iterator as it unwound: a nack.
    assert_eq!((stats.acked, stats.nacked, stats.leased), (2, 1, 0));
}

#[test]
fn nack_batch_settles_what_a_panicking_iterator_yielded_before_the_panic() {
    let (q, _clock) = super::queue::<u32>();
    q.push_batch(0..3);
    let leases = q.try_lease_batch(3).unwrap();
    let mut leases = leases.into_iter();
    let first = leases.next().unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| {
        q.nack_batch(std::iter::once(first).chain(std::iter::from_fn(|| panic!("iterator bug"))))
    }));
    assert!(result.is_err());
    drop(leases);
    let stats = q.stats();
    assert_eq!((stats.nacked, stats.leased, stats.delayed), (3, 0, 3));
}

#[test]
fn a_panicking_redrive_filter_skips_its_letter_and_spends_no_attempt() {
    if lacks(Needs::Sink) {
        return;
    }
    let dlq: Queue<DeadLetter<u32>> = super::store().max_attempts(1).build().unwrap();
    let (b, _clock) = builder::<u32>();
    let q = b.dead_letter(dlq.clone()).build().unwrap();
    for i in 0..3 {
        q.push(i).unwrap();
        q.try_lease().unwrap().reject("no").unwrap();
    }
    let report = Redrive::from_queue(&dlq, &q)
        .matching(|d| if *d.job() == 1 { panic!("filter bug") } else { true })
        .run();
    assert_eq!((report.moved, report.skipped), (2, 1));
    let dlq_stats = dlq.stats();
    assert_eq!((dlq_stats.ready, dlq_stats.nacked, dlq_stats.dead_lettered), (1, 0, 0));
    assert_eq!(q.stats().panics, 1);

    // The same from the built-in store.
    let (b, _clock) = builder::<u32>();
    let q = b.build().unwrap();
    for i in 0..3 {
        q.push(i).unwrap();
        q.try_lease().unwrap().reject("no").unwrap();
    }
    let report = q.redrive().matching(|d| if *d.job() == 1 { panic!("filter bug") } else { true }).run();
    assert_eq!((report.moved, report.skipped, q.stats().dead, q.stats().ready), (2, 1, 1, 2));
}
