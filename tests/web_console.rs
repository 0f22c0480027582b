//! The web console end to end in a real browser: headless Debian Chromium
//! driven through chromedriver (W3C WebDriver), against the real server with
//! smollm2, a real SQLite reviews store and fixture eval runs in a temp dir.
//!
//! One test, one server, one browser session, steps in order (Chromium and
//! the model each take seconds to start): the agent console drafts a reply to
//! an angry tweet and the test sees text stream in before the final draft
//! with its tone score; the reviewer console scores a draft from the keyboard
//! and the test finds the score in the SQLite file and in the CSV and JSONL
//! exports; a blind A/B judgement; the dashboard's charts; and, against a
//! server that demands an API key, the key dialog and a plain-words error.
//! Screenshots go to `target/screenshots/` (git-ignored) for a person to look at.

#[path = "server_support/mod.rs"]
mod support;
mod web_support;

use brandvoice::server::spawn_server;
use serde_json::Value;
use std::path::PathBuf;
use web_support::webdriver::{Browser, ENTER};
use web_support::{RUN_A, RUN_B};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

#[test]
fn agent_and_reviewer_consoles_in_chromium() {
    let runs = tempfile::tempdir().unwrap();
    web_support::write_runs(runs.path());
    let mut cfg = support::config(4);
    cfg.eval.runs_dir = Some(runs.path().to_path_buf());
    let db = cfg.store.path.clone().expect("a store path");
    let server = spawn_server(&cfg).expect("start the server with smollm2");
    let base = format!("http://{}", server.addr);
    let b = Browser::start(1280, 800);

    agent_console(&b, &base);
    reviewer_console(&b, &base, server.addr, &db);
    api_key_dialog(&b, runs.path());
}

fn agent_console(b: &Browser, base: &str) {
    b.goto(&format!("{base}/"));
    b.wait_for("#brand option[value=tunely]", 30);
    b.wait_for("#mood option[value=angry]", 10);
    assert!(b.find("#channel option[value=twitter]").is_some(), "channels come from /v1/channels");
    b.select("#brand", "tunely");
    b.select("#channel", "twitter");
    b.fill("#message", "@tunely your app crashed AGAIN and deleted all my playlists. This is ridiculous, I pay for Premium!");
    b.click("#request details summary");
    b.fill("#history", "customer: it happened last week too\nagent: sorry, we're on it");
    b.fill("#facts", "a fix ships on Friday");
    // Record every change of the streaming box, and whether a final draft existed then.
    b.js(
        "window.__seen = [];
         new MutationObserver(() => {
           const s = document.querySelector('#streams pre.streaming');
           if (s) window.__seen.push({ len: s.textContent.length, finals: document.querySelectorAll('#drafts li.draft').length });
         }).observe(document.getElementById('results'), { subtree: true, childList: true, characterData: true });",
        vec![],
    );
    b.click("#go");
    b.wait_for("#drafts li.draft", 300);
    let seen = b.js("return window.__seen", vec![]);
    let partial: Vec<&Value> = seen.as_array().unwrap().iter().filter(|s| s["len"].as_u64().unwrap_or(0) > 0 && s["finals"] == 0).collect();
    assert!(!partial.is_empty(), "no partial text streamed in before the final draft: {seen}");
    let lengths: std::collections::BTreeSet<u64> = partial.iter().filter_map(|s| s["len"].as_u64()).collect();
    eprintln!("agent: {} streaming updates, {} distinct partial lengths before the final draft", partial.len(), lengths.len());

    let score = b.text("#drafts li.draft .score");
    let n: u32 = score.trim_start_matches("Tone ").trim().parse().unwrap_or_else(|_| panic!("tone score badge: {score:?}"));
    assert!(n <= 100, "{score}");
    let fixes = b.js("return document.querySelectorAll('#drafts li.draft .lists li').length + '/' + document.querySelectorAll('#drafts li.draft mark.fixed').length", vec![]);
    eprintln!("agent: fixes listed/highlighted {fixes}");
    let card = b.js("return document.querySelector('#drafts li.draft').outerHTML", vec![]);
    assert!(b.find("#drafts li.draft dl.score-parts meter").is_some(), "per-goal score bars: {card}");
    let text = b.text("#drafts li.draft .draft-text");
    assert!(!text.trim().is_empty(), "final draft text");
    assert!(b.text("#drafts li.draft .count").contains("/ 280 Twitter characters"), "channel length count");
    let mood = b.wait_js("const m = document.getElementById('u-mood').textContent; return m !== '–' && m", 30, "triage mood");
    eprintln!("agent: mood {mood}, tone {n}, draft {text:?}");
    assert!(b.text("#status").contains("seed"), "status names model and seed");
    assert!(b.text("#status").chars().filter(char::is_ascii_digit).count() > 0);
    let seed_shown = b.text("#drafts li.draft .draft-head .muted");
    let seed: u64 = seed_shown.trim_start_matches("seed ").parse().unwrap_or_else(|_| panic!("seed: {seed_shown:?}"));
    // A JS number would round a seed above 2^53 to a multiple of a power of
    // two; a random u64 seed is one (by chance) at most 1 time in 2048.
    if seed > 1 << 53 {
        assert_ne!(seed as f64 as u64, seed, "the u64 seed looks rounded by a JS number: {seed_shown}");
    }
    b.screenshot(&shots().join("agent-1280x800.png"));
    b.click("#drafts li.draft button.copy");
    b.wait_js("return document.querySelector('#drafts li.draft [role=status]').textContent === 'Copied.'", 5, "copy feedback");

    // the live count measures as the server's lint does
    let samples = [
        "Sorry about that! We'll fix it today. – Tunely Care",
        "Track it here: https://tunely.example.com/t/48213?x=1. Thanks!",
        "see tunely.fm/help, or www.tunely.com.",
        "ご迷惑をおかけして申し訳ございません。確認いたします。",
        "Thanks 🙏🏽 for waiting 👍 1️⃣ #1",
        "नमस्ते, हम आपकी मदद करेंगे।",
        "Line one.\n\nSecond paragraph here. And more?\nYes.",
        "Price: 10€ ^_^ [ok] {x} ~y| and ü",
        &"long sms text ".repeat(14),
    ];
    let mut differ = Vec::new();
    for unit in ["twitter", "graphemes", "words", "sentences", "paragraphs", "sms_segments"] {
        let u: brandvoice::style::length::LengthUnit = serde_json::from_value(Value::from(unit)).unwrap();
        for text in samples {
            let js = b.js("return BV.measure(arguments[0], arguments[1])", vec![Value::from(text), Value::from(unit)]);
            if js.as_u64() != Some(u.measure(text) as u64) {
                differ.push(format!("{unit} of {text:?}: browser {js}, server {}", u.measure(text)));
            }
        }
    }
    assert!(differ.is_empty(), "the console counts differently from the server:\n{}", differ.join("\n"));

    // more alternatives are added below the first draft
    b.click("#more");
    b.wait_js("return !document.getElementById('more').disabled && document.querySelectorAll('#drafts li.draft').length >= 2", 300, "more alternatives");
    assert!(b.find("#errors .error").is_none(), "errors shown: {}", b.text("#errors"));

    // the live count follows edits, and goes red over the limit
    b.fill("#edit-1", &"x".repeat(300));
    let over = b.wait_js("const c = document.getElementById('count-1'); return c.classList.contains('over') && c.textContent", 5, "over-limit count");
    assert!(over.as_str().unwrap().starts_with("300 / 280"), "{over}");

    // rewrite mode shows the agent's own draft box with its own count
    b.click("#mode-rewrite");
    b.fill("#own-draft", "hi there, we r looking into it");
    assert!(b.text("#own-count").contains("/ 280"));
    assert_eq!(b.text("#go"), "Rewrite my draft");
    b.click("#go");
    b.wait_js("return document.getElementById('status').textContent.includes('seed') && document.querySelectorAll('#drafts li.draft').length", 300, "rewritten draft");
    assert!(!b.text("#drafts li.draft .draft-text").trim().is_empty(), "rewrite gives a draft");

    b.set_size(420, 900);
    let fits = b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1", vec![]);
    assert_eq!(fits, true, "the agent console scrolls sideways at 420 px");
    b.screenshot(&shots().join("agent-narrow-420.png"));
    b.set_size(1280, 800);
}

fn reviewer_console(b: &Browser, base: &str, addr: std::net::SocketAddr, db: &std::path::Path) {
    b.goto(&format!("{base}/review"));
    b.wait_for(&format!("#run option[value=\"{RUN_A}\"]"), 30);
    b.fill("#reviewer", "ann");
    b.select("#run", RUN_A);
    assert!(b.text("#run-summary").contains("smollm2-135m"), "run summary from summary.json");
    b.click("#start");
    let draft = b.text("#draft-under-review");
    assert!(draft.contains("playlists vanished"), "{draft}");
    b.screenshot(&shots().join("review-1280x800.png"));
    // voice, mood_fit, channel_fit, rules, readability, politeness, overall; then Enter saves
    b.keys(&["4", "5", "3", "4", "4", "5", "4", ENTER]);
    b.wait_js("return document.getElementById('progress-text').textContent.includes('1 of 3')", 20, "progress after the first score");
    assert!(b.text("#item-title").starts_with("Draft 2 of 3"), "moved to the next open draft");
    b.keys(&["k"]);
    assert!(b.text("#item-title").contains("(done)"), "k goes back to the scored draft");
    b.keys(&["j"]);

    // the score is in the SQLite file ...
    let conn = rusqlite::Connection::open(db).expect("open the reviews SQLite file");
    let row: (String, String, i64, i64, i64, i64, f64) = conn
        .query_row("SELECT case_id, reviewer_id, voice, mood_fit, channel_fit, overall, auto_overall FROM reviews WHERE run_id = ?1", [RUN_A], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .expect("one review row for the run");
    assert_eq!(row, ("angry-1".into(), "ann".into(), 4, 5, 3, 4, 60.0));
    // ... and in the exports
    let csv = support::request(addr, "GET", &format!("/v1/reviews?run={RUN_A}&format=csv"), None);
    assert_eq!(csv.status, 200);
    assert!(csv.body.lines().count() == 2 && csv.body.contains("angry-1") && csv.body.contains("ann"), "{}", csv.body);
    let jsonl = support::request(addr, "GET", &format!("/v1/reviews?run={RUN_A}&format=jsonl"), None);
    let line: Value = serde_json::from_str(jsonl.body.lines().next().expect("a JSONL line")).unwrap();
    assert_eq!((line["case_id"].as_str(), line["scores"]["mood_fit"].as_u64(), line["draft_id"].as_str()), (Some("angry-1"), Some(5), Some("final")), "{line}");

    // blind A/B: the run on side A is random; the stored pair says which it was
    b.click("#mode-ab");
    b.select("#run-b", RUN_B);
    b.click("#start");
    b.wait_js("return document.getElementById('ab-a').textContent.length > 0", 20, "A/B drafts");
    let a_text = b.text("#ab-a");
    b.keys(&["a"]);
    b.wait_js("return document.getElementById('progress-text').textContent.includes('1 of 3')", 20, "A/B progress");
    let (run_a, pref): (String, String) = conn.query_row("SELECT run_a, preferred FROM pairwise WHERE case_id = 'angry-1'", [], |r| Ok((r.get(0)?, r.get(1)?))).expect("a pairwise row");
    assert_eq!(pref, "a");
    assert_eq!(run_a == RUN_B, a_text.ends_with("Thanks for your patience."), "run_a {run_a} is the run shown as A ({a_text:?})");

    // dashboard: agreement table and the two SVG charts, over enough
    // reviews (two more reviewers, posted over HTTP) for the statistics
    for (reviewer, base_score) in [("bob", 2u8), ("cy", 3u8), ("ann", 3u8)] {
        for (i, case) in ["angry-1", "confused-1", "happy-1"].iter().enumerate() {
            if reviewer == "ann" && *case == "angry-1" {
                continue;
            }
            let s = (base_score + i as u8).min(5);
            let r = support::post(addr, "/v1/reviews", &serde_json::json!({
                "kind": "review", "run_id": RUN_A, "case_id": case, "draft_id": "final", "reviewer_id": reviewer,
                "scores": {"overall": s, "voice": s, "mood_fit": (s + 1).min(5)}, "auto_scores": {"overall": 60.0 + 10.0 * i as f64, "voice": 70.0, "mood_fit": 50.0 + 20.0 * i as f64}
            }));
            assert_eq!(r.status, 201, "{}", r.body);
        }
    }
    b.click("#mode-dash");
    b.click("#start");
    b.wait_for("#chart-scatter svg circle", 20);
    b.wait_for("#chart-agreement svg rect.bar.auto", 5);
    let dots = b.js("return document.querySelectorAll('#chart-scatter svg circle').length", vec![]);
    assert_eq!(dots, 9, "one dot per review with both overall scores");
    let table = b.text("#agreement-table");
    assert!(table.contains("overall") && table.contains("mood fit"), "{table}");
    assert!(b.text("#pairwise-table").contains(RUN_B));
    b.set_size(420, 900);
    let fits = b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1", vec![]);
    assert_eq!(fits, true, "the reviewer dashboard scrolls sideways at 420 px");
    b.set_size(1280, 800);
    b.js("document.querySelector('.charts').scrollIntoView()", vec![]);
    b.screenshot(&shots().join("review-dashboard-1280x800.png"));
}

fn api_key_dialog(b: &Browser, runs: &std::path::Path) {
    let addr = web_support::spawn_auth_server(runs);
    // Cancel: the page says what is wrong instead of going blank.
    b.goto(&format!("http://{addr}/"));
    b.wait_for("#key-dialog[open]", 20);
    assert!(b.text("#key-reason").contains("API key"));
    b.click("#key-dialog button[value=cancel]");
    b.wait_for("#errors .error", 10);
    let err = b.text("#errors");
    assert!(err.contains("Could not load brands and channels") && err.contains("missing or unknown API key"), "{err}");
    // Enter the key: it is kept for the session and sent as a Bearer token.
    b.goto(&format!("http://{addr}/review"));
    b.wait_for("#key-dialog[open]", 20);
    b.fill("#key-input", web_support::KEY);
    b.click("#key-dialog button[value=ok]");
    b.wait_for(&format!("#run option[value=\"{RUN_B}\"]"), 20);
    let kept = b.js("return sessionStorage.getItem('brandvoice.apiKey')", vec![]);
    assert_eq!(kept, web_support::KEY);
    // a reload uses the kept key without asking again
    b.goto(&format!("http://{addr}/review"));
    b.wait_for(&format!("#run option[value=\"{RUN_A}\"]"), 20);
    assert!(b.find("#key-dialog[open]").is_none(), "asked for the key again");
}
