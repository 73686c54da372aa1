//! The dashboard over two busy queues: emails sent by a worker pool (some bounce and end as dead
//! letters), thumbnails pushed in bursts and left waiting.
//!
//! ```sh
//! cargo run --features dashboard --example dashboard            # http://127.0.0.1:9090, until Ctrl-C
//! cargo run --features dashboard --example dashboard -- --addr 127.0.0.1:9099 --for 15
//! ```
//!
//! `scripts/screenshot.sh` runs it to take the README's screenshot.

use std::time::Duration;

use crossbeam_channel::{never, tick};
use leasequeue::{Dashboard, Outcome, PushOptions, Queue, WorkerPool};

#[derive(Debug)]
struct Email {
    to: String,
    subject: &'static str,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:9090".into());
    let run_for = arg("--for").map(|s| Duration::from_secs(s.parse().expect("--for takes seconds")));

    let emails: Queue<Email> =
        Queue::builder().max_attempts(2).backoff(leasequeue::Backoff::none()).build().unwrap();
    let thumbnails: Queue<u64> = Queue::new();
    let pool = WorkerPool::builder(emails.clone())
        .workers(2)
        .build(|email| {
            let _ = crossbeam_channel::after(Duration::from_millis(80)).recv(); // the SMTP round trip
            if email.subject.is_empty() {
                Outcome::reject("no subject")
            } else if email.to.ends_with("@bounce.example") {
                Outcome::retry("550 mailbox unavailable")
            } else {
                Outcome::Done
            }
        })
        .unwrap();

    // Three lines start the dashboard.
    let dashboard =
        Dashboard::builder().queue("emails", &emails).queue("thumbnails", &thumbnails).build().unwrap();
    let server = dashboard.serve(addr.as_str()).expect("the dashboard's address is free");
    println!("dashboard at http://{}/ (Ctrl-C to stop)", server.addr());

    // Traffic: a few emails every tick (one in seven bounces), a burst of thumbnails now and then.
    let ticks = tick(Duration::from_millis(100));
    let end = run_for.map_or_else(never, crossbeam_channel::after);
    for round in 0u64.. {
        crossbeam_channel::select! {
            recv(ticks) -> _ => {}
            recv(end) -> _ => break,
        }
        for i in 0..(round % 5) {
            let n = round * 10 + i;
            let to =
                if n % 7 == 0 { format!("user{n}@bounce.example") } else { format!("user{n}@example.com") };
            emails.push(Email { to, subject: "Welcome aboard" }).unwrap();
        }
        if round % 30 == 0 {
            let delay = PushOptions::new().delay(Duration::from_secs(60));
            thumbnails.push_batch(round..round + 40);
            thumbnails.push_with(round, delay).unwrap();
        }
    }
    pool.shutdown(Duration::from_secs(5));
    server.shutdown();
}
