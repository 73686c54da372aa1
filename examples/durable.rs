//! A durable queue: run it twice. The first run finds an empty journal, pushes three jobs and handles
//! one before it "crashes" (exits without a word); the second run finds the other two, and the one that
//! was leased when the first run died, its attempt spent.
//!
//! ```text
//! cargo run --features journal --example durable   # first run: pushes, handles one, exits mid-job
//! cargo run --features journal --example durable   # second run: finds the jobs the first left
//! ```
//!
//! The journal lives in the system's temporary directory; a third run starts afresh.

use leasequeue::{Queue, SyncPolicy};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Thumbnail {
    photo: u32,
    width: u32,
}

fn main() {
    let dir = std::env::temp_dir().join("leasequeue-example-durable");
    let queue: Queue<Thumbnail> = Queue::builder()
        .max_attempts(3)
        .sync_policy(SyncPolicy::Always) // the default: every call returns once it is on disk
        .open(&dir)
        .expect("the journal opens");
    let recovery = queue.recovery().expect("a journaled queue reports what it found");

    if recovery.jobs == 0 && recovery.dead_letters == 0 {
        println!("first run: an empty journal in {}", dir.display());
        for photo in [101, 102, 103] {
            let id = queue.push(Thumbnail { photo, width: 320 }).expect("push");
            println!("  pushed {id}: thumbnail of photo {photo}");
        }
        let done = queue.try_lease().expect("a job is ready");
        println!("  made the thumbnail of photo {} and acked it", done.photo);
        done.ack().expect("ack");
        let running = queue.try_lease().expect("a job is ready");
        println!(
            "  started photo {} (attempt {}), and the process dies: run me again",
            running.photo,
            running.attempt()
        );
        std::process::exit(0); // no destructor runs: as after `kill -9`, only the journal remains
    }

    println!(
        "second run: {} jobs recovered from {} records ({} of them leased when the last run died)",
        recovery.jobs, recovery.records, recovery.leased
    );
    while let Ok(lease) = queue.try_lease() {
        println!(
            "  thumbnail of photo {} at width {} (attempt {})",
            lease.photo,
            lease.width,
            lease.attempt()
        );
        lease.ack().expect("ack");
    }
    drop(queue);
    std::fs::remove_dir_all(&dir).expect("clean up");
    println!("all done; the journal is removed, so the next run starts afresh");
}
