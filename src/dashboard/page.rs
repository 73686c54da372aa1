//! The dashboard's pages: server-rendered HTML with inline SVG charts, no JavaScript. Every text that
//! comes from a queue (its name, a job's `Debug` text, a failure's message) goes through [`escape`].

use std::fmt::Write as _;
use std::time::Duration;

use super::board::{Dead, Sample};
use super::http::escape;
use crate::{JobInfo, JobState, Stats};

/// The most live jobs a queue page lists (it counts them all).
pub(crate) const JOBS_SHOWN: usize = 200;

/// The most dead letters a queue page lists (it counts them all).
pub(crate) const DEAD_SHOWN: usize = 200;

/// What a page needs to know of the dashboard around it.
pub(crate) struct Frame<'a> {
    /// The CSRF token every action form carries; `None` in read-only mode (no actions shown).
    pub csrf: Option<&'a str>,
    /// How often the page reloads itself; zero for never.
    pub refresh: Duration,
}

/// One queue's line on the index.
pub(crate) struct Summary<'a> {
    pub name: &'a str,
    pub stats: Stats,
    pub paused: bool,
    pub samples: Vec<Sample>,
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}a{color:#1f5fbf}\
table{border-collapse:collapse;margin:8px 0;background:#fff}\
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.badge{background:#c62828;color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}\
form{display:inline;margin:0 4px 0 0}button{font:inherit;padding:2px 10px;cursor:pointer}\
code{white-space:pre-wrap;overflow-wrap:anywhere}.muted{color:#777}svg{background:#fff;border:1px solid #ddd}";

fn layout(title: &str, frame: &Frame<'_>, body: &str) -> String {
    let refresh = match frame.refresh.as_secs() {
        0 => String::new(),
        secs => format!("<meta http-equiv=\"refresh\" content=\"{secs}\">"),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}<title>{} · leasequeue</title>\
         <style>{STYLE}</style></head><body>\n<p class=\"muted\"><a href=\"/\">leasequeue</a> · \
         <a href=\"/metrics\">metrics</a>{}</p>\n{body}\n</body></html>\n",
        escape(title),
        if frame.csrf.is_none() { " · read-only" } else { "" },
    )
}

/// An action button: a form that POSTs to `action` with the CSRF token and the `fields`.
fn button(frame: &Frame<'_>, action: &str, label: &str, id: &str, fields: &[(&str, &str)]) -> String {
    let Some(csrf) = frame.csrf else { return String::new() };
    let mut form = format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(action),
        escape(csrf)
    );
    for (name, value) in fields {
        let _ = write!(form, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value));
    }
    let _ = write!(form, "<button type=\"submit\" id=\"{}\">{}</button></form>", escape(id), escape(label));
    form
}

/// The index: every queue with its counts and chart.
pub(crate) fn index(frame: &Frame<'_>, queues: &[Summary<'_>]) -> String {
    let mut body = String::from("<h1>Queues</h1>\n");
    if queues.is_empty() {
        body.push_str("<p class=\"muted\">No queue is on this dashboard.</p>");
        return layout("Queues", frame, &body);
    }
    body.push_str(
        "<table><tr><th>queue</th><th>ready</th><th>delayed</th><th>leased</th><th>dead</th><th>pushed</th>\
         <th>acked</th><th>oldest ready</th><th>depth and throughput</th></tr>\n",
    );
    for q in queues {
        let s = &q.stats;
        let _ = writeln!(
            body,
            "<tr><td><a href=\"{href}\">{name}</a>{paused}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{chart}</td></tr>",
            s.ready,
            s.delayed,
            s.leased,
            s.dead,
            s.pushed,
            s.acked,
            age(s.oldest_ready_age),
            href = escape(&queue_path(q.name)),
            name = escape(q.name),
            paused = if q.paused { " <span class=\"badge\">paused</span>" } else { "" },
            chart = chart(&q.samples, 240, 48),
        );
    }
    body.push_str("</table>");
    layout("Queues", frame, &body)
}

/// A queue's page: its counts, its chart, its actions, its live jobs by state and its dead letters.
pub(crate) fn queue(
    frame: &Frame<'_>,
    q: &Summary<'_>,
    jobs: &[(JobInfo, Option<String>)],
    dead: &[Dead],
    sample_every: Duration,
) -> String {
    let path = queue_path(q.name);
    let s = &q.stats;
    let mut body = format!(
        "<h1>{}{}</h1>\n",
        escape(q.name),
        if q.paused { " <span class=\"badge\" id=\"paused\">paused</span>" } else { "" }
    );
    body.push_str("<table id=\"stats\">");
    let rows: [(&str, &str, String); 12] = [
        ("ready", "ready", s.ready.to_string()),
        ("delayed", "delayed (and waiting)", s.delayed.to_string()),
        ("leased", "leased", s.leased.to_string()),
        ("dead", "dead letters", s.dead.to_string()),
        ("pushed", "pushed", s.pushed.to_string()),
        ("acked", "acked", s.acked.to_string()),
        ("nacked", "nacked", s.nacked.to_string()),
        ("rejected", "rejected", s.rejected.to_string()),
        ("lapsed", "lapsed", s.lapsed.to_string()),
        ("dead_lettered", "dead-lettered", s.dead_lettered.to_string()),
        ("purged", "purged", s.purged.to_string()),
        ("oldest_ready_age", "oldest ready job waiting", age(s.oldest_ready_age)),
    ];
    for (id, label, value) in rows {
        let _ = write!(body, "<tr><th>{label}</th><td class=\"n\" id=\"stat-{id}\">{value}</td></tr>");
    }
    body.push_str("</table>\n");
    let minutes = sample_every.as_secs_f64() * q.samples.len() as f64 / 60.0;
    let _ = writeln!(
        body,
        "<h2>Depth and throughput</h2><p class=\"muted\">the last {minutes:.1} minutes, a sample every {:.1} s: \
         <span style=\"color:#1f5fbf\">live jobs</span>, <span style=\"color:#2e7d32\">acks per second</span></p>{}",
        sample_every.as_secs_f64(),
        chart(&q.samples, 640, 140),
    );
    if frame.csrf.is_some() {
        body.push_str("<h2>Actions</h2><p>");
        body.push_str(&if q.paused {
            button(frame, &format!("{path}/resume"), "Resume", "resume", &[])
        } else {
            button(frame, &format!("{path}/pause"), "Pause", "pause", &[])
        });
        body.push_str(&button(
            frame,
            &format!("{path}/redrive"),
            "Redrive all dead letters",
            "redrive-all",
            &[("all", "1")],
        ));
        body.push_str(&button(frame, &format!("{path}/purge"), "Purge every live job", "purge", &[]));
        body.push_str("</p>\n");
    }
    jobs_table(&mut body, s, jobs);
    dead_table(&mut body, frame, &path, s.dead, dead);
    layout(q.name, frame, &body)
}

fn jobs_table(body: &mut String, stats: &Stats, jobs: &[(JobInfo, Option<String>)]) {
    let _ = writeln!(
        body,
        "<h2>Live jobs</h2><p id=\"jobs-by-state\">ready {}, delayed {}, waiting {}, leased {}</p>",
        stats.ready,
        stats.delayed - stats.waiting,
        stats.waiting,
        stats.leased,
    );
    if jobs.is_empty() {
        return;
    }
    body.push_str(
        "<table id=\"jobs\"><tr><th>id</th><th>state</th><th>attempt</th><th>priority</th><th>job</th></tr>",
    );
    for (job, text) in jobs {
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td><code>{}</code></td></tr>",
            job.id.as_u64(),
            state_name(job.state),
            job.attempt,
            job.priority,
            text.as_deref().map_or_else(|| "-".to_string(), escape),
        );
    }
    body.push_str("</table>");
    let live = stats.ready + stats.delayed + stats.leased;
    if live > jobs.len() {
        let _ = write!(body, "<p class=\"muted\">the oldest {} of {live} shown</p>", jobs.len());
    }
    body.push('\n');
}

fn dead_table(body: &mut String, frame: &Frame<'_>, path: &str, count: usize, dead: &[Dead]) {
    let _ = writeln!(body, "<h2>Dead letters</h2>");
    if dead.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-dead-letters\">none</p>\n");
        return;
    }
    body.push_str(
        "<table id=\"dead-letters\"><tr><th>id</th><th>reason</th><th>attempts</th><th>job</th>\
         <th>failures</th><th></th></tr>\n",
    );
    for d in dead {
        let id = d.id.as_u64().to_string();
        let mut failures = String::new();
        for (attempt, kind, message) in &d.history {
            let _ = write!(
                failures,
                "{}attempt {attempt}: {}{}",
                if failures.is_empty() { "" } else { "<br>" },
                escape(&format!("{kind:?}")),
                message.as_deref().map(|m| format!(" — {}", escape(m))).unwrap_or_default(),
            );
        }
        let _ = writeln!(
            body,
            "<tr id=\"dead-{id}\"><td class=\"n\">{id}</td><td>{}</td><td class=\"n\">{}</td><td><code>{}</code></td>\
             <td>{failures}</td><td>{}</td></tr>",
            escape(&d.reason.to_string()),
            d.attempts,
            escape(&d.text),
            button(frame, &format!("{path}/redrive"), "Redrive", &format!("redrive-{id}"), &[("id", &id)]),
        );
    }
    body.push_str("</table>\n");
    if count > dead.len() {
        let _ = writeln!(body, "<p class=\"muted\">the oldest {} of {count} shown</p>", dead.len());
    }
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Ready => "ready",
        JobState::Delayed => "delayed",
        JobState::Waiting => "waiting",
        JobState::Leased => "leased",
    }
}

/// The path of a queue's page (names are checked to need no escaping in a URL: see `valid_name`).
pub(crate) fn queue_path(name: &str) -> String {
    format!("/queues/{name}")
}

fn age(age: Option<Duration>) -> String {
    match age {
        None => "-".into(),
        Some(age) if age < Duration::from_secs(1) => format!("{} ms", age.as_millis()),
        Some(age) => format!("{:.1} s", age.as_secs_f64()),
    }
}

/// A chart of the samples, oldest on the left: live jobs in blue, acks per second in green, each on its
/// own scale (its maximum written at the top).
pub(crate) fn chart(samples: &[Sample], width: u32, height: u32) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    if samples.len() < 2 {
        let _ = write!(
            svg,
            "<text x=\"8\" y=\"{}\" font-size=\"12\" fill=\"#777\">collecting samples…</text></svg>",
            height / 2 + 4
        );
        return svg;
    }
    let depth_max = samples.iter().map(|s| s.depth).max().unwrap_or(0).max(1) as f64;
    let rate_max = samples.iter().map(|s| s.throughput).fold(0.0, f64::max).max(1.0);
    let top = 14.0;
    let plot = f64::from(height) - top - 2.0;
    let step = f64::from(width) / (samples.len() - 1) as f64;
    let line = |value: &dyn Fn(&Sample) -> f64, max: f64| {
        samples
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{:.1},{:.1}", i as f64 * step, top + plot - value(s) / max * plot))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        svg,
        "<polyline class=\"depth\" fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"{}\"/>\
         <polyline class=\"throughput\" fill=\"none\" stroke=\"#2e7d32\" stroke-width=\"1.5\" points=\"{}\"/>\
         <text x=\"4\" y=\"11\" font-size=\"10\" fill=\"#1f5fbf\">{depth_max} jobs</text>\
         <text x=\"{}\" y=\"11\" font-size=\"10\" fill=\"#2e7d32\" text-anchor=\"end\">{rate_max:.0}/s</text></svg>",
        line(&|s| s.depth as f64, depth_max),
        line(&|s| s.throughput, rate_max),
        width - 4,
    );
    svg
}
