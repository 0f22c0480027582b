//! Eval suites: YAML files of cases (a customer message, where it came from,
//! what a good reply must satisfy) turned into a [`ValidSuite`].
//!
//! Everything that can be wrong with a suite is found here, before any model
//! work: unknown keys anywhere (an error naming the file, the case id and the
//! key — a typo must not silently switch an assertion off), duplicate ids,
//! undefined `{{vars}}`, bad assertion values, and requests the drafting
//! pipeline would reject (unknown brand, channel, language; over-long
//! message) — each case becomes a [`ValidDraftRequest`] through the same
//! `draft::validate` the server uses.
//!
//! `defaults` hold any case key; a case's own value wins, except `assert`,
//! whose lists are concatenated (defaults first). The expected `mood` and
//! `language` are labels to check, not request fields: the request leaves
//! both unset so the pipeline detects them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use super::assert::Assertion;
use crate::draft::{self, Customer, DraftRequest, Limits, Turn, ValidDraftRequest};
use crate::style::lint::{Fact, StyleBook};

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, #[source] source: std::io::Error },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file}: case `{case}`: {message}")]
    Case { file: String, case: String, message: String },
}

/// Keys a case (or `defaults`) may have.
pub const CASE_KEYS: [&str; 13] = ["id", "brand", "channel", "mood", "language", "message", "history", "facts", "tags", "assert", "intent", "customer", "max_tokens"];
const SUITE_KEYS: [&str; 5] = ["name", "description", "defaults", "vars", "cases"];

/// One case, checked and ready to run.
#[derive(Debug, Clone)]
pub struct ValidCase {
    pub id: String,
    /// The suite's name.
    pub suite: String,
    /// Expected mood (a label; the request leaves mood unset so it is detected).
    pub mood: Option<String>,
    /// Expected reply language.
    pub language: Option<String>,
    pub tags: Vec<String>,
    pub asserts: Vec<Assertion>,
    /// The request (its seed is replaced per run and repeat).
    pub request: ValidDraftRequest,
}

#[derive(Debug, Clone)]
pub struct ValidSuite {
    pub name: String,
    pub description: String,
    pub file: String,
    pub cases: Vec<ValidCase>,
}

#[derive(Deserialize)]
struct TypedCase {
    brand: String,
    channel: String,
    #[serde(default)]
    mood: Option<String>,
    #[serde(default)]
    language: Option<String>,
    message: String,
    #[serde(default)]
    history: Vec<Turn>,
    #[serde(default)]
    facts: Vec<Fact>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    customer: Option<Customer>,
    #[serde(default)]
    max_tokens: Option<usize>,
}

fn key_name(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// Unknown keys of a mapping, named; `what` says where it is.
fn check_keys(m: &Mapping, allowed: &[&str], what: &str) -> Result<(), String> {
    for k in m.keys() {
        let name = key_name(k);
        if !allowed.contains(&name.as_str()) {
            return Err(format!("{what}unknown key `{name}` (expected one of: {})", allowed.join(", ")));
        }
    }
    Ok(())
}

/// Replaces `{{name}}` with the suite's variable; an undefined one is an error.
fn substitute(text: &str, vars: &BTreeMap<String, String>, field: &str) -> Result<String, String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}").expect("static regex"));
    let mut err = None;
    let out = re.replace_all(text, |c: &regex::Captures| match vars.get(&c[1]) {
        Some(v) => v.clone(),
        None => {
            err.get_or_insert_with(|| format!("{field}: undefined variable `{}` (vars: {})", &c[1], vars.keys().cloned().collect::<Vec<_>>().join(", ")));
            String::new()
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(out.into_owned()),
    }
}

/// Reads and checks a suite file.
pub fn load(path: &Path, book: &StyleBook) -> Result<ValidSuite, SuiteError> {
    let file = path.display().to_string();
    let yaml = std::fs::read_to_string(path).map_err(|source| SuiteError::Read { file: file.clone(), source })?;
    parse(&file, &yaml, book)
}

/// Checks a suite given as text; `file` names it in errors.
pub fn parse(file: &str, yaml: &str, book: &StyleBook) -> Result<ValidSuite, SuiteError> {
    let invalid = |message: String| SuiteError::Invalid { file: file.to_string(), message };
    let root: Value = serde_yaml::from_str(yaml).map_err(|e| invalid(format!("not valid YAML: {e}")))?;
    let root = root.as_mapping().ok_or_else(|| invalid("expected a mapping with name, cases, …".into()))?;
    check_keys(root, &SUITE_KEYS, "").map_err(invalid)?;
    let name = root.get("name").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).ok_or_else(|| invalid("`name` is required (a non-empty string)".into()))?.to_string();
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid(format!("name: only letters, digits, '-', '_' and '.', got `{name}`")));
    }
    let description = match root.get("description") {
        None => String::new(),
        Some(v) => v.as_str().ok_or_else(|| invalid("description: expected a string".into()))?.to_string(),
    };
    let vars: BTreeMap<String, String> = match root.get("vars") {
        None => BTreeMap::new(),
        Some(v) => serde_yaml::from_value(v.clone()).map_err(|e| invalid(format!("vars: expected a mapping of names to strings: {e}")))?,
    };
    let empty = Mapping::new();
    let defaults = match root.get("defaults") {
        None => &empty,
        Some(v) => v.as_mapping().ok_or_else(|| invalid("defaults: expected a mapping".into()))?,
    };
    check_keys(defaults, &CASE_KEYS, "defaults: ").map_err(invalid)?;
    if defaults.contains_key("id") {
        return Err(invalid("defaults: `id` cannot have a default".into()));
    }
    let default_asserts = assertions(defaults.get("assert"), &vars).map_err(|e| invalid(format!("defaults: {e}")))?;
    let cases = root.get("cases").and_then(Value::as_sequence).filter(|c| !c.is_empty()).ok_or_else(|| invalid("`cases` is required (a non-empty list)".into()))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(cases.len());
    for (i, c) in cases.iter().enumerate() {
        let m = c.as_mapping().ok_or_else(|| invalid(format!("cases[{i}]: expected a mapping")))?;
        let id = m.get("id").and_then(|v| v.as_str().map(String::from).or_else(|| v.as_u64().map(|n| n.to_string()))).ok_or_else(|| invalid(format!("cases[{i}]: `id` is required")))?;
        let case_err = |message: String| SuiteError::Case { file: file.to_string(), case: id.clone(), message };
        if !seen.insert(id.clone()) {
            return Err(case_err("duplicate id (ids must be unique within a suite)".into()));
        }
        check_keys(m, &CASE_KEYS, "").map_err(case_err)?;
        let mut merged = defaults.clone();
        for (k, v) in m {
            if key_name(k) != "assert" && key_name(k) != "id" {
                merged.insert(k.clone(), v.clone());
            }
        }
        merged.remove("assert");
        let mut asserts = default_asserts.clone();
        asserts.extend(assertions(m.get("assert"), &vars).map_err(case_err)?);
        let t: TypedCase = serde_yaml::from_value(Value::Mapping(merged)).map_err(|e| case_err(e.to_string()))?;
        let message = substitute(&t.message, &vars, "message").map_err(case_err)?;
        let mut history = Vec::with_capacity(t.history.len());
        for (j, h) in t.history.into_iter().enumerate() {
            history.push(Turn { text: substitute(&h.text, &vars, &format!("history[{j}].text")).map_err(case_err)?, ..h });
        }
        let mut facts = Vec::with_capacity(t.facts.len());
        for (j, f) in t.facts.into_iter().enumerate() {
            facts.push(Fact { text: substitute(&f.text, &vars, &format!("facts[{j}].text")).map_err(case_err)?, url: f.url });
        }
        if let Some(mood) = &t.mood {
            if !book.moods.moods.contains_key(mood) {
                return Err(case_err(format!("mood: unknown value `{mood}`; expected one of: {}", book.moods.moods.keys().cloned().collect::<Vec<_>>().join(", "))));
            }
        }
        for a in &asserts {
            if let Assertion::MoodIs(m) = a {
                if !book.moods.moods.contains_key(m) {
                    return Err(case_err(format!("mood-is: unknown mood `{m}`; expected one of: {}", book.moods.moods.keys().cloned().collect::<Vec<_>>().join(", "))));
                }
            }
        }
        if let Some(l) = &t.language {
            if l.len() < 2 || l.len() > 3 || !l.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(case_err(format!("language: expected an ISO 639-1 code like `en`, got `{l}`")));
            }
        }
        let req = DraftRequest {
            brand: t.brand,
            channel: t.channel,
            message,
            history,
            facts,
            intent: t.intent,
            max_tokens: t.max_tokens,
            customer: t.customer,
            n: Some(1),
            seed: Some(0),
            ..Default::default()
        };
        let request = draft::validate(book, &Limits::default(), req).map_err(|e| case_err(e.to_string()))?;
        out.push(ValidCase { id, suite: name.clone(), mood: t.mood, language: t.language, tags: t.tags, asserts, request });
    }
    Ok(ValidSuite { name, description, file: file.to_string(), cases: out })
}

/// Parses an `assert` list; `{{vars}}` are substituted in string values too
/// (so `contains: "{{order}}"` checks the same text the message carries).
fn assertions(v: Option<&Value>, vars: &BTreeMap<String, String>) -> Result<Vec<Assertion>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v.as_sequence().ok_or_else(|| "assert: expected a list".to_string())?;
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let mut a = a.clone();
        if let Some(Value::String(s)) = a.as_mapping_mut().and_then(|m| m.get_mut("value")) {
            *s = substitute(s, vars, &format!("assert[{i}].value"))?;
        }
        out.push(Assertion::parse(&a).map_err(|e| format!("assert[{i}]: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> StyleBook {
        StyleBook::load(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).unwrap()
    }

    const GOOD: &str = r#"
name: t
description: test
defaults:
  brand: tunely
  channel: twitter
  assert: [{type: passes-rules}]
vars: {product: "Tunely Premium"}
cases:
  - id: a
    mood: angry
    message: "My {{product}} playlists vanished!"
    history: [{role: customer, text: "still broken on {{ product }}"}]
    facts: [{text: "{{product}} fix ships Friday", url: "https://tunely.example/status"}]
    tags: [en]
    assert: [{type: no-fallback}, {type: max-chars, value: 280}, {type: contains, value: "{{product}}"}]
  - id: b
    brand: northgate
    channel: email
    language: hi
    message: "मेरा ऑर्डर कहाँ है?"
"#;

    #[test]
    fn defaults_vars_and_assert_concatenation() {
        let s = parse("good.yaml", GOOD, &book()).unwrap();
        assert_eq!(s.name, "t");
        assert_eq!(s.cases.len(), 2);
        let a = &s.cases[0];
        assert_eq!(a.request.brand, "tunely");
        assert_eq!(a.request.message, "My Tunely Premium playlists vanished!");
        assert_eq!(a.request.history[0].text, "still broken on Tunely Premium");
        assert_eq!(a.request.facts[0].text, "Tunely Premium fix ships Friday");
        assert_eq!(a.request.mood, None, "expected mood is a label, not a request field");
        assert_eq!(a.mood.as_deref(), Some("angry"));
        let types: Vec<&str> = a.asserts.iter().map(|x| x.type_name()).collect();
        assert_eq!(types, vec!["passes-rules", "no-fallback", "max-chars", "contains"]);
        assert!(matches!(&a.asserts[3], Assertion::Contains(v) if v == "Tunely Premium"), "vars reach assertion values");
        let b = &s.cases[1];
        assert_eq!((b.request.brand.as_str(), b.request.channel.as_str()), ("northgate", "email"));
        assert_eq!(b.language.as_deref(), Some("hi"));
        assert_eq!(b.asserts.len(), 1);
    }

    fn err(yaml: &str) -> String {
        parse("bad.yaml", yaml, &book()).unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_name_file_case_and_key() {
        let e = err("name: t\ncases:\n  - {id: x1, brand: tunely, channel: twitter, message: hi, mod: angry}\n");
        assert!(e.contains("bad.yaml") && e.contains("`x1`") && e.contains("unknown key `mod`"), "{e}");
        let e = err("name: t\nsetup: 1\ncases:\n  - {id: x1, brand: tunely, channel: twitter, message: hi}\n");
        assert!(e.contains("bad.yaml") && e.contains("unknown key `setup`"), "{e}");
        let e = err("name: t\ndefaults: {chanel: sms}\ncases:\n  - {id: x1, brand: tunely, channel: twitter, message: hi}\n");
        assert!(e.contains("defaults") && e.contains("unknown key `chanel`"), "{e}");
        let e = err("name: t\ncases:\n  - {id: x1, brand: tunely, channel: twitter, message: hi, assert: [{type: contains, vale: x}]}\n");
        assert!(e.contains("`x1`") && e.contains("assert[0]") && e.contains("unknown key `vale`"), "{e}");
        let e = err("name: t\ncases:\n  - {id: x1, brand: tunely, channel: twitter, message: hi, history: [{role: customer, txt: a}]}\n");
        assert!(e.contains("`x1`") && e.contains("txt"), "{e}");
    }

    #[test]
    fn bad_cases_fail_up_front() {
        let e = err("name: t\ncases:\n  - {id: d, brand: tunely, channel: twitter, message: hi}\n  - {id: d, brand: tunely, channel: twitter, message: ho}\n");
        assert!(e.contains("`d`") && e.contains("duplicate id"), "{e}");
        let e = err("name: t\ncases:\n  - {id: c, brand: acme, channel: twitter, message: hi}\n");
        assert!(e.contains("`c`") && e.contains("brand") && e.contains("acme"), "{e}");
        let e = err("name: t\ncases:\n  - {id: c, brand: tunely, channel: fax, message: hi}\n");
        assert!(e.contains("channel") && e.contains("fax"), "{e}");
        let e = err("name: t\ncases:\n  - {id: c, brand: tunely, channel: twitter, message: \"hi {{nope}}\"}\n");
        assert!(e.contains("undefined variable `nope`"), "{e}");
        let e = err("name: t\ncases:\n  - {id: c, brand: tunely, channel: twitter, message: hi, mood: furious}\n");
        assert!(e.contains("mood") && e.contains("furious"), "{e}");
        let e = err("name: t\ncases:\n  - {id: c, brand: tunely, channel: twitter, message: hi, assert: [{type: mood-is, value: livid}]}\n");
        assert!(e.contains("livid"), "{e}");
        let e = err("name: t\ncases:\n  - {id: c, brand: tunely, channel: twitter, message: \"\"}\n");
        assert!(e.contains("message") && e.contains("empty"), "{e}");
        let e = err("cases:\n  - {id: c, brand: tunely, channel: twitter, message: hi}\n");
        assert!(e.contains("`name` is required"), "{e}");
        let e = err("name: t\ncases:\n  - {brand: tunely, channel: twitter, message: hi}\n");
        assert!(e.contains("cases[0]") && e.contains("`id` is required"), "{e}");
    }

    #[test]
    fn committed_suites_load() {
        let b = book();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/suites");
        for name in ["smoke.yaml", "core.yaml"] {
            let p = Path::new(dir).join(name);
            let s = load(&p, &b).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.cases.is_empty());
            if name == "core.yaml" {
                assert!(s.cases.len() >= 150, "{} cases", s.cases.len());
                let brands: BTreeSet<&str> = s.cases.iter().map(|c| c.request.brand.as_str()).collect();
                assert_eq!(brands.len(), 3);
                for ch in b.channels.channels.keys() {
                    assert!(s.cases.iter().any(|c| &c.request.channel == ch), "no case on {ch}");
                }
                for m in b.moods.moods.keys() {
                    assert!(s.cases.iter().any(|c| c.mood.as_deref() == Some(m)), "no case with mood {m}");
                }
                for l in ["en", "ja", "hi"] {
                    assert!(s.cases.iter().any(|c| c.language.as_deref() == Some(l)), "no case in {l}");
                }
                for t in ["injection", "pii"] {
                    assert!(s.cases.iter().any(|c| c.tags.iter().any(|x| x == t)), "no case tagged {t}");
                }
            }
        }
    }
}
