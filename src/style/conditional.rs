//! `conditional`: if the first token appears, the second must too (a bank
//! reply that mentions a rate must say "APR"; a public reply about an order
//! must move the customer to a private channel). Reported at the first
//! match of `if_present`; `%s` is that match. No mechanical fix.

use super::lint::LintContext;
use super::rule::{allow_fix, compile_alternation, yes, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSet {
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionalSpec {
    pub if_present: TokenSet,
    pub then_require: TokenSet,
    #[serde(default = "yes")]
    pub ignorecase: bool,
}

#[derive(Debug)]
pub struct Conditional {
    first: Regex,
    second: Regex,
}

impl ConditionalSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "conditional", &[])?;
        let pre = |p: &str, e: Vec<SpecError>| e.into_iter().map(|s| SpecError::new(format!("{p}.{}", s.path), s.message)).collect::<Vec<_>>();
        let first = compile_alternation(&self.if_present.tokens, &self.if_present.patterns, self.ignorecase).map_err(|e| pre("if_present", e))?;
        let second = compile_alternation(&self.then_require.tokens, &self.then_require.patterns, self.ignorecase).map_err(|e| pre("then_require", e))?;
        Ok(Box::new(Conditional { first, second }))
    }
}

impl Check for Conditional {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        if let Some(m) = self.first.find(seg.text) {
            if !self.second.is_match(seg.text) {
                out.push(Hit { range: seg.start + m.start()..seg.start + m.end(), args: vec![m.as_str().to_string()], fix: None });
            }
        }
    }
}
