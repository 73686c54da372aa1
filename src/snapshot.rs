//! Snapshot and restore (with the `serde` feature): every live job written to any `Write`, and a queue
//! rebuilt from it, so that a planned restart or deploy loses nothing.
//!
//! The format is described in the crate docs, section "Snapshot and restore".

use std::io::{Read, Write};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::clock::NEVER;
use crate::core::{FailureRecord, Placement, RestoredJob, SavedJob, MAX_ID};
use crate::{DeadLetter, DeadLetterReason, Failure, FailureKind, JobId, Queue, QueueBuilder};

const FORMAT: &str = "leasequeue-snapshot";
/// The version written. Version 2 added failure histories and the dead-letter store; version 1 is still
/// read (its jobs restore with empty histories, and with no dead letters).
const VERSION: u32 = 2;
const OLDEST_READ: u32 = 1;

/// Why a snapshot could not be written.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::<u32>::new();
/// let mut out = Vec::new();
/// queue.snapshot(&mut out).unwrap();
/// ```
#[derive(Error, Debug)]
#[error("could not write the snapshot: {0}")]
pub struct SnapshotError(#[from] serde_json::Error);

/// Why a queue could not be restored. A failed restore builds no queue: it is never partial.
///
/// # Examples
///
/// ```
/// let err = leasequeue::Queue::<u32>::builder().restore(&b"not a snapshot"[..]).unwrap_err();
/// assert!(matches!(err, leasequeue::RestoreError::Corrupt(_)));
/// ```
#[derive(Error, Debug)]
#[non_exhaustive]
pub enum RestoreError {
    /// Not a snapshot, or a damaged one (truncated, or a job that does not deserialize).
    #[error("the snapshot is corrupt: {0}")]
    Corrupt(String),
    /// A snapshot written by a newer version of the format.
    #[error("snapshot format version {found} is not supported (this version reads {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
        /// The version this crate reads.
        supported: u32,
    },
    /// The queue's configuration is invalid.
    #[error(transparent)]
    Build(#[from] crate::BuildError),
}

#[derive(Serialize)]
struct SnapshotOut<'a, T> {
    format: &'static str,
    version: u32,
    next_id: u64,
    jobs: Vec<JobOut<'a, T>>,
    dedup: Vec<Reservation>,
    dead: Vec<DeadOut<'a, T>>,
}

/// One failed attempt, in a job's or a dead letter's history.
#[derive(Serialize, Deserialize)]
struct FailureSaved {
    attempt: u32,
    /// How long before the snapshot it failed.
    ago_ns: u64,
    kind: String,
    message: Option<String>,
}

impl FailureSaved {
    fn new(attempt: u32, ago_ns: u64, kind: FailureKind, message: &Option<String>) -> Self {
        FailureSaved { attempt, ago_ns, kind: kind_name(kind).to_owned(), message: message.clone() }
    }
}

#[derive(Serialize)]
struct DeadOut<'a, T> {
    id: u64,
    job: &'a T,
    reason: &'static str,
    attempts: u32,
    history: Vec<FailureSaved>,
    age_ns: u64,
    dead_ago_ns: u64,
}

#[derive(Deserialize)]
struct DeadIn<T> {
    id: u64,
    job: T,
    reason: String,
    attempts: u32,
    history: Vec<FailureSaved>,
    age_ns: u64,
    dead_ago_ns: u64,
}

#[derive(Serialize)]
struct JobOut<'a, T> {
    id: u64,
    job: &'a T,
    attempt: u32,
    priority: u8,
    group: Option<&'a str>,
    age_ns: u64,
    ready_in_ns: u64,
    expires_in_ns: Option<u64>,
    history: Vec<FailureSaved>,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Deserialize)]
struct SnapshotIn<T> {
    next_id: u64,
    jobs: Vec<JobIn<T>>,
    dedup: Vec<Reservation>,
    #[serde(default = "Vec::new")]
    dead: Vec<DeadIn<T>>,
}

#[derive(Deserialize)]
struct JobIn<T> {
    id: u64,
    job: T,
    attempt: u32,
    priority: u8,
    group: Option<String>,
    age_ns: u64,
    ready_in_ns: u64,
    expires_in_ns: Option<u64>,
    #[serde(default)]
    history: Vec<FailureSaved>,
}

#[derive(Serialize, Deserialize)]
struct Reservation {
    key: String,
    id: u64,
    expires_in_ns: u64,
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// Writes every live job (ready, delayed, waiting and leased, with attempts, priorities, groups,
    /// delays, times to live and dedup reservations) to `writer`, in the versioned format described in
    /// the [module docs](crate#snapshot-and-restore). Leased jobs are written as ready, their running
    /// attempt counted. The jobs are serialized outside every lock.
    ///
    /// # Errors
    ///
    /// Writing or serializing failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::Queue;
    ///
    /// let queue = Queue::new();
    /// queue.push("send invoice 17".to_string()).unwrap();
    /// let mut snapshot = Vec::new();
    /// queue.snapshot(&mut snapshot).unwrap();
    ///
    /// let restored: Queue<String> = Queue::builder().restore(&snapshot[..]).unwrap();
    /// assert_eq!(*restored.try_lease().unwrap(), "send invoice 17");
    /// ```
    pub fn snapshot<W: Write>(&self, writer: W) -> Result<(), SnapshotError>
    where
        T: Serialize,
    {
        // Copy what is needed under the lock (the jobs are shared, not cloned), serialize after.
        let copied = self.inspect_core(|st, jobs, dead| {
            let now = st.now();
            let saved = st.snapshot();
            let payloads: Vec<Arc<T>> = saved
                .iter()
                .filter_map(|j: &SavedJob| jobs[j.slot as usize].as_ref().map(Arc::clone))
                .collect();
            let dead: Vec<DeadLetter<T>> = dead.iter().cloned().collect();
            (now, st.next_id(), saved, payloads, st.reservations(now), dead)
        });
        let Some((now, next_id, saved, payloads, reservations, dead)) = copied else {
            use serde::ser::Error as _;
            let e =
                serde_json::Error::custom("a PostgreSQL queue keeps its state in the database: no snapshot");
            return Err(SnapshotError(e));
        };
        let clock = self.clock();
        let later = |at: u64| at.saturating_sub(now);
        let ago = |at: u64| now.saturating_sub(at);
        let jobs = saved
            .iter()
            .zip(&payloads)
            .map(|(j, payload)| JobOut {
                id: j.id,
                job: &**payload,
                attempt: j.attempt,
                priority: j.priority,
                group: j.group.as_deref(),
                age_ns: ago(j.pushed_at),
                ready_in_ns: later(j.ready_at),
                expires_in_ns: j.expires_at.map(later),
                history: j
                    .history
                    .iter()
                    .map(|f| FailureSaved::new(f.attempt, ago(f.at), f.kind, &f.message))
                    .collect(),
            })
            .collect();
        let dedup = reservations
            .into_iter()
            .map(|(key, id, until)| Reservation { key: key.to_string(), id, expires_in_ns: later(until) })
            .collect();
        let ago_instant = |at| ago(clock.tick_of(at));
        let dead = dead
            .iter()
            .map(|d| DeadOut {
                id: d.id.as_u64(),
                job: &*d.job,
                reason: reason_name(d.reason),
                attempts: d.attempts,
                history: d
                    .history
                    .iter()
                    .map(|f| FailureSaved::new(f.attempt, ago_instant(f.at), f.kind, &f.message))
                    .collect(),
                age_ns: ago_instant(d.pushed_at),
                dead_ago_ns: ago_instant(d.dead_lettered_at),
            })
            .collect();
        let out = SnapshotOut { format: FORMAT, version: VERSION, next_id, jobs, dedup, dead };
        serde_json::to_writer(writer, &out)?;
        Ok(())
    }
}

impl<T: Send + Sync + 'static> QueueBuilder<T> {
    /// Builds the queue and fills it from a snapshot written by [`Queue::snapshot`]: the same jobs, ids,
    /// attempts, priorities, groups, remaining delays, times to live and dedup reservations, counted
    /// from now on this queue's clock.
    ///
    /// # Errors
    ///
    /// The snapshot is corrupt or of a newer format version, or the configuration is invalid. Nothing is
    /// built then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{PushOptions, Queue, TestClock};
    ///
    /// let queue = Queue::new();
    /// queue.push_with(7u32, PushOptions::new().delay(Duration::from_secs(60)).priority(3)).unwrap();
    /// let mut snapshot = Vec::new();
    /// queue.snapshot(&mut snapshot).unwrap();
    ///
    /// let clock = TestClock::new();
    /// let restored = Queue::<u32>::builder().clock(clock.clone()).restore(&snapshot[..]).unwrap();
    /// let job = &restored.jobs()[0];
    /// assert_eq!(job.priority, 3);
    /// assert!(job.next.unwrap() - clock.now() <= Duration::from_secs(60));
    /// ```
    pub fn restore<R: Read>(self, mut reader: R) -> Result<Queue<T>, RestoreError>
    where
        T: DeserializeOwned,
    {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(|e| RestoreError::Corrupt(e.to_string()))?;
        let corrupt = |e: serde_json::Error| RestoreError::Corrupt(e.to_string());
        let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if header.format != FORMAT {
            return Err(RestoreError::Corrupt(format!("not a {FORMAT} (format {:?})", header.format)));
        }
        if !(OLDEST_READ..=VERSION).contains(&header.version) {
            return Err(RestoreError::UnsupportedVersion { found: header.version, supported: VERSION });
        }
        let snapshot: SnapshotIn<T> = serde_json::from_slice(&bytes).map_err(corrupt)?;
        check_ids(&snapshot)?;
        let histories = snapshot
            .jobs
            .iter()
            .map(|j| failures(&j.history))
            .chain(snapshot.dead.iter().map(|d| failures(&d.history)))
            .collect::<Result<Vec<_>, _>>()?;
        let reasons = snapshot.dead.iter().map(|d| reason(&d.reason)).collect::<Result<Vec<_>, _>>()?;
        let queue = self.build()?;
        let clock = queue.clock().clone();
        let restored = queue.inspect_core(|st, jobs, store| {
            let now = st.now();
            let mut histories = histories.into_iter();
            let at = |ago_ns: u64| now.saturating_sub(ago_ns);
            for (j, history) in snapshot.jobs.into_iter().zip(histories.by_ref()) {
                let place = Placement {
                    ready_at: now.saturating_add(j.ready_in_ns),
                    priority: j.priority,
                    group: j.group.map(Arc::from),
                    expires_at: j.expires_in_ns.map_or(NEVER, |t| now.saturating_add(t).min(NEVER - 1)),
                };
                let history = history
                    .into_iter()
                    .map(|(attempt, ago_ns, kind, message)| FailureRecord {
                        attempt,
                        at: at(ago_ns),
                        kind,
                        message,
                    })
                    .collect();
                let restored = RestoredJob { id: j.id, attempt: j.attempt, pushed_at: at(j.age_ns), history };
                let slot = st.restore(now, restored, place) as usize;
                if slot == jobs.len() {
                    jobs.push(None);
                }
                jobs[slot] = Some(Arc::new(j.job));
            }
            let reservations = snapshot
                .dedup
                .into_iter()
                .map(|r| (Arc::from(r.key), r.id, now.saturating_add(r.expires_in_ns)))
                .collect();
            st.restore_tail(snapshot.next_id, reservations);
            let instant = |ago_ns: u64| clock.instant(at(ago_ns));
            for ((d, history), reason) in snapshot.dead.into_iter().zip(histories).zip(reasons) {
                store.push_back(DeadLetter {
                    job: Arc::new(d.job),
                    id: JobId::from_u64(d.id),
                    reason,
                    attempts: d.attempts,
                    history: history
                        .into_iter()
                        .map(|(attempt, ago_ns, kind, message)| Failure {
                            attempt,
                            at: instant(ago_ns),
                            kind,
                            message,
                        })
                        .collect(),
                    pushed_at: instant(d.age_ns),
                    dead_lettered_at: instant(d.dead_ago_ns),
                });
            }
        });
        match restored {
            Some(()) => Ok(queue),
            // `build` makes an in-memory queue.
            None => Err(RestoreError::Corrupt("restoring is for in-memory queues".into())),
        }
    }
}

/// Checks the ids a snapshot gives: job ids increasing from 1, every id (of a job, a dedup reservation or
/// a dead letter) below `next_id`, and `next_id` at most one past the highest id a queue hands out.
fn check_ids<T>(snapshot: &SnapshotIn<T>) -> Result<(), RestoreError> {
    let next = snapshot.next_id;
    if next == 0 || next > MAX_ID + 1 {
        return Err(RestoreError::Corrupt(format!("next_id {next} is out of range (1 to 2^63)")));
    }
    let issued = |id: u64| id != 0 && id < next;
    if !snapshot.jobs.windows(2).all(|w| w[0].id < w[1].id) || !snapshot.jobs.iter().all(|j| issued(j.id)) {
        return Err(RestoreError::Corrupt("job ids are not increasing, or not below next_id".into()));
    }
    if let Some(r) = snapshot.dedup.iter().find(|r| !issued(r.id)) {
        return Err(RestoreError::Corrupt(format!(
            "dedup key {:?} names job {}, not below next_id",
            r.key, r.id
        )));
    }
    if let Some(d) = snapshot.dead.iter().find(|d| !issued(d.id)) {
        return Err(RestoreError::Corrupt(format!("dead letter {} is not below next_id", d.id)));
    }
    Ok(())
}

/// A saved history, checked: `(attempt, ago_ns, kind, message)` per failure.
type Failures = Vec<(u32, u64, FailureKind, Option<String>)>;

fn failures(saved: &[FailureSaved]) -> Result<Failures, RestoreError> {
    saved.iter().map(|f| Ok((f.attempt, f.ago_ns, kind(&f.kind)?, f.message.clone()))).collect()
}

/// The names a snapshot gives failure kinds and dead-letter reasons: stable, unlike `Display`.
fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Nacked => "nacked",
        FailureKind::Rejected => "rejected",
        FailureKind::Lapsed => "lapsed",
        FailureKind::Dropped => "dropped",
        FailureKind::Panicked => "panicked",
    }
}

fn kind(name: &str) -> Result<FailureKind, RestoreError> {
    Ok(match name {
        "nacked" => FailureKind::Nacked,
        "rejected" => FailureKind::Rejected,
        "lapsed" => FailureKind::Lapsed,
        "dropped" => FailureKind::Dropped,
        "panicked" => FailureKind::Panicked,
        _ => return Err(RestoreError::Corrupt(format!("unknown failure kind {name:?}"))),
    })
}

fn reason_name(reason: DeadLetterReason) -> &'static str {
    match reason {
        DeadLetterReason::MaxAttempts => "max_attempts",
        DeadLetterReason::Rejected => "rejected",
        DeadLetterReason::Expired => "expired",
        DeadLetterReason::Overflow => "overflow",
    }
}

fn reason(name: &str) -> Result<DeadLetterReason, RestoreError> {
    Ok(match name {
        "max_attempts" => DeadLetterReason::MaxAttempts,
        "rejected" => DeadLetterReason::Rejected,
        "expired" => DeadLetterReason::Expired,
        "overflow" => DeadLetterReason::Overflow,
        _ => return Err(RestoreError::Corrupt(format!("unknown dead-letter reason {name:?}"))),
    })
}
