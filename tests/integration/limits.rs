//! The rate limit (`QueueBuilder::rate_limit`): at most N leases in any window of a period, on the
//! queue's clock, for every way of leasing.

use std::time::{Duration, Instant};

use leasequeue::{TestClock, TryLeaseError, WorkerPool};
use proptest::prelude::*;

use super::{builder, secs, until};

#[test]
fn a_held_back_lease_reports_when_its_turn_comes_and_is_counted() {
    let (builder, clock) = builder::<u32>();
    let queue = builder.rate_limit(2, secs(1)).build().unwrap();
    queue.push_batch([1, 2, 3, 4]);
    let first = queue.try_lease().unwrap();
    clock.advance(Duration::from_millis(400));
    let second = queue.try_lease().unwrap();
    match queue.try_lease() {
        Err(TryLeaseError::Limited { until }) => assert_eq!(until - clock.now(), Duration::from_millis(600)),
        other => panic!("expected the limit, got {other:?}"),
    }
    assert_eq!((queue.stats().limited, queue.stats().ready), (2, 2));
    clock.advance(Duration::from_millis(600));
    assert_eq!(*queue.try_lease().unwrap(), 3, "the first lease's second is over");
    assert!(matches!(queue.try_lease(), Err(TryLeaseError::Limited { .. })));
    clock.advance(Duration::from_millis(400));
    assert_eq!(*queue.try_lease().unwrap(), 4);
    assert_eq!(queue.try_lease().unwrap_err(), TryLeaseError::Empty, "nothing ready: empty, not limited");
    assert_eq!(queue.stats().limited, 0);
    drop((first, second));
}

#[test]
fn a_blocking_lease_waits_for_its_turn_and_a_clock_advance_wakes_it() {
    let (builder, clock) = builder::<u32>();
    let queue = builder.rate_limit(1, secs(10)).build().unwrap();
    queue.push_batch([1, 2]);
    let first = queue.try_lease().unwrap();
    let consumer = queue.clone();
    let waiter = std::thread::spawn(move || *consumer.lease().unwrap());
    until(|| queue.stats().consumers_waiting == 1);
    clock.advance(secs(10));
    assert_eq!(waiter.join().unwrap(), 2);
    drop(first);
}

#[test]
fn a_pool_keeps_to_the_limit_and_run_until_idle_moves_the_clock_to_each_turn() {
    let (builder, clock) = builder::<u32>();
    let queue = builder.rate_limit(2, secs(1)).build().unwrap();
    queue.push_batch(0..10);
    let pool = WorkerPool::builder(queue.clone()).workers(2).build(|_job| ()).unwrap();
    let start = clock.now();
    let summary = pool.run_until_idle();
    assert_eq!(summary.acked, 10);
    let times: Vec<Instant> = summary.attempts.iter().map(|a| a.at).collect();
    assert!(clock.now() - start >= secs(4), "ten jobs at two a second take four seconds after the first two");
    for (i, &at) in times.iter().enumerate() {
        let in_window = times.iter().filter(|&&t| t >= at && t < at + secs(1)).count();
        assert!(in_window <= 2, "{in_window} runs in the second from run {i}: {times:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over random lease attempts, pushes and clock advances, no window of the period ever holds more
    /// than the limit's leases, and a lease refused by the limit comes when it said.
    #[test]
    fn no_window_ever_holds_more_than_the_limit(
        n in 1..5u32,
        steps in prop::collection::vec((0..3u8, 0..400u64), 1..120),
    ) {
        let clock = TestClock::new();
        let queue = super::store::<u64>().clock(clock.clone()).rate_limit(n, Duration::from_millis(1000)).build().unwrap();
        let mut granted: Vec<Instant> = Vec::new();
        let mut held = Vec::new();
        for (kind, ms) in steps {
            match kind {
                0 => clock.advance(Duration::from_millis(ms)),
                1 => { queue.push(ms).unwrap(); }
                _ => match queue.try_lease() {
                    Ok(lease) => { granted.push(clock.now()); held.push(lease); }
                    Err(TryLeaseError::Limited { until }) => {
                        prop_assert!(until > clock.now());
                        // The limit's reason: `n` leases in the window that ends at `until`.
                        let window = granted.iter().filter(|&&t| t + Duration::from_millis(1000) > clock.now()).count();
                        prop_assert_eq!(window, n as usize);
                    }
                    Err(other) => prop_assert_eq!(other, TryLeaseError::Empty),
                },
            }
        }
        for &at in &granted {
            let in_window = granted.iter().filter(|&&t| t >= at && t < at + Duration::from_millis(1000)).count();
            prop_assert!(in_window <= n as usize, "{} leases in a window of 1 s, limit {}", in_window, n);
        }
    }
}
