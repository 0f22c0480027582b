//! The per-request timeout (issue 8, item 2): a draft that takes longer than
//! `server.request_timeout_secs` is answered with a 504 JSON error naming the
//! limit, for both the JSON and the streaming answer, and the service goes on
//! serving afterwards (the timed-out generation is cancelled, not left to
//! block the model's queue).
//!
//! The timeout is 1 s and the drafts ask for 8 long e-mail alternatives on
//! smollm2, which takes several seconds even on a fast machine.

#[path = "server_support/mod.rs"]
mod support;

use serde_json::json;

fn slow_draft(stream: bool) -> serde_json::Value {
    json!({
        "brand": "tunely", "channel": "email", "n": 8, "max_tokens": 512, "seed": 3, "stream": stream,
        "message": "Hello, I was charged twice for my family plan this month and the app keeps logging me out on every device. Can you explain what happened and what you will do about it?",
    })
}

#[test]
fn a_draft_over_the_request_timeout_is_a_504_and_the_service_goes_on() {
    let mut cfg = support::config(4);
    cfg.server.request_timeout_secs = 1;
    let server = brandvoice::server::spawn_server(&cfg).expect("server with smollm2");
    let addr = server.addr;

    let r = support::post(addr, "/v1/drafts", &slow_draft(false));
    assert_eq!(r.status, 504, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"]["type"], "timeout", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("request timeout of 1 s"), "{message}");

    // The streaming answer ends with an `error` event of the same kind.
    let (status, events) = support::sse(addr, "/v1/drafts", &slow_draft(true), |e| e.event == "error" || e.event == "done");
    assert_eq!(status, 200);
    let last = events.last().expect("at least one event");
    assert_eq!(last.event, "error", "{events:?}");
    assert!(last.data.contains("\"timeout\""), "{}", last.data);

    // Still serving: health, readiness and a route that needs no model.
    assert_eq!(support::request(addr, "GET", "/healthz", None).status, 200);
    assert_eq!(support::request(addr, "GET", "/readyz", None).status, 200);
    let lint = support::post(addr, "/v1/lint", &json!({"brand": "tunely", "channel": "twitter", "text": "Thanks for reaching out!"}));
    assert_eq!(lint.status, 200, "{}", lint.body);
    server.shutdown().expect("clean shutdown");
}
