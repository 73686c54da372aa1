use std::time::Duration;

use leasequeue::{DeadLetterReason, FailureKind, LeaseLost, NackOutcome};

use super::{queue, secs};

#[test]
fn ack_removes_the_job() {
    let (q, _clock) = queue();
    let id = q.push("a").unwrap();
    let lease = q.try_lease().unwrap();
    assert_eq!((lease.id(), lease.attempt(), *lease), (id, 1, "a"));
    assert_eq!(q.stats().leased, 1);
    lease.ack().unwrap();
    let stats = q.stats();
    assert_eq!((stats.acked, stats.len()), (1, 0));
    assert!(q.try_lease().unwrap_err().is_empty());
}

#[test]
fn a_leased_job_is_hidden_from_other_consumers() {
    let (q, _clock) = queue();
    q.push(1).unwrap();
    let lease = q.try_lease().unwrap();
    assert!(q.try_lease().unwrap_err().is_empty());
    lease.ack().unwrap();
}

#[test]
fn nack_retries_after_the_backoff_with_the_next_attempt() {
    let (q, clock) = queue();
    q.push(1).unwrap();
    let start = clock.now();
    let outcome = q.try_lease().unwrap().nack().unwrap();
    assert_eq!(outcome, NackOutcome::Retrying { at: start + secs(10) });
    assert_eq!(q.stats().delayed, 1);
    clock.advance(secs(10) - Duration::from_nanos(1));
    assert!(q.try_lease().is_err());
    clock.advance(Duration::from_nanos(1));
    let lease = q.try_lease().unwrap();
    assert_eq!(lease.attempt(), 2);
    lease.ack().unwrap();
    assert_eq!(q.stats().nacked, 1);
}

#[test]
fn nack_after_uses_the_given_delay() {
    let (q, clock) = queue();
    q.push(1).unwrap();
    let outcome = q.try_lease().unwrap().nack_after("429", secs(120)).unwrap();
    assert_eq!(outcome, NackOutcome::Retrying { at: clock.now() + secs(120) });
    clock.advance(secs(119));
    assert!(q.try_lease().is_err());
    clock.advance(secs(1));
    q.try_lease().unwrap().ack().unwrap();
}

#[test]
fn reject_dead_letters_at_once_with_its_description() {
    let (q, _clock) = queue();
    let id = q.push("corrupt").unwrap();
    q.try_lease().unwrap().reject("not a video").unwrap();
    let dead = q.drain_dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id(), dead[0].reason(), dead[0].attempts()), (id, DeadLetterReason::Rejected, 1));
    assert_eq!(dead[0].history()[0].kind, FailureKind::Rejected);
    assert_eq!(dead[0].history()[0].message.as_deref(), Some("not a video"));
    assert_eq!(q.stats().rejected, 1);
    assert!(q.is_empty());
}

#[test]
fn release_does_not_spend_the_attempt() {
    let (q, _clock) = queue::<u8>();
    q.push(1).unwrap();
    for _ in 0..10 {
        let lease = q.try_lease().unwrap();
        assert_eq!(lease.attempt(), 1);
        lease.release().unwrap();
    }
    assert_eq!(q.stats().released, 10);
    assert_eq!(q.stats().ready, 1);
}

#[test]
fn release_after_delays_the_job() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    q.try_lease().unwrap().release_after(secs(5)).unwrap();
    assert_eq!(q.stats().delayed, 1);
    clock.advance(secs(5));
    assert_eq!(q.try_lease().unwrap().attempt(), 1);
}

#[test]
fn drop_counts_as_nack() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    drop(q.try_lease().unwrap());
    let stats = q.stats();
    assert_eq!((stats.nacked, stats.delayed), (1, 1));
    clock.advance(secs(10));
    let lease = q.try_lease().unwrap();
    assert_eq!(lease.attempt(), 2);
    lease.reject("give up").unwrap();
    let dead = q.drain_dead_letters();
    assert_eq!(dead[0].history()[0].kind, FailureKind::Dropped);
}

#[test]
fn a_panicking_worker_does_not_lose_its_job() {
    let (q, _clock) = queue::<u8>();
    q.push(1).unwrap();
    let consumer = q.clone();
    let result = std::thread::spawn(move || {
        let _lease = consumer.try_lease().unwrap();
        panic!("handler bug");
    })
    .join();
    assert!(result.is_err());
    let stats = q.stats();
    assert_eq!((stats.nacked, stats.delayed, stats.leased), (1, 1, 0));
}

#[test]
fn extend_is_measured_from_now_and_can_shorten() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let mut lease = q.try_lease().unwrap();
    clock.advance(secs(20));
    lease.extend(secs(30)).unwrap();
    assert_eq!(lease.deadline(), clock.now() + secs(30));
    clock.advance(secs(29));
    assert_eq!(q.stats().leased, 1);
    lease.extend(secs(5)).unwrap(); // shorten
    clock.advance(secs(5));
    assert_eq!(q.stats().ready, 1);
    assert_eq!(q.stats().lapsed, 1);
    lease.ack().unwrap(); // lapsed, but still current: accepted
    assert!(q.is_empty());
}

#[test]
fn extend_to_zero_lapses_at_once() {
    let (q, _clock) = queue::<u8>();
    q.push(1).unwrap();
    let mut lease = q.try_lease().unwrap();
    lease.extend(Duration::ZERO).unwrap();
    assert!(lease.is_lapsed());
    let stats = q.stats();
    assert_eq!((stats.lapsed, stats.ready), (1, 1));
    let next = q.try_lease().unwrap();
    assert_eq!(next.attempt(), 2);
    assert_eq!(lease.ack(), Err(LeaseLost::Superseded { attempt: 2 }));
    next.ack().unwrap();
}

#[test]
fn extend_with_duration_max_does_not_panic() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let mut lease = q.try_lease().unwrap();
    lease.extend(Duration::MAX).unwrap();
    clock.advance(secs(1_000_000_000));
    assert_eq!(q.stats().leased, 1);
    lease.ack().unwrap();
}

#[test]
fn extend_of_a_lapsed_current_lease_takes_the_job_back() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let mut lease = q.try_lease().unwrap();
    clock.advance(secs(30));
    assert_eq!(q.stats().ready, 1);
    lease.extend(secs(30)).unwrap();
    let stats = q.stats();
    assert_eq!((stats.ready, stats.leased, stats.lapsed), (0, 1, 1));
    assert!(q.try_lease().is_err());
    lease.ack().unwrap();
}

/// Every outcome of a stale lease is refused with the right error and changes nothing.
#[test]
fn stale_leases_are_fenced() {
    type Outcome = fn(leasequeue::Lease<u8>) -> Result<(), LeaseLost>;
    let outcomes: [(&str, Outcome); 6] = [
        ("ack", |l| l.ack()),
        ("nack", |l| l.nack().map(drop)),
        ("nack_with", |l| l.nack_with("late").map(drop)),
        ("reject", |l| l.reject("late")),
        ("release", |l| l.release()),
        ("extend", |mut l| l.extend(secs(100))),
    ];
    for (name, outcome) in outcomes {
        let (q, clock) = queue::<u8>();
        q.push(1).unwrap();
        let stale = q.try_lease().unwrap();
        clock.advance(secs(30));
        let current = q.try_lease().unwrap();
        let before = q.stats();
        assert_eq!(outcome(stale), Err(LeaseLost::Superseded { attempt: 2 }), "{name}");
        assert_eq!(q.stats(), before, "{name} changed the queue");
        assert_eq!(current.attempt(), 2);
        current.ack().unwrap();
    }
}

#[test]
fn a_lease_of_a_job_that_left_is_gone() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let first = q.try_lease().unwrap();
    clock.advance(secs(30));
    let second = q.try_lease().unwrap();
    second.ack().unwrap();
    q.push(2).unwrap(); // may reuse the freed slot
    let before = q.stats();
    assert_eq!(first.nack(), Err(LeaseLost::Gone));
    assert_eq!(q.stats(), before);
}

#[test]
fn a_late_ack_is_accepted_while_nobody_else_holds_the_job() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let lease = q.try_lease().unwrap();
    clock.advance(secs(31));
    assert!(lease.is_lapsed());
    assert_eq!(q.stats().ready, 1); // the lapse made it ready again
    lease.ack().unwrap();
    let stats = q.stats();
    assert_eq!((stats.acked, stats.lapsed, stats.len()), (1, 1, 0));
}

#[test]
fn a_late_nack_backs_off_without_counting_the_attempt_twice() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let lease = q.try_lease().unwrap();
    clock.advance(secs(30));
    lease.nack_with("slow smtp").unwrap();
    assert_eq!(q.stats().delayed, 1);
    clock.advance(secs(10));
    let lease = q.try_lease().unwrap();
    assert_eq!(lease.attempt(), 2);
    lease.reject("stop").unwrap();
    let dead = q.drain_dead_letters();
    let history = dead[0].history();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].kind, history[0].message.as_deref()), (FailureKind::Lapsed, Some("slow smtp")));
}

#[test]
fn lease_reports_its_deadline_on_the_queue_clock() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let lease = q.try_lease().unwrap();
    assert_eq!(lease.deadline(), clock.now() + secs(30));
    assert!(format!("{lease:?}").contains("attempt: 1"));
    lease.ack().unwrap();
}

#[test]
fn ack_and_try_lease_settles_and_takes_the_next_job_or_changes_nothing_when_stale() {
    let (queue, clock) = queue::<u32>();
    queue.push_batch([1, 2]);
    let first = queue.try_lease().unwrap();
    let second = first.ack_and_try_lease().unwrap().expect("a job was ready");
    assert_eq!((*second, queue.stats().acked, queue.stats().leased), (2, 1, 1));
    // A stale lease settles nothing and takes nothing.
    clock.advance(secs(31));
    let again = queue.try_lease().unwrap();
    assert_eq!((*again, again.attempt()), (2, 2), "the lapsed job is leased again");
    queue.push(3).unwrap();
    let stale = second.ack_and_try_lease();
    assert!(matches!(stale, Err(leasequeue::LeaseLost::Superseded { .. })), "{stale:?}");
    assert_eq!((queue.stats().acked, queue.stats().leased, queue.stats().ready), (1, 1, 1));
    // The current lease: acked, and job 3 taken; then nothing is ready: acked, and no lease.
    let third = again.ack_and_try_lease().unwrap().expect("job 3 was ready");
    assert_eq!(*third, 3);
    assert!(third.ack_and_try_lease().unwrap().is_none());
    assert!(queue.is_empty());
}

#[test]
fn ack_and_try_lease_batch_acks_the_batch_and_refills_it_under_one_call() {
    let (queue, clock) = queue::<u32>();
    queue.push_batch(1..=5);
    let mut leases = queue.try_lease_batch(2).unwrap();
    assert_eq!(leases.iter().map(|l| **l).collect::<Vec<_>>(), [1, 2]);
    let acked = queue.ack_and_try_lease_batch(&mut leases, 2);
    assert!(acked.iter().all(Result::is_ok), "{acked:?}");
    assert_eq!(leases.iter().map(|l| **l).collect::<Vec<_>>(), [3, 4], "refilled in queue order");
    assert_eq!((queue.stats().acked, queue.stats().leased, queue.stats().ready), (2, 2, 1));
    // A stale lease in the batch gets its own error and changes nothing; a lapsed one that nobody leased
    // again is still current, and its late ack is accepted.
    clock.advance(secs(31));
    let mut taken = queue.try_lease_batch(2).unwrap();
    assert_eq!(taken.iter().map(|l| (**l, l.attempt())).collect::<Vec<_>>(), [(5, 1), (3, 2)]);
    let acked = queue.ack_and_try_lease_batch(&mut leases, 5);
    assert!(matches!(acked[..], [Err(leasequeue::LeaseLost::Superseded { attempt: 2 }), Ok(())]), "{acked:?}");
    assert!(leases.is_empty(), "nothing was ready to take");
    assert_eq!((queue.stats().acked, queue.stats().leased), (3, 2));
    let acked = queue.ack_and_try_lease_batch(&mut taken, 5);
    assert_eq!(acked.len(), 2);
    assert!(acked.iter().all(Result::is_ok), "{acked:?}");
    assert!(taken.is_empty());
    assert!(queue.is_empty());
    assert_eq!(queue.stats().acked, 5);
}
