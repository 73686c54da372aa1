//! One queue in PostgreSQL, shared by every process that opens it (feature `postgres`).
//!
//! It needs a PostgreSQL server: the URL comes from `LEASEQUEUE_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (a local server with trust authentication; or
//! `docker run -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test -p 5432:5432 postgres`). The
//! queue's tables are created on first use.
//!
//! ```text
//! cargo run --features postgres --example postgres
//! ```
//!
//! A sign-up writes its user row and pushes the welcome email in the same transaction (the job exists
//! exactly when the user does), and a second sign-up rolls back (no job). Then a pool of workers, as
//! any other process would run, sends the emails; one address bounces and is dead-lettered with its
//! history, kept in the database.

use std::time::Duration;

use leasequeue::{Job, PushOptions, Queue, WorkerPool};
use postgres::{Client, NoTls};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Email {
    to: String,
    template: String,
}

fn main() {
    let url = std::env::var("LEASEQUEUE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let queue: Queue<Email> = Queue::builder()
        .max_attempts(2)
        .backoff(leasequeue::Backoff::none())
        .connect(&url, "example-emails")
        .unwrap_or_else(|e| panic!("{e} (is PostgreSQL running at {url}?)"));
    queue.purge(); // a fresh start for the example
    queue.drain_dead_letters();

    // The application's own table, and a sign-up that commits: the user and the job exist together.
    let mut client = Client::connect(&url, NoTls).expect("the server");
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS example_users (email text PRIMARY KEY)")
        .expect("a table");
    client.execute("DELETE FROM example_users", &[]).expect("a fresh table");
    for (email, commit) in
        [("ada@example.com", true), ("bob@example.com", false), ("nobody@bounce.invalid", true)]
    {
        let mut tx = client.transaction().expect("a transaction");
        tx.execute("INSERT INTO example_users (email) VALUES ($1)", &[&email]).expect("insert");
        let welcome = Email { to: email.to_owned(), template: "welcome".to_owned() };
        queue.push_in(&mut tx, welcome, PushOptions::new()).expect("push in the transaction");
        if commit {
            tx.commit().expect("commit");
            println!("signed up {email}: the user and the welcome email committed together");
        } else {
            drop(tx); // rolled back: no user, no email
            println!("the sign-up of {email} rolled back: no user, and no email either");
        }
    }
    assert_eq!(queue.len(), 2);

    // The workers, as any process on any machine would run them.
    let pool = WorkerPool::builder(queue.clone())
        .workers(2)
        .build(|email: Job<'_, Email>| {
            if email.to.ends_with(".invalid") {
                return Err(format!("550 no such domain (attempt {})", email.attempt()));
            }
            println!("sent the {} email to {}", email.template, email.to);
            Ok(())
        })
        .expect("a pool");
    let summary = pool.run_until_idle();
    pool.shutdown(Duration::from_secs(5));
    assert_eq!((summary.acked, summary.dead_lettered), (1, 1));

    for letter in queue.dead_letters() {
        println!(
            "dead letter, kept in the database: {} after {} attempts ({}): {:?}",
            letter.job().to,
            letter.attempts(),
            letter.reason(),
            letter.history().iter().map(|f| f.message.as_deref().unwrap_or("")).collect::<Vec<_>>()
        );
    }
    let stats = queue.stats();
    println!("queue now: {} live, {} dead letters", stats.len(), stats.dead);
    assert_eq!((stats.len(), stats.dead), (0, 1));
}
