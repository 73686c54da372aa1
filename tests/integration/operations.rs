//! Operating a queue: pause and resume, purge, batches, redrive, alarms.

use std::thread;

use leasequeue::{LeaseLost, PushOptions};

use super::{lacks, queue, secs, until, Needs};

#[test]
fn pause_stops_leasing_but_not_pushing_or_time() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    q.push_with(2, PushOptions::new().delay(secs(5))).unwrap();
    q.pause();
    assert!(q.is_paused());
    q.push(3).unwrap();
    assert!(q.try_lease().unwrap_err().is_empty());
    clock.advance(secs(5));
    assert_eq!(q.stats().ready, 3, "time goes on while paused");
    let consumer = q.clone();
    let blocked = thread::spawn(move || {
        let lease = consumer.lease().unwrap();
        let job = *lease;
        lease.ack().unwrap();
        job
    });
    until(|| q.stats().consumers_waiting == 1);
    q.resume();
    assert_eq!(blocked.join().unwrap(), 1);
}

#[test]
fn a_paused_queue_takes_acks_and_hands_out_nothing() {
    let (q, _clock) = queue::<u8>();
    q.push_batch([1, 2]);
    let first = q.try_lease().unwrap();
    q.pause();
    assert!(q.try_lease().unwrap_err().is_empty());
    assert!(first.ack_and_try_lease().unwrap().is_none(), "acked, and nothing leased while paused");
    assert_eq!((q.stats().acked, q.stats().ready, q.stats().leased), (1, 1, 0));
    q.resume();
    assert_eq!(*q.try_lease().unwrap(), 2);
}

#[test]
fn purge_removes_every_live_job_and_fences_their_leases() {
    let (q, _clock) = queue::<u8>();
    q.push(1).unwrap();
    q.push_with(2, PushOptions::new().delay(secs(5))).unwrap();
    q.push_with(3, PushOptions::new().group("g")).unwrap();
    q.push_with(4, PushOptions::new().group("g")).unwrap();
    let mut lease = q.try_lease().unwrap();
    assert_eq!(q.purge(), 4);
    let stats = q.stats();
    assert_eq!((stats.len(), stats.purged, stats.dead_lettered), (0, 4, 0));
    assert_eq!(lease.extend(secs(1)), Err(LeaseLost::Gone));
    assert_eq!(lease.nack(), Err(LeaseLost::Gone));
    // The queue works on afterwards, groups included.
    q.push_with(5, PushOptions::new().group("g")).unwrap();
    assert_eq!(*q.try_lease().unwrap(), 5);
}

#[test]
fn purging_a_closed_queue_releases_blocked_consumers() {
    let (q, _clock) = queue::<u8>();
    q.push_with(1, PushOptions::new().delay(secs(5))).unwrap();
    q.close();
    let consumer = q.clone();
    let blocked = thread::spawn(move || consumer.lease().map(|l| *l));
    until(|| q.stats().consumers_waiting == 1);
    q.purge();
    assert!(blocked.join().unwrap().is_err());
}

#[test]
fn batches_push_lease_and_settle_with_per_entry_results() {
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, clock) = super::builder::<u32>();
    let q = b.capacity(5).max_attempts(1).build().unwrap();
    let pushed = q.push_batch(0..7);
    assert_eq!(pushed.iter().filter(|r| r.is_ok()).count(), 5);
    let refused: Vec<u32> = pushed.into_iter().filter_map(|r| r.err()).map(|e| e.into_inner()).collect();
    assert_eq!(refused, [5, 6]);

    let leases = q.lease_batch(3, secs(1)).unwrap();
    assert_eq!(leases.iter().map(|l| **l).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(leases.iter().all(|l| l.attempt() == 1));
    // A stale lease in the batch fails on its own; the others succeed.
    let mut leases = leases.into_iter();
    let first = leases.next().unwrap();
    clock.advance(secs(30)); // every lease lapses; max_attempts 1: all three are dead-lettered
    let results = q.ack_batch([first].into_iter().chain(leases));
    assert!(results.iter().all(|r| *r == Err(LeaseLost::Gone)));
    assert_eq!(q.stats().dead_lettered, 3);

    let rest = q.try_lease_batch(10).unwrap();
    assert_eq!(rest.len(), 2);
    let outcomes = q.nack_batch(rest);
    assert!(outcomes.iter().all(|o| *o == Ok(leasequeue::NackOutcome::DeadLettered)));
    assert!(q.is_empty());
    assert!(q.try_lease_batch(4).unwrap_err().is_empty());
    assert!(q.lease_batch(4, std::time::Duration::ZERO).unwrap_err().is_timeout());
}

#[test]
fn a_batch_may_hold_leases_of_other_queues() {
    let (a, _clock) = queue::<u8>();
    let (b, _clock2) = queue::<u8>();
    a.push(1).unwrap();
    b.push(2).unwrap();
    let leases = vec![a.try_lease().unwrap(), b.try_lease().unwrap()];
    assert!(a.ack_batch(leases).iter().all(Result::is_ok));
    assert!(a.is_empty() && b.is_empty());
}

#[test]
fn a_closed_queue_hands_a_whole_batch_back() {
    let (q, _clock) = queue::<u8>();
    q.close();
    let results = q.push_batch([1, 2]);
    assert!(results.iter().all(|r| r.as_ref().unwrap_err().is_closed()));
}

fn dead_lettered_queue(n: u32) -> (leasequeue::Queue<u32>, leasequeue::TestClock) {
    let (q, clock) = queue::<u32>();
    for i in 0..n {
        q.push(i).unwrap();
        q.try_lease().unwrap().reject(format!("bad {i}")).unwrap();
    }
    (q, clock)
}

#[test]
fn redrive_moves_matching_dead_letters_back_with_attempts_reset() {
    let (q, _clock) = dead_lettered_queue(5);
    let report = q.redrive().matching(|d| *d.job() % 2 == 0).run();
    assert_eq!((report.moved, report.skipped, report.refused, report.cancelled), (3, 2, false, false));
    assert_eq!(q.stats().dead, 2);
    let lease = q.try_lease().unwrap();
    assert_eq!((*lease, lease.attempt()), (0, 1));
    lease.ack().unwrap();
    let report = q.redrive().limit(1).run();
    assert_eq!((report.moved, q.stats().dead), (1, 1));
}

#[test]
fn redrive_into_a_closed_queue_keeps_the_dead_letter() {
    let (q, _clock) = dead_lettered_queue(2);
    let (closed, _c) = queue::<u32>();
    closed.close();
    let report = q.redrive().to(&closed).run();
    assert_eq!((report.moved, report.refused), (0, true));
    assert_eq!(q.stats().dead, 2);
}

#[test]
fn redrive_from_a_dead_letter_queue_acks_what_it_moves_and_releases_the_rest() {
    if lacks(Needs::Sink) {
        return;
    }
    let dlq: leasequeue::Queue<leasequeue::DeadLetter<u32>> = super::new_queue();
    let (b, _clock) = super::builder::<u32>();
    let q = b.dead_letter(dlq.clone()).build().unwrap();
    for i in 0..4 {
        q.push(i).unwrap();
        q.try_lease().unwrap().reject("no").unwrap();
    }
    let report = leasequeue::Redrive::from_queue(&dlq, &q).matching(|d| *d.job() < 3).run();
    assert_eq!((report.moved, report.skipped), (3, 1));
    assert_eq!((q.len(), dlq.len()), (3, 1));
    assert_eq!(dlq.try_lease().unwrap().attempt(), 1, "the skipped one was released: no attempt spent");
}

#[test]
fn redrive_keeps_to_its_rate_on_the_queue_clock_and_can_be_cancelled() {
    let (q, clock) = dead_lettered_queue(4);
    let redrive = q.redrive().per_second(2);
    let running = thread::spawn(move || redrive.run());
    while !running.is_finished() {
        clock.advance(std::time::Duration::from_millis(500));
        thread::yield_now();
    }
    assert_eq!(running.join().unwrap().moved, 4);
    assert!(clock.elapsed() >= std::time::Duration::from_millis(1500), "4 moves at 2 per second");

    let (q, _clock) = dead_lettered_queue(4);
    let redrive = q.redrive().per_second(1);
    let cancel = redrive.canceller();
    let running = thread::spawn(move || redrive.run());
    until(|| q.stats().dead == 3); // the first move is immediate; the second waits a second of test time
    cancel.cancel();
    let report = running.join().unwrap();
    assert_eq!((report.moved, report.cancelled), (1, true));
    assert_eq!(q.stats().dead, 3);
}

#[test]
fn alarms_fire_once_per_crossing_with_hysteresis() {
    if lacks(Needs::Alarms) {
        return;
    }
    use leasequeue::{Alarm, AlarmEvent, AlarmMetric};
    use std::sync::{Arc, Mutex};
    let log: Arc<Mutex<Vec<AlarmEvent>>> = Arc::default();
    let (depth_log, dead_log, age_log) = (Arc::clone(&log), Arc::clone(&log), Arc::clone(&log));
    let (b, clock) = super::builder::<u32>();
    let q = b
        .alarm(Alarm::ready_depth(3).clear_at(1), move |e| depth_log.lock().unwrap().push(*e))
        .alarm(Alarm::dead_letters(1), move |e| dead_log.lock().unwrap().push(*e))
        .alarm(Alarm::oldest_ready_age(secs(60)), move |e| age_log.lock().unwrap().push(*e))
        .build()
        .unwrap();
    let take = |log: &Arc<Mutex<Vec<AlarmEvent>>>| -> Vec<(AlarmMetric, bool)> {
        log.lock().unwrap().drain(..).map(|e| (e.metric, e.raised)).collect()
    };
    for i in 0..5 {
        q.push(i).unwrap();
    }
    assert_eq!(take(&log), [(AlarmMetric::ReadyDepth, true)], "raised once, not at 4 and 5 again");
    q.try_lease().unwrap().ack().unwrap();
    q.try_lease().unwrap().ack().unwrap();
    q.push(9).unwrap(); // back to 4: still raised, nothing new
    assert!(take(&log).is_empty());
    clock.advance(secs(60)); // jobs have waited a minute, on the test clock
    assert_eq!(take(&log), [(AlarmMetric::OldestReadyAge, true)]);
    q.try_lease().unwrap().reject("poison").unwrap();
    assert_eq!(take(&log), [(AlarmMetric::DeadLetters, true)]);
    for _ in 0..2 {
        q.try_lease().unwrap().ack().unwrap();
    }
    assert_eq!(take(&log), [(AlarmMetric::ReadyDepth, false)]);
    q.drain_dead_letters();
    q.try_lease().unwrap().ack().unwrap();
    assert_eq!(take(&log), [(AlarmMetric::DeadLetters, false), (AlarmMetric::OldestReadyAge, false)]);
}

#[test]
fn redrive_over_a_large_store_moves_exactly_the_matching_ones() {
    let (q, _clock) = dead_lettered_queue(2000);
    let report = q.redrive().matching(|d| *d.job() % 2 == 0).limit(600).run();
    assert_eq!((report.moved, report.skipped), (600, 599));
    let left: Vec<u32> = q.dead_letters().iter().map(|d| *d.job()).collect();
    assert_eq!(left.len(), 1400);
    assert!(left.windows(2).all(|w| w[0] < w[1]), "the store keeps its order");
    let moved: Vec<u32> = q.try_lease_batch(1000).unwrap().iter().map(|l| **l).collect();
    assert_eq!(moved, (0..1200).step_by(2).collect::<Vec<_>>());
}

#[test]
fn an_alarm_threshold_of_zero_is_refused() {
    let err = super::store::<u8>()
        .alarm(leasequeue::Alarm::ready_depth(0), |_| ())
        .build()
        .unwrap_err();
    assert_eq!(err.option(), "alarm");
    let err = super::store::<u8>()
        .alarm(leasequeue::Alarm::dead_letters(0), |_| ())
        .build()
        .unwrap_err();
    assert_eq!(err.option(), "alarm");
}
