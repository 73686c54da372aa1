//! The conformance suite (see `main.rs`) on the journal store (feature `journal`): every semantic test
//! runs on a journaled queue, and each queue checks when dropped that replaying its journal gives its
//! state (see `QueueBuilder::journal_conformance`).

conformance!(leasequeue::Queue::builder().journal_conformance());
