//! The journal store across restarts (feature `journal`): what a reopened queue finds, what a crash
//! leaves, and how opening treats a damaged or foreign directory. (The semantics of a journaled queue
//! while it runs are the conformance suite's, in `journal.rs`.)

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use leasequeue::{
    Backoff, DeadLetterReason, FailureKind, JournalError, PushOptions, Queue, QueueBuilder, TestClock,
};

use crate::secs;

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("leasequeue-it-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn builder<T: Send + Sync + 'static>(clock: &TestClock) -> QueueBuilder<T> {
    Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(secs(30))
        .max_attempts(3)
        .backoff(Backoff::fixed(secs(10)))
}

fn open<T>(dir: &TempDir, clock: &TestClock) -> Queue<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    builder(clock).open(dir.path()).unwrap()
}

/// What a crash leaves: a copy of the journal's files as they are now, with the queue still open (under
/// the default sync policy every call that returned has its record on disk). The copy opens as the
/// directory would after `kill -9` at this moment.
fn crash_copy(dir: &TempDir) -> TempDir {
    let copy = TempDir::new("crashed");
    fs::create_dir_all(copy.path()).unwrap();
    for file in segments(dir) {
        fs::copy(&file, copy.path().join(file.file_name().unwrap())).unwrap();
    }
    copy
}

/// The segment files of a journal, in order.
fn segments(dir: &TempDir) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_reopened_queue_finds_its_jobs_and_forgets_acked_ones() {
    let dir = TempDir::new("reopen");
    let clock = TestClock::new();
    let queue = open::<String>(&dir, &clock);
    let first = queue.push("first".into()).unwrap();
    let second = queue.push("second".into()).unwrap();
    queue.try_lease().unwrap().ack().unwrap();
    drop(queue);

    let queue = open::<String>(&dir, &clock);
    let recovery = queue.recovery().unwrap();
    assert_eq!((recovery.jobs, recovery.leased, recovery.dead_letters), (1, 0, 0));
    let syncs = queue.stats().syncs;
    assert!(syncs > 0, "the opening's checkpoint is synced");
    let lease = queue.try_lease().unwrap();
    assert_eq!((lease.id(), lease.as_str()), (second, "second"));
    assert_ne!(first, second);
    lease.ack().unwrap();
    assert!(queue.stats().syncs > syncs, "the lease and the ack waited for a sync");
    // Ids never repeat after a restart.
    assert!(queue.push("third".into()).unwrap() > second);
    drop(queue);

    let queue = open::<String>(&dir, &clock);
    assert_eq!(queue.len(), 1);
    assert_eq!(*queue.try_lease().unwrap(), "third");
}

#[test]
fn a_lease_out_at_a_crash_lapses_on_reopen_with_its_attempt_spent() {
    let dir = TempDir::new("lapse");
    let clock = TestClock::new();
    let queue = open::<u32>(&dir, &clock);
    let id = queue.push(7).unwrap();
    let lease = queue.try_lease().unwrap();
    assert_eq!(lease.attempt(), 1);
    // The process dies holding the lease: no outcome is ever recorded.
    let dir = crash_copy(&dir);
    drop((lease, queue));

    let queue = open::<u32>(&dir, &clock);
    assert_eq!(queue.recovery().unwrap().leased, 1);
    let lease = queue.try_lease().unwrap();
    assert_eq!((lease.id(), lease.attempt()), (id, 2));
    let dir = crash_copy(&dir);
    drop((lease, queue));

    // A job that kills the process on every attempt still runs out of them: the third crash buries it.
    let queue = open::<u32>(&dir, &clock);
    let lease = queue.try_lease().unwrap();
    let dir = crash_copy(&dir);
    drop((lease, queue));
    let queue = open::<u32>(&dir, &clock);
    assert!(queue.is_empty());
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id(), dead[0].reason(), dead[0].attempts()), (id, DeadLetterReason::MaxAttempts, 3));
    let history: Vec<(u32, FailureKind)> = dead[0].history().iter().map(|f| (f.attempt, f.kind)).collect();
    assert_eq!(history, [(1, FailureKind::Lapsed), (2, FailureKind::Lapsed), (3, FailureKind::Lapsed)]);
}

#[test]
fn delays_and_retries_keep_their_time_across_a_restart() {
    let dir = TempDir::new("delays");
    let clock = TestClock::new();
    let queue = open::<u32>(&dir, &clock);
    queue.push_with(1, PushOptions::new().delay(secs(60))).unwrap();
    queue.push(2).unwrap();
    queue.try_lease().unwrap().nack_with("flaky").unwrap(); // job 2 retries in 10 s
    drop(queue);

    clock.advance(secs(5));
    let queue = open::<u32>(&dir, &clock);
    assert!(queue.try_lease().is_err(), "nothing is due yet");
    clock.advance(secs(5));
    let retry = queue.try_lease().unwrap();
    assert_eq!((*retry, retry.attempt()), (2, 2));
    retry.reject("for good").unwrap();
    let history: Vec<(u32, Option<String>)> =
        queue.dead_letters()[0].history().iter().map(|f| (f.attempt, f.message.clone())).collect();
    assert_eq!(history, [(1, Some("flaky".into())), (2, Some("for good".into()))]);
    clock.advance(secs(49));
    assert!(queue.try_lease().is_err());
    clock.advance(secs(1));
    assert_eq!(*queue.try_lease().unwrap(), 1);
}

#[test]
fn dead_letters_survive_and_a_redrive_is_not_undone() {
    let dir = TempDir::new("dead");
    let clock = TestClock::new();
    let queue = open::<String>(&dir, &clock);
    queue.push("poison".into()).unwrap();
    queue.push("other".into()).unwrap();
    queue.try_lease().unwrap().reject("malformed").unwrap();
    drop(queue);

    let queue = open::<String>(&dir, &clock);
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((&**dead[0].job(), dead[0].reason()), ("poison", DeadLetterReason::Rejected));
    assert_eq!(dead[0].history()[0].message.as_deref(), Some("malformed"));
    assert_eq!(queue.redrive().run().moved, 1);
    drop(queue);

    let queue = open::<String>(&dir, &clock);
    assert!(queue.dead_letters().is_empty());
    let mut jobs: Vec<String> = std::iter::from_fn(|| queue.try_lease().ok()).map(|l| l.clone()).collect();
    jobs.sort();
    assert_eq!(jobs, ["other", "poison"]);
    drop(queue);

    let queue = open::<String>(&dir, &clock);
    assert_eq!(queue.len(), 2, "leases dropped unsettled are nacked (drop = nack), not lost");
    assert_eq!(queue.drain_dead_letters().len(), 0);
}

#[test]
fn pause_dedup_priorities_and_groups_survive() {
    let dir = TempDir::new("options");
    let clock = TestClock::new();
    let queue = open::<u32>(&dir, &clock);
    let key = PushOptions::new().dedup_key("order-9");
    let id = queue.push_with(1, key.clone()).unwrap().id();
    queue.push_with(2, PushOptions::new().priority(5)).unwrap();
    queue.push_with(3, PushOptions::new().group("customer-1")).unwrap();
    queue.push_with(4, PushOptions::new().group("customer-1")).unwrap();
    queue.pause();
    drop(queue);

    let queue = open::<u32>(&dir, &clock);
    assert!(queue.is_paused());
    assert_eq!(queue.push_with(9, key).unwrap().id(), id, "the dedup reservation held");
    queue.resume();
    let order: Vec<u32> = std::iter::from_fn(|| queue.try_lease().ok()).map(|l| *l).collect();
    assert_eq!(order, [2, 1, 3], "priority first; job 4 waits behind job 3 of its group");
}

#[test]
fn a_second_open_of_one_directory_is_refused() {
    let dir = TempDir::new("locked");
    let clock = TestClock::new();
    let queue = open::<u32>(&dir, &clock);
    let second = builder::<u32>(&clock).open(dir.path());
    assert!(matches!(second, Err(JournalError::Locked { .. })), "{second:?}");
    drop(queue);
    assert!(builder::<u32>(&clock).open(dir.path()).is_ok());
}

#[test]
fn a_directory_that_is_not_a_journal_is_refused() {
    let dir = TempDir::new("foreign");
    fs::create_dir_all(dir.path()).unwrap();
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = builder::<u32>(&TestClock::new()).open(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::NotAJournal { .. }), "{err:?}");
}

#[test]
fn an_invalid_configuration_is_refused_before_the_directory_is_touched() {
    let dir = TempDir::new("invalid");
    let err = Queue::<u32>::builder().max_attempts(0).open(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::Build(_)), "{err:?}");
    assert!(!dir.path().exists());
}

#[test]
fn a_torn_tail_is_cut_off_and_reported_and_nothing_synced_is_lost() {
    let dir = TempDir::new("torn");
    let clock = TestClock::new();
    let queue = open::<u32>(&dir, &clock);
    for job in 0..10 {
        queue.push(job).unwrap();
    }
    drop(queue);
    let last = segments(&dir).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let end = records_end(&bytes);
    // Half a frame of garbage where the next record would go, as a crash mid-write leaves.
    bytes[end..end + 7].copy_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
    let len = bytes.len();
    fs::write(&last, bytes).unwrap();

    let queue = open::<u32>(&dir, &clock);
    let torn = queue.recovery().unwrap().torn.expect("the tail is reported");
    assert_eq!((torn.offset, torn.bytes), (end as u64, (len - end) as u64));
    assert_eq!(queue.stats().torn_bytes, torn.bytes);
    assert_eq!(queue.len(), 10);
}

#[test]
fn a_corrupt_record_before_the_tail_is_an_error_naming_file_and_offset() {
    let dir = TempDir::new("corrupt");
    let clock = TestClock::new();
    let queue = builder::<u32>(&clock).segment_size(256).open(dir.path()).unwrap();
    for job in 0..100 {
        queue.push(job).unwrap();
    }
    drop(queue);
    let files = segments(&dir);
    assert!(files.len() > 2, "{files:?}");
    let first = &files[0];
    let mut bytes = fs::read(first).unwrap();
    bytes[30] ^= 0x40; // a bit flipped inside the first segment's records
    fs::write(first, bytes).unwrap();
    match builder::<u32>(&clock).segment_size(256).open(dir.path()) {
        Err(JournalError::Corrupt { path, .. }) => assert_eq!(&path, first),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn a_payload_that_no_longer_deserializes_is_kept_not_dropped() {
    let dir = TempDir::new("undecodable");
    let clock = TestClock::new();
    let queue = open::<String>(&dir, &clock);
    let id = queue.push("abc".into()).unwrap();
    let poison = queue.push("xyz".into()).unwrap();
    let lease = queue.try_lease().unwrap();
    assert_eq!(lease.id(), id);
    lease.nack_with("once").unwrap(); // job `id` retries in 10 s, attempt 1 spent
    queue.try_lease().unwrap().reject("poison").unwrap();
    drop(queue);

    // The job type changed: neither "abc" nor "xyz" is a bool.
    let queue = open::<bool>(&dir, &clock);
    assert!(queue.is_empty() && queue.dead_letters().is_empty());
    assert_eq!(queue.recovery().unwrap().undecodable, [id, poison]);
    let kept: Vec<(leasequeue::JobId, bool)> = queue.undecodable().iter().map(|u| (u.id, u.dead)).collect();
    assert_eq!(kept, [(id, false), (poison, true)]);
    drop(queue);

    // Kept through that opening's checkpoint as they were: back under the old type, with their attempts,
    // delays and histories.
    let queue = open::<String>(&dir, &clock);
    assert!(queue.undecodable().is_empty());
    assert!(queue.try_lease().is_err(), "job `id` still backs off");
    clock.advance(secs(10));
    let lease = queue.try_lease().unwrap();
    assert_eq!((lease.id(), lease.as_str(), lease.attempt()), (id, "abc", 2));
    let dead = queue.dead_letters();
    assert_eq!(
        (dead[0].id(), dead[0].job().as_str(), dead[0].reason()),
        (poison, "xyz", DeadLetterReason::Rejected)
    );
    assert_eq!(dead[0].history()[0].message.as_deref(), Some("poison"));
    drop((lease, queue));

    // Taken for good.
    let queue = open::<bool>(&dir, &clock);
    let taken = queue.take_undecodable();
    assert_eq!(taken.len(), 2);
    assert_eq!(taken[0].bytes, [3, b'a', b'b', b'c']);
    drop(queue);
    let queue = open::<bool>(&dir, &clock);
    assert!(queue.undecodable().is_empty(), "taken for good");
}

#[test]
fn compaction_keeps_disk_use_bounded_under_steady_load() {
    let dir = TempDir::new("compaction");
    let clock = TestClock::new();
    let segment = 4096;
    let queue = builder::<Vec<u8>>(&clock).segment_size(segment).open(dir.path()).unwrap();
    for _ in 0..20 {
        queue.push(vec![7; 100]).unwrap(); // a standing backlog of 20 jobs
    }
    let mut peak = 0;
    for round in 0..5_000u32 {
        queue.push(round.to_le_bytes().to_vec()).unwrap();
        queue.try_lease().unwrap().ack().unwrap();
        let bytes: u64 = segments(&dir).iter().map(|p| fs::metadata(p).map_or(0, |m| m.len())).sum();
        peak = peak.max(bytes);
    }
    // About 20 live jobs of ~120 bytes: bounded by twice that plus a segment, with room for one record
    // past the threshold and a segment header.
    assert!(peak < 2 * 20 * 130 + 2 * segment + 1024, "peak {peak} bytes on disk");
    drop(queue);
    let queue = builder::<Vec<u8>>(&clock).segment_size(segment).open(dir.path()).unwrap();
    assert_eq!(queue.len(), 20);
}

#[test]
fn a_power_cut_at_any_byte_after_the_last_sync_loses_nothing_that_was_synced() {
    let dir = TempDir::new("power");
    let clock = TestClock::new();
    let queue = open::<u32>(&dir, &clock);
    let synced: Vec<_> = (0..5).map(|job| queue.push(job).unwrap()).collect();
    let last = segments(&dir).pop().unwrap();
    let synced_len = records_end(&fs::read(&last).unwrap());
    // What a power cut could take: the records written after that point (here synced too, but a cut
    // may leave any prefix of them, or garbage where the disk had not written them yet).
    let lease = queue.try_lease().unwrap();
    lease.ack().unwrap();
    for job in 5..8 {
        queue.push(job).unwrap();
    }
    let mut full = fs::read(&last).unwrap();
    full.truncate(records_end(&full)); // zeros follow the records: space allocated ahead
    drop(queue);
    assert!(full.len() > synced_len + 20);

    let name = last.file_name().unwrap().to_owned();
    // The segments before the last (the checkpoint) as they are; the last as a power cut left it.
    let earlier: Vec<(std::ffi::OsString, Vec<u8>)> = segments(&dir)
        .iter()
        .filter(|p| **p != last)
        .map(|p| (p.file_name().unwrap().to_owned(), fs::read(p).unwrap()))
        .collect();
    let reopen = |bytes: &[u8]| {
        let copy = TempDir::new("power-copy");
        fs::create_dir_all(copy.path()).unwrap();
        for (earlier, contents) in &earlier {
            fs::write(copy.path().join(earlier), contents).unwrap();
        }
        fs::write(copy.path().join(&name), bytes).unwrap();
        let queue = open::<u32>(&copy, &clock);
        let ids: Vec<_> = queue.jobs().iter().map(|j| j.id).collect();
        (ids, queue.recovery().unwrap())
    };
    for cut in synced_len..=full.len() {
        let (ids, recovery) = reopen(&full[..cut]);
        // Jobs 2 to 5 were synced and never acked; job 1 may have been acked (its ack may be cut off).
        for id in &synced[1..] {
            assert!(ids.contains(id), "cut at {cut}: job {id:?} lost; recovered {ids:?}");
        }
        assert_eq!(recovery.torn.is_some(), cut != full.len() && !ends_a_record(&full, cut));
    }
    // Garbage in the unsynced part: every bit flipped in turn; recovery cuts there and keeps the rest.
    for at in synced_len..full.len() {
        let mut bytes = full.clone();
        bytes[at] ^= 0x10;
        let (ids, recovery) = reopen(&bytes);
        assert!(recovery.torn.is_some(), "a flipped bit at {at} is found");
        for id in &synced[1..] {
            assert!(ids.contains(id), "bit flipped at {at}: job {id:?} lost");
        }
    }
}

/// Where the records of segment `bytes` end (16-byte header, then frames of
/// `length: u32 | crc: u32 | payload`, then zeros).
fn records_end(bytes: &[u8]) -> usize {
    let mut at = 16;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        at += 8 + len;
    }
    at
}

/// Whether `cut` falls exactly between two records of the segment `bytes`.
fn ends_a_record(bytes: &[u8], cut: usize) -> bool {
    let mut at = 16;
    while at < cut {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    at == cut
}

mod reopen {
    //! A property test: random operations on a journaled queue, reopened at random points from what a
    //! crash would leave. Each reopening must give back exactly the queue it had (every job with its
    //! state, attempt, priority, push time and due time; every dead letter; the pause), except that a
    //! lease that was out has lapsed: its job is ready again, or dead-lettered if that was its last
    //! attempt.

    use super::*;
    use leasequeue::{JobInfo, JobState, Lease};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::time::Instant;

    #[derive(Clone, Debug)]
    enum Op {
        Push { delay: Option<u64>, priority: u8, group: Option<u8> },
        Lease,
        Ack(usize),
        Nack(usize),
        Reject(usize),
        Release(usize),
        Advance(u64),
        Pause(bool),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (prop::option::of(1..60u64), 0..3u8, prop::option::of(0..3u8))
                .prop_map(|(delay, priority, group)| Op::Push { delay, priority, group }),
            4 => Just(Op::Lease),
            2 => any::<usize>().prop_map(Op::Ack),
            2 => any::<usize>().prop_map(Op::Nack),
            1 => any::<usize>().prop_map(Op::Reject),
            1 => any::<usize>().prop_map(Op::Release),
            2 => (1..40u64).prop_map(Op::Advance),
            1 => any::<bool>().prop_map(Op::Pause),
            2 => Just(Op::Reopen),
        ]
    }

    /// What a reopening must keep: the jobs, the dead letters (id, reason, attempts) and the pause.
    type Seen = (Vec<JobInfo>, Vec<(u64, DeadLetterReason, u32)>, bool);

    fn seen(queue: &Queue<u32>) -> Seen {
        let mut dead: Vec<_> =
            queue.dead_letters().iter().map(|d| (d.id().as_u64(), d.reason(), d.attempts())).collect();
        dead.sort_unstable_by_key(|d| d.0);
        (queue.jobs(), dead, queue.is_paused())
    }

    /// What the reopened queue must show, from what the crashed one showed: its leases lapsed, the last
    /// attempts among them dead-lettered, and the next job of a group whose head was dead-lettered
    /// promoted (ready, or delayed until its own ready time). `groups` names each job's group.
    fn after_reopen(before: Seen, groups: &HashMap<u64, u8>, now: Instant) -> Seen {
        let (jobs, mut dead, paused) = before;
        let mut live: Vec<JobInfo> = Vec::new();
        let mut moved_on = Vec::new();
        for job in jobs {
            if job.state != JobState::Leased {
                live.push(job);
            } else if job.attempt >= 3 {
                dead.push((job.id.as_u64(), DeadLetterReason::MaxAttempts, job.attempt));
                moved_on.extend(groups.get(&job.id.as_u64()));
            } else {
                let mut lapsed = job.clone();
                lapsed.state = JobState::Ready;
                lapsed.next = None;
                live.push(lapsed);
            }
        }
        for group in moved_on {
            let next = live
                .iter_mut()
                .filter(|j| j.state == JobState::Waiting && groups.get(&j.id.as_u64()) == Some(&group))
                .min_by_key(|j| j.id);
            if let Some(next) = next {
                match next.next {
                    Some(at) if at > now => next.state = JobState::Delayed,
                    _ => (next.state, next.next) = (JobState::Ready, None),
                }
            }
        }
        dead.sort_unstable_by_key(|d| d.0);
        (live, dead, paused)
    }

    fn pick(held: &mut Vec<Lease<u32>>, i: usize) -> Option<Lease<u32>> {
        (!held.is_empty()).then(|| held.swap_remove(i % held.len()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn reopening_gives_back_the_queue_it_had_with_its_leases_lapsed(
            ops in prop::collection::vec(op(), 1..60)
        ) {
            let clock = TestClock::new();
            let mut dir = TempDir::new("reopen-prop");
            let mut queue = open::<u32>(&dir, &clock);
            let mut held: Vec<Lease<u32>> = Vec::new();
            let mut groups = HashMap::new();
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::Push { delay, priority, group } => {
                        let mut options = PushOptions::new().priority(priority);
                        if let Some(delay) = delay {
                            options = options.delay(secs(delay));
                        }
                        if let Some(group) = group {
                            options = options.group(format!("g{group}"));
                        }
                        let id = queue.push_with(next, options).unwrap().id();
                        if let Some(group) = group {
                            groups.insert(id.as_u64(), group);
                        }
                        next += 1;
                    }
                    Op::Lease => {
                        if let Ok(lease) = queue.try_lease() {
                            held.push(lease);
                        }
                    }
                    Op::Ack(i) => { if let Some(l) = pick(&mut held, i) { let _ = l.ack(); } }
                    Op::Nack(i) => { if let Some(l) = pick(&mut held, i) { let _ = l.nack_with("no"); } }
                    Op::Reject(i) => { if let Some(l) = pick(&mut held, i) { let _ = l.reject("bad"); } }
                    Op::Release(i) => { if let Some(l) = pick(&mut held, i) { let _ = l.release(); } }
                    Op::Advance(s) => clock.advance(secs(s)),
                    Op::Pause(true) => queue.pause(),
                    Op::Pause(false) => queue.resume(),
                    Op::Reopen => {
                        let before = seen(&queue);
                        let crashed = crash_copy(&dir);
                        // Settled on the dead process's queue: never recorded in the copy.
                        drop(std::mem::take(&mut held));
                        drop(queue);
                        dir = crashed;
                        queue = open::<u32>(&dir, &clock);
                        prop_assert_eq!(seen(&queue), after_reopen(before, &groups, clock.now()));
                    }
                }
            }
        }
    }
}

#[test]
fn a_pool_on_a_journal_takes_jobs_in_batches_and_gives_back_unrun_the_ones_it_had_not_started() {
    use leasequeue::WorkerPool;
    use std::sync::Arc;

    let dir = TempDir::new("pool-batches");
    let queue: Queue<u32> = Queue::builder().open(dir.path()).unwrap();
    for job in 0..40 {
        queue.push(job).unwrap();
    }
    let syncs = queue.stats().syncs;
    let (started, on_start) = crossbeam_channel::bounded(1);
    let handled = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&handled);
    let pool = WorkerPool::builder(queue.clone())
        .workers(1)
        .build(move |job| {
            if *job == 20 {
                // Job 20 runs until the shutdown cancels it: by then the worker holds jobs it took with
                // it and has not started.
                started.send(()).unwrap();
                crate::until(|| job.is_cancelled());
                return leasequeue::Outcome::defer(secs(0));
            }
            seen.fetch_add(1, Ordering::Relaxed);
            leasequeue::Outcome::Done
        })
        .unwrap();
    on_start.recv().unwrap();
    assert!(queue.stats().syncs - syncs < 20, "20 jobs leased in fewer syncs: taken in batches");
    let report = pool.shutdown(secs(10));
    assert_eq!(report.threads_left, 0);
    assert_eq!(handled.load(Ordering::Relaxed), 20);
    let stats = queue.stats();
    assert_eq!((stats.leased, stats.ready, stats.acked), (0, 20, 20));
    // The jobs taken but not started went back unrun: no attempt spent (job 20 was deferred: not spent).
    assert!(queue.jobs().iter().all(|j| j.attempt == 0), "{:?}", queue.jobs());
}

#[test]
fn a_checkpoint_cut_short_before_its_rename_is_ignored_and_deleted() {
    let dir = TempDir::new("partial-checkpoint");
    let clock = TestClock::new();
    let queue = open::<u32>(&dir, &clock);
    for job in 0..5 {
        queue.push(job).unwrap();
    }
    drop(queue);
    let last = segments(&dir).pop().unwrap();
    let seq: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    // What a crash in the middle of writing the next checkpoint leaves: a partial file, not yet renamed.
    let partial = dir.path().join(format!("{:020}.log.partial", seq + 1));
    fs::write(&partial, b"LQJL half a checkpoint").unwrap();
    let queue = open::<u32>(&dir, &clock);
    assert_eq!(queue.len(), 5);
    assert_eq!(queue.recovery().unwrap().torn, None);
    assert!(!partial.exists(), "deleted at open");
}

/// A job whose `Serialize` panics on 13 and whose `Deserialize` panics on 7 (user code, both).
#[derive(Debug, PartialEq)]
struct Touchy(u32);

impl serde::Serialize for Touchy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert_ne!(self.0, 13, "unlucky");
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = <u32 as serde::Deserialize>::deserialize(d)?;
        assert_ne!(value, 7, "seven");
        Ok(Touchy(value))
    }
}

#[test]
fn a_panicking_serialize_or_deserialize_is_caught_and_loses_no_job() {
    let dir = TempDir::new("touchy");
    let clock = TestClock::new();
    let queue = open::<Touchy>(&dir, &clock);
    queue.push(Touchy(1)).unwrap();
    match queue.push(Touchy(13)) {
        Err(leasequeue::PushError::Store(job, _)) => assert_eq!(job, Touchy(13)),
        other => panic!("expected a store error with the job, got {other:?}"),
    }
    let batch = queue.push_batch([Touchy(2), Touchy(13)]);
    assert!(batch[0].is_ok());
    assert!(matches!(&batch[1], Err(leasequeue::TryPushError::Store(job, _)) if *job == Touchy(13)));
    assert_eq!((queue.len(), queue.stats().panics), (2, 2), "caught and counted, nothing half pushed");
    let seven = queue.push(Touchy(7)).unwrap();
    drop(queue);

    // Reopened, the job whose `Deserialize` panics is kept as undecodable; the others come back.
    let queue = open::<Touchy>(&dir, &clock);
    assert_eq!(queue.recovery().unwrap().undecodable, [seven]);
    let jobs: Vec<u32> = std::iter::from_fn(|| queue.try_lease().ok()).map(|l| l.0).collect();
    assert_eq!(jobs, [1, 2]);
}
