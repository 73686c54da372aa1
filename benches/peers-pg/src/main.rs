//! The PostgreSQL group: the same workloads on leasequeue's PostgreSQL store, apalis-postgres and
//! graphile-worker, one after the other on the server `LEASEQUEUE_POSTGRES_URL` names; checks that every
//! job was handled exactly once, and writes a markdown table.
//!
//! ```sh
//! export LEASEQUEUE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test
//! (cd benches/peers-pg/graphile && npm ci)                                     # graphile-worker, once
//! cargo run --release --manifest-path benches/peers-pg/Cargo.toml             # 20 000 jobs a workload
//! cargo run --release --manifest-path benches/peers-pg/Cargo.toml -- --quick  # 2 000, a smoke run
//! ```
//!
//! P1 pushes one job at a time, P2 in batches of 1 000; P3 and P4 drain a prefilled queue with 2 and 8
//! workers; P5 pushes a steady 200 jobs a second to 2 waiting workers and records the latency from the
//! push's call (the job carries its push time) to the handler's start.
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

mod apalis;
mod graphile;
mod leasequeue;
#[path = "../../peers/src/outcome.rs"]
mod outcome;

use std::fmt::Write as _;

pub(crate) use outcome::{rate, validity, Row, Seen};

/// P5's note: the latency quantiles, in milliseconds, of microsecond samples.
pub(crate) fn latency_note(h: &hdrhistogram::Histogram<u64>, jobs: u64) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms over {jobs} jobs",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0
    )
}

/// Vacuums `table`: this harness deletes every row it handled, and a server without autovacuum (or one
/// that has not run yet) leaves the dead ones for the next scan to step over. Each contender's table is
/// vacuumed before each of its drains, once the queue is filled.
pub(crate) async fn vacuum(url: &str, table: &str) {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(url).await.expect("the server");
    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
        .execute(&mut connection)
        .await
        .expect("vacuum");
}

/// [`vacuum`], from synchronous code.
pub(crate) fn vacuum_now(url: &str, table: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(vacuum(url, table));
}

/// P5's steady load: how many jobs, and the nominal rate its row reports.
pub(crate) fn steady(n: u64) -> u64 {
    (n / 10).clamp(100, 2_000)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let Ok(url) = std::env::var("LEASEQUEUE_POSTGRES_URL") else {
        eprintln!("the PostgreSQL group needs a server: set LEASEQUEUE_POSTGRES_URL");
        std::process::exit(2);
    };
    let n: u64 = if quick { 2_000 } else { 20_000 };
    let mut rows = Vec::new();
    leasequeue::all(&url, n, &mut rows);
    apalis::all(&url, n, &mut rows);
    graphile::all(&url, n, &mut rows);
    rows.sort_by_key(|r| r.workload); // stable: each workload's contenders in the order they ran

    let mut md = String::new();
    let _ = writeln!(md, "# The PostgreSQL group\n");
    let _ = writeln!(
        md,
        "{n} jobs per workload on one local server (`LEASEQUEUE_POSTGRES_URL`), one contender at a time: \
         leasequeue's PostgreSQL store from this repository (jobs as JSON, every outcome fenced by the lease \
         token, `WorkerPool` threads), apalis-postgres 1.0 (sqlx; workers on a tokio runtime, each fetching \
         batches of 10, its default) and graphile-worker {} (Node.js {}; one runner with the given \
         concurrency). P5 is a steady 200 pushes a second to 2 waiting workers, woken by LISTEN/NOTIFY in each. \
         {}; {} cores. The ratio column divides leasequeue's row of the workload by the row's.\n",
        graphile::version(),
        graphile::node_version(),
        env!("RUSTC_VERSION"),
        std::thread::available_parallelism().map_or(1, |c| c.get()),
    );
    let _ = writeln!(md, "| workload | contender | jobs/s | leasequeue ÷ this | notes |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for row in &rows {
        let ours = rows
            .iter()
            .find(|r| r.workload == row.workload && r.contender == leasequeue::NAME)
            .map_or_else(|| "-".into(), |r| format!("{:.2}×", r.jobs_per_sec / row.jobs_per_sec));
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {ours} | {} |",
            row.workload, row.contender, row.jobs_per_sec, row.note
        );
    }
    print!("{md}");
    if !quick {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../results/peers-pg.md");
        std::fs::write(path, &md).expect("write the table");
        eprintln!("wrote benches/results/peers-pg.md");
    }
    if rows.iter().any(|r| r.note.contains("INVALID")) {
        eprintln!("a run lost or duplicated jobs: invalid");
        std::process::exit(1);
    }
}
