//! The journal store (feature `journal`): the memory store plus a crash-safe log of its transitions on
//! local disk, so that a queue's jobs survive `kill -9` and, under the default sync policy, power loss.
//!
//! Built in steps. This module holds the first: [`log`], the segmented, checksummed, group-committed
//! append-only log and its recovery. The next step records the core's transitions in it and replays them
//! on open (see `ARCHITECTURE.md`, "Adding a store"). The plan for it:
//!
//! - One record per state change the core makes (push with payload and options, lease with its attempt
//!   and fencing epoch, ack, nack with its failure, release, reject, dead-lettering, purge, redrive),
//!   encoded with postcard (a documented, stable wire format), appended under the store's lock so that
//!   the log's order is the core's order, and committed after the lock is released (group commit: the
//!   lock is never held across a sync). A call returns only once its record is committed.
//! - Times: the queue's clock restarts with the process, so records carry times as durations relative
//!   to a per-journal wall anchor written at open (`SystemTime` at open, and the queue clock's tick
//!   then); replay maps them onto the new clock, so a retry due in an hour is still due in an hour. A
//!   `TestClock` gets a fixed anchor, so that recovery tests are deterministic.
//! - Recovery replays into a fresh core; leases out at the crash lapse at once (an attempt spent, as SQS
//!   does); fencing epochs continue above the highest one logged; ids above `next_id`.
//! - Compaction: when the live jobs' records are a small share of the log, write them (and the
//!   dead-letter store) into a new segment and delete the segments before it (a rename-free checkpoint:
//!   a checkpoint record names the segment from which replay starts).

// The log is not wired into a queue yet; its tests exercise all of it.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod log;
