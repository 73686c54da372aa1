//! The PostgreSQL store's tables, as versioned migrations applied in order, each once, under an advisory
//! lock so that processes starting at once apply them once between them.
//!
//! Times are `bigint` nanoseconds (of microsecond resolution, since the Unix epoch) on the queue's clock:
//! the database's clock (`statement_timestamp()`), so that every process and machine agrees, or a test
//! clock's time, passed in by the caller.

use ::postgres::Client;

/// The migrations: `(version, SQL)`, in order. Never edit one that shipped; add the next.
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "
    CREATE TABLE leasequeue_queues (
        name text PRIMARY KEY,
        paused boolean NOT NULL DEFAULT false
    );
    -- state: 0 available (ready once run_at has passed), 1 leased, 2 waiting behind its group, 3 dead.
    CREATE TABLE leasequeue_jobs (
        id bigserial PRIMARY KEY,
        queue text NOT NULL,
        state smallint NOT NULL DEFAULT 0,
        payload jsonb NOT NULL,
        priority smallint NOT NULL DEFAULT 0,
        pushed_at bigint NOT NULL,
        run_at bigint NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        lease_token bigint NOT NULL DEFAULT 0,
        leased_until bigint,
        expires_at bigint,
        group_key text,
        dedup_key text,
        history jsonb NOT NULL DEFAULT '[]',
        dead_reason smallint,
        dead_at bigint
    );
    CREATE INDEX leasequeue_jobs_ready ON leasequeue_jobs (queue, priority DESC, run_at, id) WHERE state = 0;
    CREATE INDEX leasequeue_jobs_leased ON leasequeue_jobs (queue, leased_until) WHERE state = 1;
    CREATE INDEX leasequeue_jobs_dead ON leasequeue_jobs (queue, dead_at, id) WHERE state = 3;
    -- A dedup key is reserved for a window after its push: while its reservation runs.
    CREATE TABLE leasequeue_dedup (
        queue text NOT NULL,
        key text NOT NULL,
        job_id bigint NOT NULL,
        until bigint NOT NULL,
        PRIMARY KEY (queue, key)
    );
    ",
    ),
    (
        2,
        "
    -- Ordered groups: a job waits while an earlier job of its group is in the queue.
    CREATE INDEX leasequeue_jobs_groups ON leasequeue_jobs (queue, group_key, id)
        WHERE group_key IS NOT NULL AND state IN (0, 1);
    ",
    ),
    (
        3,
        "
    -- The lease token a worker pool took back (its late outcome is told so).
    ALTER TABLE leasequeue_jobs ADD COLUMN revoked_token bigint;
    ",
    ),
    (
        4,
        "
    -- Ready jobs of one priority go out in the order they became ready: by due time, then by ready_seq,
    -- taken when the job is pushed and again when it moves up to the head of its ordered group.
    ALTER TABLE leasequeue_jobs ADD COLUMN ready_seq bigint NOT NULL DEFAULT nextval('leasequeue_jobs_id_seq');
    DROP INDEX leasequeue_jobs_ready;
    CREATE INDEX leasequeue_jobs_ready ON leasequeue_jobs (queue, priority DESC, run_at, ready_seq) WHERE state = 0;
    -- What falls due next, and what outlives its time to live, without a scan of the ready jobs.
    CREATE INDEX leasequeue_jobs_due ON leasequeue_jobs (queue, run_at) WHERE state = 0;
    CREATE INDEX leasequeue_jobs_expiring ON leasequeue_jobs (queue, expires_at)
        WHERE state = 0 AND expires_at IS NOT NULL;
    -- When the head of an ordered group is dead-lettered, the next job of the group is ready from then
    -- (not from its push). (An ack does the same in its own statement.)
    CREATE FUNCTION leasequeue_group_moves_on() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM leasequeue_jobs g
                       WHERE g.queue = NEW.queue AND g.group_key = NEW.group_key AND g.id < NEW.id
                         AND g.state IN (0, 1)) THEN
            UPDATE leasequeue_jobs j SET run_at = greatest(j.run_at, NEW.dead_at),
                ready_seq = nextval('leasequeue_jobs_id_seq')
            WHERE j.id = (SELECT min(g.id) FROM leasequeue_jobs g
                          WHERE g.queue = NEW.queue AND g.group_key = NEW.group_key AND g.id > NEW.id
                            AND g.state IN (0, 1));
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER leasequeue_group_dead AFTER UPDATE OF state ON leasequeue_jobs
        FOR EACH ROW WHEN (NEW.state = 3 AND OLD.state <> 3 AND NEW.group_key IS NOT NULL)
        EXECUTE FUNCTION leasequeue_group_moves_on();
    ",
    ),
    (
        5,
        "
    -- The next job of a group is the first one still live: a job past its time to live that no statement
    -- has dead-lettered yet is not (it is dead-lettered when its time came, before the head left).
    CREATE OR REPLACE FUNCTION leasequeue_group_moves_on() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM leasequeue_jobs g
                       WHERE g.queue = NEW.queue AND g.group_key = NEW.group_key AND g.id < NEW.id
                         AND g.state IN (0, 1)) THEN
            UPDATE leasequeue_jobs j SET run_at = greatest(j.run_at, NEW.dead_at),
                ready_seq = nextval('leasequeue_jobs_id_seq')
            WHERE j.id = (SELECT min(g.id) FROM leasequeue_jobs g
                          WHERE g.queue = NEW.queue AND g.group_key = NEW.group_key AND g.id > NEW.id
                            AND g.state IN (0, 1)
                            AND NOT (g.state = 0 AND coalesce(g.expires_at <= NEW.dead_at, false)));
        END IF;
        RETURN NULL;
    END $$;
    ",
    ),
    (
        6,
        // Acked jobs kept for a while (`QueueBuilder::keep_acked_for`): state 4 (done) since `done_at`.
        "
    ALTER TABLE leasequeue_jobs ADD COLUMN done_at bigint;
    CREATE INDEX leasequeue_jobs_done ON leasequeue_jobs (queue, done_at) WHERE state = 4;
    ",
    ),
];

/// The advisory lock key under which migrations run (`hashtext('leasequeue.migrations')` would do; a
/// constant is plainer).
const MIGRATION_LOCK: i64 = 0x6c65_6173_6571_7565; // "leasequeue" in ASCII, cut to 8 bytes

/// Applies the migrations this database lacks, in one transaction under an advisory lock: idempotent, and
/// safe when several processes start at once. Returns the newest version.
pub(crate) fn migrate(client: &mut Client) -> Result<i32, ::postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS leasequeue_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let applied: i32 =
        tx.query_one("SELECT coalesce(max(version), 0) FROM leasequeue_migrations", &[])?.get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO leasequeue_migrations (version) VALUES ($1)", &[version])?;
    }
    tx.commit()?;
    Ok(MIGRATIONS.last().map_or(0, |(version, _)| *version).max(applied))
}
