//! What only the PostgreSQL store does (feature `postgres`), on typed queues against the server that
//! `LEASEQUEUE_POSTGRES_URL` names (skipped, saying so, without one): jobs as JSON shared by separate
//! handles (as by processes), the push inside the caller's transaction, a lost connection, a payload that
//! no longer deserializes, and the options it refuses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use leasequeue::{LeaseLost, PostgresError, PushOptions, Queue, TestClock};
use postgres::{Client, NoTls};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Email {
    to: String,
    attempt_budget: u8,
}

fn url() -> Option<String> {
    let url = std::env::var(crate::POSTGRES_URL).ok();
    if url.is_none() {
        eprintln!("skipped: set {} to run the PostgreSQL tests", crate::POSTGRES_URL);
    }
    url
}

/// A fresh queue name, and a test clock; the queue's rows are deleted first.
fn fresh(url: &str, what: &str) -> (String, TestClock) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("pg-store-{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut client = Client::connect(url, NoTls).unwrap();
    // The tables exist once any queue connected; this test may be the first.
    let _: Queue<u8> = Queue::builder().connect(url, &name).unwrap();
    client.execute("DELETE FROM leasequeue_jobs WHERE queue = $1", &[&name]).unwrap();
    (name, TestClock::new())
}

fn open<T>(url: &str, name: &str, clock: &TestClock) -> Queue<T>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(30))
        .max_attempts(3)
        .backoff(leasequeue::Backoff::fixed(Duration::from_secs(10)))
        .connect(url, name)
        .unwrap()
}

#[test]
fn jobs_travel_as_json_between_handles_with_their_fencing() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "json");
    let producer: Queue<Email> = open(&url, &name, &clock);
    let consumer: Queue<Email> = open(&url, &name, &clock);
    let email = Email { to: "ada@example.com".into(), attempt_budget: 2 };
    let id = producer.push(email.clone()).unwrap();
    let lease = consumer.try_lease().unwrap();
    assert_eq!((lease.id(), &*lease), (id, &email));
    // The lease lapses; another handle leases the job again, and the first lease is fenced off.
    clock.advance(Duration::from_secs(30));
    let again = producer.try_lease().unwrap();
    assert_eq!(again.attempt(), 2);
    assert_eq!(lease.ack(), Err(LeaseLost::Superseded { attempt: 2 }));
    again.ack().unwrap();
    assert!(consumer.is_empty() && producer.is_empty());
}

#[test]
fn a_push_in_the_callers_transaction_exists_exactly_when_it_commits() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "tx");
    let queue: Queue<Email> = open(&url, &name, &clock);
    let mut client = Client::connect(&url, NoTls).unwrap();
    let email = || Email { to: "bob@example.com".into(), attempt_budget: 1 };

    let mut tx = client.transaction().unwrap();
    queue.push_in(&mut tx, email(), PushOptions::new()).unwrap();
    assert_eq!(queue.len(), 0, "not before the commit");
    drop(tx); // rolled back
    assert_eq!(queue.len(), 0, "rolled back: no job");

    let mut tx = client.transaction().unwrap();
    let pushed = queue.push_in(&mut tx, email(), PushOptions::new()).unwrap();
    tx.commit().unwrap();
    assert_eq!(queue.len(), 1, "committed: one job");
    assert_eq!(queue.try_lease().unwrap().id(), pushed.id());

    let memory: Queue<Email> = Queue::new();
    let mut tx = client.transaction().unwrap();
    let err = memory.push_in(&mut tx, email(), PushOptions::new()).unwrap_err();
    assert!(matches!(&err, leasequeue::PushError::Store(..)), "{err:?}");
    assert_eq!(err.into_inner(), email(), "the job comes back");
}

#[test]
fn a_lost_connection_is_a_storage_error_then_the_queue_goes_on_and_its_lease_is_delivered_again() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "lost");
    // The queue's connections carry a name of their own, for the server to cut them.
    let separator = if url.contains('?') { '&' } else { '?' };
    let app = name.replace('-', "_");
    let queue: Queue<u32> = open(&format!("{url}{separator}application_name={app}"), &name, &clock);
    queue.push(1).unwrap();
    queue.push(2).unwrap();
    let held = queue.try_lease().unwrap();
    let mut admin = Client::connect(&url, NoTls).unwrap();
    let cut = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap();
    assert!(cut >= 1, "the queue's connections are cut");
    let first = queue.try_lease();
    assert!(matches!(first, Err(leasequeue::TryLeaseError::Store(_))), "{first:?}");
    // The next call connects again; the lease taken on the lost connection lapses and comes back.
    clock.advance(Duration::from_secs(30));
    let mut ids = Vec::new();
    while let Ok(lease) = queue.try_lease() {
        ids.push(*lease);
        lease.ack().unwrap();
    }
    ids.sort();
    assert_eq!(ids, [1, 2], "nothing lost");
    drop(held);
}

#[test]
fn a_payload_that_no_longer_deserializes_is_dead_lettered_and_kept_as_stored() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "undecodable");
    let old: Queue<String> = open(&url, &name, &clock);
    old.push("an old job".to_owned()).unwrap();
    let new: Queue<Email> = open(&url, &name, &clock);
    assert!(new.try_lease().is_err(), "nothing it can read");
    let stats = new.stats();
    assert_eq!((stats.len(), stats.dead), (0, 1));
    assert!(new.dead_letters().is_empty(), "not a dead letter of this type");
    let mut client = Client::connect(&url, NoTls).unwrap();
    let row =
        client.query_one("SELECT payload::text FROM leasequeue_jobs WHERE queue = $1", &[&name]).unwrap();
    assert_eq!(row.get::<_, String>(0), "\"an old job\"", "kept as stored");
}

#[test]
fn options_the_store_does_not_support_are_refused_by_name() {
    let Some(url) = url() else { return };
    let refused = |builder: leasequeue::QueueBuilder<u8>| match builder.connect(&url, "never-opened") {
        Err(PostgresError::Build(e)) => e.option(),
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(refused(Queue::builder().capacity(10)), "capacity");
    assert_eq!(refused(Queue::builder().observer(|_| ())), "observer");
    assert_eq!(refused(Queue::builder().rate_limit(1, Duration::from_secs(1))), "rate_limit");
    assert_eq!(refused(Queue::builder().max_attempts(0)), "max_attempts");
    assert!(matches!(Queue::<u8>::builder().connect(&url, ""), Err(PostgresError::Name)));
}

#[test]
fn a_poll_only_queue_finds_another_handles_push_without_listening() {
    let Some(url) = url() else { return };
    let (name, _) = fresh(&url, "poll");
    let separator = if url.contains('?') { '&' } else { '?' };
    let app = name.replace('-', "_");
    let consumer: Queue<u32> = Queue::builder()
        .poll_only(Duration::from_millis(10))
        .connect(&format!("{url}{separator}application_name={app}"), &name)
        .unwrap();
    let producer: Queue<u32> = Queue::builder().connect(&url, &name).unwrap();
    let waiting = consumer.clone();
    let leased = std::thread::spawn(move || waiting.lease_timeout(Duration::from_secs(10)).map(|l| *l));
    crate::until(|| consumer.stats().consumers_waiting == 1);
    producer.push(7).unwrap(); // another handle: only a look at the table finds it
    assert_eq!(leased.join().unwrap().unwrap(), 7);
    let mut admin = Client::connect(&url, NoTls).unwrap();
    let listening: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
            &[&app],
        )
        .unwrap()
        .get(0);
    assert_eq!(listening, 0, "no listening session");
}

/// The documented way to call a PostgreSQL queue from async code: `spawn_blocking` (the `postgres`
/// client runs its own runtime, which an async task's thread cannot block on).
#[test]
fn async_code_calls_a_postgres_queue_through_spawn_blocking() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "async");
    let queue: Queue<u32> = open(&url, &name, &clock);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let job = runtime.block_on(async move {
        let pushed = queue.clone();
        tokio::task::spawn_blocking(move || pushed.push(5)).await.unwrap().unwrap();
        tokio::task::spawn_blocking(move || {
            let lease = queue.try_lease().unwrap();
            let job = *lease;
            lease.ack().unwrap();
            job
        })
        .await
        .unwrap()
    });
    assert_eq!(job, 5);
}

#[test]
fn acked_rows_are_kept_as_done_for_the_time_asked_then_deleted_by_a_lease() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "keep");
    let queue: Queue<u32> = Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(30))
        .keep_acked_for(Duration::from_secs(3600))
        .connect(&url, &name)
        .unwrap();
    let mut client = Client::connect(&url, NoTls).unwrap();
    let done = |client: &mut Client| -> i64 {
        client
            .query_one("SELECT count(*) FROM leasequeue_jobs WHERE queue = $1 AND state = 4", &[&name])
            .unwrap()
            .get(0)
    };
    queue.push(1).unwrap();
    let first = queue.try_lease().unwrap();
    clock.advance(Duration::from_secs(30)); // it lapses: the next lease supersedes it
    let second = queue.try_lease().unwrap();
    second.ack().unwrap();
    assert_eq!(done(&mut client), 1, "the acked row is kept, as done");
    let stats = queue.stats();
    assert_eq!((stats.ready, stats.leased, stats.acked), (0, 0, 1));
    assert!(queue.is_empty() && queue.jobs().is_empty(), "a done job is no longer in the queue");
    assert_eq!(first.ack(), Err(LeaseLost::Gone), "as if the row were deleted");
    assert_eq!(queue.purge(), 0);
    assert_eq!(done(&mut client), 1, "purge leaves the done rows");

    clock.advance(Duration::from_secs(3599));
    assert!(queue.try_lease().is_err());
    assert_eq!(done(&mut client), 1, "kept until its time is up");
    clock.advance(Duration::from_secs(1));
    assert!(queue.try_lease().is_err());
    assert_eq!(done(&mut client), 0, "a lease deletes it once its time is up");
}

#[test]
fn processes_that_share_a_queue_and_a_schedule_push_one_job_per_tick() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "schedule");
    let hourly = leasequeue::Schedule::every(Duration::from_secs(3600)).unwrap();
    let start = clock.wall_time();
    let handles: Vec<Queue<u64>> = (0..3).map(|_| open(&url, &name, &clock)).collect();
    for queue in &handles {
        queue
            .add_schedule("hourly", hourly.clone(), move |at| at.duration_since(start).unwrap().as_secs())
            .unwrap();
    }
    clock.advance(Duration::from_secs(3 * 3600));
    for queue in &handles {
        let _ = queue.len(); // each handle fires the ticks it finds due
    }
    let mut jobs = Vec::new();
    while let Ok(lease) = handles[0].try_lease() {
        jobs.push(*lease);
        lease.ack().unwrap();
    }
    assert_eq!(jobs, [3600, 7200, 10800], "one job per tick between the three");
    let fired: u64 = handles.iter().map(|q| q.schedules()[0].fired).sum();
    assert_eq!(fired, 9, "each handle pushed each tick; the dedup key kept one");
}

#[test]
fn a_queue_connects_with_the_applications_own_config() {
    let Some(url) = url() else { return };
    let (name, clock) = fresh(&url, "config");
    let mut config: postgres::Config = url.parse().unwrap();
    let app = name.replace('-', "_");
    config.application_name(&app);
    let queue: Queue<u32> = Queue::builder().clock(clock).connect_with(config, &name).unwrap();
    queue.push(7).unwrap();
    let mut admin = Client::connect(&url, NoTls).unwrap();
    let sessions: i64 = admin
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .unwrap()
        .get(0);
    assert!(sessions >= 1, "the queue's connections carry the config's application name");
    assert_eq!(*queue.try_lease().unwrap(), 7);
    assert!(matches!(
        Queue::<u32>::builder().connect("postgres://[not a url", &name),
        Err(PostgresError::Store(_))
    ));
}
