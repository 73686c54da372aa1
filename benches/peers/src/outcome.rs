//! What every workload of the peers harnesses reports: a row of the results table, and the exactly-once
//! check. Shared by `benches/peers` and `benches/peers-pg` (which includes this file by path: each
//! harness is a workspace of its own).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// One contender's result on one workload.
pub(crate) struct Row {
    pub workload: &'static str,
    pub contender: &'static str,
    pub jobs_per_sec: f64,
    pub note: String,
}

/// Exactly-once check: every job number handled once.
pub(crate) struct Seen(Vec<AtomicU32>);

impl Seen {
    pub fn new(n: u64) -> Self {
        Seen((0..n).map(|_| AtomicU32::new(0)).collect())
    }
    pub fn mark(&self, job: u64) {
        self.0[job as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// (lost, duplicated)
    pub fn check(&self) -> (usize, usize) {
        let counts: Vec<u32> = self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        (counts.iter().filter(|&&c| c == 0).count(), counts.iter().filter(|&&c| c > 1).count())
    }
}

pub(crate) fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

pub(crate) fn validity((lost, duplicated): (usize, usize)) -> String {
    if lost == 0 && duplicated == 0 {
        "all handled once".into()
    } else {
        format!("INVALID: {lost} lost, {duplicated} duplicated")
    }
}
