//! `occurrence`: a token may appear at most `max` / at least `min` times in
//! the scope (no more than one apology to an angry customer; at most two
//! hashtags). `%s` is the count. Fix: remove the occurrences past `max`.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, compile_alternation, yes, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OccurrenceSpec {
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default = "yes")]
    pub ignorecase: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

#[derive(Debug)]
pub struct Occurrence {
    re: Regex,
    min: Option<u32>,
    max: Option<u32>,
    remove: bool,
}

impl OccurrenceSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "occurrence", &[FixKind::Remove])?;
        if self.min.is_none() && self.max.is_none() {
            return Err(vec![SpecError::new("max", "expected `min`, `max` or both")]);
        }
        if let (Some(a), Some(b)) = (self.min, self.max) {
            if a > b {
                return Err(vec![SpecError::new("min", format!("`min` ({a}) is larger than `max` ({b})"))]);
            }
        }
        if fix.is_some() && self.max.is_none() {
            return Err(vec![SpecError::new("fix", "`fix: remove` needs a `max`")]);
        }
        let re = compile_alternation(&self.tokens, &self.patterns, self.ignorecase)?;
        Ok(Box::new(Occurrence { re, min: self.min, max: self.max, remove: fix.is_some() }))
    }
}

impl Check for Occurrence {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        let found: Vec<_> = self.re.find_iter(seg.text).filter(|m| !m.as_str().is_empty()).collect();
        let n = found.len() as u32;
        if let Some(max) = self.max {
            if n > max {
                for m in &found[max as usize..] {
                    let range = seg.start + m.start()..seg.start + m.end();
                    let fix = self.remove.then(|| Fix::Remove { start: range.start, end: range.end });
                    out.push(Hit { range, args: vec![n.to_string(), max.to_string()], fix });
                }
            }
        }
        if let Some(min) = self.min {
            if n < min {
                out.push(Hit { range: seg.start..seg.start + seg.text.len(), args: vec![n.to_string(), min.to_string()], fix: None });
            }
        }
    }
}
