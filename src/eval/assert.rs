//! Assertions of an eval case and their evaluation on what a run observed.
//!
//! Parsed once when the suite loads (a bad regex or a value of the wrong
//! type fails the suite before any model work) and evaluated on an
//! [`Observed`] — the final draft plus what the runner measured — so the
//! checks are plain functions, testable without a model.

use serde::{Deserialize, Serialize};

use crate::style::lint::RuleViolation;
use crate::style::rule::Level;

/// Every assertion type a suite may use, as written in YAML.
pub const TYPES: [&str; 11] = [
    "contains",
    "not-contains",
    "regex",
    "max-chars",
    "passes-rules",
    "mood-is",
    "language-is",
    "tone-score-min",
    "similar-to-exemplar-min",
    "no-fallback",
    "latency-max-ms",
];

#[derive(Debug, Clone)]
pub enum Assertion {
    /// Case-insensitive substring.
    Contains(String),
    NotContains(String),
    Regex(regex::Regex),
    MaxChars(usize),
    /// No error-level violation left in the final draft.
    PassesRules,
    MoodIs(String),
    LanguageIs(String),
    ToneScoreMin(f32),
    /// Cosine similarity to the brand's exemplar replies (mean of the top 3).
    SimilarToExemplarMin(f32),
    NoFallback,
    LatencyMaxMs(f64),
}

impl Assertion {
    pub fn type_name(&self) -> &'static str {
        match self {
            Assertion::Contains(_) => "contains",
            Assertion::NotContains(_) => "not-contains",
            Assertion::Regex(_) => "regex",
            Assertion::MaxChars(_) => "max-chars",
            Assertion::PassesRules => "passes-rules",
            Assertion::MoodIs(_) => "mood-is",
            Assertion::LanguageIs(_) => "language-is",
            Assertion::ToneScoreMin(_) => "tone-score-min",
            Assertion::SimilarToExemplarMin(_) => "similar-to-exemplar-min",
            Assertion::NoFallback => "no-fallback",
            Assertion::LatencyMaxMs(_) => "latency-max-ms",
        }
    }

    /// Parses `{type: …, value: …}`; the error says what was wrong (the
    /// suite loader adds file, case and position).
    pub fn parse(v: &serde_yaml::Value) -> Result<Assertion, String> {
        let map = v.as_mapping().ok_or_else(|| "expected a mapping like {type: contains, value: \"…\"}".to_string())?;
        let mut ty = None;
        let mut value = None;
        for (k, val) in map {
            match k.as_str() {
                Some("type") => ty = Some(val.as_str().ok_or_else(|| "type: expected a string".to_string())?.to_string()),
                Some("value") => value = Some(val.clone()),
                Some(other) => return Err(format!("unknown key `{other}` (expected type, value)")),
                None => return Err(format!("unknown key `{}` (expected type, value)", serde_yaml::to_string(k).unwrap_or_default().trim())),
            }
        }
        let ty = ty.ok_or_else(|| "missing `type`".to_string())?;
        let text = |what: &str| -> Result<String, String> {
            match &value {
                Some(serde_yaml::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(serde_yaml::Value::Number(n)) => Ok(n.to_string()),
                _ => Err(format!("{ty}: `value` must be a non-empty {what}")),
            }
        };
        let number = |lo: f64, hi: f64| -> Result<f64, String> {
            let n = value.as_ref().and_then(|v| v.as_f64()).ok_or_else(|| format!("{ty}: `value` must be a number between {lo} and {hi}"))?;
            if !(lo..=hi).contains(&n) {
                return Err(format!("{ty}: `value` must be between {lo} and {hi}, got {n}"));
            }
            Ok(n)
        };
        let none = |a: Assertion| -> Result<Assertion, String> {
            if value.is_some() {
                Err(format!("{ty}: takes no `value`"))
            } else {
                Ok(a)
            }
        };
        Ok(match ty.as_str() {
            "contains" => Assertion::Contains(text("string")?),
            "not-contains" => Assertion::NotContains(text("string")?),
            "regex" => {
                let r = text("regular expression")?;
                Assertion::Regex(regex::Regex::new(&r).map_err(|e| format!("regex: `{r}` is not a valid regular expression: {e}"))?)
            }
            "max-chars" => Assertion::MaxChars(number(1.0, 1_000_000.0)? as usize),
            "passes-rules" => none(Assertion::PassesRules)?,
            "mood-is" => Assertion::MoodIs(text("mood")?),
            "language-is" => Assertion::LanguageIs(text("language code")?),
            "tone-score-min" => Assertion::ToneScoreMin(number(0.0, 100.0)? as f32),
            "similar-to-exemplar-min" => Assertion::SimilarToExemplarMin(number(-1.0, 1.0)? as f32),
            "no-fallback" => none(Assertion::NoFallback)?,
            "latency-max-ms" => Assertion::LatencyMaxMs(number(0.0, 86_400_000.0)?),
            other => return Err(format!("unknown assertion type `{other}` (expected one of: {})", TYPES.join(", "))),
        })
    }
}

/// What a run produced for one case, as the assertions see it.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The final (best) draft.
    pub draft: &'a str,
    /// Violations of the final draft (the pipeline's, after repair, plus a fresh lint).
    pub violations: &'a [RuleViolation],
    pub fallback: bool,
    pub mood: &'a str,
    pub language: &'a str,
    pub tone: Option<f32>,
    pub exemplar_similarity: Option<f32>,
    pub latency_ms: f64,
}

/// One failed assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub assert: String,
    pub message: String,
}

fn short(s: &str) -> String {
    let t: String = s.chars().take(80).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// `None` when the assertion holds, else why not.
pub fn check(a: &Assertion, o: &Observed) -> Option<String> {
    let lower = o.draft.to_lowercase();
    match a {
        Assertion::Contains(v) => (!lower.contains(&v.to_lowercase())).then(|| format!("draft does not contain `{v}`: \"{}\"", short(o.draft))),
        Assertion::NotContains(v) => lower.contains(&v.to_lowercase()).then(|| format!("draft contains `{v}`: \"{}\"", short(o.draft))),
        Assertion::Regex(r) => (!r.is_match(o.draft)).then(|| format!("draft does not match /{}/: \"{}\"", r.as_str(), short(o.draft))),
        Assertion::MaxChars(m) => {
            let n = o.draft.chars().count();
            (n > *m).then(|| format!("draft has {n} characters, more than {m}"))
        }
        Assertion::PassesRules => {
            let errs: Vec<String> = o.violations.iter().filter(|v| v.level == Level::Error).map(|v| format!("{}: {}", v.check, v.message)).collect();
            (!errs.is_empty()).then(|| format!("{} error-level violation(s): {}", errs.len(), errs.join("; ")))
        }
        Assertion::MoodIs(m) => (o.mood != m).then(|| format!("mood detected `{}`, expected `{m}`", o.mood)),
        Assertion::LanguageIs(l) => (o.language != l).then(|| format!("reply language `{}`, expected `{l}`", o.language)),
        Assertion::ToneScoreMin(m) => match o.tone {
            Some(t) if t >= *m => None,
            Some(t) => Some(format!("tone score {t:.1} below {m}")),
            None => Some("no tone score".into()),
        },
        Assertion::SimilarToExemplarMin(m) => match o.exemplar_similarity {
            Some(s) if s >= *m => None,
            Some(s) => Some(format!("similarity to the brand's exemplars {s:.3} below {m}")),
            None => Some("no exemplar similarity (embedding failed)".into()),
        },
        Assertion::NoFallback => o.fallback.then(|| "the brand's fallback reply was used (no generated draft passed the checks)".to_string()),
        Assertion::LatencyMaxMs(m) => (o.latency_ms > *m).then(|| format!("latency {:.0} ms over {m} ms", o.latency_ms)),
    }
}

/// Every failed assertion, in order.
pub fn evaluate(asserts: &[Assertion], o: &Observed) -> Vec<Failure> {
    asserts.iter().filter_map(|a| check(a, o).map(|message| Failure { assert: a.type_name().to_string(), message })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::style::lint::Span;

    fn parse(y: &str) -> Result<Assertion, String> {
        Assertion::parse(&serde_yaml::from_str(y).unwrap())
    }

    fn obs<'a>(draft: &'a str, v: &'a [RuleViolation]) -> Observed<'a> {
        Observed { draft, violations: v, fallback: false, mood: "angry", language: "en", tone: Some(70.0), exemplar_similarity: Some(0.4), latency_ms: 900.0 }
    }

    fn fails(y: &str, o: &Observed) -> bool {
        check(&parse(y).unwrap(), o).is_some()
    }

    #[test]
    fn each_type_passes_and_fails_on_the_right_input() {
        let o = obs("Sorry about the Playlist! We'll fix it today.", &[]);
        assert!(!fails("{type: contains, value: playlist}", &o));
        assert!(fails("{type: contains, value: refund}", &o));
        assert!(fails("{type: not-contains, value: PLAYLIST}", &o));
        assert!(!fails("{type: not-contains, value: refund}", &o));
        assert!(!fails("{type: regex, value: 'fix\\w* it'}", &o));
        assert!(fails("{type: regex, value: '^We'}", &o));
        assert!(!fails("{type: max-chars, value: 45}", &o));
        assert!(fails("{type: max-chars, value: 44}", &o));
        assert!(!fails("{type: passes-rules}", &o));
        let err = RuleViolation { check: "Brand.Banned".into(), level: Level::Error, message: "banned word".into(), span: Span { start: 0, end: 1, line: 1, column: 1 }, fix: None, link: None };
        let warn = RuleViolation { level: Level::Warning, ..err.clone() };
        assert!(!fails("{type: passes-rules}", &obs("x", std::slice::from_ref(&warn))));
        let m = check(&parse("{type: passes-rules}").unwrap(), &obs("x", std::slice::from_ref(&err))).unwrap();
        assert!(m.contains("Brand.Banned"), "{m}");
        assert!(!fails("{type: mood-is, value: angry}", &o));
        assert!(fails("{type: mood-is, value: happy}", &o));
        assert!(!fails("{type: language-is, value: en}", &o));
        assert!(fails("{type: language-is, value: ja}", &o));
        assert!(!fails("{type: tone-score-min, value: 70}", &o));
        assert!(fails("{type: tone-score-min, value: 70.5}", &o));
        assert!(fails("{type: tone-score-min, value: 1}", &Observed { tone: None, ..o.clone() }));
        assert!(!fails("{type: similar-to-exemplar-min, value: 0.4}", &o));
        assert!(fails("{type: similar-to-exemplar-min, value: 0.41}", &o));
        assert!(!fails("{type: no-fallback}", &o));
        assert!(fails("{type: no-fallback}", &Observed { fallback: true, ..o.clone() }));
        assert!(!fails("{type: latency-max-ms, value: 900}", &o));
        assert!(fails("{type: latency-max-ms, value: 899}", &o));
        let all: Vec<Assertion> = ["{type: contains, value: zzz}", "{type: no-fallback}", "{type: max-chars, value: 3}"].iter().map(|y| parse(y).unwrap()).collect();
        let f = evaluate(&all, &o);
        assert_eq!(f.iter().map(|f| f.assert.as_str()).collect::<Vec<_>>(), vec!["contains", "max-chars"]);
    }

    #[test]
    fn bad_assertions_name_the_problem() {
        assert!(parse("{type: contians, value: x}").unwrap_err().contains("unknown assertion type `contians`"));
        assert!(parse("{type: contains, valu: x}").unwrap_err().contains("unknown key `valu`"));
        assert!(parse("{type: regex, value: '(unclosed'}").unwrap_err().contains("not a valid regular expression"));
        assert!(parse("{type: tone-score-min, value: 120}").unwrap_err().contains("between 0 and 100, got 120"));
        assert!(parse("{type: passes-rules, value: 1}").unwrap_err().contains("takes no `value`"));
        assert!(parse("{type: contains}").unwrap_err().contains("non-empty string"));
        assert!(parse("{value: 3}").unwrap_err().contains("missing `type`"));
        for t in TYPES {
            let y = match t {
                "passes-rules" | "no-fallback" => format!("{{type: {t}}}"),
                "similar-to-exemplar-min" => format!("{{type: {t}, value: 0.5}}"),
                "contains" | "not-contains" | "regex" | "mood-is" | "language-is" => format!("{{type: {t}, value: abc}}"),
                _ => format!("{{type: {t}, value: 5}}"),
            };
            assert_eq!(parse(&y).unwrap().type_name(), t);
        }
    }
}
