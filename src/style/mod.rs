//! Brand style guides and the rule engine that checks every draft against
//! them.
//!
//! A small model will not follow a style guide on its own, so every draft is
//! checked deterministically against the brand's guide, the channel and the
//! customer's mood, and fixed where a fix is mechanical. The shape follows
//! Vale (`internal/check/`): one file per rule kind behind one `Check` trait,
//! a shared rule definition (level, message with `%s`, scope, fix), regexes
//! compiled once at load, unknown keys are errors. What Vale lacks is added
//! here: channels (`channel.rs`), moods (`mood.rs`), languages (`text.rs`,
//! `language.rs`) and fixes (`fix.rs`). Guides are YAML written by
//! marketers, so `schema.rs` reports every mistake at once with its line.
//!
//! Entry points: `StyleBook::load(prompts_dir)`, then `validate`, `lint`
//! and `fix`.

pub mod capitalization;
pub mod channel;
pub mod conditional;
pub mod consistency;
pub mod emoji;
pub mod existence;
pub mod fix;
pub mod guide;
pub mod language;
pub mod length;
pub mod lint;
pub mod metric;
pub mod mood;
pub mod occurrence;
pub mod pii;
pub mod punctuation;
pub mod repetition;
pub mod required;
pub mod rule;
pub mod schema;
pub mod substitution;
pub mod text;

pub use fix::{AppliedFix, Fix};
pub use guide::StyleGuide;
pub use lint::{Fact, LintRequest, RuleViolation, Span, StyleBook, ValidLintRequest};
pub use rule::Level;
pub use schema::GuideProblem;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StyleError {
    /// Problems in the YAML files; each names its file, key path and line.
    #[error("{} problem(s) in the style files:\n{}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Guide(Vec<GuideProblem>),
    #[error("unknown {field} `{value}`; expected one of: {expected}")]
    Unknown { field: &'static str, value: String, expected: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
}

/// The prompts folder: `BRANDVOICE_PROMPTS`, else `prompts/` in the crate.
pub fn default_prompts_dir() -> std::path::PathBuf {
    std::env::var_os("BRANDVOICE_PROMPTS")
        .map(Into::into)
        .unwrap_or_else(|| std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")))
}
