//! Access control over real HTTP: a server on 127.0.0.1:0 with three keys
//! (agent, reviewer, admin) and a real SQLite store, no language model
//! (routes that need it are not what these tests are about). Each role gets
//! 200/201 on its own routes, 403 on the others, and a missing or unknown key
//! gets 401 — all with JSON error bodies. The log (captured at TRACE) names
//! keys by name only. A server without keys is refused off loopback and
//! warns on loopback.

#[path = "server_support/mod.rs"]
mod support;

use brandvoice::server::auth::{hash_key, new_key, Role};
use brandvoice::server::config::KeyEntry;
use brandvoice::server::{load_base_state, spawn_with_state, ServeConfig, ServerHandle};
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use support::request_with;

/// Everything the tests' tracing subscriber wrote.
fn logs() -> &'static Mutex<Vec<u8>> {
    static L: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    L.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let sub = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_ansi(false).with_writer(|| LogWriter).finish();
        tracing::subscriber::set_global_default(sub).expect("one subscriber per test binary");
    });
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).to_string()
}

struct Keys {
    agent: String,
    reviewer: String,
    admin: String,
}

fn server() -> &'static (ServerHandle, Keys) {
    static S: OnceLock<(ServerHandle, Keys)> = OnceLock::new();
    S.get_or_init(|| {
        capture_logs();
        let keys = Keys { agent: new_key(), reviewer: new_key(), admin: new_key() };
        let mut cfg = support::config(2);
        cfg.auth.keys = vec![
            KeyEntry { name: "desk-agent".into(), role: Role::Agent, sha256: hash_key(&keys.agent) },
            KeyEntry { name: "qa-reviewer".into(), role: Role::Reviewer, sha256: hash_key(&keys.reviewer) },
            KeyEntry { name: "ops-admin".into(), role: Role::Admin, sha256: hash_key(&keys.admin) },
        ];
        cfg.check().expect("config with keys");
        let state = load_base_state(&cfg).expect("store, book and keys");
        let handle = spawn_with_state(&cfg, Arc::new(state), None).expect("serve");
        (handle, keys)
    })
}

fn addr() -> SocketAddr {
    server().0.addr
}

fn bearer(k: &str) -> String {
    format!("Bearer {k}")
}

fn call(method: &str, path: &str, key: Option<&str>, body: Option<serde_json::Value>) -> support::Resp {
    let auth = key.map(bearer);
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| vec![("Authorization", a)]).unwrap_or_default();
    request_with(addr(), method, path, &headers, body.map(|b| b.to_string()).as_deref())
}

fn lint_body() -> serde_json::Value {
    json!({"brand": "tunely", "channel": "twitter", "text": "Thanks for reaching out, we are on it."})
}

fn review_body(case: &str) -> serde_json::Value {
    json!({"kind": "review", "run_id": "auth-run", "case_id": case, "draft_id": "d0", "reviewer_id": "ann", "scores": {"overall": 4}})
}

fn assert_error(r: &support::Resp, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["type"], kind, "{}", r.body);
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.body);
}

#[test]
fn missing_or_unknown_key_is_401_with_json() {
    let r = call("POST", "/v1/lint", None, Some(lint_body()));
    assert_error(&r, 401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Authorization: Bearer"), "{}", r.body);
    let r = call("POST", "/v1/lint", Some("bv_not-a-real-key"), Some(lint_body()));
    assert_error(&r, 401, "unauthorized");
    // A stored hash is not a key.
    let r = call("GET", "/v1/brands", Some(&hash_key(&server().1.agent)), None);
    assert_error(&r, 401, "unauthorized");
    // Unknown /v1 paths do not reveal themselves without a key.
    assert_error(&call("GET", "/v1/nope", None, None), 401, "unauthorized");
    assert_error(&call("GET", "/metrics", None, None), 401, "unauthorized");
}

#[test]
fn public_routes_need_no_key() {
    for path in ["/healthz", "/openapi.json", "/docs"] {
        let r = call("GET", path, None, None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // Readiness is public too (503 here: no model).
    assert_eq!(call("GET", "/readyz", None, None).status, 503);
}

#[test]
fn agent_key_drafts_and_lints_but_may_not_review_or_admin() {
    let k = server().1.agent.clone();
    let r = call("POST", "/v1/lint", Some(&k), Some(lint_body()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(call("GET", "/v1/brands", Some(&k), None).status, 200);
    assert_eq!(call("GET", "/v1/channels", Some(&k), None).status, 200);
    // Passes auth; no model on this server, so the drafting route itself answers 503.
    let r = call("POST", "/v1/drafts", Some(&k), Some(json!({"brand": "tunely", "channel": "twitter", "message": "hi"})));
    assert_error(&r, 503, "not_ready");
    let r = call("POST", "/v1/reviews", Some(&k), Some(review_body("agent-try")));
    assert_error(&r, 403, "forbidden");
    let m = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(m.contains("desk-agent") && m.contains("reviewer"), "{m}");
    assert_error(&call("GET", "/v1/reviews?run=auth-run", Some(&k), None), 403, "forbidden");
    assert_error(&call("POST", "/v1/admin/reload", Some(&k), None), 403, "forbidden");
    assert_error(&call("GET", "/v1/admin/config", Some(&k), None), 403, "forbidden");
}

#[test]
fn reviewer_key_reviews_but_may_not_draft_or_admin() {
    let k = server().1.reviewer.clone();
    let r = call("POST", "/v1/reviews", Some(&k), Some(review_body("rev-1")));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call("GET", "/v1/reviews?run=auth-run", Some(&k), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(call("GET", "/v1/brands/tunely", Some(&k), None).status, 200);
    assert_error(&call("POST", "/v1/lint", Some(&k), Some(lint_body())), 403, "forbidden");
    assert_error(&call("POST", "/v1/drafts", Some(&k), Some(json!({"brand": "tunely", "channel": "twitter", "message": "hi"}))), 403, "forbidden");
    assert_error(&call("POST", "/v1/admin/reload", Some(&k), None), 403, "forbidden");
}

#[test]
fn admin_key_does_everything_and_the_config_view_hides_hashes() {
    let k = server().1.admin.clone();
    assert_eq!(call("POST", "/v1/lint", Some(&k), Some(lint_body())).status, 200);
    assert_eq!(call("POST", "/v1/reviews", Some(&k), Some(review_body("admin-1"))).status, 201);
    let r = call("POST", "/v1/admin/reload", Some(&k), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "reloaded");
    let r = call("GET", "/v1/admin/config", Some(&k), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<String> = r.json()["auth"]["keys"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["desk-agent", "qa-reviewer", "ops-admin"]);
    assert!(!r.body.contains("sha256") && !r.body.contains(&hash_key(&k)), "{}", r.body);
    let r = call("GET", "/metrics", Some(&k), None);
    assert_eq!(r.status, 200);
}

#[test]
fn x_api_key_header_works_too() {
    let k = server().1.agent.clone();
    let r = request_with(addr(), "POST", "/v1/lint", &[("x-api-key", &k)], Some(&lint_body().to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn logs_name_keys_never_show_them() {
    let keys = &server().1;
    // A forbidden call logs the key's name at info level.
    assert_eq!(call("POST", "/v1/admin/reload", Some(&keys.reviewer), None).status, 403);
    assert_eq!(call("POST", "/v1/lint", Some(&keys.agent), Some(lint_body())).status, 200);
    assert_eq!(call("POST", "/v1/lint", Some("bv_wrong-key-value-123"), Some(lint_body())).status, 401);
    let text = log_text();
    assert!(text.contains("qa-reviewer"), "the key's name should be logged:\n{text}");
    for secret in [&keys.agent, &keys.reviewer, &keys.admin, &"bv_wrong-key-value-123".to_string()] {
        assert!(!text.contains(secret.as_str()), "a key leaked into the log");
        assert!(!text.contains(&secret[3..20]), "part of a key leaked into the log");
    }
}

#[test]
fn no_keys_only_on_loopback() {
    let mut cfg = ServeConfig::default();
    cfg.server.bind = "0.0.0.0:8080".into();
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.starts_with("auth.keys:") && e.contains("0.0.0.0:8080") && e.contains("keys new"), "{e}");
    cfg.auth.keys = vec![KeyEntry { name: "a".into(), role: Role::Agent, sha256: hash_key(&new_key()) }];
    cfg.check().expect("keys make a public bind acceptable");
    let mut cfg = ServeConfig::default();
    cfg.server.bind = "[::1]:0".into();
    cfg.check().expect("IPv6 loopback without keys");
    cfg.auth.keys = vec![KeyEntry { name: "a".into(), role: Role::Agent, sha256: "abc".into() }];
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.contains("auth.keys[0].sha256") && e.contains("64 hex"), "{e}");
}

#[test]
fn open_server_on_loopback_allows_all_and_warns() {
    capture_logs();
    let cfg = support::config(2);
    let state = load_base_state(&cfg).expect("state");
    assert!(log_text().contains("no API keys configured"), "startup must warn:\n{}", log_text());
    let h = spawn_with_state(&cfg, Arc::new(state), None).expect("serve");
    let r = request_with(h.addr, "POST", "/v1/lint", &[], Some(&lint_body().to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request_with(h.addr, "GET", "/v1/admin/config", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn keys_new_prints_a_key_and_its_hash_once() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_brandvoice")).args(["keys", "new", "--name", "desk", "--role", "agent"]).output().expect("run brandvoice keys new");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.split_whitespace().find(|w| w.starts_with("bv_")).expect("a bv_ key").to_string();
    let line = text.lines().find(|l| l.contains("sha256 =")).expect("config line");
    assert!(line.contains(&hash_key(&key)) && line.contains("role = \"agent\"") && line.contains("name = \"desk\""), "{line}");
    // The line parses as a config entry.
    let toml_text = format!("[auth]\nkeys = [{}]\n", line.trim().trim_end_matches(','));
    let cfg = ServeConfig::parse(&toml_text, "t.toml").expect("the printed line is valid config");
    assert_eq!(cfg.auth.keys[0].role, Role::Agent);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_brandvoice")).args(["keys", "new", "--name", "x", "--role", "root"]).output().unwrap();
    assert!(!bad.status.success());
}

/// `POST /v1/admin/reload` with the real model: an invalid brand file is a 422 naming the
/// file and the service keeps drafting and linting with the last valid book; the fixed file
/// reloads, and the model worker drafts with the new book.
#[test]
fn reload_keeps_the_last_valid_book_while_drafting() {
    let dir = tempfile::tempdir().unwrap();
    let copy = fs_extra::dir::CopyOptions::new().content_only(true);
    fs_extra::dir::copy(brandvoice::style::default_prompts_dir(), dir.path(), &copy).unwrap();
    let mut cfg = support::config(2);
    cfg.server.prompts = Some(dir.path().to_path_buf());
    let admin = new_key();
    let agent = new_key();
    cfg.auth.keys = vec![
        KeyEntry { name: "ops".into(), role: Role::Admin, sha256: hash_key(&admin) },
        KeyEntry { name: "desk".into(), role: Role::Agent, sha256: hash_key(&agent) },
    ];
    let h = brandvoice::server::spawn_server(&cfg).expect("server with smollm2");
    let (admin_h, agent_h) = (bearer(&admin), bearer(&agent));
    let as_admin = [("Authorization", admin_h.as_str())];
    let as_agent = [("Authorization", agent_h.as_str())];
    let draft = json!({"brand": "tunely", "channel": "twitter", "message": "My playlist vanished after the update.", "max_tokens": 40, "seed": 3}).to_string();

    let file = dir.path().join("brands/tunely.yaml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\nvoice: [unclosed\n")).unwrap();
    let r = request_with(h.addr, "POST", "/v1/admin/reload", &as_admin, None);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "reload_failed");
    assert!(r.json()["error"]["file"].as_str().unwrap_or_default().ends_with("tunely.yaml"), "{}", r.body);
    // Still serving the last valid version.
    let r = request_with(h.addr, "POST", "/v1/lint", &as_agent, Some(&lint_body().to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request_with(h.addr, "GET", "/v1/brands/tunely", &as_agent, None);
    assert_eq!(r.json()["name"], "Tunely", "{}", r.body);
    let r = request_with(h.addr, "POST", "/v1/drafts", &as_agent, Some(&draft));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.json()["drafts"][0]["text"].as_str().unwrap().is_empty());

    std::fs::write(&file, good.replacen("name: Tunely", "name: Tunely Reloaded", 1)).unwrap();
    let r = request_with(h.addr, "POST", "/v1/admin/reload", &as_admin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request_with(h.addr, "GET", "/v1/brands/tunely", &as_agent, None);
    assert_eq!(r.json()["name"], "Tunely Reloaded", "{}", r.body);
    // The worker switches to the new book before this draft.
    let pii = json!({"brand": "tunely", "channel": "email", "message": "My playlist vanished. Write to jo.doe@example.com or call +44 20 7946 0958.", "max_tokens": 40, "seed": 4}).to_string();
    let r = request_with(h.addr, "POST", "/v1/drafts", &as_agent, Some(&pii));
    assert_eq!(r.status, 200, "{}", r.body);

    // Both drafts reached the audit log (its own writer thread), customer text redacted.
    let audit = brandvoice::store::drafts::DraftsAudit::open(cfg.store_path()).unwrap();
    let t = std::time::Instant::now();
    while audit.count().unwrap() < 2 && t.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let rows = audit.latest(10).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (req, drafts) = &rows[0];
    let msg = req["message"].as_str().unwrap();
    assert!(msg.contains("[email]") && msg.contains("[phone]") && !msg.contains("jo.doe") && !msg.contains("7946"), "{msg}");
    assert_eq!(req["channel"], "email");
    assert!(drafts[0]["score"].is_number(), "{drafts}");
}
