//! `length`: how long the scope is, counted the way the channel counts it —
//! Twitter's weighted length (URL 23, CJK 2), graphemes (what a reader sees
//! as one character: Hindi conjuncts and emoji sequences count once), words,
//! sentences, paragraphs or SMS segments. `%s`: the measured size, then the
//! limit. Fix: truncate at a sentence boundary, keeping the sign-off.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, Check, CompileContext, FixKind, Hit, Segment, SpecError};
use super::text;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Twitter's weighted characters.
    Twitter,
    Graphemes,
    Words,
    Sentences,
    Paragraphs,
    SmsSegments,
}

impl fmt::Display for LengthUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LengthUnit::Twitter => "twitter characters",
            LengthUnit::Graphemes => "characters",
            LengthUnit::Words => "words",
            LengthUnit::Sentences => "sentences",
            LengthUnit::Paragraphs => "paragraphs",
            LengthUnit::SmsSegments => "SMS segments",
        })
    }
}

impl LengthUnit {
    pub fn measure(self, s: &str) -> usize {
        match self {
            LengthUnit::Twitter => text::twitter_length(s),
            LengthUnit::Graphemes => text::grapheme_count(s),
            LengthUnit::Words => text::word_count(s),
            LengthUnit::Sentences => text::sentences(s).len(),
            LengthUnit::Paragraphs => text::paragraph_count(s),
            LengthUnit::SmsSegments => text::sms_info(s).segments,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LengthSpec {
    pub unit: LengthUnit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

#[derive(Debug)]
pub struct Length {
    unit: LengthUnit,
    min: Option<u32>,
    max: Option<u32>,
    truncate: bool,
    protected_tail: Vec<Regex>,
}

impl LengthSpec {
    pub fn compile(&self, fix: Option<FixKind>, ctx: &CompileContext) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "length", &[FixKind::Truncate])?;
        if self.min.is_none() && self.max.is_none() {
            return Err(vec![SpecError::new("max", "expected `min`, `max` or both")]);
        }
        if fix.is_some() && self.max.is_none() {
            return Err(vec![SpecError::new("fix", "`fix: truncate` needs a `max`")]);
        }
        if self.max == Some(0) && fix.is_some() {
            return Err(vec![SpecError::new("max", "`max: 0` with `fix: truncate` would delete the reply")]);
        }
        Ok(Box::new(Length {
            unit: self.unit,
            min: self.min,
            max: self.max,
            truncate: fix.is_some(),
            protected_tail: ctx.protected_tail.clone(),
        }))
    }
}

impl Length {
    /// Byte offset (in the whole reply) where the protected tail starts: a
    /// sign-off or required phrase at the very end, repeatedly (a disclosure
    /// then a sign-off).
    fn keep_from(&self, seg: &Segment<'_>) -> usize {
        let mut keep = seg.start + seg.text.len();
        'outer: loop {
            let body = &seg.index.text[seg.start..keep];
            for re in &self.protected_tail {
                if let Some(m) = re.find(body) {
                    let start = seg.start + m.start() + (m.as_str().len() - m.as_str().trim_start().len());
                    if start > seg.start && start < keep {
                        keep = start;
                        continue 'outer;
                    }
                }
            }
            break;
        }
        keep
    }
}

impl Check for Length {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        let n = self.unit.measure(seg.text) as u32;
        let range = seg.start..seg.start + seg.text.len();
        if let Some(max) = self.max {
            if n > max {
                let fix = self.truncate.then(|| Fix::Truncate {
                    start: seg.start,
                    end: range.end,
                    unit: self.unit,
                    max,
                    keep_from: self.keep_from(&seg),
                });
                out.push(Hit { range: range.clone(), args: vec![n.to_string(), max.to_string()], fix });
            }
        }
        if let Some(min) = self.min {
            if n < min {
                out.push(Hit { range, args: vec![n.to_string(), min.to_string()], fix: None });
            }
        }
    }
}
