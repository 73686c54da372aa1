//! Priorities, groups, deduplication, time to live and overflow policies.

use std::time::Duration;

use leasequeue::{DeadLetterReason, Overflow, PushOptions, Pushed, Queue};

use super::{builder, lacks, queue, secs, Needs};

fn take<T: Copy + Send + Sync + 'static>(q: &Queue<T>) -> T {
    let lease = q.try_lease().unwrap();
    let job = *lease;
    lease.ack().unwrap();
    job
}

fn prio(p: u8) -> PushOptions {
    PushOptions::new().priority(p)
}

fn group(key: &str) -> PushOptions {
    PushOptions::new().group(key)
}

// ----- priorities -----

#[test]
fn priorities_are_strict_between_levels_and_fifo_within_one() {
    let (q, _clock) = queue();
    for (job, p) in [(1, 0), (2, 3), (3, 7), (4, 3), (5, 0), (6, 7)] {
        q.push_with(job, prio(p)).unwrap();
    }
    let order: Vec<u32> = (0..6).map(|_| take(&q)).collect();
    assert_eq!(order, [3, 6, 2, 4, 1, 5]);
}

#[test]
fn a_retry_keeps_its_priority() {
    let (q, clock) = queue();
    q.push_with(1, prio(5)).unwrap();
    q.try_lease().unwrap().nack().unwrap();
    q.push(2).unwrap();
    clock.advance(secs(10));
    assert_eq!(take(&q), 1, "the retried high-priority job goes first");
}

#[test]
fn priorities_above_the_maximum_are_the_maximum() {
    let (q, _clock) = queue();
    q.push_with(1, prio(PushOptions::MAX_PRIORITY)).unwrap();
    q.push_with(2, prio(u8::MAX)).unwrap();
    assert_eq!([take(&q), take(&q)], [1, 2], "same level: FIFO");
}

// ----- groups -----

#[test]
fn a_group_delivers_one_job_at_a_time_in_push_order() {
    let (q, _clock) = queue();
    for job in 1..=3 {
        q.push_with(job, group("account-9")).unwrap();
    }
    q.push(100).unwrap();
    q.push_with(200, group("account-5")).unwrap();
    let first = q.try_lease().unwrap();
    assert_eq!(*first, 1);
    // Other groups and ungrouped jobs go on; the group's next job waits.
    assert_eq!([take(&q), take(&q)], [100, 200]);
    assert!(q.try_lease().unwrap_err().is_empty());
    let stats = q.stats();
    assert_eq!((stats.waiting, stats.delayed, stats.leased), (2, 2, 1));
    first.ack().unwrap();
    assert_eq!([take(&q), take(&q)], [2, 3]);
    assert!(q.is_empty());
}

#[test]
fn a_backing_off_job_holds_its_group() {
    let (q, clock) = queue();
    q.push_with(1, group("g")).unwrap();
    q.push_with(2, group("g")).unwrap();
    q.try_lease().unwrap().nack().unwrap();
    assert!(q.try_lease().is_err(), "job 2 waits while job 1 backs off");
    clock.advance(secs(10));
    assert_eq!(take(&q), 1);
    assert_eq!(take(&q), 2);
}

#[test]
fn a_lapsed_lease_keeps_its_group_and_redelivers_the_head() {
    let (q, clock) = queue();
    q.push_with(1, group("g")).unwrap();
    q.push_with(2, group("g")).unwrap();
    let lapsed = q.try_lease().unwrap();
    clock.advance(secs(30));
    let again = q.try_lease().unwrap();
    assert_eq!((*again, again.attempt()), (1, 2));
    drop(lapsed);
    again.ack().unwrap();
    assert_eq!(take(&q), 2);
}

#[test]
fn dead_lettering_a_job_unblocks_its_group() {
    let (q, _clock) = queue();
    q.push_with(1, group("g")).unwrap();
    q.push_with(2, group("g")).unwrap();
    q.try_lease().unwrap().reject("poison").unwrap();
    assert_eq!(take(&q), 2);
    assert_eq!(q.stats().dead_lettered, 1);
}

#[test]
fn a_waiting_job_keeps_its_own_ready_time() {
    let (q, clock) = queue();
    q.push_with(1, group("g")).unwrap();
    q.push_with(2, group("g").delay(secs(60))).unwrap();
    take(&q);
    assert!(q.try_lease().is_err(), "promoted, but not due yet");
    assert_eq!(q.stats().delayed, 1);
    clock.advance(secs(60));
    assert_eq!(take(&q), 2);
}

#[test]
fn releasing_the_head_keeps_the_group_order() {
    let (q, _clock) = queue();
    q.push_with(1, group("g")).unwrap();
    q.push_with(2, group("g")).unwrap();
    q.try_lease().unwrap().release().unwrap();
    assert_eq!([take(&q), take(&q)], [1, 2]);
}

// ----- deduplication -----

#[test]
fn a_duplicate_within_the_window_is_accepted_but_not_enqueued() {
    let (q, clock) = queue();
    let dedup = || PushOptions::new().dedup_key("order-42");
    let first = q.push_with("charge", dedup()).unwrap();
    assert!(matches!(first, Pushed::Enqueued(_)));
    clock.advance(Duration::from_secs(299));
    assert_eq!(q.push_with("charge", dedup()).unwrap(), Pushed::Duplicate(first.id()));
    assert_eq!(q.try_push_with("charge", dedup()).unwrap(), Pushed::Duplicate(first.id()));
    let stats = q.stats();
    assert_eq!((stats.len(), stats.pushed, stats.deduplicated), (1, 1, 2));
    // Still reserved after the job is done, until the window ends (as SQS).
    take(&q);
    assert!(q.push_with("charge", dedup()).unwrap().is_duplicate());
    clock.advance(secs(1));
    let again = q.push_with("charge", dedup()).unwrap();
    assert!(!again.is_duplicate());
    assert_ne!(again.id(), first.id());
}

#[test]
fn the_dedup_window_is_configurable_and_keys_are_independent() {
    let (b, clock) = builder::<u8>();
    let q = b.dedup_window(secs(10)).build().unwrap();
    q.push_with(1, PushOptions::new().dedup_key("a")).unwrap();
    assert!(!q.push_with(2, PushOptions::new().dedup_key("b")).unwrap().is_duplicate());
    clock.advance(secs(10));
    assert!(!q.push_with(3, PushOptions::new().dedup_key("a")).unwrap().is_duplicate());
}

// ----- time to live -----

#[test]
fn a_job_past_its_ttl_is_dead_lettered_and_never_delivered() {
    let (q, clock) = queue();
    let id = q.push_with(1, PushOptions::new().ttl(secs(60)).delay(secs(30))).unwrap().id();
    clock.advance(secs(59));
    assert_eq!(q.stats().len(), 1);
    clock.advance(secs(1));
    assert!(q.try_lease().is_err());
    let dead = q.drain_dead_letters();
    assert_eq!((dead[0].id(), dead[0].reason()), (id, DeadLetterReason::Expired));
    assert_eq!(dead[0].dead_lettered_at() - dead[0].pushed_at(), secs(60));
    assert!(q.is_empty());
}

#[test]
fn the_lower_of_the_queue_and_job_ttl_wins() {
    let (b, clock) = builder::<u8>();
    let q = b.ttl(secs(100)).build().unwrap();
    q.push(1).unwrap();
    q.push_with(2, PushOptions::new().ttl(secs(10))).unwrap();
    q.push_with(3, PushOptions::new().ttl(secs(1000))).unwrap();
    clock.advance(secs(10));
    assert_eq!(q.stats().len(), 2);
    clock.advance(secs(90));
    assert!(q.is_empty());
    let reasons: Vec<_> = q.drain_dead_letters().iter().map(|d| (*d.job(), d.reason())).collect();
    assert_eq!(
        reasons,
        [(2, DeadLetterReason::Expired), (1, DeadLetterReason::Expired), (3, DeadLetterReason::Expired)]
    );
}

#[test]
fn a_job_whose_ttl_passes_while_leased_is_not_delivered_again() {
    let (q, clock) = queue();
    q.push_with(1, PushOptions::new().ttl(secs(20))).unwrap();
    let lease = q.try_lease().unwrap();
    clock.advance(secs(20));
    assert_eq!(q.stats().leased, 1, "the running attempt keeps its lease");
    lease.nack().unwrap();
    assert_eq!(q.drain_dead_letters()[0].reason(), DeadLetterReason::Expired);
    // An ack is still accepted.
    q.push_with(2, PushOptions::new().ttl(secs(20))).unwrap();
    let lease = q.try_lease().unwrap();
    clock.advance(secs(25));
    lease.ack().unwrap();
    assert_eq!(q.stats().acked, 1);
    // And a lapse dead-letters it instead of redelivering.
    q.push_with(3, PushOptions::new().ttl(secs(20))).unwrap();
    let _held = q.try_lease().unwrap();
    clock.advance(secs(30));
    assert!(q.try_lease().is_err());
    assert_eq!(q.drain_dead_letters()[0].reason(), DeadLetterReason::Expired);
}

#[test]
fn an_expired_group_head_unblocks_its_group_and_a_waiting_job_can_expire() {
    let (q, clock) = queue();
    q.push_with(1, group("g").ttl(secs(10)).delay(secs(100))).unwrap();
    q.push_with(2, group("g")).unwrap();
    q.push_with(3, group("g").ttl(secs(5))).unwrap();
    clock.advance(secs(10));
    assert_eq!(take(&q), 2, "job 1 expired and job 3 expired while waiting");
    let dead: Vec<u32> = q.drain_dead_letters().iter().map(|d| *d.job()).collect();
    assert_eq!(dead, [3, 1]);
    assert!(q.is_empty());
}

// ----- overflow -----

#[test]
fn reject_new_fails_every_push_at_once() {
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, _clock) = builder::<u8>();
    let q = b.capacity(1).overflow(Overflow::RejectNew).build().unwrap();
    q.push(1).unwrap();
    assert_eq!(q.push(2).unwrap_err().into_inner(), 2);
    assert!(q.try_push(3).unwrap_err().is_full());
    assert!(q.push_timeout(4, Duration::MAX).unwrap_err().is_full());
    assert_eq!(q.len(), 1);
}

#[test]
fn drop_oldest_dead_letters_the_oldest_ready_job_of_the_lowest_level() {
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, _clock) = builder::<u8>();
    let q = b.capacity(3).overflow(Overflow::DropOldest).build().unwrap();
    q.push_with(1, prio(1)).unwrap();
    q.push_with(2, prio(0)).unwrap();
    q.push_with(3, prio(0)).unwrap();
    q.push_with(4, prio(2)).unwrap();
    let dead = q.drain_dead_letters();
    assert_eq!((*dead[0].job(), dead[0].reason()), (2, DeadLetterReason::Overflow));
    assert_eq!([take(&q), take(&q), take(&q)], [4, 1, 3]);
}

#[test]
fn drop_oldest_waits_when_nothing_is_ready() {
    if lacks(Needs::Capacity) {
        return;
    }
    let (b, _clock) = builder::<u8>();
    let q = b.capacity(1).overflow(Overflow::DropOldest).build().unwrap();
    q.push(1).unwrap();
    let lease = q.try_lease().unwrap();
    assert!(q.try_push(2).unwrap_err().is_full(), "a leased job is never dropped");
    lease.ack().unwrap();
    q.try_push(2).unwrap();
}

#[test]
fn first_deliveries_come_in_the_order_jobs_became_ready() {
    let (q, clock) = queue::<&str>();
    q.push_with("due at 10 s", PushOptions::new().delay(secs(10))).unwrap();
    clock.advance(secs(5));
    q.push("pushed at 5 s").unwrap();
    clock.advance(secs(6));
    q.push("pushed at 11 s").unwrap();
    q.push_with("grouped, first", PushOptions::new().group("g")).unwrap();
    q.push_with("grouped, second", PushOptions::new().group("g")).unwrap();
    q.push("pushed at 11 s, after the group").unwrap();
    let mut order = Vec::new();
    while let Ok(lease) = q.try_lease() {
        order.push(*lease);
        lease.ack().unwrap(); // the group's second job becomes ready now, behind the others
    }
    assert_eq!(
        order,
        [
            "pushed at 5 s",
            "due at 10 s",
            "pushed at 11 s",
            "grouped, first",
            "pushed at 11 s, after the group",
            "grouped, second"
        ]
    );
}
