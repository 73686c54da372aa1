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
use crate::state::{Placement, SavedJob};
use crate::{Queue, QueueBuilder};

const FORMAT: &str = "leasequeue-snapshot";
const VERSION: u32 = 1;

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
        let (now, next_id, saved, payloads, reservations) = self.inner.inspect_core(|st, jobs| {
            let now = st.now();
            let saved = st.snapshot();
            let payloads: Vec<Arc<T>> = saved
                .iter()
                .filter_map(|j: &SavedJob| jobs[j.slot as usize].as_ref().map(Arc::clone))
                .collect();
            (now, st.next_id(), saved, payloads, st.reservations(now))
        });
        let later = |at: u64| at.saturating_sub(now);
        let jobs = saved
            .iter()
            .zip(&payloads)
            .map(|(j, payload)| JobOut {
                id: j.id,
                job: &**payload,
                attempt: j.attempt,
                priority: j.priority,
                group: j.group.as_deref(),
                age_ns: now.saturating_sub(j.pushed_at),
                ready_in_ns: later(j.ready_at),
                expires_in_ns: j.expires_at.map(later),
            })
            .collect();
        let dedup = reservations
            .into_iter()
            .map(|(key, id, until)| Reservation { key: key.to_string(), id, expires_in_ns: later(until) })
            .collect();
        let out = SnapshotOut { format: FORMAT, version: VERSION, next_id, jobs, dedup };
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
        if header.version != VERSION {
            return Err(RestoreError::UnsupportedVersion { found: header.version, supported: VERSION });
        }
        let snapshot: SnapshotIn<T> = serde_json::from_slice(&bytes).map_err(corrupt)?;
        let ids_increase = snapshot.jobs.windows(2).all(|w| w[0].id < w[1].id);
        let below_next = snapshot.jobs.last().is_none_or(|j| j.id < snapshot.next_id);
        if !ids_increase || !below_next || snapshot.jobs.first().is_some_and(|j| j.id == 0) {
            return Err(RestoreError::Corrupt("job ids are not increasing, or not below next_id".into()));
        }
        let queue = self.build()?;
        queue.inner.restore_from(|st, jobs| {
            let now = st.now();
            for j in snapshot.jobs {
                let place = Placement {
                    ready_at: now.saturating_add(j.ready_in_ns),
                    priority: j.priority,
                    group: j.group.map(Arc::from),
                    expires_at: j.expires_in_ns.map_or(NEVER, |t| now.saturating_add(t).min(NEVER - 1)),
                };
                let pushed_at = now.saturating_sub(j.age_ns);
                let slot = st.restore(now, j.id, j.attempt, pushed_at, place) as usize;
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
        });
        Ok(queue)
    }
}
