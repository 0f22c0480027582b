//! The HTTP service end to end: a real server on 127.0.0.1:0 with the real
//! smollm2 model and mood detector, driven over real TCP.

#[path = "server_support/mod.rs"]
mod support;

use serde_json::json;
use std::time::Duration;
use support::{post, request, shared, sse};

fn draft_body(extra: serde_json::Value) -> serde_json::Value {
    let mut b = json!({
        "brand": "tunely",
        "channel": "twitter",
        "message": "My playlist disappeared after the update and I'm really annoyed.",
        "max_tokens": 24,
        "seed": 7
    });
    if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    b
}

#[test]
fn json_draft() {
    let addr = shared();
    let r = post(addr, "/v1/drafts", &draft_body(json!({ "n": 2 })));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let drafts = v["drafts"].as_array().expect("drafts");
    assert!(!drafts.is_empty() && drafts.len() <= 2, "{v}");
    for d in drafts {
        assert!(!d["text"].as_str().unwrap().trim().is_empty(), "{d}");
        assert!(d["score"]["overall"].is_number(), "{d}");
        if d["fallback"] == false {
            // a non-fallback draft breaks no error-level rule
            assert!(d["violations"].as_array().unwrap().iter().all(|x| x["level"] != "error"), "{d}");
        }
    }
    assert_eq!(v["model"], support::MODEL);
    assert_eq!(v["seed"], 7);
    assert_eq!(v["language"], "en");
    assert!(v["mood"]["detected"].as_bool().unwrap());
    let t = &v["timings"];
    assert!(t["queued_ms"].as_f64().unwrap() >= 0.0 && t["total_ms"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["prompt_tokens"].as_u64().unwrap() > 10, "{t}");

    // the same seed gives the same drafts
    let again = post(addr, "/v1/drafts", &draft_body(json!({ "n": 2 }))).json();
    let texts = |v: &serde_json::Value| v["drafts"].as_array().unwrap().iter().map(|d| d["text"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(texts(&v), texts(&again));
    // and the second run reuses the cached prompt prefix
    assert!(again["timings"]["cached_tokens"].as_u64().unwrap() > 0, "{}", again["timings"]);
}

#[test]
fn sse_draft_streams_tokens_then_checked_drafts() {
    let addr = shared();
    let (status, events) = sse(addr, "/v1/drafts", &draft_body(json!({ "stream": true, "seed": 11 })), |_| false);
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"understood"), "{names:?}");
    let tokens = names.iter().filter(|n| **n == "token").count();
    assert!(tokens >= 2, "expected several token events: {names:?}");
    assert_eq!(&names[names.len() - 2..], &["drafts", "done"], "{names:?}");
    let first_token = events.iter().position(|e| e.event == "token").unwrap();
    assert!(names[1..first_token].iter().all(|n| *n == "understood"));
    let understood: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert!(understood["mood"]["label"].is_string(), "{understood}");
    let tok: serde_json::Value = serde_json::from_str(&events[first_token].data).unwrap();
    assert_eq!(tok["candidate"], 0);
    let drafts: serde_json::Value = serde_json::from_str(&events[names.len() - 2].data).unwrap();
    assert!(!drafts["drafts"].as_array().unwrap().is_empty(), "{drafts}");
    assert_eq!(drafts["seed"], 11);
    // tokens arrive before the final answer, not all at once at the end
    assert!(events[first_token].at < events[names.len() - 2].at);
    // the raw streamed text is what the pipeline generated (checks may then fix it)
    let streamed: String = events.iter().filter(|e| e.event == "token").map(|e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["text"].as_str().unwrap().to_string()).collect();
    assert!(!streamed.trim().is_empty());
}

#[test]
fn triage_batch() {
    let addr = shared();
    let r = post(addr, "/v1/triage", &json!({ "messages": [
        { "id": "a1", "text": "This is the FOURTH time you've cancelled my delivery. Absolutely useless!!!" },
        { "id": 2, "text": "丁寧に対応していただき、本当にありがとうございました。" },
        { "id": "c", "text": "मेरी फ़्लाइट कल है और टिकट अभी तक नहीं आया, बहुत चिंता हो रही है।" },
    ]}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 3);
    assert_eq!((res[0]["id"].clone(), res[1]["id"].clone(), res[2]["id"].clone()), (json!("a1"), json!(2), json!("c")));
    assert_eq!(res[0]["mood"], "angry");
    assert_eq!(res[0]["polarity"], "negative");
    assert_eq!(res[0]["needs_reply"], true);
    assert_eq!((res[1]["language"].as_str(), res[1]["mood"].as_str()), (Some("ja"), Some("grateful")));
    assert_eq!((res[2]["language"].as_str(), res[2]["mood"].as_str()), (Some("hi"), Some("anxious")));
}

#[test]
fn validation_errors_name_the_field() {
    let addr = shared();
    let r = post(addr, "/v1/drafts", &draft_body(json!({ "n": 0 })));
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["type"], "validation_error");
    assert_eq!(v["error"]["field"], "n");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("between 1 and 8") && m.contains("got 0"), "{m}");
    let r = post(addr, "/v1/drafts", &draft_body(json!({ "mood": "furious" })));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "mood");
    assert!(r.body.contains("furious") && r.body.contains("angry"), "{}", r.body);
    let r = request(addr, "GET", "/readyz", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["model"], support::MODEL);
}

#[test]
fn chat_completions_json_and_stream() {
    let addr = shared();
    let body = json!({
        "model": "brandvoice/northgate/live_chat",
        "messages": [
            { "role": "system", "content": "ignored" },
            { "role": "user", "content": "I can't log in to the app since this morning." },
            { "role": "assistant", "content": "Sorry to hear that. Which error do you see?" },
            { "role": "user", "content": "It just says my session expired, over and over." }
        ],
        "max_tokens": 24, "seed": 3, "n": 2
    });
    let r = post(addr, "/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "brandvoice/northgate/live_chat");
    let choices = v["choices"].as_array().unwrap();
    assert!(!choices.is_empty());
    assert_eq!(choices[0]["message"]["role"], "assistant");
    assert!(!choices[0]["message"]["content"].as_str().unwrap().trim().is_empty());
    let u = &v["usage"];
    assert_eq!(u["total_tokens"].as_u64(), Some(u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()));
    assert_eq!(v["brandvoice"]["drafts"][0]["text"], choices[0]["message"]["content"]);

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({ "include_usage": true });
    let (status, events) = sse(addr, "/v1/chat/completions", &sbody, |_| false);
    assert_eq!(status, 200);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"].get(0)).filter(|c| c["index"] == 0).filter_map(|c| c["delta"]["content"].as_str()).collect();
    // streamed and non-streamed give the same checked draft for the same seed
    assert_eq!(text, choices[0]["message"]["content"].as_str().unwrap());
    assert!(chunks.iter().any(|c| c["choices"].get(0).is_some_and(|c| c["finish_reason"] == "stop")));
    assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn disconnecting_client_cancels_its_generation() {
    let addr = shared();
    let metric = |name: &str| -> f64 {
        let m = request(addr, "GET", "/metrics", None).body;
        m.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let before = metric("brandvoice_draft_requests_total{outcome=\"cancelled\"}");
    // read until the first token, then hang up
    let (status, events) = sse(addr, "/v1/drafts", &draft_body(json!({ "stream": true, "max_tokens": 200, "n": 4, "temperature": 1.5 })), |e| e.event == "token");
    assert_eq!(status, 200);
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("token"));
    let mut after = before;
    for _ in 0..100 {
        after = metric("brandvoice_draft_requests_total{outcome=\"cancelled\"}");
        if after > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(after > before, "the generation was not cancelled after the client left");
}

#[test]
fn full_queue_is_503_with_retry_after_and_shutdown_drains() {
    let server = brandvoice::server::spawn_server(&support::config(1)).expect("start");
    let addr = server.addr;
    // several slow requests at once: one runs, one waits, the rest are turned away
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                post(addr, "/v1/drafts", &draft_body(json!({ "n": 4, "max_tokens": 48, "seed": i })))
            })
        })
        .collect();
    let resps: Vec<_> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
    let ok = resps.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = resps.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "{resps:#?}");
    assert!(!busy.is_empty(), "expected 503s with queue size 1: {:?}", resps.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(ok + busy.len(), 6, "{resps:#?}");
    for r in &busy {
        let secs: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
        assert!(secs >= 1);
        let v = r.json();
        assert_eq!(v["error"]["type"], "overloaded", "{v}");
    }
    let m = request(addr, "GET", "/metrics", None).body;
    assert!(m.contains("brandvoice_queue_rejected_total"), "{m}");

    // graceful shutdown: a request in flight when the signal comes still gets its answer
    let inflight = std::thread::spawn(move || post(addr, "/v1/drafts", &draft_body(json!({ "max_tokens": 32 }))));
    std::thread::sleep(Duration::from_millis(300));
    server.shutdown().expect("clean shutdown");
    let r = inflight.join().expect("thread");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(std::net::TcpStream::connect(addr).is_err(), "still listening after shutdown");
}

#[test]
fn rewrite_runs_the_same_pipeline() {
    let addr = shared();
    let r = post(addr, "/v1/rewrite", &json!({
        "brand": "northgate", "channel": "email",
        "draft": "hey, ur card is blocked cuz of fraud stuff, call us",
        "message": "Why was my card declined at the supermarket?",
        "max_tokens": 24, "seed": 2
    }));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(!v["drafts"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["seed"], 2);
    let r = post(addr, "/v1/rewrite", &json!({ "brand": "northgate", "channel": "email", "draft": "" }));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "draft");
}

#[test]
fn serve_rejects_a_config_with_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nbind = \"127.0.0.1:0\"\nqueue_sise = 3\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_brandvoice")).arg("serve").arg("--config").arg(&file).output().expect("run brandvoice");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("queue_sise"), "{err}");
}
