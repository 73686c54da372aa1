//! The PostgreSQL store (feature `postgres`): one queue shared by many processes on many machines, its
//! state in SQL. This module is the store's SQL; [`flavor`] puts it behind [`Queue`](crate::Queue), and
//! [`open`] opens it.
//!
//! - Many queues share one set of tables ([`schema`]), each row naming its queue.
//! - A lease takes the oldest ready jobs of the highest priority with `FOR UPDATE SKIP LOCKED`, in
//!   batches, sets them leased, bumps their attempt and their lease token: every outcome (ack, nack,
//!   release, reject, extend) names the token and changes nothing when it no longer matches
//!   ([`LeaseLost`]). As in memory, a lapse does not bump the token, so a late outcome of a lapsed lease
//!   is accepted until someone else leases the job.
//! - Lapses and times to live are processed by the statement that needs them (a lease, the counts): a
//!   lapse is a failed attempt, dead-lettering the job after its last.
//! - Dead letters stay in the table (state dead, with reason, attempts and history).
//! - Time: every statement takes the time from the caller when the queue runs on a test clock, and from
//!   the database's clock otherwise, so that every process agrees (machines' clocks do not).
//! - A push notifies (`pg_notify`, delivered when it commits); a consumer with nothing to lease waits on
//!   a listening connection ([`PgListener`]) with its timeout as the polling fallback. A push can join
//!   the caller's transaction ([`PgStore::push_in`]).
//! - A lost connection fails the call that finds it ([`StoreError`]); the next call connects again.
//!   Leases taken on it lapse at their deadlines, as any.
//!
//! - Ordered groups: a job is leased only as the head of its group (no earlier job of the group left in
//!   the queue), which one statement's snapshot decides for every job it takes.
//!
//! Not yet: keeping acked rows for a while (they are deleted at once).

pub(crate) mod flavor;
pub(crate) mod open;
mod schema;

use ::postgres::types::ToSql;
use ::postgres::{Client, NoTls};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;
use serde_json::Value;

use crate::{Clock, LeaseLost, StoreError};

/// The time in SQL: the caller's (a test clock's tick) if given, else the database's, in nanoseconds
/// (of microsecond resolution) since the Unix epoch. The database's is the time the statement began
/// (`statement_timestamp()`): one time for the whole statement, and, unlike `clock_timestamp()`, stable,
/// so that a comparison with it is an index bound rather than a filter on every row the scan visits.
const NOW: &str = "coalesce($1::bigint, (extract(epoch from statement_timestamp()) * 1000000000)::bigint)";

/// The longest span the store adds to a time (about 146 years): a sum stays within `bigint`.
pub(crate) const MAX_SPAN: i64 = 1 << 62;

/// A span in the store's nanoseconds, capped at [`MAX_SPAN`].
pub(crate) fn span(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(MAX_SPAN).min(MAX_SPAN)
}

/// The state codes of `leasequeue_jobs.state`.
const AVAILABLE: i16 = 0;
const LEASED: i16 = 1;
const DEAD: i16 = 3;
/// Acked, and kept for [`PgConfig::keep_acked`]: no longer in the queue.
const DONE: i16 = 4;

/// The most kept acked rows one lease statement deletes once their time is up.
const PRUNE: i64 = 1000;

/// Dead-letter reason codes, as the journal's (`DeadLetterReason`).
const MAX_ATTEMPTS: i16 = 0;
const REJECTED: i16 = 1;
const EXPIRED: i16 = 2;
/// Not one of [`DeadLetterReason`](crate::DeadLetterReason)'s: a payload that no longer deserializes.
pub(crate) const UNDECODABLE: i16 = 100;

/// Failure kind codes, as the journal's (`FailureKind`).
#[cfg(test)]
const NACKED: i16 = 0;
const KIND_REJECTED: i16 = 1;
const LAPSED: i16 = 2;

/// A queue's settings, in nanoseconds where they are times.
#[derive(Clone, Debug)]
pub(crate) struct PgConfig {
    pub visibility: i64,
    pub max_attempts: i32,
    pub history_limit: i64,
    pub dedup_window: i64,
    /// How long an acked job's row stays (as done) before a lease deletes it; 0: deleted by the ack.
    pub keep_acked: i64,
}

/// A lease just taken.
#[derive(Debug)]
pub(crate) struct Leased {
    pub id: i64,
    pub token: i64,
    pub attempt: i32,
    /// On the database's clock; a lease computes its own on the queue's clock.
    #[cfg_attr(not(test), allow(dead_code))]
    pub deadline: i64,
    pub payload: Value,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PgPushed {
    Enqueued(i64),
    /// The dedup key is reserved for this job.
    Duplicate(i64),
}

/// Where a push puts its job.
#[derive(Debug, Default)]
pub(crate) struct PgPlace<'a> {
    pub delay: i64,
    pub priority: i16,
    /// An ordered group: one of its jobs leased at a time, in push order.
    pub group: Option<&'a str>,
    pub dedup: Option<&'a str>,
    pub ttl: Option<i64>,
}

/// Live jobs by state, and dead letters; when the oldest ready job became ready, and the time now.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PgCounts {
    pub ready: i64,
    pub delayed: i64,
    /// Due, but behind an earlier job of its group.
    pub waiting: i64,
    pub leased: i64,
    pub dead: i64,
    pub oldest_ready: Option<i64>,
    pub now: i64,
}

/// What [`PgStore::next_event`] found.
#[derive(Debug)]
pub(crate) struct PgNext {
    /// When the next timed event is due, if any.
    pub at: Option<i64>,
    /// Whether a job is ready or leased.
    pub busy: bool,
    pub now: i64,
}

/// A live job as [`PgStore::jobs`] lists it.
#[derive(Debug)]
pub(crate) struct PgJob {
    pub id: i64,
    pub leased: bool,
    pub attempt: i32,
    pub priority: i16,
    pub pushed_at: i64,
    pub run_at: i64,
    pub leased_until: Option<i64>,
    /// Due, but behind an earlier job of its group.
    pub blocked: bool,
}

/// A dead letter as the table keeps it.
#[derive(Debug)]
pub(crate) struct PgDead {
    pub id: i64,
    pub reason: i16,
    pub attempts: i32,
    pub history: Value,
    pub payload: Value,
    pub pushed_at: i64,
    pub dead_at: i64,
}

/// The columns [`dead_rows`] reads, in its order.
const DEAD_COLUMNS: &str = "id, dead_reason, attempt, history, payload, pushed_at, dead_at";

/// Dead letters from rows of [`DEAD_COLUMNS`] then the time now; and the time now.
fn dead_rows(rows: &[::postgres::Row]) -> (Vec<PgDead>, i64) {
    let now = rows.first().map_or(0, |row| row.get(7));
    let dead = rows
        .iter()
        .map(|row| PgDead {
            id: row.get(0),
            reason: row.get(1),
            attempts: row.get(2),
            history: row.get(3),
            payload: row.get(4),
            pushed_at: row.get(5),
            dead_at: row.get(6),
        })
        .collect();
    (dead, now)
}

/// SQL: whether the job's time to live has passed (names the time as `$1`).
fn ttl_passed() -> String {
    format!("coalesce(expires_at <= {NOW}, false)")
}

/// SQL: whether job `j` is due but waits behind an earlier job of its group still in the queue.
const BLOCKED: &str = "(j.group_key IS NOT NULL AND EXISTS (
    SELECT 1 FROM leasequeue_jobs g
    WHERE g.queue = j.queue AND g.group_key = j.group_key AND g.id < j.id AND g.state IN (0, 1)))";

/// What a nack did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PgNacked {
    Retry { at: i64 },
    Dead,
}

/// One queue in a PostgreSQL database.
pub(crate) struct PgStore {
    /// Idle connections: a call takes one, or connects a new one, and gives it back (see
    /// [`PgStore::client`]), so that the process's workers run their statements side by side.
    idle: Mutex<Vec<Pooled>>,
    /// Idle connections whose commits do not wait for the server's WAL flush (`synchronous_commit = off`),
    /// for outcomes that at-least-once lets a server crash undo (see [`PgStore::ack`]).
    relaxed: Mutex<Vec<Pooled>>,
    /// Where the server is, and how to log in: every connection is made from it.
    config: ::postgres::Config,
    queue: String,
    cfg: PgConfig,
    clock: Clock,
    /// What this process's statements found fall due (see [`PgStore::advance`]).
    pub(crate) seen: Seen,
}

/// Lapses and expiries that this process's statements processed: counters for its `stats()`.
#[derive(Default)]
pub(crate) struct Seen {
    pub lapsed: AtomicU64,
    /// Jobs dead-lettered by a lapse of their last attempt or by their time to live.
    pub dead: AtomicU64,
}

/// The most idle connections a store keeps.
const IDLE: usize = 32;

/// A connection with the statements it prepared, by their text: a store's statements are few and each
/// runs often, so each is parsed once per connection and then runs in one round trip (a statement given as
/// text is prepared and run in two, and planned anew every time).
pub(crate) struct Pooled {
    client: Client,
    prepared: HashMap<String, ::postgres::Statement>,
}

impl Pooled {
    /// A new connection. Its prepared statements use generic plans: planning one of the store's
    /// statements anew for its parameters took longer than running it (a lease of 16 jobs: 1.5 ms
    /// planned each time, 0.6 ms generic), and each is an index walk whatever the parameters. `relaxed`:
    /// its commits do not wait for the WAL flush (see [`PgStore::relaxed_client`]).
    fn connect(config: &::postgres::Config, relaxed: bool) -> Result<Self, StoreError> {
        let mut client = config.connect(NoTls).map_err(store_error)?;
        let mut settings = String::from("SET plan_cache_mode = force_generic_plan;");
        if relaxed {
            settings.push_str("SET synchronous_commit = off;");
        }
        client.batch_execute(&settings).map_err(store_error)?;
        Ok(Pooled { client, prepared: HashMap::new() })
    }
}

/// A connection taken from a store's idle ones for one call, given back when dropped unless lost.
pub(crate) struct Conn<'a> {
    pooled: Option<Pooled>,
    idle: &'a Mutex<Vec<Pooled>>,
    /// A call on it failed other than by an SQL error (the connection was lost or reset): not given
    /// back, since a lost connection can look open for a moment after the error.
    broken: bool,
}

impl Conn<'_> {
    /// `result` of a call made on this connection through the client itself: a failure other than an SQL
    /// error marks the connection broken.
    fn checked<R>(&mut self, result: Result<R, StoreError>) -> Result<R, StoreError> {
        if result.as_ref().is_err_and(lost) {
            self.broken = true;
        }
        result
    }

    /// `result`, having marked the connection broken if it failed other than by an SQL error.
    fn noted<R>(&mut self, result: Result<R, ::postgres::Error>) -> Result<R, ::postgres::Error> {
        if result.as_ref().is_err_and(connection_failed) {
            self.broken = true;
        }
        result
    }

    /// The prepared statement for `sql`, prepared now if this connection has not yet.
    fn prepared(&mut self, sql: &str) -> Result<::postgres::Statement, ::postgres::Error> {
        let pooled = self.pooled.as_mut().expect("taken only in drop");
        if let Some(statement) = pooled.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = pooled.client.prepare(sql);
        let statement = self.noted(statement)?;
        let pooled = self.pooled.as_mut().expect("taken only in drop");
        pooled.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs `run` with the prepared statement for `sql` (prepared once per connection), noting a failed
    /// connection.
    fn with_prepared<R>(
        &mut self,
        sql: &str,
        run: impl FnOnce(&mut Client, &::postgres::Statement) -> Result<R, ::postgres::Error>,
    ) -> Result<R, ::postgres::Error> {
        let statement = self.prepared(sql)?;
        let result = run(self.client_mut(), &statement);
        self.noted(result)
    }

    /// Runs `sql` (prepared once per connection) and returns its rows.
    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<::postgres::Row>, ::postgres::Error> {
        self.with_prepared(sql, |client, statement| client.query(statement, params))
    }

    /// Runs `sql` (prepared once per connection): at most one row.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<::postgres::Row>, ::postgres::Error> {
        self.with_prepared(sql, |client, statement| client.query_opt(statement, params))
    }

    /// Runs `sql` (prepared once per connection): exactly one row.
    pub(crate) fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<::postgres::Row, ::postgres::Error> {
        self.with_prepared(sql, |client, statement| client.query_one(statement, params))
    }

    /// Runs `sql` (prepared once per connection): the number of rows it changed.
    pub(crate) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, ::postgres::Error> {
        self.with_prepared(sql, |client, statement| client.execute(statement, params))
    }

    fn client_mut(&mut self) -> &mut Client {
        &mut self.pooled.as_mut().expect("taken only in drop").client
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.pooled.as_ref().expect("taken only in drop").client
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client_mut()
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(pooled) = self.pooled.take() else { return };
        let mut idle = self.idle.lock();
        if self.broken || pooled.client.is_closed() {
            // What cut this connection (a server restart, a network failure) most likely cut the idle ones
            // too: the next calls connect afresh rather than each find one dead.
            idle.clear();
        } else if idle.len() < IDLE {
            idle.push(pooled);
        }
    }
}

/// The channel every push notifies, with its queue's name as the payload (NOTIFY is transactional: a
/// listener hears of a push when it commits).
const CHANNEL: &str = "leasequeue";

/// Whether `e` comes from a connection that failed (lost, reset, a protocol error, or ended by the server:
/// a `FATAL` error such as `pg_terminate_backend`'s) rather than from an SQL error in a live session.
fn lost(e: &StoreError) -> bool {
    let cause = std::error::Error::source(e).and_then(|c| c.downcast_ref::<::postgres::Error>());
    cause.is_none_or(connection_failed)
}

fn connection_failed(e: &::postgres::Error) -> bool {
    use ::postgres::error::Severity;
    e.is_closed()
        || e.as_db_error()
            .is_none_or(|db| matches!(db.parsed_severity(), Some(Severity::Fatal | Severity::Panic)))
}

fn store_error(e: ::postgres::Error) -> StoreError {
    StoreError::new(e)
}

impl PgStore {
    /// Connects, applies the migrations this database lacks, and registers the queue.
    pub(crate) fn connect(
        config: &::postgres::Config,
        queue: &str,
        cfg: PgConfig,
        clock: Clock,
    ) -> Result<PgStore, StoreError> {
        let mut client = Pooled::connect(config, false)?;
        schema::migrate(&mut client.client).map_err(store_error)?;
        client
            .client
            .execute("INSERT INTO leasequeue_queues (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&queue])
            .map_err(store_error)?;
        Ok(PgStore {
            idle: Mutex::new(vec![client]),
            relaxed: Mutex::new(Vec::new()),
            config: config.clone(),
            queue: queue.to_owned(),
            cfg,
            clock,
            seen: Seen::default(),
        })
    }

    /// A connection for one call: an idle one, or a new one. A lost connection is not given back (the
    /// call that found it lost reported a storage error; leases taken on it lapse at their deadlines, as
    /// any), so the next call connects again. The process holds as many connections as it runs calls
    /// at once (a pool's workers and waiting consumers), and keeps up to [`IDLE`] idle.
    fn client(&self) -> Result<Conn<'_>, StoreError> {
        self.take(&self.idle, false)
    }

    /// A connection whose commits return before the server flushes them to its WAL: a server crash can
    /// undo its last statements (those of the last few hundred milliseconds), never tear one. A later
    /// durable commit on any connection flushes them too.
    fn relaxed_client(&self) -> Result<Conn<'_>, StoreError> {
        self.take(&self.relaxed, true)
    }

    fn take<'a>(&'a self, idle: &'a Mutex<Vec<Pooled>>, relaxed: bool) -> Result<Conn<'a>, StoreError> {
        let mut list = idle.lock();
        while let Some(pooled) = list.pop() {
            if !pooled.client.is_closed() {
                return Ok(Conn { pooled: Some(pooled), idle, broken: false });
            }
        }
        drop(list); // connect without holding the others back
        Ok(Conn { pooled: Some(Pooled::connect(&self.config, relaxed)?), idle, broken: false })
    }

    /// Runs `work` in a transaction on a connection of its own. A connection on which it failed other
    /// than by an SQL error is not given back (see [`Conn::checked`]).
    fn in_transaction<R>(
        &self,
        work: impl FnOnce(&mut ::postgres::Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut client = self.client()?;
        let result = (|| {
            let mut tx = client.transaction().map_err(store_error)?;
            let done = work(&mut tx)?;
            tx.commit().map_err(store_error)?;
            Ok(done)
        })();
        client.checked(result)
    }

    pub(crate) fn config(&self) -> &::postgres::Config {
        &self.config
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.queue
    }

    pub(crate) fn cfg(&self) -> &PgConfig {
        &self.cfg
    }

    /// The caller's time for SQL: a test clock's tick; `None` for the database's.
    fn now(&self) -> Option<i64> {
        self.clock.is_manual().then(|| i64::try_from(self.clock.tick()).unwrap_or(i64::MAX))
    }

    /// Pushes a job.
    pub(crate) fn push(&self, payload: &Value, place: &PgPlace<'_>) -> Result<PgPushed, StoreError> {
        self.in_transaction(|tx| self.push_in(tx, payload, place))
    }

    /// Pushes a job inside the caller's transaction: it exists exactly when the caller's own writes
    /// commit (and consumers hear of it then).
    pub(crate) fn push_in(
        &self,
        tx: &mut ::postgres::Transaction<'_>,
        payload: &Value,
        place: &PgPlace<'_>,
    ) -> Result<PgPushed, StoreError> {
        let now = self.now();
        let at: i64 = tx.query_one(&format!("SELECT {NOW}"), &[&now]).map_err(store_error)?.get(0);
        if let Some(key) = place.dedup {
            tx.execute(
                "DELETE FROM leasequeue_dedup WHERE queue = $1 AND key = $2 AND until <= $3",
                &[&self.queue, &key, &at],
            )
            .map_err(store_error)?;
            let reserved = tx
                .query_opt(
                    "SELECT job_id FROM leasequeue_dedup WHERE queue = $1 AND key = $2",
                    &[&self.queue, &key],
                )
                .map_err(store_error)?;
            if let Some(row) = reserved {
                return Ok(PgPushed::Duplicate(row.get(0)));
            }
        }
        let expires_at = place.ttl.map(|ttl| at.saturating_add(ttl));
        let run_at = at.saturating_add(place.delay);
        let id: i64 = tx
            .query_one(
                "INSERT INTO leasequeue_jobs (queue, payload, priority, pushed_at, run_at, expires_at, dedup_key, group_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[&self.queue, payload, &place.priority, &at, &run_at, &expires_at, &place.dedup, &place.group],
            )
            .map_err(store_error)?
            .get(0);
        if let Some(key) = place.dedup {
            let until = at.saturating_add(self.cfg.dedup_window);
            tx.execute(
                "INSERT INTO leasequeue_dedup (queue, key, job_id, until) VALUES ($1, $2, $3, $4)",
                &[&self.queue, &key, &id, &until],
            )
            .map_err(store_error)?;
        }
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.queue]).map_err(store_error)?;
        Ok(PgPushed::Enqueued(id))
    }

    /// Pushes jobs in one statement; their ids in order.
    pub(crate) fn push_batch(&self, payloads: &[Value], ttl: Option<i64>) -> Result<Vec<i64>, StoreError> {
        let now = self.now();
        let batch = Value::Array(payloads.to_vec());
        self.in_transaction(|tx| {
            let rows = tx
                .query(
                    &format!(
                        "INSERT INTO leasequeue_jobs (queue, payload, pushed_at, run_at, expires_at)
                     SELECT $2, p, {NOW}, {NOW}, {NOW} + $4::bigint
                     FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS t(p, o)
                     ORDER BY o RETURNING id"
                    ),
                    &[&now, &self.queue, &batch, &ttl],
                )
                .map_err(store_error)?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.queue]).map_err(store_error)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    /// SQL: a lapse is a failed attempt (the job is ready again from its deadline, or dead after its last
    /// attempt, or expired); returns each lapsed job's dead-letter reason (`NULL` if it is ready again).
    /// Names the time `$1` and the queue `$2`.
    fn lapse_sql(&self) -> String {
        let (max, limit) = (self.cfg.max_attempts, self.cfg.history_limit);
        let dies = format!("attempt >= {max} OR coalesce(expires_at <= leased_until, false)");
        format!(
            "UPDATE leasequeue_jobs SET
                 state = CASE WHEN {dies} THEN {DEAD} ELSE {AVAILABLE} END,
                 dead_reason = CASE WHEN expires_at <= leased_until THEN {EXPIRED}
                                    WHEN attempt >= {max} THEN {MAX_ATTEMPTS} END,
                 dead_at = CASE WHEN {dies} THEN leased_until END,
                 run_at = leased_until,
                 history = {history}
             WHERE queue = $2 AND state = {LEASED} AND leased_until <= {NOW}
             RETURNING dead_reason",
            history = appended(
                &format!("jsonb_build_object('attempt', attempt, 'at', leased_until, 'kind', {LAPSED})"),
                &limit.to_string()
            ),
        )
    }

    /// SQL: a job past its time to live that is not leased is dead-lettered as expired. Names the time
    /// `$1` and the queue `$2`.
    fn expire_sql() -> String {
        format!(
            "UPDATE leasequeue_jobs SET state = {DEAD}, dead_reason = {EXPIRED}, dead_at = expires_at
             WHERE queue = $2 AND state = {AVAILABLE} AND expires_at IS NOT NULL AND expires_at <= {NOW}
             RETURNING id"
        )
    }

    /// Processes the lapses and the times to live that are due (see [`lapse_sql`](PgStore::lapse_sql) and
    /// [`expire_sql`](PgStore::expire_sql)), counting them for this process's `stats()`.
    fn advance(
        &self,
        client: &mut impl ::postgres::GenericClient,
        now: Option<i64>,
    ) -> Result<(), StoreError> {
        let lapsed = client.query(&self.lapse_sql(), &[&now, &self.queue]).map_err(store_error)?;
        let dead = lapsed.iter().filter(|row| row.get::<_, Option<i16>>(0).is_some()).count();
        let expired = client.execute(&Self::expire_sql(), &[&now, &self.queue]).map_err(store_error)?;
        self.saw(lapsed.len() as u64, dead as u64 + expired);
        Ok(())
    }

    fn saw(&self, lapsed: u64, dead: u64) {
        self.seen.lapsed.fetch_add(lapsed, Relaxed);
        self.seen.dead.fetch_add(dead, Relaxed);
    }

    /// Leases up to `max` ready jobs, for `visibility` nanoseconds (the queue's if `None`); none while
    /// the queue is paused. One statement, one round trip: it processes the lapses and the times to live
    /// that are due, and takes jobs that were ready before it began. A job that it made ready (a lapse)
    /// is taken by the next; so when it processed some and took fewer than `max`, it runs again.
    pub(crate) fn lease(&self, max: i64, visibility: Option<i64>) -> Result<Vec<Leased>, StoreError> {
        let now = self.now();
        let visibility = visibility.unwrap_or(self.cfg.visibility);
        // Acked rows whose time is up, a bounded number at a time (a data-modifying CTE runs whether or
        // not the statement reads it).
        let pruned = if self.cfg.keep_acked > 0 {
            format!(
                "pruned AS (DELETE FROM leasequeue_jobs WHERE id IN (
                     SELECT id FROM leasequeue_jobs
                     WHERE queue = $2 AND state = {DONE} AND done_at <= {NOW} - {keep} LIMIT {PRUNE})),",
                keep = self.cfg.keep_acked
            )
        } else {
            String::new()
        };
        let sql = format!(
            "WITH {pruned}
                  lapsed AS ({lapse}),
                  expired AS ({expire}),
                  next AS (
                      SELECT j.id FROM leasequeue_jobs j
                      WHERE j.queue = $2 AND j.state = {AVAILABLE} AND j.run_at <= {NOW}
                        AND NOT (SELECT paused FROM leasequeue_queues WHERE name = $2)
                        -- Not one that `expired` dead-letters (one statement must not update a row twice).
                        AND NOT coalesce(j.expires_at <= {NOW}, false)
                        -- The head of its group only: no earlier job of the group still in the queue
                        -- (leased, or waiting to be). A concurrent lease of the head holds its row, and
                        -- the head is still in the queue in this statement's snapshot: one per group.
                        AND NOT {BLOCKED}
                      ORDER BY j.priority DESC, j.run_at, j.ready_seq
                      LIMIT $3 FOR UPDATE SKIP LOCKED),
                  taken AS (
                      UPDATE leasequeue_jobs j SET state = {LEASED}, attempt = j.attempt + 1,
                          lease_token = j.lease_token + 1, leased_until = {NOW} + $4
                      FROM next WHERE j.id = next.id
                      RETURNING j.id, j.lease_token, j.attempt, j.leased_until, j.payload,
                                j.priority, j.run_at, j.ready_seq)
             SELECT 0::smallint, id, lease_token, attempt, leased_until, payload, priority, run_at, ready_seq
             FROM taken
             UNION ALL
             SELECT 1::smallint, count(*), count(dead_reason), 0, 0, NULL, 0::smallint, 0, 0 FROM lapsed
             UNION ALL
             SELECT 2::smallint, count(*), 0, 0, 0, NULL, 0::smallint, 0, 0 FROM expired",
            lapse = self.lapse_sql(),
            expire = Self::expire_sql(),
        );
        let mut leased = Vec::new();
        loop {
            let want = max - leased.len() as i64;
            let rows =
                self.client()?.query(&sql, &[&now, &self.queue, &want, &visibility]).map_err(store_error)?;
            let mut processed = 0;
            let mut taken = Vec::new();
            for row in &rows {
                match row.get::<_, i16>(0) {
                    0 => taken.push((
                        (-row.get::<_, i16>(6), row.get::<_, i64>(7), row.get::<_, i64>(8)),
                        Leased {
                            id: row.get(1),
                            token: row.get(2),
                            attempt: row.get(3),
                            deadline: row.get(4),
                            payload: row.get(5),
                        },
                    )),
                    1 => {
                        let (lapsed, dead) = (row.get::<_, i64>(1) as u64, row.get::<_, i64>(2) as u64);
                        self.saw(lapsed, dead);
                        processed += lapsed;
                    }
                    _ => {
                        let expired = row.get::<_, i64>(1) as u64;
                        self.saw(0, expired);
                        processed += expired;
                    }
                }
            }
            taken.sort_by_key(|(order, _)| *order); // RETURNING's order is not the query's
            leased.extend(taken.into_iter().map(|(_, l)| l));
            if processed == 0 || leased.len() as i64 >= max {
                return Ok(leased);
            }
        }
    }

    /// SQL: the row is still in the queue, as the core sees it: not dead, and not a lease that lapsed on
    /// its last attempt (or past its time to live) which no statement has dead-lettered yet. Names the
    /// time as `$1`.
    fn current(&self) -> String {
        format!(
            "(state = {AVAILABLE} OR (state = {LEASED} AND NOT (leased_until <= {NOW}
                 AND (attempt >= {max} OR coalesce(expires_at <= leased_until, false)))))",
            max = self.cfg.max_attempts
        )
    }

    /// Why an outcome of lease `token` on job `id` changed nothing.
    fn lost(&self, client: &mut Conn<'_>, id: i64, token: i64) -> LeaseLost {
        let row = client.query_opt(
            &format!(
                "SELECT state, lease_token, attempt, revoked_token FROM leasequeue_jobs
                 WHERE id = $1 AND state IN ({AVAILABLE}, {LEASED})"
            ),
            &[&id],
        );
        match row {
            Ok(None) => LeaseLost::Gone,
            Ok(Some(row)) if row.get::<_, Option<i64>>(3) == Some(token) => LeaseLost::Revoked,
            Ok(Some(row)) if row.get::<_, i64>(1) != token => {
                LeaseLost::Superseded { attempt: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0) }
            }
            Ok(Some(_)) => LeaseLost::Gone,
            Err(e) => LeaseLost::Store(store_error(e)),
        }
    }

    /// Runs an outcome's statement on job `id`, fenced by the lease `token` (its `WHERE` names both):
    /// the rows it returns, or why it changed none.
    fn fenced(
        &self,
        id: i64,
        token: i64,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<::postgres::Row>, LeaseLost> {
        self.fenced_on(self.client(), id, token, sql, params)
    }

    /// [`PgStore::fenced`] on the connection given.
    fn fenced_on(
        &self,
        client: Result<Conn<'_>, StoreError>,
        id: i64,
        token: i64,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<::postgres::Row>, LeaseLost> {
        let mut client = client.map_err(LeaseLost::Store)?;
        let rows = client.query(sql, params).map_err(|e| LeaseLost::Store(store_error(e)))?;
        if rows.is_empty() {
            return Err(self.lost(&mut client, id, token));
        }
        Ok(rows)
    }

    /// The job is done: it leaves the queue. Unless `synced`, the commit does not wait for the server's
    /// WAL flush: a server crash right after can undo the ack, and the job is delivered again once its
    /// lease lapses, as at-least-once allows (leases are always flushed, so a lease token is never
    /// handed out twice).
    pub(crate) fn ack(&self, id: i64, token: i64, synced: bool) -> Result<(), LeaseLost> {
        let client = if synced { self.client() } else { self.relaxed_client() };
        self.fenced_on(
            client,
            id,
            token,
            &format!("{} SELECT id FROM gone", self.ack_sql()),
            &[&self.now(), &id, &token],
        )
        .map(|_| ())
    }

    /// A pool worker's ack (not waiting for the WAL flush, as [`ack`](PgStore::ack) unsynced) and the
    /// extension of the next job it took, to `by` nanoseconds from now, in one round trip: each fenced
    /// by its own token, each its own result (the extension's is the new deadline).
    pub(crate) fn ack_extend(
        &self,
        (id, token): (i64, i64),
        (next, next_token): (i64, i64),
        by: i64,
    ) -> (Result<(), LeaseLost>, Result<i64, LeaseLost>) {
        let mut client = match self.relaxed_client() {
            Ok(client) => client,
            Err(e) => return (Err(LeaseLost::Store(e.clone())), Err(LeaseLost::Store(e))),
        };
        let sql = format!(
            "{ack},
                 extended AS (
                     UPDATE leasequeue_jobs SET leased_until = {NOW} + $6
                     WHERE id = $4 AND lease_token = $5 AND {current} RETURNING leased_until)
             SELECT (SELECT count(*) FROM gone), (SELECT leased_until FROM extended)",
            ack = self.ack_sql(),
            current = self.current(),
        );
        let row = match client.query_one(&sql, &[&self.now(), &id, &token, &next, &next_token, &by]) {
            Ok(row) => row,
            Err(e) => {
                let e = store_error(e);
                return (Err(LeaseLost::Store(e.clone())), Err(LeaseLost::Store(e)));
            }
        };
        let acked = if row.get::<_, i64>(0) == 1 { Ok(()) } else { Err(self.lost(&mut client, id, token)) };
        let extended = match row.get::<_, Option<i64>>(1) {
            Some(deadline) => Ok(deadline),
            None => Err(self.lost(&mut client, next, next_token)),
        };
        (acked, extended)
    }

    /// SQL: the CTEs of an ack of job `$2` by lease `$3` (the time `$1`); `gone` holds the job if acked.
    /// The row is deleted, or kept as done for [`PgConfig::keep_acked`].
    fn ack_sql(&self) -> String {
        let current = self.current();
        let gone = if self.cfg.keep_acked > 0 {
            format!(
                "UPDATE leasequeue_jobs SET state = {DONE}, done_at = {NOW}
                 WHERE id = $2 AND lease_token = $3 AND {current}"
            )
        } else {
            format!("DELETE FROM leasequeue_jobs WHERE id = $2 AND lease_token = $3 AND {current}")
        };
        format!(
            "WITH gone AS ({gone} RETURNING id, queue, group_key),
                 -- The next job of its group is ready from now, behind the jobs ready before it (as when
                 -- a job of a group is dead-lettered: see the trigger in the migrations).
                 next AS (
                     UPDATE leasequeue_jobs j SET run_at = greatest(j.run_at, {NOW}),
                         ready_seq = nextval('leasequeue_jobs_id_seq') FROM gone
                     WHERE j.id = (SELECT min(g.id) FROM leasequeue_jobs g
                                   WHERE g.queue = gone.queue AND g.group_key = gone.group_key
                                     AND g.id > gone.id AND g.state IN ({AVAILABLE}, {LEASED})
                                     -- Not one past its time to live that no statement has swept yet.
                                     AND NOT (g.state = {AVAILABLE}
                                              AND coalesce(g.expires_at <= {NOW}, false))))"
        )
    }

    /// A failed attempt: retried after `delay` nanoseconds, or dead after the last attempt.
    pub(crate) fn nack(
        &self,
        id: i64,
        token: i64,
        delay: i64,
        kind: i16,
        message: Option<&str>,
    ) -> Result<PgNacked, LeaseLost> {
        let now = self.now();
        let failure = format!(
            "jsonb_build_object('attempt', attempt, 'at', {NOW}, 'kind', $8::smallint, 'message', $5::text)"
        );
        // A late nack, of a lease that lapsed (a failure already, or about to be one: the lapse is
        // recorded now), backs the job off and gives the lapse its message, without failing twice.
        let lapse =
            format!("jsonb_build_object('attempt', attempt, 'at', leased_until, 'kind', {LAPSED}, 'message', $5::text)");
        let last = "jsonb_set(history, ARRAY[(jsonb_array_length(history) - 1)::text, 'message'], to_jsonb($5::text))";
        let rows = self.fenced(
            id,
            token,
            &format!(
                "UPDATE leasequeue_jobs SET
                     state = CASE WHEN {last_attempt} OR {ttl_passed} THEN {DEAD} ELSE {AVAILABLE} END,
                     dead_reason = CASE WHEN {last_attempt} THEN {MAX_ATTEMPTS}
                                        WHEN {ttl_passed} THEN {EXPIRED} END,
                     dead_at = CASE WHEN {last_attempt} OR {ttl_passed} THEN {NOW} END,
                     run_at = {NOW} + $4,
                     history = CASE WHEN state = {AVAILABLE} AND $5::text IS NULL THEN history
                                    WHEN state = {AVAILABLE} THEN {last}
                                    WHEN leased_until <= {NOW} THEN {lapsed}
                                    ELSE {failed} END
                 WHERE id = $2 AND lease_token = $3 AND {current}
                 RETURNING state, run_at",
                current = self.current(),
                last_attempt = format!("(state = {LEASED} AND leased_until > {NOW} AND attempt >= $6)"),
                ttl_passed = ttl_passed(),
                lapsed = appended(&lapse, "$7"),
                failed = appended(&failure, "$7"),
            ),
            &[&now, &id, &token, &delay, &message, &self.cfg.max_attempts, &self.cfg.history_limit, &kind],
        )?;
        let row = &rows[0];
        Ok(if row.get::<_, i16>(0) == DEAD { PgNacked::Dead } else { PgNacked::Retry { at: row.get(1) } })
    }

    /// The job is poison: dead-lettered at once.
    pub(crate) fn reject(&self, id: i64, token: i64, message: Option<&str>) -> Result<(), LeaseLost> {
        let now = self.now();
        let failure = format!(
            "jsonb_build_object('attempt', attempt, 'at', {NOW}, 'kind', {KIND_REJECTED}, 'message', $4::text)"
        );
        self.fenced(
            id,
            token,
            &format!(
                "UPDATE leasequeue_jobs SET state = {DEAD}, dead_reason = {REJECTED}, dead_at = {NOW},
                     history = {history}
                 WHERE id = $2 AND lease_token = $3 AND {current} RETURNING id",
                current = self.current(),
                history = appended(&failure, "$5"),
            ),
            &[&now, &id, &token, &message, &self.cfg.history_limit],
        )
        .map(|_| ())
    }

    /// Gives the job back, ready after `delay` nanoseconds, without spending the attempt (unless a lapse
    /// already counted it).
    /// Returns whether the job was dead-lettered instead, its time to live past.
    pub(crate) fn release(&self, id: i64, token: i64, delay: i64) -> Result<bool, LeaseLost> {
        self.give_back(id, token, delay, false)
    }

    /// A release, or a revoke: the lease is made stale (its token is bumped).
    fn give_back(&self, id: i64, token: i64, delay: i64, revoke: bool) -> Result<bool, LeaseLost> {
        let now = self.now();
        let rows = self.fenced(
            id,
            token,
            &format!(
                "UPDATE leasequeue_jobs SET
                     state = CASE WHEN {ttl_passed} THEN {DEAD} ELSE {AVAILABLE} END,
                     dead_reason = CASE WHEN {ttl_passed} THEN {EXPIRED} END,
                     dead_at = CASE WHEN {ttl_passed} THEN {NOW} END,
                     run_at = {NOW} + $4,
                     attempt = CASE WHEN state = {LEASED} THEN attempt - 1 ELSE attempt END,
                     revoked_token = CASE WHEN $5 THEN lease_token ELSE revoked_token END,
                     lease_token = CASE WHEN $5 THEN lease_token + 1 ELSE lease_token END
                 WHERE id = $2 AND lease_token = $3 AND {current} RETURNING state",
                current = self.current(),
                ttl_passed = ttl_passed(),
            ),
            &[&now, &id, &token, &delay, &revoke],
        )?;
        Ok(rows[0].get::<_, i16>(0) == DEAD)
    }

    /// Takes a lease back: the job is ready at once without spending the attempt, and the lease is stale
    /// (its token is bumped). Returns whether the job was dead-lettered instead, its time to live past.
    pub(crate) fn revoke(&self, id: i64, token: i64) -> Result<bool, LeaseLost> {
        self.give_back(id, token, 0, true)
    }

    /// Moves the lease's deadline to now + `by` nanoseconds; returns it. A lapsed but current lease is
    /// taken back.
    pub(crate) fn extend(&self, id: i64, token: i64, by: i64) -> Result<i64, LeaseLost> {
        let now = self.now();
        let rows = self.fenced(
            id,
            token,
            &format!(
                "UPDATE leasequeue_jobs SET state = {LEASED}, leased_until = {NOW} + $4
                 WHERE id = $2 AND lease_token = $3 AND {current} RETURNING leased_until",
                current = self.current(),
            ),
            &[&now, &id, &token, &by],
        )?;
        Ok(rows[0].get(0))
    }

    /// Runs a query of one row about the queue (the time `$1`, the queue `$2`) after processing what fell
    /// due, in one transaction.
    fn look(&self, sql: &str) -> Result<::postgres::Row, StoreError> {
        let now = self.now();
        self.in_transaction(|tx| {
            self.advance(tx, now)?;
            tx.query_one(sql, &[&now, &self.queue]).map_err(store_error)
        })
    }

    /// Live jobs by state, and dead letters, exact (after processing what fell due).
    pub(crate) fn counts(&self) -> Result<PgCounts, StoreError> {
        let row = self.look(&format!(
            "WITH jobs AS (
                         SELECT state, run_at, {NOW} AS now, {BLOCKED} AS blocked
                         FROM leasequeue_jobs j WHERE queue = $2)
                     SELECT count(*) FILTER (WHERE state = {AVAILABLE} AND run_at <= now AND NOT blocked),
                            count(*) FILTER (WHERE state = {AVAILABLE} AND run_at > now AND NOT blocked),
                            count(*) FILTER (WHERE state = {AVAILABLE} AND blocked),
                            count(*) FILTER (WHERE state = {LEASED}),
                            count(*) FILTER (WHERE state = {DEAD}),
                            min(run_at) FILTER (WHERE state = {AVAILABLE} AND run_at <= now AND NOT blocked),
                            {NOW}
                     FROM jobs"
        ))?;
        Ok(PgCounts {
            ready: row.get(0),
            delayed: row.get(1),
            waiting: row.get(2),
            leased: row.get(3),
            dead: row.get(4),
            oldest_ready: row.get(5),
            now: row.get(6),
        })
    }

    /// Whether a job is ready or leased (a lease that lapsed included: its job is about to be ready): one
    /// cheap statement, without processing what fell due.
    pub(crate) fn busy(&self) -> Result<bool, StoreError> {
        let row = self
            .client()?
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM leasequeue_jobs WHERE queue = $2 AND state = {LEASED})
                         OR EXISTS (SELECT 1 FROM leasequeue_jobs j
                                    WHERE queue = $2 AND state = {AVAILABLE} AND run_at <= {NOW} AND NOT {BLOCKED})"
                ),
                &[&self.now(), &self.queue],
            )
            .map_err(store_error)?;
        Ok(row.get(0))
    }

    /// In one look, after processing what fell due: when the next timed event is due (a delayed job or
    /// retry, a lapse, an expiry), whether a job is ready or leased, and the time now.
    pub(crate) fn next_event(&self) -> Result<PgNext, StoreError> {
        let row = self.look(&format!(
                    "SELECT least(
                         (SELECT min(run_at) FROM leasequeue_jobs
                          WHERE queue = $2 AND state = {AVAILABLE} AND run_at > {NOW}),
                         (SELECT min(leased_until) FROM leasequeue_jobs WHERE queue = $2 AND state = {LEASED}),
                         (SELECT min(expires_at) FROM leasequeue_jobs
                          WHERE queue = $2 AND state = {AVAILABLE} AND expires_at IS NOT NULL)),
                         EXISTS (SELECT 1 FROM leasequeue_jobs WHERE queue = $2 AND state = {LEASED})
                         OR EXISTS (SELECT 1 FROM leasequeue_jobs j
                                    WHERE queue = $2 AND state = {AVAILABLE} AND run_at <= {NOW} AND NOT {BLOCKED}),
                         {NOW}"
        ))?;
        Ok(PgNext { at: row.get(0), busy: row.get(1), now: row.get(2) })
    }

    /// Every live job, oldest first, and the time now (after processing what fell due).
    pub(crate) fn jobs(&self) -> Result<(Vec<PgJob>, i64), StoreError> {
        let now = self.now();
        let rows = self.in_transaction(|tx| {
            self.advance(tx, now)?;
            tx.query(
                &format!(
                    "SELECT id, state, attempt, priority, pushed_at, run_at, leased_until, {BLOCKED}, {NOW}
                     FROM leasequeue_jobs j WHERE queue = $2 AND state IN ({AVAILABLE}, {LEASED})
                     ORDER BY id"
                ),
                &[&now, &self.queue],
            )
            .map_err(store_error)
        })?;
        let at = rows.first().map_or(0, |row| row.get(8));
        let jobs = rows
            .iter()
            .map(|row| PgJob {
                id: row.get(0),
                leased: row.get::<_, i16>(1) == LEASED,
                attempt: row.get(2),
                priority: row.get(3),
                pushed_at: row.get(4),
                run_at: row.get(5),
                leased_until: row.get(6),
                blocked: row.get(7),
            })
            .collect();
        Ok((jobs, at))
    }

    /// The dead letters, oldest first, and the time now.
    pub(crate) fn dead_letters(&self) -> Result<(Vec<PgDead>, i64), StoreError> {
        let now = self.now();
        let mut client = self.client()?;
        let advanced = self.advance(&mut *client, now);
        client.checked(advanced)?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DEAD_COLUMNS}, {NOW} FROM leasequeue_jobs
                     WHERE queue = $2 AND state = {DEAD} AND dead_reason <> {UNDECODABLE}
                     ORDER BY dead_at, id"
                ),
                &[&now, &self.queue],
            )
            .map_err(store_error)?;
        Ok(dead_rows(&rows))
    }

    /// Takes every dead letter out of the table, oldest first; and the time now.
    pub(crate) fn drain_dead(&self) -> Result<(Vec<PgDead>, i64), StoreError> {
        let now = self.now();
        let mut client = self.client()?;
        let advanced = self.advance(&mut *client, now);
        client.checked(advanced)?;
        let rows = client
            .query(
                &format!(
                    "DELETE FROM leasequeue_jobs
                     WHERE queue = $2 AND state = {DEAD} AND dead_reason <> {UNDECODABLE}
                     RETURNING {DEAD_COLUMNS}, {NOW}"
                ),
                &[&now, &self.queue],
            )
            .map_err(store_error)?;
        let (mut dead, now) = dead_rows(&rows);
        dead.sort_by_key(|d| (d.dead_at, d.id)); // RETURNING's order is not the table's
        Ok((dead, now))
    }

    /// Takes the dead letter of job `id` out of the table, if it is there; and the time now.
    pub(crate) fn take_dead(&self, id: i64) -> Result<Option<(PgDead, i64)>, StoreError> {
        let now = self.now();
        let rows = self
            .client()?
            .query(
                &format!(
                    "DELETE FROM leasequeue_jobs WHERE id = $2 AND queue = $3 AND state = {DEAD}
                     RETURNING {DEAD_COLUMNS}, {NOW}"
                ),
                &[&now, &id, &self.queue],
            )
            .map_err(store_error)?;
        let (mut dead, now) = dead_rows(&rows);
        Ok(dead.pop().map(|d| (d, now)))
    }

    /// Puts a dead letter taken with [`take_dead`](PgStore::take_dead) back, as it was.
    pub(crate) fn restore_dead(&self, dead: &PgDead) -> Result<(), StoreError> {
        self.client()?
            .execute(
                &format!(
                    "INSERT INTO leasequeue_jobs
                         (id, queue, state, payload, pushed_at, run_at, attempt, history, dead_reason, dead_at)
                     VALUES ($1, $2, {DEAD}, $3, $4, $4, $5, $6, $7, $8)"
                ),
                &[
                    &dead.id,
                    &self.queue,
                    &dead.payload,
                    &dead.pushed_at,
                    &dead.attempts,
                    &dead.history,
                    &dead.reason,
                    &dead.dead_at,
                ],
            )
            .map(|_| ())
            .map_err(store_error)
    }

    /// Dead-letters a leased job whose payload does not deserialize, keeping it as stored.
    pub(crate) fn bury_undecodable(&self, id: i64, token: i64) -> Result<(), StoreError> {
        let now = self.now();
        self.client()?
            .execute(
                &format!(
                    "UPDATE leasequeue_jobs SET state = {DEAD}, dead_reason = {UNDECODABLE}, dead_at = {NOW}
                     WHERE id = $2 AND lease_token = $3"
                ),
                &[&now, &id, &token],
            )
            .map(|_| ())
            .map_err(store_error)
    }

    /// Removes every live job (their leases become stale); returns their ids.
    pub(crate) fn purge(&self) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .client()?
            .query(
                &format!(
                    "DELETE FROM leasequeue_jobs WHERE queue = $1 AND state IN ({AVAILABLE}, {LEASED})
                     RETURNING id"
                ),
                &[&self.queue],
            )
            .map_err(store_error)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Deletes the queue: its jobs, dead letters, dedup reservations and settings.
    pub(crate) fn delete_queue(&self) -> Result<(), StoreError> {
        self.in_transaction(|tx| {
            for table in [
                "leasequeue_jobs WHERE queue",
                "leasequeue_dedup WHERE queue",
                "leasequeue_queues WHERE name",
            ] {
                tx.execute(&format!("DELETE FROM {table} = $1"), &[&self.queue]).map_err(store_error)?;
            }
            Ok(())
        })
    }

    /// Pauses or resumes leasing, for every process sharing the queue.
    pub(crate) fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.client()?
            .execute("UPDATE leasequeue_queues SET paused = $2 WHERE name = $1", &[&self.queue, &paused])
            .map(|_| ())
            .map_err(store_error)
    }

    pub(crate) fn is_paused(&self) -> Result<bool, StoreError> {
        let row = self
            .client()?
            .query_one("SELECT paused FROM leasequeue_queues WHERE name = $1", &[&self.queue])
            .map_err(store_error)?;
        Ok(row.get(0))
    }
}

/// A connection that listens for pushes to one queue: a consumer with nothing to lease waits on it
/// (LISTEN/NOTIFY), with polling as the fallback (a wait ends at its timeout whatever it heard).
pub(crate) struct PgListener {
    client: Client,
    queue: String,
}

impl PgListener {
    pub(crate) fn connect(config: &::postgres::Config, queue: &str) -> Result<PgListener, StoreError> {
        let mut client = config.connect(NoTls).map_err(store_error)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}")).map_err(store_error)?;
        Ok(PgListener { client, queue: queue.to_owned() })
    }

    /// Waits until a push to the queue commits, or `timeout` passes; returns whether one did.
    pub(crate) fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        let mut notifications = self.client.notifications();
        let mut heard = notifications.timeout_iter(timeout);
        loop {
            match ::postgres::fallible_iterator::FallibleIterator::next(&mut heard).map_err(store_error)? {
                Some(notification) if notification.payload() == self.queue => return Ok(true),
                Some(_) => {} // another queue's push
                None => return Ok(false),
            }
        }
    }
}

/// SQL for a job's history with `failure` (an SQL expression) appended, keeping the last `limit` (the
/// parameter named).
fn appended(failure: &str, limit: &str) -> String {
    format!(
        "(SELECT coalesce(jsonb_agg(e ORDER BY o), '[]'::jsonb) FROM (
             SELECT e, o FROM jsonb_array_elements(history || jsonb_build_array({failure})) WITH ORDINALITY AS t(e, o)
             ORDER BY o DESC LIMIT {limit}) kept)"
    )
}

#[cfg(test)]
mod tests;
