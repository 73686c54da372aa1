//! The conformance suite (see `main.rs`) on the PostgreSQL store (feature `postgres`), against the server
//! that `LEASEQUEUE_POSTGRES_URL` names (`.ci/run` sets it to the local one). Each queue has a name of its
//! own, so that the tests run in parallel on one database, and is deleted when dropped; its rows hold no
//! payloads (the jobs stay in the test's process, so that any job type will do), and every state change
//! is the store's SQL. The tests of options the store does not support yet (its builder refuses them),
//! and the two that run a handler 100 000 times (minutes, at a few round trips a run), say so and
//! return at once.

conformance!(
    crate::pg_builder(),
    lacks: [
        Needs::Capacity,
        Needs::Sink,
        Needs::Observer,
        Needs::Alarms,
        Needs::RateLimit,
        Needs::GroupConcurrency,
        Needs::ManyRuns
    ]
);
