//! What every rule shares, as Vale's `Definition` and `Rule` interface: the
//! YAML form of a rule (`RuleSpec`: id, level, message with `%s`, scope,
//! when-filter, fix action, and exactly one kind block such as `existence:`),
//! the compiled form (`Rule` holding a `Box<dyn Check>`), and the hit a check
//! reports. Each kind lives in its own file (`existence.rs`, …) with its spec
//! and its compiled check; compiling (regexes included) happens once at load.
//!
//! The kind is a nested key rather than Vale's `extends:` so the JSON Schema
//! generated from these types is a plain object schema (no tagged-union
//! `oneOf`) and a misspelt key gets a precise "unknown key" error.

use super::fix::Fix;
use super::lint::LintContext;
use super::text::TextIndex;
use super::{
    capitalization, conditional, consistency, emoji, existence, language, length, metric,
    occurrence, pii, punctuation, repetition, required, substitution,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;

/// How serious a violation is. `error` blocks a draft; the CLI exits 1 on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Error,
    #[default]
    Warning,
    Suggestion,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Suggestion => "suggestion",
        })
    }
}

/// Which part of the reply a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The whole reply.
    #[default]
    Reply,
    /// Each sentence on its own.
    Sentence,
    FirstSentence,
    LastSentence,
}

/// The mechanical fix a rule may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FixKind {
    Replace,
    Remove,
    Append,
    Truncate,
}

impl fmt::Display for FixKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FixKind::Replace => "replace",
            FixKind::Remove => "remove",
            FixKind::Append => "append",
            FixKind::Truncate => "truncate",
        })
    }
}

/// When a rule applies. An empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Only on public channels (true) or only on private ones (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

impl When {
    pub fn matches(&self, channel: &str, public: bool, mood: &str, language: &str) -> bool {
        (self.channels.is_empty() || self.channels.iter().any(|c| c == channel))
            && (self.moods.is_empty() || self.moods.iter().any(|m| m == mood))
            && (self.languages.is_empty() || self.languages.iter().any(|l| l == language))
            && self.public.is_none_or(|p| p == public)
    }
}

/// One rule as written in a pack (`prompts/rules/*.yaml`) or a brand's `rules:`.
/// Exactly one of the kind blocks (`existence`, `substitution`, …) is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Name of the rule, unique in its pack or guide; alerts show `Pack.Id`.
    pub id: String,
    #[serde(default)]
    pub level: Level,
    /// Shown to the agent; each `%s` is filled with what the rule found.
    pub message: String,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub when: When,
    /// A page explaining the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The mechanical fix to apply, if the kind supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<FixKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existence: Option<existence::ExistenceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitution: Option<substitution::SubstitutionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<occurrence::OccurrenceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition: Option<repetition::RepetitionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<consistency::ConsistencySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional: Option<conditional::ConditionalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capitalization: Option<capitalization::CapitalizationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<metric::MetricSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<length::LengthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<emoji::EmojiSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub punctuation: Option<punctuation::PunctuationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<pii::PiiSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<required::RequiredSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<language::LanguageSpec>,
}

/// A problem found while compiling a rule: the key path below the rule and
/// what is wrong. The loader turns the path into a file position.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

impl SpecError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError { path: path.into(), message: message.into() }
    }
}

pub(crate) const KIND_NAMES: [&str; 14] = [
    "existence", "substitution", "occurrence", "repetition", "consistency", "conditional",
    "capitalization", "metric", "length", "emoji", "punctuation", "pii", "required", "language",
];

impl RuleSpec {
    /// Names of the kind blocks that are set.
    pub fn kinds(&self) -> Vec<&'static str> {
        let set = [
            self.existence.is_some(), self.substitution.is_some(), self.occurrence.is_some(),
            self.repetition.is_some(), self.consistency.is_some(), self.conditional.is_some(),
            self.capitalization.is_some(), self.metric.is_some(), self.length.is_some(),
            self.emoji.is_some(), self.punctuation.is_some(), self.pii.is_some(),
            self.required.is_some(), self.language.is_some(),
        ];
        KIND_NAMES.iter().zip(set).filter(|(_, s)| *s).map(|(n, _)| *n).collect()
    }

    /// Compile into a rule named `prefix.id`. `ctx` carries what some kinds need
    /// from the brand (sign-offs to protect when truncating).
    pub fn compile(&self, prefix: &str, ctx: &CompileContext) -> Result<Rule, Vec<SpecError>> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() || self.id.contains(char::is_whitespace) {
            errors.push(SpecError::new("id", format!("expected a rule name without spaces, found `{}`", self.id)));
        }
        if self.message.trim().is_empty() {
            errors.push(SpecError::new("message", "expected a non-empty message"));
        }
        let kinds = self.kinds();
        if kinds.len() != 1 {
            errors.push(SpecError::new(
                "",
                format!(
                    "expected exactly one rule kind key (one of: {}), found {}",
                    KIND_NAMES.join(", "),
                    if kinds.is_empty() { "none".to_string() } else { kinds.join(" and ") }
                ),
            ));
            return Err(errors);
        }
        let kind = kinds[0];
        let fix = self.fix;
        let at = |e: Vec<SpecError>| -> Vec<SpecError> {
            e.into_iter()
                .map(|s| SpecError::new(if s.path.is_empty() || s.path == "fix" { s.path } else { format!("{kind}.{}", s.path) }, s.message))
                .collect()
        };
        let check: Result<Box<dyn Check>, Vec<SpecError>> = match kind {
            "existence" => self.existence.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "substitution" => self.substitution.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "occurrence" => self.occurrence.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "repetition" => self.repetition.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "consistency" => self.consistency.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "conditional" => self.conditional.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "capitalization" => self.capitalization.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "metric" => self.metric.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "length" => self.length.as_ref().map(|s| s.compile(fix, ctx)).unwrap_or_else(missing),
            "emoji" => self.emoji.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "punctuation" => self.punctuation.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "pii" => self.pii.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
            "required" => self.required.as_ref().map(|s| s.compile(fix, ctx)).unwrap_or_else(missing),
            _ => self.language.as_ref().map(|s| s.compile(fix)).unwrap_or_else(missing),
        };
        let check = match check {
            Ok(c) => Some(c),
            Err(e) => {
                errors.extend(at(e));
                None
            }
        };
        match check {
            Some(check) if errors.is_empty() => Ok(Rule {
                name: format!("{prefix}.{}", self.id),
                level: self.level,
                message: self.message.clone(),
                scope: self.scope,
                when: self.when.clone(),
                link: self.link.clone(),
                check,
            }),
            _ => Err(errors),
        }
    }
}

fn missing() -> Result<Box<dyn Check>, Vec<SpecError>> {
    Err(vec![SpecError::new("", "rule kind block is missing")])
}

/// Reject a fix action the kind does not support.
pub(crate) fn allow_fix(fix: Option<FixKind>, kind: &str, allowed: &[FixKind]) -> Result<(), Vec<SpecError>> {
    match fix {
        Some(f) if !allowed.contains(&f) => Err(vec![SpecError::new(
            "fix",
            format!(
                "fix `{f}` is not supported by {kind} rules (expected {})",
                if allowed.is_empty() {
                    "no fix".to_string()
                } else {
                    allowed.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" or ")
                }
            ),
        )]),
        _ => Ok(()),
    }
}

/// Brand data some rule kinds need at compile time.
#[derive(Debug, Clone, Default)]
pub struct CompileContext {
    /// Patterns of text at the end of a reply that truncation keeps (sign-offs,
    /// required disclosures).
    pub protected_tail: Vec<regex::Regex>,
    /// The brand's sign-offs anchored at the end of a reply: a missing
    /// phrase is inserted before a sign-off, not after it.
    pub sign_offs: Vec<regex::Regex>,
}

/// A compiled rule: its definition and its check.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub level: Level,
    pub message: String,
    pub scope: Scope,
    pub when: When,
    pub link: Option<String>,
    pub check: Box<dyn Check>,
}

/// The part of the reply a check looks at.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// The segment's text.
    pub text: &'a str,
    /// Byte offset of `text` in the whole reply.
    pub start: usize,
    /// The whole reply, indexed.
    pub index: &'a TextIndex<'a>,
}

/// What a check found: where (absolute byte range), the values for the
/// message's `%s`, and the fix, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub range: Range<usize>,
    pub args: Vec<String>,
    pub fix: Option<Fix>,
}

/// One rule kind's compiled check.
pub trait Check: Send + Sync + fmt::Debug {
    fn check(&self, seg: Segment<'_>, cx: &LintContext<'_>, out: &mut Vec<Hit>);
}

/// Join literal tokens into one regex alternation. Word boundaries are added
/// at ends that are word characters of a spaced script; Japanese/Chinese ends
/// get none, since those scripts have no spaces between words.
pub(crate) fn token_pattern(tokens: &[String], patterns: &[String]) -> String {
    let mut alts: Vec<String> = tokens
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let esc = regex::escape(t);
            let first = t.chars().next().is_some_and(|c| c.is_alphanumeric() && !super::text::is_unspaced_script(c));
            let last = t.chars().last().is_some_and(|c| c.is_alphanumeric() && !super::text::is_unspaced_script(c));
            // A trailing combining mark (Devanagari matra) is a word char too.
            let last = last || t.chars().last().is_some_and(|c| matches!(c as u32, 0x0900..=0x097F));
            format!("{}{}{}", if first { r"\b" } else { "" }, esc, if last { r"\b" } else { "" })
        })
        .collect();
    alts.extend(patterns.iter().map(|p| format!("(?:{p})")));
    alts.join("|")
}

/// Compile `(?i)` + alternation, reporting the bad pattern by index.
pub(crate) fn compile_alternation(
    tokens: &[String],
    patterns: &[String],
    ignorecase: bool,
) -> Result<regex::Regex, Vec<SpecError>> {
    let mut errors = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        if let Err(e) = regex::Regex::new(p) {
            errors.push(SpecError::new(format!("patterns[{i}]"), format!("expected a valid regular expression: {}", first_line(&e.to_string()))));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let body = token_pattern(tokens, patterns);
    if body.is_empty() {
        return Err(vec![SpecError::new("tokens", "expected at least one token or pattern")]);
    }
    regex::RegexBuilder::new(&format!("(?:{body})"))
        .case_insensitive(ignorecase)
        .size_limit(1 << 24)
        .build()
        .map_err(|e| vec![SpecError::new("tokens", format!("could not compile the tokens: {}", first_line(&e.to_string())))])
}

pub(crate) fn first_line(s: &str) -> String {
    s.lines().rev().find(|l| l.trim_start().starts_with("error:")).unwrap_or_else(|| s.lines().next().unwrap_or(s)).trim().to_string()
}

fn default_true() -> bool {
    true
}
pub(crate) fn yes() -> bool {
    default_true()
}
