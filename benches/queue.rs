//! The single-thread push -> lease -> ack cycle, next to crossbeam-channel's bounded send + recv (the
//! floor: no leases, no retries), and the same cycle with many jobs resident.
//!
//! Run with `cargo bench --bench queue`; compare ratios within one run, not absolute times.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use leasequeue::{Queue, TestClock};

fn uncontended_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_cycle");
    group.bench_function("crossbeam_bounded_send_recv", |b| {
        let (tx, rx) = crossbeam_channel::bounded(1024);
        b.iter(|| {
            tx.send(black_box(1u64)).unwrap();
            black_box(rx.recv().unwrap());
        });
    });
    group.bench_function("leasequeue_push_lease_ack", |b| {
        let queue = Queue::new();
        b.iter(|| {
            queue.push(black_box(1u64)).unwrap();
            let lease = queue.try_lease().unwrap();
            black_box(*lease);
            lease.ack().unwrap();
        });
    });
    group.bench_function("leasequeue_push_lease_ack_test_clock", |b| {
        let queue = Queue::builder().clock(TestClock::new()).build().unwrap();
        b.iter(|| {
            queue.push(black_box(1u64)).unwrap();
            let lease = queue.try_lease().unwrap();
            black_box(*lease);
            lease.ack().unwrap();
        });
    });
    group.finish();
}

fn uncontended_resident(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_resident");
    for resident in [1_000usize, 100_000, 1_000_000] {
        group.bench_with_input(BenchmarkId::new("push_lease_ack", resident), &resident, |b, &resident| {
            let queue = Queue::new();
            for i in 0..resident {
                queue.push(i as u64).unwrap();
            }
            b.iter(|| {
                queue.push(black_box(1u64)).unwrap();
                let lease = queue.try_lease().unwrap();
                black_box(*lease);
                lease.ack().unwrap();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, uncontended_cycle, uncontended_resident);
criterion_main!(benches);
