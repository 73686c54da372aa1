//! The conformance suite (see `main.rs`) on the in-memory store, the default.

conformance!(leasequeue::Queue::builder());
