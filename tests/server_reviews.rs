//! The reviews API end to end: the real start-up path (`spawn_server`, which
//! opens `store.path` before it loads smollm2 and the mood detector), reviews
//! posted over real TCP, and the SQLite file then read with `ReviewStore`
//! while the server still runs (WAL lets a second connection read).

#[path = "server_support/mod.rs"]
mod support;

use brandvoice::server::spawn_server;
use brandvoice::store::{Preference, ReviewStore};
use serde_json::json;
use support::{post, request};

#[test]
fn reviews_posted_over_http_are_in_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store/reviews.sqlite");
    let mut cfg = support::config(4);
    cfg.store.path = Some(db.clone());
    let server = spawn_server(&cfg).expect("start the server with smollm2 and a store");
    let addr = server.addr;

    for (case, reviewer, overall) in [("c1", "ann", 4), ("c1", "bob", 5), ("c2", "ann", 2), ("c2", "bob", 1)] {
        let body = json!({
            "kind": "review", "run_id": "http-run", "case_id": case, "draft_id": "d0", "draft_text": "We're on it — thanks for your patience.",
            "reviewer_id": reviewer, "scores": { "overall": overall, "politeness": 4 }, "auto_scores": { "overall": 70.0 }, "comment": "über gut"
        });
        let r = post(addr, "/v1/reviews", &body);
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json()["reviewer_id"], reviewer);
    }
    let pair = json!({ "kind": "pairwise", "run_a": "http-run", "run_b": "base", "case_id": "c1", "preferred": "b", "reviewer_id": "ann" });
    assert_eq!(post(addr, "/v1/reviews", &pair).status, 201);
    let dup = post(addr, "/v1/reviews", &pair);
    assert_eq!((dup.status, dup.json()["error"]["type"].as_str()), (409, Some("conflict")), "{}", dup.body);
    let bad = post(addr, "/v1/reviews", &json!({ "run_id": "http-run", "case_id": "c3", "draft_id": "d", "reviewer_id": "ann", "scores": { "overall": 9 } }));
    assert_eq!((bad.status, bad.json()["error"]["field"].as_str()), (422, Some("scores.overall")), "{}", bad.body);

    let csv = request(addr, "GET", "/v1/reviews?run=http-run&format=csv", None);
    assert_eq!((csv.status, csv.header("content-type")), (200, Some("text/csv; charset=utf-8")));
    assert_eq!(csv.body.lines().count(), 5, "{}", csv.body);
    assert!(csv.body.contains("über gut"), "{}", csv.body);
    let stats = request(addr, "GET", "/v1/reviews/stats?run=http-run", None);
    assert_eq!(stats.status, 200, "{}", stats.body);
    let v = stats.json();
    assert_eq!(v["goals"].as_array().unwrap().iter().find(|g| g["goal"] == "overall").unwrap()["ratings"], 4, "{v}");

    // The server still runs; a second connection reads what it wrote.
    let store = ReviewStore::open(&db).expect("open the server's SQLite file");
    let reviews = store.list(Some("http-run")).unwrap();
    let got: Vec<(&str, &str, Option<u8>)> = reviews.iter().map(|r| (r.case_id.as_str(), r.reviewer_id.as_str(), r.scores.overall)).collect();
    assert_eq!(got, [("c1", "ann", Some(4)), ("c1", "bob", Some(5)), ("c2", "ann", Some(2)), ("c2", "bob", Some(1))]);
    assert!(reviews.iter().all(|r| r.comment == "über gut" && r.auto_scores.overall == Some(70.0) && r.created_at.ends_with('Z')));
    let pairs = store.list_pairwise(Some("http-run")).unwrap();
    assert_eq!((pairs.len(), pairs[0].preferred), (1, Preference::B));

    let metrics = request(addr, "GET", "/metrics", None).body;
    assert!(metrics.contains("brandvoice_http_requests_total{route=\"/v1/reviews\",status=\"201\"} 5"), "{metrics}");
    assert!(metrics.contains("brandvoice_http_requests_total{route=\"/v1/reviews/stats\",status=\"200\"} 1"), "{metrics}");
    server.shutdown().expect("graceful shutdown");
}

#[test]
fn a_bad_store_path_fails_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let mut cfg = support::config(4);
    cfg.store.path = Some(file.join("reviews.sqlite"));
    let start = std::time::Instant::now();
    let e = spawn_server(&cfg).err().expect("the start fails").to_string();
    assert!(e.starts_with("store.path: cannot open the store ") && e.contains("plain-file/reviews.sqlite"), "{e}");
    // before the model and the mood detector load
    assert!(start.elapsed() < std::time::Duration::from_secs(2), "{:?}", start.elapsed());
}
