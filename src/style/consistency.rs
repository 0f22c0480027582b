//! `consistency`: two spellings of one thing must not both appear
//! (`either: {email: e-mail}`). The form used first sets the style; later
//! uses of the other form are flagged (`%s`: the form found, the form used
//! first). Fix: replace with the first-used form.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, compile_alternation, Check, FixKind, Hit, Segment, SpecError};
use super::substitution::match_case;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsistencySpec {
    /// Pairs of spellings that must not be mixed.
    pub either: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Consistency {
    pairs: Vec<(Regex, Regex, String, String)>,
    fix: bool,
}

impl ConsistencySpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "consistency", &[FixKind::Replace])?;
        let mut pairs = Vec::new();
        for (a, b) in &self.either {
            let ra = compile_alternation(std::slice::from_ref(a), &[], true).map_err(|e| rename(e, a))?;
            let rb = compile_alternation(std::slice::from_ref(b), &[], true).map_err(|e| rename(e, a))?;
            pairs.push((ra, rb, a.clone(), b.clone()));
        }
        Ok(Box::new(Consistency { pairs, fix: fix.is_some() }))
    }
}

fn rename(e: Vec<SpecError>, key: &str) -> Vec<SpecError> {
    e.into_iter().map(|s| SpecError::new(format!("either.{key}"), s.message)).collect()
}

impl Check for Consistency {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        for (ra, rb, a, b) in &self.pairs {
            let (Some(fa), Some(fb)) = (ra.find(seg.text), rb.find(seg.text)) else { continue };
            // The later-starting form is the inconsistent one.
            let (re_other, first_form) = if fa.start() <= fb.start() { (rb, a) } else { (ra, b) };
            for m in re_other.find_iter(seg.text) {
                let range = seg.start + m.start()..seg.start + m.end();
                let with = match_case(m.as_str(), first_form);
                let fix = self.fix.then(|| Fix::Replace { start: range.start, end: range.end, with: with.clone() });
                out.push(Hit { range, args: vec![m.as_str().to_string(), first_form.clone()], fix });
            }
        }
    }
}
