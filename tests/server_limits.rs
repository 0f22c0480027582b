//! Every input limit through the real router over real HTTP: a server on
//! 127.0.0.1:0 with deliberately small limits (so each test sends a small
//! body), a real SQLite store and no language model — every limit is checked
//! before a request would reach the model's queue. Each rejection is a 4xx
//! JSON error naming the field, the limit and the value given; the OpenAPI
//! document carries the same configured numbers.

#[path = "server_support/mod.rs"]
mod support;

use brandvoice::server::{load_base_state, spawn_with_state, ServerHandle};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use support::{post, request};

const MSG: usize = 120;
const TURNS: usize = 2;
const TURN_CHARS: usize = 50;
const FACTS: usize = 2;
const FACT_CHARS: usize = 40;
const N: usize = 3;
const TOKENS: usize = 64;
const BATCH: usize = 3;
const BODY: usize = 16384;

fn addr() -> SocketAddr {
    static S: OnceLock<ServerHandle> = OnceLock::new();
    S.get_or_init(|| {
        let mut cfg = support::config(2);
        cfg.limits.max_message_chars = MSG;
        cfg.limits.max_history_turns = TURNS;
        cfg.limits.max_turn_chars = TURN_CHARS;
        cfg.limits.max_facts = FACTS;
        cfg.limits.max_fact_chars = FACT_CHARS;
        cfg.limits.max_n = N;
        cfg.limits.max_tokens = TOKENS;
        cfg.server.triage_batch = BATCH;
        cfg.server.body_limit_bytes = BODY;
        cfg.check().expect("small limits are valid");
        let state = load_base_state(&cfg).expect("state");
        spawn_with_state(&cfg, Arc::new(state), None).expect("serve")
    })
    .addr
}

/// Asserts a 422 naming `field`, whose message holds every one of `words` (limit, value).
fn rejected(r: &support::Resp, field: &str, words: &[&str]) {
    assert_eq!(r.status, 422, "{field}: {}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["type"], "validation_error", "{}", r.body);
    assert_eq!(v["error"]["field"], field, "{}", r.body);
    let m = v["error"]["message"].as_str().unwrap();
    for w in words {
        assert!(m.contains(w), "{field}: message {m:?} lacks {w:?}");
    }
}

fn draft(extra: Value) -> Value {
    let mut b = json!({"brand": "tunely", "channel": "twitter", "message": "Where is my order?"});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[test]
fn draft_message_history_and_facts() {
    let a = addr();
    rejected(&post(a, "/v1/drafts", &draft(json!({"message": "x".repeat(MSG + 1)}))), "message", &["120", "121"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"message": "   "}))), "message", &["empty"]);
    let turns: Vec<Value> = (0..TURNS + 1).map(|_| json!({"role": "customer", "text": "hi"})).collect();
    rejected(&post(a, "/v1/drafts", &draft(json!({"history": turns}))), "history", &["2", "3"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"history": [{"role": "customer", "text": "y".repeat(TURN_CHARS + 1)}]}))), "history[0].text", &["50", "51"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"history": [{"role": "boss", "text": "hi"}]}))), "history[0].role", &["boss"]);
    let facts: Vec<Value> = (0..FACTS + 1).map(|i| json!({"text": format!("fact {i}")})).collect();
    rejected(&post(a, "/v1/drafts", &draft(json!({"facts": facts}))), "facts", &["2", "3"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"facts": [{"text": "f".repeat(FACT_CHARS + 1)}]}))), "facts[0].text", &["40", "41"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"facts": [{"text": "ok", "url": "javascript:alert(1)"}]}))), "facts[0].url", &["http"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"customer": {"facts": ["a", "b", "c"]}}))), "customer.facts", &["2", "3"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"customer": {"name": "n".repeat(101)}}))), "customer.name", &["100", "101"]);
}

#[test]
fn draft_numbers() {
    let a = addr();
    rejected(&post(a, "/v1/drafts", &draft(json!({"n": 0}))), "n", &["between 1 and 3", "got 0"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"n": N + 1}))), "n", &["between 1 and 3", "got 4"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"max_tokens": TOKENS + 1}))), "max_tokens", &["64", "65"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"max_tokens": 0}))), "max_tokens", &["got 0"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"temperature": 2.5}))), "temperature", &["between 0 and 2", "2.5"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"n": -1}))), "n", &["-1"]);
    // Without `max_tokens` the default (120) is clamped to the tighter limit, so the request
    // passes validation and only then meets the missing model (503), not a 422.
    let r = post(a, "/v1/drafts", &draft(json!({})));
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (503, Some("not_ready")), "{}", r.body);
    rejected(&post(a, "/v1/drafts", &draft(json!({"n": "two"}))), "n", &["two"]);
}

#[test]
fn unknown_fields_are_named() {
    let a = addr();
    rejected(&post(a, "/v1/drafts", &draft(json!({"colour": "red"}))), "colour", &["unknown field"]);
    rejected(&post(a, "/v1/drafts", &draft(json!({"facts": [{"text": "a", "link": "x"}]}))), "facts[0].link", &["unknown field"]);
    rejected(&post(a, "/v1/rewrite", &json!({"brand": "tunely", "channel": "twitter", "draft": "hi", "tone": "x"})), "tone", &["unknown field"]);
    rejected(&post(a, "/v1/lint", &json!({"brand": "tunely", "channel": "twitter", "text": "hi", "strict": true})), "strict", &["unknown field"]);
    rejected(&post(a, "/v1/triage", &json!({"messages": [{"id": 1, "text": "hi", "lang": "en"}]})), "messages[0].lang", &["unknown field"]);
    rejected(&post(a, "/v1/reviews", &json!({"run_id": "r", "case_id": "c", "draft_id": "d", "reviewer_id": "x", "scores": {"overall": 3}, "extra": 1})), "extra", &["unknown field"]);
    rejected(&request(a, "GET", "/v1/reviews?run=r&colour=red", None), "colour", &["unknown field"]);
}

#[test]
fn rewrite_lint_and_triage() {
    let a = addr();
    rejected(&post(a, "/v1/rewrite", &json!({"brand": "tunely", "channel": "twitter", "draft": "d".repeat(MSG + 1)})), "draft", &["120", "121"]);
    rejected(&post(a, "/v1/rewrite", &json!({"brand": "tunely", "channel": "twitter", "draft": "ok", "n": 9})), "n", &["got 9"]);
    rejected(&post(a, "/v1/lint", &json!({"brand": "tunely", "channel": "twitter", "text": "t".repeat(MSG + 1)})), "text", &["120", "121"]);
    let facts: Vec<Value> = (0..FACTS + 1).map(|_| json!({"text": "f"})).collect();
    rejected(&post(a, "/v1/lint", &json!({"brand": "tunely", "channel": "twitter", "text": "ok", "facts": facts})), "facts", &["2", "3"]);
    let batch: Vec<Value> = (0..BATCH + 1).map(|i| json!({"id": i, "text": "hi"})).collect();
    rejected(&post(a, "/v1/triage", &json!({"messages": batch})), "messages", &["between 1 and 3", "got 4"]);
    rejected(&post(a, "/v1/triage", &json!({"messages": []})), "messages", &["got 0"]);
    rejected(&post(a, "/v1/triage", &json!({"messages": [{"id": 1, "text": "m".repeat(MSG + 1)}]})), "messages[0].text", &["120", "121"]);
    rejected(&post(a, "/v1/triage", &json!({"messages": [{"id": [1], "text": "hi"}]})), "messages[0].id", &["string or a number"]);
    rejected(&post(a, "/v1/chat/completions", &json!({"model": "brandvoice/tunely/twitter", "messages": [{"role": "user", "content": "hi"}], "n": 7})), "n", &["got 7"]);
}

#[test]
fn reviews_and_query_strings() {
    let a = addr();
    let review = |extra: Value| {
        let mut b = json!({"kind": "review", "run_id": "lim", "case_id": "c1", "draft_id": "d0", "reviewer_id": "ann", "scores": {"overall": 4}});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    rejected(&post(a, "/v1/reviews", &review(json!({"comment": "c".repeat(5001)}))), "comment", &["5000", "5001"]);
    rejected(&post(a, "/v1/reviews", &review(json!({"scores": {"overall": 6}}))), "scores.overall", &["1 to 5", "6"]);
    rejected(&post(a, "/v1/reviews", &review(json!({"scores": {"overall": 0}}))), "scores.overall", &["1 to 5", "0"]);
    rejected(&post(a, "/v1/reviews", &review(json!({"run_id": "r".repeat(201)}))), "run_id", &["200", "201"]);
    rejected(&post(a, "/v1/reviews", &review(json!({"auto_scores": {"overall": 101.0}}))), "auto_scores.overall", &["0 to 100"]);
    rejected(&request(a, "GET", &format!("/v1/reviews?run={}", "r".repeat(201)), None), "run", &["200", "201"]);
    rejected(&request(a, "GET", "/v1/reviews?run=", None), "run", &["non-empty"]);
    rejected(&request(a, "GET", "/v1/reviews/stats?run=lim&bootstrap=100000", None), "bootstrap", &["10000", "100000"]);
    let ok = post(a, "/v1/reviews", &review(json!({"comment": "c".repeat(5000)})));
    assert_eq!(ok.status, 201, "exactly at the limit is accepted: {}", ok.body);
}

#[test]
fn body_size_and_syntax() {
    let a = addr();
    let big = json!({"brand": "tunely", "channel": "twitter", "text": "x".repeat(BODY)}).to_string();
    let r = request(a, "POST", "/v1/lint", Some(&big));
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "payload_too_large");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("16384"), "{}", r.body);
    let r = request(a, "POST", "/v1/lint", Some("{\"brand\": "));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "invalid_json");
}

#[test]
fn openapi_documents_the_configured_limits() {
    let r = request(addr(), "GET", "/openapi.json", None);
    assert_eq!(r.status, 200);
    let v = r.json();
    let p = |schema: &str, prop: &str| v["components"]["schemas"][schema]["properties"][prop].clone();
    assert_eq!(p("DraftRequest", "message")["maxLength"], MSG);
    assert_eq!(p("DraftRequest", "history")["maxItems"], TURNS);
    assert_eq!(p("Turn", "text")["maxLength"], TURN_CHARS);
    assert_eq!(p("DraftRequest", "facts")["maxItems"], FACTS);
    assert_eq!(p("DraftRequest", "n")["maximum"], N);
    assert_eq!(p("DraftRequest", "max_tokens")["maximum"], TOKENS);
    assert_eq!(p("DraftRequest", "temperature")["maximum"], 2.0);
    assert_eq!(p("RewriteRequest", "draft")["maxLength"], MSG);
    assert_eq!(p("TriageRequest", "messages")["maxItems"], BATCH);
    assert_eq!(p("TriageMessage", "text")["maxLength"], MSG);
    assert_eq!(p("LintBody", "text")["maxLength"], MSG);
    assert_eq!(p("NewReview", "comment")["maxLength"], 5000);
    assert_eq!(p("NewReview", "run_id")["maxLength"], 200);
    assert_eq!(p("Scores", "overall")["maximum"], 5);
    let d = v["info"]["description"].as_str().unwrap();
    assert!(d.contains("16384 bytes") && d.contains("413") && d.contains("504"), "{d}");
    assert!(v["components"]["securitySchemes"]["bearer"].is_object(), "{}", v["components"]["securitySchemes"]);
}
