//! `repetition`: the same word twice in a row ("the the"), a typo small
//! models make. Only words of spaced scripts are compared: Japanese has no
//! word spaces and UAX #29 splits kana one by one, so "とうとう" is not a
//! repeat. Hindi reduplication ("धीरे धीरे") is normal; list such words in
//! `exceptions` or limit the rule by language. Fix: remove the second word.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, Check, FixKind, Hit, Segment, SpecError};
use super::text::{is_unspaced_script, words};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepetitionSpec {
    /// Words that may be repeated ("very very" is not here; "bye bye" might be).
    #[serde(default)]
    pub exceptions: Vec<String>,
}

#[derive(Debug)]
pub struct Repetition {
    exceptions: HashSet<String>,
    remove: bool,
}

impl RepetitionSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "repetition", &[FixKind::Remove])?;
        Ok(Box::new(Repetition {
            exceptions: self.exceptions.iter().map(|e| e.to_lowercase()).collect(),
            remove: fix.is_some(),
        }))
    }
}

impl Check for Repetition {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        let mut prev: Option<(usize, &str)> = None;
        for (i, w) in words(seg.text) {
            if w.chars().any(is_unspaced_script) || w.chars().all(|c| c.is_ascii_digit()) {
                prev = None;
                continue;
            }
            if let Some((pi, pw)) = prev {
                let gap = &seg.text[pi + pw.len()..i];
                if !gap.is_empty()
                    && gap.chars().all(|c| c == ' ' || c == '\t')
                    && pw.to_lowercase() == w.to_lowercase()
                    && !self.exceptions.contains(&w.to_lowercase())
                {
                    let start = seg.start + pi + pw.len();
                    let range = start..seg.start + i + w.len();
                    let fix = self.remove.then(|| Fix::Remove { start: range.start, end: range.end });
                    out.push(Hit { range, args: vec![w.to_string()], fix });
                    prev = None;
                    continue;
                }
            }
            prev = Some((i, w));
        }
    }
}
