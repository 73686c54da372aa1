//! The PostgreSQL flavor of [`Queue`]: the public operations over a [`PgStore`], with the payloads
//! encoded as JSON, the waits of blocking calls, and this process's counters.
//!
//! **Waiting.** A consumer with nothing to lease waits until something may have changed: a push by this
//! process or an advance of its test clock (both bump [`Signal`]), a push by any process (heard on the
//! LISTEN connection, which one waiting consumer at a time holds while the others wait on the signal),
//! or the next timed event in the table (a delayed job, a lapse). Every wait is capped at [`POLL`], the
//! fallback when a notification is missed (a lost listening connection, a transaction-pooling proxy).
//!
//! **Times.** The store works in nanoseconds on the database's clock (or the test clock's ticks);
//! [`Times::tick`] maps them onto the queue's clock through one reading of each (exactly, on a test
//! clock).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{
    span, Leased, PgConfig, PgDead, PgListener, PgNacked, PgNext, PgPlace, PgPushed, PgStore, MAX_SPAN,
};
use crate::clock::{address, ticks, Listener, Tick, NEVER};
use crate::core::Token;
use crate::lease::Lease;
use crate::panics::Catcher;
use crate::store::codes::{kind_code, kind_of, reason_of};
use crate::store::{Backlog, LeaseFail, LeaseParams, Payload, PushFail, Wait};
use crate::{
    Backoff, Clock, DeadLetter, Failure, FailureKind, JobId, JobInfo, JobState, LeaseLost, PanicSite,
    PushOptions, Pushed, Queue, Stats, StoreError, TryPushError,
};

/// The longest a blocked call waits before it looks at the table again, whatever it heard.
const POLL: Duration = Duration::from_millis(100);

/// How long [`PgQueue::activity`] waits for a change after finding the queue busy.
const BUSY_LOOK: Duration = Duration::from_millis(10);

/// How a queue's jobs become rows and back.
pub(crate) trait Payloads<T>: Send + Sync {
    /// The job as the row keeps it. Runs the job's `Serialize` (user code): called outside every lock,
    /// through the catcher.
    fn encode(&self, job: &T) -> Result<Value, String>;
    /// The job went in as row `id`; handed back unless this process keeps it (for the caller to let
    /// go of: its `Drop` is user code).
    fn pushed(&self, id: i64, job: Arc<T>) -> Option<Arc<T>>;
    /// Every job this process keeps, taken out (the queue is being dropped).
    fn take_all(&self) -> Vec<Arc<T>> {
        Vec::new()
    }
    /// The job of row `id`. Runs the job's `Deserialize` (user code), through the catcher.
    fn decode(&self, id: i64, payload: &Value) -> Result<Arc<T>, String>;
    /// Row `id` left the table: its job, if this process kept it, for the caller to let go of (its
    /// `Drop` is user code).
    fn gone(&self, id: i64) -> Option<Arc<T>>;
}

/// Jobs as JSON (`serde_json`): what every process sharing the queue reads.
pub(crate) struct Json<T>(PhantomData<fn(T) -> T>);

impl<T> Json<T> {
    pub(crate) fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync> Payloads<T> for Json<T> {
    fn encode(&self, job: &T) -> Result<Value, String> {
        serde_json::to_value(job).map_err(|e| e.to_string())
    }

    fn pushed(&self, _: i64, job: Arc<T>) -> Option<Arc<T>> {
        Some(job)
    }

    fn decode(&self, _: i64, payload: &Value) -> Result<Arc<T>, String> {
        T::deserialize(payload).map(Arc::new).map_err(|e| e.to_string())
    }

    fn gone(&self, _: i64) -> Option<Arc<T>> {
        None
    }
}

/// Jobs kept in this process, the rows holding `null`: for the conformance suite, which runs every
/// semantic test, whatever its job type, on the store's SQL (see `QueueBuilder::postgres_conformance`).
/// A job is kept from just after its row's insert commits (its id known only then).
pub(crate) struct Local<T>(Mutex<HashMap<i64, Arc<T>>>);

impl<T> Local<T> {
    pub(crate) fn new() -> Self {
        Local(Mutex::new(HashMap::new()))
    }
}

impl<T: Send + Sync> Payloads<T> for Local<T> {
    fn encode(&self, _: &T) -> Result<Value, String> {
        Ok(Value::Null)
    }

    fn pushed(&self, id: i64, job: Arc<T>) -> Option<Arc<T>> {
        self.0.lock().insert(id, job)
    }

    fn take_all(&self) -> Vec<Arc<T>> {
        self.0.lock().drain().map(|(_, job)| job).collect()
    }

    fn decode(&self, id: i64, _: &Value) -> Result<Arc<T>, String> {
        // The pusher keeps its job once the row's insert has committed: a worker may lease the row just
        // before. Wait for it (only this process pushes to a conformance queue).
        for _ in 0..1_000_000 {
            if let Some(job) = self.0.lock().get(&id) {
                return Ok(Arc::clone(job));
            }
            std::thread::yield_now();
        }
        Err(format!("job {id} is not in this process"))
    }

    fn gone(&self, id: i64) -> Option<Arc<T>> {
        self.0.lock().remove(&id)
    }
}

/// A generation counter that waiters watch: bumped by whatever may have made a job ready.
#[derive(Default)]
struct Signal {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Signal {
    fn current(&self) -> u64 {
        *self.generation.lock()
    }

    fn bump(&self) {
        *self.generation.lock() += 1;
        self.changed.notify_all();
    }

    /// Waits until bumped past `seen`, or `timeout` passes (real time).
    fn wait(&self, seen: u64, timeout: Duration) {
        let mut generation = self.generation.lock();
        if *generation == seen {
            self.changed.wait_for(&mut generation, timeout);
        }
    }
}

/// This process's counters (the database keeps the jobs, not their history: see [`Stats`]).
#[derive(Default)]
struct Counters {
    pushed: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    released: AtomicU64,
    rejected: AtomicU64,
    dead_lettered: AtomicU64,
    deduplicated: AtomicU64,
    purged: AtomicU64,
    consumers_waiting: AtomicUsize,
}

/// A reading of the database's time and of the queue's clock at about the same moment.
#[derive(Clone, Copy)]
struct Times {
    at: i64,
    tick: Tick,
}

impl Times {
    /// The tick of time `at` on the database's clock (`at` itself on a test clock).
    fn tick(self, at: i64) -> Tick {
        let delta = at.saturating_sub(self.at);
        let nanos = delta.unsigned_abs();
        if delta >= 0 {
            self.tick.saturating_add(nanos).min(NEVER - 1)
        } else {
            self.tick.saturating_sub(nanos)
        }
    }
}

/// Where a push puts its job, in the store's units (see [`PgPlace`]).
pub(crate) struct Place {
    pub delay: i64,
    pub priority: i16,
    pub group: Option<Arc<str>>,
    pub ttl: Option<i64>,
}

impl Place {
    /// As the store takes it, with the push's dedup key.
    pub(crate) fn with<'a>(&'a self, options: &'a PushOptions) -> PgPlace<'a> {
        PgPlace {
            delay: self.delay,
            priority: self.priority,
            group: self.group.as_deref(),
            dedup: options.dedup().map(|key| &**key),
            ttl: self.ttl,
        }
    }
}

/// A queue in a PostgreSQL database, as [`Queue`] sees it.
pub(crate) struct PgQueue<T> {
    store: PgStore,
    payloads: Box<dyn Payloads<T>>,
    pub(crate) clock: Clock,
    pub(crate) backoff: Backoff,
    pub(crate) catcher: Catcher,
    /// The queue-wide time to live.
    ttl: Option<Duration>,
    /// Dead letters taken out for a redrive, as their rows were, until moved or put back.
    taken: Mutex<HashMap<i64, PgDead>>,
    closed: AtomicBool,
    counters: Counters,
    signal: Signal,
    /// The LISTEN connection, connected by the first consumer that waits; `None` again once lost.
    listener: Mutex<Option<PgListener>>,
    watchers: Mutex<Vec<Weak<dyn Backlog>>>,
    /// Ready jobs as of the last look: a hint for a pool's scaling and batch sizes.
    ready_hint: AtomicUsize,
    /// The conformance suite's queues delete themselves when dropped.
    delete_on_drop: bool,
    /// Poll-only: no LISTEN, a look at the table this often (see `QueueBuilder::poll_only`).
    poll: Option<Duration>,
    /// The queue's periodic jobs, in this process (see [`crate::Schedule`]).
    pub(crate) schedules: crate::schedule::Schedules<T>,
}

/// What [`PgQueue::new`] is built from.
pub(crate) struct PgParts<T> {
    pub config: ::postgres::Config,
    pub name: String,
    pub cfg: PgConfig,
    pub clock: Clock,
    pub backoff: Backoff,
    pub ttl: Option<Duration>,
    pub catcher: Catcher,
    pub payloads: Box<dyn Payloads<T>>,
    pub delete_on_drop: bool,
    pub poll: Option<Duration>,
}

impl<T: Send + Sync + 'static> PgQueue<T> {
    /// Connects (applying the migrations the database lacks) and registers with a test clock.
    pub(crate) fn new(parts: PgParts<T>) -> Result<Arc<PgQueue<T>>, StoreError> {
        let store = PgStore::connect(&parts.config, &parts.name, parts.cfg, parts.clock.clone())?;
        let queue = Arc::new(PgQueue {
            schedules: crate::schedule::Schedules::new(),
            store,
            payloads: parts.payloads,
            clock: parts.clock,
            backoff: parts.backoff,
            catcher: parts.catcher,
            ttl: parts.ttl,
            taken: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            signal: Signal::default(),
            listener: Mutex::new(None),
            watchers: Mutex::new(Vec::new()),
            ready_hint: AtomicUsize::new(0),
            delete_on_drop: parts.delete_on_drop,
            poll: parts.poll,
        });
        if queue.clock.is_manual() {
            let weak: Weak<PgQueue<T>> = Arc::downgrade(&queue);
            queue.clock.register(weak);
        }
        Ok(queue)
    }

    /// The mapping of the database's times onto the clock's, from the database's time now (as a
    /// statement returned it). On a test clock the database's times are the clock's ticks: exact, and
    /// the same however far the clock has moved since.
    fn times(&self, at: i64) -> Times {
        match self.clock.is_manual() {
            true => Times { at: 0, tick: 0 },
            false => Times { at, tick: self.clock.tick() },
        }
    }

    fn instant(&self, times: Times, at: i64) -> Instant {
        self.clock.instant(times.tick(at))
    }

    // ----- push -----

    pub(crate) fn push(&self, job: T, options: &PushOptions, wait: Wait) -> Result<Pushed, (T, PushFail)> {
        self.push_shared(job, options, wait)
    }

    pub(crate) fn push_shared<J: Payload<T>>(
        &self,
        job: J,
        options: &PushOptions,
        _wait: Wait, // never full: a PostgreSQL queue is unbounded
    ) -> Result<Pushed, (J, PushFail)> {
        if self.closed.load(Relaxed) {
            return Err((job, PushFail::Closed));
        }
        let (payload, place) = match self.prepare(job.borrow(), options) {
            Ok(prepared) => prepared,
            Err(e) => return Err((job, PushFail::Store(e))),
        };
        match self.store.push(&payload, &place.with(options)) {
            Ok(PgPushed::Enqueued(id)) => {
                self.catcher.dispose_job(self.payloads.pushed(id, job.into()));
                self.counters.pushed.fetch_add(1, Relaxed);
                self.pushed(1);
                Ok(Pushed::Enqueued(job_id(id)))
            }
            Ok(PgPushed::Duplicate(id)) => {
                self.counters.deduplicated.fetch_add(1, Relaxed);
                let job: Arc<T> = job.into();
                self.catcher.dispose_job(Some(job));
                Ok(Pushed::Duplicate(job_id(id)))
            }
            Err(e) => Err((job, PushFail::Store(e))),
        }
    }

    /// The job as its row keeps it, and where it goes.
    pub(crate) fn prepare(&self, job: &T, options: &PushOptions) -> Result<(Value, Place), StoreError> {
        let payload = self.encode(job)?;
        let now = self.clock.tick();
        let place = options.placement(now, &self.clock, self.ttl);
        let after = |at: Tick| i64::try_from(at.saturating_sub(now)).unwrap_or(MAX_SPAN).min(MAX_SPAN);
        let place = Place {
            delay: after(place.ready_at),
            priority: i16::from(place.priority),
            ttl: (place.expires_at != NEVER).then(|| after(place.expires_at)),
            group: place.group,
        };
        Ok((payload, place))
    }

    pub(crate) fn store(&self) -> &PgStore {
        &self.store
    }

    pub(crate) fn payloads(&self) -> &dyn Payloads<T> {
        &*self.payloads
    }

    /// The job as its row keeps it: its `Serialize` runs through the catcher.
    fn encode(&self, job: &T) -> Result<Value, StoreError> {
        match self.catcher.call(PanicSite::PayloadSerialize, None, || self.payloads.encode(job)) {
            Some(Ok(payload)) => Ok(payload),
            Some(Err(e)) => {
                Err(StoreError::new(std::io::Error::other(format!("the job does not serialize: {e}"))))
            }
            None => Err(StoreError::new(std::io::Error::other("the job's Serialize panicked"))),
        }
    }

    /// Tells this process's waiting consumers and backlog watchers of a push.
    fn pushed(&self, jobs: usize) {
        self.ready_hint.fetch_add(jobs, Relaxed);
        self.signal.bump();
        let watchers: Vec<_> = self.watchers.lock().iter().filter_map(Weak::upgrade).collect();
        for watcher in watchers {
            watcher.on_push();
        }
    }

    pub(crate) fn push_many(&self, jobs: impl IntoIterator<Item = T>) -> Vec<Result<JobId, TryPushError<T>>> {
        let jobs: Vec<T> = jobs.into_iter().collect();
        if self.closed.load(Relaxed) {
            return jobs.into_iter().map(|job| Err(TryPushError::Closed(job))).collect();
        }
        let encoded: Vec<Result<Value, StoreError>> = jobs.iter().map(|job| self.encode(job)).collect();
        if encoded.iter().all(Result::is_ok) {
            let payloads: Vec<Value> = encoded.into_iter().flatten().collect();
            return match self.store.push_batch(&payloads, self.ttl.map(span)) {
                Ok(ids) => {
                    self.counters.pushed.fetch_add(ids.len() as u64, Relaxed);
                    let results = ids
                        .iter()
                        .zip(jobs)
                        .map(|(&id, job)| {
                            self.catcher.dispose_job(self.payloads.pushed(id, Arc::new(job)));
                            Ok(job_id(id))
                        })
                        .collect();
                    self.pushed(ids.len());
                    results
                }
                Err(e) => jobs.into_iter().map(|job| Err(TryPushError::Store(job, e.clone()))).collect(),
            };
        }
        // A job that does not serialize fails alone; the others go in one by one.
        jobs.into_iter()
            .zip(encoded)
            .map(|(job, encoded)| match encoded {
                Err(e) => Err(TryPushError::Store(job, e)),
                Ok(_) => match self.push_shared(job, &PushOptions::new(), Wait::No) {
                    Ok(pushed) => Ok(pushed.id()),
                    Err((job, PushFail::Closed)) => Err(TryPushError::Closed(job)),
                    Err((job, PushFail::Store(e))) => Err(TryPushError::Store(job, e)),
                    Err((job, PushFail::Rejected | PushFail::NoRoom)) => Err(TryPushError::Full(job)),
                },
            })
            .collect()
    }

    // ----- lease -----

    pub(crate) fn lease(self: &Arc<Self>, handle: &Queue<T>, wait: Wait) -> Result<Lease<T>, LeaseFail> {
        let mut lease = None;
        self.lease_into(handle, LeaseParams { wait, visibility: None, stop: None }, 1, &mut |l| {
            lease = Some(l)
        })?;
        lease.ok_or(LeaseFail::NoJob)
    }

    /// Leases up to `max` jobs (at least one), waiting as `params` say for the first, and hands each to
    /// `take`.
    pub(crate) fn lease_into(
        self: &Arc<Self>,
        handle: &Queue<T>,
        params: LeaseParams<'_>,
        max: usize,
        take: &mut dyn FnMut(Lease<T>),
    ) -> Result<(), LeaseFail> {
        let visibility = params.visibility.map(|v| i64::try_from(v).unwrap_or(MAX_SPAN).min(MAX_SPAN));
        let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        loop {
            let seen = self.signal.current();
            if params.stop.is_some_and(|stop| stop.load(std::sync::atomic::Ordering::Acquire)) {
                return Err(LeaseFail::Stopped);
            }
            let leased = self.store.lease(max, visibility).map_err(LeaseFail::Store)?;
            let got = leased.len();
            // An estimate: pushes add to it, leases take from it, a lease that found fewer jobs than it
            // asked for knows that none is left.
            if (got as i64) < max {
                self.ready_hint.store(0, Relaxed);
            } else {
                let _ = self.ready_hint.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(got)));
            }
            if got > 0 {
                let visibility = params.visibility.unwrap_or(self.visibility());
                let deadline = self.clock.tick().saturating_add(visibility);
                let mut handed = 0;
                for row in leased {
                    if let Some(lease) = self.lease_of(handle, row, deadline) {
                        take(lease);
                        handed += 1;
                    }
                }
                if handed > 0 {
                    return Ok(());
                }
                continue; // every one was undecodable, and is dead-lettered now
            }
            if self.closed.load(Relaxed) && self.live().map_err(LeaseFail::Store)? == 0 {
                return Err(LeaseFail::Closed);
            }
            match params.wait {
                Wait::No => return Err(LeaseFail::NoJob),
                Wait::Until(until) if self.clock.tick() >= until => return Err(LeaseFail::NoJob),
                Wait::Until(until) => {
                    self.counters.consumers_waiting.fetch_add(1, Relaxed);
                    let waited = self.wait(seen, until);
                    self.counters.consumers_waiting.fetch_sub(1, Relaxed);
                    waited.map_err(LeaseFail::Store)?;
                }
            }
        }
    }

    /// A lease of a row just leased; `None` (the row dead-lettered as undecodable) if its payload does
    /// not deserialize.
    fn lease_of(&self, handle: &Queue<T>, row: Leased, deadline: Tick) -> Option<Lease<T>> {
        let decoded = self.catcher.call(PanicSite::PayloadDeserialize, Some(job_id(row.id)), || {
            self.payloads.decode(row.id, &row.payload)
        });
        match decoded {
            Some(Ok(job)) => {
                let token = token_of(row.id, row.token);
                Some(Lease::new(
                    handle.share(),
                    job,
                    token,
                    u32::try_from(row.attempt).unwrap_or(0),
                    deadline,
                ))
            }
            _ => {
                // Kept as stored; a failure to record it leaves the lease to lapse and be tried again.
                if self.store.bury_undecodable(row.id, row.token).is_ok() {
                    self.counters.dead_lettered.fetch_add(1, Relaxed);
                }
                None
            }
        }
    }

    /// Waits until something may have made a job ready, or `until`.
    fn wait(&self, seen: u64, until: Tick) -> Result<(), StoreError> {
        let next = self.store.next_event()?;
        let times = self.times(next.now);
        let wake_at = until.min(next.at.map_or(NEVER, |at| times.tick(at)));
        let now = times.tick(next.now);
        if let Some(test) = self.clock.test_clock() {
            if self.clock.auto_advances() && !next.busy {
                // As the memory store does (see `crate::wait`): if every other queue on the clock is quiet
                // too, nothing can happen before the earliest of their next events and `wake_at`: jump
                // there. If one is busy, wait: it nudges this queue when it goes quiet.
                if let Some(others) = self.clock.others_quiet_until(address(self)) {
                    let at = wake_at.min(others);
                    if at != NEVER {
                        if at <= now {
                            test.advance(Duration::ZERO);
                        } else {
                            test.advance_to(self.clock.instant(at));
                        }
                        return Ok(());
                    }
                }
            }
            // A test clock's advance, and another queue's nudge, bump the signal.
            self.signal.wait(seen, POLL);
            return Ok(());
        }
        let timeout = Duration::from_nanos(wake_at.saturating_sub(now)).min(self.poll.unwrap_or(POLL));
        if self.poll.is_some() {
            self.signal.wait(seen, timeout); // poll-only: no LISTEN
            return Ok(());
        }
        let Some(mut listener) = self.listener.try_lock() else {
            self.signal.wait(seen, timeout); // another consumer listens, and bumps the signal
            return Ok(());
        };
        if listener.is_none() {
            *listener = PgListener::connect(self.store.config(), self.store.name()).ok();
        }
        let Some(connection) = listener.as_mut() else {
            drop(listener);
            self.signal.wait(seen, timeout); // polling, until a listener connects again
            return Ok(());
        };
        match connection.wait(timeout) {
            Ok(true) => self.signal.bump(),
            Ok(false) => {}
            Err(_) => *listener = None, // lost: polling until the next wait connects again
        }
        Ok(())
    }

    fn visibility(&self) -> Tick {
        self.store.cfg().visibility as Tick
    }

    pub(crate) fn visibility_ticks(&self) -> Tick {
        self.visibility()
    }

    // ----- outcomes, fenced by the lease token -----

    pub(crate) fn ack(&self, token: Token, synced: bool) -> Result<(), LeaseLost> {
        let (id, lease) = parts_of(token);
        self.store.ack(id, lease, synced)?;
        self.acked(id);
        Ok(())
    }

    /// An ack that does not wait for the WAL flush, and an extension of `next` by `by`, in one round trip
    /// (see `Queue::ack_extend_unsynced`).
    pub(crate) fn ack_extend(
        &self,
        token: Token,
        next: Token,
        by: Duration,
    ) -> (Result<(), LeaseLost>, Result<Tick, LeaseLost>) {
        let (acked, extended) = self.store.ack_extend(parts_of(token), parts_of(next), span(by));
        if acked.is_ok() {
            self.acked(parts_of(token).0);
        }
        (acked, extended.map(|_| self.clock.tick().saturating_add(ticks(by))))
    }

    fn acked(&self, id: i64) {
        self.catcher.dispose_job(self.payloads.gone(id));
        self.counters.acked.fetch_add(1, Relaxed);
        self.settled();
    }

    pub(crate) fn nack(
        &self,
        token: Token,
        delay: Duration,
        kind: FailureKind,
        message: Option<String>,
    ) -> Result<Option<Tick>, LeaseLost> {
        let (id, lease) = parts_of(token);
        let nacked =
            self.store.nack(id, lease, span(delay), i16::from(kind_code(kind)), message.as_deref())?;
        self.counters.nacked.fetch_add(1, Relaxed);
        self.settled();
        Ok(match nacked {
            PgNacked::Retry { .. } => {
                self.signal.bump(); // a retry due at once
                Some(self.clock.tick().saturating_add(ticks(delay)))
            }
            PgNacked::Dead => {
                self.counters.dead_lettered.fetch_add(1, Relaxed);
                None
            }
        })
    }

    pub(crate) fn reject(&self, token: Token, message: Option<String>) -> Result<(), LeaseLost> {
        let (id, lease) = parts_of(token);
        self.store.reject(id, lease, message.as_deref())?;
        self.counters.rejected.fetch_add(1, Relaxed);
        self.counters.dead_lettered.fetch_add(1, Relaxed);
        self.settled();
        Ok(())
    }

    pub(crate) fn release(&self, token: Token, delay: Duration) -> Result<(), LeaseLost> {
        let (id, lease) = parts_of(token);
        if self.store.release(id, lease, span(delay))? {
            self.counters.dead_lettered.fetch_add(1, Relaxed);
        }
        self.counters.released.fetch_add(1, Relaxed);
        self.signal.bump();
        self.settled();
        Ok(())
    }

    pub(crate) fn revoke(&self, token: Token) -> Result<(), LeaseLost> {
        let (id, lease) = parts_of(token);
        if self.store.revoke(id, lease)? {
            self.counters.dead_lettered.fetch_add(1, Relaxed);
        }
        self.counters.released.fetch_add(1, Relaxed);
        self.signal.bump();
        self.settled();
        Ok(())
    }

    pub(crate) fn extend(&self, token: Token, by: Duration) -> Result<Tick, LeaseLost> {
        let (id, lease) = parts_of(token);
        self.store.extend(id, lease, span(by))?;
        Ok(self.clock.tick().saturating_add(ticks(by)))
    }

    // ----- lifecycle and inspection -----

    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        self.signal.bump();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// Pauses or resumes leasing for every process sharing the queue. The public calls that return no
    /// `Result` (this one, `purge`, `len`, `stats`, `dead_letters`, ...) cannot report a database that
    /// cannot be reached: they do nothing, or report nothing (the README's table says so).
    pub(crate) fn set_paused(&self, paused: bool) {
        let _ = self.store.set_paused(paused);
        self.signal.bump();
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.store.is_paused().unwrap_or(false)
    }

    pub(crate) fn purge(&self) -> usize {
        let ids = self.store.purge().unwrap_or_default();
        for &id in &ids {
            self.catcher.dispose_job(self.payloads.gone(id));
        }
        self.counters.purged.fetch_add(ids.len() as u64, Relaxed);
        ids.len()
    }

    fn live(&self) -> Result<usize, StoreError> {
        let counts = self.store.counts()?;
        Ok(to_usize(counts.ready + counts.delayed + counts.waiting + counts.leased))
    }

    pub(crate) fn len(&self) -> usize {
        self.live().unwrap_or(0)
    }

    pub(crate) fn stats(&self) -> Stats {
        let counts = self.store.counts().unwrap_or_default();
        self.ready_hint.store(to_usize(counts.ready), Relaxed);
        let c = &self.counters;
        let seen = &self.store.seen;
        let lapsed = seen.lapsed.load(Relaxed);
        let times = self.times(counts.now);
        Stats {
            ready: to_usize(counts.ready),
            delayed: to_usize(counts.delayed + counts.waiting),
            waiting: to_usize(counts.waiting),
            leased: to_usize(counts.leased),
            dead: to_usize(counts.dead),
            pushed: c.pushed.load(Relaxed),
            acked: c.acked.load(Relaxed),
            nacked: c.nacked.load(Relaxed),
            released: c.released.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            lapsed,
            #[allow(deprecated)]
            expired: lapsed,
            dead_lettered: c.dead_lettered.load(Relaxed) + seen.dead.load(Relaxed),
            deduplicated: c.deduplicated.load(Relaxed),
            purged: c.purged.load(Relaxed),
            oldest_ready_age: counts
                .oldest_ready
                .map(|at| Duration::from_nanos(times.tick(counts.now).saturating_sub(times.tick(at)))),
            consumers_waiting: c.consumers_waiting.load(Relaxed),
            producers_waiting: 0,
            panics: self.catcher.count(),
            limited: 0,
            syncs: 0,
            torn_bytes: 0,
        }
    }

    pub(crate) fn ready_hint(&self) -> usize {
        self.ready_hint.load(Relaxed)
    }

    pub(crate) fn watch_backlog(&self, watcher: Weak<dyn Backlog>) {
        let mut watchers = self.watchers.lock();
        watchers.retain(|w| w.strong_count() > 0);
        watchers.push(watcher);
    }

    pub(crate) fn interrupt(&self) {
        self.signal.bump();
    }

    /// Whether a job is ready or leased, and the tick of the next timed event ([`NEVER`] if none).
    ///
    /// A look costs a round trip to the server: when the queue is busy the call waits for a change (a
    /// push, an outcome, an advance of a test clock) up to [`BUSY_LOOK`] first, so that a caller looping
    /// on it (a pool's `run_until_idle`) does not keep the server busy.
    pub(crate) fn activity(&self) -> (bool, Tick) {
        let seen = self.signal.current();
        // The busy look is cheap; the next event is looked up only for an idle queue (a busy one's is
        // not needed: its caller looks again).
        match self.store.busy() {
            Ok(false) => {}
            Ok(true) | Err(_) => {
                self.signal.wait(seen, BUSY_LOOK);
                return (true, NEVER); // a store that cannot be reached is not idle either
            }
        }
        match self.store.next_event() {
            Ok(next) => (next.busy, next.at.map_or(NEVER, |at| self.times(next.now).tick(at))),
            Err(_) => (true, NEVER),
        }
    }
    /// Tells the other queues on an auto-advancing test clock that this one may have gone quiet.
    fn settled(&self) {
        if self.clock.auto_advances() {
            self.clock.nudge_others(address(self));
        }
    }

    fn next_event_tick(&self) -> Tick {
        match self.store.next_event() {
            Ok(PgNext { at: Some(at), now, .. }) => self.times(now).tick(at),
            _ => NEVER,
        }
    }

    pub(crate) fn next_event(&self) -> Option<Instant> {
        let next = self.next_event_tick();
        (next != NEVER).then(|| self.clock.instant(next))
    }

    pub(crate) fn jobs(&self) -> Vec<JobInfo> {
        let Ok((rows, now)) = self.store.jobs() else { return Vec::new() };
        let times = self.times(now);
        rows.into_iter()
            .map(|job| {
                let (state, next) = if job.leased {
                    (JobState::Leased, job.leased_until)
                } else if job.blocked {
                    (JobState::Waiting, None)
                } else if job.run_at > now {
                    (JobState::Delayed, Some(job.run_at))
                } else {
                    (JobState::Ready, None)
                };
                JobInfo {
                    id: job_id(job.id),
                    state,
                    attempt: u32::try_from(job.attempt).unwrap_or(0),
                    priority: u8::try_from(job.priority).unwrap_or(0),
                    pushed_at: self.instant(times, job.pushed_at),
                    next: next.map(|at| self.instant(times, at)),
                }
            })
            .collect()
    }

    // ----- dead letters -----

    /// The first `limit` dead letters, oldest first.
    pub(crate) fn dead_letters(&self, limit: usize) -> Vec<DeadLetter<T>> {
        let Ok((rows, now)) = self.store.dead_letters() else { return Vec::new() };
        let times = self.times(now);
        rows.iter().filter_map(|row| self.letter_of(row, times)).take(limit).collect()
    }

    pub(crate) fn drain_dead_letters(&self) -> Vec<DeadLetter<T>> {
        let Ok((rows, now)) = self.store.drain_dead() else { return Vec::new() };
        let times = self.times(now);
        let letters = rows.iter().filter_map(|row| self.letter_of(row, times)).collect();
        for row in &rows {
            self.catcher.dispose_job(self.payloads.gone(row.id));
        }
        letters
    }

    pub(crate) fn take_dead_letter(&self, id: JobId) -> Option<DeadLetter<T>> {
        let id = i64::try_from(id.as_u64()).ok()?;
        let (row, now) = self.store.take_dead(id).ok()??;
        let letter = self.letter_of(&row, self.times(now));
        if letter.is_none() {
            let _ = self.store.restore_dead(&row); // undecodable: left as it was
        } else {
            self.catcher.dispose_job(self.payloads.gone(id));
            self.taken.lock().insert(id, row); // until it is moved, or put back
        }
        letter
    }

    /// Puts back a dead letter taken with [`take_dead_letter`](PgQueue::take_dead_letter) whose redrive
    /// failed: its row as it was.
    pub(crate) fn restore_dead_letter(&self, dead: DeadLetter<T>) {
        let Ok(id) = i64::try_from(dead.id.as_u64()) else { return };
        let Some(row) = self.taken.lock().remove(&id) else { return };
        if self.store.restore_dead(&row).is_ok() {
            self.catcher.dispose_job(self.payloads.pushed(id, dead.job));
        }
    }

    /// A dead letter taken with [`take_dead_letter`](PgQueue::take_dead_letter) was redriven.
    pub(crate) fn dead_letter_moved(&self, id: JobId) {
        if let Ok(id) = i64::try_from(id.as_u64()) {
            self.taken.lock().remove(&id);
        }
    }

    /// A dead letter of a row; `None` if its payload does not deserialize (it stays in the table).
    fn letter_of(&self, row: &PgDead, times: Times) -> Option<DeadLetter<T>> {
        let job = self
            .catcher
            .call(PanicSite::PayloadDeserialize, Some(job_id(row.id)), || {
                self.payloads.decode(row.id, &row.payload)
            })?
            .ok()?;
        let history = row
            .history
            .as_array()
            .map(|failures| {
                failures.iter().filter_map(|f| failure_of(f, |at| self.instant(times, at))).collect()
            })
            .unwrap_or_default();
        Some(DeadLetter {
            job,
            id: job_id(row.id),
            reason: reason_of(u8::try_from(row.reason).ok()?)?,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            history,
            pushed_at: self.instant(times, row.pushed_at),
            dead_lettered_at: self.instant(times, row.dead_at),
        })
    }
}

/// A failure as a row's history keeps it.
fn failure_of(value: &Value, instant: impl Fn(i64) -> Instant) -> Option<Failure> {
    Some(Failure {
        attempt: u32::try_from(value.get("attempt")?.as_u64()?).ok()?,
        at: instant(value.get("at")?.as_i64()?),
        kind: kind_of(u8::try_from(value.get("kind")?.as_u64()?).ok()?)?,
        message: value.get("message").and_then(Value::as_str).map(str::to_owned),
    })
}

impl<T> Listener for PgQueue<T>
where
    T: Send + Sync + 'static,
{
    fn on_advance(&self) {
        self.signal.bump();
    }

    fn quiet_until(&self) -> Option<Tick> {
        // Asked only on an auto-advancing test clock, by a consumer about to jump it.
        match self.store.next_event() {
            Ok(next) if !next.busy => Some(next.at.map_or(NEVER, |at| self.times(next.now).tick(at))),
            _ => None,
        }
    }

    fn nudge(&self) {
        self.signal.bump();
    }
}

impl<T> PgQueue<T> {
    pub(crate) fn fmt_fields<'a, 'b>(&self, mut f: fmt::DebugStruct<'a, 'b>) -> fmt::DebugStruct<'a, 'b> {
        f.field("store", &"postgres").field("name", &self.store.name());
        match self.store.counts() {
            Ok(counts) => f
                .field("ready", &counts.ready)
                .field("delayed", &(counts.delayed + counts.waiting))
                .field("leased", &counts.leased)
                .field("dead", &counts.dead),
            Err(_) => f.field("counts", &"unavailable"),
        };
        f.field("closed", &self.closed.load(Relaxed));
        f
    }
}

impl<T> Drop for PgQueue<T> {
    fn drop(&mut self) {
        if self.delete_on_drop {
            let _ = self.store.delete_queue();
        }
        for job in self.payloads.take_all() {
            self.catcher.dispose_job(Some(job));
        }
    }
}

fn job_id(id: i64) -> JobId {
    JobId::from_u64(id as u64)
}

/// A lease's token: the row's id, and its lease token split across the token's two words.
fn token_of(id: i64, lease: i64) -> Token {
    Token { slot: (lease as u64 >> 32) as u32, epoch: lease as u32, id: id as u64 }
}

fn parts_of(token: Token) -> (i64, i64) {
    (token.id as i64, ((u64::from(token.slot) << 32) | u64::from(token.epoch)) as i64)
}

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}
