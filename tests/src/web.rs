//! A small HTTP/1.1 client for the page server's tests, and a minimal
//! WebDriver client for driving headless Chromium through `chromedriver`
//! (the few commands the browser tests need, over the same HTTP client).

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `addr` (`127.0.0.1:PORT`) and reads the response.
/// `headers` are sent as given (a `Host` among them replaces the default).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("write: {e}"));
    // Read until the response is complete by its own framing: chromedriver
    // answers `Connection: close` but keeps the socket open.
    let read = async {
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Some(response) = complete(&raw) {
                return response;
            }
            let n = stream.read(&mut buf).await.unwrap_or_else(|e| panic!("read: {e}"));
            if n == 0 {
                return parse(&raw, raw.len());
            }
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} on {addr}: no complete answer within 60 s"))
}

/// The response in `raw`, if all of it has arrived (by `Content-Length`, or
/// the last chunk); `None` while more is due or until the peer closes.
fn complete(raw: &[u8]) -> Option<HttpResponse> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let body = &raw[head_end..];
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) if body.len() >= n => Some(parse(raw, head_end + n)),
        Some(_) => None,
        None if head.contains("transfer-encoding: chunked") && dechunk(body).1 => {
            Some(parse(raw, raw.len()))
        }
        None => None,
    }
}

fn parse(raw: &[u8], end: usize) -> HttpResponse {
    let raw = &raw[..end.min(raw.len())];
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = &raw[head_end..];
    let body = if chunked { dechunk(body).0 } else { body.to_vec() };
    HttpResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

/// The data of a chunked body, and whether its last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..line_end]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        let after = &rest[line_end + 2..];
        if n == 0 {
            return (out, true);
        }
        if after.len() < n + 2 {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = &after[n + 2..];
    }
    (out, false)
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where `chromedriver` is, if installed.
pub fn chromedriver() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// `chromedriver`, for a browser test; `None` (the test skips, and says
/// so) when it is not installed, unless `COVE_REQUIRE_BROWSER` is set, as
/// `.ci/run` sets it: then a missing browser fails the test.
pub fn chromedriver_or_skip() -> Option<std::path::PathBuf> {
    let found = chromedriver();
    if found.is_none() {
        assert!(
            std::env::var_os("COVE_REQUIRE_BROWSER").is_none(),
            "chromedriver is not installed, and this run requires the browser test"
        );
        eprintln!("skipped: chromedriver is not installed (.ci/run installs it)");
    }
    found
}

/// Saves a screenshot of the page as `target/ui-screenshots/NAME.png`.
pub async fn save_screenshot(browser: &Browser<'_>, name: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
        std::path::PathBuf::from,
    );
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// A running `chromedriver`, stopped on drop.
pub struct Driver {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it answers.
    pub async fn start(binary: &std::path::Path) -> Self {
        let port = crate::harness::free_port();
        let child = std::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start chromedriver: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, addr }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    /// A WebDriver call; an error status comes back as its JSON text.
    async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let body =
            if method == "GET" || method == "DELETE" { String::new() } else { body.to_string() };
        let response = http(
            &self.addr,
            method,
            path,
            &[("Content-Type", "application/json; charset=utf-8")],
            &body,
        )
        .await;
        let value: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}: {}", response.body));
        if response.status >= 400 {
            return Err(value.to_string());
        }
        Ok(value["value"].clone())
    }

    /// A new headless browser session.
    pub async fn session(&self) -> Browser<'_> {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1200,1500", "--no-first-run", "--disable-extensions"]
            }
        }}});
        let value = self.call("POST", "/session", caps).await;
        let id =
            value["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {value}")).to_owned();
        Browser { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Browser<'_> {
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.driver.call(method, &format!("/session/{}{path}", self.id), body).await
    }

    /// Opens `url`.
    pub async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    /// Resizes the window (in headless Chromium, the viewport) to
    /// `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", json!({ "width": width, "height": height })).await;
    }

    /// The address the browser is at.
    pub async fn url(&self) -> String {
        self.call("GET", "/url", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body) and returns its value.
    pub async fn run(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// The element matching `css` (panics if none).
    pub async fn find(&self, css: &str) -> String {
        let value =
            self.call("POST", "/element", json!({ "using": "css selector", "value": css })).await;
        value
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {value}"))
            .to_owned()
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/value"), json!({ "text": text })).await;
    }

    /// Clicks the element matching `css`. A live update can swap the page's
    /// main part between finding and clicking; a person would click the new
    /// button in the same place, so a stale element is found again.
    pub async fn click(&self, css: &str) {
        for _ in 0..5 {
            let element = self.find(css).await;
            let path = format!("/session/{}/element/{element}/click", self.id);
            let response = self.driver.try_call("POST", &path, json!({})).await;
            match response {
                Ok(_) => return,
                Err(e) if e.contains("stale element reference") => continue,
                Err(e) => panic!("webdriver POST {path}: {e}"),
            }
        }
        panic!("{css} went stale five times in a row");
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.run("return document.body.innerText;").await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to `within`) until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.text().await.contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self.call("GET", "/screenshot", Value::Null).await;
        decode_base64(value.as_str().unwrap_or_default())
    }

    /// Ends the session.
    pub async fn close(self) {
        self.driver.call("DELETE", &format!("/session/{}", self.id), Value::Null).await;
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for b in text.bytes() {
        let Some(v) = ALPHABET.iter().position(|a| *a == b) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
