//! The journal's crash harness (feature `journal`): a child process runs random pushes, leases, acks,
//! nacks and releases against a journaled queue, beside a `WorkerPool` on it, logging each call that
//! returned `Ok`; this process
//! kills it with SIGKILL at a random moment, reopens the journal and checks what the child was promised:
//!
//! - every push that returned `Ok` is in the queue, in the dead-letter store, or was being acked;
//! - no ack that returned `Ok` is undone (under the default sync policy);
//! - attempts never go backwards;
//! - the journal always opens.
//!
//! Then it starts the next child on the same journal, and so on.
//!
//! ```text
//! cargo run --release --features journal --example crash -- 10000
//! ```
//!
//! `cargo test --features journal` runs the same harness for 100 kills (`tests/integration/crash.rs`,
//! which includes this file).

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use leasequeue::{Backoff, Lease, Outcome, Queue, QueueBuilder, WorkerPool};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The queue both processes open: short retries so that jobs cycle, five attempts.
pub fn builder() -> QueueBuilder<u64> {
    Queue::builder()
        .max_attempts(5)
        .visibility_timeout(Duration::from_secs(60))
        .backoff(Backoff::fixed(Duration::from_millis(1)))
        .segment_size(256 << 10)
}

/// The child's side: random operations until it is killed, beside a two-worker `WorkerPool` on the
/// same queue. Each call that returned `Ok` is logged, one line per call written straight to the file in
/// one write (a line cut short by the kill is ignored). The pool's handler logs each job it starts, and
/// `acking` before it returns done: the pool's own acks are not waited for (a crash may deliver such a
/// job again), so they are never checked as done.
pub fn child(dir: &Path, seed: u64) -> ! {
    let queue = builder().open(dir.join("journal")).expect("the journal opens");
    let log =
        OpenOptions::new().create(true).append(true).open(dir.join("calls")).expect("the call log opens");
    let log = std::sync::Arc::new(log);
    let writer = std::sync::Arc::clone(&log);
    let note = move |line: String| {
        (&*writer).write_all(format!("{line}\n").as_bytes()).expect("the call log is written")
    };
    let pool_note = note.clone();
    let _pool = WorkerPool::builder(queue.clone())
        .workers(2)
        .build(move |job| {
            let id = job.id().as_u64();
            pool_note(format!("leased {id} {}", job.attempt()));
            if *job % 5 == 0 {
                Outcome::retry("flaky")
            } else {
                pool_note(format!("acking {id}"));
                Outcome::Done
            }
        })
        .expect("the pool starts");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut held: Vec<Lease<u64>> = Vec::new();
    loop {
        match rng.random_range(0..20) {
            0..=5 => {
                let id = queue.push(rng.random()).expect("push");
                note(format!("push {}", id.as_u64()));
            }
            6 => {
                for id in queue.push_batch((0..4).map(|_| rng.random())) {
                    note(format!("push {}", id.expect("push_batch").as_u64()));
                }
            }
            7..=16 => {
                let Ok(lease) = queue.try_lease() else { continue };
                let id = lease.id().as_u64();
                note(format!("leased {id} {}", lease.attempt()));
                match rng.random_range(0..4) {
                    0 | 1 => {
                        note(format!("acking {id}"));
                        lease.ack().expect("ack");
                        note(format!("acked {id}"));
                    }
                    2 => {
                        lease.nack().expect("nack");
                    }
                    _ if held.len() < 8 => held.push(lease),
                    _ => {
                        // A release gives the attempt back: the lowest the attempt may be is one less.
                        note(format!("releasing {id}"));
                        lease.release().expect("release");
                    }
                }
            }
            17 | 18 if !held.is_empty() => {
                let lease = held.swap_remove(rng.random_range(0..held.len()));
                let id = lease.id().as_u64();
                note(format!("acking {id}"));
                lease.ack().expect("ack");
                note(format!("acked {id}"));
            }
            _ => {}
        }
    }
}

/// What the checks found over all the kills.
#[derive(Debug, Default)]
pub struct Report {
    pub kills: usize,
    pub pushes: usize,
    pub acks: usize,
    pub torn_tails: usize,
    pub live: usize,
    pub dead: usize,
}

/// The parent's side: `kills` rounds of start, kill at a random moment, reopen and check. `spawn` starts a
/// child on the directory with a seed.
pub fn parent(
    dir: &Path,
    kills: usize,
    seed: u64,
    spawn: impl Fn(&Path, u64) -> Child,
) -> Result<Report, String> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut report = Report::default();
    let mut ledger = Ledger::default();
    for round in 0..kills {
        let mut child = spawn(dir, rng.random());
        // Let it run a little: the first rounds open an empty journal, later ones a growing one.
        let ms = rng.random_range(5..40);
        #[allow(clippy::disallowed_methods)] // the kill comes at a random moment of real time, by design
        std::thread::sleep(Duration::from_millis(ms));
        let killed = child.kill();
        let status = child.wait().map_err(|e| e.to_string())?;
        killed.map_err(|e| format!("round {round}: kill: {e} (the child ended: {status})"))?;
        if status.success() {
            return Err(format!("round {round}: the child exited on its own ({status}): see its output"));
        }
        report.kills += 1;
        check(dir, round, &mut ledger, &mut report)?;
    }
    Ok(report)
}

/// What the children's call log has said so far, read a little more after each kill.
#[derive(Default)]
struct Ledger {
    /// How much of the log has been read (whole lines only: the kill may cut the last one short).
    read: usize,
    /// Jobs whose push returned `Ok` and that nobody began to ack: each must be in the queue or among
    /// the dead letters, after every kill.
    pending: HashSet<u64>,
    /// Jobs whose ack began (a pool's handler may log it before the pusher logs the push).
    acking: HashSet<u64>,
    /// Jobs whose ack returned `Ok`: none may come back.
    acked: HashSet<u64>,
    /// The lowest attempt each job may be at: its last lease's, less one if a release of it began.
    attempts: HashMap<u64, u32>,
    pushes: usize,
}

impl Ledger {
    /// Reads the lines the last child added.
    fn read(&mut self, calls: &str) -> Result<(), String> {
        let new = &calls[self.read..];
        for line in new.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            self.read += line.len();
            let words: Vec<&str> = line.split_whitespace().collect();
            let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
            match (words.first().copied(), number(1)) {
                (Some("push"), Some(id)) => {
                    if !self.acking.contains(&id) {
                        self.pending.insert(id);
                    }
                    self.pushes += 1;
                }
                (Some("acking"), Some(id)) => {
                    self.pending.remove(&id);
                    self.acking.insert(id);
                }
                (Some("acked"), Some(id)) => {
                    self.acked.insert(id);
                }
                (Some("leased"), Some(id)) => {
                    self.attempts.insert(id, number(2).unwrap_or(0) as u32);
                }
                (Some("releasing"), Some(id)) => {
                    if let Some(attempt) = self.attempts.get_mut(&id) {
                        *attempt = attempt.saturating_sub(1);
                    }
                }
                _ => return Err(format!("an unreadable call log line {line:?}")),
            }
        }
        Ok(())
    }
}

/// Opens the journal the killed child left and checks the child's log against it.
fn check(dir: &Path, round: usize, ledger: &mut Ledger, report: &mut Report) -> Result<(), String> {
    let fail = |what: String| Err(format!("after kill {round}: {what}"));
    let queue = match builder().open(dir.join("journal")) {
        Ok(queue) => queue,
        Err(e) => return fail(format!("the journal does not open: {e}")),
    };
    let recovery = queue.recovery().expect("a journaled queue");
    report.torn_tails += usize::from(recovery.torn.is_some());
    let calls = fs::read_to_string(dir.join("calls")).unwrap_or_default();
    if let Err(what) = ledger.read(&calls) {
        return fail(what);
    }
    let live: HashMap<u64, u32> = queue.jobs().iter().map(|j| (j.id.as_u64(), j.attempt)).collect();
    let dead: HashMap<u64, u32> =
        queue.dead_letters().iter().map(|d| (d.id().as_u64(), d.attempts())).collect();
    for id in &ledger.pending {
        if !live.contains_key(id) && !dead.contains_key(id) {
            return fail(format!("job {id} was pushed and is gone, never acked"));
        }
    }
    for (id, attempt) in live.iter().chain(dead.iter()) {
        if ledger.acked.contains(id) {
            return fail(format!("job {id} was acked and is back"));
        }
        let before = ledger.attempts.get(id).copied().unwrap_or(0);
        if *attempt < before {
            return fail(format!("job {id} is at attempt {attempt}, leased before at attempt {before}"));
        }
    }
    report.pushes = ledger.pushes;
    report.acks = ledger.acked.len();
    report.live = live.len();
    report.dead = dead.len();
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "child") {
        child(Path::new(&args[2]), args[3].parse().expect("a seed"));
    }
    let kills = args.get(1).map_or(1_000, |n| n.parse().expect("the number of kills"));
    let dir = std::env::temp_dir().join(format!("leasequeue-crash-{}", std::process::id()));
    let exe = std::env::current_exe().expect("this program's path");
    let clock = leasequeue::Clock::system();
    let started = clock.now();
    let spawn = |dir: &Path, seed: u64| {
        let dir: PathBuf = dir.to_owned();
        Command::new(&exe).arg("child").arg(dir).arg(seed.to_string()).spawn().expect("the child starts")
    };
    let result = parent(&dir, kills, 7, spawn);
    let _ = fs::remove_dir_all(&dir);
    match result {
        Ok(report) => println!(
            "{} kills in {:.1?}: {} pushes and {} acks checked; {} torn tails cut off; at the end {} live jobs and {} dead letters; nothing lost, no ack undone, no attempt gone back",
            report.kills,
            clock.now() - started,
            report.pushes,
            report.acks,
            report.torn_tails,
            report.live,
            report.dead
        ),
        Err(problem) => {
            eprintln!("{problem}");
            std::process::exit(1);
        }
    }
}
