use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use leasequeue::{Backoff, Queue};

use super::{lacks, Needs};

/// Several producers and consumers on the system clock; some attempts fail and are retried at once.
/// Every job is acked exactly once and none is lost.
#[test]
fn producers_and_consumers_ack_every_job_exactly_once() {
    if lacks(Needs::Capacity) {
        return;
    }
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    const PER_PRODUCER: usize = 5_000;
    let queue: Queue<usize> = super::store().backoff(Backoff::none()).capacity(256).build().unwrap();
    let acks: Arc<Vec<AtomicUsize>> =
        Arc::new((0..PRODUCERS * PER_PRODUCER).map(|_| AtomicUsize::new(0)).collect());

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = queue.clone();
            thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    q.push(p * PER_PRODUCER + i).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let q = queue.clone();
            let acks = Arc::clone(&acks);
            thread::spawn(move || {
                while let Ok(lease) = q.lease() {
                    let job = *lease;
                    if job % 7 == 0 && lease.attempt() == 1 {
                        lease.nack_with("transient").unwrap();
                    } else {
                        lease.ack().unwrap();
                        acks[job].fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    queue.close();
    for c in consumers {
        c.join().unwrap();
    }
    assert!(acks.iter().all(|a| a.load(Ordering::Relaxed) == 1));
    let stats = queue.stats();
    assert_eq!(stats.acked, (PRODUCERS * PER_PRODUCER) as u64);
    assert_eq!(stats.nacked, (0..PRODUCERS * PER_PRODUCER).filter(|j| j % 7 == 0).count() as u64);
    assert_eq!((stats.len(), stats.dead_lettered), (0, 0));
}
