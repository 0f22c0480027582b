//! Mood from the local language model, for scripts MiniLM cannot read.
//!
//! Why: all-MiniLM-L6-v2 is English-only (Devanagari becomes `[UNK]`, kana
//! and kanji become a handful of sub-words), so Japanese and Hindi messages
//! had only lexicon cues. A small multilingual chat model (qwen2.5-0.5b)
//! does read them. It is asked, in a chat prompt, which of the seven moods
//! fits, and the answer is *scored*, not generated: the probability the
//! model gives to each mood word as its answer (the sum of the word's token
//! log-probabilities), softmaxed over the seven. No sampling, no parsing, and
//! every mood gets a probability. Small models favour some answer words
//! whatever the message (qwen2.5-0.5b said "happy" or "confused" for most
//! messages), so the scores are calibrated as in Zhao et al. 2021
//! ("Calibrate before use"): the log-probabilities the model gives the seven
//! words for content-free messages ("N/A", "…", "[message]") are subtracted
//! before the softmax. The answer words are capitalised, as an answer starts.
//! The instructions come before the message,
//! so the model's working state keeps them between messages and only the
//! message and the answer words are fed each time.
//!
//! Used only for messages outside Latin script (see `MoodDetector`), and only
//! when a model was attached (`--lm`): it costs a language-model load and
//! ~0.1–1 s per message.

use std::sync::{Arc, Mutex};

use crate::engine::generate::{chat_prompt, Generator};
use crate::engine::model::{self, LoadOptions};
use crate::engine::prefix_cache::PrefixCache;
use crate::engine::template::{ChatMessage, ChatTemplate};

use super::MOODS;

#[derive(Debug, thiserror::Error)]
pub enum LmMoodError {
    #[error("language model `{spec}`: {reason}")]
    Load { spec: String, reason: String },
    #[error("language model scoring failed: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("language model scoring failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The instructions (system turn and the start of the user turn).
const SYSTEM: &str = "You read messages that customers send to a company's support team and say how the customer feels.";
const ASK: &str = "Which one word describes the customer's mood best: angry, frustrated, anxious, confused, neutral, happy or grateful? Answer with that word only.\n\nMessage:\n";

/// A loaded language model that scores the seven moods.
pub struct LmMood {
    gen: Mutex<Generator>,
    template: ChatTemplate,
    /// Token ids of each mood word as the start of the answer.
    label_tokens: Vec<Vec<u32>>,
    /// Mean log-probability of each mood word for content-free messages.
    prior: Vec<f32>,
    /// Name of the model, for reports.
    pub model: String,
}

impl LmMood {
    /// Loads a model by name or path (as `brandvoice generate --model` takes).
    pub fn load(spec: &str) -> Result<Self, LmMoodError> {
        let err = |e: &dyn std::fmt::Display| LmMoodError::Load { spec: spec.to_string(), reason: e.to_string() };
        let path = crate::models::resolve(spec).map_err(|e| err(&e))?;
        let m = model::load(&path, &LoadOptions::default()).map_err(|e| err(&e))?;
        let model::Model { tokenizer, template, lm, .. } = m;
        let mut label_tokens = Vec::new();
        for mood in MOODS {
            let word: String = mood.chars().take(1).flat_map(|c| c.to_uppercase()).chain(mood.chars().skip(1)).collect();
            let ids = tokenizer.encode(&word, false).map_err(|e| err(&e))?;
            if ids.is_empty() {
                return Err(err(&format!("the mood word `{mood}` has no tokens")));
            }
            label_tokens.push(ids);
        }
        let gen = Generator::new(lm, Arc::new(tokenizer), PrefixCache::new(0));
        let mut me = Self { gen: Mutex::new(gen), template, label_tokens, prior: vec![0.0; MOODS.len()], model: spec.to_string() };
        let free = ["N/A", "…", "[message]"];
        let mut prior = vec![0f32; MOODS.len()];
        for t in free {
            for (p, l) in prior.iter_mut().zip(me.log_scores(t)?) {
                *p += l / free.len() as f32;
            }
        }
        me.prior = prior;
        Ok(me)
    }

    /// Probabilities of the seven moods, in [`MOODS`] order (calibrated).
    pub fn mood_probabilities(&self, text: &str) -> Result<Vec<f32>, LmMoodError> {
        let mut z: Vec<f32> = self.log_scores(text)?.iter().zip(&self.prior).map(|(l, p)| l - p).collect();
        super::head::softmax_in_place(&mut z);
        Ok(z)
    }

    /// Log-probability of each mood word as the answer, uncalibrated.
    fn log_scores(&self, text: &str) -> Result<Vec<f32>, LmMoodError> {
        let mut gen = self.gen.lock().unwrap_or_else(|p| p.into_inner());
        let messages = [
            ChatMessage { role: "system".into(), content: SYSTEM.into() },
            ChatMessage { role: "user".into(), content: format!("{ASK}{}", text.trim()) },
        ];
        let prompt = chat_prompt(gen.tokenizer(), &self.template, &messages)?;
        let (first, _) = gen.prefill(&prompt)?;
        let first = log_softmax(&first);
        // Words whose first token is shared with another mood need their later tokens.
        let mut scores = Vec::with_capacity(MOODS.len());
        for ids in &self.label_tokens {
            let mut lp = first.get(ids[0] as usize).copied().unwrap_or(f32::MIN);
            let shared = self.label_tokens.iter().filter(|o| o[0] == ids[0]).count() > 1;
            if shared {
                let mut seq = prompt.clone();
                for w in ids.windows(2) {
                    seq.push(w[0]);
                    let (logits, _) = gen.prefill(&seq)?;
                    lp += log_softmax(&logits).get(w[1] as usize).copied().unwrap_or(f32::MIN);
                }
            }
            scores.push(lp);
        }
        Ok(scores)
    }
}

fn log_softmax(z: &[f32]) -> Vec<f32> {
    let max = z.iter().cloned().fold(f32::MIN, f32::max);
    let lse = z.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
    z.iter().map(|v| v - lse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises() {
        let l = log_softmax(&[1.0, 2.0, 3.0]);
        let s: f32 = l.iter().map(|v| v.exp()).sum();
        assert!((s - 1.0).abs() < 1e-5);
        assert!(l[2] > l[1] && l[1] > l[0]);
    }
}
