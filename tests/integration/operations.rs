//! Operating a queue: pause and resume, purge, batches, redrive, alarms.

use std::thread;

use leasequeue::{LeaseLost, PushOptions};

use crate::{queue, secs, until};

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
