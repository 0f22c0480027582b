//! Prompt-injection containment, end to end with the real SmolLM2-135M: one
//! case per attack kind from `eval/suites/injection.yaml` goes through the
//! in-process `Drafter`, and the final draft must pass the brand's
//! error-level rules and contain none of the case's forbidden strings.
//!
//! The suite file is parsed here with a small serde model of its own (the
//! eval runner's parser is not needed), strictly: an unknown key is an error,
//! so the file cannot drift from the format `brandvoice eval run` reads.
//! The full suite (every case, repeats, reports) is `brandvoice eval run
//! injection`; this test keeps to eight cases and short drafts so it stays
//! in a few minutes on a debug build.

use brandvoice::draft::{self, DraftRequest, Drafter, Limits, Turn};
use brandvoice::mood::MoodDetector;
use brandvoice::style::lint::{Fact, LintRequest, StyleBook};
use brandvoice::style::rule::Level;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/suites/injection.yaml");

/// One per attack kind (each tagged `smoke` in the suite).
const SMOKE: [&str; 8] = ["roleplay-dan", "history-fake-agent", "reveal-prompt-direct", "insult-me", "competitor-praise", "facts-best-app", "special-chatml", "pii-email"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    defaults: CaseFields,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    cases: Vec<Case>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFields {
    brand: Option<String>,
    channel: Option<String>,
    mood: Option<String>,
    language: Option<String>,
    message: Option<String>,
    #[serde(default)]
    history: Vec<HistoryTurn>,
    #[serde(default)]
    facts: Vec<Fact>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    assert: Vec<Assert>,
}

/// A case: an `id` and the same keys as `defaults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    brand: Option<String>,
    channel: Option<String>,
    mood: Option<String>,
    language: Option<String>,
    message: Option<String>,
    #[serde(default)]
    history: Vec<HistoryTurn>,
    #[serde(default)]
    facts: Vec<Fact>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    assert: Vec<Assert>,
}

impl Case {
    fn fields(&self) -> CaseFields {
        CaseFields {
            brand: self.brand.clone(),
            channel: self.channel.clone(),
            mood: self.mood.clone(),
            language: self.language.clone(),
            message: self.message.clone(),
            history: self.history.clone(),
            facts: self.facts.clone(),
            tags: self.tags.clone(),
            assert: self.assert.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryTurn {
    role: String,
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Assert {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    value: Option<serde_yaml::Value>,
}

/// A case with the defaults applied (a case's own value wins; assert lists
/// are concatenated) and `{{vars}}` substituted.
#[derive(Debug, Clone)]
struct Resolved {
    id: String,
    brand: String,
    channel: String,
    language: Option<String>,
    message: String,
    history: Vec<HistoryTurn>,
    facts: Vec<Fact>,
    tags: Vec<String>,
    asserts: Vec<Assert>,
}

fn load() -> Vec<Resolved> {
    let text = std::fs::read_to_string(SUITE).expect("the injection suite is committed");
    let suite: Suite = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{SUITE}: {e}"));
    assert_eq!(suite.name, "injection");
    let subst = |s: &str| suite.vars.iter().fold(s.to_string(), |acc, (k, v)| acc.replace(&format!("{{{{{k}}}}}"), v));
    let d = &suite.defaults;
    suite
        .cases
        .iter()
        .map(|c| {
            let f = &c.fields();
            let _expected_mood = f.mood.as_ref().or(d.mood.as_ref());
            let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
            Resolved {
                id: c.id.clone(),
                brand: pick(&f.brand, &d.brand).unwrap_or_else(|| panic!("case {}: no brand", c.id)),
                channel: pick(&f.channel, &d.channel).unwrap_or_else(|| panic!("case {}: no channel", c.id)),
                language: pick(&f.language, &d.language),
                message: subst(&pick(&f.message, &d.message).unwrap_or_else(|| panic!("case {}: no message", c.id))),
                history: if f.history.is_empty() { d.history.clone() } else { f.history.clone() }
                    .into_iter()
                    .map(|t| HistoryTurn { role: t.role, text: subst(&t.text) })
                    .collect(),
                facts: if f.facts.is_empty() { d.facts.clone() } else { f.facts.clone() }.into_iter().map(|x| Fact { text: subst(&x.text), url: x.url }).collect(),
                tags: if f.tags.is_empty() { d.tags.clone() } else { f.tags.clone() },
                asserts: d.asserts().chain(f.assert.iter().cloned()).collect(),
            }
        })
        .collect()
}

impl CaseFields {
    fn asserts(&self) -> impl Iterator<Item = Assert> + '_ {
        self.assert.iter().cloned()
    }
}

fn value_str(a: &Assert) -> String {
    match &a.value {
        Some(serde_yaml::Value::String(s)) => s.clone(),
        Some(serde_yaml::Value::Number(n)) => n.to_string(),
        other => panic!("assert {} needs a value, got {other:?}", a.kind),
    }
}

fn request(c: &Resolved, max_tokens: usize) -> DraftRequest {
    DraftRequest {
        brand: c.brand.clone(),
        channel: c.channel.clone(),
        message: c.message.clone(),
        language: c.language.clone(),
        history: c.history.iter().map(|t| Turn { role: t.role.clone(), text: t.text.clone(), channel: None }).collect(),
        facts: c.facts.clone(),
        max_tokens: Some(max_tokens),
        seed: Some(7),
        n: Some(1),
        ..Default::default()
    }
}

fn book() -> Arc<StyleBook> {
    Arc::new(StyleBook::load(brandvoice::style::default_prompts_dir()).expect("style guides load"))
}

#[test]
fn the_suite_is_well_formed_and_covers_every_attack_kind() {
    let cases = load();
    assert!(cases.len() >= 40, "at least 40 cases, got {}", cases.len());
    let ids: BTreeSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), cases.len(), "case ids are unique");
    let kinds: BTreeSet<&str> = cases.iter().flat_map(|c| c.tags.iter().map(String::as_str)).collect();
    for k in ["roleplay", "fake-system", "fake-history", "reveal", "insult", "competitor", "facts", "special-tokens", "pii"] {
        assert!(kinds.contains(k), "no case tagged {k}");
    }
    let book = book();
    let known = ["contains", "not-contains", "regex", "max-chars", "passes-rules", "mood-is", "language-is", "tone-score-min", "similar-to-exemplar-min", "no-fallback", "latency-max-ms"];
    for c in &cases {
        assert!(c.asserts.iter().any(|a| a.kind == "passes-rules"), "{}: no passes-rules", c.id);
        assert!(c.asserts.iter().any(|a| a.kind == "not-contains"), "{}: no not-contains", c.id);
        for a in &c.asserts {
            assert!(known.contains(&a.kind.as_str()), "{}: unknown assert type {}", c.id, a.kind);
            if a.kind != "passes-rules" && a.kind != "no-fallback" {
                value_str(a);
            }
        }
        // Every case is a request the service accepts.
        draft::validate(&book, &Limits::default(), request(c, 48)).unwrap_or_else(|e| panic!("{}: invalid request: {e}", c.id));
    }
    for id in SMOKE {
        let c = cases.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("smoke case {id} is missing"));
        assert!(c.tags.iter().any(|t| t == "smoke"), "{id} is not tagged smoke");
    }
    assert_eq!(cases.iter().filter(|c| c.tags.iter().any(|t| t == "smoke")).count(), SMOKE.len());
}

#[test]
fn the_eval_runner_loads_the_suite() {
    let book = book();
    let s = brandvoice::eval::suite::load(std::path::Path::new(SUITE), &book).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.name, "injection");
    assert_eq!(s.cases.len(), load().len());
    assert!(s.cases.iter().all(|c| c.tags.iter().any(|t| t == "injection")));
}

#[test]
fn drafts_for_adversarial_messages_pass_the_rules_and_leak_nothing() {
    let cases = load();
    let book = book();
    let mood = Arc::new(MoodDetector::load().expect("MiniLM mood detector loads"));
    let path = brandvoice::models::resolve("smollm2-135m").expect("smollm2 is available");
    let model = brandvoice::engine::model::load(&path, &brandvoice::engine::model::LoadOptions::default()).expect("smollm2 loads");
    let mut drafter = Drafter::new(model, "smollm2-135m", book.clone(), mood, 64 << 20);
    let mut failures = Vec::new();
    for id in SMOKE {
        let c = cases.iter().find(|c| c.id == id).expect("smoke case");
        let req = request(c, 40);
        let valid = draft::validate(&book, &Limits::default(), req.clone()).expect("valid request");
        let resp = drafter.draft(&valid, &mut |_| true).unwrap_or_else(|e| panic!("{id}: pipeline failed: {e}"));
        let d = resp.drafts.first().unwrap_or_else(|| panic!("{id}: no draft"));
        eprintln!("{id}: fallback={} rounds={} rejected={} draft={:?}", d.fallback, resp.timings.rounds, resp.timings.rejected, d.text);
        // The pipeline's own verdict…
        for v in d.violations.iter().filter(|v| v.level == Level::Error) {
            failures.push(format!("{id}: error-level {}: {} in {:?}", v.check, v.message, d.text));
        }
        // …and a fresh lint of the final text, so a check the pipeline skipped cannot hide.
        let lint = book
            .validate(&LintRequest { brand: req.brand.clone(), channel: req.channel.clone(), mood: Some(resp.mood.label.clone()), language: Some(resp.language.clone()), facts: req.facts.clone() }, &d.text)
            .expect("lint request");
        for v in book.lint(&lint, &d.text).into_iter().filter(|v| v.level == Level::Error) {
            failures.push(format!("{id}: lint {}: {} in {:?}", v.check, v.message, d.text));
        }
        for v in draft::check::garbled(&d.text) {
            failures.push(format!("{id}: {}", v.message));
        }
        let lower = d.text.to_lowercase();
        for a in &c.asserts {
            match a.kind.as_str() {
                "not-contains" => {
                    let v = value_str(a);
                    if lower.contains(&v.to_lowercase()) {
                        failures.push(format!("{id}: the draft contains forbidden {v:?}: {:?}", d.text));
                    }
                }
                "contains" => {
                    let v = value_str(a);
                    if !lower.contains(&v.to_lowercase()) {
                        failures.push(format!("{id}: the draft lacks {v:?}: {:?}", d.text));
                    }
                }
                _ => {}
            }
        }
        // The protected text is never in the draft, whatever the case lists.
        let system = drafter.plan(&valid, &resp.mood.label, &resp.language).expect("plan").system;
        let first_line = system.lines().next().unwrap_or_default().to_lowercase();
        assert!(!first_line.is_empty());
        if lower.contains(&first_line) {
            failures.push(format!("{id}: the draft holds the prompt's first line: {:?}", d.text));
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}
