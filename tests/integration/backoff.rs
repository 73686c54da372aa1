use std::time::Duration;

use leasequeue::{Backoff, Jitter, NackOutcome, Queue, TestClock};

use crate::secs;

#[test]
fn the_queue_waits_exactly_the_backoffs_jittered_delay() {
    let clock = TestClock::new();
    let backoff = Backoff::exponential(secs(1), 2.0).jitter(Jitter::Full).seed(99);
    let q = Queue::builder().clock(clock.clone()).backoff(backoff.clone()).max_attempts(5).build().unwrap();
    let id = q.push(1).unwrap();
    for attempt in 1..5 {
        let lease = q.try_lease().unwrap();
        assert_eq!(lease.attempt(), attempt);
        let expected = clock.now() + backoff.delay_for(id, attempt);
        assert_eq!(lease.nack().unwrap(), NackOutcome::Retrying { at: expected });
        clock.advance_to(expected);
    }
    assert_eq!(q.try_lease().unwrap().nack().unwrap(), NackOutcome::DeadLettered);
}

#[test]
fn a_seeded_backoff_is_reproducible() {
    let run = || {
        let b = Backoff::default().seed(7);
        (1..20).map(|n| b.delay_for(leasequeue::JobId::from_u64(n), n as u32)).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn a_panicking_custom_backoff_retries_at_once() {
    let clock = TestClock::new();
    let q = Queue::builder()
        .clock(clock.clone())
        .backoff(Backoff::custom(|_| panic!("bad backoff")))
        .build()
        .unwrap();
    q.push(1).unwrap();
    assert_eq!(q.try_lease().unwrap().nack().unwrap(), NackOutcome::Retrying { at: clock.now() });
    assert_eq!(q.try_lease().unwrap().attempt(), 2);
}

#[test]
fn every_kind_saturates() {
    for b in [
        Backoff::none(),
        Backoff::fixed(Duration::MAX),
        Backoff::linear(Duration::MAX),
        Backoff::exponential(Duration::MAX, 10.0),
        Backoff::default(),
    ] {
        for n in [0, 1, 2, 63, 64, 1000, u32::MAX] {
            let _ = b.delay(n);
            let _ = b.delay_for(leasequeue::JobId::from_u64(u64::MAX), n);
        }
    }
}
