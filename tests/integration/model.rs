//! A model-based property test: random operations on a real queue and on a naive reference model, which
//! must agree on every result and every count.

use std::time::Duration;

use leasequeue::{Backoff, Lease, LeaseLost, NackOutcome, PushOptions, Queue, TestClock};
use proptest::prelude::*;

const VISIBILITY: u64 = 50;
const BACKOFF: u64 = 10;
const MAX_ATTEMPTS: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    Push { delay: Option<u64> },
    Lease,
    Ack(usize),
    Nack(usize),
    Reject(usize),
    Release(usize),
    Extend(usize, u64),
    Drop(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::option::of(0..100u64).prop_map(|delay| Op::Push { delay }),
        3 => Just(Op::Lease),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Nack),
        1 => any::<usize>().prop_map(Op::Reject),
        1 => any::<usize>().prop_map(Op::Release),
        1 => (any::<usize>(), 0..80u64).prop_map(|(i, d)| Op::Extend(i, d)),
        1 => any::<usize>().prop_map(Op::Drop),
        2 => (0..60u64).prop_map(Op::Advance),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Ready { since: u64 },
    Delayed { at: u64 },
    Leased { deadline: u64 },
    Acked,
    Dead,
}

#[derive(Debug)]
struct Job {
    state: State,
    attempt: u32,
    epoch: u32,
}

/// The naive reference: a list of jobs, scanned in full for every question.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    jobs: Vec<Job>,
    acked: u64,
    nacked: u64,
    released: u64,
    rejected: u64,
    expired: u64,
    dead: u64,
}

impl Model {
    fn advance(&mut self, now: u64) {
        self.now = now;
        // Events in time order (ties: delayed jobs, then lapses, each by id), as the queue documents.
        loop {
            let next = self
                .jobs
                .iter()
                .enumerate()
                .filter_map(|(i, j)| match j.state {
                    State::Delayed { at } if at <= now => Some((at, 0, i)),
                    State::Leased { deadline } if deadline <= now => Some((deadline, 1, i)),
                    _ => None,
                })
                .min();
            let Some((at, _, i)) = next else { return };
            match self.jobs[i].state {
                State::Delayed { .. } => self.jobs[i].state = State::Ready { since: at },
                _ => {
                    self.expired += 1;
                    self.fail_or_ready(i, at);
                }
            }
        }
    }

    fn fail_or_ready(&mut self, i: usize, at: u64) {
        if self.jobs[i].attempt >= MAX_ATTEMPTS {
            self.exit(i, State::Dead);
        } else {
            self.jobs[i].state = State::Ready { since: at };
        }
    }

    fn exit(&mut self, i: usize, state: State) {
        if state == State::Dead {
            self.dead += 1;
        }
        self.jobs[i].state = state;
        self.jobs[i].epoch += 1;
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

struct Held {
    lease: Lease<usize>,
    job: usize,
    epoch: u32,
}

fn run(ops: Vec<Op>) {
    let clock = TestClock::new();
    let queue: Queue<usize> = Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(ms(VISIBILITY))
        .max_attempts(MAX_ATTEMPTS)
        .backoff(Backoff::fixed(ms(BACKOFF)))
        .build()
        .unwrap();
    let mut model = Model::default();
    let mut held: Vec<Held> = Vec::new();
    let pick = |held: &mut Vec<Held>, i: usize| (!held.is_empty()).then(|| held.swap_remove(i % held.len()));

    for op in ops {
        match op {
            Op::Push { delay } => {
                let index = model.jobs.len();
                let id = match delay {
                    Some(d) => queue.push_with(index, PushOptions::new().delay(ms(d))).unwrap().id(),
                    None => queue.push(index).unwrap(),
                };
                assert_eq!(id.as_u64(), index as u64 + 1);
                let state = match delay {
                    Some(d) if d > 0 => State::Delayed { at: model.now + d },
                    _ => State::Ready { since: model.now },
                };
                model.jobs.push(Job { state, attempt: 0, epoch: 0 });
            }
            Op::Lease => match queue.try_lease() {
                Ok(lease) => {
                    let i = *lease;
                    let State::Ready { since } = model.jobs[i].state else {
                        panic!("leased job {i} is {:?} in the model", model.jobs[i].state)
                    };
                    let earliest = model
                        .jobs
                        .iter()
                        .filter_map(|j| match j.state {
                            State::Ready { since } => Some(since),
                            _ => None,
                        })
                        .min();
                    assert_eq!(Some(since), earliest, "not the longest-waiting ready job");
                    let job = &mut model.jobs[i];
                    job.attempt += 1;
                    job.epoch += 1;
                    job.state = State::Leased { deadline: model.now + VISIBILITY };
                    assert_eq!(lease.attempt(), job.attempt);
                    held.push(Held { lease, job: i, epoch: job.epoch });
                }
                Err(e) => {
                    assert!(e.is_empty());
                    assert_eq!(model.count(|s| matches!(s, State::Ready { .. })), 0);
                }
            },
            Op::Ack(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                assert_eq!(h.lease.ack(), expected);
                if expected.is_ok() {
                    model.acked += 1;
                    model.exit(h.job, State::Acked);
                }
            }
            Op::Nack(i) | Op::Drop(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                let dropped = matches!(op, Op::Drop(_));
                let real = if dropped {
                    drop(h.lease);
                    expected
                } else {
                    h.lease.nack().map(|outcome| {
                        assert_eq!(matches!(outcome, NackOutcome::DeadLettered), {
                            let j = &model.jobs[h.job];
                            matches!(j.state, State::Leased { .. }) && j.attempt >= MAX_ATTEMPTS
                        });
                    })
                };
                assert_eq!(real, expected);
                if expected.is_ok() {
                    model.nacked += 1;
                    let j = &model.jobs[h.job];
                    if matches!(j.state, State::Leased { .. }) && j.attempt >= MAX_ATTEMPTS {
                        model.exit(h.job, State::Dead);
                    } else {
                        model.jobs[h.job].state = State::Delayed { at: model.now + BACKOFF };
                    }
                }
            }
            Op::Reject(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                assert_eq!(h.lease.reject("poison"), expected);
                if expected.is_ok() {
                    model.rejected += 1;
                    model.exit(h.job, State::Dead);
                }
            }
            Op::Release(i) => {
                let Some(h) = pick(&mut held, i) else { continue };
                let expected = model.current(h.job, h.epoch);
                assert_eq!(h.lease.release(), expected);
                if expected.is_ok() {
                    model.released += 1;
                    let j = &mut model.jobs[h.job];
                    if matches!(j.state, State::Leased { .. }) {
                        j.attempt -= 1;
                    }
                    j.state = State::Ready { since: model.now };
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
    let leased = model.count(|s| matches!(s, State::Leased { .. }));
    assert_eq!((stats.ready, stats.delayed, stats.leased), (ready, delayed, leased), "{model:?}");
    assert_eq!(
        (stats.acked, stats.nacked, stats.released, stats.rejected, stats.expired, stats.dead_lettered),
        (model.acked, model.nacked, model.released, model.rejected, model.expired, model.dead)
    );
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
