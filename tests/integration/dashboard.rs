//! The dashboard over real HTTP on a loopback port: every page, every action, the CSRF and token checks,
//! read-only mode, escaping, malformed requests. (`tests/browser.rs` drives it from headless Chromium.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use leasequeue::{Dashboard, DashboardServer, Queue};

use super::until;

/// A response as the tests read it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` (a whole request) and reads the response to the end (each request closes its connection).
fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(raw).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply { status, headers, body: body.to_string() }
}

fn get(addr: SocketAddr, target: &str, extra: &str) -> Reply {
    send(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n").as_bytes(),
    )
}

fn post(addr: SocketAddr, target: &str, form: &str) -> Reply {
    send(
        addr,
        format!(
            "POST {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    )
}

/// The CSRF token a page's action forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("an action form") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

/// A queue with 3 ready jobs, 1 leased, and 2 dead letters (one whose `Debug` holds markup), on a
/// dashboard served on a free loopback port.
fn fixture(read_only: bool) -> (Queue<String>, DashboardServer) {
    let queue: Queue<String> = Queue::new();
    queue.push("<script>alert('pwned')</script>".into()).unwrap();
    queue.push("poison".into()).unwrap();
    queue.try_lease().unwrap().reject("bad <b>input</b>").unwrap();
    queue.try_lease().unwrap().reject("not a video").unwrap();
    for job in ["a", "b", "c", "d"] {
        queue.push(job.into()).unwrap();
    }
    std::mem::forget(queue.try_lease().unwrap()); // leased until it lapses
    let dashboard = Dashboard::builder()
        .queue("emails", &queue)
        .read_only(read_only)
        .refresh_every(Duration::ZERO)
        .build()
        .unwrap();
    let server = dashboard.serve("127.0.0.1:0").unwrap();
    (queue, server)
}

#[test]
fn every_page_shows_what_the_queue_says() {
    let (queue, server) = fixture(false);
    let addr = server.addr();
    let stats = queue.stats();
    let index = get(addr, "/", "");
    assert_eq!(index.status, 200);
    assert_eq!(index.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(index.body.contains("<a href=\"/queues/emails\">emails</a>"), "{}", index.body);
    let page = get(addr, "/queues/emails", "");
    assert_eq!(page.status, 200);
    for (id, value) in [
        ("ready", stats.ready),
        ("leased", stats.leased),
        ("dead", stats.dead),
        ("pushed", stats.pushed as usize),
    ] {
        assert!(
            page.body.contains(&format!("id=\"stat-{id}\">{value}</td>")),
            "{id} = {value}: {}",
            page.body
        );
    }
    assert!(page.body.contains("id=\"jobs-by-state\">ready 3, delayed 0, waiting 0, leased 1</p>"));
    assert!(
        page.body.contains(
            "<td>ready</td><td class=\"n\">0</td><td class=\"n\">0</td><td><code>&quot;b&quot;</code>"
        ),
        "a live job with its text: {}",
        page.body
    );
    assert!(page.body.contains("not a video"), "a failure's message");
    assert!(page.body.contains("rejected"), "a dead letter's reason");
    let metrics = get(addr, "/metrics", "");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("leasequeue_jobs{queue=\"emails\",state=\"ready\"} 3\n"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("leasequeue_dead_letters{queue=\"emails\"} 2\n"));
    assert!(metrics.body.contains("# TYPE leasequeue_pushed_total counter\n"));
    assert_eq!(get(addr, "/queues/nope", "").status, 404);
    assert_eq!(get(addr, "/nope", "").status, 404);
}

#[test]
fn the_chart_draws_the_samples() {
    let queue: Queue<u32> = Queue::new();
    let dashboard =
        Dashboard::builder().queue("q", &queue).sample_every(Duration::from_millis(1), 50).build().unwrap();
    let server = dashboard.serve("127.0.0.1:0").unwrap();
    // The sampling thread runs on the system's time: wait for its second sample.
    until(|| get(server.addr(), "/queues/q", "").body.contains("<polyline class=\"depth\""));
    let page = get(server.addr(), "/", "").body;
    assert!(page.contains("<svg"), "{page}");
}

#[test]
fn every_action_does_what_it_says_and_returns_to_the_page() {
    let (queue, server) = fixture(false);
    let addr = server.addr();
    let csrf = csrf_of(&get(addr, "/queues/emails", "").body);
    let act = |action: &str, form: &str| {
        let reply = post(addr, &format!("/queues/emails/{action}"), &format!("csrf={csrf}{form}"));
        assert_eq!(reply.status, 303, "{action}: {}", reply.body);
        assert_eq!(reply.header("Location"), Some("/queues/emails"));
    };
    act("pause", "");
    assert!(queue.is_paused());
    assert!(get(addr, "/queues/emails", "").body.contains("id=\"paused\""));
    act("resume", "");
    assert!(!queue.is_paused());
    let first = queue.dead_letters()[0].id().as_u64();
    act("redrive", &format!("&id={first}"));
    assert_eq!(queue.dead_letters().len(), 1, "one moved back");
    assert!(!get(addr, "/queues/emails", "").body.contains(&format!("id=\"dead-{first}\"")));
    act("redrive", "&all=1");
    assert!(queue.dead_letters().is_empty());
    assert_eq!(queue.stats().ready, 5);
    act("purge", "");
    assert!(queue.is_empty());
}

#[test]
fn an_action_without_the_csrf_token_is_refused_and_changes_nothing() {
    let (queue, server) = fixture(false);
    let addr = server.addr();
    for form in ["", "csrf=", "csrf=0123456789abcdef0123456789abcdef"] {
        let reply = post(addr, "/queues/emails/purge", form);
        assert_eq!(reply.status, 403, "{form:?}");
    }
    assert_eq!(queue.stats().ready, 3);
    // A GET never acts.
    assert_eq!(get(addr, "/queues/emails/purge", "").status, 405);
    assert_eq!(queue.stats().ready, 3);
}

#[test]
fn a_token_guards_every_page() {
    let queue: Queue<u8> = Queue::new();
    let dashboard = Dashboard::builder().queue("q", &queue).token("s3cret").build().unwrap();
    let server = dashboard.serve("127.0.0.1:0").unwrap();
    let addr = server.addr();
    for target in ["/", "/queues/q", "/metrics"] {
        assert_eq!(get(addr, target, "").status, 401, "{target}");
        assert_eq!(get(addr, target, "Authorization: Bearer wrong\r\n").status, 401, "{target}");
        assert_eq!(get(addr, target, "Authorization: Bearer s3cret\r\n").status, 200, "{target}");
    }
    assert_eq!(post(addr, "/queues/q/pause", "").status, 401);
    assert!(!queue.is_paused());
    // From a browser: `?token=` once, then the cookie.
    let login = get(addr, "/queues/q?token=s3cret", "");
    assert_eq!(login.status, 303);
    assert_eq!(login.header("Location"), Some("/queues/q"), "the token leaves the address bar");
    let cookie = login.header("Set-Cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("leasequeue_token="));
    assert_eq!(get(addr, "/queues/q", &format!("Cookie: {cookie}\r\n")).status, 200);
    assert_eq!(get(addr, "/queues/q?token=wrong", "").status, 401);
}

#[test]
fn read_only_shows_no_action_and_refuses_them() {
    let (queue, server) = fixture(true);
    let addr = server.addr();
    let page = get(addr, "/queues/emails", "").body;
    assert!(!page.contains("<form"), "{page}");
    assert!(page.contains("read-only"));
    for action in ["pause", "purge", "redrive"] {
        assert_eq!(post(addr, &format!("/queues/emails/{action}"), "csrf=x&all=1").status, 403, "{action}");
    }
    assert_eq!((queue.stats().ready, queue.dead_letters().len(), queue.is_paused()), (3, 2, false));
}

#[test]
fn job_text_is_escaped() {
    let (queue, server) = fixture(false);
    queue.push("<i>live</i>".into()).unwrap();
    let page = get(server.addr(), "/queues/emails", "").body;
    assert!(page.contains("&quot;&lt;i&gt;live&lt;/i&gt;&quot;"), "a live job's text, escaped");
    assert!(!page.contains("<i>"));
    assert!(!page.contains("<script>"), "{page}");
    assert!(!page.contains("<b>input"), "a failure's message is escaped too");
    assert!(page.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"), "{page}");
    assert!(page.contains("bad &lt;b&gt;input&lt;/b&gt;"));
    let csp = get(server.addr(), "/", "");
    assert!(
        csp.header("Content-Security-Policy").is_some_and(|p| p.contains("default-src 'none'")),
        "no script runs"
    );
}

#[test]
fn a_malformed_request_gets_a_400_and_the_server_goes_on() {
    let (queue, server) = fixture(false);
    let addr = server.addr();
    let csrf = csrf_of(&get(addr, "/queues/emails", "").body);
    assert_eq!(post(addr, "/queues/emails/redrive", &format!("csrf={csrf}&id=%zz")).status, 400);
    assert_eq!(post(addr, "/queues/emails/redrive", &format!("csrf={csrf}&id=twelve")).status, 400);
    assert_eq!(post(addr, "/queues/emails/redrive", &format!("csrf={csrf}")).status, 400);
    let not_utf8 = send(
        addr,
        b"POST /queues/emails/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n\xff\xfe",
    );
    assert_eq!(not_utf8.status, 400);
    let garbage = send(addr, b"NONSENSE\r\n\r\n");
    assert!(garbage.status == 400 || garbage.status == 0, "tiny_http answers or drops a bad request line");
    let huge = "x".repeat(64 * 1024);
    assert_eq!(post(addr, "/queues/emails/pause", &huge).status, 413);
    assert_eq!(send(addr, b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status, 405);
    // Still serving, nothing changed.
    assert_eq!(get(addr, "/", "").status, 200);
    assert!(!queue.is_paused());
}

#[test]
fn a_dashboard_spans_queues_of_several_job_types() {
    let emails: Queue<String> = Queue::new();
    let numbers: Queue<u64> = Queue::new();
    emails.push("ada@example.com".into()).unwrap();
    numbers.push_batch([1, 2]);
    let dashboard = Dashboard::builder().queue("emails", &emails).queue("numbers", &numbers).build().unwrap();
    let server = dashboard.serve("127.0.0.1:0").unwrap();
    let metrics = get(server.addr(), "/metrics", "").body;
    assert!(metrics.contains("leasequeue_jobs{queue=\"emails\",state=\"ready\"} 1\n"));
    assert!(metrics.contains("leasequeue_jobs{queue=\"numbers\",state=\"ready\"} 2\n"));
    let duplicate = Dashboard::builder().queue("q", &emails).queue("q", &numbers).build().unwrap_err();
    assert_eq!(duplicate.option(), "queue");
}

#[cfg(feature = "postgres")]
#[test]
fn a_postgresql_queue_shows_its_counts_and_jobs() {
    let Ok(url) = std::env::var(crate::POSTGRES_URL) else {
        eprintln!("skipped: set {} to run the PostgreSQL tests", crate::POSTGRES_URL);
        return;
    };
    let name = format!("dashboard-{}", std::process::id());
    let queue: Queue<String> = Queue::builder().connect(&url, &name).unwrap();
    queue.purge();
    queue.push_batch(["one".to_string(), "two".to_string()]);
    let dashboard = Dashboard::builder().queue("pg", &queue).build().unwrap();
    let page = dashboard.handle(&leasequeue::DashboardRequest::new("GET", "/queues/pg"));
    let body = String::from_utf8(page.into_body()).unwrap();
    assert!(body.contains("id=\"stat-ready\">2</td>"), "{body}");
    // The payloads live in the database: the list shows the jobs without their text.
    assert!(
        body.contains("<td>ready</td><td class=\"n\">0</td><td class=\"n\">0</td><td><code>-</code>"),
        "{body}"
    );
    queue.purge();
}
