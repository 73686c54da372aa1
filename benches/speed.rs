//! The hot path's figures as ratios against plain crossbeam-channel measured in the same run: the
//! uncontended push -> lease -> ack cycle, two threads draining a prefilled queue through the public API
//! (single and batched, next to a `VecDeque` behind one mutex: what one lock per job allows, and two
//! locks per job with the least a lease does between them), a
//! `WorkerPool` of 2, 4 and 8 workers draining with a no-op handler, and the cycle with 1 000 and with
//! 1 000 000 jobs resident.
//!
//! Run with `cargo bench --bench speed` (`-- --quick` for a smaller run). Each figure is the best of a few
//! runs; compare the ratios, not the absolute times, which depend on the machine and its load. The
//! two-thread baseline's runs are printed too: crossbeam's two threads contend in some runs and not in
//! others, and the ratios move with it.
//!
//! `-- --scaling` prints the drain rates for 1, 2, 4, ... threads up to twice the machine's cores
//! (for a machine with more than 2), each next to crossbeam-channel with as many threads.
//!
//! `-- --cycles N` runs only the cycle, N times after a warm-up, in [`cycles`], for an instruction count
//! that the machine's noise does not move (see the README, "Performance"):
//! `valgrind --tool=callgrind --toggle-collect='speed::cycles' <the bench binary> --cycles 100000`
//! counts N + 1 000 cycles; `--crossbeam-cycles N` does the same for crossbeam-channel's bounded send +
//! receive, in `crossbeam_cycles`.
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use leasequeue::{Queue, WorkerPool};

/// How many times each figure is measured; the best run counts.
const RUNS: usize = 3;

fn best(mut run: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| run()).min().unwrap_or_default()
}

fn per_job(took: Duration, jobs: u64) -> f64 {
    took.as_nanos() as f64 / jobs as f64
}

// ----- the uncontended cycle -----

fn crossbeam_cycle(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let start = Instant::now();
    for i in 0..n {
        tx.send(black_box(i)).unwrap();
        black_box(rx.recv().unwrap());
    }
    start.elapsed()
}

fn leasequeue_cycle(queue: &Queue<u64>, n: u64) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        queue.push(black_box(i)).unwrap();
        queue.try_lease().unwrap().ack().unwrap();
    }
    start.elapsed()
}

/// `n` bounded sends and receives, not inlined, to count the same way (`--crossbeam-cycles N`).
#[inline(never)]
fn crossbeam_cycles(tx: &crossbeam_channel::Sender<u64>, rx: &crossbeam_channel::Receiver<u64>, n: u64) {
    for i in 0..n {
        tx.send(black_box(i)).unwrap();
        black_box(rx.recv().unwrap());
    }
}

/// `n` cycles on `queue`, not inlined, so that callgrind can count its instructions alone.
#[inline(never)]
fn cycles(queue: &Queue<u64>, n: u64) {
    for i in 0..n {
        queue.push(black_box(i)).unwrap();
        queue.try_lease().unwrap().ack().unwrap();
    }
}

// ----- two threads draining a prefilled queue -----

fn crossbeam_drain(n: u64, threads: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..n {
        tx.send(i).unwrap();
    }
    drop(tx);
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..threads {
            let rx = rx.clone();
            s.spawn(move || {
                while let Ok(job) = rx.recv() {
                    black_box(job);
                }
            });
        }
    });
    start.elapsed()
}

/// What one lock per job allows: a `VecDeque` behind one `parking_lot` mutex, drained by `threads`
/// threads, one `pop_front` per lock (a short critical section: the lock mostly stays on one core).
fn mutex_drain(n: u64, threads: usize) -> Duration {
    let jobs = parking_lot::Mutex::new((0..n).collect::<std::collections::VecDeque<u64>>());
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(job) = jobs.lock().pop_front() {
                    black_box(job);
                }
            });
        }
    });
    start.elapsed()
}

/// What a lock per lease and per ack allows: the same `VecDeque` and mutex, each job taken by one
/// lock and settled by a second (a count, as an ack's), with the least a lease does between them: a
/// clock reading before the first (as a lease reads the time) and a reference count taken after it and
/// given back after the second (as a lease's on its consumer's handle). That work lets the other
/// thread in: most acquisitions are then handoffs between the cores, where [`mutex_drain`]'s thread
/// mostly takes the lock again itself.
fn mutex_two_locks_drain(n: u64, threads: usize) -> Duration {
    let jobs = parking_lot::Mutex::new(((0..n).collect::<std::collections::VecDeque<u64>>(), 0u64));
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let handle = std::sync::Arc::new(());
                loop {
                    black_box(Instant::now());
                    let Some(job) = jobs.lock().0.pop_front() else { break };
                    let share = black_box(std::sync::Arc::clone(&handle));
                    black_box(job);
                    jobs.lock().1 += 1;
                    drop(share);
                }
            });
        }
    });
    let took = start.elapsed();
    assert_eq!(jobs.lock().1, n, "every job settled once");
    took
}

fn prefilled(n: u64) -> Queue<u64> {
    let queue = Queue::new();
    for result in queue.push_batch(0..n) {
        result.unwrap();
    }
    queue
}

/// How a consumer thread drains: one lease and ack at a time, `ack_and_try_lease`, or batches.
#[derive(Clone, Copy)]
enum Drain {
    Single,
    AckAndLease,
    Batch(usize),
}

fn leasequeue_drain(n: u64, threads: usize, how: Drain) -> Duration {
    let queue = prefilled(n);
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..threads {
            let queue = queue.clone();
            s.spawn(move || match how {
                Drain::Single => {
                    while let Ok(lease) = queue.try_lease() {
                        black_box(*lease);
                        lease.ack().unwrap();
                    }
                }
                Drain::AckAndLease => {
                    let mut next = queue.try_lease().ok();
                    while let Some(lease) = next {
                        black_box(*lease);
                        next = lease.ack_and_try_lease().unwrap();
                    }
                }
                Drain::Batch(max) => {
                    let mut leases = queue.try_lease_batch(max).unwrap_or_default();
                    while !leases.is_empty() {
                        for lease in &leases {
                            black_box(**lease);
                        }
                        for acked in queue.ack_and_try_lease_batch(&mut leases, max) {
                            acked.unwrap();
                        }
                    }
                }
            });
        }
    });
    let took = start.elapsed();
    assert_eq!(queue.stats().acked, n, "every job acked once");
    took
}

fn pool_drain(n: u64, workers: usize) -> Duration {
    let queue = prefilled(n);
    queue.close();
    let start = Instant::now();
    let pool = WorkerPool::builder(queue.clone())
        .workers(workers)
        .build(|job| {
            black_box(*job);
        })
        .unwrap();
    let stats = pool.join();
    let took = start.elapsed();
    assert_eq!(stats.succeeded, n, "every job handled once");
    took
}

// ----- resident jobs -----

fn resident_cycle(resident: u64, n: u64) -> Duration {
    let queue = prefilled(resident);
    leasequeue_cycle(&queue, n)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) = args.iter().position(|a| a == "--cycles").and_then(|i| args.get(i + 1)) {
        let n: u64 = n.parse().expect("--cycles takes a number");
        let queue = Queue::new();
        cycles(&queue, 1_000); // warm: the clock's calibration, the first allocations
        cycles(&queue, n);
        return;
    }
    if let Some(n) = args.iter().position(|a| a == "--crossbeam-cycles").and_then(|i| args.get(i + 1)) {
        let n: u64 = n.parse().expect("--crossbeam-cycles takes a number");
        let (tx, rx) = crossbeam_channel::bounded(1024);
        crossbeam_cycles(&tx, &rx, 1_000);
        crossbeam_cycles(&tx, &rx, n);
        return;
    }
    if args.iter().any(|a| a == "--scaling") {
        return scaling(if args.iter().any(|a| a == "--quick") { 200_000 } else { 1_000_000 });
    }
    let quick = args.iter().any(|a| a == "--quick");
    // Cargo passes `--bench` to every bench target; nothing else is taken.
    let (cycles, drained, resident) =
        if quick { (200_000, 200_000, 100_000) } else { (2_000_000, 1_000_000, 1_000_000) };
    println!("leasequeue hot path, {} cores, best of {RUNS} runs; ratios within this run\n", cores());

    let crossbeam = per_job(best(|| crossbeam_cycle(cycles)), cycles);
    let queue = Queue::new();
    let cycle = per_job(best(|| leasequeue_cycle(&queue, cycles)), cycles);
    println!("| figure | leasequeue | crossbeam-channel | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| push -> try_lease -> ack, one thread | {cycle:.1} ns | {crossbeam:.1} ns (bounded send + recv) | \
         {:.2}x the time |",
        cycle / crossbeam
    );

    // The baseline's runs are kept: two crossbeam threads contend on the channel's head in some runs and
    // not in others, and the spread says how far to trust the ratios below.
    let baseline: Vec<Duration> = (0..RUNS).map(|_| crossbeam_drain(drained, 2)).collect();
    let threads2 = baseline.iter().copied().min().unwrap_or_default();
    let rate = |took: Duration| drained as f64 / took.as_secs_f64();
    let base = rate(threads2);
    let row = |what: &str, took: Duration| {
        println!(
            "| {what} | {:.2} M jobs/s | {:.2} M jobs/s (2 threads on `recv`) | {:.2}x the rate |",
            rate(took) / 1e6,
            base / 1e6,
            rate(took) / base
        );
    };
    row(
        "2 threads: a `VecDeque` behind one mutex, one `pop_front` per lock (not leasequeue: what one lock \
         per job allows)",
        best(|| mutex_drain(drained, 2)),
    );
    row(
        "2 threads: the same, two locks per job (a pop, then a count as an ack's), a clock reading and a \
         reference count between them (not leasequeue: what a lock per lease and per ack allows)",
        best(|| mutex_two_locks_drain(drained, 2)),
    );
    row("2 threads: `try_lease` + `ack`", best(|| leasequeue_drain(drained, 2, Drain::Single)));
    row("2 threads: `ack_and_try_lease`", best(|| leasequeue_drain(drained, 2, Drain::AckAndLease)));
    row(
        "2 threads: `ack_and_try_lease_batch` of 32",
        best(|| leasequeue_drain(drained, 2, Drain::Batch(32))),
    );
    for workers in [2, 4, 8] {
        row(
            &format!("`WorkerPool`, {workers} workers, no-op handler"),
            best(|| pool_drain(drained, workers)),
        );
    }

    let spread: Vec<String> = baseline.iter().map(|&took| format!("{:.1}", rate(took) / 1e6)).collect();
    println!(
        "| (the baseline's runs) | | {} M jobs/s (2 threads on `recv`) | the best counts |",
        spread.join(" / ")
    );
    let small = per_job(best(|| resident_cycle(1_000, cycles)), cycles);
    let large = per_job(best(|| resident_cycle(resident, cycles)), cycles);
    println!(
        "| the cycle with {resident} jobs resident | {large:.1} ns | {small:.1} ns with 1 000 resident | \
         {:.2}x the time |",
        large / small
    );
}

/// `-- --scaling`: the drain rates for 1, 2, 4, ... threads up to the machine's cores (and twice
/// that), each next to crossbeam-channel with as many threads, for a machine with more than 2 cores.
fn scaling(drained: u64) {
    let cores = cores();
    println!("leasequeue drain rates by thread count, {cores} cores, {drained} jobs, best of {RUNS} runs\n");
    println!(
        "| threads | crossbeam `recv` | mutex `VecDeque` | `try_lease` + `ack` | \
         `ack_and_try_lease_batch` of 32 | `WorkerPool`, no-op | pool / crossbeam |"
    );
    println!("|---|---|---|---|---|---|---|");
    let rate = |took: Duration| drained as f64 / took.as_secs_f64() / 1e6;
    let counts = std::iter::successors(Some(1), |n| Some(n * 2)).take_while(|&n| n <= cores * 2);
    for threads in counts {
        let crossbeam = rate(best(|| crossbeam_drain(drained, threads)));
        let mutex = rate(best(|| mutex_drain(drained, threads)));
        let single = rate(best(|| leasequeue_drain(drained, threads, Drain::Single)));
        let batch = rate(best(|| leasequeue_drain(drained, threads, Drain::Batch(32))));
        let pool = rate(best(|| pool_drain(drained, threads)));
        println!(
            "| {threads} | {crossbeam:.1} M/s | {mutex:.1} M/s | {single:.1} M/s | {batch:.1} M/s | \
             {pool:.1} M/s | {:.2}x |",
            pool / crossbeam
        );
    }
}

fn cores() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}
