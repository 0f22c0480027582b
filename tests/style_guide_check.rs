//! A marketer's mistakes in a guide: each is reported with file, key path,
//! line and what was expected, all at once; unknown keys are errors. Also:
//! the shipped brands are complete and their own exemplars and fallbacks
//! pass their own rules, and the committed JSON Schema is the generated one.

use brandvoice::style::guide::{fill_placeholders, placeholders, StyleGuide, REQUIRED_INTENTS};
use brandvoice::style::lint::{check_guide, Shared};
use brandvoice::style::schema::{load_str, schema_of, GuideProblem};
use brandvoice::style::{Level, LintRequest, StyleBook};
use std::collections::BTreeMap;
use std::path::Path;

const PROMPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts");

fn check(file: &str, yaml: &str) -> Vec<String> {
    let shared = Shared::load(Path::new(PROMPTS)).expect("shared files load");
    let problems: Vec<GuideProblem> = match load_str::<StyleGuide>(file, yaml) {
        Err(p) => p,
        Ok((g, doc)) => check_guide(&g, &doc, &shared),
    };
    problems.iter().map(|p| p.to_string()).collect()
}

const MINIMAL: &str = r#"id: acme
name: Acme
voice: Friendly.
languages: [en]
fallbacks:
  delivery_delay: { en: "Late: {{date}}." }
  refund: { en: "Refunded {{amount}}." }
  outage: { en: "Down; see {{status_url}}." }
  account_access: { en: "Link sent." }
  product_question: { en: "{{answer}}" }
"#;

#[test]
fn minimal_guide_is_fine() {
    assert_eq!(check("acme.yaml", MINIMAL), Vec::<String>::new());
}

#[test]
fn unknown_key_wrong_type_missing_field_all_at_once() {
    let yaml = r#"id: acme
name: Acme
languages: en
vocabulary:
  baned:
    - term: synergy
  products: [Acme One]
sign_offs:
  twiter:
    en: ["– Acme"]
emoji:
  max:
    twitter: lots
rules:
  - id: Bad
    level: critical
    message: "x"
    existence: { tokens: [a] }
fallbacks:
  delivery_delay: { en: "Late." }
"#;
    assert_eq!(
        check("acme.yaml", yaml),
        vec![
            "acme.yaml:1:1: missing required key `voice`",
            "acme.yaml:3:12: languages: expected a list, found `en`",
            "acme.yaml:5:3: vocabulary.baned: unknown key `baned` (did you mean `banned`?); expected one of: banned, preferred, products",
            "acme.yaml:13:14: emoji.max.twitter: expected a whole number, found `lots`",
            "acme.yaml:16:12: rules[0].level: expected one of: error, warning, suggestion; found `critical`",
        ]
    );
}

#[test]
fn references_are_checked_after_the_schema() {
    let yaml = MINIMAL.to_string()
        + r#"sign_offs:
  twiter:
    en: ["– Acme"]
  email:
    ja: ["Acme"]
moods:
  furious: { humour: false }
packs: [comon]
exemplars:
  - channel: twitter
    mood: happy
    language: hi
    customer: hi
    reply: hello
rules:
  - id: Two
    message: "two kinds"
    existence: { tokens: [a] }
    occurrence: { tokens: [b], max: 1 }
  - id: BadRegex
    message: "x"
    fix: append
    existence: { patterns: ["(unclosed"] }
"#;
    assert_eq!(
        check("acme.yaml", &yaml),
        vec![
            "acme.yaml:12:3: sign_offs.twiter: unknown channel `twiter`; expected one of: email, facebook_comment, instagram_comment, live_chat, messenger, phone, sms, twitter, whatsapp",
            "acme.yaml:15:5: sign_offs.email.ja: language `ja` is not in this guide's `languages` (en)",
            "acme.yaml:17:3: moods.furious: unknown mood `furious`; expected one of: angry, anxious, confused, frustrated, grateful, happy, neutral",
            "acme.yaml:18:9: packs[0]: unknown rule pack `comon`; expected one of: common, hindi, japanese, public, safety",
            "acme.yaml:22:15: exemplars[0].language: language `hi` is not in this guide's `languages` (en)",
            "acme.yaml:26:5: rules[0]: expected exactly one rule kind key (one of: existence, substitution, occurrence, repetition, consistency, conditional, capitalization, metric, length, emoji, punctuation, pii, required, language), found existence and occurrence",
            "acme.yaml:32:10: rules[1].fix: fix `append` is not supported by existence rules (expected remove or replace)",
        ]
    );
}

#[test]
fn missing_intents_and_languages_in_fallbacks() {
    let yaml = r#"id: acme
name: Acme
voice: Friendly.
languages: [en, ja]
fallbacks:
  refund: { en: "Refunded {{amount}." }
"#;
    let got = check("acme.yaml", yaml);
    assert!(got.contains(&"acme.yaml:5:1: fallbacks: missing the fallback for intent `delivery_delay` (every guide needs delivery_delay, refund, outage, account_access, product_question)".to_string()), "{got:#?}");
    assert!(got.contains(&"acme.yaml:6:3: fallbacks.refund: missing the `ja` text (the guide serves en, ja)".to_string()), "{got:#?}");
    assert!(got.iter().any(|l| l.starts_with("acme.yaml:6:17: fallbacks.refund.en: unclosed `{{`")), "{got:#?}");
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let got = check("acme.yaml", "id: acme\nname: [Acme\nvoice: x\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("acme.yaml:3:"), "{}", got[0]);
    assert!(got[0].contains("YAML syntax error"), "{}", got[0]);
}

#[test]
fn committed_schema_is_the_generated_one() {
    let generated = serde_json::to_string_pretty(&schema_of::<StyleGuide>()).unwrap() + "\n";
    let committed = std::fs::read_to_string(format!("{PROMPTS}/brand.schema.json")).expect("prompts/brand.schema.json is committed");
    assert!(committed == generated, "prompts/brand.schema.json is stale: regenerate with `brandvoice guide schema > prompts/brand.schema.json`");
}

fn book() -> StyleBook {
    StyleBook::load(PROMPTS).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shipped_brands_are_complete() {
    let book = book();
    assert_eq!(book.brands.keys().cloned().collect::<Vec<_>>(), vec!["northgate", "tunely", "wayfind"]);
    for (id, b) in &book.brands {
        let g = &b.guide;
        assert!(g.exemplars.len() >= 12, "{id}: {} exemplars", g.exemplars.len());
        let langs: std::collections::BTreeSet<_> = g.exemplars.iter().map(|e| e.language.as_str()).collect();
        assert!(langs.len() >= 2 && langs.contains("en"), "{id}: exemplar languages {langs:?}");
        let channels: std::collections::BTreeSet<_> = g.exemplars.iter().map(|e| e.channel.as_str()).collect();
        assert!(channels.len() >= 6, "{id}: exemplar channels {channels:?}");
        let moods: std::collections::BTreeSet<_> = g.exemplars.iter().map(|e| e.mood.as_str()).collect();
        assert!(moods.len() >= 5, "{id}: exemplar moods {moods:?}");
        for intent in REQUIRED_INTENTS {
            assert!(g.fallbacks.contains_key(intent), "{id}: no fallback for {intent}");
        }
    }
}

/// Every exemplar reply passes its own brand's rules (errors and warnings).
#[test]
fn exemplars_pass_their_own_rules() {
    let book = book();
    let mut failures = Vec::new();
    for (id, b) in &book.brands {
        for (i, e) in b.guide.exemplars.iter().enumerate() {
            let req = LintRequest { brand: id.clone(), channel: e.channel.clone(), mood: Some(e.mood.clone()), language: Some(e.language.clone()), facts: e.facts.clone() };
            let v = book.validate(&req, &e.reply).unwrap();
            for x in book.lint(&v, &e.reply).into_iter().filter(|x| x.level != Level::Suggestion) {
                failures.push(format!("{id} exemplar {i} ({} {} {}): {}:{} {} {}", e.channel, e.mood, e.language, x.span.line, x.span.column, x.check, x.message));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every fallback, filled with sample facts, passes its brand's error-level
/// rules on a private channel for a frustrated customer.
#[test]
fn fallbacks_pass_when_filled() {
    let book = book();
    let mut failures = Vec::new();
    for (id, b) in &book.brands {
        for (intent, per_lang) in &b.guide.fallbacks {
            for (lang, t) in per_lang {
                let values: BTreeMap<String, String> = placeholders(t)
                    .into_iter()
                    .map(|p| {
                        let v = match p.as_str() {
                            "answer" if lang == "en" => "You can change it in Settings.".to_string(),
                            "answer" if lang == "ja" => "設定から変更できます。".to_string(),
                            "answer" => "आप इसे सेटिंग में बदल सकते हैं।".to_string(),
                            p if p.ends_with("url") => "https://example.com/x".to_string(),
                            _ => "Sam".to_string(),
                        };
                        (p, v)
                    })
                    .collect();
                let text = fill_placeholders(t, &values);
                assert!(!text.contains("{{"), "{text}");
                let req = LintRequest { brand: id.clone(), channel: "live_chat".into(), mood: Some("neutral".into()), language: Some(lang.clone()), facts: vec![] };
                let v = book.validate(&req, &text).unwrap();
                for x in book.lint(&v, &text).into_iter().filter(|x| x.level == Level::Error) {
                    failures.push(format!("{id} {intent} {lang}: {} {}", x.check, x.message));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
