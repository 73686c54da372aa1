use std::sync::{Arc, Mutex};

use leasequeue::{DeadLetter, DeadLetterReason, FailureKind, Queue};

use super::{builder, lacks, queue, secs, Needs};

#[test]
fn max_attempts_leads_to_exactly_one_dead_letter_with_its_history() {
    let (q, clock) = queue();
    let id = q.push("webhook").unwrap();
    for attempt in 1..=3 {
        let lease = q.try_lease().unwrap();
        lease.nack_with(format!("502 on attempt {attempt}")).unwrap();
        clock.advance(secs(10));
    }
    assert!(q.try_lease().is_err());
    let dead = q.drain_dead_letters();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        (d.id(), d.reason(), d.attempts(), *d.job()),
        (id, DeadLetterReason::MaxAttempts, 3, "webhook")
    );
    let messages: Vec<_> = d.history().iter().map(|f| f.message.clone().unwrap()).collect();
    assert_eq!(messages, ["502 on attempt 1", "502 on attempt 2", "502 on attempt 3"]);
    assert!(d.history().iter().all(|f| f.kind == FailureKind::Nacked));
    assert_eq!(d.dead_lettered_at() - d.pushed_at(), secs(20));
    let stats = q.stats();
    assert_eq!((stats.dead_lettered, stats.dead, stats.len()), (1, 0, 0));
}

#[test]
fn the_built_in_store_is_readable_and_drainable() {
    let (q, _clock) = queue();
    q.push(1).unwrap();
    q.try_lease().unwrap().reject("bad").unwrap();
    assert_eq!(q.dead_letters().len(), 1);
    assert_eq!(q.stats().dead, 1);
    assert_eq!(q.drain_dead_letters().len(), 1);
    assert_eq!(q.stats().dead, 0);
}

#[test]
fn a_closure_sink_gets_each_dead_letter_once() {
    if lacks(Needs::Sink) {
        return;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let (b, _clock) = builder();
    let q = b.dead_letter(move |d: DeadLetter<u32>| sink.lock().unwrap().push(d.into_job())).build().unwrap();
    for i in 0..3 {
        q.push(i).unwrap();
        q.try_lease().unwrap().reject("no").unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);
    assert_eq!(q.stats().dead, 0);
}

#[test]
fn a_sink_owns_the_job_when_no_lease_shares_it() {
    if lacks(Needs::Sink) {
        return;
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let (b, _clock) = builder();
    let q = b.dead_letter(tx).build().unwrap();
    q.push(String::from("payload")).unwrap();
    q.try_lease().unwrap().reject("no").unwrap();
    assert_eq!(rx.try_recv().unwrap().try_into_job().unwrap(), "payload");
}

#[test]
fn a_full_channel_hands_dead_letters_back_to_the_store() {
    if lacks(Needs::Sink) {
        return;
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (b, _clock) = builder();
    let q = b.dead_letter(tx).build().unwrap();
    for i in 0..3 {
        q.push(i).unwrap();
        q.try_lease().unwrap().reject("no").unwrap();
    }
    assert_eq!(*rx.try_recv().unwrap().job(), 0);
    let stored: Vec<u32> = q.drain_dead_letters().iter().map(|d| *d.job()).collect();
    assert_eq!(stored, [1, 2]);
}

#[test]
fn a_dead_letter_queue_can_be_leased_and_redriven() {
    if lacks(Needs::Sink) {
        return;
    }
    let dlq: Queue<DeadLetter<&str>> = super::new_queue();
    let (b, _clock) = builder();
    let q = b.dead_letter(dlq.clone()).build().unwrap();
    q.push("poison").unwrap();
    q.try_lease().unwrap().reject("malformed").unwrap();
    let dead = dlq.try_lease().unwrap();
    assert_eq!(dead.reason(), DeadLetterReason::Rejected);
    q.push(dead.job()).unwrap(); // redrive
    dead.ack().unwrap();
    assert_eq!(*q.try_lease().unwrap(), "poison");
}

#[test]
fn a_closed_dead_letter_queue_hands_back_to_the_store() {
    if lacks(Needs::Sink) {
        return;
    }
    let dlq: Queue<DeadLetter<u8>> = super::new_queue();
    dlq.close();
    let (b, _clock) = builder();
    let q = b.dead_letter(dlq).build().unwrap();
    q.push(1).unwrap();
    q.try_lease().unwrap().reject("no").unwrap();
    assert_eq!(q.stats().dead, 1);
}

#[test]
fn a_sink_may_call_back_into_the_queue() {
    if lacks(Needs::Sink) {
        return;
    }
    let slot: Arc<Mutex<Option<Queue<u32>>>> = Arc::default();
    let inner = Arc::clone(&slot);
    let (b, _clock) = builder();
    let q = b
        .dead_letter(move |d: DeadLetter<u32>| {
            let q = inner.lock().unwrap().clone().unwrap();
            let _ = q.stats();
            q.push(*d.job() + 100).unwrap(); // re-enqueue as something else
        })
        .build()
        .unwrap();
    *slot.lock().unwrap() = Some(q.clone());
    q.push(1).unwrap();
    q.try_lease().unwrap().reject("no").unwrap();
    assert_eq!(*q.try_lease().unwrap(), 101);
    slot.lock().unwrap().take();
}

#[test]
fn the_history_keeps_the_most_recent_failures() {
    let (b, clock) = builder();
    let q = b.max_attempts(10).history_limit(2).build().unwrap();
    q.push(1).unwrap();
    for _ in 0..10 {
        q.try_lease().unwrap().nack().unwrap();
        clock.advance(secs(10));
    }
    let dead = q.drain_dead_letters();
    assert_eq!(dead[0].attempts(), 10);
    assert_eq!(dead[0].history().iter().map(|f| f.attempt).collect::<Vec<_>>(), [9, 10]);
}
