//! Many processes on one PostgreSQL queue, one of them killed (feature `postgres`).
//!
//! The parent pushes `JOBS` jobs to a fresh queue and starts three child processes, each a
//! `WorkerPool` of four workers on the same queue. Each run of a job is recorded in a table (job,
//! process) before its ack. When about a third of the jobs are done the parent kills one child with
//! SIGKILL; the others go on, and the killed child's leases lapse and are delivered again. At the end
//! every job was run and acked: none lost, none dead-lettered, and a job ran twice only if the killed
//! process ran it.
//!
//! ```text
//! LEASEQUEUE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release --features postgres --example pg_processes -- 100000
//! ```
//!
//! The test suite runs the same harness with fewer jobs (`tests/integration/pg_processes.rs`).

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use leasequeue::{Queue, WorkerPool};
use postgres::{Client, NoTls};

/// The table where children record each run.
const RUNS: &str = "leasequeue_example_runs";

/// What a run of the harness found.
#[derive(Debug, Default)]
pub struct Report {
    pub jobs: u64,
    /// Runs recorded, all processes together.
    pub runs: u64,
    /// Jobs run more than once, each by the killed process among others.
    pub duplicates: u64,
    pub lost: u64,
    pub dead: u64,
    pub elapsed: Duration,
}

/// The queue's settings in every process: a short visibility timeout, so that the killed child's
/// leases lapse soon.
fn open(url: &str, name: &str) -> Queue<u64> {
    Queue::builder().visibility_timeout(Duration::from_secs(3)).connect(url, name).expect("the server")
}

/// A child: a pool of four workers that runs jobs until the queue is idle, recording each run.
pub fn child(url: &str, name: &str) {
    let queue = open(url, name);
    let pid = std::process::id() as i32;
    let url = url.to_owned();
    let table_name = name.to_owned();
    let pool = WorkerPool::builder(queue.clone())
        .workers(4)
        .build(move |job: leasequeue::Job<'_, u64>| -> Result<(), String> {
            thread_local!(static CLIENT: std::cell::RefCell<Option<Client>> = const { std::cell::RefCell::new(None) });
            CLIENT.with(|client| {
                let mut client = client.borrow_mut();
                if client.is_none() {
                    *client = Some(Client::connect(&url, NoTls).map_err(|e| e.to_string())?);
                }
                let client = client.as_mut().expect("connected above");
                client
                    .execute(
                        &format!("INSERT INTO {RUNS} (queue, job, pid) VALUES ($1, $2, $3)"),
                        &[&table_name, &(*job as i64), &pid],
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
        .expect("a pool");
    // On the system clock `run_until_idle` returns once nothing is ready or leased: after the killed
    // process's leases have lapsed and been run again.
    let summary = pool.run_until_idle();
    assert!(summary.complete, "the pool ran until the queue was idle");
    pool.shutdown(Duration::from_secs(5));
}

/// The parent: pushes `jobs` jobs, runs three children from `spawn` (given the queue's name), kills the
/// first with SIGKILL part way, and checks what the table and the queue hold at the end.
pub fn parent(url: &str, jobs: u64, spawn: impl Fn(&str) -> Child) -> Result<Report, String> {
    let name = format!("processes-{}", std::process::id());
    let mut client = Client::connect(url, NoTls).map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {RUNS} (queue text NOT NULL, job bigint NOT NULL, pid integer NOT NULL)"
        ))
        .map_err(|e| e.to_string())?;
    client.execute(&format!("DELETE FROM {RUNS} WHERE queue = $1"), &[&name]).map_err(|e| e.to_string())?;
    let queue = open(url, &name);
    queue.purge();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5_000) {
        if !queue.push_batch(chunk.iter().copied()).iter().all(Result::is_ok) {
            return Err("a push failed".into());
        }
    }
    #[allow(clippy::disallowed_methods)] // a report's wall time, not the queue's clock
    let start = Instant::now();
    let mut children: Vec<Child> = (0..3).map(|_| spawn(&name)).collect();
    let killed = children[0].id() as i32;
    let done = |client: &mut Client| -> Result<u64, String> {
        let row = client
            .query_one(&format!("SELECT count(DISTINCT job) FROM {RUNS} WHERE queue = $1"), &[&name])
            .map_err(|e| e.to_string())?;
        Ok(row.get::<_, i64>(0) as u64)
    };
    // Counting costs the server a scan: look ten times a second, not in a loop. Meanwhile vacuum the
    // queue's table now and then, as autovacuum would (a server may run without it): the rows of acked
    // jobs are dead tuples that every lease would otherwise step over.
    let mut looks = 0u64;
    let mut wait = |client: &mut Client| -> Result<(), String> {
        #[allow(clippy::disallowed_methods)] // a harness polling its children, on no queue's clock
        std::thread::sleep(Duration::from_millis(100));
        looks += 1;
        if looks.is_multiple_of(20) {
            client.batch_execute("VACUUM leasequeue_jobs").map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    while done(&mut client)? < jobs / 3 {
        wait(&mut client)?;
    }
    children[0].kill().map_err(|e| e.to_string())?; // SIGKILL
    while children.iter_mut().any(|child| child.try_wait().map_or(true, |exited| exited.is_none())) {
        wait(&mut client)?;
    }
    #[allow(clippy::disallowed_methods)] // as `start`
    let elapsed = start.elapsed();
    // Every job run, and how often by whom.
    let rows = client
        .query(&format!("SELECT job, pid FROM {RUNS} WHERE queue = $1"), &[&name])
        .map_err(|e| e.to_string())?;
    let mut runs: HashMap<i64, Vec<i32>> = HashMap::new();
    for row in &rows {
        runs.entry(row.get(0)).or_default().push(row.get(1));
    }
    let mut report = Report { jobs, runs: rows.len() as u64, elapsed, ..Report::default() };
    for job in 0..jobs as i64 {
        match runs.get(&job) {
            None => report.lost += 1,
            Some(by) if by.len() > 1 => {
                report.duplicates += 1;
                if by.iter().filter(|&&pid| pid != killed).count() > 1 {
                    return Err(format!("job {job} ran twice in processes that were not killed: {by:?}"));
                }
            }
            Some(_) => {}
        }
    }
    let stats = queue.stats();
    report.dead = stats.dead as u64;
    if !stats.is_empty() {
        return Err(format!("jobs left in the queue: {stats:?}"));
    }
    client.execute(&format!("DELETE FROM {RUNS} WHERE queue = $1"), &[&name]).map_err(|e| e.to_string())?;
    Ok(report)
}

#[allow(dead_code)] // the test suite includes this file for `child` and `parent`
fn main() {
    let url = std::env::var("LEASEQUEUE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--child") {
        let name = args.next().expect("the queue's name");
        child(&url, &name);
        return;
    }
    let jobs: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let exe = std::env::current_exe().expect("this program");
    let report = parent(&url, jobs, |name| {
        std::process::Command::new(&exe).args(["--child", name]).spawn().expect("a child")
    })
    .unwrap_or_else(|problem| panic!("{problem}"));
    println!("{report:?}");
    println!(
        "{} jobs through 3 processes x 4 workers, one killed: lost {}, dead {}, run twice {} (all by the \
         killed process), {:.0} jobs/s",
        report.jobs,
        report.lost,
        report.dead,
        report.duplicates,
        report.jobs as f64 / report.elapsed.as_secs_f64()
    );
    assert_eq!((report.lost, report.dead), (0, 0));
}
