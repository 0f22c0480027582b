//! `substitution`: a term the brand does not use, and the one it prefers
//! (`swap: {"customer journey": "your experience"}`). Keys are literal,
//! matched case-insensitively on word boundaries in one regex; the message's
//! `%s` are the preferred term then the term found, as in Vale. Fix: replace,
//! keeping a capital first letter when the found term had one.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, compile_alternation, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubstitutionSpec {
    /// Term to avoid → term to use.
    pub swap: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Substitution {
    re: Regex,
    to: HashMap<String, String>,
    fix: bool,
}

impl SubstitutionSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "substitution", &[FixKind::Replace])?;
        let mut errors = Vec::new();
        for (from, to) in &self.swap {
            if from.trim().is_empty() {
                errors.push(SpecError::new("swap", "expected a non-empty term to avoid"));
            }
            if to.to_lowercase().contains(&from.to_lowercase()) && !from.is_empty() {
                errors.push(SpecError::new(
                    format!("swap.{from}"),
                    format!("the replacement `{to}` contains the term it replaces, so fixing would never end"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let keys: Vec<String> = self.swap.keys().cloned().collect();
        let re = compile_alternation(&keys, &[], true).map_err(|e| {
            e.into_iter().map(|s| SpecError::new("swap", s.message)).collect::<Vec<_>>()
        })?;
        let to = self.swap.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
        Ok(Box::new(Substitution { re, to, fix: fix.is_some() }))
    }
}

/// Give `to` the capital first letter `found` had.
pub(crate) fn match_case(found: &str, to: &str) -> String {
    let upper_first = found.chars().next().is_some_and(char::is_uppercase);
    let lower_to = to.chars().next().is_some_and(char::is_lowercase);
    if upper_first && lower_to {
        let mut c = to.chars();
        c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
    } else {
        to.to_string()
    }
}

impl Check for Substitution {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        for m in self.re.find_iter(seg.text) {
            let Some(to) = self.to.get(&m.as_str().to_lowercase()) else { continue };
            let with = match_case(m.as_str(), to);
            let range = seg.start + m.start()..seg.start + m.end();
            let fix = self.fix.then(|| Fix::Replace { start: range.start, end: range.end, with: with.clone() });
            out.push(Hit { range, args: vec![with, m.as_str().to_string()], fix });
        }
    }
}
