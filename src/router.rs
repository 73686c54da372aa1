//! Routing and fan-out: one publish, delivered to every queue whose binding matches (RabbitMQ exchanges,
//! SNS to SQS).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use thiserror::Error;

use crate::panics::Catcher;
use crate::{JobId, PanicSite, PushError, Queue, TryPushError};

/// How a queue is bound to a [`Router`].
///
/// Routing keys are words separated by dots (`order.created.eu`). A topic pattern matches a key word by
/// word: `*` matches exactly one word, `#` matches zero or more words, anything else matches itself (as in
/// RabbitMQ's topic exchanges). The empty key is one empty word.
///
/// # Examples
///
/// ```
/// use leasequeue::Binding;
/// assert!(Binding::topic("order.*").matches("order.created"));
/// assert!(Binding::topic("order.#").matches("order"));
/// assert!(!Binding::topic("order.*").matches("order.created.eu"));
/// assert!(Binding::direct("order.created").matches("order.created"));
/// assert!(Binding::Fanout.matches("anything"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Binding {
    /// Jobs whose routing key is exactly this.
    Direct(String),
    /// Jobs whose routing key matches this pattern.
    Topic(String),
    /// Every job.
    Fanout,
}

impl Binding {
    /// A direct binding to `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::Binding::direct("a"), leasequeue::Binding::Direct("a".into()));
    /// ```
    pub fn direct(key: impl Into<String>) -> Self {
        Binding::Direct(key.into())
    }

    /// A topic binding to `pattern`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::Binding::topic("#.eu").matches("order.created.eu"));
    /// ```
    pub fn topic(pattern: impl Into<String>) -> Self {
        Binding::Topic(pattern.into())
    }

    /// Whether a job with routing key `key` goes through this binding.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!leasequeue::Binding::direct("a.b").matches("a.c"));
    /// ```
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Binding::Direct(k) => k == key,
            Binding::Topic(pattern) => {
                let mut trie = Trie::default();
                trie.insert(pattern, BindingId(0));
                let mut out = Vec::new();
                trie.matches(key, &mut out);
                !out.is_empty()
            }
            Binding::Fanout => true,
        }
    }
}

/// The id of one binding, to [`unbind`](Router::unbind) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BindingId(u64);

/// What a publish that no binding matches does.
///
/// # Examples
///
/// ```
/// use leasequeue::{Router, Unroutable};
/// let router: Router<&str> = Router::new().on_unroutable(Unroutable::Drop);
/// assert_eq!(router.publish("nobody.listens", "job").unwrap().queues(), 0);
/// assert_eq!(router.stats().unroutable, 1);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Unroutable<T> {
    /// The publish fails with [`PublishError::Unroutable`], handing the job back (the default, like
    /// RabbitMQ's `mandatory` flag).
    Error,
    /// The job is dropped and counted in [`RouterStats::unroutable`].
    Drop,
    /// The job goes to this queue (RabbitMQ's alternate exchange).
    Queue(Queue<T>),
}

/// What a publish delivered: the queues that took the job, with the job's id in each.
///
/// # Examples
///
/// ```
/// use leasequeue::{Binding, Queue, Router};
/// let (billing, shipping) = (Queue::new(), Queue::new());
/// let router = Router::new();
/// router.bind(Binding::Fanout, billing.clone());
/// router.bind(Binding::Fanout, shipping.clone());
/// let published = router.publish("order.created", "order 42").unwrap();
/// assert_eq!(published.queues(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    ids: Vec<(BindingId, JobId)>,
}

impl Published {
    /// How many queues took the job.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::Published::default().queues(), 0);
    /// ```
    pub fn queues(&self) -> usize {
        self.ids.len()
    }

    /// For each queue that took the job: the binding it matched and the job's id in that queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Binding, Queue, Router};
    /// let queue = Queue::new();
    /// let router = Router::new();
    /// let binding = router.bind(Binding::direct("a"), queue.clone());
    /// let published = router.publish("a", 1).unwrap();
    /// assert_eq!(published.ids()[0].0, binding);
    /// ```
    pub fn ids(&self) -> &[(BindingId, JobId)] {
        &self.ids
    }
}

/// A matched queue that did not take its copy of the job.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refused<T> {
    /// The binding it matched through.
    pub binding: BindingId,
    /// Why: [`TryPushError::Full`] (from [`Router::try_publish`], or from [`Router::publish`] to a queue
    /// whose overflow policy is [`Overflow::RejectNew`](crate::Overflow::RejectNew)) or
    /// [`TryPushError::Closed`], with that queue's copy of the job inside.
    pub error: TryPushError<T>,
}

impl<T> fmt::Debug for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused").field("binding", &self.binding).field("error", &self.error).finish()
    }
}

/// Why a publish did not reach every queue it should have. Every copy of the job that was not delivered
/// comes back inside: nothing is lost silently.
///
/// # Examples
///
/// ```
/// use leasequeue::{Binding, PublishError, Queue, Router};
/// let (open, closed) = (Queue::new(), Queue::new());
/// closed.close();
/// let router = Router::new();
/// router.bind(Binding::Fanout, open.clone());
/// router.bind(Binding::Fanout, closed.clone());
/// match router.publish("k", 7).unwrap_err() {
///     PublishError::Refused { published, refused } => {
///         assert_eq!(published.queues(), 1); // the open queue took it
///         assert!(refused[0].error.is_closed());
///         let copy = refused.into_iter().next().unwrap().error.into_inner();
///         assert_eq!(copy, 7); // the closed queue's copy comes back
///     }
///     other => panic!("{other}"),
/// }
/// ```
#[derive(Error)]
#[non_exhaustive]
pub enum PublishError<T> {
    /// No binding matched, and the router's policy is [`Unroutable::Error`].
    #[error("no binding matches the routing key")]
    Unroutable(T),
    /// Some matched queues refused the job (full or closed); the others took it.
    #[error("{} of the matched queues refused the job", refused.len())]
    Refused {
        /// What was delivered.
        published: Published,
        /// The queues that refused, each with its copy of the job.
        refused: Vec<Refused<T>>,
    },
    /// The job's `Clone` panicked while the copies for the matched queues were made. Copies are made
    /// before any is delivered, so no queue got the job; it comes back, and the panic is counted in
    /// [`RouterStats::panics`].
    #[error("the job's Clone panicked; no queue got it")]
    ClonePanicked(T),
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Unroutable(_) => f.write_str("Unroutable(..)"),
            PublishError::ClonePanicked(_) => f.write_str("ClonePanicked(..)"),
            PublishError::Refused { published, refused } => {
                f.debug_struct("Refused").field("published", published).field("refused", refused).finish()
            }
        }
    }
}

/// Counters of a [`Router`].
///
/// # Examples
///
/// ```
/// let router: leasequeue::Router<u8> = leasequeue::Router::new();
/// assert_eq!(router.stats().published, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Bindings now.
    pub bindings: usize,
    /// Publish calls.
    pub published: u64,
    /// Copies delivered to queues.
    pub delivered: u64,
    /// Publishes no binding matched (dropped, sent to the unroutable queue, or handed back).
    pub unroutable: u64,
    /// Copies a matched queue refused (full or closed), handed back to the publisher.
    pub refused: u64,
    /// Publishes whose job's `Clone` panicked (see [`PublishError::ClonePanicked`]), and copies whose
    /// `Drop` panicked while the router let go of them.
    pub panics: u64,
}

/// An exchange: it owns bindings from routing rules to [`Queue`]s and delivers each published job to every
/// queue whose binding matches its routing key, once per queue. Each queue keeps its own consumers,
/// visibility timeout, retries and dead letters: a failure in one does not touch the others.
///
/// Fanning one job out to several queues needs a copy per queue, so publishing needs `T: Clone`; to
/// share one payload that is not `Clone` (or is large), route `Arc<Payload>`: each queue then holds a
/// pointer to the same payload.
///
/// Bindings can be added and removed at any time from any thread. Topic patterns are matched with a trie
/// of words, so a publish costs about the key's length, not the number of bindings; patterns with `#`
/// cost at most the trie's size times the key's words (each pair of trie node and key position is visited
/// once, and runs of `#` collapse), never a backtracking search exponential in the `#`. Nothing recurses
/// over a pattern or key, so a pattern or key of any length is safe (it costs memory and time in
/// proportion, no stack).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use leasequeue::{Binding, Queue, Router};
///
/// struct Order { id: u64 }
///
/// let (billing, shipping, analytics) = (Queue::new(), Queue::new(), Queue::new());
/// let router: Router<Arc<Order>> = Router::new();
/// router.bind(Binding::direct("order.created"), billing.clone());
/// router.bind(Binding::topic("order.*"), shipping.clone());
/// router.bind(Binding::topic("#"), analytics.clone());
///
/// let published = router.publish("order.created", Arc::new(Order { id: 42 })).unwrap();
/// assert_eq!(published.queues(), 3); // one payload, three queues
/// assert_eq!(billing.try_lease().unwrap().id, 42);
///
/// router.publish("order.shipped", Arc::new(Order { id: 42 })).unwrap();
/// assert!(billing.try_lease().is_err());
/// ```
pub struct Router<T> {
    inner: Arc<RouterInner<T>>,
}

struct RouterInner<T> {
    table: RwLock<Table<T>>,
    published: AtomicU64,
    delivered: AtomicU64,
    unroutable: AtomicU64,
    refused: AtomicU64,
    /// Catches and counts the panics of the job's `Clone` and `Drop` (no hook: the error reports them).
    catcher: Catcher,
}

struct Table<T> {
    next_id: u64,
    bindings: HashMap<BindingId, (Binding, Queue<T>)>,
    direct: HashMap<String, Vec<BindingId>>,
    topics: Trie,
    fanout: Vec<BindingId>,
    unroutable: Unroutable<T>,
}

impl<T: Clone + Send + Sync + 'static> Router<T> {
    /// A router with no binding, whose unroutable publishes fail with the job.
    ///
    /// # Examples
    ///
    /// ```
    /// let router: leasequeue::Router<String> = leasequeue::Router::new();
    /// assert_eq!(router.stats().bindings, 0);
    /// ```
    pub fn new() -> Self {
        Router {
            inner: Arc::new(RouterInner {
                table: RwLock::new(Table {
                    next_id: 1,
                    bindings: HashMap::new(),
                    direct: HashMap::new(),
                    topics: Trie::default(),
                    fanout: Vec::new(),
                    unroutable: Unroutable::Error,
                }),
                published: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                unroutable: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                catcher: Catcher::new(None),
            }),
        }
    }

    /// Sets what a publish that no binding matches does. Default [`Unroutable::Error`].
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Queue, Router, Unroutable};
    /// let lost_and_found = Queue::new();
    /// let router = Router::new().on_unroutable(Unroutable::Queue(lost_and_found.clone()));
    /// router.publish("nobody.listens", 1).unwrap();
    /// assert_eq!(lost_and_found.len(), 1);
    /// ```
    pub fn on_unroutable(self, policy: Unroutable<T>) -> Self {
        self.inner.table.write().unroutable = policy;
        self
    }

    /// Binds `queue`; returns the binding's id. A queue may be bound several times; it still gets one
    /// copy of a job that matches more than one of its bindings.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Binding, Queue, Router};
    /// let router = Router::new();
    /// let id = router.bind(Binding::topic("audit.#"), Queue::<String>::new());
    /// assert_eq!(router.stats().bindings, 1);
    /// # let _ = id;
    /// ```
    pub fn bind(&self, binding: Binding, queue: Queue<T>) -> BindingId {
        let mut table = self.inner.table.write();
        let id = BindingId(table.next_id);
        table.next_id += 1;
        match &binding {
            Binding::Direct(key) => table.direct.entry(key.clone()).or_default().push(id),
            Binding::Topic(pattern) => table.topics.insert(pattern, id),
            Binding::Fanout => table.fanout.push(id),
        }
        table.bindings.insert(id, (binding, queue));
        id
    }

    /// Removes a binding; returns its queue, or `None` if no such binding exists.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Binding, Queue, Router, Unroutable};
    /// let router = Router::new().on_unroutable(Unroutable::Drop);
    /// let id = router.bind(Binding::Fanout, Queue::new());
    /// assert!(router.unbind(id).is_some());
    /// assert_eq!(router.publish("k", 1).unwrap().queues(), 0);
    /// ```
    pub fn unbind(&self, id: BindingId) -> Option<Queue<T>> {
        let mut table = self.inner.table.write();
        let (binding, queue) = table.bindings.remove(&id)?;
        match &binding {
            Binding::Direct(key) => {
                if let Some(ids) = table.direct.get_mut(key) {
                    ids.retain(|b| *b != id);
                    if ids.is_empty() {
                        table.direct.remove(key);
                    }
                }
            }
            Binding::Topic(pattern) => table.topics.remove(pattern, id),
            Binding::Fanout => table.fanout.retain(|b| *b != id),
        }
        Some(queue)
    }

    /// Publishes a job under `key`: every queue with a matching binding gets a copy (blocking while a
    /// bounded queue is full, like [`Queue::push`]). With no matching binding, the router's
    /// [`Unroutable`] policy applies.
    ///
    /// # Errors
    ///
    /// [`PublishError::Unroutable`] (the job comes back) when no binding matches under
    /// [`Unroutable::Error`]; [`PublishError::Refused`] when a matched queue is closed, or full under
    /// [`Overflow::RejectNew`](crate::Overflow::RejectNew) (its copy comes back; the other queues keep
    /// theirs); [`PublishError::ClonePanicked`] (the job comes back, no queue got it) when the job's `Clone`
    /// panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Binding, Queue, Router};
    /// let emails = Queue::new();
    /// let router = Router::new();
    /// router.bind(Binding::direct("user.signed_up"), emails.clone());
    /// router.publish("user.signed_up", "ada@example.com").unwrap();
    /// assert!(router.publish("user.deleted", "ada@example.com").is_err()); // unroutable
    /// ```
    pub fn publish(&self, key: &str, job: T) -> Result<Published, PublishError<T>> {
        self.route(key, job, |queue, job| {
            queue.push(job).map_err(|e| match e {
                PushError::Full(job) => TryPushError::Full(job),
                PushError::Closed(job) => TryPushError::Closed(job),
                PushError::Store(job, cause) => TryPushError::Store(job, cause),
            })
        })
    }

    /// Like [`publish`](Router::publish), but a full bounded queue refuses its copy instead of blocking.
    ///
    /// # Errors
    ///
    /// As [`publish`](Router::publish), and [`PublishError::Refused`] for a full queue too.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Binding, PublishError, Queue, Router};
    /// let small = Queue::builder().capacity(1).build().unwrap();
    /// let router = Router::new();
    /// router.bind(Binding::Fanout, small.clone());
    /// router.try_publish("k", 1).unwrap();
    /// let err = router.try_publish("k", 2).unwrap_err();
    /// assert!(matches!(err, PublishError::Refused { .. }));
    /// ```
    pub fn try_publish(&self, key: &str, job: T) -> Result<Published, PublishError<T>> {
        self.route(key, job, |queue, job| queue.try_push(job))
    }

    fn route(
        &self,
        key: &str,
        job: T,
        push: impl Fn(&Queue<T>, T) -> Result<JobId, TryPushError<T>>,
    ) -> Result<Published, PublishError<T>> {
        let inner = &self.inner;
        inner.published.fetch_add(1, Ordering::Relaxed);
        // Collect the matched queues, then push without holding the table's lock: a push may block.
        let (targets, unroutable) = {
            let table = inner.table.read();
            let targets = table.targets(key);
            let unroutable = if targets.is_empty() { Some(table.unroutable.clone()) } else { None };
            (targets, unroutable)
        };
        if let Some(policy) = unroutable {
            inner.unroutable.fetch_add(1, Ordering::Relaxed);
            return match policy {
                Unroutable::Error => Err(PublishError::Unroutable(job)),
                Unroutable::Drop => Ok(Published::default()),
                Unroutable::Queue(queue) => match push(&queue, job) {
                    Ok(_) => Ok(Published::default()),
                    Err(
                        TryPushError::Full(job) | TryPushError::Closed(job) | TryPushError::Store(job, _),
                    ) => Err(PublishError::Unroutable(job)),
                },
            };
        }
        // Every queue but the last gets a clone, the last the job itself. The clones are all made first,
        // so that a `Clone` that panics leaves no queue with a copy and the job comes back whole.
        let mut copies = Vec::with_capacity(targets.len());
        for _ in 1..targets.len() {
            match inner.catcher.call(PanicSite::PayloadClone, None, || job.clone()) {
                Some(copy) => copies.push(copy),
                None => {
                    for copy in copies {
                        inner.catcher.dispose(copy);
                    }
                    return Err(PublishError::ClonePanicked(job));
                }
            }
        }
        copies.push(job);
        let mut published = Published::default();
        let mut refused = Vec::new();
        for ((binding, queue), copy) in targets.into_iter().zip(copies) {
            match push(&queue, copy) {
                Ok(id) => published.ids.push((binding, id)),
                Err(error) => refused.push(Refused { binding, error }),
            }
        }
        inner.delivered.fetch_add(published.ids.len() as u64, Ordering::Relaxed);
        if refused.is_empty() {
            Ok(published)
        } else {
            inner.refused.fetch_add(refused.len() as u64, Ordering::Relaxed);
            Err(PublishError::Refused { published, refused })
        }
    }

    /// The router's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use leasequeue::{Binding, Queue, Router};
    /// let router = Router::new();
    /// router.bind(Binding::Fanout, Queue::new());
    /// router.publish("k", 1).unwrap();
    /// assert_eq!((router.stats().published, router.stats().delivered), (1, 1));
    /// ```
    pub fn stats(&self) -> RouterStats {
        let inner = &self.inner;
        RouterStats {
            bindings: inner.table.read().bindings.len(),
            published: inner.published.load(Ordering::Relaxed),
            delivered: inner.delivered.load(Ordering::Relaxed),
            unroutable: inner.unroutable.load(Ordering::Relaxed),
            refused: inner.refused.load(Ordering::Relaxed),
            panics: inner.catcher.count(),
        }
    }
}

impl<T> Table<T> {
    /// The queues a job with `key` goes to, once each, with the first binding that matched them.
    fn targets(&self, key: &str) -> Vec<(BindingId, Queue<T>)> {
        let mut ids: Vec<BindingId> = Vec::new();
        if let Some(direct) = self.direct.get(key) {
            ids.extend(direct);
        }
        self.topics.matches(key, &mut ids);
        ids.extend(&self.fanout);
        ids.sort_unstable();
        ids.dedup();
        let mut targets: Vec<(BindingId, Queue<T>)> = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((_, queue)) = self.bindings.get(&id) {
                if !targets.iter().any(|(_, q)| q.same_as(queue)) {
                    targets.push((id, queue.clone()));
                }
            }
        }
        targets
    }
}

impl<T: Clone + Send + Sync + 'static> Default for Router<T> {
    fn default() -> Self {
        Router::new()
    }
}

impl<T> Clone for Router<T> {
    fn clone(&self) -> Self {
        Router { inner: Arc::clone(&self.inner) }
    }
}

impl<T> fmt::Debug for Router<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.inner.table.read();
        let bindings: Vec<&Binding> = table.bindings.values().map(|(b, _)| b).collect();
        f.debug_struct("Router").field("bindings", &bindings).finish_non_exhaustive()
    }
}

fn words(key: &str) -> Vec<&str> {
    key.split('.').collect()
}

/// A pattern's words, with each run of `#` collapsed to one (`#.#` matches what `#` matches).
fn pattern_words(pattern: &str) -> Vec<&str> {
    let mut out = words(pattern);
    out.dedup_by(|a, b| *a == "#" && *b == "#");
    out
}

/// A trie of topic patterns, one level per word, its nodes in one arena (`nodes[0]` is the root) so that
/// no operation recurses: a pattern or key of any length costs no stack, and dropping the trie is flat.
struct Trie {
    nodes: Vec<Node>,
    /// Nodes pruned by `remove`, for reuse.
    free: Vec<usize>,
}

#[derive(Default)]
struct Node {
    words: HashMap<Box<str>, usize>,
    star: Option<usize>,
    hash: Option<usize>,
    bound: Vec<BindingId>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.bound.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }
}

/// An edge of the trie: the word it matches.
#[derive(Clone, Copy)]
enum Edge<'a> {
    Word(&'a str),
    Star,
    Hash,
}

impl<'a> Edge<'a> {
    fn of(word: &'a str) -> Self {
        match word {
            "*" => Edge::Star,
            "#" => Edge::Hash,
            word => Edge::Word(word),
        }
    }
}

impl Default for Trie {
    fn default() -> Self {
        Trie { nodes: vec![Node::default()], free: Vec::new() }
    }
}

impl Trie {
    fn child(&self, node: usize, edge: Edge<'_>) -> Option<usize> {
        let n = &self.nodes[node];
        match edge {
            Edge::Word(word) => n.words.get(word).copied(),
            Edge::Star => n.star,
            Edge::Hash => n.hash,
        }
    }

    fn new_node(&mut self) -> usize {
        match self.free.pop() {
            Some(index) => index,
            None => {
                self.nodes.push(Node::default());
                self.nodes.len() - 1
            }
        }
    }

    fn insert(&mut self, pattern: &str, id: BindingId) {
        let mut node = 0;
        for word in pattern_words(pattern) {
            let edge = Edge::of(word);
            node = match self.child(node, edge) {
                Some(child) => child,
                None => {
                    let child = self.new_node();
                    let n = &mut self.nodes[node];
                    match edge {
                        Edge::Word(word) => {
                            n.words.insert(word.into(), child);
                        }
                        Edge::Star => n.star = Some(child),
                        Edge::Hash => n.hash = Some(child),
                    }
                    child
                }
            };
        }
        self.nodes[node].bound.push(id);
    }

    /// Removes `id` under `pattern`, pruning the nodes it leaves empty.
    fn remove(&mut self, pattern: &str, id: BindingId) {
        let words = pattern_words(pattern);
        let mut path = Vec::with_capacity(words.len());
        let mut node = 0;
        for word in &words {
            let edge = Edge::of(word);
            let Some(child) = self.child(node, edge) else { return };
            path.push((node, edge));
            node = child;
        }
        self.nodes[node].bound.retain(|b| *b != id);
        while let Some((parent, edge)) = path.pop() {
            if !self.nodes[node].is_empty() {
                break;
            }
            self.nodes[node] = Node::default(); // frees its map's memory
            self.free.push(node);
            let p = &mut self.nodes[parent];
            match edge {
                Edge::Word(word) => {
                    p.words.remove(word);
                }
                Edge::Star => p.star = None,
                Edge::Hash => p.hash = None,
            }
            node = parent;
        }
    }

    /// Pushes the ids of every pattern matching `key`.
    ///
    /// A walk of the automaton the trie spells: a state is a node, the number of words of the key consumed,
    /// and whether a `#` at that node may still take words. Each state is visited once, so a publish costs
    /// at most 2 × nodes × (words + 1) steps, however many `#` the patterns hold (a backtracking match is
    /// exponential in them). Only states reached through a `#` can be reached twice (elsewhere the walk is
    /// a tree's: the position is the node's depth), so only those are remembered, and a key that meets no
    /// `#` costs no set at all.
    fn matches(&self, key: &str, out: &mut Vec<BindingId>) {
        let key = words(key);
        let mut seen: HashSet<(usize, usize, bool)> = HashSet::new();
        // (node, words consumed, inside a `#`, reached through a `#`)
        let mut todo = vec![(0, 0, false, false)];
        while let Some((node, at, in_hash, after_hash)) = todo.pop() {
            if after_hash && !seen.insert((node, at, in_hash)) {
                continue;
            }
            if in_hash {
                // Inside a `#`: take the next word for it, or stop taking and go on from this node.
                if at < key.len() {
                    todo.push((node, at + 1, true, true));
                }
                todo.push((node, at, false, true));
                continue;
            }
            let n = &self.nodes[node];
            if let Some(hash) = n.hash {
                todo.push((hash, at, true, true)); // `#` takes zero or more words
            }
            match key.get(at) {
                None => out.extend(&n.bound),
                Some(word) => {
                    if let Some(&child) = n.words.get(*word) {
                        todo.push((child, at + 1, false, after_hash));
                    }
                    if let Some(star) = n.star {
                        todo.push((star, at + 1, false, after_hash));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_the_last_pattern_prunes_the_trie() {
        let mut trie = Trie::default();
        trie.insert("a.*.#", BindingId(1));
        trie.insert("a.b", BindingId(2));
        trie.remove("a.*.#", BindingId(1));
        assert_eq!(trie.nodes.len() - trie.free.len(), 3, "the root, a and a.b");
        trie.remove("a.b", BindingId(2));
        assert!(trie.nodes[0].is_empty());
        assert_eq!(trie.free.len(), trie.nodes.len() - 1, "only the root is left");
        trie.insert("x.y.z", BindingId(3)); // three of the four freed nodes are reused
        assert_eq!((trie.nodes.len(), trie.free.len()), (5, 1));
    }

    #[test]
    fn runs_of_hash_collapse() {
        assert_eq!(pattern_words("#.#.a.#.#.#"), ["#", "a", "#"]);
        assert_eq!(pattern_words("#.*.#"), ["#", "*", "#"]);
    }
}
