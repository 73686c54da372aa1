//! The `tracing` and `metrics` integrations (compiled with those features).

#[cfg(feature = "metrics")]
mod metrics_observer {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use leasequeue::{count_events, Queue};
    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    /// Counter and gauge values by key, as the test sees them.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<HashMap<String, f64>>>);

    struct Cell(String, Seen);

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() += value as f64;
        }
        fn absolute(&self, value: u64) {
            self.1 .0.lock().unwrap().insert(self.0.clone(), value as f64);
        }
    }

    impl GaugeFn for Cell {
        fn increment(&self, value: f64) {
            *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() += value;
        }
        fn decrement(&self, value: f64) {
            *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() -= value;
        }
        fn set(&self, value: f64) {
            self.1 .0.lock().unwrap().insert(self.0.clone(), value);
        }
    }

    fn name(key: &Key) -> String {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Seen {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Cell(name(key), self.clone())))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Cell(name(key), self.clone())))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn events_are_counted_and_gauges_set() {
        let seen = Seen::default();
        metrics::with_local_recorder(&seen, || {
            let q = Queue::builder().observer(count_events("emails")).build().unwrap();
            q.push(1).unwrap();
            q.push(2).unwrap();
            q.try_lease().unwrap().ack().unwrap();
            q.record_metrics("emails");
        });
        let values = seen.0.lock().unwrap();
        assert_eq!(values["leasequeue_events_total{queue=emails,kind=pushed}"], 2.0);
        assert_eq!(values["leasequeue_events_total{queue=emails,kind=acked}"], 1.0);
        assert_eq!(values["leasequeue_ready{queue=emails}"], 1.0);
        assert_eq!(values["leasequeue_leased{queue=emails}"], 0.0);
    }
}

#[cfg(feature = "tracing")]
mod tracing_observer {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use leasequeue::{trace_event, Queue};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// Counts the events of target `leasequeue`, and the warnings among them.
    #[derive(Clone, Default)]
    struct Count(Arc<(AtomicUsize, AtomicUsize)>);

    impl Subscriber for Count {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if event.metadata().target() == "leasequeue" {
                self.0 .0.fetch_add(1, Ordering::SeqCst);
                if *event.metadata().level() == Level::WARN {
                    self.0 .1.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn every_event_is_traced_and_dead_letters_warn() {
        let count = Count::default();
        tracing::subscriber::with_default(count.clone(), || {
            let q = Queue::builder().observer(trace_event).build().unwrap();
            q.push(1).unwrap();
            q.try_lease().unwrap().reject("poison").unwrap();
        });
        // pushed, leased, rejected, dead-lettered
        assert_eq!(count.0 .0.load(Ordering::SeqCst), 4);
        assert_eq!(count.0 .1.load(Ordering::SeqCst), 1);
    }
}
