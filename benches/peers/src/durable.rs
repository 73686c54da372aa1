//! The durable group: leasequeue's journal (`QueueBuilder::open`, the default `SyncPolicy::Always`: every
//! call returns once its record is on disk) next to SQLite in WAL mode with `synchronous=FULL` doing the
//! same queue operations (rusqlite), and redb (every write transaction durable, its default). effectum's
//! rows come from `effectum.rs`. Every contender starts on a fresh directory under the system's
//! temporary directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use leasequeue::{Queue, WorkerPool};
use redb::{ReadableTableMetadata, TableDefinition};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{rate, validity, Row, Seen};

pub const PUSH_1: &str = "D1 push, 1 producer";
pub const PUSH_4: &str = "D2 push, 4 producers";
pub const PUSH_16: &str = "D3 push, 16 producers";
pub const BATCH: &str = "D4 push_batch of 1 000";
pub const DRAIN: &str = "D5 drain, 2 consumers";
pub const POOL: &str = "D6 pool lifecycle";

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("leasequeue-peers-durable-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn row(workload: &'static str, contender: &'static str, n: u64, elapsed: Duration, note: String) -> Row {
    Row { workload, contender, jobs_per_sec: rate(n, elapsed), note }
}

/// Runs `per_thread(thread index)` on `threads` threads at once; returns how long they took.
fn threads(threads: u64, per_thread: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..threads {
            let per_thread = &per_thread;
            s.spawn(move || per_thread(t));
        }
    });
    start.elapsed()
}

// ----- leasequeue -----

const LQ: &str = "leasequeue (journal)";

fn open(dir: &TempDir) -> Queue<u64> {
    Queue::builder().open(dir.path()).expect("journal")
}

/// What a recovery of `live` jobs costs, and the bytes on disk per job.
pub struct Recovery {
    pub live: u64,
    pub open: Duration,
    pub bytes_per_job: f64,
}

pub fn leasequeue(n: u64, recovery_jobs: u64, rows: &mut Vec<Row>) -> Recovery {
    for (workload, producers) in [(PUSH_1, 1), (PUSH_4, 4), (PUSH_16, 16)] {
        let dir = TempDir::new("lq-push");
        let queue = open(&dir);
        let per = n / producers;
        let elapsed = threads(producers, |t| {
            (t * per..(t + 1) * per).for_each(|i| {
                queue.push(i).unwrap();
            })
        });
        let note =
            if queue.len() as u64 == per * producers { "all pushed".into() } else { "INVALID: lost".into() };
        rows.push(row(workload, LQ, per * producers, elapsed, note));
    }

    let dir = TempDir::new("lq-batch");
    let queue = open(&dir);
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        queue.push_batch(chunk.iter().copied()).into_iter().for_each(|r| {
            r.unwrap();
        });
    }
    rows.push(row(BATCH, LQ, n, start.elapsed(), "one sync per batch".into()));

    // Drain: prefilled (untimed), then 2 consumers lease and ack one job at a time.
    let seen = Seen::new(n);
    queue.close();
    let elapsed = threads(2, |_| {
        while let Ok(lease) = queue.lease() {
            seen.mark(*lease);
            lease.ack().unwrap();
        }
    });
    rows.push(row(DRAIN, LQ, n, elapsed, validity(seen.check())));
    drop(queue);

    // A pool's whole life: built, fed in batches of 1 000 while it runs, drained, shut down. Its workers
    // share each sync (group commit), so more of them than cores pay off.
    for workers in [2, 16, 64] {
        let dir = TempDir::new("lq-pool");
        let queue = open(&dir);
        let seen = Arc::new(Seen::new(n));
        let start = Instant::now();
        let handled = Arc::clone(&seen);
        let pool = WorkerPool::builder(queue.clone())
            .workers(workers)
            .build(move |job| handled.mark(*job))
            .expect("pool");
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            queue.push_batch(chunk.iter().copied());
        }
        queue.close();
        pool.join();
        let contender = match workers {
            2 => "leasequeue (journal), 2 workers",
            16 => "leasequeue (journal), 16 workers",
            _ => "leasequeue (journal), 64 workers",
        };
        rows.push(row(POOL, contender, n, start.elapsed(), validity(seen.check())));
        drop(queue);
    }

    // Recovery: `recovery_jobs` live jobs, reopened.
    let dir = TempDir::new("lq-recovery");
    let queue = open(&dir);
    for chunk in (0..recovery_jobs).collect::<Vec<_>>().chunks(10_000) {
        queue.push_batch(chunk.iter().copied());
    }
    drop(queue);
    let bytes: u64 =
        std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    let start = Instant::now();
    let queue = open(&dir);
    let open_time = start.elapsed();
    assert_eq!(queue.len() as u64, recovery_jobs);
    Recovery { live: recovery_jobs, open: open_time, bytes_per_job: bytes as f64 / recovery_jobs as f64 }
}

// ----- SQLite, WAL, synchronous=FULL -----

const SQLITE: &str = "SQLite (WAL, synchronous=FULL)";

fn sqlite(path: &Path) -> Connection {
    let db = Connection::open(path).expect("sqlite");
    db.busy_timeout(Duration::from_secs(60)).unwrap();
    let mode: String = db.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS jobs (
             id INTEGER PRIMARY KEY, payload BLOB NOT NULL,
             attempt INTEGER NOT NULL DEFAULT 0, leased_until INTEGER NOT NULL DEFAULT 0);",
    )
    .unwrap();
    db
}

pub fn sqlite_all(n: u64, rows: &mut Vec<Row>) {
    for (workload, producers) in [(PUSH_1, 1), (PUSH_4, 4), (PUSH_16, 16)] {
        let dir = TempDir::new("sqlite-push");
        let path = dir.path().join("q.db");
        drop(sqlite(&path));
        let per = n / producers;
        let elapsed = threads(producers, |t| {
            let db = sqlite(&path);
            for i in t * per..(t + 1) * per {
                db.execute("INSERT INTO jobs (payload) VALUES (?1)", params![i.to_le_bytes().to_vec()])
                    .unwrap();
            }
        });
        let count: u64 = sqlite(&path).query_row("SELECT count(*) FROM jobs", [], |r| r.get(0)).unwrap();
        let note =
            if count == per * producers { "one transaction each".into() } else { "INVALID: lost".into() };
        rows.push(row(workload, SQLITE, per * producers, elapsed, note));
    }

    let dir = TempDir::new("sqlite-batch");
    let path = dir.path().join("q.db");
    let mut db = sqlite(&path);
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let tx = db.transaction().unwrap();
        {
            let mut insert = tx.prepare_cached("INSERT INTO jobs (payload) VALUES (?1)").unwrap();
            for i in chunk {
                insert.execute(params![i.to_le_bytes().to_vec()]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows.push(row(BATCH, SQLITE, n, start.elapsed(), "one transaction per batch".into()));
    drop(db);

    // Drain: each job leased (an UPDATE ... RETURNING of the oldest free row) and acked (a DELETE fenced by
    // the attempt), each in its own transaction, as a queue on SQLite does it.
    let seen = Seen::new(n);
    let elapsed = threads(2, |_| {
        let db = sqlite(&path);
        let mut lease = db
            .prepare(
                "UPDATE jobs SET attempt = attempt + 1, leased_until = ?1
                 WHERE id = (SELECT id FROM jobs WHERE leased_until < ?2 ORDER BY id LIMIT 1)
                 RETURNING id, payload, attempt",
            )
            .unwrap();
        let mut ack = db.prepare("DELETE FROM jobs WHERE id = ?1 AND attempt = ?2").unwrap();
        let now = 1;
        while let Some((id, payload, attempt)) = lease
            .query_row(params![now + 1_000_000, now], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))
            })
            .optional()
            .unwrap()
        {
            seen.mark(u64::from_le_bytes(payload.try_into().unwrap()));
            assert_eq!(ack.execute(params![id, attempt]).unwrap(), 1);
        }
    });
    rows.push(row(DRAIN, SQLITE, n, elapsed, validity(seen.check())));
}

// ----- redb -----

const REDB: &str = "redb";
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const LEASED: TableDefinition<u64, &[u8]> = TableDefinition::new("leased");

pub fn redb_all(n: u64, rows: &mut Vec<Row>) {
    for (workload, producers) in [(PUSH_1, 1), (PUSH_4, 4), (PUSH_16, 16)] {
        let dir = TempDir::new("redb-push");
        let db = redb::Database::create(dir.path().join("q.redb")).unwrap();
        let next = AtomicU64::new(0);
        let per = n / producers;
        let elapsed = threads(producers, |_| {
            for _ in 0..per {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let tx = db.begin_write().unwrap();
                tx.open_table(JOBS).unwrap().insert(id, &id.to_le_bytes()[..]).unwrap();
                tx.commit().unwrap();
            }
        });
        let count = db.begin_read().unwrap().open_table(JOBS).unwrap().len().unwrap();
        let note =
            if count == per * producers { "one transaction each".into() } else { "INVALID: lost".into() };
        rows.push(row(workload, REDB, per * producers, elapsed, note));
    }

    let dir = TempDir::new("redb-batch");
    let db = redb::Database::create(dir.path().join("q.redb")).unwrap();
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let tx = db.begin_write().unwrap();
        {
            let mut jobs = tx.open_table(JOBS).unwrap();
            for &i in chunk {
                jobs.insert(i, &i.to_le_bytes()[..]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows.push(row(BATCH, REDB, n, start.elapsed(), "one transaction per batch".into()));

    // Drain: a lease moves the first job to the leased table, an ack removes it there; a transaction each.
    let seen = Seen::new(n);
    let db = &db; // redb serializes write transactions itself
    let elapsed = threads(2, |_| loop {
        let leased = {
            let tx = db.begin_write().unwrap();
            let job = {
                let mut jobs = tx.open_table(JOBS).unwrap();
                let popped = jobs.pop_first().unwrap().map(|(k, v)| (k.value(), v.value().to_vec()));
                if let Some((id, payload)) = &popped {
                    tx.open_table(LEASED).unwrap().insert(*id, &payload[..]).unwrap();
                }
                popped
            };
            tx.commit().unwrap();
            job
        };
        let Some((id, payload)) = leased else { break };
        seen.mark(u64::from_le_bytes(payload.try_into().unwrap()));
        let tx = db.begin_write().unwrap();
        tx.open_table(LEASED).unwrap().remove(id).unwrap();
        tx.commit().unwrap();
    });
    rows.push(row(DRAIN, REDB, n, elapsed, validity(seen.check())));
}
