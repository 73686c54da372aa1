//! The journal store (feature `journal`): the memory store plus a crash-safe log of its changes on local
//! disk, so that a queue's jobs survive `kill -9` and, under the default sync policy, power loss.
//!
//! - [`log`]: the segmented, checksummed, group-committed append-only log and its recovery.
//! - [`record`]: one record per change the core makes (push with payload and options, lease with its
//!   attempt, ack, requeue after a nack or release with the failure history, dead-lettering, the
//!   dead-letter store's changes, purge, pause), in postcard.
//! - [`replay`]: records folded into an image of the queue, from which opening builds it.
//!
//! **Writing.** The memory store tells the journal of every change through
//! [`Durable`](crate::store::Durable), under the queue's lock, so that the records' order is the core's;
//! a push's record is written before the push takes effect (a write that fails refuses the push, and
//! nothing changed), the others after (a write that fails fails the journal). Each operation then waits
//! for its records to be durable after releasing the lock, so that one sync serves every operation that
//! wrote meanwhile (group commit). A lapse is not written: it follows from the lease's deadline. Nor is
//! an extension: a lease out at a crash lapses on recovery whatever its deadline (a lapse that the
//! journal derives takes the last recorded deadline as its time).
//!
//! **Time.** The queue's clock restarts with the process, so a checkpoint names its clock's anchor (the
//! tick at a wall-clock time; a test clock's own tick stands for wall time), and opening maps the
//! records' times onto the new clock: a retry due in an hour is still due an hour after it was
//! scheduled, however long the process was down.
//!
//! **Opening** replays the journal into an image, builds the queue from it (a lease that was out at the
//! crash lapses at once: an attempt spent, as SQS and RabbitMQ do, so a job that kills the process every
//! time still runs out of attempts), and writes a checkpoint of the result into a new segment, which
//! deletes the older ones. **Compaction** writes the same checkpoint while the queue runs, once the log
//! since the last one is over twice the live data's estimated size plus a segment. Under the lock it only
//! copies the state (the payloads shared) and moves the log on to the segment after next; the operation
//! that found it due encodes and writes it after releasing the lock, into the segment it skipped
//! (through a file renamed into place once synced), so that the queue waits only for the copy.

mod log;
mod record;
mod replay;

use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::log::{JournalError, SyncPolicy, Torn};
use self::log::{Log, Options};
use self::record::{failures, reason_code, reason_of, Record};
use self::replay::{Image, JobImage, LetterImage, Replay};
use crate::clock::{Tick, NEVER};
use crate::core::{FailureRecord, Placement, RestoredJob, SavedJob, State};
use crate::store::memory::Core;
use crate::store::{Change, Durable, Pending};
use crate::{Clock, DeadLetter, Failure, JobId, Queue, QueueBuilder, StoreError};

/// What opening a journal found (feature `journal`): see [`Queue::recovery`].
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "journal")] {
/// use leasequeue::Queue;
///
/// let dir = std::env::temp_dir().join(format!("leasequeue-doc-recovery-{}", std::process::id()));
/// let queue: Queue<String> = Queue::builder().open(&dir).unwrap();
/// queue.push("resize photo 7".to_string()).unwrap();
/// drop(queue);
///
/// let queue: Queue<String> = Queue::builder().open(&dir).unwrap();
/// let recovery = queue.recovery().unwrap();
/// assert_eq!(recovery.jobs, 1);
/// assert_eq!(recovery.torn, None);
/// # drop(queue);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Records replayed.
    pub records: u64,
    /// A torn tail cut off the last segment, if there was one.
    pub torn: Option<Torn>,
    /// Live jobs recovered (leased ones included).
    pub jobs: usize,
    /// Jobs that were leased when the journal was last closed or the process died: their lease lapses
    /// at once, an attempt spent.
    pub leased: usize,
    /// Dead letters recovered into the built-in store.
    pub dead_letters: usize,
    /// Jobs and dead letters whose payload no longer deserializes into the queue's job type. They are
    /// kept in the journal as they were (see [`Queue::undecodable`]), never dropped.
    pub undecodable: Vec<JobId>,
}

/// A job or dead letter whose payload no longer deserializes into the queue's job type: its id and its
/// bytes as the journal holds them (postcard), kept (with the rest of its record: attempts, history,
/// times) until taken with [`Queue::take_undecodable`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undecodable {
    /// The job's id.
    pub id: JobId,
    /// The serialized job.
    pub bytes: Vec<u8>,
    /// Whether it was a dead letter (else a live job).
    pub dead: bool,
}

/// An undecodable job or dead letter as the journal keeps it, its times on this process's clock: written
/// back into every checkpoint as it was read.
#[derive(Clone, Debug)]
enum Kept {
    Job(u64, JobImage),
    Letter(LetterImage),
}

impl Kept {
    fn shown(&self) -> Undecodable {
        match self {
            Kept::Job(id, job) => {
                Undecodable { id: JobId::from_u64(*id), bytes: job.payload.clone(), dead: false }
            }
            Kept::Letter(letter) => {
                Undecodable { id: JobId::from_u64(letter.id), bytes: letter.payload.clone(), dead: true }
            }
        }
    }

    /// The same, its times mapped onto another clock.
    fn mapped(self, map: &impl Fn(Tick) -> Tick) -> Kept {
        let failures = |history: Vec<record::Failure>| {
            history.into_iter().map(|f| record::Failure { at: map(f.at), ..f }).collect()
        };
        match self {
            Kept::Job(id, job) => Kept::Job(
                id,
                JobImage {
                    pushed_at: map(job.pushed_at),
                    ready_at: map(job.ready_at),
                    expires_at: job.expires_at.map(map),
                    lease: job.lease.map(map),
                    history: failures(job.history),
                    ..job
                },
            ),
            Kept::Letter(letter) => Kept::Letter(LetterImage {
                pushed_at: map(letter.pushed_at),
                dead_at: map(letter.dead_at),
                history: failures(letter.history),
                ..letter
            }),
        }
    }
}

/// The journal store's options, set on the builder.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JournalOptions {
    pub sync: SyncPolicy,
    pub segment_size: Option<u64>,
    /// `build` opens a checked journal (see [`QueueBuilder::journal_conformance`]).
    pub conformance: bool,
}

/// A serialized payload into `out` (the job type is known where a journal is opened, not in the store).
type Encode<T> = fn(&T, &mut Vec<u8>) -> Result<(), postcard::Error>;

fn encode<T: Serialize>(job: &T, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    *out = postcard::to_extend(job, std::mem::take(out))?;
    Ok(())
}

/// A live journal: what the memory store tells of its changes goes here.
pub(crate) struct Journal<T> {
    log: Log,
    encode: Encode<T>,
    clock: Clock,
    /// This process's clock anchor (see the module docs).
    wall_ns: u64,
    tick: Tick,
    /// Where records are encoded and written (the queue's lock is held: uncontended).
    scratch: Mutex<Out>,
    undecodable: Mutex<Vec<Kept>>,
    recovery: Recovery,
    segment_size: u64,
    /// Bytes written since the last checkpoint, and the push records' bytes and count (the compaction
    /// estimate of the live data's size).
    since_checkpoint: AtomicU64,
    push_bytes: AtomicU64,
    pushes: AtomicU64,
    /// A checkpoint is being written (after the lock): no second is started meanwhile.
    checkpointing: AtomicBool,
    /// The conformance suite's journal: checked against the queue when it is dropped, then deleted.
    checked: bool,
}

/// Where records go: written one at a time, or gathered into a batch written at once.
#[derive(Default)]
struct Out {
    record: Vec<u8>,
    batch: Option<Batch>,
}

/// Records gathered for one write (see [`Durable::batch`]).
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    /// Where each record ends in `buf`.
    ends: Vec<usize>,
}

impl JournalOptions {
    fn log_options(&self) -> Options {
        Options {
            sync: self.sync,
            segment_size: self.segment_size.unwrap_or(Options::default().segment_size),
        }
    }
}

impl<T> Journal<T> {
    fn new(log: Log, encode: Encode<T>, clock: &Clock, anchor: (u64, Tick), options: Options) -> Self {
        Journal {
            log,
            encode,
            clock: clock.clone(),
            wall_ns: anchor.0,
            tick: anchor.1,
            scratch: Mutex::new(Out::default()),
            undecodable: Mutex::new(Vec::new()),
            recovery: Recovery::default(),
            segment_size: options.segment_size,
            since_checkpoint: AtomicU64::new(0),
            push_bytes: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            checkpointing: AtomicBool::new(false),
            checked: false,
        }
    }

    /// Encodes `record` and writes it (or adds it to the batch being gathered); returns its length.
    fn write(&self, out: &mut Out, record: &Record<'_>) -> Result<usize, JournalError> {
        let encoded = |buf: &mut Vec<u8>| -> Result<(), JournalError> {
            *buf = postcard::to_extend(record, std::mem::take(buf))
                .map_err(|e| JournalError::Encode(e.to_string()))?;
            Ok(())
        };
        if let Some(batch) = &mut out.batch {
            let start = batch.buf.len();
            if let Err(e) = encoded(&mut batch.buf) {
                batch.buf.truncate(start);
                return Err(e);
            }
            batch.ends.push(batch.buf.len());
            return Ok(batch.buf.len() - start);
        }
        out.record.clear();
        encoded(&mut out.record)?;
        self.log.append([&out.record[..]])?;
        self.since_checkpoint.fetch_add(out.record.len() as u64 + 8, Ordering::Relaxed);
        Ok(out.record.len())
    }

    /// Writes a record of a change that has taken effect; a failure fails the journal.
    fn write_or_fail(&self, record: &Record<'_>) {
        if let Err(e) = self.write(&mut self.scratch.lock(), record) {
            self.log.fail(e.to_string());
        }
    }

    fn dead_letter_record<'a>(&self, letter: &DeadLetter<T>, payload: &'a [u8]) -> Record<'a> {
        Record::Letter {
            id: letter.id.as_u64(),
            reason: reason_code(letter.reason),
            attempts: letter.attempts,
            pushed_at: self.clock.tick_of(letter.pushed_at),
            dead_at: self.clock.tick_of(letter.dead_lettered_at),
            history: letter
                .history
                .iter()
                .map(|f| {
                    record::Failure::of(&FailureRecord {
                        attempt: f.attempt,
                        at: self.clock.tick_of(f.at),
                        kind: f.kind,
                        message: f.message.clone(),
                    })
                })
                .collect(),
            payload,
        }
    }
}

/// A checkpoint's content, copied under the queue's lock (the payloads shared, not yet encoded), to be
/// encoded and written after it: the queue goes on meanwhile, its records going to the segment after the
/// one reserved for the checkpoint (see [`Log::begin_checkpoint`]).
struct Snapshot<T> {
    seq: u64,
    next_id: u64,
    paused: bool,
    jobs: Vec<(SavedJob, Arc<T>)>,
    dead: Vec<DeadLetter<T>>,
    kept: Vec<Kept>,
    reservations: Vec<(Arc<str>, u64, Tick)>,
}

impl<T> Journal<T> {
    /// Starts a checkpoint under the queue's lock: reserves its segment and copies the state.
    fn snapshot(&self, core: &Core<T>) -> Result<Snapshot<T>, StoreError> {
        let st = &core.st;
        let seq = self.log.begin_checkpoint().map_err(StoreError::new)?;
        self.since_checkpoint.store(0, Ordering::Relaxed);
        let jobs = st
            .snapshot()
            .into_iter()
            .filter_map(|job| {
                let payload = Arc::clone(core.job(job.slot)?);
                Some((job, payload))
            })
            .collect();
        Ok(Snapshot {
            seq,
            next_id: st.next_id(),
            paused: st.is_paused(),
            jobs,
            dead: core.dead.iter().cloned().collect(),
            kept: self.undecodable.lock().clone(),
            reservations: st.reservations(st.now()),
        })
    }

    /// Encodes a checkpoint and writes it, outside the queue's lock.
    fn write_checkpoint(&self, snapshot: Snapshot<T>) -> Result<(), StoreError> {
        let encode_failed = |e: postcard::Error| StoreError::new(JournalError::Encode(e.to_string()));
        // Every record goes into one buffer; `ends` marks where each ends.
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        let mut payload = Vec::new();
        let mut put = |buf: &mut Vec<u8>, record: &Record<'_>| -> Result<(), StoreError> {
            *buf = postcard::to_extend(record, std::mem::take(buf)).map_err(encode_failed)?;
            ends.push(buf.len());
            Ok(())
        };
        let begin = Record::Begin {
            wall_ns: self.wall_ns,
            tick: self.tick,
            next_id: snapshot.next_id,
            paused: snapshot.paused,
        };
        put(&mut buf, &begin)?;
        for (job, payload_of) in snapshot.jobs {
            let mut image = JobImage {
                pushed_at: job.pushed_at,
                ready_at: job.ready_at,
                priority: job.priority,
                group: job.group.map(|g| g.to_string()),
                expires_at: job.expires_at,
                attempt: job.attempt,
                lease: job.lease,
                history: failures(&job.history),
                payload: std::mem::take(&mut payload),
            };
            image.payload.clear();
            (self.encode)(&payload_of, &mut image.payload).map_err(encode_failed)?;
            put(&mut buf, &image.record(job.id))?;
            payload = image.payload; // the buffer, for the next job
        }
        for letter in &snapshot.dead {
            payload.clear();
            (self.encode)(&letter.job, &mut payload).map_err(encode_failed)?;
            put(&mut buf, &self.dead_letter_record(letter, &payload))?;
        }
        for kept in &snapshot.kept {
            // Kept as they were read, bytes untouched.
            let record = match kept {
                Kept::Job(id, job) => job.record(*id),
                Kept::Letter(letter) => letter.record(),
            };
            put(&mut buf, &record)?;
        }
        for (key, id, until) in &snapshot.reservations {
            put(&mut buf, &Record::Reserved { key, id: *id, until: *until })?;
        }
        put(&mut buf, &Record::End)?;
        let mut start = 0;
        let records = ends.iter().map(|&end| {
            let record = &buf[start..end];
            start = end;
            record
        });
        self.log.write_checkpoint(snapshot.seq, records).map_err(StoreError::new)
    }
}

impl<T: Send + Sync + 'static> Durable<T> for Journal<T> {
    fn encode(&self, job: &T) -> Result<Vec<u8>, StoreError> {
        let mut payload = Vec::new();
        (self.encode)(job, &mut payload).map_err(|e| StoreError::new(JournalError::Encode(e.to_string())))?;
        Ok(payload)
    }

    fn push(
        &self,
        id: u64,
        now: Tick,
        place: &Placement,
        dedup: Option<(&str, Tick)>,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let mut out = self.scratch.lock();
        let push = Record::Push {
            id,
            at: now,
            ready_at: place.ready_at,
            priority: place.priority,
            group: place.group.as_deref(),
            expires_at: (place.expires_at != NEVER).then_some(place.expires_at),
            dedup,
            payload,
        };
        let len = self.write(&mut out, &push).map_err(StoreError::new)?;
        self.push_bytes.fetch_add(len as u64 + 8, Ordering::Relaxed);
        self.pushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn record(&self, change: Change<'_>) {
        let record = match change {
            Change::Lease { id, attempt, deadline } => Record::Lease { id, attempt, deadline },
            Change::Ack(id) => Record::Ack { id },
            Change::Requeue(st, slot) => {
                let Some((id, attempt, due, history)) = st.requeued(slot) else { return };
                Record::Requeue { id, attempt, due, history: failures(&history) }
            }
            Change::Dead(exit) => Record::Dead {
                id: exit.id,
                reason: reason_code(exit.reason),
                attempts: exit.attempts,
                at: exit.at,
                history: failures(&exit.history),
            },
            Change::Unbury(id) => Record::Unbury { id },
            Change::DrainDead => Record::DrainDead,
            Change::Purge => Record::Purge,
            Change::Paused(paused) => Record::Paused(paused),
        };
        self.write_or_fail(&record);
    }

    fn bury(&self, letter: &DeadLetter<T>, payload: &[u8]) {
        self.write_or_fail(&self.dead_letter_record(letter, payload));
    }

    fn fail(&self, what: String) {
        self.log.fail(what);
    }

    fn batch(&self) {
        self.scratch.lock().batch.get_or_insert_with(Batch::default);
    }

    fn flush(&self) -> Result<(), StoreError> {
        let Some(batch) = self.scratch.lock().batch.take() else { return Ok(()) };
        let mut start = 0;
        let records = batch.ends.iter().map(|&end| {
            let record = &batch.buf[start..end];
            start = end;
            record
        });
        self.log.append(records).map_err(StoreError::new)?;
        self.since_checkpoint.fetch_add((batch.buf.len() + 8 * batch.ends.len()) as u64, Ordering::Relaxed);
        Ok(())
    }

    fn check(&self) -> Result<(), StoreError> {
        self.log.check().map_err(StoreError::new)
    }

    fn commit(&self) -> Result<(), StoreError> {
        self.log.commit_all().map_err(StoreError::new)
    }

    fn after(&self, core: &Core<T>) -> Option<Pending<'_>> {
        let since = self.since_checkpoint.load(Ordering::Relaxed);
        if since < self.segment_size {
            return None; // the common case, in one comparison
        }
        let pushes = self.pushes.load(Ordering::Relaxed).max(1);
        let per_job = (self.push_bytes.load(Ordering::Relaxed) / pushes).max(16);
        let live = (core.st.live() + core.dead.len()) as u64 * per_job;
        if since <= 2 * live + self.segment_size || self.checkpointing.swap(true, Ordering::AcqRel) {
            return None;
        }
        match self.checkpoint(core) {
            Ok(pending) => Some(pending),
            Err(e) => {
                self.checkpointing.store(false, Ordering::Release);
                self.log.fail(e.to_string());
                None
            }
        }
    }

    fn checkpoint(&self, core: &Core<T>) -> Result<Pending<'_>, StoreError> {
        let snapshot = self.snapshot(core)?;
        Ok(Box::new(move || {
            let written = self.write_checkpoint(snapshot);
            self.checkpointing.store(false, Ordering::Release);
            written
        }))
    }

    fn counts(&self) -> (u64, u64) {
        (self.log.syncs(), self.recovery.torn.as_ref().map_or(0, |torn| torn.bytes))
    }

    fn closing(&self, core: &Core<T>) {
        if !self.checked {
            return;
        }
        let mut replay = Replay::default();
        let problems = match self.log.check().and_then(|()| self.log.read_back(|r| replay.apply(r))) {
            Ok(()) => differences(replay.finish(), core),
            Err(e) => vec![e.to_string()],
        };
        let _ = std::fs::remove_dir_all(self.log.dir());
        if !std::thread::panicking() {
            assert!(problems.is_empty(), "the journal does not replay to the queue's state: {problems:#?}");
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// How the image replayed from a journal differs from the queue it journals (for the conformance suite:
/// see [`QueueBuilder::journal_conformance`]). Lapses are not recorded, so a job the image shows leased
/// may have lapsed in the queue (its history then has one more failure); everything else must match.
fn differences<T>(image: Option<Image>, core: &Core<T>) -> Vec<String> {
    let Some(image) = image else { return vec!["no checkpoint".into()] };
    let mut problems = Vec::new();
    let st = &core.st;
    if image.next_id != st.next_id() {
        problems.push(format!("next id: journal {}, queue {}", image.next_id, st.next_id()));
    }
    if image.paused != st.is_paused() {
        problems.push(format!("paused: journal {}, queue {}", image.paused, st.is_paused()));
    }
    let shown = |history: &[FailureRecord]| -> Vec<(u32, u8, Option<String>)> {
        record::failures(history).into_iter().map(|f| (f.attempt, f.kind, f.message)).collect()
    };
    let live = st.snapshot();
    let ids: Vec<u64> = live.iter().map(|j| j.id).collect();
    let image_ids: Vec<u64> = image.jobs.keys().copied().collect();
    if ids != image_ids {
        problems.push(format!("live jobs: journal {image_ids:?}, queue {ids:?}"));
    }
    for job in &live {
        let Some(journaled) = image.jobs.get(&job.id) else { continue };
        if journaled.attempt != job.attempt {
            problems.push(format!(
                "job {}: attempt {} in the journal, {} in the queue",
                job.id, journaled.attempt, job.attempt
            ));
        }
        let history = shown(&job.history);
        let logged: Vec<_> =
            journaled.history.iter().map(|f| (f.attempt, f.kind, f.message.clone())).collect();
        let lapsed_since = journaled.lease.is_some() && history.len() == logged.len() + 1;
        if history != logged && !(lapsed_since && history.starts_with(&logged)) {
            problems
                .push(format!("job {}: history {logged:?} in the journal, {history:?} in the queue", job.id));
        }
    }
    let dead: Vec<(u64, u32, usize)> =
        core.dead.iter().map(|d| (d.id.as_u64(), d.attempts, d.history.len())).collect();
    let mut dead_sorted = dead.clone();
    dead_sorted.sort_unstable();
    let mut logged: Vec<(u64, u32, usize)> =
        image.dead.values().map(|d| (d.id, d.attempts, d.history.len())).collect();
    logged.sort_unstable();
    if dead_sorted != logged {
        problems.push(format!("dead letters: journal {logged:?}, queue {dead_sorted:?}"));
    }
    problems
}

/// The clock's anchor now: its tick, at a wall-clock time (a test clock's own tick stands for wall time,
/// so that tests are deterministic).
fn anchor(clock: &Clock) -> (u64, Tick) {
    let tick = clock.tick();
    if clock.is_manual() {
        return (tick, tick);
    }
    #[allow(clippy::disallowed_methods)] // the wall clock, once per open: to carry times across restarts
    let wall =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64);
    (wall, tick)
}

/// Maps a time on the clock anchored at `from` onto the clock anchored at `to`, within the ticks a clock
/// can hold.
fn mapper(from: (u64, Tick), to: (u64, Tick)) -> impl Fn(Tick) -> Tick {
    let shift = i128::from(to.1) - i128::from(to.0) + i128::from(from.0) - i128::from(from.1);
    move |t| (i128::from(t) + shift).clamp(0, i128::from(NEVER - 1)) as Tick
}

#[cfg(feature = "journal")]
impl<T> QueueBuilder<T> {
    /// When a journal's records reach the disk (feature `journal`); see [`SyncPolicy`] for what each
    /// policy can lose. Default [`SyncPolicy::Always`]. Only [`open`](QueueBuilder::open) uses it.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Queue, SyncPolicy};
    /// let builder = Queue::<String>::builder().sync_policy(SyncPolicy::Os);
    /// # let _ = builder;
    /// ```
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.journal.sync = policy;
        self
    }

    /// How long a journal's segment files grow before the next one starts (feature `journal`). Default
    /// 64 MiB; disk use stays under about twice the live jobs' size plus one segment.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = leasequeue::Queue::<String>::builder().segment_size(8 << 20);
    /// # let _ = builder;
    /// ```
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.journal.segment_size = Some(bytes);
        self
    }

    /// For the crate's own conformance suite, not a durable queue: [`build`](QueueBuilder::build) opens
    /// the queue over a journal in a fresh temporary directory that records no payloads (so that any job
    /// type will do), compacts it every few kilobytes, and checks when the queue is dropped that
    /// replaying the journal gives the queue's jobs, attempts, failure histories and dead letters (it
    /// panics if not), then deletes it. Every semantic test thus checks the journal's records too.
    #[doc(hidden)]
    pub fn journal_conformance(mut self) -> Self {
        self.journal.conformance = true;
        self
    }
}

/// [`QueueBuilder::journal_conformance`]'s queue: any job type, no payloads recorded.
pub(crate) fn conformance<T: Send + Sync + 'static>(
    builder: QueueBuilder<T>,
) -> Result<Queue<T>, crate::BuildError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("leasequeue-conformance-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options { sync: SyncPolicy::Os, segment_size: 4096 };
    let failed = |e: &dyn std::fmt::Display| {
        crate::BuildError::new("queue", "journal_conformance", "could not open its journal")
            .caused_by(std::io::Error::other(e.to_string()))
    };
    let (log, _) = Log::open(&dir, options, |_| Ok(())).map_err(|e| failed(&e))?;
    fn no_payload<T>(_: &T, _: &mut Vec<u8>) -> Result<(), postcard::Error> {
        Ok(())
    }
    let mut journal = Journal::new(log, no_payload::<T>, &builder.clock, anchor(&builder.clock), options);
    journal.checked = true;
    let queue = builder.build_with(Some(Box::new(journal)))?;
    queue.checkpoint().map_err(|e| failed(&e))?;
    Ok(queue)
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> QueueBuilder<T> {
    /// Opens the durable queue journaled in directory `dir`, creating it if needed (feature `journal`):
    /// the same [`Queue`], whose every change is written to a crash-safe journal before the call that
    /// made it returns (see [`SyncPolicy`]), and which a later `open` of the same directory finds again,
    /// after a clean close, a crash or (under the default policy) a power cut.
    ///
    /// Opening replays the journal: jobs come back with their ids, attempts, priorities, groups, delays,
    /// times to live, failure histories and dedup reservations; dead letters come back into the built-in
    /// store; a lease that was out lapses at once (an attempt spent). Times are carried across the
    /// restart by the wall clock: a retry due in an hour is still due an hour after it was scheduled.
    /// What the opening found is in [`Queue::recovery`].
    ///
    /// # Errors
    ///
    /// The directory cannot be created or read, holds files that are not a journal's, is open in another
    /// process (or another queue of this one), holds a journal of a newer format version, or a record
    /// before the last segment's tail is corrupt (a torn tail is cut off and reported instead); or the
    /// configuration is invalid. See [`JournalError`].
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::Queue;
    ///
    /// let dir = std::env::temp_dir().join(format!("leasequeue-doc-open-{}", std::process::id()));
    /// let queue: Queue<String> = Queue::builder().max_attempts(5).open(&dir).unwrap();
    /// queue.push("send welcome email".to_string()).unwrap();
    /// drop(queue); // or a crash
    ///
    /// let queue: Queue<String> = Queue::builder().max_attempts(5).open(&dir).unwrap();
    /// let lease = queue.try_lease().unwrap();
    /// assert_eq!(*lease, "send welcome email");
    /// lease.ack().unwrap();
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Queue<T>, JournalError> {
        let dir = dir.as_ref();
        self.validate()?;
        let options = self.journal.log_options();
        let mut replay = Replay::default();
        let (log, found) = Log::open(dir, options, |record| replay.apply(record))?;
        let image = replay.finish();
        let clock = self.clock.clone();
        let now = anchor(&clock);
        let mut recovery = Recovery {
            segments: found.segments,
            records: found.records,
            torn: found.torn,
            ..Recovery::default()
        };
        let decoded = image.map(|image| decode::<T>(image, &mut recovery));
        let map = decoded.as_ref().map(|d| mapper((d.image.wall_ns, d.image.tick), now));
        let mut journal = Journal::new(log, encode::<T>, &clock, now, options);
        journal.recovery = recovery;
        if let (Some(decoded), Some(map)) = (&decoded, &map) {
            journal.undecodable = Mutex::new(decoded.kept.iter().cloned().map(|k| k.mapped(map)).collect());
        }
        let limit = self.history_limit;
        let queue = self.build_with(Some(Box::new(journal)))?;
        if let (Some(decoded), Some(map)) = (decoded, map) {
            queue.inspect_core(|st, jobs, dead| fill(st, jobs, dead, decoded, &map, &clock, limit));
        }
        // Process the leases that lapsed at the crash, then write the state as the new checkpoint (which
        // deletes the older segments).
        queue.checkpoint().map_err(|e| JournalError::Failed { path: dir.to_owned(), what: e.to_string() })?;
        Ok(queue)
    }
}

/// An image whose payloads were decoded.
struct Decoded<T> {
    image: Image,
    jobs: Vec<(u64, Option<T>)>,
    dead: Vec<Option<T>>,
    kept: Vec<Kept>,
}

/// Decodes the image's payloads; those that no longer decode are set aside, and counted in `recovery`.
fn decode<T: DeserializeOwned>(image: Image, recovery: &mut Recovery) -> Decoded<T> {
    let mut kept = Vec::new();
    let jobs: Vec<(u64, Option<T>)> = image
        .jobs
        .iter()
        .map(|(&id, job)| {
            let decoded = decode_payload::<T>(&job.payload);
            if decoded.is_none() {
                kept.push(Kept::Job(id, job.clone()));
            }
            (id, decoded)
        })
        .collect();
    let dead: Vec<Option<T>> = image
        .dead
        .values()
        .map(|letter| {
            let decoded = decode_payload::<T>(&letter.payload);
            if decoded.is_none() {
                kept.push(Kept::Letter(letter.clone()));
            }
            decoded
        })
        .collect();
    recovery.undecodable = kept.iter().map(|k| k.shown().id).collect();
    let decoded_jobs = image.jobs.values().zip(&jobs).filter(|(_, (_, job))| job.is_some());
    (recovery.jobs, recovery.leased) = decoded_jobs
        .fold((0, 0), |(jobs, leased), (image, _)| (jobs + 1, leased + usize::from(image.lease.is_some())));
    recovery.dead_letters = dead.iter().filter(|d| d.is_some()).count();
    Decoded { image, jobs, dead, kept }
}

/// A payload as `T`, or `None` if it no longer deserializes (or its `Deserialize`, user code, panics:
/// caught, and the job kept as undecodable).
fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    std::panic::catch_unwind(|| postcard::from_bytes::<T>(bytes).ok()).ok().flatten()
}

/// Fills a new queue's state from a decoded image, its times mapped onto the queue's clock.
fn fill<T>(
    st: &mut State,
    slots: &mut Vec<Option<Arc<T>>>,
    store: &mut std::collections::VecDeque<DeadLetter<T>>,
    decoded: Decoded<T>,
    map: &impl Fn(Tick) -> Tick,
    clock: &Clock,
    history_limit: usize,
) {
    let now = st.now();
    let Decoded { image, jobs, dead, .. } = decoded;
    let history = |failures: Vec<record::Failure>| -> Vec<FailureRecord> {
        let mut history: Vec<FailureRecord> = failures
            .into_iter()
            .filter_map(record::Failure::record)
            .map(|f| FailureRecord { at: map(f.at), ..f })
            .collect();
        history.drain(..history.len().saturating_sub(history_limit));
        history
    };
    for ((id, job), (_, image_job)) in jobs.into_iter().zip(image.jobs) {
        let Some(job) = job else { continue };
        let place = Placement {
            ready_at: if image_job.lease.is_some() { now } else { map(image_job.ready_at) },
            priority: image_job.priority,
            group: image_job.group.map(Arc::from),
            expires_at: image_job.expires_at.map_or(NEVER, map),
        };
        let restored = RestoredJob {
            id,
            attempt: image_job.attempt,
            pushed_at: map(image_job.pushed_at),
            history: history(image_job.history),
        };
        let slot = st.restore(now, restored, place);
        if image_job.lease.is_some() {
            st.restore_lease(slot, now);
        }
        let slot = slot as usize;
        if slot == slots.len() {
            slots.push(None);
        }
        slots[slot] = Some(Arc::new(job));
    }
    let reservations = image
        .reservations
        .into_iter()
        .map(|(key, (id, until))| (Arc::from(key), id, map(until)))
        .filter(|&(_, _, until)| until > now)
        .collect();
    st.restore_tail(image.next_id, reservations);
    st.set_paused(image.paused);
    for (letter, job) in image.dead.into_values().zip(dead) {
        let (Some(job), Some(reason)) = (job, reason_of(letter.reason)) else { continue };
        store.push_back(DeadLetter {
            job: Arc::new(job),
            id: JobId::from_u64(letter.id),
            reason,
            attempts: letter.attempts,
            history: history(letter.history)
                .into_iter()
                .map(|f| Failure {
                    attempt: f.attempt,
                    at: clock.instant(f.at),
                    kind: f.kind,
                    message: f.message,
                })
                .collect(),
            pushed_at: clock.instant(map(letter.pushed_at)),
            dead_lettered_at: clock.instant(map(letter.dead_at)),
        });
    }
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// What opening this queue's journal found: segments and records replayed, a torn tail cut off,
    /// the jobs, leases and dead letters recovered, and payloads that no longer deserialize. `None` for
    /// a queue without a journal (feature `journal`).
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u32>::new();
    /// assert_eq!(queue.recovery(), None);
    /// ```
    pub fn recovery(&self) -> Option<Recovery> {
        self.journal().map(|journal| journal.recovery.clone())
    }

    /// Copies of the jobs and dead letters whose payload no longer deserializes into `T` (after a change
    /// of the job type), kept in the journal as they were (feature `journal`). Empty without a journal.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u32>::new();
    /// assert!(queue.undecodable().is_empty());
    /// ```
    pub fn undecodable(&self) -> Vec<Undecodable> {
        self.journal()
            .map(|journal| journal.undecodable.lock().iter().map(Kept::shown).collect())
            .unwrap_or_default()
    }

    /// Takes the jobs and dead letters whose payload no longer deserializes out of the journal, for good
    /// (feature `journal`). Empty without a journal.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u32>::new();
    /// assert!(queue.take_undecodable().is_empty());
    /// ```
    pub fn take_undecodable(&self) -> Vec<Undecodable> {
        let Some(journal) = self.journal() else { return Vec::new() };
        let taken: Vec<Undecodable> =
            std::mem::take(&mut *journal.undecodable.lock()).iter().map(Kept::shown).collect();
        if !taken.is_empty() {
            // A failure here fails the journal, and the next call reports it.
            let _ = self.checkpoint();
        }
        taken
    }

    fn journal(&self) -> Option<&Journal<T>> {
        self.durable()?.as_any().downcast_ref::<Journal<T>>()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{PushError, TryPushError};

    /// A fresh directory under the system's temporary directory, removed when dropped.
    pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("leasequeue-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn disk_full(queue: &Queue<String>, full: bool) {
        queue.journal().expect("a journal").log.fail_writes(full);
    }

    #[test]
    fn a_full_disk_refuses_pushes_with_the_job_and_the_queue_stays_as_it_was() {
        let dir = TempDir::new("full");
        let queue: Queue<String> = Queue::builder().open(&dir.0).unwrap();
        queue.push("kept".into()).unwrap();
        disk_full(&queue, true);
        match queue.push("refused".into()) {
            Err(PushError::Store(job, cause)) => {
                assert_eq!(job, "refused");
                assert!(cause.to_string().contains("no space left"), "{cause}");
            }
            other => panic!("expected a store error, got {other:?}"),
        }
        let batch = queue.push_batch(["a".to_string(), "b".to_string()]);
        let back: Vec<String> = batch
            .into_iter()
            .map(|r| match r {
                Err(TryPushError::Store(job, _)) => job,
                other => panic!("expected a store error, got {other:?}"),
            })
            .collect();
        assert_eq!(back, ["a", "b"], "the whole batch comes back");
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.stats().pushed, 1);
        // Room again: the queue goes on, and what it holds is what the journal holds.
        disk_full(&queue, false);
        queue.push("after".into()).unwrap();
        drop(queue);
        let queue: Queue<String> = Queue::builder().open(&dir.0).unwrap();
        let jobs: Vec<String> = std::iter::from_fn(|| queue.try_lease().ok()).map(|l| l.clone()).collect();
        assert_eq!(jobs, ["kept", "after"]);
    }

    #[test]
    fn a_record_that_cannot_be_written_after_its_change_fails_the_journal_until_reopened() {
        let dir = TempDir::new("failed");
        let queue: Queue<String> = Queue::builder().open(&dir.0).unwrap();
        queue.push("job".into()).unwrap();
        let lease = queue.try_lease().unwrap();
        disk_full(&queue, true);
        assert!(matches!(lease.ack(), Err(crate::LeaseLost::Store(_))));
        disk_full(&queue, false);
        // What is on disk no longer follows the queue: every later call says so.
        assert!(matches!(queue.push("later".into()), Err(PushError::Store(..))));
        assert!(matches!(
            queue.try_lease(),
            Err(crate::TryLeaseError::Store(_)) | Err(crate::TryLeaseError::Empty)
        ));
        drop(queue);
        // Reopened, the journal holds what it held before the failure: the ack was never written.
        let queue: Queue<String> = Queue::builder().open(&dir.0).unwrap();
        let lease = queue.try_lease().unwrap();
        assert_eq!((lease.as_str(), lease.attempt()), ("job", 2));
    }
}
