//! Runs the same workloads on leasequeue and on the raw channel floors, checks that every job was handled
//! (exactly once for the floors), and writes a markdown table and an SVG chart.
//!
//! ```sh
//! cargo run --release --manifest-path benches/peers/Cargo.toml            # 1 million jobs, best of 3 rounds
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --quick # 20 000 jobs, a smoke run
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --memory # memory per resident job only
//! ```
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

mod alloc;
mod apalis;
mod chart;
mod durable;
mod effectum;
/// Shared with the PostgreSQL group's harness (`benches/peers-pg`), which includes it by path.
mod outcome;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use leasequeue::{Backoff, Queue, TestClock};

pub(crate) use outcome::{rate, validity, Row, Seen};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// What an async peer's handler records, shared by its harness (apalis, effectum): which jobs were
/// handled, W4's failures, W3's latencies.
pub(crate) struct Tally {
    pub seen: Seen,
    pub target: u64,
    done: AtomicU64,
    failures: AtomicU64,
    /// For W4: each tenth job fails the first time it is handled (the peers number attempts
    /// differently, so the harness remembers instead).
    failed: Option<Vec<AtomicBool>>,
    /// For W3: push-to-handle latency per job, in nanoseconds.
    latency: Vec<AtomicU64>,
    epoch: Instant,
}

impl Tally {
    pub fn new(n: u64, fail_tenth: bool, with_latency: bool) -> Self {
        let flags = |len: u64| (0..len).map(|_| AtomicBool::new(false)).collect();
        Tally {
            seen: Seen::new(n),
            target: n,
            done: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            failed: fail_tenth.then(|| flags(n)),
            latency: (0..if with_latency { n } else { 0 }).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    /// Now, for a latency `stamp`, in nanoseconds since the tally began.
    pub fn stamp(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether this handling of `job` fails (counted).
    pub fn fails(&self, job: u64) -> bool {
        let fails = self.failed.as_ref().is_some_and(|failed| {
            job.is_multiple_of(10) && !failed[job as usize].swap(true, Ordering::Relaxed)
        });
        if fails {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        fails
    }

    /// Records a handled job pushed at `stamp`; true for the last one.
    pub fn handled(&self, job: u64, stamp: u64) -> bool {
        self.seen.mark(job);
        if let Some(latency) = self.latency.get(job as usize) {
            latency.store(self.stamp().saturating_sub(stamp), Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.target
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The recorded latencies.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        self.latency.iter().for_each(|l| {
            let _ = h.record(l.load(Ordering::Relaxed));
        });
        h
    }
}

// ----- the channel floors -----

/// A channel as the floors use it: crossbeam-channel and flume have the same shape.
trait Floor: Clone + Send + 'static {
    const NAME: &'static str;
    type Tx;
    fn channel() -> (Self::Tx, Self);
    fn send(tx: &Self::Tx, job: u64);
    fn recv(&self) -> Option<u64>;
}

impl Floor for crossbeam_channel::Receiver<u64> {
    const NAME: &'static str = "crossbeam-channel";
    type Tx = crossbeam_channel::Sender<u64>;
    fn channel() -> (Self::Tx, Self) {
        crossbeam_channel::unbounded()
    }
    fn send(tx: &Self::Tx, job: u64) {
        tx.send(job).unwrap();
    }
    fn recv(&self) -> Option<u64> {
        crossbeam_channel::Receiver::recv(self).ok()
    }
}

impl Floor for flume::Receiver<u64> {
    const NAME: &'static str = "flume";
    type Tx = flume::Sender<u64>;
    fn channel() -> (Self::Tx, Self) {
        flume::unbounded()
    }
    fn send(tx: &Self::Tx, job: u64) {
        tx.send(job).unwrap();
    }
    fn recv(&self) -> Option<u64> {
        flume::Receiver::recv(self).ok()
    }
}

/// W1 on a floor: `n` sends.
fn push_floor<F: Floor>(n: u64, rows: &mut Vec<Row>) {
    let (tx, rx) = F::channel();
    let start = Instant::now();
    (0..n).for_each(|i| F::send(&tx, i));
    rows.push(Row {
        workload: "W1 push",
        contender: F::NAME,
        jobs_per_sec: rate(n, start.elapsed()),
        note: String::new(),
    });
    drop(rx);
}

/// W2 on a floor: `n` prefilled jobs received by `consumers` threads.
fn drain_floor<F: Floor>(n: u64, consumers: usize, rows: &mut Vec<Row>) {
    let (tx, rx) = F::channel();
    (0..n).for_each(|i| F::send(&tx, i));
    drop(tx);
    let seen = Arc::new(Seen::new(n));
    let start = Instant::now();
    let threads: Vec<_> = (0..consumers)
        .map(|_| {
            let (rx, seen) = (rx.clone(), Arc::clone(&seen));
            thread::spawn(move || {
                while let Some(job) = rx.recv() {
                    seen.mark(job);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    rows.push(Row {
        workload: "W2 drain",
        contender: F::NAME,
        jobs_per_sec: rate(n, start.elapsed()),
        note: validity(seen.check()),
    });
}

// ----- W1: push only -----

fn w1(n: u64, rows: &mut Vec<Row>) {
    push_floor::<crossbeam_channel::Receiver<u64>>(n, rows);
    push_floor::<flume::Receiver<u64>>(n, rows);
    let queue = Queue::new();
    let start = Instant::now();
    for i in 0..n {
        queue.push(i).unwrap();
    }
    rows.push(Row {
        workload: "W1 push",
        contender: "leasequeue",
        jobs_per_sec: rate(n, start.elapsed()),
        note: String::new(),
    });
    let queue = Queue::new();
    let start = Instant::now();
    let mut batch: Vec<u64> = Vec::with_capacity(100);
    for i in 0..n {
        batch.push(i);
        if batch.len() == 100 {
            queue.push_batch(batch.drain(..));
        }
    }
    queue.push_batch(batch);
    rows.push(Row {
        workload: "W1 push",
        contender: "leasequeue (batches of 100)",
        jobs_per_sec: rate(n, start.elapsed()),
        note: String::new(),
    });
}

// ----- W2: drain a prefilled queue with C consumers -----

fn w2(n: u64, consumers: usize, rows: &mut Vec<Row>) {
    drain_floor::<crossbeam_channel::Receiver<u64>>(n, consumers, rows);
    drain_floor::<flume::Receiver<u64>>(n, consumers, rows);
    // batch 0: lease + ack_and_try_lease (one critical section per job)
    for batch in [1usize, 0, 32] {
        let queue = Queue::new();
        queue.push_batch(0..n);
        queue.close();
        let seen = Arc::new(Seen::new(n));
        let start = Instant::now();
        let threads: Vec<_> = (0..consumers)
            .map(|_| {
                let (queue, seen) = (queue.clone(), Arc::clone(&seen));
                thread::spawn(move || {
                    if batch == 1 {
                        while let Ok(lease) = queue.lease() {
                            seen.mark(*lease);
                            lease.ack().unwrap();
                        }
                    } else if batch == 0 {
                        while let Ok(mut lease) = queue.lease() {
                            loop {
                                seen.mark(*lease);
                                match lease.ack_and_try_lease().unwrap() {
                                    Some(next) => lease = next,
                                    None => break,
                                }
                            }
                        }
                    } else {
                        while let Ok(leases) = queue.lease_batch(batch, Duration::MAX) {
                            leases.iter().for_each(|l| seen.mark(**l));
                            queue.ack_batch(leases);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let contender = match batch {
            1 => "leasequeue (lease + ack)",
            0 => "leasequeue (ack_and_try_lease)",
            _ => "leasequeue (batches of 32)",
        };
        rows.push(Row {
            workload: "W2 drain",
            contender,
            jobs_per_sec: rate(n, start.elapsed()),
            note: validity(seen.check()),
        });
    }
}

// ----- W3: steady state, P producers x C consumers, push-to-ack latency -----

fn w3(n: u64, producers: u64, consumers: usize, rows: &mut Vec<Row>) {
    let epoch = Instant::now();
    let stamp = move || epoch.elapsed().as_nanos() as u64;
    let per = n / producers;
    let total = per * producers;

    let (tx, rx) = crossbeam_channel::bounded::<(u64, u64)>(4096);
    let seen = Arc::new(Seen::new(total));
    let start = Instant::now();
    let ps: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || (p * per..(p + 1) * per).for_each(|i| tx.send((i, stamp())).unwrap()))
        })
        .collect();
    drop(tx);
    let cs: Vec<_> = (0..consumers)
        .map(|_| {
            let (rx, seen) = (rx.clone(), Arc::clone(&seen));
            thread::spawn(move || {
                let mut h = Histogram::<u64>::new(3).unwrap();
                while let Ok((job, at)) = rx.recv() {
                    seen.mark(job);
                    let _ = h.record(stamp().saturating_sub(at));
                }
                h
            })
        })
        .collect();
    ps.into_iter().for_each(|p| p.join().unwrap());
    let h = merge(cs.into_iter().map(|c| c.join().unwrap()));
    rows.push(Row {
        workload: "W3 steady",
        contender: "crossbeam-channel",
        jobs_per_sec: rate(total, start.elapsed()),
        note: format!("{}; {}", latency("push-to-ack", &h), validity(seen.check())),
    });

    let queue: Queue<(u64, u64)> = Queue::builder().capacity(4096).build().unwrap();
    let seen = Arc::new(Seen::new(total));
    let start = Instant::now();
    let ps: Vec<_> = (0..producers)
        .map(|p| {
            let queue = queue.clone();
            thread::spawn(move || {
                (p * per..(p + 1) * per).for_each(|i| {
                    queue.push((i, stamp())).unwrap();
                })
            })
        })
        .collect();
    let cs: Vec<_> = (0..consumers)
        .map(|_| {
            let (queue, seen) = (queue.clone(), Arc::clone(&seen));
            thread::spawn(move || {
                let mut h = Histogram::<u64>::new(3).unwrap();
                while let Ok(lease) = queue.lease() {
                    let (job, at) = *lease;
                    seen.mark(job);
                    lease.ack().unwrap();
                    let _ = h.record(stamp().saturating_sub(at));
                }
                h
            })
        })
        .collect();
    ps.into_iter().for_each(|p| p.join().unwrap());
    queue.close();
    let h = merge(cs.into_iter().map(|c| c.join().unwrap()));
    rows.push(Row {
        workload: "W3 steady",
        contender: "leasequeue",
        jobs_per_sec: rate(total, start.elapsed()),
        note: format!("{}; {}", latency("push-to-ack", &h), validity(seen.check())),
    });
}

fn merge(hs: impl Iterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut all = Histogram::<u64>::new(3).unwrap();
    for h in hs {
        all.add(h).unwrap();
    }
    all
}

/// Latency percentiles: `what` says which span was measured (push to ack, or push to the handler's start
/// where a peer acks after the handler returns).
fn latency(what: &str, h: &Histogram<u64>) -> String {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!("{what} p50 {:.1} µs, p99 {:.1} µs", us(0.5), us(0.99))
}

// ----- W4: failure path -----

fn w4(n: u64, consumers: usize, rows: &mut Vec<Row>) {
    let queue = Queue::builder().backoff(Backoff::none()).max_attempts(3).build().unwrap();
    queue.push_batch(0..n);
    queue.close();
    let seen = Arc::new(Seen::new(n));
    let start = Instant::now();
    let threads: Vec<_> = (0..consumers)
        .map(|_| {
            let (queue, seen) = (queue.clone(), Arc::clone(&seen));
            thread::spawn(move || {
                while let Ok(lease) = queue.lease() {
                    if *lease % 10 == 0 && lease.attempt() == 1 {
                        lease.nack_with("transient").unwrap();
                    } else {
                        seen.mark(*lease);
                        lease.ack().unwrap();
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let stats = queue.stats();
    let expected_retries = n.div_ceil(10);
    let ok = stats.nacked == expected_retries && stats.dead_lettered == 0 && stats.acked == n;
    rows.push(Row {
        workload: "W4 10% fail once",
        contender: "leasequeue",
        jobs_per_sec: rate(n, start.elapsed()),
        note: format!(
            "{} retries (expected {expected_retries}), {} dead-lettered; {}{}",
            stats.nacked,
            stats.dead_lettered,
            validity(seen.check()),
            if ok { "" } else { "; INVALID counts" }
        ),
    });
}

// ----- W5: lapse storm -----

fn w5(leases: u64, rows: &mut Vec<Row>) {
    let clock = TestClock::new();
    let queue =
        Queue::builder().clock(clock.clone()).visibility_timeout(Duration::from_secs(30)).build().unwrap();
    queue.push_batch(0..leases);
    let held = queue.try_lease_batch(leases as usize).unwrap();
    let start = Instant::now();
    clock.advance(Duration::from_secs(30)); // every lease lapses at once
    let elapsed = start.elapsed();
    let stats = queue.stats();
    let ok = stats.lapsed == leases && stats.ready == leases as usize;
    rows.push(Row {
        workload: "W5 lapse storm",
        contender: "leasequeue",
        jobs_per_sec: rate(leases, elapsed),
        note: format!(
            "{leases} leases lapsed in one advance: {elapsed:.1?}{}",
            if ok { "" } else { "; INVALID" }
        ),
    });
    drop(held);
}

// ----- memory -----

fn memory(n: u64) -> Vec<(String, f64)> {
    let per_job = |f: &dyn Fn() -> Box<dyn std::any::Any>| {
        let before = alloc::live_bytes();
        let keep = f();
        let after = alloc::live_bytes();
        drop(keep);
        (after.saturating_sub(before)) as f64 / n as f64 - std::mem::size_of::<u64>() as f64
    };
    vec![
        (
            "crossbeam-channel (unbounded)".into(),
            per_job(&|| {
                let (tx, rx) = crossbeam_channel::unbounded();
                (0..n).for_each(|i| tx.send(i).unwrap());
                Box::new((tx, rx))
            }),
        ),
        (
            "flume (unbounded)".into(),
            per_job(&|| {
                let (tx, rx) = flume::unbounded();
                (0..n).for_each(|i| tx.send(i).unwrap());
                Box::new((tx, rx))
            }),
        ),
        (
            "leasequeue".into(),
            per_job(&|| {
                let queue = Queue::new();
                (0..n).for_each(|i| {
                    queue.push(i).unwrap();
                });
                Box::new(queue)
            }),
        ),
    ]
}

/// How many rounds of the in-memory workloads a full run makes.
pub(crate) const ROUNDS: usize = 3;

/// Keeps, for each workload and contender, the fastest row of the rounds so far, with its notes.
fn keep_best(best: &mut Vec<Row>, round: Vec<Row>) {
    for row in round {
        match best.iter_mut().find(|b| b.workload == row.workload && b.contender == row.contender) {
            Some(kept) if kept.jobs_per_sec >= row.jobs_per_sec => {}
            Some(kept) => *kept = row,
            None => best.push(row),
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 20_000 } else { 1_000_000 };
    let consumers = 2;
    if std::env::args().any(|a| a == "--memory") {
        // Only the memory figure (seconds, not the whole run's minutes).
        for (who, bytes) in memory(n) {
            println!("{who}: {bytes:.1} bytes per resident job beyond the payload");
        }
        return;
    }
    // The in-memory workloads run in rounds, each contender keeping its best (as `cargo bench --bench
    // speed` does): the VM is shared and noisy, and a slow round says more about the host than the code.
    let rounds = if quick { 1 } else { ROUNDS };
    let mut rows: Vec<Row> = Vec::new();
    for i in 0..rounds {
        apalis::round(i);
        let mut round = Vec::new();
        w1(n, &mut round);
        apalis::w1_w2(n, consumers, &mut round);
        w2(n, consumers, &mut round);
        w3(n, 2, consumers, &mut round);
        apalis::w3(n, 2, consumers, &mut round);
        w4(n, consumers, &mut round);
        apalis::w4(n, consumers, &mut round);
        w5(if quick { 10_000 } else { 100_000 }, &mut round);
        keep_best(&mut rows, round);
    }
    let mem = memory(n);
    let durable_n: u64 = if quick { 1_000 } else { 20_000 };
    let recovery_jobs: u64 = if quick { 10_000 } else { 1_000_000 };
    let mut durable = Vec::new();
    let recovery = durable::leasequeue(durable_n, recovery_jobs, &mut durable);
    durable::sqlite_all(durable_n, &mut durable);
    durable::redb_all(durable_n, &mut durable);
    effectum::all(durable_n, 1_000, consumers, &mut durable);
    durable.sort_by_key(|r| r.workload); // stable: each workload's contenders in the order they ran

    let mut md = String::new();
    let _ = writeln!(md, "# leasequeue next to its peers\n");
    let _ = writeln!(
        md,
        "{} jobs (u64 payloads), {consumers} consumer threads, 2 producers in W3; {} cores; each \
         contender's best of {rounds} rounds; leasequeue from this repository, crossbeam-channel 0.5, \
         flume 0.11, apalis-core 1.0 (`MemoryStorage`, one worker on a tokio runtime with as many threads \
         as consumers; W4's retries from apalis 1.0's retry layer); {}.\n",
        n,
        thread::available_parallelism().map_or(1, |c| c.get()),
        env!("RUSTC_VERSION")
    );
    rows.sort_by_key(|r| r.workload); // stable: each workload's contenders in the order they ran
    let ratio = |row: &Row, to: &str| {
        rows.iter()
            .find(|r| r.workload == row.workload && r.contender == to)
            .map_or_else(|| "-".into(), |f| format!("{:.2}×", row.jobs_per_sec / f.jobs_per_sec))
    };
    let _ = writeln!(md, "| workload | contender | jobs/s | vs crossbeam-channel | vs apalis | notes |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for row in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {} |",
            row.workload,
            row.contender,
            row.jobs_per_sec,
            ratio(row, "crossbeam-channel"),
            ratio(row, "apalis MemoryStorage"),
            row.note
        );
    }
    let _ = writeln!(
        md,
        "\n### Durable\n\n{durable_n} jobs per workload (1 000 in W4), each contender on a fresh directory in the \
         system's temporary directory, every call durable before it returns: leasequeue's journal with its default \
         `SyncPolicy::Always` (fdatasync, group commit), SQLite in WAL mode with `synchronous=FULL` doing the same \
         queue operations (rusqlite 0.31), redb 2 (durable commits, its default), and effectum 0.7 (SQLite; it asks \
         for WAL with a pragma SQLite does not have, so it runs a rollback journal with `synchronous=NORMAL`). \
         D6 feeds a running pool in batches of 1 000 and waits until every job was handled; effectum's D6 is its \
         own worker fed one job at a time while it runs, with a push-to-handle latency. The ratio column divides \
         leasequeue's best row of each workload by the row's.\n"
    );
    let _ = writeln!(md, "| workload | contender | jobs/s | leasequeue ÷ this | notes |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for row in &durable {
        // Against leasequeue's best row of the workload (D6 has one per pool size).
        let ours = durable
            .iter()
            .filter(|r| r.workload == row.workload && r.contender.starts_with("leasequeue"))
            .map(|r| r.jobs_per_sec)
            .reduce(f64::max)
            .map_or_else(|| "-".into(), |best| format!("{:.1}×", best / row.jobs_per_sec));
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {ours} | {} |",
            row.workload, row.contender, row.jobs_per_sec, row.note
        );
    }
    let _ = writeln!(
        md,
        "\nleasequeue's journal with {} live jobs: reopened (replayed, leases lapsed, a checkpoint written) in \
         {:.2} s; {:.1} bytes on disk per job (a `u64` payload).",
        recovery.live,
        recovery.open.as_secs_f64(),
        recovery.bytes_per_job
    );
    let _ = writeln!(md, "\n| memory at {n} resident jobs | bytes per job beyond the payload |\n|---|---|");
    for (who, bytes) in &mem {
        let _ = writeln!(md, "| {who} | {bytes:.1} |");
    }
    print!("{md}");
    let invalid = rows.iter().chain(&durable).any(|r| r.note.contains("INVALID"));
    if !quick {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../results");
        std::fs::write(format!("{dir}/peers.md"), &md).expect("write the table");
        std::fs::write(
            format!("{dir}/peers.svg"),
            chart::svg(
                &rows
                    .iter()
                    .chain(&durable)
                    .map(|r| (r.workload, r.contender, r.jobs_per_sec))
                    .collect::<Vec<_>>(),
            ),
        )
        .expect("write the chart");
        eprintln!("wrote benches/results/peers.md and benches/results/peers.svg");
    }
    if invalid {
        eprintln!("a run lost or duplicated jobs: invalid");
        std::process::exit(1);
    }
}
