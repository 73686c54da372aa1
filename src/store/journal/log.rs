//! The journal's log: an append-only sequence of records in segment files, each record framed with its
//! length and a CRC-32C, made durable by group commit, and recovered on open.
//!
//! **On disk.** A directory holds `lock` (held with an exclusive file lock while a process has the log
//! open) and segments named by a 20-digit sequence number, `00000000000000000001.log` and on. A segment
//! starts with a 16-byte header: the magic `LQJL`, the format version (`u32`, little-endian) and its own
//! sequence number (`u64`). Records follow, each `length: u32 | crc32c: u32 | payload` (little-endian; the
//! CRC-32C covers the length and the payload), with a payload of 1 byte to [`MAX_RECORD`]. Zeros follow
//! the records: the segment is filled with zeros a little ahead of them ([`PREALLOCATE`]), so that a sync
//! of records written over zeros is a sync of data alone, not of the file's growing length too (a
//! quarter cheaper here, as SQLite's reused write-ahead log). A segment past its size limit is closed
//! (cut to its last record and synced) and the next one created, and the directory synced.
//!
//! **Durability.** [`SyncPolicy::Always`] (the default) returns from a commit only once every record up to
//! it is on disk (`fdatasync`); concurrent committers share one sync: whoever finds no sync running
//! syncs everything appended so far, and the others wait for it (group commit, as RabbitMQ's write-ahead
//! log does). [`SyncPolicy::Interval`] syncs from a background thread at most that long after a record
//! is appended, and on close. [`SyncPolicy::Os`] leaves it to the operating system. A write or sync that
//! fails (a full disk, an I/O error) leaves the log as it was before the record (what a failed write may
//! have left is zeroed); after a failed sync the log refuses every later call, since what reached the
//! disk is unknown.
//!
//! **Recovery.** Opening replays every record in order. In the last segment, a frame that is cut short
//! or whose checksum fails, followed by anything but zeros, marks a torn tail (what a crash or a power cut
//! left of unsynced writes): it is cut off and reported, and appending goes on from there. Zeros after the
//! last record are the space allocated ahead, not a tear. Anywhere else a bad frame is an error naming the
//! file and the offset: records that were synced are never skipped silently.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};
use thiserror::Error;

use crate::clock::{ticks, Clock};

/// The first bytes of every segment.
pub(crate) const MAGIC: [u8; 4] = *b"LQJL";
/// The format version written; a journal of a newer version is refused.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// A segment's header: magic, version, sequence number.
const HEADER_LEN: usize = 16;
/// A record's frame: length and CRC-32C.
const FRAME_LEN: usize = 8;
/// The largest record payload: a longer length in a frame is corruption.
pub(crate) const MAX_RECORD: usize = 64 << 20;
/// How far ahead of the records a segment is filled with zeros (at most to its size limit).
const PREALLOCATE: u64 = 1 << 20;
/// How long opening waits for a lock held for a moment (see `lock_briefly_held`).
const LOCK_PATIENCE: Duration = Duration::from_millis(250);
/// The ending of a checkpoint's file until it is complete and renamed into place.
const PARTIAL: &str = ".partial";
/// The name of the lock file.
const LOCK_FILE: &str = "lock";

/// When a journal's records reach the disk (feature `journal`): what a call that returned `Ok` can lose.
///
/// | policy | a crash of the process (`kill -9`, a panic, an OOM kill) | a power cut or a kernel crash |
/// |---|---|---|
/// | `Always` (the default) | nothing | nothing |
/// | `Interval(d)` | nothing | the calls of the last `d` or so: a push undone, an acked job delivered again |
/// | `Os` | nothing | what the OS had not written back (on Linux, up to about 30 s of calls) |
///
/// Under `Always` every call that changes the queue returns only once its record is on disk
/// (`fdatasync`), and concurrent calls share one sync (group commit): sixteen producers cost about one
/// sync, not sixteen. The others return as soon as the record is written to the OS.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "journal")] {
/// use std::time::Duration;
/// use leasequeue::{Queue, SyncPolicy};
///
/// let dir = std::env::temp_dir().join(format!("leasequeue-doc-sync-{}", std::process::id()));
/// let queue: Queue<String> = Queue::builder()
///     .sync_policy(SyncPolicy::Interval(Duration::from_millis(10)))
///     .open(&dir)
///     .unwrap();
/// # drop(queue);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every call returns once its record is on disk; concurrent calls share one sync.
    #[default]
    Always,
    /// A background thread syncs at most this long after a record is written, and on close.
    Interval(Duration),
    /// The operating system writes back when it likes.
    Os,
}

/// How a log is opened.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub sync: SyncPolicy,
    /// A segment is closed once it is this long (a single larger record still fits in one).
    pub segment_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { sync: SyncPolicy::Always, segment_size: 64 << 20 }
    }
}

/// Why a journal could not be opened, or a record written (feature `journal`). A failed write reaches
/// the caller as the [`StoreError`](crate::StoreError) of the operation, with this as its source.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "journal")] {
/// use leasequeue::{JournalError, Queue};
///
/// let dir = std::env::temp_dir().join(format!("leasequeue-doc-locked-{}", std::process::id()));
/// let first: Queue<u32> = Queue::builder().open(&dir).unwrap();
/// let second = Queue::<u32>::builder().open(&dir);
/// assert!(matches!(second, Err(JournalError::Locked { .. })));
/// # drop(first);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The file system refused (a full disk, permissions, an I/O error).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// Another process (or another queue in this one) has the journal open (opening waits a quarter of
    /// a second for a lock held only for a moment, as by a child process between its fork and exec).
    #[error("{path}: the journal is open in another process")]
    Locked {
        /// The journal's directory.
        path: PathBuf,
    },
    /// The directory holds files that are not a journal's.
    #[error("{path}: not a leasequeue journal")]
    NotAJournal {
        /// The directory, or the file that is not a journal's segment.
        path: PathBuf,
    },
    /// A journal written by a newer version of the format.
    #[error("{path}: journal format version {found}; this version reads up to {supported}")]
    Version {
        /// The segment.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest version this crate reads.
        supported: u32,
    },
    /// A record that cannot be read, before the tail of the last segment (where a crash may have torn
    /// it): records that were synced are never skipped silently.
    #[error("{path}: corrupt journal at byte {offset}: {what}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// An earlier write or sync failed: what reached the disk is unknown, so the journal takes no more
    /// records. Reopening the queue recovers what is on disk.
    #[error("{path}: the journal failed earlier ({what}) and takes no more records")]
    Failed {
        /// The journal's directory.
        path: PathBuf,
        /// The first failure.
        what: String,
    },
    /// A job could not be serialized.
    #[error("a job could not be serialized: {0}")]
    Encode(String),
    /// The queue's configuration is invalid.
    #[error(transparent)]
    Build(#[from] crate::BuildError),
}

/// What opening a log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Segments read.
    pub segments: usize,
    /// Records replayed.
    pub records: u64,
    /// Bytes cut off the end of the last segment (a torn tail), and where the cut was.
    pub torn: Option<Torn>,
}

/// A torn tail cut off a journal's last segment when it was opened: records a crash or a power cut left
/// half written, never acknowledged under [`SyncPolicy::Always`] (feature `journal`).
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "journal")] {
/// let dir = std::env::temp_dir().join(format!("leasequeue-doc-torn-{}", std::process::id()));
/// let queue: leasequeue::Queue<u32> = leasequeue::Queue::builder().open(&dir).unwrap();
/// assert_eq!(queue.recovery().unwrap().torn, None);
/// # drop(queue);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Torn {
    /// The segment.
    pub path: PathBuf,
    /// Where the cut was.
    pub offset: u64,
    /// How many bytes were cut off.
    pub bytes: u64,
}

/// The number of a record: 1 for the first appended since open.
pub(crate) type Lsn = u64;

/// An open log. Appending and committing may be called from any thread.
pub(crate) struct Log {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    options: Options,
    writer: Mutex<Writer>,
    /// Signalled when a sync finishes (and, for the flusher, when a record is appended or the log closes).
    changed: Condvar,
    /// Held for its lock; released when the log is dropped.
    _lock: File,
    /// Every write fails while set, as on a full disk (for tests).
    #[cfg(test)]
    pub(crate) fail_writes: std::sync::atomic::AtomicBool,
}

struct Writer {
    file: Arc<File>,
    seq: u64,
    /// The current segment's length: where the next record goes.
    len: u64,
    /// The file's length: zeros from `len` on (see [`PREALLOCATE`]).
    allocated: u64,
    appended: Lsn,
    synced: Lsn,
    syncing: bool,
    syncs: u64,
    closing: bool,
    /// Set by a failed sync: the log takes no more records.
    failed: Option<String>,
    /// Frame scratch space.
    frame: Vec<u8>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, calling `replay` with every record in order.
    ///
    /// # Errors
    ///
    /// See [`JournalError`]; `replay`'s own error stops the opening.
    pub(crate) fn open(
        dir: &Path,
        options: Options,
        mut replay: impl FnMut(&[u8]) -> Result<(), &'static str>,
    ) -> Result<(Log, Recovery), JournalError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock_briefly_held(&lock).map_err(|e| match e {
            fs::TryLockError::WouldBlock => JournalError::Locked { path: dir.to_owned() },
            fs::TryLockError::Error(source) => JournalError::Io { path: lock_path.clone(), source },
        })?;
        remove_partial(dir)?;
        let segments = segments(dir)?;
        let mut recovery = Recovery { segments: segments.len(), ..Recovery::default() };
        let last = segments.len().checked_sub(1);
        let mut last_end = HEADER_LEN as u64;
        for (i, (seq, path)) in segments.iter().enumerate() {
            let bytes = fs::read(path).map_err(io(path))?;
            let end = read_segment(path, *seq, &bytes, Some(i) == last, &mut |record| {
                recovery.records += 1;
                replay(record)
            })?;
            // Zeros after the records are space allocated ahead (see `PREALLOCATE`); anything else in the last
            // segment is a torn tail: cut off.
            if !bytes[end as usize..].iter().all(|&b| b == 0) {
                let file = OpenOptions::new().write(true).open(path).map_err(io(path))?;
                file.set_len(end).map_err(io(path))?;
                file.sync_all().map_err(io(path))?;
                recovery.torn =
                    Some(Torn { path: path.clone(), offset: end, bytes: bytes.len() as u64 - end });
            }
            last_end = end;
        }
        let (file, seq, len) = match segments.last() {
            Some((seq, path)) => {
                let file = OpenOptions::new().read(true).write(true).open(path).map_err(io(path))?;
                if last_end < HEADER_LEN as u64 {
                    // A segment whose header was torn: nothing in it was ever synced. Start it afresh.
                    file.set_len(0).map_err(io(path))?;
                    write_at(&file, &header(*seq), 0).map_err(io(path))?;
                    file.sync_all().map_err(io(path))?;
                }
                (file, *seq, last_end.max(HEADER_LEN as u64))
            }
            None => (create_segment(dir, 1)?, 1, HEADER_LEN as u64),
        };
        let allocated = file.metadata().map_err(io(dir))?.len().max(len);
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            options,
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                seq,
                len,
                allocated,
                appended: 0,
                synced: 0,
                syncing: false,
                syncs: 0,
                closing: false,
                failed: None,
                frame: Vec::new(),
            }),
            changed: Condvar::new(),
            _lock: lock,
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicBool::new(false),
        });
        let flusher = match options.sync {
            SyncPolicy::Interval(every) => {
                let shared = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .name("leasequeue-journal-sync".into())
                    .spawn(move || shared.flush_every(every));
                Some(spawned.map_err(io(dir))?)
            }
            SyncPolicy::Always | SyncPolicy::Os => None,
        };
        Ok((Log { shared, flusher }, recovery))
    }

    /// Appends records in order (not yet durable: see [`commit`](Log::commit)), in one write per segment
    /// they go to; returns the last one's number.
    ///
    /// # Errors
    ///
    /// The write failed (the log is as it was before it) or an earlier sync failed.
    pub(crate) fn append<'r>(
        &self,
        records: impl IntoIterator<Item = &'r [u8]>,
    ) -> Result<Lsn, JournalError> {
        let shared = &*self.shared;
        let mut w = shared.writer.lock();
        shared.check(&w)?;
        let mut framed = std::mem::take(&mut w.frame);
        framed.clear();
        let mut count = 0;
        let mut result = Ok(());
        for record in records {
            if record.is_empty() || record.len() > MAX_RECORD {
                result = Err(JournalError::Io {
                    path: shared.dir.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "a record is 1 byte to MAX_RECORD"),
                });
                break;
            }
            let len = w.len + framed.len() as u64;
            if len > HEADER_LEN as u64
                && len + (FRAME_LEN + record.len()) as u64 > shared.options.segment_size
            {
                // What is framed so far goes to this segment; the rest to the next.
                result = shared.write(&mut w, &framed, count).and_then(|()| shared.rotate(&mut w));
                framed.clear();
                count = 0;
                if result.is_err() {
                    break;
                }
            }
            frame(&mut framed, record);
            count += 1;
        }
        if result.is_ok() {
            result = shared.write(&mut w, &framed, count);
        }
        w.frame = framed;
        result?;
        if matches!(shared.options.sync, SyncPolicy::Interval(_)) {
            shared.changed.notify_all(); // the flusher starts its interval
        }
        Ok(w.appended)
    }

    /// Starts a checkpoint: closes the current segment and goes on in the one after next, so that the
    /// checkpoint, written meanwhile by [`write_checkpoint`](Log::write_checkpoint), sorts between the
    /// records it replaces and those that follow it. Returns the sequence number reserved for it.
    ///
    /// # Errors
    ///
    /// The segment could not be closed or the next created (the log is failed then).
    pub(crate) fn begin_checkpoint(&self) -> Result<u64, JournalError> {
        let shared = &*self.shared;
        let mut w = shared.writer.lock();
        shared.check(&w)?;
        let reserved = w.seq + 1;
        shared.rotate_to(&mut w, reserved + 1)?;
        Ok(reserved)
    }

    /// Writes a checkpoint begun with [`begin_checkpoint`](Log::begin_checkpoint): the records that
    /// replace every earlier one, into a file of their own (however long they are), synced, then renamed
    /// into place as segment `seq` with the directory synced; then deletes the segments before it. A crash
    /// before the rename leaves the older segments, which replay as before (the partial file is deleted
    /// at the next open); one after it leaves both, and replay finds the checkpoint.
    ///
    /// # Errors
    ///
    /// A write or sync failed: the checkpoint is not in place, and the log goes on as before it.
    pub(crate) fn write_checkpoint<'r>(
        &self,
        seq: u64,
        records: impl IntoIterator<Item = &'r [u8]>,
    ) -> Result<(), JournalError> {
        let dir = &self.shared.dir;
        let path = dir.join(segment_name(seq));
        let partial = dir.join(format!("{}{PARTIAL}", segment_name(seq)));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Io { path, source }
        };
        let mut framed = header(seq).to_vec();
        for record in records {
            frame(&mut framed, record);
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(io(&partial))?;
        write_at(&file, &framed, 0).map_err(io(&partial))?;
        file.sync_all().map_err(io(&partial))?;
        fs::rename(&partial, &path).map_err(io(&path))?;
        sync_dir(dir)?;
        self.shared.writer.lock().syncs += 2;
        for (older, older_path) in segments(dir)? {
            if older < seq {
                fs::remove_file(&older_path).map_err(io(&older_path))?;
            }
        }
        sync_dir(dir)
    }

    /// Fails the log: from now on it takes no records (a record that could not be written after its
    /// change took effect in memory: what is on disk no longer follows the queue).
    pub(crate) fn fail(&self, what: String) {
        let mut w = self.shared.writer.lock();
        if w.failed.is_none() {
            w.failed = Some(what);
        }
        self.shared.changed.notify_all();
    }

    /// Reads every record on disk now, in order, as opening would (for checking a live journal against
    /// its queue: the records written so far are all in the files, if not all synced).
    pub(crate) fn read_back(
        &self,
        mut replay: impl FnMut(&[u8]) -> Result<(), &'static str>,
    ) -> Result<(), JournalError> {
        let _writer = self.shared.writer.lock(); // no record half written meanwhile
        let segments = segments(&self.shared.dir)?;
        for (i, (seq, path)) in segments.iter().enumerate() {
            let bytes = fs::read(path).map_err(|source| JournalError::Io { path: path.clone(), source })?;
            read_segment(path, *seq, &bytes, i + 1 == segments.len(), &mut replay)?;
        }
        Ok(())
    }

    /// The log's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Why the log takes no more records, if it does not.
    pub(crate) fn check(&self) -> Result<(), JournalError> {
        self.shared.check(&self.shared.writer.lock())
    }

    /// Makes everything appended so far as durable as the sync policy says (see [`commit`](Log::commit)).
    pub(crate) fn commit_all(&self) -> Result<(), JournalError> {
        let appended = self.shared.writer.lock().appended;
        self.commit(appended)
    }

    /// Makes every record up to `lsn` as durable as the sync policy says: under
    /// [`SyncPolicy::Always`] it returns once they are on disk (sharing one sync with concurrent
    /// committers); under the others at once.
    ///
    /// # Errors
    ///
    /// The sync failed (from then on the log refuses every call).
    pub(crate) fn commit(&self, lsn: Lsn) -> Result<(), JournalError> {
        match self.shared.options.sync {
            SyncPolicy::Always => self.shared.sync_through(lsn),
            SyncPolicy::Interval(_) | SyncPolicy::Os => self.shared.check(&self.shared.writer.lock()),
        }
    }

    /// Makes every write fail while `fail` holds, as on a full disk.
    #[cfg(test)]
    pub(crate) fn fail_writes(&self, fail: bool) {
        self.shared.fail_writes.store(fail, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many syncs the log has made since it was opened.
    pub(crate) fn syncs(&self) -> u64 {
        self.shared.writer.lock().syncs
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let appended = {
            let mut w = self.shared.writer.lock();
            w.closing = true;
            self.shared.changed.notify_all();
            w.appended
        };
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        if self.shared.options.sync != SyncPolicy::Os {
            let _ = self.shared.sync_through(appended); // a clean close loses nothing
        }
    }
}

impl Shared {
    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(segment_name(seq))
    }

    fn check(&self, w: &Writer) -> Result<(), JournalError> {
        match &w.failed {
            Some(what) => Err(JournalError::Failed { path: self.dir.clone(), what: what.clone() }),
            None => Ok(()),
        }
    }

    /// Writes `count` framed records to the current segment; a partial write is cut back, so that no
    /// torn record ever sits before later ones.
    fn write(&self, w: &mut MutexGuard<'_, Writer>, framed: &[u8], count: u64) -> Result<(), JournalError> {
        if framed.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        if self.fail_writes.load(std::sync::atomic::Ordering::Relaxed) {
            let source = io::Error::new(io::ErrorKind::StorageFull, "no space left on device (injected)");
            return Err(JournalError::Io { path: self.segment_path(w.seq), source });
        }
        let end = w.len + framed.len() as u64;
        if end > w.allocated {
            // Zeros ahead, so that a sync of the records written over them is a sync of data alone (a file
            // that grows makes every `fdatasync` commit its new length too).
            let to = end.max((w.len + PREALLOCATE).min(self.options.segment_size));
            let zeros = vec![0; (to - w.allocated) as usize];
            if let Err(source) = write_at(&w.file, &zeros, w.allocated) {
                return Err(JournalError::Io { path: self.segment_path(w.seq), source });
            }
            w.allocated = to;
        }
        if let Err(source) = write_at(&w.file, framed, w.len) {
            // Zero what may have been written, so that no torn record ever sits before later ones.
            if let Err(cut) = write_at(&w.file, &vec![0; framed.len()], w.len) {
                w.failed = Some(format!("a failed write could not be undone: {cut}"));
            }
            return Err(JournalError::Io { path: self.segment_path(w.seq), source });
        }
        w.len = end;
        w.appended += count;
        Ok(())
    }

    /// Closes the current segment (synced, so that every record so far is durable) and starts the next.
    fn rotate(&self, w: &mut MutexGuard<'_, Writer>) -> Result<(), JournalError> {
        let next = w.seq + 1;
        self.rotate_to(w, next)
    }

    /// [`rotate`](Shared::rotate), to segment `seq` (the one after next, when a checkpoint takes the next).
    fn rotate_to(&self, w: &mut MutexGuard<'_, Writer>, seq: u64) -> Result<(), JournalError> {
        let path = self.segment_path(w.seq);
        // The closed segment ends at its last record: its zeros ahead are cut off.
        if let Err(source) = w.file.set_len(w.len).and_then(|()| w.file.sync_all()) {
            w.failed = Some(format!("sync of {}: {source}", path.display()));
            return Err(JournalError::Io { path, source });
        }
        w.synced = w.appended;
        w.syncs += 1;
        w.file = Arc::new(create_segment(&self.dir, seq)?);
        w.seq = seq;
        w.len = HEADER_LEN as u64;
        w.allocated = HEADER_LEN as u64;
        self.changed.notify_all();
        Ok(())
    }

    /// Returns once every record up to `lsn` is on disk: syncs itself if no sync is running, else waits
    /// for the running one (and syncs again if that did not cover `lsn`).
    fn sync_through(&self, lsn: Lsn) -> Result<(), JournalError> {
        let mut w = self.writer.lock();
        loop {
            self.check(&w)?;
            if w.synced >= lsn {
                return Ok(());
            }
            if w.syncing {
                self.changed.wait(&mut w);
                continue;
            }
            w.syncing = true;
            let (target, file, seq) = (w.appended, Arc::clone(&w.file), w.seq);
            let result = MutexGuard::unlocked(&mut w, || file.sync_data());
            w.syncing = false;
            w.syncs += 1;
            match result {
                // A rotation meanwhile synced the older segments: `target`'s records are on disk either way.
                Ok(()) => w.synced = w.synced.max(target),
                Err(source) => {
                    let path = self.segment_path(seq);
                    w.failed = Some(format!("sync of {}: {source}", path.display()));
                    self.changed.notify_all();
                    return Err(JournalError::Io { path, source });
                }
            }
            self.changed.notify_all();
        }
    }

    /// The interval policy's thread: once records are appended, sync them within `every`.
    fn flush_every(&self, every: Duration) {
        let clock = Clock::system();
        let mut w = self.writer.lock();
        loop {
            while w.appended == w.synced && !w.closing {
                self.changed.wait(&mut w);
            }
            if w.closing {
                return; // the close syncs what is left
            }
            let due = clock.tick().saturating_add(ticks(every));
            while clock.tick() < due && !w.closing {
                clock.wait(&self.changed, &mut w, due);
            }
            let appended = w.appended;
            drop(w);
            let _ = self.sync_through(appended); // a failure is kept in `failed` and reported to callers
            w = self.writer.lock();
        }
    }
}

/// The segments in `dir`, by sequence number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let entries = fs::read_dir(dir).map_err(|source| JournalError::Io { path: dir.to_owned(), source })?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| JournalError::Io { path: dir.to_owned(), source })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == LOCK_FILE || name.strip_suffix(PARTIAL).and_then(segment_seq).is_some() {
            continue; // a checkpoint cut short before its rename: deleted at open
        }
        match segment_seq(&name) {
            Some(seq) if seq > 0 => segments.push((seq, entry.path())),
            _ => return Err(JournalError::NotAJournal { path: dir.to_owned() }),
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Takes the journal's lock, waiting up to [`LOCK_PATIENCE`] for it. A lock is held by an open file
/// description, which a child process shares between its `fork` and its `exec`: a process that spawns
/// children while another of its queues closes the journal can see the lock held for that moment.
/// Another process that has the journal open holds it for longer, and gets `WouldBlock`.
fn lock_briefly_held(lock: &File) -> Result<(), fs::TryLockError> {
    let clock = Clock::system();
    let until = clock.tick().saturating_add(ticks(LOCK_PATIENCE));
    loop {
        match lock.try_lock() {
            Err(fs::TryLockError::WouldBlock) if clock.tick() < until => {
                #[allow(clippy::disallowed_methods)] // a pause between tries, on no queue's clock
                thread::sleep(Duration::from_millis(2));
            }
            result => return result,
        }
    }
}

/// The sequence number a segment's file name gives.
fn segment_seq(name: &str) -> Option<u64> {
    name.strip_suffix(".log").filter(|n| n.len() == 20).and_then(|n| n.parse::<u64>().ok())
}

/// Deletes what a checkpoint cut short before its rename left (see [`Log::write_checkpoint`]).
fn remove_partial(dir: &Path) -> Result<(), JournalError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| JournalError::Io { path, source }
    };
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        if name.to_string_lossy().strip_suffix(PARTIAL).and_then(segment_seq).is_some() {
            fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

fn header(seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..].copy_from_slice(&seq.to_le_bytes());
    h
}

/// Creates segment `seq` with its header, synced, and syncs the directory so that the file's name is
/// durable too.
fn create_segment(dir: &Path, seq: u64) -> Result<File, JournalError> {
    let path = dir.join(segment_name(seq));
    let io = |source| JournalError::Io { path: path.clone(), source };
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io)?;
    write_at(&file, &header(seq), 0).map_err(io)?;
    file.sync_all().map_err(io)?;
    sync_dir(dir)?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    let io = |source| JournalError::Io { path: dir.to_owned(), source };
    File::open(dir).map_err(io)?.sync_all().map_err(io)
}

/// Writes all of `buf` at `offset`.
#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Writes all of `buf` at `offset`.
#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Frames `record` onto the end of `out`: length, CRC-32C of length and payload, payload.
fn frame(out: &mut Vec<u8>, record: &[u8]) {
    let len = (record.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), record);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(record);
}

/// Reads one segment's records into `replay`; returns where the readable records end. In the last
/// segment a bad frame ends them (a torn tail); elsewhere it is an error.
fn read_segment(
    path: &Path,
    seq: u64,
    bytes: &[u8],
    last: bool,
    replay: &mut dyn FnMut(&[u8]) -> Result<(), &'static str>,
) -> Result<u64, JournalError> {
    let corrupt =
        |offset: usize, what| JournalError::Corrupt { path: path.to_owned(), offset: offset as u64, what };
    if bytes.len() < HEADER_LEN {
        // A segment is created with its header synced before any record goes in: a short one is the
        // last, torn while it was created.
        return if last { Ok(0) } else { Err(corrupt(0, "the segment header is cut short")) };
    }
    if bytes[..4] != MAGIC {
        return Err(JournalError::NotAJournal { path: path.to_owned() });
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if version > FORMAT_VERSION || version == 0 {
        return Err(JournalError::Version {
            path: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let mut seq_bytes = [0; 8];
    seq_bytes.copy_from_slice(&bytes[8..HEADER_LEN]);
    if u64::from_le_bytes(seq_bytes) != seq {
        return Err(corrupt(8, "the segment header names another segment"));
    }
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Ok(record) => {
                replay(record).map_err(|what| corrupt(at, what))?;
                at += FRAME_LEN + record.len();
            }
            // In the last segment a torn tail starts here; in any, zeros are space allocated ahead (a closed
            // segment's are cut off, unless a crash came first).
            Err(_) if last || bytes[at..].iter().all(|&b| b == 0) => return Ok(at as u64),
            Err(what) => return Err(corrupt(at, what)),
        }
    }
    Ok(at as u64)
}

/// The record framed at `at`, or what is wrong with it.
fn record_at(bytes: &[u8], at: usize) -> Result<&[u8], &'static str> {
    let frame = bytes.get(at..at + FRAME_LEN).ok_or("a record frame is cut short")?;
    let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    if len == 0 || len > MAX_RECORD {
        return Err("a record length is out of range");
    }
    let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let record = bytes.get(at + FRAME_LEN..at + FRAME_LEN + len).ok_or("a record is cut short")?;
    if crc32c::crc32c_append(crc32c::crc32c(&frame[..4]), record) != crc {
        return Err("a record's checksum does not match");
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::journal::tests::TempDir;

    fn open(dir: &Path, options: Options) -> Result<(Log, Recovery, Vec<Vec<u8>>), JournalError> {
        let mut records = Vec::new();
        let (log, recovery) = Log::open(dir, options, |r| {
            records.push(r.to_vec());
            Ok(())
        })?;
        Ok((log, recovery, records))
    }

    fn record(i: u32) -> Vec<u8> {
        // Records of varied lengths, so that cuts land in frames and payloads alike.
        (0..(i % 7 + 1) * 5).map(|b| (b as u8) ^ (i as u8)).collect()
    }

    fn os() -> Options {
        Options { sync: SyncPolicy::Os, ..Options::default() }
    }

    #[test]
    fn records_come_back_in_order_after_a_reopen() {
        let dir = TempDir::new("order");
        let (log, recovery, records) = open(&dir.0, Options::default()).unwrap();
        assert_eq!((recovery.records, records.len()), (0, 0));
        let all: Vec<Vec<u8>> = (0..100).map(record).collect();
        for chunk in all.chunks(10) {
            let lsn = log.append(chunk.iter().map(Vec::as_slice)).unwrap();
            log.commit(lsn).unwrap();
        }
        assert!(log.syncs() >= 10);
        drop(log);
        let (_log, recovery, records) = open(&dir.0, Options::default()).unwrap();
        assert_eq!(records, all);
        assert_eq!((recovery.records, recovery.segments, recovery.torn), (100, 1, None));
    }

    #[test]
    fn segments_rotate_and_replay_as_one_log() {
        let dir = TempDir::new("rotate");
        let options = Options { sync: SyncPolicy::Always, segment_size: 200 };
        let (log, _, _) = open(&dir.0, options).unwrap();
        let all: Vec<Vec<u8>> = (0..50).map(record).collect();
        for r in &all {
            log.append([r.as_slice()]).unwrap();
        }
        drop(log);
        let (log, recovery, records) = open(&dir.0, options).unwrap();
        assert_eq!(records, all);
        assert!(recovery.segments > 5, "segments: {}", recovery.segments);
        log.append([b"after".as_slice()]).unwrap();
        drop(log);
        assert_eq!(open(&dir.0, options).unwrap().2.last().unwrap(), b"after");
    }

    /// Writes `synced` records durably and `tail` more without a sync; returns the segment's path, the
    /// length of the synced prefix, and the records.
    fn synced_then_tail(dir: &Path, synced: u32, tail: u32) -> (PathBuf, u64, Vec<Vec<u8>>) {
        let all: Vec<Vec<u8>> = (0..synced + tail).map(record).collect();
        let (log, _, _) = open(dir, Options::default()).unwrap();
        let lsn = log.append(all[..synced as usize].iter().map(Vec::as_slice)).unwrap();
        log.commit(lsn).unwrap();
        drop(log);
        let path = dir.join(segment_name(1));
        let synced_len = records_end(&fs::read(&path).unwrap()) as u64;
        let (log, _, _) = open(dir, os()).unwrap();
        log.append(all[synced as usize..].iter().map(Vec::as_slice)).unwrap();
        drop(log);
        (path, synced_len, all)
    }

    /// Where a segment's records end (zeros follow them).
    fn records_end(segment: &[u8]) -> usize {
        let mut at = HEADER_LEN;
        while let Ok(record) = record_at(segment, at) {
            at += FRAME_LEN + record.len();
        }
        assert!(segment[at..].iter().all(|&b| b == 0), "only zeros follow the records");
        at
    }

    #[test]
    fn a_cut_at_any_byte_after_the_last_sync_loses_only_the_cut_records() {
        let dir = TempDir::new("cut");
        let (path, synced_len, all) = synced_then_tail(&dir.0, 5, 6);
        let mut full = fs::read(&path).unwrap();
        full.truncate(records_end(&full));
        assert!(full.len() as u64 > synced_len + 6 * 8);
        for cut in synced_len..=full.len() as u64 {
            fs::write(&path, &full[..cut as usize]).unwrap();
            let (log, recovery, records) = open(&dir.0, os()).unwrap();
            assert!(records.len() >= 5, "a synced record was lost at cut {cut}");
            assert_eq!(records, all[..records.len()], "cut {cut}");
            let kept = fs::metadata(&path).unwrap().len();
            assert_eq!(recovery.torn.map_or(0, |t| t.bytes), cut - kept, "cut {cut}");
            // The log goes on from the cut.
            log.append([b"next".as_slice()]).unwrap();
            drop(log);
            let (_, recovery, again) = open(&dir.0, os()).unwrap();
            assert_eq!((again.len(), again.last().unwrap().as_slice()), (records.len() + 1, &b"next"[..]));
            assert_eq!(recovery.torn, None);
        }
    }

    #[test]
    fn zeros_allocated_ahead_are_no_tear_in_the_last_segment_or_any_other() {
        let dir = TempDir::new("zeros");
        let (log, _, _) = open(&dir.0, Options::default()).unwrap();
        log.append([b"a".as_slice(), b"b".as_slice()]).unwrap();
        drop(log);
        let path = dir.0.join(segment_name(1));
        let bytes = fs::read(&path).unwrap();
        assert!(bytes.len() > records_end(&bytes), "zeros follow the records");
        let (log, recovery, records) = open(&dir.0, Options::default()).unwrap();
        assert_eq!((recovery.torn, records.len()), (None, 2));
        log.append([b"c".as_slice()]).unwrap(); // over the zeros
        drop(log);
        assert_eq!(
            open(&dir.0, Options::default()).unwrap().2,
            [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        // A crash between a rotation's new segment and the cut of the old one's zeros: no corruption.
        let second = dir.0.join(segment_name(2));
        fs::write(&second, header(2)).unwrap();
        let (_, recovery, records) = open(&dir.0, Options::default()).unwrap();
        assert_eq!((recovery.torn, records.len()), (None, 3));
    }

    #[test]
    fn flipped_bits_in_the_unsynced_tail_cut_it_there_and_never_fail() {
        let dir = TempDir::new("flip");
        let (path, synced_len, all) = synced_then_tail(&dir.0, 4, 4);
        let mut full = fs::read(&path).unwrap();
        full.truncate(records_end(&full));
        for at in synced_len as usize..full.len() {
            for bit in [0, 3, 7] {
                let mut bytes = full.clone();
                bytes[at] ^= 1 << bit;
                fs::write(&path, &bytes).unwrap();
                let (_, recovery, records) = open(&dir.0, os()).unwrap();
                assert!(records.len() >= 4 && records.len() < all.len(), "byte {at} bit {bit}");
                assert_eq!(records, all[..records.len()]);
                assert!(recovery.torn.is_some());
            }
        }
    }

    #[test]
    fn a_bad_record_before_the_last_segment_is_an_error_naming_file_and_offset() {
        let dir = TempDir::new("corrupt");
        let options = Options { sync: SyncPolicy::Always, segment_size: 100 };
        let (log, _, _) = open(&dir.0, options).unwrap();
        for i in 0..20 {
            log.append([record(i).as_slice()]).unwrap();
        }
        drop(log);
        let first = dir.0.join(segment_name(1));
        let mut bytes = fs::read(&first).unwrap();
        bytes[HEADER_LEN + FRAME_LEN] ^= 0xff; // the first record's first payload byte
        fs::write(&first, &bytes).unwrap();
        match open(&dir.0, options) {
            Err(JournalError::Corrupt { path, offset, .. }) => {
                assert_eq!((path, offset), (first, HEADER_LEN as u64));
            }
            other => panic!("expected Corrupt, got {:?}", other.map(|(_, r, _)| r)),
        }
    }

    #[test]
    fn a_second_opener_is_refused() {
        let dir = TempDir::new("lock");
        let (log, _, _) = open(&dir.0, Options::default()).unwrap();
        assert!(matches!(open(&dir.0, Options::default()), Err(JournalError::Locked { .. })));
        drop(log);
        assert!(open(&dir.0, Options::default()).is_ok());
    }

    #[test]
    fn other_directories_and_newer_versions_are_refused() {
        let dir = TempDir::new("foreign");
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.0.join("notes.txt"), "hello").unwrap();
        assert!(matches!(open(&dir.0, Options::default()), Err(JournalError::NotAJournal { .. })));

        let dir = TempDir::new("newer");
        drop(open(&dir.0, Options::default()).unwrap());
        let first = dir.0.join(segment_name(1));
        let mut bytes = fs::read(&first).unwrap();
        bytes[4..8].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        fs::write(&first, &bytes).unwrap();
        assert!(matches!(open(&dir.0, Options::default()), Err(JournalError::Version { found: 2, .. })));
    }

    #[test]
    fn concurrent_committers_share_syncs_and_lose_nothing() {
        let dir = TempDir::new("group");
        let (log, _, _) = open(&dir.0, Options::default()).unwrap();
        let log = Arc::new(log);
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    for i in 0..50u8 {
                        let lsn = log.append([[t, i].as_slice()]).unwrap();
                        log.commit(lsn).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = log.syncs();
        drop(log);
        let (_, _, records) = open(&dir.0, Options::default()).unwrap();
        assert_eq!(records.len(), 400);
        for t in 0..8u8 {
            let mine: Vec<u8> = records.iter().filter(|r| r[0] == t).map(|r| r[1]).collect();
            assert_eq!(mine, (0..50).collect::<Vec<u8>>(), "each thread's records in its order");
        }
        assert!(syncs <= 401, "at most one sync per commit, and one on close");
    }

    #[test]
    fn the_interval_policy_syncs_on_close() {
        let dir = TempDir::new("interval");
        let options = Options { sync: SyncPolicy::Interval(Duration::from_secs(3600)), ..Options::default() };
        let (log, _, _) = open(&dir.0, options).unwrap();
        let lsn = log.append([b"a".as_slice(), b"b".as_slice()]).unwrap();
        log.commit(lsn).unwrap(); // returns at once
        drop(log); // joins the flusher, then syncs
        assert_eq!(open(&dir.0, options).unwrap().2, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn empty_and_oversized_records_are_refused() {
        let dir = TempDir::new("sizes");
        let (log, _, _) = open(&dir.0, Options::default()).unwrap();
        assert!(log.append([b"".as_slice()]).is_err());
        assert!(log.append([vec![0; MAX_RECORD + 1].as_slice()]).is_err());
        assert_eq!(log.append([b"ok".as_slice()]).unwrap(), 1);
    }
}
