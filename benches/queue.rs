//! The single-thread push -> lease -> ack cycle, next to crossbeam-channel's bounded send + recv (the
//! floor: no leases, no retries), and the same cycle with many jobs resident.
//!
//! Run with `cargo bench --bench queue`; compare ratios within one run, not absolute times.

use std::hint::black_box;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use leasequeue::{PushOptions, Queue, TestClock};

/// One push -> lease -> ack.
fn cycle(queue: &Queue<u64>) {
    queue.push(black_box(1u64)).unwrap();
    let lease = queue.try_lease().unwrap();
    black_box(*lease);
    lease.ack().unwrap();
}

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
            cycle(&queue);
        });
    });
    group.bench_function("leasequeue_push_lease_ack_with_observer", |b| {
        let queue = Queue::builder()
            .observer(|e: &leasequeue::Event| {
                black_box(e);
            })
            .build()
            .unwrap();
        b.iter(|| {
            cycle(&queue);
        });
    });
    group.bench_function("leasequeue_push_lease_ack_rate_limited", |b| {
        // A limit that never binds here (10^8 a second): the cost of keeping the window (compare with the
        // plain cycle; aim: under 10 % more).
        let queue =
            Queue::builder().rate_limit(1_000_000, std::time::Duration::from_millis(10)).build().unwrap();
        b.iter(|| {
            cycle(&queue);
        });
    });
    group.bench_function("leasequeue_push_lease_ack_test_clock", |b| {
        let queue = Queue::builder().clock(TestClock::new()).build().unwrap();
        b.iter(|| {
            cycle(&queue);
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
                cycle(&queue);
            });
        });
    }
    group.finish();
}

/// The cycle with the scheduling features in use: mixed priorities, and 1 000 active groups.
fn uncontended_scheduling(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_scheduling");
    group.bench_function("push_lease_ack_8_priorities", |b| {
        let queue = Queue::new();
        for i in 0..1_000u64 {
            queue.push_with(i, PushOptions::new().priority((i % 8) as u8)).unwrap();
        }
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            queue.push_with(black_box(i), PushOptions::new().priority((i % 8) as u8)).unwrap();
            let lease = queue.try_lease().unwrap();
            black_box(*lease);
            lease.ack().unwrap();
        });
    });
    group.bench_function("push_lease_ack_1000_groups", |b| {
        let keys: Vec<Arc<str>> = (0..1_000).map(|g| Arc::from(format!("customer-{g}"))).collect();
        let queue = Queue::new();
        // Every group has a job in flight or ready, and one waiting behind it.
        for round in 0..2 {
            for key in &keys {
                queue.push_with(round, PushOptions::new().group(Arc::clone(key))).unwrap();
            }
        }
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            queue
                .push_with(black_box(1), PushOptions::new().group(Arc::clone(&keys[i % keys.len()])))
                .unwrap();
            let lease = queue.try_lease().unwrap();
            black_box(*lease);
            lease.ack().unwrap(); // the group's next job becomes ready
        });
    });
    group.finish();
}

/// Batches of 32: per-job cost next to 32 single crossbeam-channel sends and receives.
fn uncontended_batch(c: &mut Criterion) {
    const N: usize = 32;
    let mut group = c.benchmark_group("uncontended_batch_32");
    group.throughput(criterion::Throughput::Elements(N as u64));
    group.bench_function("crossbeam_bounded_send_recv_x32", |b| {
        let (tx, rx) = crossbeam_channel::bounded(1024);
        b.iter(|| {
            for i in 0..N as u64 {
                tx.send(black_box(i)).unwrap();
            }
            for _ in 0..N {
                black_box(rx.recv().unwrap());
            }
        });
    });
    group.bench_function("leasequeue_single_calls_x32", |b| {
        let queue = Queue::new();
        b.iter(|| {
            for i in 0..N as u64 {
                queue.push(black_box(i)).unwrap();
            }
            for _ in 0..N {
                queue.try_lease().unwrap().ack().unwrap();
            }
        });
    });
    group.bench_function("leasequeue_push_lease_ack_batch", |b| {
        let queue = Queue::new();
        b.iter(|| {
            queue.push_batch((0..N as u64).map(black_box));
            let leases = queue.try_lease_batch(N).unwrap();
            black_box(queue.ack_batch(leases));
        });
    });
    group.finish();
}

criterion_group!(benches, uncontended_cycle, uncontended_resident, uncontended_scheduling, uncontended_batch);
criterion_main!(benches);
