//! Snapshot and restore (the `serde` feature).

use std::time::Duration;

use leasequeue::{JobState, PushOptions, Queue, RestoreError, TestClock};
use proptest::prelude::*;

use crate::secs;

fn snapshot<T: serde::Serialize + Send + Sync + 'static>(q: &Queue<T>) -> Vec<u8> {
    let mut out = Vec::new();
    q.snapshot(&mut out).unwrap();
    out
}

#[test]
fn a_restore_keeps_ids_attempts_delays_groups_ttls_and_dedup_keys() {
    let clock = TestClock::new();
    let q: Queue<String> = Queue::builder().clock(clock.clone()).build().unwrap();
    q.push("ready".into()).unwrap();
    q.push_with("later".into(), PushOptions::new().delay(secs(60)).priority(2)).unwrap();
    q.push_with("g1".into(), PushOptions::new().group("g")).unwrap();
    q.push_with("g2".into(), PushOptions::new().group("g").ttl(secs(100))).unwrap();
    q.push_with("unique".into(), PushOptions::new().dedup_key("k")).unwrap();
    let leased = q.try_lease().unwrap(); // "ready": saved as ready, its attempt counted
    clock.advance(secs(10));
    let bytes = snapshot(&q);
    drop(leased);

    let clock2 = TestClock::new();
    let r: Queue<String> = Queue::builder().clock(clock2.clone()).restore(&bytes[..]).unwrap();
    let jobs = r.jobs();
    let summary: Vec<(u64, JobState, u32)> =
        jobs.iter().map(|j| (j.id.as_u64(), j.state, j.attempt)).collect();
    assert_eq!(
        summary,
        [
            (1, JobState::Ready, 1),
            (2, JobState::Delayed, 0),
            (3, JobState::Ready, 0),
            (4, JobState::Waiting, 0),
            (5, JobState::Ready, 0)
        ]
    );
    assert_eq!(jobs[1].next, Some(clock2.now() + secs(50)), "the remaining delay");
    assert_eq!(jobs[1].priority, 2);
    assert_eq!(clock2.now() - jobs[0].pushed_at, secs(10), "its age");
    assert!(r.push_with("unique".into(), PushOptions::new().dedup_key("k")).unwrap().is_duplicate());
    assert_eq!(r.push("new".into()).unwrap().as_u64(), 6, "ids go on");
    let lease = r.try_lease().unwrap();
    assert_eq!((lease.id().as_u64(), lease.attempt()), (1, 2));
    clock2.advance(secs(90)); // "g2" had 90 s left to live
    assert_eq!(r.stats().dead_lettered, 1);
    lease.ack().unwrap();
}

#[test]
fn a_corrupt_or_newer_snapshot_is_an_error() {
    let build = || Queue::<u32>::builder();
    assert!(matches!(build().restore(&b""[..]), Err(RestoreError::Corrupt(_))));
    assert!(matches!(
        build().restore(&b"{\"format\":\"other\",\"version\":1}"[..]),
        Err(RestoreError::Corrupt(_))
    ));
    let newer = br#"{"format":"leasequeue-snapshot","version":3,"next_id":1,"jobs":[],"dedup":[]}"#;
    assert!(matches!(build().restore(&newer[..]), Err(RestoreError::UnsupportedVersion { found: 3, .. })));
    let q = Queue::new();
    q.push(1u32).unwrap();
    let mut bytes = snapshot(&q);
    bytes.truncate(bytes.len() - 5);
    assert!(matches!(build().restore(&bytes[..]), Err(RestoreError::Corrupt(_))));
    let wrong_type = snapshot(&{
        let q = Queue::new();
        q.push("text".to_string()).unwrap();
        q
    });
    assert!(matches!(build().restore(&wrong_type[..]), Err(RestoreError::Corrupt(_))));
    let bad_ids = br#"{"format":"leasequeue-snapshot","version":1,"next_id":1,"jobs":[{"id":5,"job":1,"attempt":0,"priority":0,"group":null,"age_ns":0,"ready_in_ns":0,"expires_in_ns":null}],"dedup":[]}"#;
    assert!(matches!(build().restore(&bad_ids[..]), Err(RestoreError::Corrupt(_))));
}

#[test]
fn a_restore_keeps_failure_histories() {
    let clock = TestClock::new();
    let b = || Queue::builder().clock(clock.clone()).max_attempts(3).backoff(leasequeue::Backoff::none());
    let q: Queue<String> = b().build().unwrap();
    q.push("flaky".into()).unwrap();
    q.try_lease().unwrap().nack_with("502").unwrap();
    clock.advance(secs(1));
    q.try_lease().unwrap().nack_with("503").unwrap();
    let bytes = snapshot(&q);

    let r: Queue<String> = b().restore(&bytes[..]).unwrap();
    let lease = r.try_lease().unwrap();
    assert_eq!(lease.attempt(), 3);
    lease.nack_with("504").unwrap();
    let dead = r.drain_dead_letters().pop().unwrap();
    assert_eq!(dead.attempts(), 3);
    let history: Vec<_> = dead.history().iter().map(|f| (f.attempt, f.message.clone().unwrap())).collect();
    assert_eq!(history, [(1, "502".to_owned()), (2, "503".to_owned()), (3, "504".to_owned())]);
    assert_eq!(dead.history()[1].at - dead.history()[0].at, secs(1), "when each failed, relative");
}

#[test]
fn a_restore_keeps_the_dead_letter_store() {
    let clock = TestClock::new();
    let q: Queue<String> = Queue::builder().clock(clock.clone()).build().unwrap();
    q.push("poison".into()).unwrap();
    clock.advance(secs(5));
    q.try_lease().unwrap().reject("malformed").unwrap();
    clock.advance(secs(7));
    let bytes = snapshot(&q);

    let clock2 = TestClock::new();
    let r: Queue<String> = Queue::builder().clock(clock2.clone()).restore(&bytes[..]).unwrap();
    assert_eq!(r.stats().dead, 1);
    let dead = r.drain_dead_letters().pop().unwrap();
    assert_eq!((dead.id().as_u64(), dead.job().as_str()), (1, "poison"));
    assert_eq!(dead.reason(), leasequeue::DeadLetterReason::Rejected);
    assert_eq!(dead.history()[0].kind, leasequeue::FailureKind::Rejected);
    assert_eq!(dead.history()[0].message.as_deref(), Some("malformed"));
    assert_eq!(clock2.now() - dead.dead_lettered_at(), secs(7));
    assert_eq!(clock2.now() - dead.pushed_at(), secs(12));
    assert_eq!(r.push("next".into()).unwrap().as_u64(), 2, "the dead letter's id is not reused");
}

#[test]
fn a_version_1_snapshot_is_still_read() {
    let v1 = br#"{"format":"leasequeue-snapshot","version":1,"next_id":3,"jobs":[{"id":2,"job":7,"attempt":1,"priority":0,"group":null,"age_ns":0,"ready_in_ns":0,"expires_in_ns":null}],"dedup":[]}"#;
    let r = Queue::<u32>::builder().restore(&v1[..]).unwrap();
    let lease = r.try_lease().unwrap();
    assert_eq!((lease.id().as_u64(), *lease, lease.attempt()), (2, 7, 2));
    lease.ack().unwrap();
}

#[test]
fn ids_out_of_range_are_refused() {
    let build = || Queue::<u32>::builder();
    let with = |next_id: &str, dedup: &str| {
        format!(
            r#"{{"format":"leasequeue-snapshot","version":2,"next_id":{next_id},"jobs":[],"dedup":[{dedup}]}}"#
        )
    };
    for next_id in ["18446744073709551615", "9223372036854775809", "0"] {
        let bytes = with(next_id, "");
        assert!(matches!(build().restore(bytes.as_bytes()), Err(RestoreError::Corrupt(_))), "{next_id}");
    }
    // A reservation must name a job id the queue handed out.
    let bytes = with("5", r#"{"key":"k","id":5,"expires_in_ns":1000}"#);
    assert!(matches!(build().restore(bytes.as_bytes()), Err(RestoreError::Corrupt(_))));
    let dead = r#"{"format":"leasequeue-snapshot","version":2,"next_id":2,"jobs":[],"dedup":[],"dead":[{"id":2,"job":1,"reason":"rejected","attempts":1,"history":[],"age_ns":0,"dead_ago_ns":0}]}"#;
    assert!(matches!(build().restore(dead.as_bytes()), Err(RestoreError::Corrupt(_))));

    // The highest next_id accepted: the queue hands out its last id, then refuses pushes as if closed.
    let r = build().restore(with("9223372036854775807", "").as_bytes()).unwrap();
    assert_eq!(r.push(1).unwrap().as_u64(), (1 << 63) - 1);
    assert!(r.push(2).unwrap_err().is_closed());
    assert!(r.try_push(3).unwrap_err().is_closed());
    assert!(r.push_batch([4]).pop().unwrap().unwrap_err().is_closed());
    assert_eq!(r.len(), 1);
}

#[derive(Clone, Debug)]
enum Op {
    Push { delay: Option<u64>, priority: u8, group: Option<u8>, ttl: Option<u64> },
    Lease,
    Nack,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::option::of(0..100u64), 0..3u8, prop::option::weighted(0.3, 0..3u8), prop::option::weighted(0.2, 1..200u64))
            .prop_map(|(delay, priority, group, ttl)| Op::Push { delay, priority, group, ttl }),
        2 => Just(Op::Lease),
        1 => Just(Op::Nack),
        1 => (0..50u64).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any queue state restores to an equivalent one: the same jobs, attempts, priorities and remaining
    /// times (leased jobs as ready), and the same order of delivery.
    #[test]
    fn any_queue_state_restores_to_an_equivalent_one(ops in prop::collection::vec(op(), 1..60)) {
        let clock = TestClock::new();
        let q: Queue<u32> = Queue::builder().clock(clock.clone()).build().unwrap();
        let mut held = Vec::new();
        // When each job's time to live runs out, by job id.
        let mut expiry = std::collections::HashMap::new();
        let mut groups = std::collections::HashMap::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push { delay, priority, group, ttl } => {
                    let mut o = PushOptions::new().priority(priority);
                    if let Some(d) = delay { o = o.delay(Duration::from_millis(d)); }
                    if let Some(g) = group { o = o.group(format!("g{g}")); }
                    if let Some(t) = ttl { o = o.ttl(Duration::from_millis(t)); }
                    let id = q.push_with(n as u32, o).unwrap().id();
                    if let Some(g) = group {
                        groups.insert(id.as_u64(), g);
                    }
                    if let Some(t) = ttl {
                        expiry.insert(id.as_u64(), clock.now() + Duration::from_millis(t));
                    }
                }
                Op::Lease => { if let Ok(l) = q.try_lease() { held.push(l); } }
                Op::Nack => { if let Some(l) = held.pop() { let _ = l.nack(); } }
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
            }
        }
        let bytes = snapshot(&q);
        let now = clock.now();
        // A leased job whose time to live ran out is never delivered again: the restore dead-letters it,
        // and the next job of its group takes its place.
        let mut expected = Vec::new();
        let mut unblocked = std::collections::HashSet::new();
        for mut j in q.jobs() {
            let id = j.id.as_u64();
            if j.state == JobState::Leased && expiry.get(&id).is_some_and(|&at| at <= now) {
                unblocked.extend(groups.get(&id).copied());
                continue;
            }
            if j.state == JobState::Waiting && groups.get(&id).is_some_and(|g| unblocked.remove(g)) {
                let due = j.next.filter(|&t| t > now);
                j.state = if due.is_some() { JobState::Delayed } else { JobState::Ready };
                j.next = due;
            }
            expected.push(j);
        }
        let clock2 = TestClock::new();
        let r: Queue<u32> = Queue::builder().clock(clock2.clone()).restore(&bytes[..]).unwrap();
        let normalize = |jobs: Vec<leasequeue::JobInfo>, now: std::time::Instant| -> Vec<_> {
            jobs.into_iter()
                .map(|j| {
                    let state = if j.state == JobState::Leased { JobState::Ready } else { j.state };
                    let next = if j.state == JobState::Leased { None } else { j.next.map(|t| t.saturating_duration_since(now)) };
                    (j.id, state, j.attempt, j.priority, next)
                })
                .collect()
        };
        prop_assert_eq!(normalize(expected, now), normalize(r.jobs(), clock2.now()));
        drop(held);
    }
}
