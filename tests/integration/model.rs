//! A model-based property test: random operations on a real queue and on a naive reference model, which
//! must agree on every result and every count.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use leasequeue::{Backoff, Lease, LeaseLost, NackOutcome, PushOptions, Pushed, Queue, TestClock};
use proptest::prelude::*;

const VISIBILITY: u64 = 50;
const BACKOFF: u64 = 10;
const MAX_ATTEMPTS: u32 = 3;
const DEDUP_WINDOW: u64 = 150;

#[derive(Clone, Debug)]
struct Push {
    delay: Option<u64>,
    priority: u8,
    group: Option<u8>,
    dedup: Option<u8>,
    ttl: Option<u64>,
}

#[derive(Clone, Debug)]
enum Op {
    Push(Push),
    Lease,
    Ack(usize),
    Nack(usize),
    Reject(usize),
    Release(usize),
    Extend(usize, u64),
    Drop(usize),
    Advance(u64),
    /// `Queue::ack_and_try_lease_batch` of one held lease, refilled with up to this many.
    AckAndLease(usize, usize),
    /// `Lease::ack_and_try_lease` of one held lease.
    AckAndTryLease(usize),
}

fn push() -> impl Strategy<Value = Push> {
    (
        prop::option::of(0..100u64),
        prop_oneof![3 => Just(0u8), 1 => 1..3u8],
        prop::option::weighted(0.3, 0..3u8),
        prop::option::weighted(0.2, 0..4u8),
        prop::option::weighted(0.2, 10..200u64),
    )
        .prop_map(|(delay, priority, group, dedup, ttl)| Push { delay, priority, group, dedup, ttl })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => push().prop_map(Op::Push),
        3 => Just(Op::Lease),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Nack),
        1 => any::<usize>().prop_map(Op::Reject),
        1 => any::<usize>().prop_map(Op::Release),
        1 => (any::<usize>(), 0..80u64).prop_map(|(i, d)| Op::Extend(i, d)),
        1 => any::<usize>().prop_map(Op::Drop),
        2 => (0..60u64).prop_map(Op::Advance),
        2 => (any::<usize>(), 0..4usize).prop_map(|(i, n)| Op::AckAndLease(i, n)),
        2 => any::<usize>().prop_map(Op::AckAndTryLease),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Ready {
        since: u64,
    },
    Delayed {
        at: u64,
    },
    /// Behind an earlier job of its group; ready at `due` at the earliest.
    Waiting {
        due: u64,
    },
    Leased {
        deadline: u64,
    },
    Acked,
    Dead,
}

#[derive(Debug)]
struct Job {
    state: State,
    attempt: u32,
    epoch: u32,
    priority: u8,
    group: Option<u8>,
    /// When its time to live runs out, until that is processed.
    ttl_at: Option<u64>,
    /// Its time to live ran out while it was leased.
    ttl_passed: bool,
}

/// The naive reference: a list of jobs, scanned in full for every question.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    jobs: Vec<Job>,
    /// Per group: its head, and the jobs waiting behind it in push order.
    groups: HashMap<u8, (usize, VecDeque<usize>)>,
    /// Per dedup key: the job and when the reservation ends.
    dedup: HashMap<u8, (usize, u64)>,
    acked: u64,
    nacked: u64,
    released: u64,
    rejected: u64,
    lapsed: u64,
    dead: u64,
    deduplicated: u64,
}

impl Model {
    fn advance(&mut self, now: u64) {
        self.now = now;
        // Events in time order; at equal times expiries, then delayed jobs, then lapses.
        loop {
            let next = self
                .jobs
                .iter()
                .enumerate()
                .flat_map(|(i, j)| {
                    let expiry = j.ttl_at.map(|at| (at, 0, i));
                    let timed = match j.state {
                        State::Delayed { at } => Some((at, 1, i)),
                        State::Leased { deadline } => Some((deadline, 2, i)),
                        _ => None,
                    };
                    [expiry, timed].into_iter().flatten().filter(|&(at, _, _)| at <= now)
                })
                .min();
            let Some((at, kind, i)) = next else { return };
            match kind {
                0 => {
                    self.jobs[i].ttl_at = None;
                    if matches!(self.jobs[i].state, State::Leased { .. }) {
                        self.jobs[i].ttl_passed = true;
                    } else {
                        self.exit(i, State::Dead, at);
                    }
                }
                1 => self.jobs[i].state = State::Ready { since: at },
                _ => {
                    self.lapsed += 1;
                    if self.jobs[i].ttl_passed || self.jobs[i].attempt >= MAX_ATTEMPTS {
                        self.exit(i, State::Dead, at);
                    } else {
                        self.jobs[i].state = State::Ready { since: at };
                    }
                }
            }
        }
    }

    fn push(&mut self, p: &Push) -> Pushed {
        let now = self.now;
        if let Some(key) = p.dedup {
            if let Some(&(job, until)) = self.dedup.get(&key) {
                if until > now {
                    self.deduplicated += 1;
                    return Pushed::Duplicate(id(job));
                }
            }
        }
        let index = self.jobs.len();
        let ready_at = now + p.delay.unwrap_or(0);
        let mut state =
            if ready_at > now { State::Delayed { at: ready_at } } else { State::Ready { since: now } };
        if let Some(g) = p.group {
            match self.groups.get_mut(&g) {
                Some((_, waiting)) => {
                    waiting.push_back(index);
                    state = State::Waiting { due: ready_at };
                }
                None => {
                    self.groups.insert(g, (index, VecDeque::new()));
                }
            }
        }
        self.jobs.push(Job {
            state,
            attempt: 0,
            epoch: 0,
            priority: p.priority,
            group: p.group,
            ttl_at: p.ttl.map(|t| now + t),
            ttl_passed: false,
        });
        if let Some(key) = p.dedup {
            self.dedup.insert(key, (index, now + DEDUP_WINDOW));
        }
        Pushed::Enqueued(id(index))
    }

    fn exit(&mut self, i: usize, state: State, at: u64) {
        if state == State::Dead {
            self.dead += 1;
        }
        self.jobs[i].state = state;
        self.jobs[i].epoch += 1;
        self.jobs[i].ttl_at = None;
        let Some(g) = self.jobs[i].group else { return };
        let Some((head, waiting)) = self.groups.get_mut(&g) else { return };
        if *head != i {
            return;
        }
        while let Some(next) = waiting.pop_front() {
            if let State::Waiting { due } = self.jobs[next].state {
                *head = next;
                self.jobs[next].state =
                    if due > at { State::Delayed { at: due } } else { State::Ready { since: at } };
                return;
            }
        }
        self.groups.remove(&g);
    }

    fn current(&self, i: usize, epoch: u32) -> Result<(), LeaseLost> {
        let job = &self.jobs[i];
        match job.state {
            State::Acked | State::Dead => Err(LeaseLost::Gone),
            _ if job.epoch != epoch => Err(LeaseLost::Superseded { attempt: job.attempt }),
            _ => Ok(()),
        }
    }

    fn count(&self, f: impl Fn(&State) -> bool) -> usize {
        self.jobs.iter().filter(|j| f(&j.state)).count()
    }
}

fn id(index: usize) -> leasequeue::JobId {
    leasequeue::JobId::from_u64(index as u64 + 1)
}

struct Held {
    lease: Lease<usize>,
    job: usize,
    epoch: u32,
}

fn options(p: &Push) -> PushOptions {
    let mut o = PushOptions::new().priority(p.priority);
    if let Some(d) = p.delay {
        o = o.delay(ms(d));
    }
    if let Some(g) = p.group {
        o = o.group(format!("group-{g}"));
    }
    if let Some(k) = p.dedup {
        o = o.dedup_key(format!("key-{k}"));
    }
    if let Some(t) = p.ttl {
        o = o.ttl(ms(t));
    }
    o
}

/// Checks a lease just taken against the model (the highest priority, the longest-waiting job of its
/// level, its attempt) and moves the model's job to leased.
fn check_lease(model: &mut Model, lease: Lease<usize>) -> Held {
    let i = *lease;
    let State::Ready { since } = model.jobs[i].state else {
        panic!("leased job {i} is {:?} in the model", model.jobs[i].state)
    };
    let ready: Vec<(u8, u64)> = model
        .jobs
        .iter()
        .filter_map(|j| match j.state {
            State::Ready { since } => Some((j.priority, since)),
            _ => None,
        })
        .collect();
    let top = ready.iter().map(|r| r.0).max();
    assert_eq!(Some(model.jobs[i].priority), top, "not the highest priority ready job");
    let earliest = ready.iter().filter(|r| Some(r.0) == top).map(|r| r.1).min();
    assert_eq!(Some(since), earliest, "not the longest-waiting job of its level");
    let job = &mut model.jobs[i];
    job.attempt += 1;
    job.epoch += 1;
    job.state = State::Leased { deadline: model.now + VISIBILITY };
    assert_eq!(lease.attempt(), job.attempt);
    Held { lease, job: i, epoch: job.epoch }
}

fn run(ops: Vec<Op>) {
    let clock = TestClock::new();
    let queue: Queue<usize> = super::store()
        .clock(clock.clone())
        .visibility_timeout(ms(VISIBILITY))
        .max_attempts(MAX_ATTEMPTS)
        .backoff(Backoff::fixed(ms(BACKOFF)))
        .dedup_window(ms(DEDUP_WINDOW))
        .build()
        .unwrap();
    let mut model = Model::default();
    let mut held: Vec<Held> = Vec::new();
    let mut ids: Vec<leasequeue::JobId> = Vec::new(); // the queue's id of each of the model's jobs
    let pick = |held: &mut Vec<Held>, i: usize| (!held.is_empty()).then(|| held.swap_remove(i % held.len()));

    for op in ops {
        match op {
            Op::Push(p) => {
                let expected = model.push(&p);
                // The model's id of the job pushed, or of the earlier job it duplicates.
                let index = expected.id().as_u64() as usize - 1;
                // A store numbers jobs as it likes (the PostgreSQL store's ids are unique across its
                // queues), increasing in push order: the queue's ids are mapped to the model's.
                match (expected, queue.push_with(index, options(&p)).unwrap()) {
                    (Pushed::Enqueued(_), Pushed::Enqueued(id)) => {
                        assert_eq!(ids.len(), index);
                        assert!(ids.last().is_none_or(|last| *last < id), "ids increase in push order");
                        ids.push(id);
                    }
                    (Pushed::Duplicate(_), Pushed::Duplicate(id)) => assert_eq!(id, ids[index]),
                    (expected, pushed) => panic!("pushed {pushed:?}, the model says {expected:?}"),
                }
            }
            Op::Lease => match queue.try_lease() {
                Ok(lease) => held.push(check_lease(&mut model, lease)),
                Err(e) => {
                    assert!(e.is_empty());
                    assert_eq!(model.count(|s| matches!(s, State::Ready { .. })), 0);
                }
            },
            Op::AckAndLease(i, n) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                let mut leases = vec![h.lease];
                assert_eq!(queue.ack_and_try_lease_batch(&mut leases, n), std::slice::from_ref(&expected));
                if expected.is_ok() {
                    model.acked += 1;
                    let now = model.now;
                    model.exit(h.job, State::Acked, now);
                }
                let ready = model.count(|s| matches!(s, State::Ready { .. }));
                assert_eq!(leases.len(), n.min(ready), "refilled with what was ready, up to {n}");
                for lease in leases {
                    held.push(check_lease(&mut model, lease));
                }
            }
            Op::AckAndTryLease(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                match (h.lease.ack_and_try_lease(), expected) {
                    (Ok(next), Ok(())) => {
                        model.acked += 1;
                        let now = model.now;
                        model.exit(h.job, State::Acked, now);
                        let ready = model.count(|s| matches!(s, State::Ready { .. }));
                        assert_eq!(next.is_some(), ready > 0, "the next job leased if one was ready");
                        held.extend(next.map(|lease| check_lease(&mut model, lease)));
                    }
                    (Err(lost), Err(expected)) => assert_eq!(lost, expected, "a stale lease takes nothing"),
                    (got, expected) => panic!("ack_and_try_lease gave {got:?}, the model {expected:?}"),
                }
            }
            Op::Ack(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                assert_eq!(h.lease.ack(), expected);
                if expected.is_ok() {
                    model.acked += 1;
                    let now = model.now;
                    model.exit(h.job, State::Acked, now);
                }
            }
            Op::Nack(i) | Op::Drop(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                let j = &model.jobs[h.job];
                let leased = matches!(j.state, State::Leased { .. });
                let dies = leased && (j.attempt >= MAX_ATTEMPTS || j.ttl_passed);
                let real = if matches!(op, Op::Drop(_)) {
                    drop(h.lease);
                    expected.clone()
                } else {
                    h.lease.nack().map(|outcome| {
                        assert_eq!(matches!(outcome, NackOutcome::DeadLettered), dies);
                    })
                };
                assert_eq!(real, expected);
                if expected.is_ok() {
                    model.nacked += 1;
                    let now = model.now;
                    if dies {
                        model.exit(h.job, State::Dead, now);
                    } else {
                        model.jobs[h.job].state = State::Delayed { at: now + BACKOFF };
                    }
                }
            }
            Op::Reject(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                assert_eq!(h.lease.reject("poison"), expected);
                if expected.is_ok() {
                    model.rejected += 1;
                    let now = model.now;
                    model.exit(h.job, State::Dead, now);
                }
            }
            Op::Release(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                assert_eq!(h.lease.release(), expected);
                if expected.is_ok() {
                    model.released += 1;
                    let now = model.now;
                    let j = &mut model.jobs[h.job];
                    if matches!(j.state, State::Leased { .. }) {
                        j.attempt -= 1;
                    }
                    if j.ttl_passed {
                        model.exit(h.job, State::Dead, now);
                    } else {
                        j.state = State::Ready { since: now };
                    }
                }
            }
            Op::Extend(i, d) => {
                if held.is_empty() {
                    continue;
                }
                let n = held.len();
                let h = &mut held[i % n];
                let expected = model.current(h.job, h.epoch);
                assert_eq!(h.lease.extend(ms(d)), expected);
                if expected.is_ok() {
                    model.jobs[h.job].state = State::Leased { deadline: model.now + d };
                    let now = model.now;
                    model.advance(now); // an extension to now lapses at once
                }
            }
            Op::Advance(d) => {
                clock.advance(ms(d));
                model.advance(model.now + d);
            }
        }
        check(&queue, &model);
    }
    drop(held);
}

fn check(queue: &Queue<usize>, model: &Model) {
    let stats = queue.stats();
    let ready = model.count(|s| matches!(s, State::Ready { .. }));
    let delayed = model.count(|s| matches!(s, State::Delayed { .. }));
    let waiting = model.count(|s| matches!(s, State::Waiting { .. }));
    let leased = model.count(|s| matches!(s, State::Leased { .. }));
    assert_eq!(
        (stats.ready, stats.delayed, stats.waiting, stats.leased),
        (ready, delayed + waiting, waiting, leased),
        "{model:?}"
    );
    assert_eq!(
        (stats.acked, stats.nacked, stats.released, stats.rejected, stats.lapsed, stats.dead_lettered),
        (model.acked, model.nacked, model.released, model.rejected, model.lapsed, model.dead)
    );
    assert_eq!(stats.deduplicated, model.deduplicated);
    // Nothing lost, nothing invented: every pushed job is live or has left exactly once.
    assert_eq!(stats.pushed, model.jobs.len() as u64);
    assert_eq!(stats.pushed, stats.acked + stats.dead_lettered + stats.len() as u64);
    assert_eq!(stats.dead as u64, stats.dead_lettered);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_agrees_with_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops);
    }
}

#[test]
fn a_jobs_lapse_and_expiry_are_processed_in_time_order() {
    let plain = |group: Option<u8>, ttl: Option<u64>| {
        Op::Push(Push { delay: None, priority: 0, group, dedup: None, ttl })
    };
    run(vec![
        plain(None, None),
        plain(None, None),
        plain(Some(0), None),
        Op::Lease,
        Op::Lease,
        Op::Nack(0),
        plain(Some(0), Some(81)),
        Op::Ack(0),
        Op::Advance(20),
        plain(Some(0), None),
        Op::Lease,
        Op::Advance(14),
        Op::Ack(0),
        Op::Lease,
        Op::Nack(0),
        Op::Lease,
        Op::Extend(0, 1),
        Op::Advance(47),
        Op::Lease,
    ]);
}
