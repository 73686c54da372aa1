//! Replay: the journal's records folded into an [`Image`] of the queue (its live jobs, dead letters and
//! dedup reservations, with their payloads still encoded), from which opening builds the queue.

use std::collections::{BTreeMap, HashMap};

use super::record::{Failure, Record};
use crate::clock::Tick;
use crate::core::FailureRecord;
use crate::FailureKind;

/// A live job as the journal last recorded it.
#[derive(Clone, Debug)]
pub(crate) struct JobImage {
    pub pushed_at: Tick,
    /// When it may become ready (the time it was pushed or requeued with).
    pub ready_at: Tick,
    pub priority: u8,
    pub group: Option<String>,
    pub expires_at: Option<Tick>,
    pub attempt: u32,
    /// The deadline of the lease that is out, if one is.
    pub lease: Option<Tick>,
    pub history: Vec<Failure>,
    pub payload: Vec<u8>,
}

/// A dead letter in the built-in store.
#[derive(Clone, Debug)]
pub(crate) struct LetterImage {
    pub id: u64,
    pub reason: u8,
    pub attempts: u32,
    pub pushed_at: Tick,
    pub dead_at: Tick,
    pub history: Vec<Failure>,
    pub payload: Vec<u8>,
}

impl JobImage {
    /// The checkpoint record of this job.
    pub(crate) fn record(&self, id: u64) -> Record<'_> {
        Record::Job {
            id,
            pushed_at: self.pushed_at,
            ready_at: self.ready_at,
            priority: self.priority,
            group: self.group.as_deref(),
            expires_at: self.expires_at,
            attempt: self.attempt,
            lease: self.lease,
            history: self.history.clone(),
            payload: &self.payload,
        }
    }
}

impl LetterImage {
    /// The checkpoint record of this dead letter.
    pub(crate) fn record(&self) -> Record<'_> {
        Record::Letter {
            id: self.id,
            reason: self.reason,
            attempts: self.attempts,
            pushed_at: self.pushed_at,
            dead_at: self.dead_at,
            history: self.history.clone(),
            payload: &self.payload,
        }
    }
}

/// The queue as of the last record replayed.
#[derive(Debug, Default)]
pub(crate) struct Image {
    /// The clock the records' times are on: its tick at a wall-clock time (nanoseconds since the Unix
    /// epoch; for a test clock, its own tick).
    pub wall_ns: u64,
    pub tick: Tick,
    pub next_id: u64,
    pub paused: bool,
    /// Live jobs by id.
    pub jobs: BTreeMap<u64, JobImage>,
    /// Dead letters in the order they went in, and where each id is in that order.
    pub dead: BTreeMap<u64, LetterImage>,
    dead_at: HashMap<u64, u64>,
    next_order: u64,
    /// Dedup reservations: key, job id, end.
    pub reservations: HashMap<String, (u64, Tick)>,
}

/// Replays records in order.
#[derive(Default)]
pub(crate) struct Replay {
    /// The image as of the last complete checkpoint and the changes after it.
    image: Option<Image>,
    /// A checkpoint being read (superseding `image` once its `End` is read).
    pending: Option<Image>,
}

impl Replay {
    /// Applies one record, or says what is wrong with it.
    pub(crate) fn apply(&mut self, bytes: &[u8]) -> Result<(), &'static str> {
        let record: Record<'_> = postcard::from_bytes(bytes).map_err(|_| "a record does not decode")?;
        match record {
            Record::Begin { wall_ns, tick, next_id, paused } => {
                self.pending = Some(Image { wall_ns, tick, next_id, paused, ..Image::default() });
            }
            Record::Job {
                id,
                pushed_at,
                ready_at,
                priority,
                group,
                expires_at,
                attempt,
                lease,
                history,
                payload,
            } => {
                let image = self.pending.as_mut().ok_or("a checkpoint's job outside a checkpoint")?;
                image.add(
                    id,
                    JobImage {
                        pushed_at,
                        ready_at,
                        priority,
                        group: group.map(str::to_owned),
                        expires_at,
                        attempt,
                        lease,
                        history,
                        payload: payload.to_vec(),
                    },
                );
            }
            Record::Letter { id, reason, attempts, pushed_at, dead_at, history, payload } => {
                // In a checkpoint, one of the store's dead letters; after it, one put (back) into the store
                // (refused by the sink, or not redriven after all), unless it is there already.
                let letter = LetterImage {
                    id,
                    reason,
                    attempts,
                    pushed_at,
                    dead_at,
                    history,
                    payload: payload.to_vec(),
                };
                match (&mut self.pending, &mut self.image) {
                    (Some(pending), _) => pending.bury(letter),
                    (None, Some(image)) if !image.dead_at.contains_key(&id) => image.bury(letter),
                    (None, Some(_)) => {}
                    (None, None) => return Err("a dead letter before the first checkpoint"),
                }
            }
            Record::Reserved { key, id, until } => {
                let image = self.pending.as_mut().ok_or("a checkpoint's reservation outside a checkpoint")?;
                image.reservations.insert(key.to_owned(), (id, until));
            }
            Record::End => {
                self.image = Some(self.pending.take().ok_or("a checkpoint's end without its beginning")?);
            }
            change => {
                if self.pending.is_some() {
                    return Err("a change inside a checkpoint");
                }
                self.image.as_mut().ok_or("a change before the first checkpoint")?.change(change);
            }
        }
        Ok(())
    }

    /// The image as of the last complete checkpoint and the changes after it; `None` for a journal with
    /// none (a new one, or one whose first checkpoint was cut short). A checkpoint cut short is ignored.
    pub(crate) fn finish(self) -> Option<Image> {
        self.image
    }
}

impl Image {
    fn add(&mut self, id: u64, job: JobImage) {
        self.next_id = self.next_id.max(id.saturating_add(1));
        self.jobs.insert(id, job);
    }

    fn bury(&mut self, letter: LetterImage) {
        self.dead_at.insert(letter.id, self.next_order);
        self.dead.insert(self.next_order, letter);
        self.next_order += 1;
    }

    /// Applies a change. A change that names a job the image does not hold is a defect of the writer: a
    /// debug build stops there; a release build skips it rather than refuse to open the journal.
    fn change(&mut self, record: Record<'_>) {
        match record {
            Record::Push { id, at, ready_at, priority, group, expires_at, dedup, payload } => {
                if let Some((key, until)) = dedup {
                    self.reservations.insert(key.to_owned(), (id, until));
                }
                self.add(
                    id,
                    JobImage {
                        pushed_at: at,
                        ready_at,
                        priority,
                        group: group.map(str::to_owned),
                        expires_at,
                        attempt: 0,
                        lease: None,
                        history: Vec::new(),
                        payload: payload.to_vec(),
                    },
                );
            }
            Record::Lease { id, attempt, deadline } => {
                let Some(job) = self.jobs.get_mut(&id) else { return missing(id) };
                if let Some(lapsed) = job.lease {
                    // The last lease lapsed (a lapse is not recorded: it follows from the deadline).
                    job.history.push(Failure::of(&FailureRecord {
                        attempt: job.attempt,
                        at: lapsed,
                        kind: FailureKind::Lapsed,
                        message: None,
                    }));
                }
                job.attempt = attempt;
                job.lease = Some(deadline);
            }
            Record::Ack { id } => {
                if self.jobs.remove(&id).is_none() {
                    missing(id);
                }
            }
            Record::Requeue { id, attempt, due, history } => {
                let Some(job) = self.jobs.get_mut(&id) else { return missing(id) };
                job.attempt = attempt;
                job.lease = None;
                job.ready_at = due;
                job.history = history;
            }
            Record::Dead { id, reason, attempts, at, history } => {
                let Some(job) = self.jobs.remove(&id) else { return missing(id) };
                self.bury(LetterImage {
                    id,
                    reason,
                    attempts,
                    pushed_at: job.pushed_at,
                    dead_at: at,
                    history,
                    payload: job.payload,
                });
            }
            Record::Unbury { id } => {
                if let Some(order) = self.dead_at.remove(&id) {
                    self.dead.remove(&order);
                }
            }
            Record::DrainDead => {
                self.dead.clear();
                self.dead_at.clear();
            }
            Record::Purge => self.jobs.clear(),
            Record::Paused(paused) => self.paused = paused,
            // Checkpoint records never come here (see `Replay::apply`).
            Record::Begin { .. }
            | Record::Job { .. }
            | Record::Letter { .. }
            | Record::Reserved { .. }
            | Record::End => {}
        }
    }
}

fn missing(id: u64) {
    debug_assert!(false, "the journal names job {id}, which it does not hold");
}
