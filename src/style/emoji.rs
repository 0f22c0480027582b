//! `emoji`: how many emoji a reply may carry and which ones (the brand's set).
//! Emoji are grapheme clusters (a family or a flag is one emoji). `%s` is the
//! emoji found. Fix: remove.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, Check, FixKind, Hit, Segment, SpecError};
use super::text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmojiSpec {
    /// At most this many emoji (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Only these emoji may appear (empty: any).
    #[serde(default)]
    pub allowed: Vec<String>,
}

#[derive(Debug)]
pub struct Emoji {
    max: Option<u32>,
    allowed: Vec<String>,
    remove: bool,
}

impl EmojiSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "emoji", &[FixKind::Remove])?;
        let mut errors = Vec::new();
        for (i, e) in self.allowed.iter().enumerate() {
            if !text::is_emoji_grapheme(e) {
                errors.push(SpecError::new(format!("allowed[{i}]"), format!("expected a single emoji, found `{e}`")));
            }
        }
        if self.max.is_none() && self.allowed.is_empty() {
            errors.push(SpecError::new("max", "expected `max`, `allowed` or both"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(Emoji { max: self.max, allowed: self.allowed.clone(), remove: fix.is_some() }))
    }
}

/// Compare emoji ignoring the text/emoji variation selector.
fn same_emoji(a: &str, b: &str) -> bool {
    a.chars().filter(|c| *c != '\u{FE0F}').eq(b.chars().filter(|c| *c != '\u{FE0F}'))
}

impl Check for Emoji {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        let mut kept = 0u32;
        for (i, g) in text::emoji(seg.text) {
            let disallowed = !self.allowed.is_empty() && !self.allowed.iter().any(|a| same_emoji(a, g));
            let over = !disallowed && self.max.is_some_and(|m| kept >= m);
            if disallowed || over {
                let range = seg.start + i..seg.start + i + g.len();
                let fix = self.remove.then(|| Fix::Remove { start: range.start, end: range.end });
                out.push(Hit { range, args: vec![g.to_string()], fix });
            } else {
                kept += 1;
            }
        }
    }
}
