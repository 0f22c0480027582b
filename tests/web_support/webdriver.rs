//! A small W3C WebDriver client for Debian's headless Chromium through
//! chromedriver, over plain HTTP/1.1 on `std::net::TcpStream` (the handful
//! of commands the console tests need; no WebDriver crate, no async).
//!
//! [`Browser::start`] installs `chromium` and `chromium-driver` with apt when
//! `/usr/bin/chromedriver` is missing (CI starts from a fresh machine), runs
//! chromedriver on a free port and opens one headless session at 1280×800.
//! Dropping the `Browser` ends the session and kills that chromedriver.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The WebDriver key for Enter.
pub const ENTER: &str = "\u{E007}";

/// Makes sure chromium and chromedriver are installed (apt, as root).
pub fn ensure_installed() {
    if Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists() {
        return;
    }
    eprintln!("web tests: installing chromium and chromium-driver with apt-get");
    let run = |args: &[&str]| Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status();
    let ok = run(&["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]).map(|s| s.success()).unwrap_or(false)
        || (run(&["update"]).map(|s| s.success()).unwrap_or(false)
            && run(&["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]).map(|s| s.success()).unwrap_or(false));
    assert!(ok && Path::new(CHROMEDRIVER).exists(), "could not install chromium + chromium-driver with apt-get (run the tests as root, or install them by hand)");
}

pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// One HTTP exchange with chromedriver.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut len = None;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut buf = Vec::new();
    match len {
        Some(n) => {
            buf.resize(n, 0);
            r.read_exact(&mut buf)?;
        }
        None => {
            r.read_to_end(&mut buf)?;
        }
    }
    let v = serde_json::from_slice(&buf).unwrap_or(Value::Null);
    Ok((status, v))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session at `width`×`height`.
    pub fn start(width: u32, height: u32) -> Browser {
        ensure_installed();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t = Instant::now();
        loop {
            if let Ok((200, v)) = http(addr, "GET", "/status", None) {
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(t.elapsed() < Duration::from_secs(30), "chromedriver did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                         "--disable-extensions", "--hide-scrollbars", format!("--window-size={width},{height}")]
            }
        }}});
        let mut b = Browser { driver, addr, session: String::new() };
        let v = b.raw("POST", "/session", Some(&caps));
        b.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {v}")).to_string();
        b.set_size(width, height);
        b
    }

    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = http(self.addr, method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        assert!(status == 200, "WebDriver {method} {path} → {status}: {v}");
        v["value"].clone()
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body.as_ref())
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.cmd("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// The element matching `css`, or None.
    pub fn find(&self, css: &str) -> Option<String> {
        let (status, v) = http(self.addr, "POST", &format!("/session/{}/element", self.session), Some(&json!({"using": "css selector", "value": css}))).ok()?;
        (status == 200).then(|| v["value"][ELEMENT].as_str().map(str::to_string)).flatten()
    }

    /// Waits up to `secs` for `css`.
    pub fn wait_for(&self, css: &str, secs: u64) -> String {
        let t = Instant::now();
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(t.elapsed() < Duration::from_secs(secs), "no `{css}` after {secs} s; page text: {}", self.page_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `secs` until `script` returns a truthy value; returns it.
    pub fn wait_js(&self, script: &str, secs: u64, what: &str) -> Value {
        let t = Instant::now();
        loop {
            let v = self.js(script, vec![]);
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            assert!(t.elapsed() < Duration::from_secs(secs), "{what}: not after {secs} s; page text: {}", self.page_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, css: &str) {
        let e = self.wait_for(css, 20);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Types into the element (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.wait_for(css, 20);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.cmd("POST", &format!("/element/{e}/value"), Some(json!({ "text": text })));
    }

    /// Chooses the option with `value` in a `<select>`.
    pub fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.wait_for(css, 20);
        self.cmd("GET", &format!("/element/{e}/text"), None).as_str().unwrap_or_default().to_string()
    }

    pub fn page_text(&self) -> String {
        self.js("return document.body ? document.body.innerText.slice(0, 2000) : ''", vec![]).as_str().unwrap_or_default().to_string()
    }

    /// Presses keys on whatever has the focus (W3C actions), one after another.
    pub fn keys(&self, keys: &[&str]) {
        let mut acts = Vec::new();
        for k in keys {
            acts.push(json!({"type": "keyDown", "value": k}));
            acts.push(json!({"type": "keyUp", "value": k}));
        }
        self.cmd("POST", "/actions", Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": acts}]})));
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().expect("base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(self.addr, "DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
    assert_eq!(base64_decode("iVBORw=="), b"\x89PNG");
}
