//! A first tone-consistency score, 0–100, with its parts:
//! - `rules`: what the linter left (an error zeroes it; warnings and
//!   suggestions cost a fixed amount each);
//! - `mood_fit`: the mood's tone table checked on the text (exclamation marks,
//!   emoji, humour, apologies, an acknowledgement and a next step where the
//!   mood wants them);
//! - `channel_fit`: length against the channel's budget (a reply using
//!   15–85% of it scores best), sentence count, and a greeting where expected;
//! - `voice`: embedding similarity of the draft to this brand's exemplar
//!   replies against the best other brand's (computed by the caller, who owns
//!   the embedder; `None` leaves the part out);
//! - `politeness`: the submodule's ridge regression over politeness
//!   strategies, calibrated on human ratings (English replies only).
//!
//! - `readability`: against the channel's target (`readability`, targets in
//!   `prompts/scoring.yaml`).
//!
//! `overall` is a weighted mean of the parts present (weights and the
//! green/yellow/red bands in `prompts/scoring.yaml`). Plain arithmetic over
//! data the style book already has, so it is cheap and explainable — every
//! part carries a one-line reason ([`ToneScore`]); a learned scorer can
//! replace it behind the same [`DraftScore`]. [`scorer::ToneScorer`] scores
//! any text without the language model (`brandvoice score`, the eval runner).

pub mod politeness;
pub mod readability;
pub mod scorer;

pub use readability::ScoringConfig;

use crate::draft::DraftScore;
use crate::style::channel::ChannelProfile;
use crate::style::lint::RuleViolation;
use crate::style::mood::{MoodPhrases, MoodTone};
use crate::style::rule::Level;
use std::collections::BTreeMap;

/// What the scorer looks at for one draft.
pub struct ScoreInput<'a> {
    pub text: &'a str,
    pub violations: &'a [RuleViolation],
    pub tone: &'a MoodTone,
    pub phrases: &'a MoodPhrases,
    pub profile: &'a ChannelProfile,
    /// The channel's id (readability targets are per channel).
    pub channel: &'a str,
    pub language: &'a str,
    /// Length of the draft in the channel's unit, and the channel's limit.
    pub length: Option<(u32, u32)>,
    pub sentences: usize,
    /// (similarity to own brand's exemplars, to the best other brand's).
    pub voice: Option<(f32, f32)>,
    /// The politeness scorer's 0–100 (English only: it is trained on English requests).
    pub politeness: Option<f32>,
}

pub fn rules_part(violations: &[RuleViolation]) -> f32 {
    let mut s = 100.0;
    for v in violations {
        s -= match v.level {
            Level::Error => 100.0,
            Level::Warning => 12.0,
            _ => 4.0,
        };
    }
    f32::max(s, 0.0)
}

fn count_any(text: &str, list: Option<&Vec<String>>) -> usize {
    let lower = text.to_lowercase();
    list.map(|l| l.iter().filter(|p| lower.contains(&p.to_lowercase())).count()).unwrap_or(0)
}

pub fn mood_part(text: &str, tone: &MoodTone, phrases: &MoodPhrases, language: &str) -> f32 {
    mood_part_explained(text, tone, phrases, language).0
}

/// The mood part and the names of the tone checks the text failed.
pub fn mood_part_explained(text: &str, tone: &MoodTone, phrases: &MoodPhrases, language: &str) -> (f32, Vec<&'static str>) {
    let mut checks = 0.0;
    let mut passed = 0.0;
    let mut failed = Vec::new();
    let mut check = |ok: bool, name: &'static str| {
        checks += 1.0;
        if ok {
            passed += 1.0;
        } else {
            failed.push(name);
        }
    };
    let excl = text.chars().filter(|c| *c == '!' || *c == '！').count() as u32;
    if let Some(m) = tone.exclamation_max {
        check(excl <= m, "too many exclamation marks");
    }
    let emoji = text.chars().filter(|c| crate::draft::constrain::is_emoji(*c) && *c != '\u{FE0F}' && *c != '\u{200D}').count() as u32;
    if let Some(m) = tone.emoji_max {
        check(emoji <= m, "too many emoji");
    }
    if tone.humour == Some(false) {
        check(count_any(text, phrases.humour.get(language)) == 0, "humour where the mood wants none");
    }
    if let Some(m) = tone.apologies_max {
        check(count_any(text, phrases.apology.get(language)) as u32 <= m, "too many apologies");
    }
    if tone.acknowledge_first == Some(true) {
        check(count_any(text, phrases.acknowledgement.get(language)) + count_any(text, phrases.apology.get(language)) > 0, "no acknowledgement of the customer's feelings");
    }
    if tone.next_step == Some(true) {
        check(count_any(text, phrases.next_step.get(language)) > 0, "no next step");
    }
    let score = if checks == 0.0 { 100.0 } else { 100.0 * passed / checks };
    (score, failed)
}

pub fn channel_part(profile: &ChannelProfile, length: Option<(u32, u32)>, sentences: usize, text: &str) -> f32 {
    let mut s: f32 = 100.0;
    if let Some((len, max)) = length {
        let r = len as f32 / max.max(1) as f32;
        if r > 1.0 {
            s -= 60.0;
        } else if r > 0.85 {
            s -= 15.0;
        } else if r < 0.15 {
            s -= 20.0;
        }
    }
    if let Some(m) = profile.max_sentences {
        if sentences > m as usize {
            s -= 10.0 * (sentences - m as usize) as f32;
        }
    }
    if sentences == 0 || text.trim().is_empty() {
        s -= 50.0;
    }
    s.clamp(0.0, 100.0)
}

/// Maps (own, other) similarity to 0–100: 50 when the draft is as close to
/// another brand as to its own, 100 when it is 0.2 closer to its own.
pub fn voice_part(own: f32, other: f32) -> f32 {
    (50.0 + (own - other) * 250.0).clamp(0.0, 100.0)
}

/// The full tone score: 0–100 per part, overall, band and a one-line reason per part.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToneScore {
    pub overall: f32,
    /// green | yellow | red (thresholds in `prompts/scoring.yaml`).
    pub band: String,
    pub parts: BTreeMap<String, f32>,
    pub reasons: BTreeMap<String, String>,
}

impl ToneScore {
    pub fn draft_score(&self) -> DraftScore {
        DraftScore { overall: self.overall, parts: self.parts.clone() }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Scores with the built-in `prompts/scoring.yaml`.
pub fn score(inp: &ScoreInput) -> DraftScore {
    tone_score(ScoringConfig::builtin(), inp).draft_score()
}

/// Scores one text with the given weights, bands and readability targets.
pub fn tone_score(cfg: &ScoringConfig, inp: &ScoreInput) -> ToneScore {
    let mut parts = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    let rules = rules_part(inp.violations);
    parts.insert("rules".to_string(), rules);
    let count = |l: Level| inp.violations.iter().filter(|v| v.level == l).count();
    let (errors, warnings) = (count(Level::Error), count(Level::Warning));
    let others = inp.violations.len() - errors - warnings;
    reasons.insert(
        "rules".to_string(),
        if inp.violations.is_empty() {
            "no style-guide violations".to_string()
        } else {
            let first: Vec<&str> = inp.violations.iter().take(2).map(|v| v.check.as_str()).collect();
            format!("{}, {}, {} ({})", plural(errors, "error", "errors"), plural(warnings, "warning", "warnings"), plural(others, "suggestion", "suggestions"), first.join(", "))
        },
    );
    let (mood, failed) = mood_part_explained(inp.text, inp.tone, inp.phrases, inp.language);
    parts.insert("mood_fit".to_string(), mood);
    reasons.insert("mood_fit".to_string(), if failed.is_empty() { "meets the mood's tone rules".to_string() } else { failed.join("; ") });
    parts.insert("channel_fit".to_string(), channel_part(inp.profile, inp.length, inp.sentences, inp.text));
    let mut ch = Vec::new();
    if let Some((len, max)) = inp.length {
        ch.push(format!("length {len} of {max} ({:.0}% of the budget{})", 100.0 * len as f32 / max.max(1) as f32, if len > max { ", over" } else { "" }));
    }
    ch.push(format!("{}{}", plural(inp.sentences, "sentence", "sentences"), inp.profile.max_sentences.map(|m| format!(" (≤ {m})")).unwrap_or_default()));
    reasons.insert("channel_fit".to_string(), ch.join(", "));
    let r = readability::readability(cfg, inp.channel, inp.language, inp.text);
    parts.insert("readability".to_string(), r.score);
    reasons.insert("readability".to_string(), r.reason);
    if let Some((own, other)) = inp.voice {
        parts.insert("voice".to_string(), voice_part(own, other));
        reasons.insert(
            "voice".to_string(),
            format!("similarity {own:.2} to this brand's exemplars vs {other:.2} to the closest other brand's ({})", if own > other { "closer to its own" } else { "closer to another brand" }),
        );
    }
    if let Some(p) = inp.politeness {
        parts.insert("politeness".to_string(), p.clamp(0.0, 100.0));
        reasons.insert("politeness".to_string(), format!("{p:.0}/100 on the scorer calibrated on human politeness ratings"));
    }
    let (mut sum, mut wsum) = (0.0, 0.0);
    for (name, v) in &parts {
        let w = cfg.weights.get(name).copied().unwrap_or(0.0);
        sum += v * w;
        wsum += w;
    }
    let overall = if wsum > 0.0 { sum / wsum } else { 0.0 };
    let overall = (overall * 10.0).round() / 10.0;
    ToneScore { overall, band: cfg.band(overall).to_string(), parts, reasons }
}

/// Sorts best first: non-fallback before fallback, then by `overall`, then by
/// the given order (stable).
pub fn rank<T>(items: &mut [T], key: impl Fn(&T) -> (bool, f32)) {
    items.sort_by(|a, b| {
        let (fa, sa) = key(a);
        let (fb, sb) = key(b);
        fa.cmp(&fb).then(sb.total_cmp(&sa))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::style::lint::StyleBook;

    fn book() -> StyleBook {
        StyleBook::load(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).unwrap()
    }

    #[test]
    fn a_calm_acknowledging_reply_beats_a_jokey_one_for_an_angry_customer() {
        let b = book();
        let tone = crate::draft::plan::effective_tone(&b, "tunely", "angry");
        let profile = &b.channels.channels["twitter"];
        let good = "I understand, that's frustrating. I'll restore your playlists today.";
        let bad = "Haha!! Sounds like a broken record 😂";
        let sg = score(&ScoreInput { text: good, violations: &[], tone: &tone, phrases: &b.moods.phrases, profile, channel: "twitter", language: "en", length: Some((70, 280)), sentences: 2, voice: Some((0.6, 0.5)), politeness: None });
        let sb = score(&ScoreInput { text: bad, violations: &[], tone: &tone, phrases: &b.moods.phrases, profile, channel: "twitter", language: "en", length: Some((40, 280)), sentences: 2, voice: Some((0.4, 0.5)), politeness: None });
        assert!(sg.overall > sb.overall, "{sg:?} vs {sb:?}");
        assert_eq!(sg.parts["mood_fit"], 100.0);
        assert!(sb.parts["mood_fit"] < 50.0);
        assert!(sg.parts["voice"] > sb.parts["voice"]);
        assert!((0.0..=100.0).contains(&sg.overall));
    }

    #[test]
    fn politeness_part_enters_the_overall_score() {
        let b = book();
        let tone = crate::draft::plan::effective_tone(&b, "northgate", "neutral");
        let profile = &b.channels.channels["email"];
        let text = "Thank you for letting us know. Could you please send us your order number?";
        let base = ScoreInput { text, violations: &[], tone: &tone, phrases: &b.moods.phrases, profile, channel: "email", language: "en", length: Some((80, 2000)), sentences: 2, voice: None, politeness: None };
        let without = score(&base);
        assert!(!without.parts.contains_key("politeness"));
        let high = score(&ScoreInput { politeness: Some(100.0), ..base });
        let low = score(&ScoreInput { politeness: Some(0.0), text, violations: &[], tone: &tone, phrases: &b.moods.phrases, profile, channel: "email", language: "en", length: Some((80, 2000)), sentences: 2, voice: None });
        assert_eq!(high.parts["politeness"], 100.0);
        assert!(high.overall > low.overall, "{} vs {}", high.overall, low.overall);
    }

    #[test]
    fn ranking_puts_fallbacks_last_and_higher_scores_first() {
        let mut v = vec![(true, 99.0), (false, 50.0), (false, 80.0)];
        rank(&mut v, |x| (x.0, x.1));
        assert_eq!(v, vec![(false, 80.0), (false, 50.0), (true, 99.0)]);
    }

    #[test]
    fn over_length_and_errors_cost() {
        let b = book();
        let p = &b.channels.channels["sms"];
        assert!(channel_part(p, Some((400, 320)), 3, "x") < channel_part(p, Some((120, 320)), 3, "x"));
        let v = RuleViolation { check: "X".into(), level: Level::Error, message: String::new(), span: crate::style::lint::Span { start: 0, end: 0, line: 1, column: 1 }, fix: None, link: None };
        assert_eq!(rules_part(&[v]), 0.0);
    }
}
