//! `metric`: readability. Flesch reading ease, Flesch–Kincaid grade and
//! words per sentence, with `min`/`max`. The formulas were fitted to English
//! syllable counts, so they are computed only on Latin-script text; for
//! Japanese or Hindi the rule is silent (limit such rules by language).
//! `%s` is the value, rounded to one decimal.

use super::lint::LintContext;
use super::rule::{allow_fix, Check, FixKind, Hit, Segment, SpecError};
use super::text::{english_syllables, mostly_latin, sentences, words};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Formula {
    FleschReadingEase,
    FleschKincaidGrade,
    WordsPerSentence,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub formula: Formula,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Texts with fewer words are not scored (the formulas are noisy on them).
    #[serde(default = "default_min_words")]
    pub min_words: u32,
}

fn default_min_words() -> u32 {
    12
}

#[derive(Debug)]
pub struct Metric {
    spec: MetricSpec,
}

impl MetricSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "metric", &[])?;
        if self.min.is_none() && self.max.is_none() {
            return Err(vec![SpecError::new("max", "expected `min`, `max` or both")]);
        }
        Ok(Box::new(Metric { spec: self.clone() }))
    }
}

/// Readability numbers of an English text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readability {
    pub words: usize,
    pub sentences: usize,
    pub syllables: usize,
    pub reading_ease: f64,
    pub grade: f64,
}

pub fn readability(text: &str) -> Readability {
    let ws: Vec<&str> = words(text).map(|(_, w)| w).collect();
    let nw = ws.len().max(1) as f64;
    let ns = sentences(text).len().max(1) as f64;
    let syl: usize = ws.iter().map(|w| english_syllables(w)).sum();
    let spw = syl as f64 / nw;
    let wps = nw / ns;
    Readability {
        words: ws.len(),
        sentences: ns as usize,
        syllables: syl,
        reading_ease: 206.835 - 1.015 * wps - 84.6 * spw,
        grade: 0.39 * wps + 11.8 * spw - 15.59,
    }
}

impl Check for Metric {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        if !mostly_latin(seg.text) {
            return;
        }
        let r = readability(seg.text);
        if (r.words as u32) < self.spec.min_words {
            return;
        }
        let v = match self.spec.formula {
            Formula::FleschReadingEase => r.reading_ease,
            Formula::FleschKincaidGrade => r.grade,
            Formula::WordsPerSentence => r.words as f64 / r.sentences.max(1) as f64,
        };
        let bad = self.spec.max.is_some_and(|m| v > m) || self.spec.min.is_some_and(|m| v < m);
        if bad {
            let limit = self.spec.max.filter(|m| v > *m).or(self.spec.min).unwrap_or_default();
            out.push(Hit { range: seg.start..seg.start + seg.text.len(), args: vec![format!("{v:.1}"), format!("{limit}")], fix: None });
        }
    }
}
