//! Publishing through a `Router` with 1, 100 and 10 000 topic bindings: the trie keeps the cost near the
//! key's length, not the number of bindings. One binding matches each key; the job goes to its queue and
//! is taken out again so queues stay small. Last, the worst case for `#`: eleven of them against a
//! 40-word key (polynomial: each trie node and key position is visited once).
//!
//! Run with `cargo bench --bench router`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use leasequeue::{Binding, Queue, Router};

fn uncontended_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_publish");
    let queue: Queue<u64> = Queue::new();
    group.bench_function("queue_push_lease_ack_baseline", |b| {
        b.iter(|| {
            queue.push(black_box(1)).unwrap();
            queue.try_lease().unwrap().ack().unwrap();
        });
    });
    for bindings in [1usize, 100, 10_000] {
        let router: Router<u64> = Router::new();
        let queues: Vec<Queue<u64>> = (0..bindings.min(100)).map(|_| Queue::new()).collect();
        for i in 0..bindings {
            // Patterns like "region7.orders.*.created" and "region7.#.refunded", spread over 100 queues.
            let pattern = if i % 2 == 0 {
                format!("region{i}.orders.*.created")
            } else {
                format!("region{i}.#.refunded")
            };
            router.bind(Binding::topic(pattern), queues[i % queues.len()].clone());
        }
        let key = format!("region{}.orders.eu.created", (bindings - 1) / 2 * 2);
        let target = queues[((bindings - 1) / 2 * 2) % queues.len()].clone();
        group.bench_with_input(BenchmarkId::new("topic_publish_lease_ack", bindings), &key, |b, key| {
            b.iter(|| {
                router.publish(key, black_box(1)).unwrap();
                target.try_lease().unwrap().ack().unwrap();
            });
        });
    }
    // The worst case a backtracking matcher has: many `#` that each may take any number of words. One
    // binding, `#.a.#.a...#.a.b` (eleven `#`), against 40 words of `a`: it matches nothing.
    let router: Router<u64> = Router::new().on_unroutable(leasequeue::Unroutable::Drop);
    router.bind(Binding::topic(format!("{}.b", ["#.a"; 11].join("."))), Queue::new());
    let key = vec!["a"; 40].join(".");
    group.bench_function("topic_publish_eleven_hashes_40_words", |b| {
        b.iter(|| router.publish(black_box(&key), 1).unwrap());
    });
    group.finish();
}

criterion_group!(benches, uncontended_publish);
criterion_main!(benches);
