//! `capitalization`: product names written exactly as the brand writes them
//! ("Tunely Premium", never "tunely premium"), and optionally a capital at
//! the start of every sentence in cased scripts. `%s`: the expected form,
//! then the form found. Fix: replace.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, compile_alternation, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapitalizationSpec {
    /// Terms in their exact capitalisation.
    #[serde(default)]
    pub terms: Vec<String>,
    /// Every sentence must start with a capital letter (cased scripts only).
    #[serde(default)]
    pub sentence_start: bool,
}

#[derive(Debug)]
pub struct Capitalization {
    re: Option<Regex>,
    exact: HashMap<String, String>,
    sentence_start: bool,
    fix: bool,
}

impl CapitalizationSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "capitalization", &[FixKind::Replace])?;
        if self.terms.is_empty() && !self.sentence_start {
            return Err(vec![SpecError::new("terms", "expected `terms` or `sentence_start: true`")]);
        }
        let re = if self.terms.is_empty() { None } else { Some(compile_alternation(&self.terms, &[], true)?) };
        let exact = self.terms.iter().map(|t| (t.to_lowercase(), t.clone())).collect();
        Ok(Box::new(Capitalization { re, exact, sentence_start: self.sentence_start, fix: fix.is_some() }))
    }
}

impl Check for Capitalization {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        if let Some(re) = &self.re {
            for m in re.find_iter(seg.text) {
                let Some(want) = self.exact.get(&m.as_str().to_lowercase()) else { continue };
                if want != m.as_str() {
                    let range = seg.start + m.start()..seg.start + m.end();
                    let fix = self.fix.then(|| Fix::Replace { start: range.start, end: range.end, with: want.clone() });
                    out.push(Hit { range, args: vec![want.clone(), m.as_str().to_string()], fix });
                }
            }
        }
        if self.sentence_start {
            for r in &seg.index.sentences {
                if r.start < seg.start || r.end > seg.start + seg.text.len() {
                    continue;
                }
                let s = &seg.index.text[r.clone()];
                let Some(c) = s.chars().find(|c| c.is_alphanumeric()) else { continue };
                let off = s.find(c).unwrap_or(0);
                if c.is_lowercase() && c.to_uppercase().next() != Some(c) {
                    // Skip sentences that start with a URL or handle.
                    if s.starts_with("http") || s.starts_with('@') || s.starts_with("www.") {
                        continue;
                    }
                    let start = r.start + off;
                    let up: String = c.to_uppercase().collect();
                    let fix = self.fix.then(|| Fix::Replace { start, end: start + c.len_utf8(), with: up.clone() });
                    out.push(Hit { range: start..start + c.len_utf8(), args: vec![up, c.to_string()], fix });
                }
            }
        }
    }
}
