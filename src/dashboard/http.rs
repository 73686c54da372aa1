//! The dashboard's requests and responses, free of any server: [`Dashboard::serve`](super::Dashboard::serve)
//! converts `tiny_http`'s, and an application that mounts the dashboard in its own server converts its
//! own. Also the small codecs the pages need: URL-encoded forms and query strings, cookies, HTML escaping.

use std::fmt;

/// An HTTP request, as the dashboard reads it: a method, a target (a path with an optional query string,
/// as on the request line), headers and a body. Build one from your own server's request to mount the
/// dashboard there (see [`Dashboard::handle`](super::Dashboard::handle)).
///
/// # Examples
///
/// ```
/// use leasequeue::DashboardRequest;
/// let request = DashboardRequest::new("POST", "/queues/emails/pause")
///     .header("Content-Type", "application/x-www-form-urlencoded")
///     .body("csrf=...");
/// assert_eq!(request.method(), "POST");
/// assert_eq!(request.path(), "/queues/emails/pause");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DashboardRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl DashboardRequest {
    /// A request with no headers and no body.
    ///
    /// # Examples
    ///
    /// ```
    /// let request = leasequeue::DashboardRequest::new("GET", "/metrics");
    /// assert_eq!(request.target(), "/metrics");
    /// ```
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        DashboardRequest { method: method.into(), target: target.into(), ..Self::default() }
    }

    /// Adds a header (names compare without regard to case).
    ///
    /// # Examples
    ///
    /// ```
    /// let request = leasequeue::DashboardRequest::new("GET", "/").header("Authorization", "Bearer s3cret");
    /// assert_eq!(request.header_value("authorization"), Some("Bearer s3cret"));
    /// ```
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    ///
    /// # Examples
    ///
    /// ```
    /// let request = leasequeue::DashboardRequest::new("POST", "/").body("a=1");
    /// assert_eq!(request.body_bytes(), b"a=1");
    /// ```
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The method, as sent (`GET`, `POST`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::DashboardRequest::new("GET", "/").method(), "GET");
    /// ```
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The target: the path and the query string, as on the request line.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::DashboardRequest::new("GET", "/?a=1").target(), "/?a=1");
    /// ```
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The target's path, without the query string.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::DashboardRequest::new("GET", "/queues/a?token=t").path(), "/queues/a");
    /// ```
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&*self.target, |(path, _)| path)
    }

    /// The target's query string, if it has one.
    pub(crate) fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The value of the first header of that name (compared without regard to case).
    ///
    /// # Examples
    ///
    /// ```
    /// let request = leasequeue::DashboardRequest::new("GET", "/").header("Cookie", "a=1");
    /// assert_eq!(request.header_value("COOKIE"), Some("a=1"));
    /// assert_eq!(request.header_value("Accept"), None);
    /// ```
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(leasequeue::DashboardRequest::new("GET", "/").body_bytes().is_empty());
    /// ```
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The value of a cookie the request carries.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// An HTTP response from the dashboard: a status, headers and a body, for your own server to send (see
/// [`Dashboard::handle`](super::Dashboard::handle)).
///
/// # Examples
///
/// ```
/// use leasequeue::{Dashboard, DashboardRequest, Queue};
/// let queue: Queue<u32> = Queue::new();
/// let dashboard = Dashboard::builder().queue("numbers", &queue).build().unwrap();
/// let response = dashboard.handle(&DashboardRequest::new("GET", "/no/such/page"));
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.header("Content-Type"), Some("text/plain; charset=utf-8"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DashboardResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl DashboardResponse {
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        DashboardResponse {
            status,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                // The pages are the dashboard's own: no framing by other sites, no sniffing, no caching.
                ("X-Frame-Options".into(), "DENY".into()),
                ("X-Content-Type-Options".into(), "nosniff".into()),
                ("Cache-Control".into(), "no-store".into()),
                ("Content-Security-Policy".into(), "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'".into()),
            ],
            body: body.into(),
        }
    }

    pub(crate) fn html(body: String) -> Self {
        Self::new(200, "text/html; charset=utf-8", body)
    }

    pub(crate) fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// A `303 See Other` to `location` (after an action: the browser loads the page again with a GET).
    pub(crate) fn see_other(location: &str) -> Self {
        Self::text(303, "").with_header("Location", location)
    }

    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The status code.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let response = dashboard.handle(&leasequeue::DashboardRequest::new("GET", "/"));
    /// assert_eq!(response.status(), 200);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let response = dashboard.handle(&leasequeue::DashboardRequest::new("GET", "/"));
    /// assert!(response.headers().iter().any(|(name, _)| name == "Content-Type"));
    /// ```
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The value of the first header of that name (compared without regard to case).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let response = dashboard.handle(&leasequeue::DashboardRequest::new("GET", "/metrics"));
    /// assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let response = dashboard.handle(&leasequeue::DashboardRequest::new("GET", "/"));
    /// assert!(String::from_utf8_lossy(response.body()).contains("<html"));
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dashboard = leasequeue::Dashboard::builder().build().unwrap();
    /// let body = dashboard.handle(&leasequeue::DashboardRequest::new("GET", "/metrics")).into_body();
    /// assert!(body.is_empty() || body.ends_with(b"\n"));
    /// ```
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

impl fmt::Debug for DashboardResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// A request the dashboard cannot read (a bad percent-escape, a body that is not UTF-8).
#[derive(Debug)]
pub(crate) struct Malformed;

/// The pairs of a URL-encoded form or query string (`a=1&b=x+y`), decoded.
pub(crate) fn parse_pairs(input: &str) -> Result<Vec<(String, String)>, Malformed> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Decodes one URL-encoded component: `+` is a space, `%XX` a byte; the bytes must be UTF-8.
pub(crate) fn decode(input: &str) -> Result<String, Malformed> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(Malformed)?;
                let hex = std::str::from_utf8(hex).map_err(|_| Malformed)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| Malformed)?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Malformed)
}

/// Escapes text for HTML, in element content and in quoted attribute values alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether two secrets are equal, in a time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_reject_bad_escapes() {
        let pairs = parse_pairs("a=1&b=x+y%21&flag&&c=%E2%9C%93").unwrap();
        assert_eq!(
            pairs,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("flag".into(), String::new()),
                ("c".into(), "✓".into())
            ]
        );
        assert!(parse_pairs("a=%4").is_err());
        assert!(parse_pairs("a=%zz").is_err());
        assert!(parse_pairs("a=%FF").is_err(), "not UTF-8");
    }

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn cookies_and_secrets() {
        let request = DashboardRequest::new("GET", "/").header("Cookie", "a=1; leasequeue_token=t0k; b=2");
        assert_eq!(request.cookie("leasequeue_token"), Some("t0k"));
        assert_eq!(request.cookie("c"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
