//! Routing and fan-out.

use std::sync::Arc;
use std::thread;

use leasequeue::{Binding, PublishError, Queue, Router, Unroutable};
use proptest::prelude::*;

use super::{lacks, queue, secs, Needs};

fn drain<T: Clone + Send + Sync + 'static>(q: &Queue<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(lease) = q.try_lease() {
        out.push((*lease).clone());
        lease.ack().unwrap();
    }
    out
}

#[test]
fn direct_bindings_match_the_exact_key() {
    let (created, shipped) = (super::new_queue(), super::new_queue());
    let router = Router::new();
    router.bind(Binding::direct("order.created"), created.clone());
    router.bind(Binding::direct("order.shipped"), shipped.clone());
    router.publish("order.created", 1).unwrap();
    router.publish("order.shipped", 2).unwrap();
    assert!(router.publish("order", 3).is_err());
    assert_eq!((drain(&created), drain(&shipped)), (vec![1], vec![2]));
}

#[test]
fn topic_patterns_match_word_by_word() {
    let cases: &[(&str, &str, bool)] = &[
        ("#", "", true),
        ("#", "a.b.c", true),
        ("a.#", "a", true),
        ("a.#", "a.b.c", true),
        ("a.#", "b.a", false),
        ("#.a", "a", true),
        ("#.a", "x.y.a", true),
        ("#.a", "a.x", false),
        ("*.a", "a", false),
        ("*.a", "x.a", true),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.c", false),
        ("a.*.c", "a.b.b.c", false),
        ("a.#.c", "a.c", true),
        ("a.#.c", "a.x.y.c", true),
        ("#.#", "", true),
        ("#.#", "a.b", true),
        ("*", "", true),
        ("*", "a.b", false),
        ("a", "a", true),
        ("a", "a.a", false),
        ("*.*", "a", false),
        ("#.*", "a", true),
        ("*.#.*", "a", false),
        ("*.#.*", "a.b", true),
    ];
    for &(pattern, key, expected) in cases {
        let q = super::new_queue();
        let router = Router::new().on_unroutable(Unroutable::Drop);
        router.bind(Binding::topic(pattern), q.clone());
        router.publish(key, ()).unwrap();
        assert_eq!(q.len() == 1, expected, "pattern {pattern:?} against key {key:?}");
        assert_eq!(Binding::topic(pattern).matches(key), expected, "{pattern:?} / {key:?}");
    }
}

#[test]
fn fanout_delivers_to_every_queue_and_each_fails_independently() {
    let (billing, _) = queue::<Arc<String>>();
    let (shipping, _) = queue::<Arc<String>>();
    let (analytics, clock) = queue::<Arc<String>>();
    let router = Router::new();
    for q in [&billing, &shipping, &analytics] {
        router.bind(Binding::Fanout, q.clone());
    }
    let payload = Arc::new("order 42".to_string());
    assert_eq!(router.publish("order.created", Arc::clone(&payload)).unwrap().queues(), 3);
    // One payload, shared: no `Clone` of the order itself.
    let leases: Vec<_> = [&billing, &shipping, &analytics].iter().map(|q| q.try_lease().unwrap()).collect();
    assert!(leases.iter().all(|l| Arc::ptr_eq(l, &payload)));
    let mut leases = leases.into_iter();
    leases.next().unwrap().ack().unwrap();
    leases.next().unwrap().ack().unwrap();
    leases.next().unwrap().nack_with("analytics is down").unwrap();
    assert_eq!((billing.stats().acked, shipping.stats().acked), (1, 1));
    assert_eq!((analytics.stats().nacked, analytics.stats().delayed), (1, 1));
    clock.advance(secs(10));
    assert_eq!(analytics.try_lease().unwrap().attempt(), 2);
}

#[test]
fn a_queue_bound_twice_gets_one_copy() {
    let q = super::new_queue();
    let router = Router::new();
    router.bind(Binding::topic("a.*"), q.clone());
    router.bind(Binding::topic("#"), q.clone());
    router.bind(Binding::direct("a.b"), q.clone());
    assert_eq!(router.publish("a.b", 1).unwrap().queues(), 1);
    assert_eq!(q.len(), 1);
}

#[test]
fn unroutable_jobs_follow_the_policy() {
    let router: Router<u8> = Router::new();
    match router.publish("x", 1) {
        Err(PublishError::Unroutable(job)) => assert_eq!(job, 1),
        other => panic!("{other:?}"),
    }
    let router: Router<u8> = Router::new().on_unroutable(Unroutable::Drop);
    assert_eq!(router.publish("x", 2).unwrap().queues(), 0);
    let alternate = super::new_queue();
    let router = Router::new().on_unroutable(Unroutable::Queue(alternate.clone()));
    router.publish("x", 3).unwrap();
    assert_eq!(drain(&alternate), [3]);
    assert_eq!(router.stats().unroutable, 1);
}

#[test]
fn a_full_or_closed_queue_hands_its_copy_back() {
    if lacks(Needs::Capacity) {
        return;
    }
    let full = super::store().capacity(1).build().unwrap();
    full.push(0).unwrap();
    let closed = super::new_queue();
    closed.close();
    let open = super::new_queue();
    let router = Router::new();
    let (b_full, b_closed) =
        (router.bind(Binding::Fanout, full.clone()), router.bind(Binding::Fanout, closed));
    router.bind(Binding::Fanout, open.clone());
    match router.try_publish("k", 7).unwrap_err() {
        PublishError::Refused { published, refused } => {
            assert_eq!(published.queues(), 1);
            assert_eq!(refused.len(), 2);
            assert_eq!((refused[0].binding, refused[0].error.is_full()), (b_full, true));
            assert_eq!((refused[1].binding, refused[1].error.is_closed()), (b_closed, true));
            assert!(refused.into_iter().all(|r| r.error.into_inner() == 7));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(drain(&open), [7]);
    assert_eq!(router.stats().refused, 2);
}

#[test]
fn bindings_change_at_run_time_from_any_thread() {
    let router: Router<u64> = Router::new().on_unroutable(Unroutable::Drop);
    let sink = super::new_queue();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (router, sink) = (router.clone(), sink.clone());
            thread::spawn(move || {
                for i in 0..500u64 {
                    let id = router.bind(Binding::topic(format!("t{t}.#")), sink.clone());
                    router.publish(&format!("t{t}.x"), i).unwrap();
                    assert!(router.unbind(id).is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = router.stats();
    assert_eq!((stats.bindings, stats.published), (0, 2000));
    // Each publish happened while its own binding was in place.
    assert_eq!(sink.len(), 2000);
}

/// The naive reference for topic matching.
fn naive(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| naive(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && naive(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && naive(rest, &key[1..]),
    }
}

/// The reference for patterns with many `#`: the same rules, by dynamic programming over (pattern word,
/// key word), so that it stays polynomial where the naive one would not.
fn by_table(pattern: &[&str], key: &[&str]) -> bool {
    // m[i][j]: pattern[i..] matches key[j..].
    let mut m = vec![vec![false; key.len() + 1]; pattern.len() + 1];
    m[pattern.len()][key.len()] = true;
    for i in (0..pattern.len()).rev() {
        for j in (0..=key.len()).rev() {
            m[i][j] = match pattern[i] {
                "#" => m[i + 1][j] || (j < key.len() && m[i][j + 1]),
                "*" => j < key.len() && m[i + 1][j + 1],
                word => key.get(j) == Some(&word) && m[i + 1][j + 1],
            };
        }
    }
    m[0][0]
}

fn hashy_pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![3 => Just("#"), 1 => Just("a"), 1 => Just("b"), 1 => Just("*")], 1..24)
        .prop_map(|w| w.join("."))
}

fn long_key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![4 => Just("a"), 1 => Just("b")], 1..40).prop_map(|w| w.join("."))
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*"), Just("#")], 1..6)
        .prop_map(|w| w.join("."))
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..6).prop_map(|w| w.join("."))
}

proptest! {
    #[test]
    fn the_topic_trie_agrees_with_the_naive_matcher(patterns in prop::collection::vec(pattern(), 1..12), keys in prop::collection::vec(key(), 1..12)) {
        let router: Router<usize> = Router::new().on_unroutable(Unroutable::Drop);
        let queues: Vec<Queue<usize>> = patterns.iter().map(|_| super::new_queue()).collect();
        for (p, q) in patterns.iter().zip(&queues) {
            router.bind(Binding::topic(p.clone()), q.clone());
        }
        for (k, key) in keys.iter().enumerate() {
            router.publish(key, k).unwrap();
        }
        for (p, q) in patterns.iter().zip(&queues) {
            let pw: Vec<&str> = p.split('.').collect();
            let expected: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, key)| naive(&pw, &key.split('.').collect::<Vec<_>>()))
                .map(|(k, _)| k)
                .collect();
            prop_assert_eq!(drain(q), expected, "pattern {}", p);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Patterns full of `#` against long keys: the trie agrees with the table, and (being polynomial)
    /// finishes: a backtracking matcher takes seconds on a dozen `#`.
    #[test]
    fn many_hashes_match_as_the_table_says(patterns in prop::collection::vec(hashy_pattern(), 1..6), key in long_key()) {
        let router: Router<u8> = Router::new().on_unroutable(Unroutable::Drop);
        let queues: Vec<Queue<u8>> = patterns.iter().map(|_| super::new_queue()).collect();
        for (p, q) in patterns.iter().zip(&queues) {
            router.bind(Binding::topic(p.clone()), q.clone());
        }
        router.publish(&key, 0).unwrap();
        let kw: Vec<&str> = key.split('.').collect();
        for (p, q) in patterns.iter().zip(&queues) {
            let expected = by_table(&p.split('.').collect::<Vec<_>>(), &kw);
            prop_assert_eq!(q.len() == 1, expected, "pattern {} key {}", p, key);
            prop_assert_eq!(Binding::topic(p.clone()).matches(&key), expected);
        }
    }
}

#[test]
fn the_reported_worst_cases_match_without_backtracking() {
    let key20 = vec!["a"; 20].join(".");
    let key40 = vec!["a"; 40].join(".");
    for hashes in [8, 10, 12] {
        let pattern = format!("{}.b", vec!["#"; hashes].join("."));
        assert!(!Binding::topic(pattern.clone()).matches(&key20));
        assert!(!Binding::topic(pattern).matches(&key40));
    }
    // Interleaved so that no run collapses: `#.a.#.a...` against a key of `a`s.
    let pattern = format!("{}.b", ["#.a"; 11].join("."));
    assert!(!Binding::topic(pattern.clone()).matches(&key40));
    assert!(Binding::topic(pattern.trim_end_matches(".b").to_owned()).matches(&key40));
}

#[test]
fn very_long_patterns_and_keys_cost_no_stack() {
    // On a thread with a small stack: recursion over 70 000 words would overflow it and abort.
    thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let long = vec!["w"; 70_000].join(".");
            let router: Router<u8> = Router::new();
            let q = super::new_queue();
            let id = router.bind(Binding::topic(long.clone()), q.clone());
            router.bind(Binding::topic(format!("#.{}", ["*"; 10].join("."))), q.clone());
            assert_eq!(router.publish(&long, 1).unwrap().queues(), 1);
            assert!(Binding::topic(long.clone()).matches(&long));
            assert!(router.unbind(id).is_some());
            router.bind(Binding::topic(long), q.clone());
            drop(router);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn publish_reports_a_full_queue_as_full() {
    if lacks(Needs::Capacity) {
        return;
    }
    let full = super::store().capacity(1).overflow(leasequeue::Overflow::RejectNew).build().unwrap();
    full.push(0).unwrap();
    let router = Router::new();
    router.bind(Binding::Fanout, full);
    match router.publish("k", 7).unwrap_err() {
        PublishError::Refused { refused, .. } => {
            assert!(refused[0].error.is_full());
            assert!(!refused[0].error.is_closed());
        }
        other => panic!("{other:?}"),
    }
}
