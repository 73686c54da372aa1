//! The dashboard (feature `dashboard`): see and steer queues from a browser.
//!
//! A [`Dashboard`] is a request handler over named queues of any job type (`T: Debug`): pages with each
//! queue's counts, a chart of its depth and throughput, its live jobs and its dead letters, actions
//! (redrive, purge, pause, resume), and `/metrics` in the Prometheus text format. Mount it in your own
//! server with [`Dashboard::handle`], or start its own with [`Dashboard::serve`] (`tiny_http`, one
//! thread). A thread of its own samples the queues for the charts.
//!
//! Security: [`serve`](Dashboard::serve) binds to loopback unless told otherwise
//! ([`DashboardBuilder::allow_remote`]); actions are POSTs that carry the dashboard's CSRF token (a
//! random value per dashboard, in every action form); an optional bearer token
//! ([`DashboardBuilder::token`]) guards every page; a read-only mode shows no actions and refuses them;
//! every text from a queue is escaped; the pages run no script. A request the dashboard cannot read gets
//! a 400, never a panic.

mod board;
mod http;
mod metrics;
mod page;

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use rand::Rng;

use self::board::{Board, History};
use self::http::{decode, parse_pairs, same_secret};
pub use self::http::{DashboardRequest, DashboardResponse};
use self::page::{Frame, Summary};
use crate::{BuildError, JobId, Queue};

/// The cookie a browser keeps the bearer token in, once it has given it as `?token=`.
const TOKEN_COOKIE: &str = "leasequeue_token";

/// The largest request body the dashboard reads (its forms are a few dozen bytes).
const MAX_BODY: usize = 16 * 1024;

/// A dashboard over named queues: a request handler ([`handle`](Dashboard::handle)) and, if you want it,
/// its own HTTP server ([`serve`](Dashboard::serve)). Clones share everything; the sampling thread ends
/// when the last clone is dropped.
///
/// # Examples
///
/// ```
/// use leasequeue::{Dashboard, Queue};
///
/// let emails: Queue<String> = Queue::new();
/// let dashboard = Dashboard::builder().queue("emails", &emails).build().unwrap();
/// let server = dashboard.serve("127.0.0.1:0").unwrap(); // port 0: any free port
/// println!("dashboard at http://{}", server.addr());
/// # drop(server);
/// ```
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    /// The queues, in the order they were added.
    queues: Vec<Named>,
    by_name: HashMap<String, usize>,
    read_only: bool,
    token: Option<String>,
    csrf: String,
    allow_remote: bool,
    refresh: Duration,
    sample_every: Duration,
    /// Dropped with the dashboard: the sampling thread sees the channel close and ends.
    _stop_sampling: Sender<()>,
}

struct Named {
    name: String,
    board: Arc<dyn Board>,
    history: Mutex<History>,
}

/// Configures a [`Dashboard`].
///
/// | option | default |
/// |---|---|
/// | [`queue`](DashboardBuilder::queue) | none (add each queue with its name) |
/// | [`token`](DashboardBuilder::token) | none: no bearer token asked |
/// | [`read_only`](DashboardBuilder::read_only) | `false`: actions shown |
/// | [`allow_remote`](DashboardBuilder::allow_remote) | `false`: `serve` binds to loopback only |
/// | [`refresh_every`](DashboardBuilder::refresh_every) | 5 s (zero: pages do not reload) |
/// | [`sample_every`](DashboardBuilder::sample_every) | 2 s, the charts keeping the last 150 samples (5 minutes) |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Dashboard, Queue};
/// let queue: Queue<u32> = Queue::new();
/// let dashboard = Dashboard::builder()
///     .queue("numbers", &queue)
///     .token("s3cret")
///     .read_only(true)
///     .refresh_every(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// # drop(dashboard);
/// ```
pub struct DashboardBuilder {
    queues: Vec<(String, Arc<dyn Board>)>,
    read_only: bool,
    token: Option<String>,
    allow_remote: bool,
    refresh: Duration,
    sample_every: Duration,
    samples: usize,
}

impl Dashboard {
    /// A builder with every default.
    ///
    /// # Examples
    ///
    /// ```
    /// let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// # drop(dashboard);
    /// ```
    pub fn builder() -> DashboardBuilder {
        DashboardBuilder {
            queues: Vec::new(),
            read_only: false,
            token: None,
            allow_remote: false,
            refresh: Duration::from_secs(5),
            sample_every: Duration::from_secs(2),
            samples: 150,
        }
    }

    /// Answers one request: the pages (`/`, `/queues/{name}`), `/metrics`, and the actions (POST
    /// `/queues/{name}/redrive` with `id=` or `all=1`, `/purge`, `/pause`, `/resume`, each with the
    /// form's `csrf` field). Mount it in your own server by converting its requests and responses.
    /// Never panics: a request it cannot read gets a 400, and a failure of its own a 500.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Dashboard, DashboardRequest, Queue};
    /// let queue: Queue<&str> = Queue::new();
    /// queue.push("resize cat.png").unwrap();
    /// let dashboard = Dashboard::builder().queue("thumbnails", &queue).build().unwrap();
    /// let response = dashboard.handle(&DashboardRequest::new("GET", "/metrics"));
    /// let text = String::from_utf8(response.into_body()).unwrap();
    /// assert!(text.contains("leasequeue_jobs{queue=\"thumbnails\",state=\"ready\"} 1"));
    /// ```
    pub fn handle(&self, request: &DashboardRequest) -> DashboardResponse {
        match panic::catch_unwind(AssertUnwindSafe(|| self.inner.route(request))) {
            Ok(response) => response,
            Err(_) => DashboardResponse::text(500, "the dashboard failed on this request"),
        }
    }

    /// Starts an HTTP server for this dashboard on `addr` (`"127.0.0.1:9090"`; port 0 takes any free
    /// port), on a thread of its own, until the returned [`DashboardServer`] is shut down or dropped.
    ///
    /// # Errors
    ///
    /// The address does not resolve, or is not a loopback address and the dashboard was not built with
    /// [`allow_remote`](DashboardBuilder::allow_remote) (`InvalidInput`); the port cannot be bound; the
    /// thread cannot be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let err = dashboard.serve("0.0.0.0:0").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "not loopback, not allowed");
    /// let server = dashboard.serve("127.0.0.1:0").unwrap();
    /// assert!(server.addr().ip().is_loopback());
    /// server.shutdown();
    /// ```
    pub fn serve(&self, addr: impl ToSocketAddrs) -> io::Result<DashboardServer> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"));
        }
        if !self.inner.allow_remote && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the dashboard binds to loopback only unless built with DashboardBuilder::allow_remote(true)",
            ));
        }
        let server = tiny_http::Server::http(&addrs[..]).map_err(io::Error::other)?;
        let addr = server.server_addr().to_ip().ok_or_else(|| io::Error::other("not an IP listener"))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let dashboard = self.clone();
        let thread = thread::Builder::new().name("leasequeue-dashboard".into()).spawn(move || {
            // `recv` fails once the server is unblocked (shut down); a connection's own failures
            // do not reach here.
            while let Ok(request) = serving.recv() {
                respond(&dashboard, request);
            }
        })?;
        Ok(DashboardServer { addr, server, thread: Some(thread) })
    }
}

/// Reads a `tiny_http` request, answers it, and sends the answer. A client that went away meanwhile
/// is no one's concern.
fn respond(dashboard: &Dashboard, mut request: tiny_http::Request) {
    let mut body = Vec::new();
    let read = request.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body);
    let response = if read.is_err() {
        DashboardResponse::text(400, "the request's body could not be read")
    } else if body.len() > MAX_BODY {
        DashboardResponse::text(413, "the request's body is too large")
    } else {
        let mut ours = DashboardRequest::new(request.method().as_str(), request.url()).body(body);
        for header in request.headers() {
            ours = ours.header(header.field.as_str().as_str(), header.value.as_str());
        }
        dashboard.handle(&ours)
    };
    let mut out =
        tiny_http::Response::from_data(response.body().to_vec()).with_status_code(response.status());
    for (name, value) in response.headers() {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(header);
        }
    }
    let _ = request.respond(out);
}

/// A running dashboard server (see [`Dashboard::serve`]). Dropping it shuts it down.
///
/// # Examples
///
/// ```
/// let dashboard = leasequeue::Dashboard::builder().build().unwrap();
/// let server = dashboard.serve("127.0.0.1:0").unwrap();
/// let url = format!("http://{}/", server.addr());
/// # let _ = url;
/// server.shutdown();
/// ```
pub struct DashboardServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl DashboardServer {
    /// The address it listens on (with the port it took, if it was asked for port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let server = dashboard.serve("127.0.0.1:0").unwrap();
    /// assert_ne!(server.addr().port(), 0);
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: the request being answered is answered, the serving thread ends, and the listening
    /// socket is closed (by `tiny_http`'s own accepting thread, a moment later).
    ///
    /// # Examples
    ///
    /// ```
    /// let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let server = dashboard.serve("127.0.0.1:0").unwrap();
    /// server.shutdown(); // returns once no request is being answered
    /// ```
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DashboardServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for DashboardServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.queues.iter().map(|q| q.name.as_str()).collect();
        f.debug_struct("Dashboard")
            .field("queues", &names)
            .field("read_only", &self.inner.read_only)
            .field("token", &self.inner.token.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DashboardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.queues.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("DashboardBuilder")
            .field("queues", &names)
            .field("read_only", &self.read_only)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("allow_remote", &self.allow_remote)
            .finish_non_exhaustive()
    }
}

impl DashboardBuilder {
    /// Adds a queue under `name` (letters, digits, `-`, `_` and `.`: it is part of the pages' URLs and
    /// of the metrics' labels). Its jobs show as their `Debug` text, escaped.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Dashboard, Queue};
    /// let (emails, thumbs): (Queue<String>, Queue<u64>) = (Queue::new(), Queue::new());
    /// let dashboard = Dashboard::builder().queue("emails", &emails).queue("thumbnails", &thumbs).build();
    /// assert!(dashboard.is_ok());
    /// ```
    #[must_use]
    pub fn queue<T: Debug + Send + Sync + 'static>(mut self, name: &str, queue: &Queue<T>) -> Self {
        self.queues.push((name.to_string(), Arc::new(queue.clone())));
        self
    }

    /// Asks every request for this bearer token: an `Authorization: Bearer` header, or, from a browser,
    /// `?token=` once (kept in a cookie from then on).
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Dashboard, DashboardRequest};
    /// let dashboard = Dashboard::builder().token("s3cret").build().unwrap();
    /// assert_eq!(dashboard.handle(&DashboardRequest::new("GET", "/")).status(), 401);
    /// let with = DashboardRequest::new("GET", "/").header("Authorization", "Bearer s3cret");
    /// assert_eq!(dashboard.handle(&with).status(), 200);
    /// ```
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Shows no actions and refuses them (403).
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Dashboard, DashboardRequest, Queue};
    /// let queue: Queue<u8> = Queue::new();
    /// let dashboard = Dashboard::builder().queue("q", &queue).read_only(true).build().unwrap();
    /// let pause = DashboardRequest::new("POST", "/queues/q/pause");
    /// assert_eq!(dashboard.handle(&pause).status(), 403);
    /// assert!(!queue.is_paused());
    /// ```
    #[must_use]
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Lets [`Dashboard::serve`] bind to an address other than loopback (`0.0.0.0:9090`). Set a
    /// [`token`](DashboardBuilder::token) too, and put TLS in front: the dashboard speaks plain HTTP.
    ///
    /// # Examples
    ///
    /// ```
    /// let dashboard = leasequeue::Dashboard::builder().allow_remote(true).token("s3cret").build();
    /// assert!(dashboard.is_ok());
    /// ```
    #[must_use]
    pub fn allow_remote(mut self, on: bool) -> Self {
        self.allow_remote = on;
        self
    }

    /// How often the pages reload themselves (a `<meta>` refresh); zero for never.
    ///
    /// # Examples
    ///
    /// ```
    /// let dashboard = leasequeue::Dashboard::builder().refresh_every(std::time::Duration::ZERO).build();
    /// assert!(dashboard.is_ok());
    /// ```
    #[must_use]
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// How often the sampling thread looks at the queues for the charts (on the system's time, whatever
    /// the queues' clocks), and how many samples a chart keeps.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let dashboard = leasequeue::Dashboard::builder().sample_every(Duration::from_secs(1), 600).build();
    /// assert!(dashboard.is_ok(), "the last ten minutes, a sample a second");
    /// ```
    #[must_use]
    pub fn sample_every(mut self, every: Duration, samples: usize) -> Self {
        self.sample_every = every;
        self.samples = samples;
        self
    }

    /// Builds the dashboard and starts its sampling thread.
    ///
    /// # Errors
    ///
    /// A queue name that is empty, too long (over 100 bytes), has a character other than letters,
    /// digits, `-`, `_` and `.`, or is used twice; an empty token; a zero sampling interval or sample
    /// count; a sampling thread that cannot be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Dashboard, Queue};
    /// let queue: Queue<u8> = Queue::new();
    /// let err = Dashboard::builder().queue("a/b", &queue).build().unwrap_err();
    /// assert_eq!(err.option(), "queue");
    /// ```
    pub fn build(self) -> Result<Dashboard, BuildError> {
        let invalid = |option, message| Err(BuildError::new("dashboard", option, message));
        let mut by_name = HashMap::new();
        for (index, (name, _)) in self.queues.iter().enumerate() {
            if !valid_name(name) {
                return invalid("queue", "names must be 1 to 100 letters, digits, '-', '_' or '.'");
            }
            if by_name.insert(name.clone(), index).is_some() {
                return invalid("queue", "names must be unique");
            }
        }
        if self.token.as_deref().is_some_and(str::is_empty) {
            return invalid("token", "must not be empty");
        }
        if self.sample_every.is_zero() || self.samples == 0 {
            return invalid("sample_every", "must be a nonzero interval and sample count");
        }
        let (stop, stopped) = bounded(0);
        let csrf: String = {
            let mut rng = rand::rng();
            (0..4).map(|_| format!("{:08x}", rng.random::<u32>())).collect()
        };
        let inner = Arc::new(Inner {
            queues: self
                .queues
                .into_iter()
                .map(|(name, board)| Named { name, board, history: Mutex::new(History::new(self.samples)) })
                .collect(),
            by_name,
            read_only: self.read_only,
            token: self.token,
            csrf,
            allow_remote: self.allow_remote,
            refresh: self.refresh,
            sample_every: self.sample_every,
            _stop_sampling: stop,
        });
        inner.sample(); // the first sample at once: the charts start from the dashboard's start
        let weak = Arc::downgrade(&inner);
        thread::Builder::new()
            .name("leasequeue-dashboard-sampler".into())
            .spawn(move || sample_until_dropped(&weak, &stopped))
            .map_err(|e| {
                BuildError::new("dashboard", "sample_every", "its thread could not be spawned").caused_by(e)
            })?;
        Ok(Dashboard { inner })
    }
}

/// The sampling thread: a sample of every queue each interval, until the dashboard is dropped.
fn sample_until_dropped(dashboard: &Weak<Inner>, stopped: &Receiver<()>) {
    let Some(every) = dashboard.upgrade().map(|inner| inner.sample_every) else { return };
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        let Some(inner) = dashboard.upgrade() else { return };
        inner.sample();
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Inner {
    fn sample(&self) {
        let seconds = self.sample_every.as_secs_f64();
        for queue in &self.queues {
            let stats = queue.board.stats();
            queue.history.lock().record(&stats, seconds);
        }
    }

    fn route(&self, request: &DashboardRequest) -> DashboardResponse {
        if let Some(response) = self.authenticate(request) {
            return response;
        }
        let segments: Vec<&str> = request.path().split('/').filter(|s| !s.is_empty()).collect();
        let method = request.method();
        match (method, segments.as_slice()) {
            ("GET" | "HEAD", []) => self.index(),
            ("GET" | "HEAD", ["metrics"]) => self.metrics(),
            ("GET" | "HEAD", ["queues", name]) => match self.named(name) {
                Some(queue) => self.queue_page(queue),
                None => not_found(),
            },
            ("POST", ["queues", name, action]) => match self.named(name) {
                Some(queue) => self.act(request, queue, action),
                None => not_found(),
            },
            (_, [] | ["metrics"] | ["queues", _]) | (_, ["queues", _, _]) => {
                DashboardResponse::text(405, "method not allowed").with_header("Allow", "GET, HEAD, POST")
            }
            _ => not_found(),
        }
    }

    /// `None` if the request may go on; else the answer (401, or a redirect that keeps a `?token=` in a
    /// cookie and drops it from the address bar).
    fn authenticate(&self, request: &DashboardRequest) -> Option<DashboardResponse> {
        let token = self.token.as_deref()?;
        let bearer = request.header_value("authorization").and_then(|v| v.strip_prefix("Bearer "));
        if bearer.or(request.cookie(TOKEN_COOKIE)).is_some_and(|given| same_secret(given.trim(), token)) {
            return None;
        }
        let from_query = request
            .query()
            .and_then(|query| parse_pairs(query).ok())
            .and_then(|pairs| pairs.into_iter().find(|(name, _)| name == "token"))
            .is_some_and(|(_, given)| same_secret(&given, token));
        if from_query && request.method() == "GET" {
            let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
            return Some(DashboardResponse::see_other(request.path()).with_header("Set-Cookie", &cookie));
        }
        Some(
            DashboardResponse::text(
                401,
                "this dashboard asks for its token (Authorization: Bearer, or ?token=)",
            )
            .with_header("WWW-Authenticate", "Bearer"),
        )
    }

    fn named(&self, name: &str) -> Option<&Named> {
        // Names are plain (see `valid_name`); an escaped one in the path is decoded first.
        let name = decode(name).ok()?;
        self.by_name.get(&name).map(|&i| &self.queues[i])
    }

    fn frame(&self) -> Frame<'_> {
        Frame { csrf: (!self.read_only).then_some(self.csrf.as_str()), refresh: self.refresh }
    }

    fn summary<'a>(&self, queue: &'a Named) -> Summary<'a> {
        Summary {
            name: &queue.name,
            stats: queue.board.stats(),
            paused: queue.board.is_paused(),
            samples: queue.history.lock().samples().copied().collect(),
        }
    }

    fn index(&self) -> DashboardResponse {
        let summaries: Vec<Summary<'_>> = self.queues.iter().map(|q| self.summary(q)).collect();
        DashboardResponse::html(page::index(&self.frame(), &summaries))
    }

    fn queue_page(&self, queue: &Named) -> DashboardResponse {
        let summary = self.summary(queue);
        let jobs = queue.board.jobs(page::JOBS_SHOWN);
        let dead = queue.board.dead_letters(page::DEAD_SHOWN);
        DashboardResponse::html(page::queue(&self.frame(), &summary, &jobs, &dead, self.sample_every))
    }

    fn metrics(&self) -> DashboardResponse {
        let queues: Vec<_> =
            self.queues.iter().map(|q| (q.name.as_str(), q.board.stats(), q.board.is_paused())).collect();
        DashboardResponse::new(200, "text/plain; version=0.0.4; charset=utf-8", metrics::render(&queues))
    }

    /// An action: checked (read-only, CSRF), done, and answered with a redirect to the queue's page.
    fn act(&self, request: &DashboardRequest, queue: &Named, action: &str) -> DashboardResponse {
        if !matches!(action, "redrive" | "purge" | "pause" | "resume") {
            return not_found();
        }
        if self.read_only {
            return DashboardResponse::text(403, "this dashboard is read-only");
        }
        let Ok(form) = std::str::from_utf8(request.body_bytes())
            .map_err(|_| ())
            .and_then(|body| parse_pairs(body).map_err(|_| ()))
        else {
            return DashboardResponse::text(400, "the form could not be read");
        };
        let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        if !field("csrf").is_some_and(|given| same_secret(given, &self.csrf)) {
            return DashboardResponse::text(
                403,
                "the form's CSRF token is missing or wrong: reload the page",
            );
        }
        match action {
            "pause" => queue.board.pause(),
            "resume" => queue.board.resume(),
            "purge" => {
                queue.board.purge();
            }
            _ => match (field("id"), field("all")) {
                (Some(id), _) => match id.parse::<u64>() {
                    Ok(id) => {
                        queue.board.redrive(Some(JobId::from_u64(id)));
                    }
                    Err(_) => return DashboardResponse::text(400, "the job id is not a number"),
                },
                (None, Some("1")) => {
                    queue.board.redrive(None);
                }
                _ => return DashboardResponse::text(400, "redrive needs id= or all=1"),
            },
        }
        DashboardResponse::see_other(&page::queue_path(&queue.name))
    }
}

fn not_found() -> DashboardResponse {
    DashboardResponse::text(404, "no such page")
}
