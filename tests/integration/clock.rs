use std::thread;
use std::time::Duration;

use leasequeue::{Clock, PushOptions, Queue, TestClock};

use super::{queue, secs, until};

#[test]
fn a_test_clock_moves_only_when_advanced_and_clones_share_it() {
    let clock = TestClock::new();
    let copy = clock.clone();
    let start = clock.now();
    assert_eq!(clock.now(), start);
    copy.advance(secs(3));
    assert_eq!(clock.now() - start, secs(3));
    assert_eq!(Clock::from(&clock).now(), clock.now());
    clock.advance_to(start); // the past: no-op
    assert_eq!(clock.elapsed(), secs(3));
}

#[test]
fn a_blocked_lease_is_woken_by_advance() {
    let (q, clock) = queue();
    q.push_with("in an hour", PushOptions::new().delay(secs(3600))).unwrap();
    let consumer = q.clone();
    let blocked = thread::spawn(move || {
        let lease = consumer.lease().unwrap();
        let job = *lease;
        lease.ack().unwrap();
        job
    });
    until(|| q.stats().consumers_waiting == 1);
    clock.advance(secs(3600));
    assert_eq!(blocked.join().unwrap(), "in an hour");
}

#[test]
fn a_blocked_lease_is_woken_by_a_lapse() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let held = q.try_lease().unwrap();
    let consumer = q.clone();
    let blocked = thread::spawn(move || consumer.lease().map(|l| l.attempt()));
    until(|| q.stats().consumers_waiting == 1);
    clock.advance(secs(30));
    assert_eq!(blocked.join().unwrap(), Ok(2));
    drop(held);
}

#[test]
fn lease_timeouts_are_measured_on_the_test_clock() {
    let (q, clock) = queue::<u8>();
    let deadline = clock.now() + secs(36_000); // on the real clock this would hang
    let consumer = q.clone();
    let blocked = thread::spawn(move || consumer.lease_deadline(deadline).map(|l| *l));
    until(|| q.stats().consumers_waiting == 1);
    clock.advance(secs(35_999));
    assert!(!blocked.is_finished());
    clock.advance(secs(1));
    assert!(blocked.join().unwrap().unwrap_err().is_timeout());
}

#[test]
fn advancing_a_clock_reaches_every_queue_on_it() {
    let clock = TestClock::new();
    let queues: Vec<Queue<u8>> =
        (0..3).map(|_| super::store().clock(clock.clone()).build().unwrap()).collect();
    for q in &queues {
        q.push_with(1, PushOptions::new().delay(secs(1))).unwrap();
    }
    clock.advance(secs(1));
    assert!(queues.iter().all(|q| q.stats().ready == 1));
    drop(queues);
    clock.advance(secs(1)); // dropped queues are forgotten, not called
}

#[test]
fn the_system_clock_is_the_default() {
    let q = super::new_queue::<u8>();
    assert!(!q.clock().is_manual());
    q.push_with(1, PushOptions::new().delay(Duration::from_millis(20))).unwrap();
    // A real, short wait: the job becomes ready on the system clock and wakes the blocked lease.
    assert_eq!(*q.lease().unwrap(), 1);
}

#[test]
fn auto_advance_waits_while_another_queue_on_the_clock_is_busy() {
    let clock = TestClock::auto_advancing();
    let busy: Queue<&str> =
        super::store().clock(clock.clone()).visibility_timeout(secs(30)).build().unwrap();
    let idle: Queue<&str> = super::store().clock(clock.clone()).build().unwrap();
    busy.push("running").unwrap();
    let lease = busy.try_lease().unwrap(); // a worker is busy with it
    idle.push_with("in an hour", PushOptions::new().delay(secs(3600))).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let consumer = idle.clone();
    thread::spawn(move || tx.send(consumer.lease().map(|l| *l)).unwrap());
    // The consumer blocks instead of jumping an hour, which would lapse the busy queue's lease.
    until(|| idle.stats().consumers_waiting == 1 || clock.elapsed() > Duration::ZERO);
    assert_eq!(clock.elapsed(), Duration::ZERO);
    lease.ack().unwrap(); // now every queue is quiet: the consumer jumps
    assert_eq!(rx.recv_timeout(secs(10)).unwrap().unwrap(), "in an hour");
    assert_eq!(clock.elapsed(), secs(3600));
    assert_eq!(busy.stats().lapsed, 0);
}

#[test]
fn auto_advance_jumps_to_the_earliest_event_of_every_queue_on_the_clock() {
    let clock = TestClock::auto_advancing();
    let soon: Queue<&str> = super::store().clock(clock.clone()).build().unwrap();
    let later: Queue<&str> = super::store().clock(clock.clone()).build().unwrap();
    soon.push_with("in a minute", PushOptions::new().delay(secs(60))).unwrap();
    later.push_with("in an hour", PushOptions::new().delay(secs(3600))).unwrap();
    let (soon_clock, soon_queue) = (clock.clone(), soon.clone());
    let first = thread::spawn(move || {
        let lease = soon_queue.lease().unwrap();
        let at = soon_clock.elapsed();
        lease.ack().unwrap();
        at
    });
    // The later queue's consumer does not jump past the other queue's event: it waits for it to be done.
    let lease = later.lease().unwrap();
    assert_eq!(first.join().unwrap(), secs(60));
    assert_eq!((*lease, clock.elapsed()), ("in an hour", secs(3600)));
    lease.ack().unwrap();
}
