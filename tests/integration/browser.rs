//! The dashboard in headless Chromium, driven through ChromeDriver's WebDriver API (plain HTTP and
//! JSON): the numbers a page shows are the queue's, and a click on a dead letter's redrive button moves
//! it back to the queue.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the test says
//! so and passes, unless `LEASEQUEUE_BROWSER_TEST=require` (set by `.ci/run`) makes that a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use leasequeue::{Dashboard, Queue};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// ChromeDriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut driver = Driver { child, port };
        // Ready once it answers its status; one that exits first fails the test rather than hang it.
        while !driver.try_call("GET", "/status", None).is_some_and(|v| v["value"]["ready"] == json!(true)) {
            let exited = driver.child.try_wait().expect("chromedriver's status can be read");
            assert!(exited.is_none(), "chromedriver exited before it was ready: {exited:?}");
            std::thread::yield_now();
        }
        driver
    }

    /// One WebDriver command; `None` if ChromeDriver does not answer (yet).
    fn try_call(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        // ChromeDriver keeps the connection open whatever the request says: read the head, then as many
        // bytes as its Content-Length says.
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).ok()?;
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let length: usize = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let reply = self.try_call(method, path, body.as_ref()).expect("chromedriver answers");
        assert!(reply["value"].get("error").is_none(), "{method} {path}: {reply}");
        reply["value"].clone()
    }
}

/// A headless Chromium session.
struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl<'a> Session<'a> {
    fn new(driver: &'a Driver) -> Session<'a> {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--window-size=1200,900"],
            },
        }}});
        let value = driver.call("POST", "/session", Some(capabilities));
        Session { driver, id: value["sessionId"].as_str().expect("a session id").to_string() }
    }

    fn go(&self, url: &str) {
        self.driver.call("POST", &format!("/session/{}/url", self.id), Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let found = self.driver.call(
            "POST",
            &format!("/session/{}/element", self.id),
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        let text = self.driver.call("GET", &format!("/session/{}/element/{element}/text", self.id), None);
        text.as_str().unwrap_or_default().to_string()
    }

    /// The text of `css`'s element, or `None` while the page is loading (no such element yet, or the
    /// one found went stale as the page was replaced).
    fn try_text(&self, css: &str) -> Option<String> {
        let query = json!({"using": "css selector", "value": css});
        let found = self.driver.try_call("POST", &format!("/session/{}/element", self.id), Some(&query))?;
        let element = found["value"][ELEMENT].as_str()?.to_string();
        let text =
            self.driver.try_call("GET", &format!("/session/{}/element/{element}/text", self.id), None)?;
        text["value"].as_str().map(str::to_string)
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.driver.call("POST", &format!("/session/{}/element/{element}/click", self.id), Some(json!({})));
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.driver.try_call("DELETE", &format!("/session/{}", self.id), None);
    }
}

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let required = std::env::var("LEASEQUEUE_BROWSER_TEST").is_ok_and(|v| v == "require");
        assert!(!required, "LEASEQUEUE_BROWSER_TEST=require, but {CHROMIUM} or {CHROMEDRIVER} is missing");
        eprintln!("browser test skipped: install Debian's chromium and chromium-driver to run it");
    }
    present
}

#[test]
fn the_page_shows_the_queues_numbers_and_a_click_redrives_a_dead_letter() {
    if !browser_available() {
        return;
    }
    let queue: Queue<String> = Queue::new();
    for job in ["<b>welcome</b> linus", "welcome ada", "welcome grace"] {
        queue.push(job.to_string()).unwrap();
    }
    queue.try_lease().unwrap().reject("mailbox full").unwrap();
    let dead = queue.dead_letters()[0].id().as_u64();
    let dashboard =
        Dashboard::builder().queue("emails", &queue).refresh_every(Duration::ZERO).build().unwrap();
    let server = dashboard.serve("127.0.0.1:0").unwrap();
    let page = format!("http://{}/queues/emails", server.addr());

    let driver = Driver::start();
    let browser = Session::new(&driver);
    browser.go(&page);
    let stats = queue.stats();
    for (id, value) in [("ready", stats.ready), ("leased", stats.leased), ("dead", stats.dead)] {
        assert_eq!(browser.text(&format!("#stat-{id}")), value.to_string(), "#stat-{id}");
    }
    assert_eq!(browser.text(&format!("#dead-{dead} td:nth-child(2)")), "rejected");
    // The job's text shows as text, markup and all.
    assert_eq!(browser.text(&format!("#dead-{dead} code")), "\"<b>welcome</b> linus\"");

    browser.click(&format!("#redrive-{dead}"));
    // The form posts, the dashboard redirects back, the browser loads the page again. Each look is a
    // round trip to the browser; a bounded number of them, so that a failure fails and never hangs.
    let shown = (0..5_000).filter_map(|_| browser.try_text("#stat-dead")).find(|dead| dead == "0");
    assert_eq!(shown.as_deref(), Some("0"), "the page shows no dead letter after the redrive");
    assert!(queue.dead_letters().is_empty(), "the dead letter left the store");
    assert_eq!(queue.stats().ready, 3, "and is ready in the queue again");
    assert_eq!(browser.text("#stat-ready"), "3");
    assert_eq!(browser.text("#no-dead-letters"), "none");
}
