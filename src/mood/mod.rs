//! Customer mood, polarity, language and escalation detection.
//!
//! Shaped as two evidence sources joined by one small, readable mapping:
//! - for Latin-script text, learned heads (multinomial logistic regression,
//!   [`head`]) over all-MiniLM-L6-v2 sentence embeddings ([`embed`]) plus
//!   signal features give TweetEval's polarity (negative/neutral/positive) and
//!   emotion (anger/joy/optimism/sadness), so both are measured directly on
//!   real, independently labelled tweets; cosine similarity to per-mood
//!   prototype centroids adds the moods TweetEval has no label for (confused,
//!   frustrated, grateful);
//! - for every language, lexicon and heuristic signals ([`signals`]): cue
//!   words in English, Japanese and Hindi, emoji, capitals, `!!!`. For scripts
//!   the embedding model cannot read (it is English-only: Devanagari becomes
//!   `[UNK]`), polarity and emotion come from these signals alone.
//!
//! The mapping to the seven moods ([`mood_logits`]) is a hand-weighted sum,
//! not a trained layer, because no independently labelled seven-mood data
//! exists here: it is kept short so a reader can see why a message came out
//! "frustrated". Escalation flags ([`escalation`]) are separate phrase rules.

pub mod bert;
pub mod embed;
pub mod escalation;
pub mod eval;
pub mod head;
pub mod language;
pub mod lm;
pub mod ngram;
pub mod signals;
pub mod train;
pub mod tweet;

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use embed::Embedder;
pub use escalation::{EscalationFlag, EscalationRules};
pub use language::Language;
pub use signals::{Lexicon, Signals};
pub use train::HeadsFile;

use signals::squash;

/// Longest message accepted, in characters (a long email; tweets are 280).
pub const MAX_CHARS: usize = 20_000;
/// Most history messages used.
pub const MAX_HISTORY: usize = 20;

/// The seven moods, in output order.
pub const MOODS: [&str; 7] = ["angry", "frustrated", "anxious", "confused", "neutral", "happy", "grateful"];
pub const POLARITIES: [&str; 3] = ["negative", "neutral", "positive"];
pub const EMOTIONS: [&str; 4] = ["anger", "joy", "optimism", "sadness"];

#[derive(Debug, thiserror::Error)]
pub enum MoodError {
    #[error("text is empty: a message needs at least one non-space character")]
    Empty,
    #[error("text is too long: {chars} characters, the limit is {limit}")]
    TooLong { chars: usize, limit: usize },
    #[error("history has {given} messages, the limit is {limit}")]
    TooMuchHistory { given: usize, limit: usize },
    #[error(transparent)]
    Embed(#[from] embed::EmbedError),
    #[error(transparent)]
    Lexicon(#[from] signals::LexiconError),
    #[error(transparent)]
    Escalation(#[from] escalation::EscalationError),
    #[error(transparent)]
    Heads(#[from] train::HeadsError),
    #[error(transparent)]
    Lm(#[from] lm::LmMoodError),
}

/// One label with its probability.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scored {
    pub label: String,
    pub probability: f32,
}

/// Everything the detector says about one message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoodReport {
    /// The most probable of [`MOODS`].
    pub mood: String,
    /// Its probability.
    pub confidence: f32,
    /// All seven moods, in [`MOODS`] order.
    pub moods: Vec<Scored>,
    /// The most probable of [`POLARITIES`].
    pub polarity: String,
    pub polarities: Vec<Scored>,
    /// anger, joy, optimism, sadness (TweetEval's emotion labels).
    pub emotion: Vec<Scored>,
    pub language: Language,
    pub signals: Signals,
    pub escalation: Vec<EscalationFlag>,
    /// Whether a person should answer (a question, a request, a negative mood or a flag).
    pub needs_reply: bool,
    /// "urgent" (an escalation flag), "high" (angry/anxious), "normal", "low".
    pub priority: String,
    /// "embedding+lexicon" (Latin script), "lm+lexicon" (other scripts, with a
    /// language model attached), "lexicon" (other scripts, without) or
    /// "ngram+lexicon" (Latin script on the triage fast path).
    pub method: String,
}

impl MoodReport {
    pub fn mood_probability(&self, mood: &str) -> f32 {
        self.moods.iter().find(|s| s.label == mood).map(|s| s.probability).unwrap_or(0.0)
    }
}

/// The loaded detector: embedding model, heads, lexicon and escalation rules.
pub struct MoodDetector {
    embedder: Embedder,
    heads: HeadsFile,
    lexicon: Lexicon,
    rules: EscalationRules,
    /// Language model for non-Latin scripts, with its weight against the lexicon.
    lm: Option<(lm::LmMood, f32)>,
}

/// Default weight of the language model's mood probabilities against the
/// lexicon's on the non-Latin path (measured in BENCHMARKS.md, "Mood
/// detection, 2026-12-05").
pub const LM_WEIGHT: f32 = 0.25;

impl MoodDetector {
    /// Loads the default embedding model and the committed heads.
    pub fn load() -> Result<Self, MoodError> {
        Self::load_with(&embed::default_model_dir(), HeadsFile::builtin()?)
    }

    /// Loads with an explicit model directory and heads.
    pub fn load_with(model_dir: &Path, heads: HeadsFile) -> Result<Self, MoodError> {
        let embedder = Embedder::load(model_dir)?;
        heads.check_dims()?;
        Ok(Self { embedder, heads, lexicon: Lexicon::builtin()?, rules: EscalationRules::builtin()?, lm: None })
    }

    /// Attaches a language model for messages the embedding model cannot
    /// read (non-Latin scripts); `weight` in [0, 1] is its share against the
    /// lexicon ([`LM_WEIGHT`] by default).
    pub fn with_lm(mut self, lm: lm::LmMood, weight: f32) -> Self {
        self.lm = Some((lm, weight.clamp(0.0, 1.0)));
        self
    }

    /// The attached language model's name, if any.
    pub fn lm_model(&self) -> Option<&str> {
        self.lm.as_ref().map(|(l, _)| l.model.as_str())
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// Analyses one message.
    pub fn analyze(&self, text: &str) -> Result<MoodReport, MoodError> {
        self.analyze_with_history(text, &[])
    }

    /// Analyses one message, with the customer's earlier messages (oldest
    /// first). History shifts the mood a quarter of the way towards the
    /// history's mood, and a negative message after earlier contacts leans to
    /// "frustrated": customers hate repeating themselves.
    pub fn analyze_with_history(&self, text: &str, history: &[&str]) -> Result<MoodReport, MoodError> {
        if history.len() > MAX_HISTORY {
            return Err(MoodError::TooMuchHistory { given: history.len(), limit: MAX_HISTORY });
        }
        let mut all: Vec<&str> = vec![text];
        all.extend(history.iter().copied().filter(|h| !h.trim().is_empty()));
        let mut reports = self.analyze_batch(&all)?;
        let mut report = reports.remove(0);
        if !reports.is_empty() {
            let n = reports.len() as f32;
            let mut probs: Vec<f32> = report.moods.iter().map(|s| s.probability * 0.75).collect();
            for r in &reports {
                for (p, s) in probs.iter_mut().zip(&r.moods) {
                    *p += 0.25 * s.probability / n;
                }
            }
            let neg = report.polarities[0].probability;
            if neg > 0.4 {
                // Repeated contact: move a share of the non-frustrated mass to frustrated.
                let shift = 0.3 * neg;
                for (i, p) in probs.iter_mut().enumerate() {
                    if i != 1 {
                        *p *= 1.0 - shift;
                    }
                }
                let rest: f32 = probs.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, p)| p).sum();
                probs[1] = (1.0 - rest).max(0.0);
            }
            set_moods(&mut report, &probs);
            report.needs_reply = needs_reply(&report);
            report.priority = priority(&report);
        }
        Ok(report)
    }

    /// Analyses many messages at once (embeddings are batched).
    pub fn analyze_batch(&self, texts: &[&str]) -> Result<Vec<MoodReport>, MoodError> {
        self.analyze_many(texts, false)
    }

    /// Whether [`Self::analyze_batch_fast`] has its n-gram heads (format-2 heads file).
    pub fn has_fast_path(&self) -> bool {
        self.heads.sentiment_ngram.is_some() && self.heads.emotion_ngram.is_some()
    }

    /// The bulk-triage fast path: no embedding model. Polarity and emotion of
    /// Latin-script messages come from the hashed n-gram heads, the moods from
    /// them plus the lexicon cues (as on the non-Latin path). About a tenth as
    /// costly; its accuracy is in BENCHMARKS.md ("n-gram model alone").
    /// Without n-gram heads it is the lexicon path.
    pub fn analyze_batch_fast(&self, texts: &[&str]) -> Result<Vec<MoodReport>, MoodError> {
        self.analyze_many(texts, true)
    }

    fn analyze_many(&self, texts: &[&str], fast: bool) -> Result<Vec<MoodReport>, MoodError> {
        for t in texts {
            validate(t)?;
        }
        let langs: Vec<Language> = texts.par_iter().map(|t| language::detect(t)).collect();
        if fast {
            return Ok(texts.par_iter().zip(langs).map(|(t, lang)| self.report_fast(t, lang)).collect());
        }
        // Only Latin-script messages go through the English embedding model.
        let latin: Vec<usize> = (0..texts.len()).filter(|&i| langs[i].is_latin()).collect();
        let latin_texts: Vec<std::borrow::Cow<str>> = latin.iter().map(|&i| self.heads.embed_text(texts[i])).collect();
        let refs: Vec<&str> = latin_texts.iter().map(|t| t.as_ref()).collect();
        let vecs = self.embedder.embed_batch(&refs)?;
        let mut emb: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (i, v) in latin.into_iter().zip(vecs) {
            emb[i] = Some(v);
        }
        // The language model runs one message at a time (one model state), before the parallel part.
        let mut lm_probs: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        if let Some((lm, _)) = &self.lm {
            for i in (0..texts.len()).filter(|&i| emb[i].is_none()) {
                lm_probs[i] = Some(lm.mood_probabilities(texts[i])?);
            }
        }
        // Signals and escalation rules are regex work: ~1 ms a message, worth both cores.
        Ok(texts
            .par_iter()
            .zip(langs)
            .zip(emb)
            .zip(lm_probs)
            .map(|(((t, lang), e), l)| self.report(t, lang, e.as_deref(), l.as_deref()))
            .collect())
    }

    /// The fast path's report: n-gram heads instead of the embedding heads.
    fn report_fast(&self, text: &str, language: Language) -> MoodReport {
        let (Some(sn), Some(en)) = (&self.heads.sentiment_ngram, &self.heads.emotion_ngram) else {
            return self.report(text, language, None, None);
        };
        if !language.is_latin() {
            return self.report(text, language, None, None);
        }
        let grams = ngram::featurize(text);
        let mut r = self.report_from(text, language, sn.predict_row(&grams), en.predict_row(&grams), None, None);
        r.method = "ngram+lexicon".into();
        r
    }

    /// Builds the report from the pieces.
    fn report(&self, text: &str, language: Language, embedding: Option<&[f32]>, lm: Option<&[f32]>) -> MoodReport {
        let signals = self.lexicon.signals(text);
        let (polarity, emotion, proto) = match embedding {
            Some(e) => {
                let (polarity, emotion) = self.heads.predict(text, e, &signals);
                let proto: Vec<f32> = self.heads.mood_centroids.iter().map(|c| embed::dot(e, &c.centroid)).collect();
                (polarity, emotion, Some(proto))
            }
            None => {
                let (p, e) = lexicon_polarity_emotion(&signals);
                (p, e, None)
            }
        };
        let mut r = self.report_with(text, language, signals, polarity, emotion, proto.as_deref(), lm);
        r.method = if embedding.is_some() {
            "embedding+lexicon"
        } else if lm.is_some() {
            "lm+lexicon"
        } else {
            "lexicon"
        }
        .to_string();
        r
    }

    fn report_from(&self, text: &str, language: Language, polarity: Vec<f32>, emotion: Vec<f32>, proto: Option<&[f32]>, lm: Option<&[f32]>) -> MoodReport {
        let signals = self.lexicon.signals(text);
        self.report_with(text, language, signals, polarity, emotion, proto, lm)
    }

    #[allow(clippy::too_many_arguments)]
    fn report_with(
        &self,
        text: &str,
        language: Language,
        signals: Signals,
        mut polarity: Vec<f32>,
        emotion: Vec<f32>,
        proto: Option<&[f32]>,
        lm: Option<&[f32]>,
    ) -> MoodReport {
        let logits = mood_logits(&polarity, &emotion, proto, &signals);
        let mut probs = logits.to_vec();
        head::softmax_in_place(&mut probs);
        let lm_weight = self.lm.as_ref().map(|(_, w)| *w).unwrap_or(0.0);
        if let Some(p_lm) = lm {
            // Mood: a probability average. Polarity follows the model's moods
            // (angry/frustrated/anxious negative, happy/grateful positive) by the same share.
            for (p, q) in probs.iter_mut().zip(p_lm) {
                *p = (1.0 - lm_weight) * *p + lm_weight * q;
            }
            let lm_pol = [p_lm[0] + p_lm[1] + p_lm[2], p_lm[3] + p_lm[4], p_lm[5] + p_lm[6]];
            for (p, q) in polarity.iter_mut().zip(lm_pol) {
                *p = (1.0 - lm_weight) * *p + lm_weight * q;
            }
        }
        let escalation = self.rules.check(text);
        let mut r = MoodReport {
            mood: String::new(),
            confidence: 0.0,
            moods: Vec::new(),
            polarity: POLARITIES[head::argmax(&polarity)].to_string(),
            polarities: scored(&POLARITIES, &polarity),
            emotion: scored(&EMOTIONS, &emotion),
            language,
            signals,
            escalation,
            needs_reply: false,
            priority: String::new(),
            method: String::new(),
        };
        set_moods(&mut r, &probs);
        r.needs_reply = needs_reply(&r);
        r.priority = priority(&r);
        r
    }
}

/// Rejects empty and over-long input with errors that give the limit and value.
pub fn validate(text: &str) -> Result<(), MoodError> {
    if text.trim().is_empty() {
        return Err(MoodError::Empty);
    }
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        return Err(MoodError::TooLong { chars, limit: MAX_CHARS });
    }
    Ok(())
}

fn scored(labels: &[&str], p: &[f32]) -> Vec<Scored> {
    labels.iter().zip(p).map(|(l, &p)| Scored { label: l.to_string(), probability: p }).collect()
}

fn set_moods(r: &mut MoodReport, probs: &[f32]) {
    let best = head::argmax(probs);
    r.mood = MOODS[best].to_string();
    r.confidence = probs[best];
    r.moods = scored(&MOODS, probs);
}

fn needs_reply(r: &MoodReport) -> bool {
    !r.escalation.is_empty()
        || matches!(r.mood.as_str(), "angry" | "frustrated" | "anxious" | "confused")
        || r.signals.questions > 0
        || r.signals.requests > 0
}

fn priority(r: &MoodReport) -> String {
    if !r.escalation.is_empty() {
        "urgent"
    } else if matches!(r.mood.as_str(), "angry" | "anxious") {
        "high"
    } else if r.needs_reply {
        "normal"
    } else {
        "low"
    }
    .to_string()
}

/// Polarity and emotion from the lexicon alone, for scripts the embedding
/// model cannot read. A neutral bias makes "no evidence" come out neutral.
pub fn lexicon_polarity_emotion(s: &Signals) -> (Vec<f32>, Vec<f32>) {
    let f = |c: &str| squash(s.count(c));
    let neg = f("negative") + f("angry") + f("frustrated") + f("sad") + 0.5 * f("anxious");
    let pos = f("positive") + f("happy") + f("grateful");
    let mut polarity = vec![2.5 * neg, 0.8, 2.5 * pos];
    head::softmax_in_place(&mut polarity);
    let mut emotion = vec![
        2.5 * (f("angry") + 0.5 * f("frustrated")),
        2.5 * (f("happy") + 0.3 * f("positive")),
        2.5 * (0.5 * f("grateful") + 0.3 * f("positive")),
        2.5 * (f("sad") + 0.5 * f("anxious")),
    ];
    head::softmax_in_place(&mut emotion);
    (polarity, emotion)
}

/// The seven mood logits (in [`MOODS`] order) from polarity, emotion,
/// prototype similarities (None outside Latin script) and signals.
///
/// Each line reads as "this mood is supported by …". Weights were set by hand
/// (see BENCHMARKS.md for how they were checked); "neutral" has a constant
/// bias so that a message with no evidence is neutral.
pub fn mood_logits(polarity: &[f32], emotion: &[f32], proto: Option<&[f32]>, s: &Signals) -> [f32; 7] {
    let (neg, neu, pos) = (polarity[0], polarity[1], polarity[2]);
    let (anger, joy, optimism, sadness) = (emotion[0], emotion[1], emotion[2], emotion[3]);
    // Without an embedding the cues are the only evidence, so they weigh more.
    let cue_weight = if proto.is_none() { 1.6 } else { 1.0 };
    let f = |c: &str| cue_weight * squash(s.count(c));
    let shouting = s.caps_ratio.min(1.0) + if s.repeated_punctuation && s.exclamations > 0 { 0.5 } else { 0.0 };
    let mut l = [
        // angry: anger in a negative message, anger words, shouting
        2.0 * neg * anger + 1.6 * f("angry") + 0.8 * shouting,
        // frustrated: a negative message with "still", "again", waiting, not working
        // (on the lexicon path `neg` is itself made of these cues: count them once)
        if proto.is_some() { 1.2 } else { 0.4 } * neg + 1.8 * f("frustrated") + 0.3 * neg * sadness,
        // anxious: worry words, sadness/fear in a negative message
        1.0 * neg * sadness + 2.6 * f("anxious") + 0.3 * f("sad"),
        // confused: not-knowing words, questions
        2.0 * f("confused") + 0.7 * squash(s.questions),
        // neutral: a neutral polarity, plus a base so no evidence means neutral
        1.5 * neu + 0.6,
        // happy: joy/optimism in a positive message, happy words and emoji
        1.5 * pos * (joy + optimism) + 1.5 * f("happy"),
        // grateful: thanks
        0.4 * pos + 2.6 * f("grateful"),
    ];
    if let Some(p) = proto {
        let mean = p.iter().sum::<f32>() / p.len().max(1) as f32;
        for (li, pi) in l.iter_mut().zip(p) {
            *li += 8.0 * (pi - mean);
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_long_input_are_clear_errors() {
        assert_eq!(validate("   \n").err().map(|e| e.to_string()).unwrap_or_default(), MoodError::Empty.to_string());
        let long = "a".repeat(MAX_CHARS + 1);
        let e = validate(&long).err().expect("too long").to_string();
        assert!(e.contains(&(MAX_CHARS + 1).to_string()) && e.contains(&MAX_CHARS.to_string()), "{e}");
        assert!(validate("ok").is_ok());
    }

    #[test]
    fn lexicon_path_moods() {
        let lex = Lexicon::builtin().expect("lexicon");
        let mood_of = |t: &str| {
            let s = lex.signals(t);
            let (p, e) = lexicon_polarity_emotion(&s);
            let mut l = mood_logits(&p, &e, None, &s).to_vec();
            head::softmax_in_place(&mut l);
            MOODS[head::argmax(&l)]
        };
        assert_eq!(mood_of("本当にありがとうございました。助かりました！"), "grateful");
        assert_eq!(mood_of("ふざけるな！最悪の対応だ。許せない。"), "angry");
        assert_eq!(mood_of("明日までに届くか心配です。大丈夫でしょうか？"), "anxious");
        assert_eq!(mood_of("आपकी मदद के लिए बहुत बहुत धन्यवाद!"), "grateful");
        assert_eq!(mood_of("मुझे समझ नहीं आ रहा कि पासवर्ड कैसे बदलें?"), "confused");
        assert_eq!(mood_of("配送先の住所を変更したいです。"), "neutral");
    }
}
