//! Three processes of four workers on one PostgreSQL queue, one killed with SIGKILL part way
//! (`examples/pg_processes.rs`, included here, with fewer jobs): no job lost or dead-lettered, and a job
//! run twice only if the killed process ran it. This test binary is also the child, re-run with
//! `pg_processes::child` as its only test and the queue's name in the environment (feature `postgres`).

use std::process::{Command, Stdio};

#[path = "../../examples/pg_processes.rs"]
#[allow(dead_code)] // the example's `main` and its report's fields
mod harness;

const CHILD_QUEUE: &str = "LEASEQUEUE_PG_CHILD_QUEUE";

/// The child's side, when this binary is re-run as the child; otherwise nothing.
#[test]
fn child() {
    if let (Ok(url), Ok(name)) = (std::env::var(crate::POSTGRES_URL), std::env::var(CHILD_QUEUE)) {
        harness::child(&url, &name);
    }
}

#[test]
fn three_processes_share_a_queue_and_a_killed_one_loses_no_job() {
    let Ok(url) = std::env::var(crate::POSTGRES_URL) else {
        eprintln!("skipped: set {} to run the PostgreSQL tests", crate::POSTGRES_URL);
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let spawn = |name: &str| {
        Command::new(&exe)
            .args(["pg_processes::child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_QUEUE, name)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let report = harness::parent(&url, 3_000, spawn).unwrap_or_else(|problem| panic!("{problem}"));
    assert_eq!((report.lost, report.dead), (0, 0), "{report:?}");
    assert!(report.runs >= 3_000, "{report:?}");
}
