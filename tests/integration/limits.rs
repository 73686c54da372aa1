//! The rate limit (`QueueBuilder::rate_limit`): at most N leases in any window of a period, on the
//! queue's clock, for every way of leasing.

use std::time::{Duration, Instant};

use leasequeue::{PushOptions, TestClock, TryLeaseError, WorkerPool};
use proptest::prelude::*;

use super::{builder, lacks, secs, until, Needs};

#[test]
fn a_held_back_lease_reports_when_its_turn_comes_and_is_counted() {
    if lacks(Needs::RateLimit) {
        return;
    }
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
    if lacks(Needs::RateLimit) {
        return;
    }
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
    if lacks(Needs::RateLimit) {
        return;
    }
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
        if lacks(Needs::RateLimit) {
            return Ok(());
        }
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

#[test]
fn a_group_limit_holds_back_only_its_own_group() {
    if lacks(Needs::RateLimit) {
        return;
    }
    let (builder, clock) = builder::<u32>();
    let queue = builder.group_rate_limit(1, secs(10)).build().unwrap();
    queue.push_with(1, PushOptions::new().group("ada")).unwrap();
    queue.push_with(2, PushOptions::new().group("ada")).unwrap();
    queue.push_with(3, PushOptions::new().group("bob")).unwrap();
    queue.push(4).unwrap(); // no group: no limit
    let mut leased: Vec<u32> = std::iter::from_fn(|| queue.try_lease().ok()).map(|l| {
        let job = *l;
        l.ack().unwrap();
        job
    }).collect();
    // Ada's second call waits for her window; Bob's and the ungrouped job go at once.
    assert_eq!(leased, [1, 3, 4]);
    assert_eq!(queue.stats().delayed, 1);
    clock.advance(secs(9));
    assert!(queue.try_lease().is_err());
    clock.advance(secs(1));
    leased.push(*queue.try_lease().unwrap());
    assert_eq!(leased, [1, 3, 4, 2]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over random pushes to a few groups, leases, acks and clock advances, no group's window of the
    /// period ever holds more than its limit, and jobs of one group come out in push order.
    #[test]
    fn no_group_window_ever_holds_more_than_its_limit(
        n in 1..4u32,
        steps in prop::collection::vec((0..4u8, 0..3u8, 0..600u64), 1..150),
    ) {
        if lacks(Needs::RateLimit) {
            return Ok(());
        }
        let clock = TestClock::new();
        let period = Duration::from_millis(1000);
        let queue = super::store::<(u8, u32)>().clock(clock.clone()).group_rate_limit(n, period).build().unwrap();
        let mut granted: Vec<(u8, u32, Instant)> = Vec::new();
        let mut held = Vec::new();
        let mut pushed = 0u32;
        for (kind, group, ms) in steps {
            match kind {
                0 => clock.advance(Duration::from_millis(ms)),
                1 => {
                    queue.push_with((group, pushed), PushOptions::new().group(format!("g{group}"))).unwrap();
                    pushed += 1;
                }
                2 => if let Ok(lease) = queue.try_lease() {
                    granted.push((lease.0, lease.1, clock.now()));
                    held.push(lease);
                },
                _ => if !held.is_empty() {
                    let lease = held.remove(ms as usize % held.len());
                    lease.ack().unwrap();
                },
            }
        }
        for &(group, _, at) in &granted {
            let in_window = granted.iter().filter(|&&(g, _, t)| g == group && t >= at && t < at + period).count();
            prop_assert!(in_window <= n as usize, "group {}: {} leases in a window, limit {}", group, in_window, n);
        }
        for group in 0..3u8 {
            let order: Vec<u32> = granted.iter().filter(|(g, ..)| *g == group).map(|&(_, job, _)| job).collect();
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "group {} out of order: {:?}", group, order);
        }
    }
}

// ----- concurrency per group key (`group_concurrency`) -----

#[test]
fn a_group_runs_at_most_its_concurrency_at_once_starting_in_push_order() {
    if lacks(Needs::GroupConcurrency) {
        return;
    }
    let (builder, clock) = builder::<u32>();
    let queue = builder.group_concurrency(2).build().unwrap();
    for job in 1..=5 {
        queue.push_with(job, PushOptions::new().group("acme")).unwrap();
    }
    queue.push_with(10, PushOptions::new().group("globex")).unwrap();
    let a1 = queue.try_lease().unwrap();
    let a2 = queue.try_lease().unwrap();
    let g = queue.try_lease().unwrap();
    assert_eq!((*a1, *a2, *g), (1, 2, 10));
    assert!(queue.try_lease().is_err(), "acme has two leased: 3 waits");
    assert_eq!(queue.stats().waiting, 3);
    a2.ack().unwrap(); // the second finishes first: the third may start
    let a3 = queue.try_lease().unwrap();
    assert_eq!(*a3, 3);
    assert!(queue.try_lease().is_err());
    // `g` fails (dropped: a nack, retried in 10 s); both acme leases lapse at 30 s and are delivered
    // again in their order, and acme stays at two.
    drop(g);
    let stale = (a1, a3);
    clock.advance(secs(30));
    let again: Vec<_> = std::iter::from_fn(|| queue.try_lease().ok()).collect();
    assert_eq!(again.iter().map(|l| **l).collect::<Vec<_>>(), [10, 1, 3]);
    assert_eq!(stale.0.ack(), Err(leasequeue::LeaseLost::Superseded { attempt: 2 }));
    again.into_iter().for_each(|l| l.ack().unwrap());
    let rest: Vec<u32> = std::iter::from_fn(|| queue.try_lease().ok())
        .map(|l| {
            let job = *l;
            l.ack().unwrap();
            job
        })
        .collect();
    assert_eq!(rest, [4, 5]);
}

#[test]
fn a_group_concurrency_of_zero_is_refused() {
    let err = super::store::<u8>().group_concurrency(0).build().unwrap_err();
    assert_eq!(err.option(), "group_concurrency");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over random pushes to a few groups, leases and acks in any order: no group ever has more than its
    /// concurrency leased, and each group's jobs are first leased in push order.
    #[test]
    fn no_group_ever_has_more_than_its_concurrency_leased(
        k in 1..4usize,
        steps in prop::collection::vec((0..3u8, 0..3u8, any::<prop::sample::Index>()), 1..150),
    ) {
        if lacks(Needs::GroupConcurrency) {
            return Ok(());
        }
        let (builder, _clock) = builder::<(u8, u32)>();
        let queue = builder.group_concurrency(k).build().unwrap();
        let mut pushed = [0u32; 3];
        let mut first_leased: [Vec<u32>; 3] = Default::default();
        let mut held: Vec<leasequeue::Lease<(u8, u32)>> = Vec::new();
        for (kind, group, pick) in steps {
            match kind {
                0 => {
                    let g = usize::from(group);
                    queue.push_with((group, pushed[g]), PushOptions::new().group(format!("g{group}"))).unwrap();
                    pushed[g] += 1;
                }
                1 => {
                    if let Ok(lease) = queue.try_lease() {
                        let (g, n) = *lease;
                        first_leased[usize::from(g)].push(n);
                        held.push(lease);
                    }
                }
                _ if !held.is_empty() => {
                    held.swap_remove(pick.index(held.len())).ack().unwrap();
                }
                _ => {}
            }
            for g in 0..3u8 {
                let leased = held.iter().filter(|l| l.0 == g).count();
                prop_assert!(leased <= k, "group {} has {} leased, concurrency {}", g, leased, k);
            }
        }
        for (g, order) in first_leased.iter().enumerate() {
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "group {}: {:?}", g, order);
        }
    }
}
