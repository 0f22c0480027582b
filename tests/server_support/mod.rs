//! A real server on 127.0.0.1:0 with smollm2, and a minimal blocking HTTP/1.1
//! client over `std::net::TcpStream` (no HTTP client crate is a dependency;
//! this reads chunked bodies and SSE events as they arrive, which is what the
//! tests measure).

#![allow(dead_code)]

use brandvoice::server::{spawn_server, ServeConfig, ServerHandle};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MODEL: &str = "smollm2-135m";

pub fn config(queue: usize) -> ServeConfig {
    let mut cfg = ServeConfig::default();
    cfg.server.bind = "127.0.0.1:0".into();
    cfg.server.queue_size = queue;
    cfg.server.request_timeout_secs = 120;
    cfg.model.name = MODEL.into();
    // A fresh reviews store per server, never the user's own file.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The directory is new for this process: named by the pid alone, a
    // leftover of an earlier run with the same pid (pids wrap at 32768) held
    // that run's reviews, and a test that adds one then saw a conflict.
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("brandvoice-tests-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir for the reviews store");
        dir
    });
    cfg.store.path = Some(dir.join(format!("reviews-{n}.sqlite")));
    cfg
}

/// One server shared by the tests of a binary (loading takes seconds).
pub fn shared() -> SocketAddr {
    static S: OnceLock<ServerHandle> = OnceLock::new();
    S.get_or_init(|| spawn_server(&config(16)).expect("start the server with smollm2")).addr
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends a request and returns the status, headers and a reader over the decoded body.
pub fn open(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<(String, String)>, Box<dyn BufRead>) {
    open_with(addr, method, path, &[], body)
}

/// [`open`] with extra request headers (`Authorization`, `x-api-key`, …).
pub fn open_with(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)], body: Option<&str>) -> (u16, Vec<(String, String)>, Box<dyn BufRead>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
    let body = body.unwrap_or("");
    let extra: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).expect("send");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let reader: Box<dyn BufRead> = if chunked { Box::new(BufReader::new(Chunked { inner: r, left: 0, done: false })) } else { Box::new(r) };
    (status, headers, reader)
}

pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Resp {
    let (status, headers, mut r) = open(addr, method, path, body);
    let mut body = String::new();
    r.read_to_string(&mut body).expect("body");
    Resp { status, headers, body }
}

/// [`request`] with extra request headers.
pub fn request_with(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)], body: Option<&str>) -> Resp {
    let (status, headers, mut r) = open_with(addr, method, path, extra, body);
    let mut body = String::new();
    r.read_to_string(&mut body).expect("body");
    Resp { status, headers, body }
}

pub fn post(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Resp {
    request(addr, "POST", path, Some(&body.to_string()))
}

/// One server-sent event and when it arrived (since the request was sent).
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub at: Duration,
}

/// Reads SSE events until the stream ends or `stop` returns true.
pub fn sse(addr: SocketAddr, path: &str, body: &serde_json::Value, mut stop: impl FnMut(&SseEvent) -> bool) -> (u16, Vec<SseEvent>) {
    let start = Instant::now();
    let (status, _, mut r) = open(addr, "POST", path, Some(&body.to_string()));
    let mut events = Vec::new();
    let (mut event, mut data) = (String::new(), Vec::<String>::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            if !data.is_empty() || !event.is_empty() {
                let ev = SseEvent { event: std::mem::take(&mut event), data: data.join("\n"), at: start.elapsed() };
                data.clear();
                let done = stop(&ev);
                events.push(ev);
                if done {
                    break;
                }
            }
        } else if let Some(v) = l.strip_prefix("event:") {
            event = v.trim_start().to_string();
        } else if let Some(v) = l.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
        }
    }
    (status, events)
}

/// Decodes `Transfer-Encoding: chunked` as bytes arrive.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            self.inner.read_line(&mut size)?;
            if size.trim().is_empty() {
                // the CRLF after the previous chunk
                size.clear();
                self.inner.read_line(&mut size)?;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).map_err(|e| std::io::Error::other(format!("bad chunk size {size:?}: {e}")))?;
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = n;
        }
        let want = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..want])?;
        self.left -= got;
        Ok(got)
    }
}
