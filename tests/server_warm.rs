//! The server's prefix-cache warm-up (`[server] warm`): `/readyz` reports its
//! progress while the worker fills the cache between requests, and a first
//! request after it finds its prompt's shared part (system text + exemplar
//! turns) already computed. Real smollm2, real HTTP.

#[path = "server_support/mod.rs"]
mod support;

use brandvoice::server::spawn_server;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn warm_up_reports_progress_and_the_first_request_finds_its_prefix_cached() {
    let mut cfg = support::config(4);
    cfg.server.warm = true;
    cfg.server.warm_channels = vec!["twitter".into()];
    // Room for a few combinations only: the warm-up then ends early with
    // "cache full" (nothing is evicted for it), which keeps the test short.
    cfg.model.prefix_cache_bytes = 160 << 20;
    let server = spawn_server(&cfg).expect("start the server with smollm2");
    let addr = server.addr;

    let start = Instant::now();
    let mut seen_done = Vec::new();
    let warm = loop {
        let r = support::request(addr, "GET", "/readyz", None);
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        assert_eq!(j["status"], "ready", "ready while the warm-up runs: {j}");
        let w = j["warm"].clone();
        let (total, done) = (w["total"].as_u64().expect("warm.total"), w["done"].as_u64().expect("warm.done"));
        // 3 brands × 7+ moods, twitter only (in English: smollm2 writes no
        // other language, so no other is warmed).
        assert!(total >= 21, "{w}");
        assert!(done <= total, "{w}");
        if seen_done.last() != Some(&done) {
            seen_done.push(done);
        }
        if w["finished"] == true {
            break w;
        }
        assert!(start.elapsed() < Duration::from_secs(900), "warm-up never finished: {w}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = warm["done"].as_u64().unwrap();
    assert!(done >= 1, "nothing warmed: {warm}");
    assert!(done < warm["total"].as_u64().unwrap(), "a 160 MiB cache cannot hold every combination: {warm}");
    assert!(seen_done.windows(2).all(|w| w[0] < w[1]), "progress only moves forward: {seen_done:?}");

    // The hottest combination is warmed first: the first brand (northgate),
    // the first mood (angry), the brand's first language (en).
    let t = draft_timings(addr, "en");
    let shared = t["shared_tokens"].as_u64().unwrap();
    assert!(shared > 100, "{t}");
    assert_eq!(t["cache_hit"], true, "{t}");
    assert_eq!(t["cached_tokens"].as_u64().unwrap(), shared, "the whole shared part came from the cache: {t}");
    assert_eq!(t["prefill_tokens"].as_u64().unwrap() + shared, t["prompt_tokens"].as_u64().unwrap(), "{t}");

    // A combination the full cache did not take (the last one: the last
    // brand's last mood; smollm2 writes only English, so its brands' other
    // languages are not warmed at all) has to compute its shared part.
    let t = draft_timings_for(addr, "wayfind", "grateful", "en");
    assert!(t["cached_tokens"].as_u64().unwrap() < t["shared_tokens"].as_u64().unwrap(), "not warmed, so not cached: {t}");
    assert!(t["generated_tokens"].as_u64().unwrap() > 0, "a generated draft: {t}");
}

/// The timings of a northgate / twitter / angry draft in `language`.
fn draft_timings(addr: std::net::SocketAddr, language: &str) -> serde_json::Value {
    draft_timings_for(addr, "northgate", "angry", language)
}

fn draft_timings_for(addr: std::net::SocketAddr, brand: &str, mood: &str, language: &str) -> serde_json::Value {
    let body = json!({
        "brand": brand, "channel": "twitter", "mood": mood, "language": language,
        "message": "Your app charged me twice for the same transfer. Sort it out.",
        "n": 1, "seed": 5
    });
    let r = support::post(addr, "/v1/drafts", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["timings"].clone()
}
