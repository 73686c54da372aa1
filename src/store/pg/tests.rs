//! The PostgreSQL store's operations against a server: `LEASEQUEUE_POSTGRES_URL` names it (`.ci/run` sets
//! it to the local server). Without it each test says it was skipped and passes. Each test has a queue
//! of its own, so that they run in parallel on one database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::TestClock;

/// The environment variable naming the server for these tests.
pub(crate) const URL_VAR: &str = "LEASEQUEUE_POSTGRES_URL";

const SECOND: i64 = 1_000_000_000;

/// A store on a queue of its own, whose rows are deleted when it is dropped.
struct TestStore(PgStore);

impl std::ops::Deref for TestStore {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        &self.0
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Ok(mut client) = self.0.client() else { return };
        let _ = client.execute("DELETE FROM leasequeue_jobs WHERE queue = $1", &[&self.0.queue]);
        let _ = client.execute("DELETE FROM leasequeue_dedup WHERE queue = $1", &[&self.0.queue]);
        let _ = client.execute("DELETE FROM leasequeue_queues WHERE name = $1", &[&self.0.queue]);
    }
}

/// A store on a fresh queue and a test clock, or `None` (the test is skipped) without a server.
fn store(name: &str) -> Option<(TestStore, TestClock)> {
    let url = url()?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let queue = format!("test-{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let clock = TestClock::new();
    let cfg = PgConfig {
        visibility: 30 * SECOND,
        max_attempts: 3,
        history_limit: 16,
        dedup_window: 300 * SECOND,
        keep_acked: 0,
    };
    let store = PgStore::connect(&url.parse().unwrap(), &queue, cfg, clock.clone().into())
        .expect("the test server is reachable");
    Some((TestStore(store), clock))
}

/// The counts, without the times.
fn counts(store: &PgStore) -> PgCounts {
    PgCounts { now: 0, oldest_ready: None, ..store.counts().unwrap() }
}

fn leased_ids(leased: &[Leased]) -> Vec<i64> {
    leased.iter().map(|l| l.id).collect()
}

/// The server's URL, or `None` after saying, once, that the PostgreSQL tests are skipped (on the terminal:
/// the test harness would swallow a plain `eprintln!`).
pub(crate) fn url() -> Option<String> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let url = std::env::var(URL_VAR).ok();
    if url.is_none() {
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL tests skipped: set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test; \
                 a local server or `docker run -e POSTGRES_HOST_AUTH_METHOD=trust -p 5432:5432 postgres`)"
            );
        });
    }
    url
}

#[test]
fn migrations_are_idempotent_and_safe_from_many_connections_at_once() {
    let Some(url) = url() else { return };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url, NoTls).unwrap();
                schema::migrate(&mut client).unwrap()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), schema::MIGRATIONS.len() as i32);
    }
}

#[test]
fn jobs_come_out_by_priority_then_age_and_a_batch_in_one_lease() {
    let Some((store, _clock)) = store("order") else { return };
    let low = store.push(&json!("low"), &PgPlace::default()).unwrap();
    let high = store.push(&json!("high"), &PgPlace { priority: 5, ..PgPlace::default() }).unwrap();
    let ids = store.push_batch(&[json!(1), json!(2), json!(3)], None).unwrap();
    assert_eq!(ids.len(), 3);
    let PgPushed::Enqueued(high) = high else { panic!("{high:?}") };
    let first = store.lease(1, None).unwrap();
    assert_eq!((leased_ids(&first), first[0].attempt, &first[0].payload), (vec![high], 1, &json!("high")));
    let rest = store.lease(10, None).unwrap();
    let PgPushed::Enqueued(low) = low else { panic!("{low:?}") };
    assert_eq!(leased_ids(&rest), [vec![low], ids].concat());
    assert_eq!(counts(&store), PgCounts { leased: 5, ..PgCounts::default() });
}

#[test]
fn every_outcome_is_fenced_by_the_lease_token() {
    let Some((store, clock)) = store("fence") else { return };
    store.push(&json!("job"), &PgPlace::default()).unwrap();
    let first = store.lease(1, None).unwrap().remove(0);
    // The lease lapses; until someone else leases the job, its late outcome is still accepted...
    clock.advance(Duration::from_secs(31));
    assert_eq!(store.extend(first.id, first.token, 30 * SECOND).unwrap(), first.deadline + 31 * SECOND);
    // ...and once someone has, the old lease changes nothing.
    clock.advance(Duration::from_secs(31));
    let second = store.lease(1, None).unwrap().remove(0);
    assert_eq!((second.id, second.attempt), (first.id, 2), "a lapse spends no attempt of its own");
    assert_eq!(store.ack(first.id, first.token, true), Err(LeaseLost::Superseded { attempt: 2 }));
    assert_eq!(store.nack(first.id, first.token, 0, NACKED, None), Err(LeaseLost::Superseded { attempt: 2 }));
    assert_eq!(store.release(first.id, first.token, 0), Err(LeaseLost::Superseded { attempt: 2 }));
    store.ack(second.id, second.token, true).unwrap();
    assert_eq!(store.ack(second.id, second.token, true), Err(LeaseLost::Gone));
    assert_eq!(counts(&store), PgCounts::default());
}

#[test]
fn retries_back_off_and_the_last_failure_dead_letters_with_the_history() {
    let Some((store, clock)) = store("retry") else { return };
    store.push(&json!({"to": "ada"}), &PgPlace::default()).unwrap();
    for attempt in 1..=2 {
        let lease = store.lease(1, None).unwrap().remove(0);
        assert_eq!(lease.attempt, attempt);
        let at = match store.nack(lease.id, lease.token, 10 * SECOND, NACKED, Some("smtp 451")).unwrap() {
            PgNacked::Retry { at } => at,
            PgNacked::Dead => panic!("attempt {attempt} was not the last"),
        };
        assert_eq!(at, lease.deadline - 30 * SECOND + 10 * SECOND);
        assert!(store.lease(1, None).unwrap().is_empty(), "backing off");
        clock.advance(Duration::from_secs(10));
    }
    let last = store.lease(1, None).unwrap().remove(0);
    assert_eq!(store.nack(last.id, last.token, 0, NACKED, Some("still down")).unwrap(), PgNacked::Dead);
    let dead = store.dead_letters().unwrap().0;
    assert_eq!((dead.len(), dead[0].reason, dead[0].attempts), (1, MAX_ATTEMPTS, 3));
    let messages: Vec<&str> =
        dead[0].history.as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["smtp 451", "smtp 451", "still down"]);
    assert_eq!(counts(&store), PgCounts { dead: 1, ..PgCounts::default() });
}

#[test]
fn a_lapse_is_a_failed_attempt_and_the_last_one_dead_letters() {
    let Some((store, clock)) = store("lapse") else { return };
    store.push(&json!(7), &PgPlace::default()).unwrap();
    for attempt in 1..=3 {
        assert_eq!(store.lease(1, None).unwrap()[0].attempt, attempt);
        clock.advance(Duration::from_secs(30));
    }
    assert!(store.lease(1, None).unwrap().is_empty());
    let dead = store.dead_letters().unwrap().0;
    assert_eq!((dead[0].reason, dead[0].attempts), (MAX_ATTEMPTS, 3));
    let kinds: Vec<i64> =
        dead[0].history.as_array().unwrap().iter().map(|f| f["kind"].as_i64().unwrap()).collect();
    assert_eq!(kinds, [i64::from(LAPSED); 3]);
}

#[test]
fn reject_release_delay_dedup_ttl_pause_and_purge() {
    let Some((store, clock)) = store("misc") else { return };
    // Reject: dead at once.
    store.push(&json!("poison"), &PgPlace::default()).unwrap();
    let lease = store.lease(1, None).unwrap().remove(0);
    store.reject(lease.id, lease.token, Some("malformed")).unwrap();
    assert_eq!(store.dead_letters().unwrap().0[0].reason, REJECTED);
    // Release: the attempt is not spent.
    store.push(&json!("busy"), &PgPlace::default()).unwrap();
    let lease = store.lease(1, None).unwrap().remove(0);
    store.release(lease.id, lease.token, 5 * SECOND).unwrap();
    assert!(store.lease(1, None).unwrap().is_empty());
    clock.advance(Duration::from_secs(5));
    assert_eq!(store.lease(1, None).unwrap()[0].attempt, 1);
    // Delay.
    store.push(&json!("later"), &PgPlace { delay: 60 * SECOND, ..PgPlace::default() }).unwrap();
    assert_eq!(counts(&store).delayed, 1);
    // Dedup: a second push within the window is the first job.
    let first = store.push(&json!("a"), &PgPlace { dedup: Some("order-9"), ..PgPlace::default() }).unwrap();
    let PgPushed::Enqueued(id) = first else { panic!("{first:?}") };
    let again = store.push(&json!("b"), &PgPlace { dedup: Some("order-9"), ..PgPlace::default() }).unwrap();
    assert_eq!(again, PgPushed::Duplicate(id));
    // A time to live: past it, never delivered, dead-lettered as expired.
    store
        .push(&json!("stale"), &PgPlace { delay: 10 * SECOND, ttl: Some(5 * SECOND), ..PgPlace::default() })
        .unwrap();
    // Pause: nothing is leased, pushes go on.
    store.set_paused(true).unwrap();
    assert!(store.is_paused().unwrap());
    assert!(store.lease(10, None).unwrap().is_empty());
    store.set_paused(false).unwrap();
    clock.advance(Duration::from_secs(10));
    let ids = leased_ids(&store.lease(10, None).unwrap());
    assert_eq!(ids, [id]);
    assert!(store.dead_letters().unwrap().0.iter().any(|d| d.reason == EXPIRED));
    // Purge: every live job, leased ones included; dead letters stay.
    assert_eq!(store.purge().unwrap().len(), 3);
    assert_eq!(counts(&store), PgCounts { dead: 2, ..PgCounts::default() });
}

#[test]
fn competing_consumers_never_lease_one_job_twice() {
    let Some((store, _clock)) = store("compete") else { return };
    let n = 400;
    store.push_batch(&(0..n).map(|i| json!(i)).collect::<Vec<_>>(), None).unwrap();
    // Two connections on the queue, as two processes would have.
    let url = url().expect("the store was made from it");
    let connection = || PgStore {
        idle: Mutex::new(vec![Pooled::connect(&url.parse().unwrap(), false).unwrap()]),
        relaxed: Mutex::new(Vec::new()),
        config: url.parse().unwrap(),
        queue: store.queue.clone(),
        cfg: store.cfg.clone(),
        clock: store.clock.clone(),
        seen: Seen::default(),
    };
    let threads: Vec<_> = [connection(), connection()]
        .into_iter()
        .map(|store| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    let leased = store.lease(7, None).unwrap();
                    if leased.is_empty() {
                        return seen;
                    }
                    for lease in leased {
                        seen.push(lease.payload.as_i64().unwrap());
                        store.ack(lease.id, lease.token, true).unwrap();
                    }
                }
            })
        })
        .collect();
    let mut seen: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "every job handled exactly once");
}

#[test]
fn a_lost_connection_is_a_storage_error_then_the_store_reconnects_and_nothing_is_lost() {
    let Some((store, clock)) = store("lost") else { return };
    store.push(&json!("before"), &PgPlace::default()).unwrap();
    let held = store.lease(1, None).unwrap().remove(0);
    let pid: i32 = store.client().unwrap().query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut admin = Client::connect(&url().unwrap(), NoTls).unwrap();
    admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
    // The call that finds the connection gone reports it; the next one connects again.
    assert!(store.push(&json!("lost?"), &PgPlace::default()).is_err());
    store.push(&json!("after"), &PgPlace::default()).unwrap();
    // The lease taken on the dead connection lapses at its deadline and is delivered again.
    clock.advance(Duration::from_secs(30));
    let mut payloads: Vec<Value> = store.lease(10, None).unwrap().into_iter().map(|l| l.payload).collect();
    payloads.sort_by_key(|p| p.to_string());
    assert_eq!(payloads, [json!("after"), json!("before")]);
    assert_eq!(store.ack(held.id, held.token, true), Err(LeaseLost::Superseded { attempt: 2 }));
}

#[test]
fn a_push_in_the_callers_transaction_exists_exactly_when_it_commits() {
    let Some((store, _clock)) = store("tx") else { return };
    let mut own = Client::connect(&url().unwrap(), NoTls).unwrap();
    let mut tx = own.transaction().unwrap();
    store.push_in(&mut tx, &json!("rolled back"), &PgPlace::default()).unwrap();
    tx.rollback().unwrap();
    assert_eq!(counts(&store), PgCounts::default());
    let mut tx = own.transaction().unwrap();
    store.push_in(&mut tx, &json!("committed"), &PgPlace::default()).unwrap();
    assert_eq!(counts(&store).ready, 0, "not before the commit");
    tx.commit().unwrap();
    assert_eq!(store.lease(10, None).unwrap()[0].payload, json!("committed"));
}

#[test]
fn a_waiting_consumer_hears_of_a_push_when_it_commits() {
    let Some((store, _clock)) = store("notify") else { return };
    let mut listener = PgListener::connect(&url().unwrap().parse().unwrap(), &store.queue).unwrap();
    assert!(!listener.wait(Duration::from_millis(10)).unwrap(), "nothing pushed: the wait times out");
    let (ready, go) = crossbeam_channel::bounded(0);
    let waiter = std::thread::spawn(move || {
        ready.send(()).unwrap();
        listener.wait(Duration::from_secs(60)).unwrap()
    });
    go.recv().unwrap();
    store.push(&json!("wake up"), &PgPlace::default()).unwrap();
    assert!(waiter.join().unwrap(), "woken by the push, not by the 60 s timeout");
}

#[test]
fn a_group_gives_out_one_job_at_a_time_in_push_order() {
    let Some((store, _clock)) = store("groups") else { return };
    let place = |group| PgPlace { group: Some(group), ..PgPlace::default() };
    let a1 = store.push(&json!("a1"), &place("a")).unwrap();
    store.push(&json!("a2"), &place("a")).unwrap();
    store.push(&json!("b1"), &place("b")).unwrap();
    store.push(&json!("free"), &PgPlace::default()).unwrap();
    let first: Vec<Value> = store.lease(10, None).unwrap().into_iter().map(|l| l.payload).collect();
    assert_eq!(first, [json!("a1"), json!("b1"), json!("free")]);
    assert!(store.lease(10, None).unwrap().is_empty(), "a2 waits behind a1");
    let PgPushed::Enqueued(a1) = a1 else { panic!("{a1:?}") };
    let token: i64 = store
        .client()
        .unwrap()
        .query_one("SELECT lease_token FROM leasequeue_jobs WHERE id = $1", &[&a1])
        .unwrap()
        .get(0);
    store.ack(a1, token, true).unwrap();
    assert_eq!(store.lease(10, None).unwrap()[0].payload, json!("a2"));
}

#[test]
fn competing_consumers_never_hold_two_jobs_of_one_group() {
    let Some((store, _clock)) = store("group-race") else { return };
    for i in 0..200 {
        let group = format!("g{}", i % 10);
        store.push(&json!([i % 10, i]), &PgPlace { group: Some(&group), ..PgPlace::default() }).unwrap();
    }
    let url = url().expect("the store was made from it");
    let held = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    // Every job done, in the order they were done (under the lock that frees their group).
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let consumer = PgStore {
                idle: Mutex::new(vec![Pooled::connect(&url.parse().unwrap(), false).unwrap()]),
                relaxed: Mutex::new(Vec::new()),
                config: url.parse().unwrap(),
                queue: store.queue.clone(),
                cfg: store.cfg.clone(),
                clock: store.clock.clone(),
                seen: Seen::default(),
            };
            let (held, done) = (std::sync::Arc::clone(&held), std::sync::Arc::clone(&done));
            std::thread::spawn(move || {
                let mut idle = 0;
                while idle < 50 {
                    let leased = consumer.lease(16, None).unwrap(); // more than the groups
                    idle = if leased.is_empty() { idle + 1 } else { 0 };
                    for lease in &leased {
                        let group = lease.payload[0].as_i64().unwrap();
                        assert!(held.lock().unwrap().insert(group), "group {group} held twice");
                    }
                    for lease in leased {
                        let (group, job) =
                            (lease.payload[0].as_i64().unwrap(), lease.payload[1].as_i64().unwrap());
                        let mut held = held.lock().unwrap();
                        consumer.ack(lease.id, lease.token, true).unwrap();
                        done.lock().unwrap().push((group, job));
                        held.remove(&group);
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let done = done.lock().unwrap();
    assert_eq!(done.len(), 200);
    for group in 0..10 {
        let order: Vec<i64> = done.iter().filter(|(g, _)| *g == group).map(|(_, job)| *job).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "group {group} out of push order: {order:?}");
    }
}
