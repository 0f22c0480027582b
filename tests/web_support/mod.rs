//! Support for the browser tests: fixture eval-run directories (the format
//! `brandvoice eval run` writes, see README "Eval runs"), and a server that
//! demands an API key, to drive the console's key dialog.

#![allow(dead_code)]

pub mod webdriver;

use brandvoice::server::{router, AppState, ServeConfig};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub const RUN_A: &str = "20260101-120000-fixture";
pub const RUN_B: &str = "20260102-120000-fixture";

/// Writes two small runs (three cases each) under `dir`.
pub fn write_runs(dir: &Path) {
    let cases = [
        ("angry-1", "twitter", "angry", "Your app deleted my playlists AGAIN. Fix it or I'm gone.", "I'm sorry your playlists vanished, that's not okay. Please DM us your account email and we'll restore them today."),
        ("confused-1", "email", "confused", "How do I move my downloads to the SD card?", "Hi! Open Settings, then Storage, and choose SD card. Your downloads move over on their own."),
        ("happy-1", "twitter", "happy", "Loving the new mixes this week!", "So glad you're enjoying them! New mixes land every Monday."),
    ];
    for (run, tweak) in [(RUN_A, ""), (RUN_B, " Thanks for your patience.")] {
        let d = dir.join(run);
        std::fs::create_dir_all(&d).expect("run dir");
        let mut lines = String::new();
        for (i, (id, channel, mood, message, draft)) in cases.iter().enumerate() {
            let overall = 60.0 + 10.0 * i as f64;
            let line = json!({
                "case_id": id, "suite": "fixture", "repeat": 0, "brand": "tunely", "channel": channel,
                "mood_expected": mood, "mood_detected": mood, "language": "en", "message": message,
                "draft": format!("{draft}{tweak}"), "alternatives": [],
                "score": {"overall": overall, "band": "yellow", "parts": {"voice": 70.0, "mood_fit": 80.0, "rules": 100.0}, "reasons": {}},
                "violations": [], "fallback": false, "latency_ms": 900.0, "passed": true, "failures": [], "error": null
            });
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        std::fs::write(d.join("results.jsonl"), lines).expect("results.jsonl");
        let summary = json!({
            "run_id": run, "suites": ["fixture"], "model": "smollm2-135m", "seed": 1, "repeat": 1,
            "started": "2026-01-01T12:00:00Z", "finished": "2026-01-01T12:01:00Z", "cases": 3, "passed": 3,
            "pass_rate": 1.0, "error_rate": 0.0, "fallback_rate": 0.0, "mean_tone": 70.0, "mood_accuracy": 1.0,
            "latency_ms": {"p50": 900.0, "p95": 950.0, "max": 990.0}, "by_channel_mood": {}
        });
        std::fs::write(d.join("summary.json"), summary.to_string()).expect("summary.json");
        std::fs::write(d.join("report.html"), format!("<!doctype html><title>{run}</title><h1>Report {run}</h1>")).expect("report.html");
    }
}

/// A key the auth-demanding server accepts.
pub const KEY: &str = "console-test-key-0123456789";

/// A server without models whose `/v1/` routes answer 401 unless
/// `Authorization: Bearer KEY` is sent — a stand-in for the real `[auth]`
/// enforcement, to test the console's side of it. Pages and assets stay open.
pub fn spawn_auth_server(runs_dir: &Path) -> SocketAddr {
    let mut cfg = ServeConfig::default();
    cfg.eval.runs_dir = Some(runs_dir.to_path_buf());
    let book = Arc::new(brandvoice::style::StyleBook::load(brandvoice::style::default_prompts_dir()).expect("prompts load"));
    let state = Arc::new(AppState::without_models(book, &cfg));
    let app = router(state).layer(axum::middleware::from_fn(|req: axum::extract::Request, next: axum::middleware::Next| async move {
        let ok = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"));
        if req.uri().path().starts_with("/v1/") && !ok {
            let body = json!({"error": {"type": "unauthorized", "message": "missing or unknown API key"}}).to_string();
            return axum::response::Response::builder().status(401).header("content-type", "application/json").header("www-authenticate", "Bearer").body(axum::body::Body::from(body)).unwrap();
        }
        next.run(req).await
    }));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send addr");
            axum::serve(l, app).await.expect("serve");
        });
    });
    rx.recv().expect("auth server address")
}
