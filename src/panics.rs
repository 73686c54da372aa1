//! Panics in user code: caught where the queue calls it, counted, and reported through a hook.
//!
//! The one rule (README "Guarantees"): a panic in user code is caught where the queue calls it; the
//! operation that called it has already taken effect and keeps its result; nothing is lost, no attempt is
//! spent for it, no lock is poisoned, no worker thread dies, and no unrelated caller sees it.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::JobId;

/// Where the user code that panicked was called from.
///
/// # Examples
///
/// ```
/// assert_eq!(leasequeue::PanicSite::DeadLetterSink.to_string(), "dead-letter sink");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PanicSite {
    /// The [`DeadLetterSink`](crate::DeadLetterSink): the dead letter went to the built-in store.
    DeadLetterSink,
    /// The observer given to [`QueueBuilder::observer`](crate::QueueBuilder::observer).
    Observer,
    /// An alarm's hook ([`QueueBuilder::alarm`](crate::QueueBuilder::alarm)).
    AlarmHook,
    /// The job's own `Drop`, run when the queue let go of its last copy of the job.
    PayloadDrop,
    /// The job's own `Clone`, when a [`Router`](crate::Router) copies it for several queues.
    PayloadClone,
    /// A backoff function ([`Backoff::custom`](crate::Backoff::custom)): the retry waits no time.
    Backoff,
    /// A [`WorkerPool`](crate::WorkerPool)'s `on_worker_start` hook: the worker goes on.
    WorkerStart,
    /// A [`WorkerPool`](crate::WorkerPool)'s `on_worker_stop` hook: the worker stops as it was going to.
    WorkerStop,
    /// A [`WorkerPool`](crate::WorkerPool)'s `on_panic` hook.
    HandlerPanicHook,
    /// A [`Redrive`](crate::Redrive) filter: the dead letter is skipped and stays where it was.
    RedriveFilter,
    /// The job's own `Serialize`, when a durable queue records it: the push fails with a storage error
    /// and hands the job back; a dead letter or a checkpoint that cannot be recorded fails the journal.
    PayloadSerialize,
    /// The job's own `Deserialize`, when a PostgreSQL queue reads a job back: the job is dead-lettered as
    /// undecodable, its stored form kept.
    PayloadDeserialize,
    /// A schedule's job function ([`Queue::add_schedule`](crate::Queue::add_schedule)): that tick pushes
    /// no job (counted in [`ScheduleInfo::skipped`](crate::ScheduleInfo::skipped)); the next tick calls
    /// it again.
    ScheduleJob,
    /// The job's own `Debug`, when the dashboard (feature `dashboard`) shows the job: the page says it
    /// panicked instead of the job's text.
    PayloadDebug,
}

impl fmt::Display for PanicSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PanicSite::DeadLetterSink => "dead-letter sink",
            PanicSite::Observer => "observer",
            PanicSite::AlarmHook => "alarm hook",
            PanicSite::PayloadDrop => "job's drop",
            PanicSite::PayloadClone => "job's clone",
            PanicSite::Backoff => "backoff function",
            PanicSite::WorkerStart => "on_worker_start hook",
            PanicSite::WorkerStop => "on_worker_stop hook",
            PanicSite::HandlerPanicHook => "on_panic hook",
            PanicSite::RedriveFilter => "redrive filter",
            PanicSite::PayloadSerialize => "job's serialize",
            PanicSite::PayloadDeserialize => "job's deserialize",
            PanicSite::ScheduleJob => "schedule's job function",
            PanicSite::PayloadDebug => "job's debug",
        })
    }
}

/// A panic in user code that the queue caught, as its panic hook
/// ([`QueueBuilder::on_panic`](crate::QueueBuilder::on_panic)) sees it.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use leasequeue::{DeadLetter, PanicSite, Queue, UserPanic};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let queue: Queue<&str> = Queue::builder()
///     .dead_letter(|_d: DeadLetter<&str>| panic!("sink down"))
///     .on_panic(move |p: &UserPanic| log.lock().unwrap().push((p.site, p.message.clone())))
///     .build()
///     .unwrap();
/// queue.push("poison").unwrap();
/// queue.try_lease().unwrap().reject("bad").unwrap(); // the sink's panic does not reach us
/// assert_eq!(queue.dead_letters().len(), 1); // the dead letter went to the built-in store
/// assert_eq!(*seen.lock().unwrap(), [(PanicSite::DeadLetterSink, "sink down".to_owned())]);
/// assert_eq!(queue.stats().panics, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserPanic {
    /// Where the panicking code was called from.
    pub site: PanicSite,
    /// The panic's message (its `&str` or `String` payload).
    pub message: String,
    /// The job concerned, where there is one.
    pub job: Option<JobId>,
}

impl fmt::Display for UserPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} panicked: {}", self.site, self.message)?;
        if let Some(id) = self.job {
            write!(f, " (job {id})")?;
        }
        Ok(())
    }
}

pub(crate) type PanicHook = Box<dyn Fn(&UserPanic) + Send + Sync>;

/// Runs user code for a queue: catches its panics, counts them and reports them to the queue's hook.
pub(crate) struct Catcher {
    count: AtomicU64,
    hook: Option<PanicHook>,
}

impl Catcher {
    pub(crate) fn new(hook: Option<PanicHook>) -> Self {
        Catcher { count: AtomicU64::new(0), hook }
    }

    /// Runs `f`; `None` if it panicked (then counted and reported).
    pub(crate) fn call<R>(&self, site: PanicSite, job: Option<JobId>, f: impl FnOnce() -> R) -> Option<R> {
        self.try_call(site, job, f).ok()
    }

    /// Runs `f`; the panic's message if it panicked (then counted and reported).
    pub(crate) fn try_call<R>(
        &self,
        site: PanicSite,
        job: Option<JobId>,
        f: impl FnOnce() -> R,
    ) -> Result<R, String> {
        panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            self.report(site, job, &*payload);
            let text = message(&*payload);
            discard(payload);
            text
        })
    }

    /// Drops `value` (a dead letter, a batch of jobs, anything whose `Drop` may run a job's), catching a
    /// panic.
    pub(crate) fn dispose<X>(&self, value: X) {
        if std::mem::needs_drop::<X>() {
            self.call(PanicSite::PayloadDrop, None, move || drop(value));
        }
    }

    /// Lets go of one copy of a job: only the last holder drops the job itself, and only that drop (of a
    /// job whose type has a `Drop` at all) needs catching. The hot path (an ack) pays one atomic.
    #[inline]
    pub(crate) fn dispose_job<T>(&self, job: Option<Arc<T>>) {
        if let Some(value) = job.and_then(Arc::into_inner) {
            self.dispose(value);
        }
    }

    /// Counts and reports a panic already caught. The hook's own panic is swallowed: there is nobody left
    /// to tell.
    pub(crate) fn report(&self, site: PanicSite, job: Option<JobId>, payload: &(dyn Any + Send)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = &self.hook {
            let report = UserPanic { site, message: message(payload), job };
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| hook(&report))) {
                discard(payload);
            }
        }
    }

    /// How many panics were caught.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Catcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catcher").field("count", &self.count()).finish_non_exhaustive()
    }
}

/// Drops a caught panic's payload; one whose own `Drop` panics is leaked instead (a payload is user code
/// too).
fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// A panic payload's message.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_caught_panic_is_counted_and_reported() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let catcher = Catcher::new(Some(Box::new(move |p: &UserPanic| log.lock().unwrap().push(p.clone()))));
        assert_eq!(catcher.call(PanicSite::Observer, None, || 7), Some(7));
        assert_eq!(
            catcher.call(PanicSite::Observer, Some(JobId::from_u64(3)), || panic!("boom")),
            None::<()>
        );
        assert_eq!(catcher.count(), 1);
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].message, "boom");
        assert_eq!(seen[0].to_string(), "observer panicked: boom (job #3)");
    }

    #[test]
    fn a_panicking_hook_is_swallowed() {
        let catcher = Catcher::new(Some(Box::new(|_: &UserPanic| panic!("hook"))));
        catcher.dispose(Bomb);
        assert_eq!(catcher.count(), 1);
    }

    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("drop");
        }
    }
}
