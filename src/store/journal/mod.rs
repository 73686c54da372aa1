//! The journal store (feature `journal`): the memory store plus a crash-safe log of its transitions on
//! local disk, so that a queue's jobs survive `kill -9` and, under the default sync policy, power loss.
//!
//! Built in steps. This module holds the first: [`log`], the segmented, checksummed, group-committed
//! append-only log and its recovery. The next step records the core's transitions in it and replays them
//! on open (see `ARCHITECTURE.md`, "Adding a store").

// The log is not wired into a queue yet; its tests exercise all of it.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod log;
