//! `brandvoice eval run|compare` and `brandvoice score` end to end: the real
//! binary, the real SmolLM2-135M and MiniLM, the committed suites.
//!
//! Two model runs, shared by the tests (a `OnceLock`) to keep the time down:
//! the CI gate exactly as CI runs it (the smoke suite, seed 7), and a second
//! run of its first three cases with the same seed and an impossible
//! threshold — which must draft the same texts and exit 1 naming the metric.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brandvoice"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("BRANDVOICE_PROMPTS", concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
        .output()
        .expect("run brandvoice")
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

struct Runs {
    _dir: tempfile::TempDir,
    gate: PathBuf,
    gate_out: Output,
    again: PathBuf,
    again_out: Output,
}

fn runs() -> &'static Runs {
    static R: OnceLock<Runs> = OnceLock::new();
    R.get_or_init(|| {
        brandvoice::models::resolve("smollm2-135m").expect("smollm2 is available");
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("gate");
        let again = dir.path().join("again");
        let gate_out = bin(&["eval", "run", "eval/suites/smoke.yaml", "--model", "smollm2-135m", "--seed", "7", "--fail-under", "pass_rate=0.8", "--fail-over", "error_rate=0", "--out", gate.to_str().unwrap()]);
        let again_out = bin(&["eval", "run", "eval/suites/smoke.yaml", "--model", "smollm2-135m", "--seed", "7", "--limit", "3", "--fail-under", "mean_tone=101", "--out", again.to_str().unwrap()]);
        Runs { _dir: dir, gate, gate_out, again, again_out }
    })
}

fn lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn ci_gate_on_the_smoke_suite_passes() {
    let r = runs();
    assert_eq!(r.gate_out.status.code(), Some(0), "{}", text(&r.gate_out));
    let s = summary(&r.gate);
    assert_eq!(s["cases"], 6);
    assert!(s["pass_rate"].as_f64().unwrap() >= 0.8, "{s}");
    assert_eq!(s["error_rate"], 0.0);
    assert_eq!(s["seed"], 7);
    assert_eq!(s["suites"], serde_json::json!(["smoke"]));
    for k in ["fallback_rate", "mean_tone", "mood_accuracy", "latency_ms", "by_channel_mood", "run_id", "started", "finished", "model"] {
        assert!(!s[k].is_null(), "summary lacks {k}: {s}");
    }
    assert!(s["by_channel_mood"]["twitter/angry"]["cases"].as_u64().unwrap() >= 1);
    let l = lines(&r.gate);
    assert_eq!(l.len(), 6);
    for x in &l {
        for k in ["case_id", "suite", "repeat", "brand", "channel", "mood_expected", "mood_detected", "language", "message", "draft", "alternatives", "score", "violations", "fallback", "latency_ms", "passed", "failures", "error"] {
            assert!(x.get(k).is_some(), "result line lacks {k}: {x}");
        }
        assert!(!x["draft"].as_str().unwrap().trim().is_empty(), "{x}");
        let band = x["score"]["band"].as_str().unwrap();
        assert!(["green", "yellow", "red"].contains(&band), "{x}");
        assert!(x["score"]["reasons"]["readability"].is_string(), "{x}");
    }
    let out = String::from_utf8_lossy(&r.gate_out.stdout);
    assert!(out.contains("pass_rate") && out.contains("latency p50"), "{out}");
}

#[test]
fn same_seed_gives_the_same_drafts() {
    let r = runs();
    let a = lines(&r.gate);
    let b = lines(&r.again);
    assert_eq!(b.len(), 3, "{}", text(&r.again_out));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["case_id"], y["case_id"]);
        assert_eq!(x["seed"], y["seed"]);
        assert_eq!(x["draft"], y["draft"], "case {}", x["case_id"]);
        assert_eq!(x["score"], y["score"], "case {}", x["case_id"]);
        assert_eq!(x["passed"], y["passed"]);
    }
}

#[test]
fn an_impossible_threshold_exits_1_naming_the_metric() {
    let r = runs();
    assert_eq!(r.again_out.status.code(), Some(1), "{}", text(&r.again_out));
    let err = String::from_utf8_lossy(&r.again_out.stderr);
    assert!(err.contains("threshold missed: mean_tone"), "{err}");
    let s = summary(&r.again);
    assert_eq!(s["thresholds"][0]["metric"], "mean_tone");
    assert_eq!(s["thresholds"][0]["ok"], false);
}

#[test]
fn report_html_is_self_contained() {
    let r = runs();
    let h = std::fs::read_to_string(r.gate.join("report.html")).unwrap();
    assert!(h.contains("<svg") && h.contains("Pass rate by channel"), "no charts");
    let lower = h.to_lowercase();
    for tag in ["<script", "<link", "<img", "<iframe", "@import", "src=", "href="] {
        assert!(!lower.contains(tag), "report.html has `{tag}`");
    }
    let md = std::fs::read_to_string(r.gate.join("report.md")).unwrap();
    assert!(md.contains("## Pass rate by channel × mood"), "{md}");
}

#[test]
fn compare_two_runs() {
    let r = runs();
    let o = bin(&["eval", "compare", r.gate.to_str().unwrap(), r.again.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["paired"], 3);
    assert_eq!(c["only_a"].as_array().unwrap().len(), 3);
    let tone = c["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "mean_tone").unwrap();
    assert_eq!(tone["diff"], 0.0, "same seed, same drafts, same scores: {tone}");
    assert_eq!(tone["ci_low"], 0.0);
    let t = bin(&["eval", "compare", r.gate.to_str().unwrap(), r.again.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&t.stdout);
    assert!(out.contains("paired bootstrap") && out.contains("tunely-twitter-angry"), "{out}");
}

#[test]
fn a_bad_suite_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(&p, "name: bad\ncases:\n  - id: c1\n    brand: tunely\n    channel: twitter\n    message: hi\n    expect: nothing\n").unwrap();
    let o = bin(&["eval", "run", p.to_str().unwrap(), "--out", dir.path().join("run").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.yaml") && err.contains("c1") && err.contains("unknown key `expect`"), "{err}");
    assert!(!dir.path().join("run").exists(), "nothing is run for a bad suite");
    let o = bin(&["eval", "run", "eval/suites/smoke.yaml", "--fail-under", "passrate=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown metric `passrate`"));
}

#[test]
fn score_prints_every_goal_with_a_reason() {
    let o = bin(&["score", "--brand", "tunely", "--channel", "twitter", "--mood", "angry", "--format", "json", "I understand, that's frustrating. I'll restore your playlists today. ^Mia"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for part in ["voice", "mood_fit", "channel_fit", "rules", "readability", "politeness"] {
        let x = v["parts"][part].as_f64().unwrap_or_else(|| panic!("no {part}: {v}"));
        assert!((0.0..=100.0).contains(&x));
        assert!(!v["reasons"][part].as_str().unwrap().is_empty());
    }
    assert!(["green", "yellow", "red"].contains(&v["band"].as_str().unwrap()));
    let bad = bin(&["score", "--brand", "tunely", "--channel", "twitter", "--mood", "angry", "--format", "json", "Haha!! our valued customer 😂😂"]);
    let b: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert!(b["overall"].as_f64().unwrap() < v["overall"].as_f64().unwrap(), "{b} vs {v}");
    let o = bin(&["score", "--brand", "acme", "--channel", "twitter", "--mood", "angry", "hi"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("acme"));
}
