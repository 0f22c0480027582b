//! `existence`: flag every occurrence of a token or pattern (banned jargon,
//! humour markers for an angry customer, links on a phone script). Tokens are
//! literals (word-bounded where the script has spaces); patterns are regexes.
//! All are joined into one regex compiled at load. Fix: remove, or replace
//! with `replace_with` (which may use `$1` for a pattern's groups).

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, compile_alternation, yes, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExistenceSpec {
    /// Literal words or phrases.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Regular expressions.
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default = "yes")]
    pub ignorecase: bool,
    /// Text that replaces a match when `fix: replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_with: Option<String>,
}

#[derive(Debug)]
pub struct Existence {
    re: Regex,
    fix: Option<FixKind>,
    replace_with: String,
}

impl ExistenceSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "existence", &[FixKind::Remove, FixKind::Replace])?;
        if fix == Some(FixKind::Replace) && self.replace_with.is_none() {
            return Err(vec![SpecError::new("replace_with", "expected `replace_with` text for `fix: replace`")]);
        }
        let re = compile_alternation(&self.tokens, &self.patterns, self.ignorecase)?;
        Ok(Box::new(Existence { re, fix, replace_with: self.replace_with.clone().unwrap_or_default() }))
    }
}

impl Check for Existence {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        for caps in self.re.captures_iter(seg.text) {
            let Some(m) = caps.get(0).filter(|m| !m.as_str().is_empty()) else { continue };
            let range = seg.start + m.start()..seg.start + m.end();
            let fix = match self.fix {
                Some(FixKind::Remove) => Some(Fix::Remove { start: range.start, end: range.end }),
                Some(FixKind::Replace) => {
                    // `$1`-style references to the pattern's groups are expanded.
                    let mut with = String::new();
                    caps.expand(&self.replace_with, &mut with);
                    Some(Fix::Replace { start: range.start, end: range.end, with })
                }
                _ => None,
            };
            out.push(Hit { range, args: vec![m.as_str().to_string()], fix });
        }
    }
}
