//! Opening a queue in PostgreSQL ([`QueueBuilder::connect`]), its error, and the push that joins the
//! caller's transaction ([`Queue::push_in`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use super::flavor::{Json, Local, Payloads, PgParts, PgQueue};
use super::{PgConfig, PgPushed};
use crate::panics::{Catcher, PanicHook};
use crate::{
    Backoff, BuildError, Clock, JobId, PushError, PushOptions, Pushed, Queue, QueueBuilder, StoreError,
};

/// Why [`QueueBuilder::connect`] could not open a PostgreSQL queue (feature `postgres`).
///
/// # Examples
///
/// ```
/// use leasequeue::{PostgresError, Queue};
/// let err = Queue::<String>::builder().capacity(10).connect("postgres://localhost/none", "emails").unwrap_err();
/// assert!(matches!(err, PostgresError::Build(e) if e.option() == "capacity"));
/// ```
#[derive(Error, Debug)]
#[non_exhaustive]
pub enum PostgresError {
    /// An option is invalid, or one the PostgreSQL store does not support (see the README's table).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The queue's name is empty.
    #[error("a PostgreSQL queue needs a name that is not empty")]
    Name,
    /// The server could not be reached, or refused the migrations.
    #[error("could not open the PostgreSQL queue: {0}")]
    Store(#[from] StoreError),
}

/// What a PostgreSQL queue takes from its builder (see `QueueBuilder::pg_settings`).
pub(crate) struct Settings {
    pub cfg: PgConfig,
    pub clock: Clock,
    pub backoff: Backoff,
    pub ttl: Option<Duration>,
    pub panic_hook: Option<PanicHook>,
    pub poll: Option<Duration>,
}

impl<T: Send + Sync + 'static> QueueBuilder<T> {
    /// A PostgreSQL queue that does not `LISTEN` (feature `postgres`; only
    /// [`connect`](QueueBuilder::connect) uses it): its consumers with nothing to lease look at the table
    /// every `interval` instead. For a transaction-pooling proxy (PgBouncer in transaction mode), which
    /// does not keep a listening session. By default consumers `LISTEN` for pushes and look again at least
    /// every 100 ms whatever they heard. An interval of zero is taken as 1 ms.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let queue: leasequeue::Queue<String> = leasequeue::Queue::builder()
    ///     .poll_only(Duration::from_millis(250))
    ///     .connect("postgres://app@pgbouncer:6432/app", "emails")
    ///     .unwrap();
    /// # let _ = queue;
    /// ```
    pub fn poll_only(mut self, interval: Duration) -> Self {
        self.pg_poll = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Keeps an acked job's row in the table for `duration` after its ack, as done (`state = 4`, with
    /// `done_at`), for an audit or a dashboard to read with SQL (feature `postgres`; only
    /// [`connect`](QueueBuilder::connect) uses it). A done job is no longer in the queue: no count, no
    /// listing and no lease sees it, and a stale holder's late ack is told [`LeaseLost::Gone`], as when the
    /// row is deleted. Leases delete the rows whose time is up, a thousand at most per lease. By default
    /// (and with zero) the ack deletes the row.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let queue: leasequeue::Queue<String> = leasequeue::Queue::builder()
    ///     .keep_acked_for(Duration::from_secs(24 * 3600))
    ///     .connect("postgres://app@db/app", "emails")
    ///     .unwrap();
    /// # let _ = queue;
    /// ```
    ///
    /// [`LeaseLost::Gone`]: crate::LeaseLost::Gone
    pub fn keep_acked_for(mut self, duration: Duration) -> Self {
        self.pg_keep_acked = duration;
        self
    }

    /// For the crate's own conformance suite, not a shared queue: [`build`](QueueBuilder::build) opens
    /// a queue of a fresh name in the PostgreSQL database at `url`, whose rows hold no payloads (the jobs
    /// stay in this process, so that any job type will do), and deletes it when the queue is dropped.
    /// Every semantic test thus runs on the store's SQL.
    #[doc(hidden)]
    pub fn postgres_conformance(mut self, url: impl Into<String>) -> Self {
        self.pg_conformance = Some(url.into());
        self
    }
}

/// [`QueueBuilder::postgres_conformance`]'s queue.
pub(crate) fn conformance<T: Send + Sync + 'static>(
    builder: QueueBuilder<T>,
    url: &str,
) -> Result<Queue<T>, BuildError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("conformance-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let settings = builder.pg_settings()?;
    let opened = parse(url).and_then(|config| open(settings, config, &name, Box::new(Local::new()), true));
    opened.map_err(|e| {
        BuildError::new("queue", "postgres_conformance", "could not open its queue")
            .caused_by(std::io::Error::other(e.to_string()))
    })
}

/// The connection settings in a URL (`postgres://user@host:port/db?...`) or a key=value string.
fn parse(url: &str) -> Result<::postgres::Config, StoreError> {
    url.parse::<::postgres::Config>().map_err(StoreError::new)
}

fn open<T: Send + Sync + 'static>(
    settings: Settings,
    config: ::postgres::Config,
    name: &str,
    payloads: Box<dyn Payloads<T>>,
    delete_on_drop: bool,
) -> Result<Queue<T>, StoreError> {
    let queue = PgQueue::new(PgParts {
        config,
        name: name.to_owned(),
        cfg: settings.cfg,
        clock: settings.clock,
        backoff: settings.backoff,
        ttl: settings.ttl,
        catcher: Catcher::new(settings.panic_hook),
        payloads,
        delete_on_drop,
        poll: settings.poll,
    })?;
    Ok(Queue::of_pg(queue))
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> QueueBuilder<T> {
    /// Opens the queue named `name` in the PostgreSQL database at `url` (feature `postgres`): the same
    /// [`Queue`], shared by every process, on any machine, that opens the same name in the same database.
    /// Creates the tables on first use (versioned migrations, applied once under an advisory lock).
    ///
    /// Jobs are stored as JSON (`serde_json`). Leases are fenced by a token in the row, so a stale
    /// worker's late outcome changes nothing, as in memory. Times are the database's clock, which every
    /// process shares; on a [`TestClock`](crate::TestClock) they are the test clock's. The options the
    /// store does not support yet (a capacity, a sink, an observer, alarms, rate limits) are refused;
    /// see the README's "Many processes: PostgreSQL" for what differs from the in-memory store.
    ///
    /// The `postgres` client is synchronous (it runs its own small runtime): call a PostgreSQL queue
    /// from plain threads, or from `tokio::task::spawn_blocking` inside an async program, never from an
    /// async task itself, where the client panics.
    ///
    /// # Errors
    ///
    /// An invalid or unsupported option, an empty name, or a server that cannot be reached or refuses
    /// the migrations. See [`PostgresError`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use leasequeue::Queue;
    ///
    /// let queue: Queue<String> =
    ///     Queue::builder().max_attempts(5).connect("postgres://postgres@127.0.0.1/test", "emails").unwrap();
    /// queue.push("send welcome email".to_string()).unwrap();
    /// // ... in any process that opens "emails" in the same database:
    /// let lease = queue.lease().unwrap();
    /// lease.ack().unwrap();
    /// ```
    pub fn connect(self, url: &str, name: &str) -> Result<Queue<T>, PostgresError> {
        let config = parse(url)?;
        self.connect_with(config, name)
    }

    /// [`connect`](QueueBuilder::connect) with the application's own connection settings (a
    /// `postgres::Config` built in code, with its password, its application name or its timeouts, say)
    /// instead of a URL. Every connection the queue makes, its `LISTEN` one included, is made from it.
    ///
    /// # Errors
    ///
    /// As [`connect`](QueueBuilder::connect)'s.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let mut config = postgres::Config::new();
    /// config.host("db.internal").user("app").password("secret").dbname("app").application_name("mailer");
    /// let queue: leasequeue::Queue<String> = leasequeue::Queue::builder().connect_with(config, "emails").unwrap();
    /// # let _ = queue;
    /// ```
    pub fn connect_with(self, config: ::postgres::Config, name: &str) -> Result<Queue<T>, PostgresError> {
        if name.is_empty() {
            return Err(PostgresError::Name);
        }
        let settings = self.pg_settings()?;
        Ok(open(settings, config, name, Box::new(Json::new()), false)?)
    }
}

impl<T: Serialize + Send + Sync + 'static> Queue<T> {
    /// Pushes a job inside the caller's transaction on the same database (feature `postgres`): the job
    /// exists exactly when the caller's own writes commit, and consumers hear of it then. A rolled-back
    /// transaction leaves no job.
    ///
    /// # Errors
    ///
    /// The queue is not a PostgreSQL queue, is closed, or the statement failed (then the transaction is
    /// aborted, as after any failed statement); the job comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use leasequeue::{PushOptions, Queue};
    ///
    /// let url = "postgres://postgres@127.0.0.1/test";
    /// let queue: Queue<String> = Queue::builder().connect(url, "emails").unwrap();
    /// let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    /// let mut tx = client.transaction().unwrap();
    /// tx.execute("UPDATE users SET welcomed = true WHERE id = 7", &[]).unwrap();
    /// queue.push_in(&mut tx, "welcome user 7".to_string(), PushOptions::new()).unwrap();
    /// tx.commit().unwrap(); // the job exists from here
    /// ```
    pub fn push_in(
        &self,
        tx: &mut ::postgres::Transaction<'_>,
        job: T,
        options: PushOptions,
    ) -> Result<Pushed, PushError<T>> {
        let Some(pg) = self.pg() else {
            let e = StoreError::new(std::io::Error::other("push_in is for queues opened with connect"));
            return Err(PushError::Store(job, e));
        };
        pg.push_in(tx, job, &options)
    }
}

impl<T: Send + Sync + 'static> PgQueue<T> {
    fn push_in(
        &self,
        tx: &mut ::postgres::Transaction<'_>,
        job: T,
        options: &PushOptions,
    ) -> Result<Pushed, PushError<T>> {
        if self.is_closed() {
            return Err(PushError::Closed(job));
        }
        let (payload, place) = match self.prepare(&job, options) {
            Ok(prepared) => prepared,
            Err(e) => return Err(PushError::Store(job, e)),
        };
        match self.store().push_in(tx, &payload, &place.with(options)) {
            Ok(PgPushed::Enqueued(id)) => {
                self.catcher.dispose_job(self.payloads().pushed(id, Arc::new(job)));
                Ok(Pushed::Enqueued(JobId::from_u64(id as u64)))
            }
            Ok(PgPushed::Duplicate(id)) => {
                self.catcher.dispose(job); // its `Drop` is user code
                Ok(Pushed::Duplicate(JobId::from_u64(id as u64)))
            }
            Err(e) => Err(PushError::Store(job, e)),
        }
    }
}
