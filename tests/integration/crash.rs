//! The journal's crash harness (`examples/crash.rs`, included here) for 100 kills: this test binary is
//! also the child, re-run with `crash::child` as its only test and the journal's directory in the
//! environment (feature `journal`).

use std::path::Path;
use std::process::{Command, Stdio};

#[path = "../../examples/crash.rs"]
#[allow(dead_code)] // the example's `main` and its report's fields
mod harness;

const CHILD_DIR: &str = "LEASEQUEUE_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "LEASEQUEUE_CRASH_CHILD_SEED";

/// The child's side, when this binary is re-run as the child; otherwise nothing.
#[test]
fn child() {
    if let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SEED)) {
        harness::child(Path::new(&dir), seed.parse().expect("a seed"));
    }
}

#[test]
fn a_hundred_kills_lose_no_pushed_job_undo_no_ack_and_never_set_attempts_back() {
    let dir = crate::durability::TempDir::new("crash");
    let exe = std::env::current_exe().unwrap();
    let spawn = |dir: &Path, seed: u64| {
        Command::new(&exe)
            .args(["crash::child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let report = harness::parent(dir.path(), 100, 1, spawn).unwrap_or_else(|problem| panic!("{problem}"));
    assert_eq!(report.kills, 100);
    assert!(report.pushes > 100, "the children did work: {report:?}");
}
