//! Scores any text — a draft from the pipeline, an agent's own reply, a
//! reply from another tool — without the language model: `brandvoice score`
//! and the eval runner both go through [`ToneScorer`], so a number in an
//! eval report is the number the CLI prints for the same text.
//!
//! It owns what the score needs beyond the style book: the sentence embedder
//! (voice part: similarity to this brand's exemplar replies against the other
//! brands'), the politeness scorer and `prompts/scoring.yaml`.

use std::sync::Arc;

use super::politeness::Politeness;
use super::readability::{ScoringConfig, ScoringError};
use super::{tone_score, ScoreInput, ToneScore};
use crate::draft::plan::{self, ExemplarIndex};
use crate::draft::DraftError;
use crate::mood::MoodDetector;
use crate::style::lint::{LintRequest, RuleViolation, StyleBook};
use crate::style::StyleError;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Style(#[from] StyleError),
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    #[error("embedding the brands' exemplars: {0}")]
    Exemplars(#[from] DraftError),
    #[error("text: must not be empty")]
    Empty,
}

impl ScoreError {
    pub fn is_client_error(&self) -> bool {
        matches!(self, ScoreError::Empty | ScoreError::Style(StyleError::Unknown { .. } | StyleError::Invalid { .. }))
    }
}

/// What to score: the text and where it goes.
pub struct ScoreTarget<'a> {
    pub brand: &'a str,
    pub channel: &'a str,
    pub mood: &'a str,
    pub language: &'a str,
    pub text: &'a str,
    /// Violations already known (a pipeline draft's, after repair); `None`
    /// lints the text afresh.
    pub violations: Option<&'a [RuleViolation]>,
}

pub struct ToneScorer {
    book: Arc<StyleBook>,
    mood: Arc<MoodDetector>,
    exemplars: ExemplarIndex,
    politeness: Option<Politeness>,
    cfg: ScoringConfig,
}

impl ToneScorer {
    /// Embeds every exemplar once (a second or two on CPU).
    pub fn new(book: Arc<StyleBook>, mood: Arc<MoodDetector>, cfg: ScoringConfig) -> Result<Self, ScoreError> {
        let exemplars = ExemplarIndex::build(&book, mood.embedder())?;
        let politeness = Politeness::load().map_err(|e| tracing::warn!("politeness scorer unavailable, the score leaves it out: {e}")).ok();
        Ok(Self { book, mood, exemplars, politeness, cfg })
    }

    pub fn book(&self) -> &Arc<StyleBook> {
        &self.book
    }

    pub fn config(&self) -> &ScoringConfig {
        &self.cfg
    }

    /// (mean of the top-3 cosine similarities to this brand's exemplar
    /// replies, the same for the closest other brand); `None` if embedding fails.
    pub fn voice_similarity(&self, brand: &str, text: &str) -> Option<(f32, f32)> {
        let emb = self.mood.embedder().embed(text).ok().filter(|e| !e.is_empty())?;
        Some(self.exemplars.voice_similarity(brand, &emb))
    }

    pub fn score(&self, t: &ScoreTarget) -> Result<ToneScore, ScoreError> {
        if t.text.trim().is_empty() {
            return Err(ScoreError::Empty);
        }
        let req = self.book.validate(
            &LintRequest { brand: t.brand.into(), channel: t.channel.into(), mood: Some(t.mood.into()), language: Some(t.language.into()), facts: Vec::new() },
            t.text,
        )?;
        let fresh;
        let violations = match t.violations {
            Some(v) => v,
            None => {
                fresh = self.book.lint(&req, t.text);
                &fresh[..]
            }
        };
        let tone = plan::effective_tone(&self.book, t.brand, t.mood);
        let profile = &self.book.channels.channels[t.channel];
        let length = profile.length.as_ref().map(|l| (l.unit.measure(t.text) as u32, l.max));
        let sentences = crate::style::text::sentences(t.text).len();
        let pol = self.politeness.as_ref().filter(|_| t.language == "en").map(|p| p.score(t.text));
        let mut s = tone_score(
            &self.cfg,
            &ScoreInput {
                text: t.text,
                violations,
                tone: &tone,
                phrases: &self.book.moods.phrases,
                profile,
                channel: t.channel,
                language: t.language,
                length,
                sentences,
                voice: self.voice_similarity(t.brand, t.text),
                politeness: pol.as_ref().map(|p| p.score_0_100 as f32),
            },
        );
        if let Some(p) = pol {
            s.reasons.insert("politeness".into(), format!("{:.0}/100: {}", p.score_0_100, p.reason));
        }
        Ok(s)
    }
}
