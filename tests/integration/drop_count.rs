//! Each job value is dropped exactly once, whatever path it took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use leasequeue::{DeadLetter, PushOptions, Queue};

use super::{builder, lacks, secs, Needs};

struct Counted {
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn every_job_is_dropped_exactly_once() {
    if lacks(Needs::Capacity) {
        return;
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let job = || Counted { drops: Arc::clone(&drops) };
    let sunk: Arc<std::sync::Mutex<Vec<DeadLetter<Counted>>>> = Arc::default();
    let (b, clock) = builder();
    let sink = Arc::clone(&sunk);
    let q: Queue<Counted> =
        b.capacity(20).dead_letter(move |d| sink.lock().unwrap().push(d)).build().unwrap();

    q.push(job()).unwrap(); // acked
    q.try_lease().unwrap().ack().unwrap();
    q.push(job()).unwrap(); // rejected into the sink
    q.try_lease().unwrap().reject("no").unwrap();
    q.push(job()).unwrap(); // lapses three times: dead-lettered while stale leases still hold it
    let mut stale = Vec::new();
    for _ in 0..3 {
        stale.push(q.try_lease().unwrap());
        clock.advance(secs(30));
    }
    q.push(job()).unwrap(); // nacked, then left ready in the queue
    q.try_lease().unwrap().nack().unwrap();
    q.push_with(job(), PushOptions::new().delay(secs(999))).unwrap(); // left delayed
    q.push(job()).unwrap(); // left leased
    let leased = q.try_lease().unwrap();
    q.close();
    let refused = q.push(job()).unwrap_err().into_inner(); // refused: handed back
    let full = super::store().capacity(1).build().unwrap();
    full.push(job()).unwrap();
    let refused_full = full.try_push(job()).unwrap_err().into_inner();

    assert_eq!(drops.load(Ordering::SeqCst), 1, "only the acked job is gone so far");
    drop(refused);
    drop(refused_full);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    drop(stale);
    assert_eq!(sunk.lock().unwrap().len(), 2);
    sunk.lock().unwrap().clear();
    assert_eq!(drops.load(Ordering::SeqCst), 5);
    drop(leased); // nack: still in the queue
    assert_eq!(drops.load(Ordering::SeqCst), 5);
    drop(q);
    drop(full);
    assert_eq!(drops.load(Ordering::SeqCst), 9);
}
