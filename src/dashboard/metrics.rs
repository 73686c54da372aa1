//! `/metrics`: every queue's counts and counters in the Prometheus text format (version 0.0.4).

use std::fmt::Write as _;

use crate::Stats;

/// The Prometheus text for these queues: a family per figure, a sample per queue.
pub(crate) fn render(queues: &[(&str, Stats, bool)]) -> String {
    let mut out = String::new();
    if queues.is_empty() {
        return out;
    }
    let gauge = |out: &mut String, name: &str, help: &str, value: &dyn Fn(&Stats, bool) -> String| {
        let _ = writeln!(out, "# HELP leasequeue_{name} {help}\n# TYPE leasequeue_{name} gauge");
        for (queue, stats, paused) in queues {
            let _ =
                writeln!(out, "leasequeue_{name}{{queue=\"{}\"}} {}", label(queue), value(stats, *paused));
        }
    };
    let _ = writeln!(out, "# HELP leasequeue_jobs Live jobs by state.\n# TYPE leasequeue_jobs gauge");
    for (queue, s, _) in queues {
        for (state, n) in [
            ("ready", s.ready),
            ("delayed", s.delayed - s.waiting),
            ("waiting", s.waiting),
            ("leased", s.leased),
        ] {
            let _ = writeln!(out, "leasequeue_jobs{{queue=\"{}\",state=\"{state}\"}} {n}", label(queue));
        }
    }
    gauge(&mut out, "dead_letters", "Dead letters in the built-in store.", &|s, _| s.dead.to_string());
    gauge(&mut out, "oldest_ready_age_seconds", "How long the oldest ready job has waited.", &|s, _| {
        s.oldest_ready_age.map_or(0.0, |age| age.as_secs_f64()).to_string()
    });
    gauge(&mut out, "paused", "1 while leasing is paused.", &|_, paused| u8::from(paused).to_string());
    gauge(&mut out, "consumers_waiting", "Consumers blocked waiting for a job.", &|s, _| {
        s.consumers_waiting.to_string()
    });
    let counters: [Counter; 10] = [
        ("pushed", "Jobs pushed.", |s| s.pushed),
        ("acked", "Jobs acked.", |s| s.acked),
        ("nacked", "Failed attempts reported by nack.", |s| s.nacked),
        ("released", "Leases released without spending an attempt.", |s| s.released),
        ("rejected", "Jobs rejected as poison.", |s| s.rejected),
        ("lapsed", "Leases that lapsed.", |s| s.lapsed),
        ("dead_lettered", "Jobs dead-lettered.", |s| s.dead_lettered),
        ("deduplicated", "Pushes dropped as duplicates.", |s| s.deduplicated),
        ("purged", "Jobs purged.", |s| s.purged),
        ("panics", "Panics of user code caught.", |s| s.panics),
    ];
    for (name, help, value) in counters {
        let _ =
            writeln!(out, "# HELP leasequeue_{name}_total {help}\n# TYPE leasequeue_{name}_total counter");
        for (queue, stats, _) in queues {
            let _ = writeln!(out, "leasequeue_{name}_total{{queue=\"{}\"}} {}", label(queue), value(stats));
        }
    }
    out
}

/// A counter family: its name (without `_total`), its help, and its value in a queue's stats.
type Counter = (&'static str, &'static str, fn(&Stats) -> u64);

/// A label value, escaped as the text format asks.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_its_help_type_and_one_sample_per_queue() {
        let stats = Stats { ready: 2, delayed: 3, waiting: 1, acked: 7, ..Stats::default() };
        let text = render(&[("a", stats, false), ("b", Stats::default(), true)]);
        assert!(text.contains("leasequeue_jobs{queue=\"a\",state=\"ready\"} 2\n"));
        assert!(text.contains("leasequeue_jobs{queue=\"a\",state=\"delayed\"} 2\n"), "waiting counted apart");
        assert!(text.contains("leasequeue_jobs{queue=\"a\",state=\"waiting\"} 1\n"));
        assert!(text.contains("leasequeue_acked_total{queue=\"a\"} 7\n"));
        assert!(text.contains("leasequeue_paused{queue=\"b\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(series.starts_with("leasequeue_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
