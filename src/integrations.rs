//! Optional integrations with the ecosystem's instrumentation crates: `tracing` and `metrics`.

#[cfg(feature = "metrics")]
use std::sync::Arc;

#[cfg(any(feature = "tracing", feature = "metrics"))]
use crate::Event;
#[cfg(feature = "metrics")]
use crate::Queue;

/// An observer that emits every [`Event`] as a `tracing` event (target `leasequeue`, level `DEBUG`,
/// `WARN` for dead letters), with the job id, the attempt and the event's kind as fields. With the
/// `tracing` feature.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::<u32>::builder().observer(leasequeue::trace_event).build().unwrap();
/// queue.push(1).unwrap(); // a `tracing` event: pushed, id 1
/// ```
#[cfg(feature = "tracing")]
pub fn trace_event(event: &Event) {
    let (id, attempt, kind) = (event.id.as_u64(), event.attempt, tracing::field::display(event.kind));
    if matches!(event.kind, crate::EventKind::DeadLettered(_)) {
        tracing::warn!(target: "leasequeue", id, attempt, kind, "job dead-lettered");
    } else {
        tracing::debug!(target: "leasequeue", id, attempt, kind, "job event");
    }
}

/// An observer that counts every [`Event`] in the `metrics` counter `leasequeue_events_total`, labelled
/// with the queue's name and the event's kind. With the `metrics` feature. Pair it with
/// [`Queue::record_metrics`] for the gauges.
///
/// # Examples
///
/// ```
/// let queue = leasequeue::Queue::<u32>::builder()
///     .observer(leasequeue::count_events("emails"))
///     .build()
///     .unwrap();
/// queue.push(1).unwrap();
/// ```
#[cfg(feature = "metrics")]
pub fn count_events(queue_name: &str) -> impl Fn(&Event) + Send + Sync + 'static {
    let name: Arc<str> = Arc::from(queue_name);
    move |event: &Event| {
        let kind = event.kind.to_string();
        metrics::counter!("leasequeue_events_total", "queue" => name.to_string(), "kind" => kind)
            .increment(1);
    }
}

#[cfg(feature = "metrics")]
impl<T: Send + Sync + 'static> Queue<T> {
    /// Sets the `metrics` gauges `leasequeue_ready`, `leasequeue_delayed`, `leasequeue_leased` (in
    /// flight), `leasequeue_dead` (in the built-in store) and `leasequeue_oldest_ready_age_seconds`,
    /// labelled with `queue_name`, from [`stats`](Queue::stats). Call it periodically, or from an alarm or
    /// observer hook. With the `metrics` feature.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = leasequeue::Queue::<u32>::new();
    /// queue.record_metrics("emails");
    /// ```
    pub fn record_metrics(&self, queue_name: &str) {
        let stats = self.stats();
        let name = queue_name.to_string();
        metrics::gauge!("leasequeue_ready", "queue" => name.clone()).set(stats.ready as f64);
        metrics::gauge!("leasequeue_delayed", "queue" => name.clone()).set(stats.delayed as f64);
        metrics::gauge!("leasequeue_leased", "queue" => name.clone()).set(stats.leased as f64);
        metrics::gauge!("leasequeue_dead", "queue" => name.clone()).set(stats.dead as f64);
        let age = stats.oldest_ready_age.map_or(0.0, |a| a.as_secs_f64());
        metrics::gauge!("leasequeue_oldest_ready_age_seconds", "queue" => name).set(age);
    }
}
