use leasequeue::{DeadLetterReason, FailureKind};

use super::{queue, secs};

#[test]
fn a_lapse_counts_as_a_failed_attempt_and_redelivers_at_once() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let _first = q.try_lease().unwrap();
    clock.advance(secs(30));
    let stats = q.stats();
    assert_eq!((stats.lapsed, stats.ready, stats.leased), (1, 1, 0));
    // Ready at once: no backoff after a lapse.
    let second = q.try_lease().unwrap();
    assert_eq!(second.attempt(), 2);
    second.ack().unwrap();
}

#[test]
fn a_lapse_on_the_last_attempt_dead_letters() {
    let (q, clock) = queue::<u8>();
    let id = q.push(1).unwrap();
    let mut leases = Vec::new();
    for _ in 0..3 {
        leases.push(q.try_lease().unwrap());
        clock.advance(secs(30));
    }
    let dead = q.drain_dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id(), dead[0].reason(), dead[0].attempts()), (id, DeadLetterReason::MaxAttempts, 3));
    assert!(dead[0].history().iter().all(|f| f.kind == FailureKind::Lapsed));
    assert_eq!(dead[0].history().iter().map(|f| f.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    let stats = q.stats();
    assert_eq!((stats.lapsed, stats.dead_lettered, stats.len()), (3, 1, 0));
    drop(leases); // stale or gone: dropping them changes nothing
    assert_eq!(q.stats(), stats);
}

#[test]
fn a_lapse_is_seen_by_whichever_operation_comes_first() {
    let (q, clock) = queue::<u8>();
    q.push(1).unwrap();
    let lease = q.try_lease().unwrap();
    clock.advance(secs(29));
    assert_eq!(q.stats().leased, 1);
    clock.advance(secs(1));
    // No background thread: the clock's advance already processed it.
    assert_eq!(q.stats().ready, 1);
    drop(lease);
}

#[test]
fn leases_lapse_in_deadline_order() {
    let (q, clock) = queue::<u32>();
    for i in 0..5 {
        q.push(i).unwrap();
    }
    let mut leases = Vec::new();
    for _ in 0..5 {
        leases.push(q.try_lease().unwrap());
        clock.advance(secs(1));
    }
    // Shorten the last lease: it lapses first.
    leases[4].extend(secs(1)).unwrap();
    clock.advance(secs(60));
    let order: Vec<u32> = (0..5).map(|_| *q.try_lease().unwrap()).collect();
    assert_eq!(order, [4, 0, 1, 2, 3]);
}
