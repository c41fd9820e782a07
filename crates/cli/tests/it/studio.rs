//! `neural-style serve` end to end: the real binary on a loopback port, real
//! weights, candle, one thread, 64-px jobs.
//!
//! - every endpoint, including hostile requests (oversize and bomb uploads,
//!   non-images, path-traversal names, wrong Host/Origin, malformed job
//!   parameters), after which the server must still answer and paint;
//! - two clients racing for the job slot, every client seeing the queue;
//! - a client dropping its event stream (and an upload) mid-way;
//! - Stop keeping the best image; SIGTERM and SIGHUP saving the job in
//!   flight, without waiting on a stalled client; a second signal quitting at
//!   once and still removing the private directory;
//! - the per-server token on every route; half-sent requests cut off under a
//!   low open-files limit with a job painting; the upload pixel cap; the
//!   bounds of the queue, the uploads and the gallery;
//! - a page job and the command line giving the same image, byte for byte;
//! - the page in a real browser (Chromium + chromedriver via WebDriver),
//!   which saves a screenshot to `target/studio.png`.
//!
//! The HTTP client here is a few lines over `TcpStream`, so that a test can
//! send exactly the bytes it means (bad headers, cut-off bodies).
//!
//! `NEURAL_STYLE_STUDIO_BIN=PATH` runs the servers of these tests from another
//! build (how each defect's test was seen to fail before its fix).

use image::{ImageFormat, Rgb, RgbImage};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_neural-style");

/// A running `neural-style serve`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    /// The token of the URL it printed (none with `--no-token`).
    token: Option<String>,
    /// `name=value` of the cookie a browser got for that URL.
    cookie: Option<String>,
    /// The private upload directory it reported.
    uploads: PathBuf,
    /// Everything it wrote to stderr.
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Server::start_with(extra, |_| {})
    }

    /// Starts it with `setup` applied to its command first.
    fn start_with(extra: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let bin = std::env::var("NEURAL_STYLE_STUDIO_BIN").unwrap_or_else(|_| BIN.to_string());
        let mut cmd = Command::new(bin);
        setup(&mut cmd);
        let mut child = cmd
            .args(["serve", "--bind", "127.0.0.1:0", "--threads", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let (mut port, mut uploads, mut token) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while port.is_none() || uploads.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!("the server did not start:\n{}", log.lock().unwrap());
            };
            if let Some(rest) = line.strip_prefix("neural-style studio: http://127.0.0.1:") {
                assert!(rest.contains("loopback only"), "start-up line: {line}");
                port = rest.split('/').next().and_then(|p| p.parse().ok());
                token = rest
                    .split_once("/?token=")
                    .map(|(_, t)| t.split(' ').next().unwrap().to_string());
            }
            if let Some(rest) = line.strip_prefix("uploads in ") {
                uploads = rest.split(" (").next().map(PathBuf::from);
            }
        }
        let mut server = Server {
            child,
            port: port.unwrap(),
            token,
            cookie: None,
            uploads: uploads.unwrap(),
            log,
        };
        if server.token.is_some() {
            server.cookie = Some(server.exchange());
        }
        server
    }

    /// The URL it printed: with its token, as a user opens it.
    fn url(&self) -> String {
        match &self.token {
            Some(t) => format!("{}/?token={t}", self.origin()),
            None => format!("{}/", self.origin()),
        }
    }

    /// Opens the printed URL as a browser would: the answer is a redirect to
    /// the URL without the token and a cookie; returns the cookie's `name=value`.
    fn exchange(&self) -> String {
        let token = self.token.as_ref().expect("a token");
        let r = self.send_raw("GET", &format!("/?token={token}"), &[], b"");
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(r.header("location"), Some("/"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let set = r.header("set-cookie").expect("a cookie").to_string();
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict"), "{set}");
        assert!(set.contains("Path=/"), "{set}");
        assert!(set.contains(token.as_str()), "{set}");
        set.split(';').next().unwrap().to_string()
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], b"")
    }

    /// A POST from the page: this server's Origin.
    fn post(&self, path: &str, body: &[u8]) -> Response {
        let origin = self.origin();
        self.send("POST", path, &[("Origin", &origin)], body)
    }

    fn post_json(&self, path: &str, body: &Value) -> Response {
        let origin = self.origin();
        self.send(
            "POST",
            path,
            &[("Origin", &origin), ("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// One request on a fresh connection, with the cookie a browser has.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        match &self.cookie {
            Some(c) => {
                let mut with = headers.to_vec();
                with.push(("Cookie", c));
                self.send_raw(method, path, &with, body)
            }
            None => self.send_raw(method, path, headers, body),
        }
    }

    /// The request head `send` would write (without `Connection: close`).
    fn head(&self, method: &str, path: &str, headers: &[(&str, &str)], length: usize) -> String {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host());
        if let Some(c) = &self.cookie {
            head.push_str(&format!("Cookie: {c}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
        head
    }

    /// One request on a fresh connection, nothing added but `Host` (unless given).
    fn send_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.host()));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut s = self.connect();
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) before reading a large body and close:
        // the rest of the body may not go through, which is fine.
        let _ = s.write_all(body);
        read_response(&mut s)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }

    fn upload(&self, name: &str, bytes: &[u8]) -> Value {
        let r = self.post(&format!("/api/uploads?name={name}"), bytes);
        assert_eq!(r.status, 201, "upload {name}: {}", r.text());
        r.json()
    }

    fn state(&self) -> Value {
        let r = self.get("/api/state");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Polls the state until `done` says so.
    fn wait_for(&self, what: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        self.poll(what, secs, || Some(self.state()).filter(|s| done(s)))
    }

    /// Calls `f` every 50 ms until it gives something, failing after `secs`
    /// with the server's log.
    fn poll<T>(&self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; state {}\nserver log:\n{}",
                if self.child_running() {
                    self.get("/api/state").text()
                } else {
                    "(exited)".into()
                },
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts the server still answers and still paints (after hostile requests).
    fn assert_alive(&self) {
        let r = self.get("/api/config");
        assert_eq!(r.status, 200, "the server no longer answers: {}", r.text());
        assert!(
            self.child_running(),
            "the server exited:\n{}",
            self.log.lock().unwrap()
        );
    }

    fn child_running(&self) -> bool {
        // A zombie (exited, not yet reaped) counts as gone.
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The error message of a JSON error.
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn read_response(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the response (a large body left unread) ends it too.
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..i])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 || b.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[(i + 4 + size).min(b.len())..];
    }
    out
}

/// An open `GET /api/events` stream.
struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    fn open(server: &Server) -> Events {
        let mut s = server.connect();
        let cookie = server
            .cookie
            .as_ref()
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /api/events HTTP/1.1\r\nHost: {}\r\n{cookie}Accept: text/event-stream\r\n\r\n",
            server.host()
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "events: {line}");
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Events { reader }
    }

    /// The next event (name, JSON), skipping keep-alive comments.
    fn next(&mut self) -> (String, Value) {
        let (mut name, mut data) = (String::new(), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).expect("event stream");
            assert!(n > 0, "the event stream ended");
            let l = line.trim_end_matches(['\r', '\n']);
            // Chunk sizes of the chunked encoding are lines of hex digits.
            if l.is_empty() {
                if !data.is_empty() {
                    return (name, serde_json::from_str(&data).expect("event JSON"));
                }
            } else if let Some(v) = l.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = l.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }

    /// Reads events until `f` accepts one.
    fn until(&mut self, what: &str, f: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            assert!(Instant::now() < deadline, "no event: {what}");
            let (n, v) = self.next();
            if f(&n, &v) {
                return v;
            }
        }
    }
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The content (80×60, so 64 px makes it 64×48) and a style, as in tests/it/cli.rs.
fn content_image() -> RgbImage {
    RgbImage::from_fn(80, 60, |x, y| {
        let check = if (x / 8 + y / 8) % 2 == 0 { 40 } else { 210 };
        Rgb([(x * 3) as u8, (y * 4) as u8, check])
    })
}

fn style_image() -> RgbImage {
    RgbImage::from_fn(48, 48, |x, y| {
        if ((x + y) / 6) % 2 == 0 {
            Rgb([230, 60, 30])
        } else {
            Rgb([20, 40, (250 - x * 4) as u8])
        }
    })
}

/// Uploads the content and the style; their ids.
fn upload_pair(server: &Server) -> (u64, u64) {
    let c = server.upload("content.png", &png(&content_image()));
    let s = server.upload("style.png", &png(&style_image()));
    (c["id"].as_u64().unwrap(), s["id"].as_u64().unwrap())
}

fn job(content: u64, style: u64, options: Value) -> Value {
    json!({ "content": content, "styles": [style], "options": options })
}

fn submit(server: &Server, body: &Value) -> u64 {
    let r = server.post_json("/api/jobs", body);
    assert_eq!(r.status, 202, "submit: {}", r.text());
    r.json()["jobs"][0].as_u64().unwrap()
}

fn gallery_item(state: &Value, job: u64) -> Option<Value> {
    state["gallery"]
        .as_array()?
        .iter()
        .find(|i| i["job"] == job)
        .cloned()
}

fn running_iteration(state: &Value, job: u64) -> u64 {
    if state["running"]["id"] == job {
        state["running"]["iteration"].as_u64().unwrap_or(0)
    } else {
        0
    }
}

use crate::support::decode;

/// A BMP whose header declares `w × h` and nothing more (a decompression bomb's start).
fn bmp_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    for v in [54u32, 0, 54, 40, w, h] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&1u16.to_le_bytes()); // planes
    out.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
    out.extend_from_slice(&[0; 24]); // no compression, sizes, palette
    out
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_endpoint_and_hostile_requests_leave_the_server_up() {
    let server = Server::start(&["--max-upload-mib", "1", "--max-size", "128"]);

    // The page and its assets, embedded.
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("neural-style <span>studio</span>"));
    assert!(page.header("content-security-policy").is_some());
    assert_eq!(server.get("/studio.js").status, 200);
    assert_eq!(server.get("/studio.css").status, 200);
    let config = server.get("/api/config").json();
    assert_eq!(config["max_size"], 128);
    assert!(config["presets"]["keras"].is_object(), "{config}");
    assert!(config["defaults"]["style-weight"].is_number(), "{config}");
    for s in config["samples"].as_array().unwrap() {
        let r = server.get(&format!("/samples/{}", s["name"].as_str().unwrap()));
        assert_eq!(r.status, 200);
        decode(&r.body);
    }

    // Uploads: a good one, with a hostile name that stays a label.
    let before_tmp = names_in(&std::env::temp_dir());
    let good = server.upload("..%2F..%2F..%2Ftmp%2Fevil.png", &png(&content_image()));
    assert_eq!(good["name"], "evil.png");
    assert_eq!(
        (good["width"].as_u64(), good["height"].as_u64()),
        (Some(80), Some(60))
    );
    let id = good["id"].as_u64().unwrap();
    let thumb = server.get(&format!("/api/uploads/{id}/thumb.png"));
    assert_eq!(thumb.status, 200);
    assert_eq!(decode(&thumb.body).width(), 80);
    let style = server.upload("style.png", &png(&style_image()))["id"]
        .as_u64()
        .unwrap();
    assert!(!std::env::temp_dir().join("evil.png").exists());
    assert!(names_in(&std::env::temp_dir())
        .iter()
        .all(|n| before_tmp.contains(n) || n.starts_with("neural-style") || !n.contains("evil")));

    // Oversize: declared, and streamed without a length.
    let big = vec![0x89u8; (1 << 20) + 100];
    let r = server.post("/api/uploads?name=big.png", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("1 MiB"), "{}", r.error());
    let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
    chunked.extend_from_slice(&big);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let origin = server.origin();
    let r = server.send(
        "POST",
        "/api/uploads?name=big.png",
        &[("Origin", &origin), ("Transfer-Encoding", "chunked")],
        &chunked,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    // A decompression bomb: the header declares 40000×40000.
    let r = server.post(
        "/api/uploads?name=bomb.png",
        &bmp_header_only(40_000, 40_000),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("too large"), "{}", r.error());
    assert!(
        r.error().contains("bomb.png"),
        "names the upload: {}",
        r.error()
    );
    assert!(
        !r.error().contains(&*server.uploads.to_string_lossy()),
        "no private path: {}",
        r.error()
    );
    // Not images: text, a truncated PNG, an empty body.
    let r = server.post("/api/uploads?name=notes.txt", b"hello, not an image");
    assert_eq!(r.status, 415, "{}", r.text());
    let p = png(&content_image());
    let r = server.post("/api/uploads?name=cut.png", &p[..p.len() / 2]);
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(server.post("/api/uploads?name=empty.png", b"").status, 400);
    // Only server-chosen names in the private directory: the two accepted uploads.
    let names = names_in(&server.uploads);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("upload-") && n.ends_with(".png")),
        "{names:?}"
    );

    // Path traversal in URLs: nothing outside the routes is ever read.
    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/samples/..%2F..%2FCargo.toml",
        "/samples/../../Cargo.toml",
        "/api/uploads/..%2F..%2Fetc%2Fpasswd/thumb.png",
        "/api/uploads/-1/thumb.png",
        "/api/gallery/1/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/jobs/99/preview.png",
    ] {
        let r = server.get(path);
        assert!(
            matches!(r.status, 400 | 404),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("root:"), "{path}");
    }

    // Wrong Origin, no Origin, foreign Host (DNS rebinding): refused, nothing changes.
    let body = job(id, style, json!({"size": 64, "iterations": 2})).to_string();
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1:1",
        "https://127.0.0.1",
    ] {
        let r = server.send(
            "POST",
            "/api/jobs",
            &[("Origin", origin), ("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 403, "Origin {origin}: {}", r.text());
        let r = server.send(
            "POST",
            "/api/uploads?name=x.png",
            &[("Origin", origin)],
            &png(&style_image()),
        );
        assert_eq!(r.status, 403, "Origin {origin}: {}", r.text());
    }
    let r = server.send("POST", "/api/jobs", &[], body.as_bytes());
    assert_eq!(r.status, 403, "no Origin: {}", r.text());
    let evil_host = format!("evil.example:{}", server.port);
    let evil_origin = format!("http://{evil_host}");
    let r = server.send("GET", "/api/state", &[("Host", &evil_host)], b"");
    assert_eq!(r.status, 421, "{}", r.text());
    let r = server.send(
        "POST",
        "/api/jobs",
        &[("Host", &evil_host), ("Origin", &evil_origin)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 421, "{}", r.text());
    let r = server.send(
        "POST",
        "/api/jobs/1/stop",
        &[("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(names_in(&server.uploads).len(), 2);
    let s = server.state();
    assert!(
        s["running"].is_null() && s["queue"].as_array().unwrap().is_empty(),
        "{s}"
    );

    // Malformed parameters: clear messages, nothing queued.
    let bad: Vec<(Value, &str)> = vec![
        (json!("not an object"), ""),
        (json!({"content": id}), "styles"),
        (job(id, style, json!({"size": "big"})), "size"),
        (job(id, style, json!({"size": -5})), "size"),
        (job(id, style, json!({"colour": 1})), "colour"),
        (job(id, style, json!({"iterations": 0})), "iterations"),
        (job(id, style, json!({"size": 4096})), "--max-size"),
        (job(id, style, json!({"scales": [64, 4096]})), "--max-size"),
        (
            job(id, style, json!({"size": 64, "style-size": 4096})),
            "--max-size",
        ),
        (
            job(id, style, json!({"size": 128, "style-scale": 4})),
            "--max-size",
        ),
        (
            job(id, style, json!({"size": 64, "iterations": 1_000_000_000})),
            "--max-iterations",
        ),
        (
            job(
                id,
                style,
                json!({"size": 64, "scales": [32, 64], "scale-iterations": [4000, 4000]}),
            ),
            "--max-iterations",
        ),
        (job(id, style, json!({"backend": "tch"})), "backend"),
        (job(id, style, json!({"weights": "/etc/passwd"})), "weights"),
        (job(id, style, json!({"optimizer": "sgd"})), "optimizer"),
        (job(id, style, json!({"init": "image"})), "init"),
        (job(id, 999, json!({})), "999"),
        (json!({"content": id, "styles": [], "options": {}}), "style"),
        (
            json!({"content": id, "styles": [style], "strengths": [1, -2]}),
            "strengths",
        ),
        // A strength whose style weight overflows is named (it said
        // `invalid type: null`: the infinite weight became JSON's null).
        (
            json!({"content": id, "styles": [style], "options": {"size": 64}, "strengths": [1e308]}),
            "strengths",
        ),
        (
            json!({"content": id, "styles": [style], "init": {"gallery": 42}}),
            "42",
        ),
        (
            json!({"content": id, "styles": [style], "extra": 1}),
            "extra",
        ),
    ];
    for (body, needle) in &bad {
        let r = server.post_json("/api/jobs", body);
        assert!(
            matches!(r.status, 400 | 415 | 422),
            "{body}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.error().contains(needle),
            "{body}: the message should name {needle}: {}",
            r.error()
        );
    }
    let r = server.send(
        "POST",
        "/api/jobs",
        &[("Origin", &origin), ("Content-Type", "application/json")],
        b"{\"content\": 1, ",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let s = server.state();
    assert!(
        s["running"].is_null() && s["queue"].as_array().unwrap().is_empty(),
        "{s}"
    );
    assert_eq!(server.post("/api/jobs/12345/stop", b"").status, 404);
    assert_eq!(server.post("/api/jobs/abc/stop", b"").status, 404);

    // A job whose options only fail once painting starts (a layer the network
    // does not have) fails on the page, not the server.
    let r = server.post_json(
        "/api/jobs",
        &job(
            id,
            style,
            json!({"size": 64, "iterations": 2, "style-layers": "relu9_9"}),
        ),
    );
    if r.status == 202 {
        let failed = r.json()["jobs"][0].clone();
        let s = server.wait_for("the failure", 120, |s| {
            s["failed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["job"] == failed)
        });
        let f = s["failed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["job"] == failed)
            .unwrap()
            .clone();
        assert!(f["error"].as_str().unwrap().contains("relu9_9"), "{f}");
    } else {
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.error().contains("relu9_9"), "{}", r.error());
    }

    // Still up, and still paints.
    server.assert_alive();
    let j = submit(
        &server,
        &job(id, style, json!({"size": 64, "iterations": 3})),
    );
    let s = server.wait_for("the job", 180, |s| gallery_item(s, j).is_some());
    let item = gallery_item(&s, j).unwrap();
    assert_eq!(item["iterations"], 3);
    assert_eq!(item["content"], "evil.png");
    let iid = item["id"].as_u64().unwrap();
    for (file, kind, format) in [
        ("image.png", "image/png", ImageFormat::Png),
        ("image.jpg", "image/jpeg", ImageFormat::Jpeg),
        ("thumb.png", "image/png", ImageFormat::Png),
    ] {
        let r = server.get(&format!("/api/gallery/{iid}/{file}"));
        assert_eq!(r.status, 200, "{file}");
        assert_eq!(r.header("content-type"), Some(kind));
        assert_eq!(image::guess_format(&r.body).unwrap(), format);
        assert_eq!(decode(&r.body).dimensions(), (64, 48), "{file}");
    }
    assert!(server
        .get(&format!("/api/gallery/{iid}/image.png"))
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    server.assert_alive();
}

#[test]
fn two_clients_race_for_the_job_slot_and_every_tab_sees_the_queue() {
    let server = Arc::new(Server::start(&[]));
    let (c, s) = upload_pair(&server);
    let mut tab = Events::open(&server);
    let first = tab.next();
    assert_eq!(first.0, "state", "a tab gets the state first");
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|k| {
            let (server, barrier) = (server.clone(), barrier.clone());
            std::thread::spawn(move || {
                let body = job(c, s, json!({"size": 64, "iterations": 40, "seed": k}));
                barrier.wait();
                submit(&server, &body)
            })
        })
        .collect();
    let ids: Vec<u64> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_ne!(ids[0], ids[1]);
    // One paints, the other waits at position 1 — as every tab sees it.
    let seen = tab.until("one running, one queued", |n, v| {
        n == "state"
            && !v["running"].is_null()
            && v["queue"].as_array().is_some_and(|q| q.len() == 1)
    });
    let running = seen["running"]["id"].as_u64().unwrap();
    let waiting = seen["queue"][0]["id"].as_u64().unwrap();
    assert_eq!(seen["queue"][0]["position"], 1);
    let mut both = vec![running, waiting];
    both.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(both, expected);
    let mut other_tab = Events::open(&server);
    let (name, snapshot) = other_tab.next();
    assert_eq!(name, "state");
    assert!(
        snapshot["running"]["id"] == running || snapshot["queue"].as_array().unwrap().is_empty(),
        "{snapshot}"
    );
    // Both finish, in queue order, never two at once.
    let s = server.wait_for("both jobs", 300, |s| {
        assert!(s["queue"].as_array().unwrap().len() <= 1);
        ids.iter().all(|&j| gallery_item(s, j).is_some())
    });
    let g = s["gallery"].as_array().unwrap();
    assert_eq!(g[0]["job"], running);
    assert_eq!(g[1]["job"], waiting);
    assert!(g
        .iter()
        .all(|i| i["iterations"] == 40 && i["stopped"] == false));
    server.assert_alive();
}

#[test]
fn a_client_leaving_mid_stream_or_mid_upload_stops_nothing() {
    let server = Server::start(&["--preview-every", "1"]);
    let (c, s) = upload_pair(&server);
    // An upload cut off half-way: a Content-Length the client never fills.
    let mut half = server.connect();
    let p = png(&content_image());
    let origin = server.origin();
    half.write_all(
        server
            .head(
                "POST",
                "/api/uploads?name=half.png",
                &[("Origin", &origin)],
                p.len(),
            )
            .as_bytes(),
    )
    .unwrap();
    half.write_all(&p[..p.len() / 2]).unwrap();
    half.shutdown(Shutdown::Both).unwrap();
    drop(half);
    // A tab watches a job's first progress and preview, then goes away.
    let mut tab = Events::open(&server);
    let id = submit(&server, &job(c, s, json!({"size": 64, "iterations": 12})));
    tab.until("progress", |n, v| n == "progress" && v["job"] == id);
    let preview = tab.until("a preview", |n, v| n == "preview" && v["job"] == id);
    let r = server.get(&format!(
        "/api/jobs/{id}/preview.png?i={}",
        preview["iteration"]
    ));
    if r.status == 200 {
        assert_eq!(decode(&r.body).dimensions(), (64, 48));
    }
    tab.reader.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(tab);
    let s = server.wait_for("the job to finish", 180, |s| gallery_item(s, id).is_some());
    let item = gallery_item(&s, id).unwrap();
    assert_eq!(item["stopped"], false);
    assert_eq!(item["iterations"], 12);
    // The half upload was never stored.
    let names = names_in(&server.uploads);
    assert!(
        names.iter().filter(|n| n.starts_with("upload-")).count() == 2,
        "{names:?}"
    );
    server.assert_alive();
}

#[test]
fn stop_keeps_the_best_image_so_far_and_queued_jobs_can_be_cancelled() {
    let server = Server::start(&[]);
    let (c, s) = upload_pair(&server);
    let long = submit(&server, &job(c, s, json!({"size": 64, "iterations": 5000})));
    let queued = submit(&server, &job(c, s, json!({"size": 64, "iterations": 5000})));
    server.wait_for("iteration 3", 180, |s| running_iteration(s, long) >= 3);
    // Cancel the queued one: it leaves the queue, no result.
    assert_eq!(
        server.post(&format!("/api/jobs/{queued}/stop"), b"").status,
        200
    );
    assert!(server.state()["queue"].as_array().unwrap().is_empty());
    assert_eq!(
        server.post(&format!("/api/jobs/{long}/stop"), b"").status,
        200
    );
    let st = server.wait_for("the stopped result", 120, |s| {
        gallery_item(s, long).is_some()
    });
    let item = gallery_item(&st, long).unwrap();
    assert_eq!(item["stopped"], true);
    let its = item["iterations"].as_u64().unwrap();
    assert!((3..5000).contains(&its), "{item}");
    assert!(gallery_item(&st, queued).is_none());
    assert!(st["running"].is_null(), "{st}");
    let png = server.get(&format!("/api/gallery/{}/image.png", item["id"]));
    assert_eq!(decode(&png.body).dimensions(), (64, 48));
    server.assert_alive();
}

#[test]
fn compare_paints_one_job_per_strength_and_a_result_can_start_the_next() {
    let server = Server::start(&[]);
    let (c, s) = upload_pair(&server);
    let r = server.post_json(
        "/api/jobs",
        &json!({"content": c, "styles": [s], "strengths": [1, 300],
                "options": {"size": 64, "iterations": 2, "content-weight": 2}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let ids: Vec<u64> = r.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let st = server.wait_for("both strengths", 180, |st| {
        ids.iter().all(|&j| gallery_item(st, j).is_some())
    });
    let items: Vec<Value> = ids.iter().map(|&j| gallery_item(&st, j).unwrap()).collect();
    assert_eq!(items[0]["group"], items[1]["group"]);
    assert!(items[0]["group"].is_u64());
    assert_eq!(items[0]["strength"], 1.0);
    assert_eq!(items[1]["strength"], 300.0);
    assert_eq!(items[0]["options"]["style-weight"], 2.0);
    assert_eq!(items[1]["options"]["style-weight"], 600.0);
    assert!(items[1]["cli"]
        .as_str()
        .unwrap()
        .contains("--style-weight=600"));
    // "Use as init": the next job starts from the first result.
    let from = items[0]["id"].as_u64().unwrap();
    let next = submit(
        &server,
        &json!({"content": c, "styles": [s], "init": {"gallery": from},
                "options": {"size": 64, "iterations": 2}}),
    );
    let st = server.wait_for("the continued job", 180, |st| {
        gallery_item(st, next).is_some()
    });
    let item = gallery_item(&st, next).unwrap();
    assert_eq!(item["options"]["init"], "image");
    let cli = item["cli"].as_str().unwrap();
    assert!(
        cli.contains(&format!("--init-image result-{from}.png")),
        "{cli}"
    );
    server.assert_alive();
}

/// Splits the gallery's command line (words, single quotes).
fn shell_words(s: &str) -> Vec<String> {
    let (mut words, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if !quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            _ => cur.push(ch),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[test]
fn a_page_job_and_its_command_line_paint_the_same_image() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (cp, sp) = (
        dir.path().join("my photo.png"),
        dir.path().join("style.png"),
    );
    content_image().save(&cp).unwrap();
    style_image().save(&sp).unwrap();
    let c = server.upload("my%20photo.png", &std::fs::read(&cp).unwrap())["id"]
        .as_u64()
        .unwrap();
    let s = server.upload("style.png", &std::fs::read(&sp).unwrap())["id"]
        .as_u64()
        .unwrap();
    let options = json!({"size": 64, "iterations": 10, "init": "noise", "seed": 7, "style-weight": 500, "tv-weight": 0.01});
    let id = submit(&server, &job(c, s, options));
    let st = server.wait_for("the job", 180, |st| gallery_item(st, id).is_some());
    let item = gallery_item(&st, id).unwrap();
    let page_png = server
        .get(&format!("/api/gallery/{}/image.png", item["id"]))
        .body;
    // The gallery's "copy the equivalent CLI command", run as a user would.
    let cli = item["cli"].as_str().unwrap();
    assert!(
        cli.starts_with("neural-style -c 'my photo.png' -s style.png -o "),
        "{cli}"
    );
    for flag in [
        "--size=64",
        "--iterations=10",
        "--init=noise",
        "--seed=7",
        "--threads=1",
    ] {
        assert!(cli.contains(flag), "{cli} lacks {flag}");
    }
    let words = shell_words(cli);
    let out = dir
        .path()
        .join(words[words.iter().position(|w| w == "-o").unwrap() + 1].clone());
    let status = Command::new(BIN)
        .args(&words[1..])
        .arg("--quiet")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{cli}");
    let cli_png = std::fs::read(&out).unwrap();
    let (a, b) = (decode(&page_png), decode(&cli_png));
    assert_eq!(a.dimensions(), (64, 48));
    assert!(a == b, "the page's and the command line's pixels differ");
    assert!(page_png == cli_png, "same pixels, but the PNG files differ");
}

/// Sends `sig` to the server.
#[cfg(unix)]
fn signal(server: &Server, sig: i32) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, sig) }, 0);
}

/// A connection that sent an upload's head and a tenth of its body, then stalls.
#[cfg(unix)]
fn stalled_upload(server: &Server) -> TcpStream {
    let mut s = server.connect();
    let origin = server.origin();
    let head = server.head(
        "POST",
        "/api/uploads?name=slow.png",
        &[("Origin", &origin)],
        10_000,
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&[0x89; 1000]).unwrap();
    s
}

/// The first stop signal: the job in flight is stopped and saved to
/// `--gallery`, the open event stream ends, the server exits 0 without
/// waiting for a stalled client, and the private directory is gone.
#[cfg(unix)]
fn a_signal_saves_the_job_in_flight(sig: i32) {
    let gallery = tempfile::tempdir().unwrap();
    let mut server = Server::start(&["--gallery", gallery.path().to_str().unwrap()]);
    let (c, s) = upload_pair(&server);
    let id = submit(&server, &job(c, s, json!({"size": 64, "iterations": 5000})));
    submit(&server, &job(c, s, json!({"size": 64, "iterations": 5000})));
    let mut tab = Events::open(&server);
    server.wait_for("iteration 2", 180, |s| running_iteration(s, id) >= 2);
    // An upload that stalls half-way (the body timeout is 60 s by default).
    let _stalled = stalled_upload(&server);
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    signal(&server, sig);
    server.poll("the server to exit after the signal", 30, || {
        (!server.child_running()).then_some(())
    });
    assert!(
        sent.elapsed() < Duration::from_secs(30),
        "waited on the stalled client"
    );
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "{status:?}\n{}",
        server.log.lock().unwrap()
    );
    // The open event stream was ended, not left hanging.
    let mut rest = Vec::new();
    let _ = tab.reader.read_to_end(&mut rest);
    let names = names_in(gallery.path());
    assert_eq!(names.len(), 2, "one image and its settings: {names:?}");
    let png = names.iter().find(|n| n.ends_with(".png")).unwrap();
    let img = decode(&std::fs::read(gallery.path().join(png)).unwrap());
    assert_eq!(img.dimensions(), (64, 48));
    let meta: Value = serde_json::from_slice(
        &std::fs::read(gallery.path().join(png.replace(".png", ".json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["stopped"], true, "{meta}");
    assert_eq!(meta["job"], id);
    assert!(meta["cli"].as_str().unwrap().starts_with("neural-style "));
    assert!(
        !server.uploads.exists(),
        "the private directory is removed on exit"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_saves_the_job_in_flight_to_the_gallery_directory() {
    a_signal_saves_the_job_in_flight(libc::SIGTERM);
}

/// SIGHUP (the terminal closed, a logout) stops as SIGTERM does: before, it
/// killed the server, losing the job in flight and the private directory.
#[cfg(unix)]
#[test]
fn sighup_saves_the_job_in_flight_as_sigterm_does() {
    a_signal_saves_the_job_in_flight(libc::SIGHUP);
}

/// A second signal quits at once (130) and still removes the private
/// directory; before, it left the uploads behind.
#[cfg(unix)]
#[test]
fn a_second_signal_quits_at_once_and_removes_the_private_directory() {
    let mut server = Server::start(&[]);
    let (c, s) = upload_pair(&server);
    let id = submit(&server, &job(c, s, json!({"size": 64, "iterations": 5000})));
    server.wait_for("iteration 2", 180, |s| running_iteration(s, id) >= 2);
    let _stalled = stalled_upload(&server);
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.uploads.exists());
    signal(&server, libc::SIGTERM);
    server.poll("the first signal to be seen", 30, || {
        server
            .log
            .lock()
            .unwrap()
            .contains("SIGTERM: stopping")
            .then_some(())
    });
    signal(&server, libc::SIGTERM);
    server.poll("the server to exit", 30, || {
        (!server.child_running()).then_some(())
    });
    let status = server.child.wait().unwrap();
    assert!(
        matches!(status.code(), Some(130) | Some(0)),
        "{status:?}\n{}",
        server.log.lock().unwrap()
    );
    assert!(
        !server.uploads.exists(),
        "the private directory is left behind: {:?}\n{}",
        names_in(&server.uploads),
        server.log.lock().unwrap()
    );
}

/// Every route of `src/serve/routes.rs`, found in its source (a new route
/// fails this test until it is listed here), refuses a request without the
/// server's token or with a wrong one (401), and serves it with the token.
#[test]
fn every_route_needs_the_token() {
    let server = Server::start(&[]);
    let token = server.token.clone().expect("the start-up URL has a token");
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    // Real ids behind the routes: uploads, a finished job, its result.
    let (c, s) = upload_pair(&server);
    let j = submit(&server, &job(c, s, json!({"size": 64, "iterations": 2})));
    let st = server.wait_for("the job", 180, |st| gallery_item(st, j).is_some());
    let item = gallery_item(&st, j).unwrap()["id"].as_u64().unwrap();
    let job_body = job(c, s, json!({"size": 64, "iterations": 2}))
        .to_string()
        .into_bytes();
    let image = png(&style_image());
    let concrete = |pattern: &str| -> Option<(&'static str, String, Vec<u8>)> {
        Some(match pattern {
            "/" | "/studio.js" | "/studio.css" | "/api/config" | "/api/state" | "/api/events" => {
                ("GET", pattern.to_string(), vec![])
            }
            "/samples/{name}" => ("GET", "/samples/tubingen.jpg".into(), vec![]),
            "/api/uploads" => ("POST", "/api/uploads?name=x.png".into(), image.clone()),
            "/api/uploads/{id}/thumb.png" => ("GET", format!("/api/uploads/{c}/thumb.png"), vec![]),
            "/api/jobs" => ("POST", "/api/jobs".into(), job_body.clone()),
            "/api/jobs/{id}/stop" => ("POST", format!("/api/jobs/{j}/stop"), vec![]),
            "/api/jobs/{id}/preview.png" => ("GET", format!("/api/jobs/{j}/preview.png"), vec![]),
            "/api/gallery/{id}/{file}" => ("GET", format!("/api/gallery/{item}/image.png"), vec![]),
            _ => return None,
        })
    };
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/serve/routes.rs"))
            .unwrap();
    let patterns: Vec<&str> = source
        .match_indices(".route(")
        .filter_map(|(i, m)| {
            let rest = source[i + m.len()..].trim_start().strip_prefix('"')?;
            Some(&rest[..rest.find('"')?])
        })
        .collect();
    assert!(patterns.len() >= 13, "{patterns:?}");
    let mut requests: Vec<(&str, String, Vec<u8>)> = patterns
        .iter()
        .map(|p| concrete(p).unwrap_or_else(|| panic!("route {p}: add it to this test")))
        .collect();
    for (m, p) in [
        ("HEAD", "/"),
        ("GET", "/no/such/page"),
        ("GET", "/api/gallery/1/image.jpg"),
        ("GET", "/api/gallery/1/thumb.png"),
    ] {
        requests.push((m, p.into(), vec![]));
    }
    let cookie = server.cookie.clone().unwrap();
    let cookie_name = cookie.split('=').next().unwrap();
    let mut wrong = token.clone().into_bytes();
    wrong[7] = if wrong[7] == b'a' { b'b' } else { b'a' };
    let wrong = String::from_utf8(wrong).unwrap();
    let origin = server.origin();
    for (method, path, body) in &requests {
        let sep = if path.contains('?') { '&' } else { '?' };
        let wrong_query = format!("{path}{sep}token={wrong}");
        let wrong_cookie = format!("{cookie_name}={wrong}.x");
        let other_port = format!("neural-style-studio-1={token}.x");
        let wrong_bearer = format!("Bearer {wrong}");
        for (what, url, header) in [
            ("no token", path.as_str(), None),
            ("a wrong ?token=", wrong_query.as_str(), None),
            (
                "a wrong cookie",
                path,
                Some(("Cookie", wrong_cookie.as_str())),
            ),
            (
                "another port's cookie",
                path,
                Some(("Cookie", other_port.as_str())),
            ),
            (
                "a wrong bearer token",
                path,
                Some(("Authorization", wrong_bearer.as_str())),
            ),
        ] {
            let mut headers = vec![("Origin", origin.as_str())];
            headers.extend(header);
            let r = server.send_raw(method, url, &headers, body);
            assert_eq!(r.status, 401, "{method} {url} with {what}: {}", r.text());
            assert!(r.header("set-cookie").is_none(), "{method} {url}");
            if *method != "HEAD" {
                assert!(r.error().contains("token"), "{method} {url}: {}", r.error());
            }
        }
        // With the token (the browser's cookie, or a script's bearer token).
        if path != "/api/events" {
            let json = ("Content-Type", "application/json");
            let r = server.send(method, path, &[("Origin", &origin), json], body);
            assert_ne!(r.status, 401, "{method} {path}: {}", r.text());
            let bearer = format!("Bearer {token}");
            let r = server.send_raw(
                method,
                path,
                &[("Origin", &origin), json, ("Authorization", &bearer)],
                body,
            );
            assert_ne!(r.status, 401, "{method} {path}: {}", r.text());
            if path == "/api/jobs" {
                assert_eq!(r.status, 202, "{}", r.text());
            }
        }
    }
    // Nothing the refused requests asked for happened: one upload and one
    // job more, from the requests with the token.
    let st = server.wait_for("the queue to drain", 180, |st| {
        st["running"].is_null() && st["queue"].as_array().unwrap().is_empty()
    });
    assert_eq!(st["gallery"].as_array().unwrap().len(), 3, "{st}");
    server.assert_alive();

    // --no-token: anyone, with a warning.
    let open = Server::start(&["--no-token"]);
    assert!(open.token.is_none());
    assert_eq!(open.get("/api/state").status, 200);
    assert!(open.log.lock().unwrap().contains("warning: --no-token"));
}

/// A complete, valid PNG of `w × h` black pixels (8-bit RGB) whose zlib data
/// is written by hand as runs of 258 zeros (fixed Huffman codes): a file of
/// a few MB that decodes to `w·h·3` bytes.
fn black_png(w: u32, h: u32) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u64, n: u32) {
            self.acc |= v << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code: its most significant bit first.
        fn code(&mut self, c: u32, n: u32) {
            self.put(u64::from(c.reverse_bits() >> (32 - n)), n);
        }
    }
    let raw = u64::from(h) * (1 + 3 * u64::from(w));
    let mut z = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    z.put(1, 1); // the final block
    z.put(1, 2); // fixed Huffman codes
    z.code(0x30, 8); // literal 0
    let mut left = raw - 1;
    while left >= 258 {
        z.code(0b1100_0101, 8); // length 258
        z.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        z.code(0x30, 8);
    }
    z.code(0, 7); // end of block
    if z.n > 0 {
        z.put(0, 8 - z.n);
    }
    // Adler-32 of zeros: a = 1, b = the count.
    let adler = (((raw % 65521) as u32) << 16) | 1;
    z.out.extend_from_slice(&adler.to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z.out);
    chunk(b"IEND", b"");
    out
}

/// A small PNG declaring 11000×11000 (121 megapixels, within the command
/// line's decoder limits) is refused from its header, before decoding;
/// before, it was decoded (about 2.9 GB of memory) and accepted.
#[test]
fn an_upload_of_too_many_pixels_is_refused_from_its_header() {
    // The file is right: a smaller one of the same making decodes.
    let small = black_png(300, 200);
    assert_eq!(decode(&small).dimensions(), (300, 200));
    let huge = black_png(11_000, 11_000);
    assert!(huge.len() < 3 << 20, "{} bytes", huge.len());
    let server = Server::start(&[]);
    let r = server.post("/api/uploads?name=huge.png", &huge);
    assert_eq!(r.status, 413, "{}", r.text());
    let m = r.error();
    assert!(m.contains("huge.png") && m.contains("11000×11000"), "{m}");
    assert!(m.contains("--max-upload-megapixels"), "{m}");
    assert!(names_in(&server.uploads).is_empty());
    assert_eq!(server.upload("small.png", &small)["width"], 300);
    let tight = Server::start(&["--max-upload-megapixels", "1"]);
    let big = black_png(1100, 1000);
    let r = tight.post("/api/uploads?name=big.png", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    server.assert_alive();
}

/// 300 half-sent requests (connections that send nothing, heads cut off,
/// bodies cut off) are all closed within a bound, under a low open-files
/// limit, while a job paints: the job's result is kept, and no page sees a
/// private path. Before, they stayed open past 60 s, the server stopped
/// answering and the job failed on `Too many open files`.
#[cfg(unix)]
#[test]
fn half_sent_requests_are_cut_off_and_a_low_fd_limit_loses_no_job() {
    use std::os::unix::process::CommandExt;
    let server = Server::start_with(&["--header-timeout", "2", "--body-timeout", "3"], |cmd| {
        // SAFETY: setrlimit between fork and exec is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let r = libc::rlimit {
                    rlim_cur: 128,
                    rlim_max: 128,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let (c, s) = upload_pair(&server);
    let id = submit(&server, &job(c, s, json!({"size": 64, "iterations": 150})));
    server.wait_for("the job to paint", 180, |st| running_iteration(st, id) >= 1);
    let origin = server.origin();
    let started = Instant::now();
    let mut conns = Vec::new();
    for k in 0..300 {
        let mut t = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        let _ = match k % 3 {
            0 => Ok(()),
            1 => t.write_all(
                format!(
                    "GET /api/state HTTP/1.1\r\nHost: {}\r\nX-Slow: ",
                    server.host()
                )
                .as_bytes(),
            ),
            _ => t
                .write_all(
                    server
                        .head(
                            "POST",
                            "/api/jobs",
                            &[("Origin", &origin), ("Content-Type", "application/json")],
                            1000,
                        )
                        .as_bytes(),
                )
                .and_then(|_| t.write_all(b"{\"content\": ")),
        };
        conns.push(t);
    }
    let bound = Duration::from_secs(45);
    for (k, t) in conns.iter_mut().enumerate() {
        let left = bound
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(10));
        t.set_read_timeout(Some(left)).unwrap();
        let mut got = Vec::new();
        match t.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "connection {k} still open {:?} after it was made: {e}\n{}",
                started.elapsed(),
                server.log.lock().unwrap()
            ),
        }
        let head = String::from_utf8_lossy(&got);
        if k % 3 == 2 && !got.is_empty() {
            assert!(head.starts_with("HTTP/1.1 408"), "connection {k}: {head}");
        }
    }
    drop(conns);
    server.assert_alive();
    let st = server.wait_for("the job's end", 300, |st| {
        gallery_item(st, id).is_some() || !st["failed"].as_array().unwrap().is_empty()
    });
    let text = st.to_string();
    assert!(
        st["failed"].as_array().unwrap().is_empty(),
        "the job failed: {text}"
    );
    assert_eq!(gallery_item(&st, id).unwrap()["iterations"], 150);
    assert!(!text.contains(&*server.uploads.to_string_lossy()), "{text}");
    // Still paints.
    let next = submit(&server, &job(c, s, json!({"size": 64, "iterations": 2})));
    server.wait_for("another job", 180, |st| gallery_item(st, next).is_some());
}

/// The queue is bounded per client (browser session) and in total; uploads
/// and results are evicted oldest first past their bounds. Before, 500 jobs
/// queued in 2 s and every upload and result was kept.
#[test]
fn the_queue_the_uploads_and_the_gallery_are_bounded() {
    let server = Server::start(&[
        "--max-queue",
        "3",
        "--max-queue-per-client",
        "2",
        "--max-uploads",
        "3",
        "--max-results",
        "2",
    ]);
    let (c, s) = upload_pair(&server);
    // The gallery keeps the two newest of three results.
    let mut items = Vec::new();
    for k in 0..3 {
        let j = submit(
            &server,
            &job(c, s, json!({"size": 32, "iterations": 1, "seed": k})),
        );
        let st = server.wait_for("a result", 180, |st| gallery_item(st, j).is_some());
        items.push(gallery_item(&st, j).unwrap()["id"].as_u64().unwrap());
    }
    let g = server.state()["gallery"].clone();
    let kept: Vec<u64> = g
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, items[1..], "{g}");
    assert_eq!(
        server
            .get(&format!("/api/gallery/{}/image.png", items[0]))
            .status,
        404
    );
    assert_eq!(
        server
            .get(&format!("/api/gallery/{}/image.png", items[2]))
            .status,
        200
    );

    // One client: one painting and one waiting is its share.
    let long = |seed: u64| job(c, s, json!({"size": 64, "iterations": 5000, "seed": seed}));
    let mut ids = vec![submit(&server, &long(1)), submit(&server, &long(2))];
    // The first is painting, not waiting, before the queue is counted below
    // (the worker may still be finishing the last result when it is sent:
    // the queue was then full one job early, seen once in a CI rehearsal).
    let first = ids[0];
    server.wait_for("the first job to paint", 180, |st| {
        st["running"]["id"] == first
    });
    let r = server.post_json("/api/jobs", &long(3));
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.error().contains("--max-queue-per-client"),
        "{}",
        r.error()
    );
    // Another browser session has its own share, within the total.
    let origin = server.origin();
    let as_session = |cookie: &str, body: &Value| {
        server.send_raw(
            "POST",
            "/api/jobs",
            &[
                ("Origin", &origin),
                ("Content-Type", "application/json"),
                ("Cookie", cookie),
            ],
            body.to_string().as_bytes(),
        )
    };
    let other = server.exchange();
    for seed in [4, 5] {
        let r = as_session(&other, &long(seed));
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json()["jobs"][0].as_u64().unwrap());
    }
    let third = server.exchange();
    let r = as_session(&third, &long(6));
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.error().contains("--max-queue"), "{}", r.error());
    let st = server.state();
    assert_eq!(st["queue"].as_array().unwrap().len(), 3, "{st}");
    for id in ids.iter().rev() {
        assert_eq!(
            server.post(&format!("/api/jobs/{id}/stop"), b"").status,
            200
        );
    }
    server.wait_for("the queue to empty", 120, |st| {
        st["running"].is_null() && st["queue"].as_array().unwrap().is_empty()
    });

    // Uploads: at most three kept. Those a job uses stay (an upload past the
    // bound while a job holds all of them is refused); the oldest unused go first.
    let small = |k: u8| png(&RgbImage::from_pixel(16, 16, Rgb([k * 60, 50, 50])));
    let init = server.upload("init.png", &small(0))["id"].as_u64().unwrap();
    let holding = submit(
        &server,
        &json!({"content": c, "styles": [s], "init": {"upload": init},
                "options": {"size": 64, "iterations": 5000}}),
    );
    let r = server.post("/api/uploads?name=more.png", &small(1));
    assert_eq!(r.status, 507, "{}", r.text());
    assert!(r.error().contains("--max-uploads"), "{}", r.error());
    assert_eq!(names_in(&server.uploads).len(), 3);
    server.wait_for("the job to paint from its uploads", 180, |st| {
        running_iteration(st, holding) >= 2
    });
    assert_eq!(
        server
            .post(&format!("/api/jobs/{holding}/stop"), b"")
            .status,
        200
    );
    let st = server.wait_for("its result", 120, |st| gallery_item(st, holding).is_some());
    assert!(st["failed"].as_array().unwrap().is_empty(), "{st}");
    let more: Vec<u64> = (1..3)
        .map(|k| server.upload("more.png", &small(k))["id"].as_u64().unwrap())
        .collect();
    let on_disk = names_in(&server.uploads);
    assert_eq!(on_disk.len(), 3, "{on_disk:?}");
    for (id, status) in [
        (c, 404),
        (s, 404),
        (init, 200),
        (more[0], 200),
        (more[1], 200),
    ] {
        assert_eq!(
            server.get(&format!("/api/uploads/{id}/thumb.png")).status,
            status,
            "upload {id}"
        );
    }
    server.assert_alive();
}

/// Chromium and chromedriver, or why the browser test cannot run here.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| {
                std::env::var_os("PATH").and_then(|path| {
                    std::env::split_paths(&path)
                        .find_map(|d| names.iter().map(|n| d.join(n)).find(|p| p.is_file()))
                })
            })
    };
    let chromium = find(&[
        "/usr/bin/chromium",
        "chromium",
        "chromium-browser",
        "google-chrome",
    ])
    .ok_or("no Chromium (Debian: apt-get install chromium chromium-driver; `cargo xtask test` does, as root)")?;
    let driver = find(&["/usr/bin/chromedriver", "chromedriver"])
        .ok_or("no chromedriver (Debian: apt-get install chromium-driver; `cargo xtask test` does, as root)")?;
    Ok((chromium, driver))
}

/// A free loopback port (for chromedriver).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_studio_in_a_real_browser() {
    let (chromium, driver_bin) = match browser() {
        Ok(b) => b,
        Err(why) => {
            neural_style_core::testing::skip::skip(why);
            return;
        }
    };
    let server = Server::start(&["--preview-every", "1"]);
    let port = free_port();
    let _driver = Driver(
        Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drive(&server, &chromium, port));
    server.assert_alive();
}

async fn drive(server: &Server, chromium: &Path, port: u16) {
    use fantoccini::{ClientBuilder, Locator};
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1360,1000", "--hide-scrollbars"],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver: {e}"),
        }
    };
    let result = browse(&client, server).await;
    let _ = client.close().await;
    if let Err(e) = result {
        panic!(
            "{e}\nserver state: {}\nserver log:\n{}",
            server.get("/api/state").text(),
            server.log.lock().unwrap()
        );
    }

    async fn browse(client: &fantoccini::Client, server: &Server) -> Result<(), String> {
        let e = |x: fantoccini::error::CmdError| x.to_string();
        let js = |script: &'static str| async move {
            client
                .execute(script, vec![])
                .await
                .map_err(|x| x.to_string())
        };
        // The URL the server printed, token and all, as a user opens it.
        client
            .goto(&server.url())
            .await
            .map_err(|x| x.to_string())?;
        let at = client.current_url().await.map_err(|x| x.to_string())?;
        if at.query().is_some_and(|q| q.contains("token")) {
            return Err(format!("the token stayed in the address bar: {at}"));
        }
        wait(
            client,
            "the page to connect",
            "return document.getElementById('status').className.includes('ok')",
        )
        .await?;
        // Upload two images through the file inputs (the sample photo and painting).
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/serve/assets/samples");
        let content = samples.join("tubingen.jpg");
        let style = samples.join("starry_night.jpg");
        client
            .find(Locator::Id("content-file"))
            .await
            .map_err(e)?
            .send_keys(content.to_str().unwrap())
            .await
            .map_err(e)?;
        client
            .find(Locator::Id("style-file"))
            .await
            .map_err(e)?
            .send_keys(style.to_str().unwrap())
            .await
            .map_err(e)?;
        wait(client, "two thumbnails", "return document.querySelectorAll('#content-thumbs img, #style-thumbs img').length === 2 && [...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth > 0)").await?;
        // A 64-px, 10-iteration job, typed into the form.
        for (id, value) in [("size", "64"), ("iterations", "10")] {
            fill(client, id, value).await?;
        }
        click(client, Locator::Id("paint")).await?;
        wait(
            client,
            "the first result in the gallery",
            "return document.querySelectorAll('#gallery .item').length === 1",
        )
        .await?;
        let changes = js("return +document.getElementById('preview').dataset.changes").await?;
        assert!(
            changes.as_u64().unwrap_or(0) >= 2,
            "the preview changed {changes} times"
        );
        let points = js("return +document.getElementById('chart').dataset.points").await?;
        assert!(
            points.as_u64().unwrap_or(0) >= 2,
            "the chart has {points} points"
        );
        let inked = js("const c = document.getElementById('chart'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;").await?;
        assert!(
            inked.as_u64().unwrap_or(0) > 500,
            "the loss chart drew {inked} pixels"
        );
        let text = js("return document.getElementById('iteration').textContent").await?;
        assert_eq!(text, "iteration 10 / 10");
        // A long job: watch it paint, screenshot mid-run, Stop.
        fill(client, "iterations", "3000").await?;
        let before = js("return +document.getElementById('preview').dataset.changes")
            .await?
            .as_u64()
            .unwrap_or(0);
        click(client, Locator::Id("paint")).await?;
        wait(client, "the long job to paint a few iterations", "const m = /iteration (\\d+) \\/ 3000/.exec(document.getElementById('iteration').textContent); return !!m && +m[1] >= 6 && !document.getElementById('stop').disabled").await?;
        let after = js("return +document.getElementById('preview').dataset.changes")
            .await?
            .as_u64()
            .unwrap_or(0);
        assert!(
            after >= before + 2,
            "the preview changed {} times in the long job",
            after - before
        );
        let shot = client.screenshot().await.map_err(e)?;
        let target = Path::new(crate::support::ROOT).join("target");
        std::fs::create_dir_all(&target).map_err(|x| x.to_string())?;
        std::fs::write(target.join("studio.png"), &shot).map_err(|x| x.to_string())?;
        decode(&shot);
        click(client, Locator::Id("stop")).await?;
        wait(client, "the stopped result", "return document.querySelectorAll('#gallery .item').length === 2 && document.querySelector('#gallery .item .facts').textContent.includes('(stopped)')").await?;
        // Download the newest result through its link, as the page offers it.
        let bytes = client
            .execute_async(
                "const done = arguments[arguments.length - 1]; const a = document.querySelector('#gallery .item a.png'); fetch(a.href).then(r => r.arrayBuffer()).then(b => done({name: a.getAttribute('download'), bytes: Array.from(new Uint8Array(b))}));",
                vec![],
            )
            .await
            .map_err(e)?;
        assert!(
            bytes["name"].as_str().unwrap().ends_with(".png"),
            "{}",
            bytes["name"]
        );
        let png: Vec<u8> = bytes["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let img = decode(&png);
        assert_eq!(img.width().max(img.height()), 64);
        // "Copy CLI" gives the command (copied, or shown where the clipboard is refused).
        click(client, Locator::Css("#gallery .item .copy-cli")).await?;
        wait(
            client,
            "the command line",
            "return document.getElementById('message').textContent.includes('neural-style -c tubingen.jpg -s starry_night.jpg')",
        )
        .await?;
        // "Use as init", then Compare at two strengths: two more results, side by side.
        click(client, Locator::Css("#gallery .item .use-init")).await?;
        let chip = js("return !document.getElementById('init-chip').hidden").await?;
        assert_eq!(chip, Value::Bool(true));
        fill(client, "iterations", "3").await?;
        fill(client, "compare-strengths", "2, 200").await?;
        click(client, Locator::Id("compare")).await?;
        wait(
            client,
            "two compared results side by side",
            "const f = [...document.querySelectorAll('#compare-view figure')]; return f.length === 2 && f.every(x => x.textContent.includes('done')) && document.querySelectorAll('#gallery .item').length === 4",
        )
        .await?;
        let labels = js("return [...document.querySelectorAll('#compare-view figcaption')].map(x => x.textContent).join(', ')").await?;
        assert_eq!(labels, "strength 2 · done, strength 200 · done");
        Ok(())
    }

    /// Click the element `at`.
    async fn click(client: &fantoccini::Client, at: Locator<'_>) -> Result<(), String> {
        let el = client.find(at).await.map_err(|x| x.to_string())?;
        el.click().await.map_err(|x| x.to_string())?;
        Ok(())
    }

    /// Replace the value of the form field `id` with `value`, as typed.
    async fn fill(client: &fantoccini::Client, id: &str, value: &str) -> Result<(), String> {
        let f = client
            .find(Locator::Id(id))
            .await
            .map_err(|x| x.to_string())?;
        f.clear().await.map_err(|x| x.to_string())?;
        f.send_keys(value).await.map_err(|x| x.to_string())
    }

    async fn wait(client: &fantoccini::Client, what: &str, script: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let v = client
                .execute(script, vec![])
                .await
                .map_err(|x| x.to_string())?;
            if v == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let page = client
                    .execute(
                        "return ['message', 'iteration', 'queue', 'status'].map(id => id + ': ' + document.getElementById(id).textContent).join('; ') + '; stop disabled: ' + document.getElementById('stop').disabled",
                        vec![],
                    )
                    .await
                    .unwrap_or_default();
                return Err(format!("timed out waiting for {what} (page: {page})"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
