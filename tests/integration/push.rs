use std::thread;
use std::time::Duration;

use leasequeue::{PushOptions, Queue};

use super::{builder, lacks, queue, secs, until, Needs};

#[test]
fn first_deliveries_come_out_in_push_order() {
    let (q, _clock) = queue();
    for i in 0..100 {
        q.push(i).unwrap();
    }
    let order: Vec<u32> = (0..100)
        .map(|_| {
            let lease = q.try_lease().unwrap();
            let job = *lease;
            lease.ack().unwrap();
            job
        })
        .collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>());
}

#[test]
fn ids_are_unique_and_increasing() {
    let (q, _clock) = queue();
    let ids: Vec<_> = (0..10).map(|i| q.push(i).unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_delayed_push_becomes_ready_when_its_time_comes() {
    let (q, clock) = queue();
    q.push_with("later", PushOptions::new().delay(secs(60))).unwrap();
    q.push("now").unwrap();
    assert_eq!(q.stats().delayed, 1);
    let now = q.try_lease().unwrap();
    assert_eq!(*now, "now");
    now.ack().unwrap();
    clock.advance(secs(59));
    assert!(q.try_lease().is_err());
    clock.advance(secs(1));
    let lease = q.try_lease().unwrap();
    assert_eq!((*lease, lease.attempt()), ("later", 1));
}

#[test]
fn ready_at_in_the_past_is_ready_at_once() {
    let (q, clock) = queue();
    clock.advance(secs(100));
    q.push_with(1, PushOptions::new().ready_at(clock.now() - secs(50))).unwrap();
    q.try_lease().unwrap().ack().unwrap();
}

#[test]
fn delayed_jobs_come_out_in_due_order() {
    let (q, clock) = queue();
    for (job, delay) in [(1, 30), (2, 10), (3, 20), (4, 10)] {
        q.push_with(job, PushOptions::new().delay(secs(delay))).unwrap();
    }
    clock.advance(secs(30));
    let order: Vec<u32> = (0..4).map(|_| *q.try_lease().unwrap()).collect();
    assert_eq!(order, [2, 4, 3, 1]);
}

#[test]
fn close_then_drain() {
    let (q, clock) = queue();
    q.push(1).unwrap();
    q.push_with(2, PushOptions::new().delay(secs(5))).unwrap();
    q.close();
    assert!(q.is_closed());
    assert_eq!(q.push(3).unwrap_err().into_inner(), 3);
    assert!(q.try_push(4).unwrap_err().is_closed());
    q.lease().unwrap().ack().unwrap();
    // A delayed job keeps a closed queue open for leasing.
    assert!(q.try_lease().unwrap_err().is_empty());
    clock.advance(secs(5));
    q.lease().unwrap().ack().unwrap();
    assert!(q.lease().is_err());
    assert!(q.try_lease().unwrap_err().is_closed());
    assert!(q.lease_timeout(Duration::MAX).unwrap_err().is_closed());
}

#[test]
fn a_blocked_lease_returns_closed_when_the_last_job_leaves() {
    let (q, _clock) = queue::<u8>();
    q.push(1).unwrap();
    let held = q.try_lease().unwrap();
    q.close();
    let consumer = q.clone();
    let blocked = thread::spawn(move || consumer.lease().map(|l| *l));
    until(|| q.stats().consumers_waiting == 1);
    held.ack().unwrap();
    assert!(blocked.join().unwrap().is_err());
}

#[test]
fn a_bounded_queue_applies_backpressure() {
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, _clock) = builder();
    let q: Queue<u32> = b.capacity(2).build().unwrap();
    q.push(1).unwrap();
    q.push_with(2, PushOptions::new().delay(secs(10))).unwrap(); // delayed jobs count too
    assert!(q.try_push(3).unwrap_err().is_full());
    let producer = q.clone();
    let blocked = thread::spawn(move || producer.push(3));
    until(|| q.stats().producers_waiting == 1);
    let lease = q.try_lease().unwrap();
    assert!(q.try_push(4).unwrap_err().is_full()); // leased jobs count too
    lease.ack().unwrap();
    blocked.join().unwrap().unwrap();
    assert_eq!(q.len(), 2);
}

#[test]
fn blocked_producers_all_get_in_as_room_appears_however_it_appears() {
    // Blocked producers are woken one at a time, each passing the turn on while there is room: room made
    // all at once (a purge) or one slot at a time (acks) lets every one of them in.
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, _clock) = builder();
    let q: Queue<u32> = b.capacity(2).build().unwrap();
    q.push_batch([0, 0]);
    let producers: Vec<_> = (1..=6)
        .map(|i| {
            let producer = q.clone();
            thread::spawn(move || producer.push(i))
        })
        .collect();
    until(|| q.stats().producers_waiting == 6);
    assert_eq!(q.purge(), 2);
    // Two get in at once; the others wait for room again.
    until(|| q.len() == 2 && q.stats().producers_waiting == 4);
    let mut got = Vec::new();
    while got.len() < 6 {
        let lease = q.lease().unwrap();
        got.push(*lease);
        lease.ack().unwrap();
    }
    for producer in producers {
        producer.join().unwrap().unwrap();
    }
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3, 4, 5, 6]);
    assert!(q.is_empty());
}

#[test]
fn push_timeout_times_out_on_the_test_clock() {
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, clock) = builder();
    let q: Queue<u32> = b.capacity(1).build().unwrap();
    q.push(1).unwrap();
    // Ten hours: measured on the real clock instead, this test would hang.
    let deadline = clock.now() + secs(36_000);
    let producer = q.clone();
    let blocked = thread::spawn(move || producer.push_deadline(2, deadline));
    until(|| q.stats().producers_waiting == 1);
    clock.advance(secs(35_999));
    assert!(!blocked.is_finished());
    clock.advance(secs(1));
    let err = blocked.join().unwrap().unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.into_inner(), 2);
}

#[test]
fn a_closed_queue_wakes_blocked_producers() {
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, _clock) = builder();
    let q: Queue<u32> = b.capacity(1).build().unwrap();
    q.push(1).unwrap();
    let producer = q.clone();
    let blocked = thread::spawn(move || producer.push_timeout(2, Duration::MAX));
    q.close();
    let err = blocked.join().unwrap().unwrap_err();
    assert!(err.is_closed());
    assert_eq!(err.into_inner(), 2);
}

#[test]
fn duration_max_timeouts_wait_forever_without_panicking() {
    let (q, _clock) = queue::<u32>();
    q.push_timeout(1, Duration::MAX).unwrap();
    q.lease_timeout(Duration::MAX).unwrap().ack().unwrap();
    let consumer = q.clone();
    let blocked = thread::spawn(move || consumer.lease_timeout(Duration::MAX).map(|l| *l));
    until(|| q.stats().consumers_waiting == 1);
    q.push(2).unwrap();
    assert_eq!(blocked.join().unwrap().unwrap(), 2);
    // On the system clock too.
    let q = super::new_queue();
    q.push_timeout(3, Duration::MAX).unwrap();
    assert_eq!(*q.lease_timeout(Duration::MAX).unwrap(), 3);
    q.push_with(4, PushOptions::new().delay(Duration::MAX)).unwrap();
    assert!(q.lease_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
}

#[test]
fn len_and_stats_count_every_state() {
    let (q, _clock) = queue();
    q.push(1).unwrap();
    q.push(2).unwrap();
    q.push_with(3, PushOptions::new().delay(secs(1))).unwrap();
    let lease = q.try_lease().unwrap();
    let stats = q.stats();
    assert_eq!((stats.ready, stats.delayed, stats.leased, stats.pushed), (1, 1, 1, 3));
    assert_eq!(q.len(), 3);
    assert!(!q.is_empty());
    lease.ack().unwrap();
    assert_eq!(q.len(), 2);
}

#[test]
fn oldest_ready_age_follows_the_clock() {
    let (q, clock) = queue();
    assert_eq!(q.stats().oldest_ready_age, None);
    q.push(1).unwrap();
    clock.advance(secs(5));
    q.push(2).unwrap();
    clock.advance(secs(2));
    assert_eq!(q.stats().oldest_ready_age, Some(secs(7)));
    q.try_lease().unwrap().ack().unwrap();
    assert_eq!(q.stats().oldest_ready_age, Some(secs(2)));
}

#[test]
fn invalid_configuration_is_an_error_not_a_panic() {
    assert_eq!(super::store::<u8>().capacity(0).build().unwrap_err().option(), "capacity");
    assert_eq!(super::store::<u8>().max_attempts(0).build().unwrap_err().option(), "max_attempts");
    let err = super::store::<u8>().visibility_timeout(Duration::ZERO).build().unwrap_err();
    assert_eq!(err.option(), "visibility_timeout");
    assert!(format!("{:?}", super::store::<u8>()).contains("max_attempts: 10"));
}

#[test]
fn debug_shows_useful_numbers() {
    let (q, _clock) = queue();
    q.push(1).unwrap();
    let text = format!("{q:?}");
    assert!(text.contains("ready: 1"), "{text}");
}
