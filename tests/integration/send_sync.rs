//! Compile-time promises: the types are `Send` and `Sync` as documented.

use leasequeue::*;

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn types_are_send_and_sync_as_documented() {
    struct Job(#[allow(dead_code)] String);
    send::<Queue<Job>>();
    sync::<Queue<Job>>();
    send::<Lease<Job>>();
    sync::<Lease<Job>>();
    send::<DeadLetter<Job>>();
    sync::<DeadLetter<Job>>();
    send::<QueueBuilder<Job>>();
    send::<Clock>();
    sync::<Clock>();
    send::<TestClock>();
    sync::<TestClock>();
    send::<Backoff>();
    sync::<Backoff>();
    send::<Box<dyn DeadLetterSink<Job>>>();
    sync::<Box<dyn DeadLetterSink<Job>>>();
    error::<PushError<Job>>();
    error::<TryPushError<Job>>();
    error::<PushTimeoutError<Job>>();
    error::<LeaseError>();
    error::<TryLeaseError>();
    error::<LeaseTimeoutError>();
    error::<LeaseLost>();
    error::<BuildError>();
}
