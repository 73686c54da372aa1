//! graphile-worker (npm), the Node.js job queue on PostgreSQL, on the same workloads: `graphile/bench.mjs`
//! runs them and prints one JSON line each. Its packages are installed (`npm ci`, from the lockfile) in
//! `graphile/node_modules` when missing; without Node.js the rows say why they are missing.

use std::path::Path;
use std::process::Command;

use crate::Row;

const GRAPHILE: &str = "graphile-worker";

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/graphile"))
}

/// The installed graphile-worker's version, from its package.json.
pub fn version() -> String {
    std::fs::read_to_string(dir().join("node_modules/graphile-worker/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(not installed)".into())
}

pub fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "(not found)".into(), |v| v.trim().to_owned())
}

pub fn all(url: &str, n: u64, rows: &mut Vec<Row>) {
    if !dir().join("node_modules").exists() {
        let installed =
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir()).status();
        if !installed.is_ok_and(|s| s.success()) {
            eprintln!("graphile-worker is skipped: `npm ci` in {} failed", dir().display());
            return;
        }
    }
    let output =
        Command::new("node").arg("bench.mjs").arg(url).arg(n.to_string()).current_dir(dir()).output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!("graphile-worker's run failed:\n{}", String::from_utf8_lossy(&output.stderr));
            rows.push(failed("its run failed"));
            return;
        }
        Err(e) => {
            eprintln!("graphile-worker is skipped: node could not run ({e})");
            return;
        }
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let workload = match json["workload"].as_str() {
            Some(w) if w.starts_with("P1") => "P1 push, 1 producer",
            Some(w) if w.starts_with("P2") => "P2 push_batch of 1 000",
            Some(w) if w.starts_with("P3") => "P3 drain, 2 workers",
            Some(w) if w.starts_with("P4") => "P4 drain, 8 workers",
            Some(w) if w.starts_with("P5") => "P5 push to handler start, 200/s",
            _ => continue,
        };
        rows.push(Row {
            workload,
            contender: GRAPHILE,
            jobs_per_sec: json["jobs_per_sec"].as_f64().unwrap_or(0.0),
            note: json["note"].as_str().unwrap_or_default().to_owned(),
        });
    }
}

/// A row that marks the whole run invalid.
fn failed(why: &str) -> Row {
    Row {
        workload: "P1 push, 1 producer",
        contender: GRAPHILE,
        jobs_per_sec: 0.0,
        note: format!("INVALID: {why}"),
    }
}
