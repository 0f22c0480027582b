//! Readability against the channel's target, and the scoring data file
//! (`prompts/scoring.yaml`: part weights, colour bands, per-channel targets).
//!
//! One measure per script, because no single formula works across them:
//! Flesch reading ease for Latin-script English (the formula support teams
//! know; its syllable heuristic is `style::text::english_syllables`), words
//! per sentence for other spaced scripts (Hindi), characters per sentence for
//! Japanese. Targets are data so a team can tune a channel without a rebuild;
//! unknown keys are errors naming the file and key, like every prompts file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::style::text;

/// Built-in copy of `prompts/scoring.yaml`.
const SCORING_YAML: &str = include_str!("../../prompts/scoring.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// One channel's readability target; absent fields take the default's value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub flesch_min: Option<f32>,
    #[serde(default)]
    pub flesch_max: Option<f32>,
    #[serde(default)]
    pub words_per_sentence: Option<f32>,
    #[serde(default)]
    pub chars_per_sentence_ja: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReadabilityTargets {
    pub default: Target,
    #[serde(default)]
    pub channels: BTreeMap<String, Target>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub green: f32,
    pub yellow: f32,
}

/// `prompts/scoring.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    pub weights: BTreeMap<String, f32>,
    pub bands: Bands,
    pub readability: ReadabilityTargets,
}

impl ScoringConfig {
    pub fn builtin() -> &'static ScoringConfig {
        static C: std::sync::OnceLock<ScoringConfig> = std::sync::OnceLock::new();
        C.get_or_init(|| Self::parse("prompts/scoring.yaml", SCORING_YAML).expect("the built-in scoring.yaml is checked by unit tests"))
    }

    pub fn load(prompts_dir: &Path) -> Result<Self, ScoringError> {
        let path = prompts_dir.join("scoring.yaml");
        let file = path.display().to_string();
        let yaml = std::fs::read_to_string(&path).map_err(|e| ScoringError::Invalid { file: file.clone(), message: e.to_string() })?;
        Self::parse(&file, &yaml)
    }

    pub fn parse(file: &str, yaml: &str) -> Result<Self, ScoringError> {
        let c: ScoringConfig = serde_yaml::from_str(yaml).map_err(|e| ScoringError::Invalid { file: file.into(), message: e.to_string() })?;
        if !(c.bands.yellow <= c.bands.green) {
            return Err(ScoringError::Invalid { file: file.into(), message: format!("bands.yellow ({}) must not exceed bands.green ({})", c.bands.yellow, c.bands.green) });
        }
        for (k, w) in &c.weights {
            if !(*w >= 0.0) {
                return Err(ScoringError::Invalid { file: file.into(), message: format!("weights.{k}: must be ≥ 0, got {w}") });
            }
        }
        Ok(c)
    }

    /// green / yellow / red for an overall score.
    pub fn band(&self, overall: f32) -> &'static str {
        if overall >= self.bands.green {
            "green"
        } else if overall >= self.bands.yellow {
            "yellow"
        } else {
            "red"
        }
    }

    /// The channel's target with the default filling its gaps.
    pub fn target(&self, channel: &str) -> Target {
        let d = &self.readability.default;
        let c = self.readability.channels.get(channel).cloned().unwrap_or_default();
        Target {
            flesch_min: c.flesch_min.or(d.flesch_min),
            flesch_max: c.flesch_max.or(d.flesch_max),
            words_per_sentence: c.words_per_sentence.or(d.words_per_sentence),
            chars_per_sentence_ja: c.chars_per_sentence_ja.or(d.chars_per_sentence_ja),
        }
    }
}

/// What the readability part measured and scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readability {
    pub score: f32,
    /// Flesch reading ease (English only).
    pub flesch: Option<f32>,
    /// Words (or, for Japanese, characters) per sentence.
    pub per_sentence: f32,
    pub reason: String,
}

/// Flesch reading ease: 206.835 − 1.015 · words/sentence − 84.6 · syllables/word.
pub fn flesch(text_: &str) -> Option<f32> {
    let words: Vec<&str> = text::words(text_).map(|(_, w)| w).filter(|w| w.chars().any(|c| c.is_alphabetic())).collect();
    if words.is_empty() {
        return None;
    }
    let sentences = text::sentences(text_).len().max(1) as f32;
    let syllables: usize = words.iter().map(|w| text::english_syllables(w)).sum();
    let n = words.len() as f32;
    Some(206.835 - 1.015 * (n / sentences) - 84.6 * (syllables as f32 / n))
}

/// Readability of `text` in `language` against `channel`'s target, 0–100.
pub fn readability(cfg: &ScoringConfig, channel: &str, language: &str, text_: &str) -> Readability {
    let t = cfg.target(channel);
    let sentences = text::sentences(text_).len().max(1) as f32;
    if text_.trim().is_empty() {
        return Readability { score: 0.0, flesch: None, per_sentence: 0.0, reason: "empty reply".into() };
    }
    if language == "ja" {
        let chars = text_.chars().filter(|c| !c.is_whitespace()).count() as f32;
        let per = chars / sentences;
        let target = t.chars_per_sentence_ja.unwrap_or(60.0);
        let over = (per - target).max(0.0);
        let score = (100.0 - 1.5 * over).clamp(0.0, 100.0);
        let reason = if over > 0.0 { format!("{per:.0} characters per sentence, {channel} target ≤ {target:.0}") } else { format!("{per:.0} characters per sentence, within the {channel} target (≤ {target:.0})") };
        return Readability { score, flesch: None, per_sentence: per, reason };
    }
    let words = text::word_count(text_) as f32;
    let per = words / sentences;
    let wtarget = t.words_per_sentence.unwrap_or(20.0);
    let over = (per - wtarget).max(0.0);
    let mut score = 100.0 - 5.0 * over;
    let mut reason = if over > 0.0 { format!("{per:.0} words per sentence, {channel} target ≤ {wtarget:.0}") } else { format!("{per:.0} words per sentence (≤ {wtarget:.0})") };
    let mut fl = None;
    if language == "en" && text::mostly_latin(text_) {
        if let Some(f) = flesch(text_) {
            fl = Some(f);
            let (lo, hi) = (t.flesch_min.unwrap_or(55.0), t.flesch_max.unwrap_or(100.0));
            if f < lo {
                score -= 2.0 * (lo - f);
                reason = format!("Flesch {f:.1}, harder than the {channel} target {lo:.0}–{hi:.0}; {reason}");
            } else if f > hi {
                score -= 1.0 * (f - hi);
                reason = format!("Flesch {f:.1}, choppier than the {channel} target {lo:.0}–{hi:.0}; {reason}");
            } else {
                reason = format!("Flesch {f:.0}, within the {channel} target {lo:.0}–{hi:.0}; {reason}");
            }
        }
    }
    Readability { score: score.clamp(0.0, 100.0), flesch: fl, per_sentence: per, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scoring_file_parses_and_covers_every_channel() {
        let c = ScoringConfig::builtin();
        let book = crate::style::lint::StyleBook::load(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).unwrap();
        for ch in book.channels.channels.keys() {
            assert!(c.readability.channels.contains_key(ch), "no readability target for {ch}");
        }
        assert_eq!(c.band(80.0), "green");
        assert_eq!(c.band(60.0), "yellow");
        assert_eq!(c.band(10.0), "red");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = ScoringConfig::parse("s.yaml", "weights: {}\nbands: {green: 70, yellow: 50}\nreadability: {default: {flesch_mni: 3}}\n").unwrap_err().to_string();
        assert!(e.contains("s.yaml") && e.contains("flesch_mni"), "{e}");
        let e = ScoringConfig::parse("s.yaml", "weights: {}\nbands: {green: 40, yellow: 50}\nreadability: {default: {}}\n").unwrap_err().to_string();
        assert!(e.contains("bands.yellow"), "{e}");
    }

    #[test]
    fn flesch_matches_a_hand_count() {
        // "The cat sat on the mat." 6 words, 1 sentence, 6 syllables:
        // 206.835 − 1.015·6 − 84.6·1 = 116.145
        let f = flesch("The cat sat on the mat.").unwrap();
        assert!((f - 116.145).abs() < 0.01, "{f}");
    }

    #[test]
    fn plain_short_sentences_beat_dense_long_ones() {
        let c = ScoringConfig::builtin();
        let plain = readability(c, "twitter", "en", "Sorry about that. We fixed your playlist. It is back now.");
        let dense = readability(c, "twitter", "en", "We sincerely acknowledge the considerable inconvenience occasioned by the unprecedented synchronisation irregularities affecting personalised collections, and anticipate comprehensive restoration imminently following infrastructural remediation activities.");
        assert_eq!(plain.score, 100.0, "{plain:?}");
        assert!(dense.score < 30.0, "{dense:?}");
        assert!(dense.reason.contains("twitter"), "{}", dense.reason);
        // The channel matters: a 20-word sentence is fine in email, long on SMS.
        let s = "Your refund of the full amount was sent today and should reach your account within three to five working days.";
        assert!(readability(c, "email", "en", s).score > readability(c, "sms", "en", s).score);
        let ja = readability(c, "twitter", "ja", "ご不便をおかけして申し訳ありません。すぐに確認します。");
        assert_eq!(ja.score, 100.0, "{ja:?}");
    }
}
