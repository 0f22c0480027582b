//! Lexicon and heuristic signals: the visible evidence behind a mood.
//!
//! Why a lexicon next to a learned model: the embedding model is English-only
//! and maps emoji to `[UNK]`, while tweets and customer messages carry much of
//! their mood in emoji, capitals, `!!!`, and in Japanese or Hindi words. These
//! signals are cheap, explainable to an agent ("ALL-CAPS, 3 exclamation marks,
//! 'unacceptable'"), work in every language the lexicon lists, and also feed
//! the learned heads as extra features.
//!
//! The cue lists are data (`prompts/mood_lexicon.yaml`, compiled in), turned
//! into one regex per category and language at load. Japanese cues match as
//! substrings (no spaces); all others at Unicode word boundaries. Emoji are
//! found per grapheme cluster (`unicode-segmentation`) so ZWJ sequences and
//! skin tones stay one emoji.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// The compiled-in lexicon file.
pub const LEXICON_YAML: &str = include_str!("../../prompts/mood_lexicon.yaml");
const LEXICON_NAME: &str = "prompts/mood_lexicon.yaml";

/// Cue categories, in feature order.
pub const CATEGORIES: [&str; 9] =
    ["angry", "frustrated", "anxious", "confused", "happy", "grateful", "sad", "positive", "negative"];

#[derive(Debug, thiserror::Error)]
pub enum LexiconError {
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: category `{key}` is missing (expected all of {expected})")]
    MissingCategory { file: String, key: String, expected: String },
    #[error("{file}: category `{key}` is unknown (expected one of {expected})")]
    UnknownCategory { file: String, key: String, expected: String },
    #[error("{file}: cue {cue:?} in `{key}` does not compile: {reason}")]
    BadCue { file: String, key: String, cue: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LexiconFile {
    categories: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    negations: BTreeMap<String, Vec<String>>,
    intensifiers: BTreeMap<String, Vec<String>>,
    requests: BTreeMap<String, Vec<String>>,
    emoji: BTreeMap<String, Vec<String>>,
}

/// One list of cues compiled to regexes (one for word-boundary cues, one for substrings).
struct CueSet {
    regexes: Vec<Regex>,
}

impl CueSet {
    fn compile(file: &str, key: &str, by_lang: &BTreeMap<String, Vec<String>>) -> Result<Self, LexiconError> {
        let mut bounded = Vec::new();
        let mut substr = Vec::new();
        for cues in by_lang.values() {
            for cue in cues {
                let cue = cue.trim();
                if cue.is_empty() {
                    continue;
                }
                let (stem, prefix) = match cue.strip_suffix('*') {
                    Some(s) => (s, true),
                    None => (cue, false),
                };
                let esc = regex::escape(&stem.to_lowercase()).replace(' ', r"\s+");
                if stem.chars().any(is_japanese) {
                    substr.push(esc);
                } else if prefix {
                    bounded.push(format!(r"\b{esc}\w*"));
                } else {
                    bounded.push(format!(r"\b{esc}\b"));
                }
            }
        }
        let mut regexes = Vec::new();
        for (parts, what) in [(bounded, "word"), (substr, "substring")] {
            if parts.is_empty() {
                continue;
            }
            // Longest first so a phrase wins over its own first word.
            let mut parts = parts;
            parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
            let re = Regex::new(&format!("(?i)(?:{})", parts.join("|"))).map_err(|e| LexiconError::BadCue {
                file: file.to_string(),
                key: key.to_string(),
                cue: format!("<{what} cues>"),
                reason: e.to_string(),
            })?;
            regexes.push(re);
        }
        Ok(Self { regexes })
    }

    fn matches(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for re in &self.regexes {
            out.extend(re.find_iter(text).map(|m| m.as_str().to_string()));
        }
        out
    }
}

/// The compiled lexicon.
pub struct Lexicon {
    categories: Vec<CueSet>,
    negations: CueSet,
    intensifiers: CueSet,
    requests: CueSet,
    /// Emoji (normalised) → categories it counts for.
    emoji: BTreeMap<String, Vec<usize>>,
}

impl Lexicon {
    /// The lexicon compiled into the binary.
    pub fn builtin() -> Result<Self, LexiconError> {
        Self::parse(LEXICON_NAME, LEXICON_YAML)
    }

    /// Parses a lexicon file; errors name the file and the key.
    pub fn parse(file: &str, yaml: &str) -> Result<Self, LexiconError> {
        let raw: LexiconFile = serde_yaml::from_str(yaml)
            .map_err(|e| LexiconError::Parse { file: file.to_string(), reason: e.to_string() })?;
        let expected = CATEGORIES.join(", ");
        for key in raw.categories.keys().chain(raw.emoji.keys()) {
            if !CATEGORIES.contains(&key.as_str()) {
                return Err(LexiconError::UnknownCategory {
                    file: file.to_string(),
                    key: key.clone(),
                    expected: expected.clone(),
                });
            }
        }
        let mut categories = Vec::new();
        for c in CATEGORIES {
            let lists = raw.categories.get(c).ok_or_else(|| LexiconError::MissingCategory {
                file: file.to_string(),
                key: c.to_string(),
                expected: expected.clone(),
            })?;
            categories.push(CueSet::compile(file, c, lists)?);
        }
        let mut emoji: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (cat, list) in &raw.emoji {
            let idx = CATEGORIES.iter().position(|c| c == cat).unwrap_or(0);
            for e in list {
                emoji.entry(normalize_emoji(e)).or_default().push(idx);
            }
        }
        Ok(Self {
            categories,
            negations: CueSet::compile(file, "negations", &raw.negations)?,
            intensifiers: CueSet::compile(file, "intensifiers", &raw.intensifiers)?,
            requests: CueSet::compile(file, "requests", &raw.requests)?,
            emoji,
        })
    }

    /// Extracts the signals of one message.
    pub fn signals(&self, text: &str) -> Signals {
        let folded = text.replace(['\u{2019}', '\u{2018}', '\u{FF07}'], "'");
        let mut s = Signals::default();

        // Capitals: words of 2+ letters written entirely in upper case.
        let mut letters = 0usize;
        let mut caps_letters = 0usize;
        for w in folded.unicode_words() {
            let n_alpha = w.chars().filter(|c| c.is_alphabetic()).count();
            let n_upper = w.chars().filter(|c| c.is_uppercase()).count();
            let n_cased = w.chars().filter(|c| c.is_uppercase() || c.is_lowercase()).count();
            if n_cased > 0 {
                letters += n_alpha;
            }
            if n_alpha >= 2 && n_upper == n_alpha {
                s.all_caps_words += 1;
                caps_letters += n_alpha;
            }
            if has_elongation(w) {
                s.elongated_words += 1;
            }
        }
        // "I" and one all-caps acronym are normal; a shouted message has many.
        s.caps_ratio = if letters >= 8 { caps_letters as f32 / letters as f32 } else { 0.0 };

        for c in folded.chars() {
            match c {
                '!' | '！' => s.exclamations += 1,
                '?' | '？' => s.questions += 1,
                _ => {}
            }
        }
        s.repeated_punctuation = has_repeated_punctuation(&folded);

        let mut category_counts = [0usize; CATEGORIES.len()];
        for g in folded.graphemes(true) {
            let first = g.chars().next().unwrap_or(' ');
            if !is_emoji(first) {
                continue;
            }
            s.emoji.push(g.to_string());
            if let Some(cats) = self.emoji.get(&normalize_emoji(g)) {
                for &c in cats {
                    category_counts[c] += 1;
                }
            }
        }
        let lower = folded.to_lowercase();
        for (i, set) in self.categories.iter().enumerate() {
            let found = set.matches(&lower);
            category_counts[i] += found.len();
            if !found.is_empty() {
                s.cues.insert(CATEGORIES[i].to_string(), found);
            }
        }
        s.negations = self.negations.matches(&lower).len();
        s.intensifiers = self.intensifiers.matches(&lower).len();
        s.requests = self.requests.matches(&lower).len();
        s.category_counts = category_counts.to_vec();
        s
    }
}

/// The evidence found in one message.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Signals {
    /// Words of two or more letters in capitals ("NEVER", "WTF").
    pub all_caps_words: usize,
    /// Share of letters that sit in all-caps words (0 for short texts).
    pub caps_ratio: f32,
    pub exclamations: usize,
    pub questions: usize,
    /// "!!", "??", "?!", "..." and their full-width forms.
    pub repeated_punctuation: bool,
    /// Words with a letter repeated three times ("sooo", "noooo").
    pub elongated_words: usize,
    /// The emoji found, in order.
    pub emoji: Vec<String>,
    pub negations: usize,
    pub intensifiers: usize,
    /// Phrases that ask for something ("please", "can you", "お願い", "कृपया").
    pub requests: usize,
    /// Lexicon cues found, by category.
    pub cues: BTreeMap<String, Vec<String>>,
    /// Word + emoji cue counts in [`CATEGORIES`] order.
    #[serde(skip)]
    pub category_counts: Vec<usize>,
}

/// Number of features [`Signals::features`] produces.
pub const SIGNAL_FEATURES: usize = 9 + CATEGORIES.len();

/// Strength of a complaint in a [`Signals::features`] vector: frustration
/// cues (waiting, "nobody replies", "still", "again"), anger cues, and
/// repeated '!' — 0 for none, up to 2.5. The polarity head learns from
/// tweets, where these are rare, so they push its negative class by a
/// weight calibrated on validation data (`train::Recipe::complaint_weight`).
pub fn complaint_strength(features: &[f32]) -> f32 {
    let cue = |c: &str| CATEGORIES.iter().position(|x| *x == c).map(|i| features[9 + i]).unwrap_or(0.0);
    // features[2]: exclamations (squashed), features[4]: repeated punctuation.
    let bangs = if features[4] > 0.0 && features[2] > 0.0 { 0.5 } else { 0.0 };
    cue("frustrated") + cue("angry") + bangs
}

/// Squashes a count into [0, 1): 0 → 0, 1 → 0.5, 3 → 0.75.
pub fn squash(n: usize) -> f32 {
    n as f32 / (n as f32 + 1.0)
}

impl Signals {
    /// Count of word + emoji cues in a category.
    pub fn count(&self, category: &str) -> usize {
        CATEGORIES
            .iter()
            .position(|c| *c == category)
            .and_then(|i| self.category_counts.get(i).copied())
            .unwrap_or(0)
    }

    /// The fixed-order feature vector fed to the learned heads.
    pub fn features(&self) -> Vec<f32> {
        let mut f = vec![
            self.caps_ratio,
            squash(self.all_caps_words),
            squash(self.exclamations),
            squash(self.questions),
            if self.repeated_punctuation { 1.0 } else { 0.0 },
            squash(self.elongated_words),
            squash(self.emoji.len()),
            squash(self.negations),
            squash(self.intensifiers),
        ];
        for i in 0..CATEGORIES.len() {
            f.push(squash(self.category_counts.get(i).copied().unwrap_or(0)));
        }
        f
    }

    /// Names of the features, for the weights file.
    pub fn feature_names() -> Vec<String> {
        let mut n: Vec<String> = [
            "caps_ratio",
            "all_caps_words",
            "exclamations",
            "questions",
            "repeated_punctuation",
            "elongated_words",
            "emoji",
            "negations",
            "intensifiers",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        n.extend(CATEGORIES.iter().map(|c| format!("cue_{c}")));
        n
    }
}

/// Hiragana, katakana, CJK ideographs, and the prolonged-sound mark.
pub fn is_japanese(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xFF66..=0xFF9F)
}

/// Whether a character starts an emoji (pictographs, dingbats, symbols).
pub fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F300..=0x1FAFF | 0x1F000..=0x1F2FF | 0x2600..=0x27BF | 0x2B50 | 0x2B55 | 0x2B06..=0x2B07
        | 0x2190..=0x21FF | 0x231A..=0x231B | 0x23E9..=0x23FA | 0x2049 | 0x203C | 0x3030 | 0x303D)
}

/// Drops variation selectors and skin-tone modifiers so "❤️" matches "❤".
fn normalize_emoji(s: &str) -> String {
    s.chars().filter(|&c| !matches!(c as u32, 0xFE0E | 0xFE0F | 0x1F3FB..=0x1F3FF)).collect()
}

fn has_elongation(w: &str) -> bool {
    let mut prev = '\0';
    let mut run = 1;
    for c in w.chars() {
        if c == prev && c.is_alphabetic() {
            run += 1;
            if run >= 3 {
                return true;
            }
        } else {
            run = 1;
        }
        prev = c;
    }
    false
}

fn has_repeated_punctuation(t: &str) -> bool {
    let marks = |c: char| matches!(c, '!' | '?' | '！' | '？');
    let chars: Vec<char> = t.chars().collect();
    chars.windows(2).any(|w| marks(w[0]) && marks(w[1])) || t.contains("...") || t.contains("。。") || t.contains("……")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex() -> Lexicon {
        Lexicon::builtin().expect("builtin lexicon parses")
    }

    #[test]
    fn complaint_strength_counts_waiting_no_reply_and_bangs() {
        let c = |t: &str| complaint_strength(&lex().signals(t).features());
        let waiting = c("I've been waiting two weeks for my refund and nobody replies!!");
        assert!(waiting > 1.0, "{waiting}");
        assert!(waiting > c("I've been waiting two weeks for my refund and nobody replies"), "bangs count");
        assert_eq!(c("Can you confirm the delivery address for order 1182?"), 0.0);
    }

    #[test]
    fn caps_punctuation_and_emoji() {
        let s = lex().signals("This is UNACCEPTABLE!!! I want my MONEY BACK 😡😡");
        assert!(s.all_caps_words >= 3, "{s:?}");
        assert!(s.caps_ratio > 0.3);
        assert_eq!(s.exclamations, 3);
        assert!(s.repeated_punctuation);
        assert_eq!(s.emoji.len(), 2);
        assert!(s.count("angry") >= 3, "{:?}", s.cues);
    }

    #[test]
    fn calm_text_has_no_shouting() {
        let s = lex().signals("Could you tell me when the store opens on Sunday?");
        assert_eq!(s.all_caps_words, 0);
        assert_eq!(s.caps_ratio, 0.0);
        assert!(!s.repeated_punctuation);
        assert_eq!(s.questions, 1);
        assert!(s.requests >= 1);
        assert!(s.count("angry") == 0);
    }

    #[test]
    fn emoji_with_skin_tone_and_selector_count() {
        let s = lex().signals("thanks so much 🙏🏽 ❤️");
        assert_eq!(s.emoji.len(), 2);
        assert!(s.count("grateful") >= 2, "{:?}", s);
        assert!(s.intensifiers >= 1);
    }

    #[test]
    fn japanese_and_hindi_cues() {
        let l = lex();
        let ja = l.signals("本当にありがとうございました！助かりました。");
        assert!(ja.count("grateful") >= 2, "{:?}", ja.cues);
        let hi = l.signals("तीन बार शिकायत की, अभी तक कोई जवाब नहीं आया। यह बकवास है!");
        assert!(hi.count("frustrated") >= 2, "{:?}", hi.cues);
        assert!(hi.count("angry") >= 1, "{:?}", hi.cues);
        assert!(hi.negations >= 1);
    }

    #[test]
    fn prefix_cues_and_word_boundaries() {
        let l = lex();
        assert!(l.signals("so frustrating").count("frustrated") >= 1);
        // "mad" is not a cue inside "made", "hate" not inside "whatever".
        let s = l.signals("I made it, whatever");
        assert_eq!(s.count("angry"), 0, "{:?}", s.cues);
    }

    #[test]
    fn elongation() {
        assert!(lex().signals("sooo good").elongated_words == 1);
    }

    #[test]
    fn features_have_fixed_width() {
        let s = lex().signals("hello");
        assert_eq!(s.features().len(), SIGNAL_FEATURES);
        assert_eq!(Signals::feature_names().len(), SIGNAL_FEATURES);
    }

    #[test]
    fn bad_lexicon_names_file_and_key() {
        let yaml = "categories: {angri: {en: [x]}}\nnegations: {}\nintensifiers: {}\nrequests: {}\nemoji: {}\n";
        let e = Lexicon::parse("my.yaml", yaml).err().expect("must fail").to_string();
        assert!(e.contains("my.yaml") && e.contains("angri"), "{e}");
        let e = Lexicon::parse("my.yaml", "categories: [").err().expect("must fail").to_string();
        assert!(e.contains("my.yaml"), "{e}");
    }
}
