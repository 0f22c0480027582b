//! Constrained decoding: what the channel, the brand and the mood forbid is
//! made impossible to sample, rather than generated and then repaired.
//!
//! [`VocabSets`] scans the vocabulary once per tokenizer (built when the
//! `Drafter` is) and records, per token: does it carry emoji (or the first
//! byte of a 4-byte UTF-8 sequence, which is how byte-level BPE splits most
//! emoji), a URL start (`http`, `www.`, `://`), a `#`, a sentence end, and
//! its weighted length. [`DraftMask`] is the engine's `LogitMask` for one
//! request: it bans those sets as the request needs and keeps a length
//! budget per candidate — past the soft budget it ends the reply at the next
//! sentence end, at the hard budget it forces end-of-generation.
//!
//! Hand-written because the engine's `LogitMask` hook is ours; the token
//! classes are simple byte/char tests, no grammar engine is needed.

use crate::engine::sampling::LogitMask;
use crate::engine::tokenizer::Tokenizer;
use std::sync::Arc;

/// Token classes of one vocabulary.
#[derive(Debug, Clone, Default)]
pub struct VocabSets {
    pub emoji: Vec<u32>,
    pub url: Vec<u32>,
    pub hashtag: Vec<u32>,
    pub eog: Vec<u32>,
    /// Per token: the text ends a sentence.
    pub sentence_end: Vec<bool>,
    /// Per token: characters, with CJK and emoji counted twice (Twitter's weighting).
    pub weight: Vec<u16>,
}

/// Emoji and pictographs (the ranges the rule engine's emoji check knows, roughly).
pub fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x2300..=0x23FF | 0xFE0F | 0x200D)
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6) || is_emoji(c)
}

impl VocabSets {
    pub fn build(tok: &Tokenizer) -> Self {
        let n = tok.vocab_size();
        let mut s = VocabSets { eog: tok.eog_ids().to_vec(), sentence_end: vec![false; n], weight: vec![0; n], ..Default::default() };
        for id in 0..n as u32 {
            if tok.is_special(id) {
                continue;
            }
            let bytes = tok.token_bytes(id);
            let text = String::from_utf8_lossy(&bytes);
            let lower = text.to_lowercase();
            if bytes.contains(&0xF0) || text.chars().any(is_emoji) {
                s.emoji.push(id);
            }
            if lower.contains("http") || lower.contains("www.") || lower.contains("://") {
                s.url.push(id);
            }
            if text.contains('#') || text.contains('＃') {
                s.hashtag.push(id);
            }
            let t = text.trim_end();
            s.sentence_end[id as usize] = t.ends_with(['.', '!', '?', '。', '！', '？', '।']);
            let w: usize = if std::str::from_utf8(&bytes).is_ok() {
                text.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
            } else {
                // A piece of a multi-byte character: about a third of one wide char per byte.
                bytes.len().div_ceil(2)
            };
            s.weight[id as usize] = w.min(u16::MAX as usize) as u16;
        }
        s
    }
}

/// What one request forbids, and its length budget in weighted characters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MaskPolicy {
    pub ban_emoji: bool,
    pub ban_urls: bool,
    pub ban_hashtags: bool,
    /// Past this many weighted characters, end at the next sentence end.
    pub soft_chars: Option<usize>,
    /// At this many, only end-of-generation may follow.
    pub hard_chars: Option<usize>,
    /// End-of-generation is banned until this many tokens (no empty drafts).
    pub min_tokens: usize,
}

/// The engine `LogitMask` of one request; forked per candidate.
#[derive(Clone)]
pub struct DraftMask {
    sets: Arc<VocabSets>,
    policy: MaskPolicy,
    banned: Arc<Vec<u32>>,
    seen: usize,
    chars: usize,
}

impl DraftMask {
    pub fn new(sets: Arc<VocabSets>, policy: MaskPolicy) -> Self {
        let mut banned = Vec::new();
        if policy.ban_emoji {
            banned.extend_from_slice(&sets.emoji);
        }
        if policy.ban_urls {
            banned.extend_from_slice(&sets.url);
        }
        if policy.ban_hashtags {
            banned.extend_from_slice(&sets.hashtag);
        }
        banned.sort_unstable();
        banned.dedup();
        DraftMask { sets, policy, banned: Arc::new(banned), seen: 0, chars: 0 }
    }

    pub fn banned_count(&self) -> usize {
        self.banned.len()
    }

    fn force_eog(&self, logits: &mut [f32]) {
        let best_eog = self.sets.eog.iter().filter_map(|&e| logits.get(e as usize).map(|&l| (e, l))).max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((keep, _)) = best_eog else { return };
        for (i, l) in logits.iter_mut().enumerate() {
            if i as u32 != keep {
                *l = f32::NEG_INFINITY;
            }
        }
        if !logits[keep as usize].is_finite() {
            logits[keep as usize] = 0.0;
        }
    }
}

impl LogitMask for DraftMask {
    fn apply(&mut self, generated: &[u32], logits: &mut [f32]) {
        for &t in &generated[self.seen.min(generated.len())..] {
            self.chars += self.sets.weight.get(t as usize).copied().unwrap_or(1) as usize;
        }
        self.seen = generated.len();
        if let Some(hard) = self.policy.hard_chars {
            if self.chars >= hard {
                return self.force_eog(logits);
            }
        }
        if let (Some(soft), Some(&last)) = (self.policy.soft_chars, generated.last()) {
            if self.chars >= soft && self.sets.sentence_end.get(last as usize).copied().unwrap_or(false) {
                return self.force_eog(logits);
            }
        }
        for &id in self.banned.iter() {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        if generated.len() < self.policy.min_tokens {
            for &e in &self.sets.eog {
                if let Some(l) = logits.get_mut(e as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }

    fn fork(&self) -> Box<dyn LogitMask> {
        let mut m = self.clone();
        m.seen = 0;
        m.chars = 0;
        Box::new(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> Arc<VocabSets> {
        // A tiny hand-made vocabulary: 0 "Hi", 1 " there.", 2 "🎵", 3 " http", 4 "#", 5 EOG, 6 " ok"
        Arc::new(VocabSets {
            emoji: vec![2],
            url: vec![3],
            hashtag: vec![4],
            eog: vec![5],
            sentence_end: vec![false, true, false, false, false, false, false],
            weight: vec![2, 7, 2, 5, 1, 0, 3],
        })
    }

    #[test]
    fn bans_what_the_policy_forbids() {
        let mut m = DraftMask::new(sets(), MaskPolicy { ban_emoji: true, ban_urls: true, ban_hashtags: false, ..Default::default() });
        let mut l = vec![1.0; 7];
        m.apply(&[], &mut l);
        assert_eq!(l[2], f32::NEG_INFINITY);
        assert_eq!(l[3], f32::NEG_INFINITY);
        assert!(l[4].is_finite() && l[0].is_finite() && l[5].is_finite());
    }

    #[test]
    fn length_budget_ends_at_a_sentence_then_forces_eog() {
        let policy = MaskPolicy { soft_chars: Some(8), hard_chars: Some(20), min_tokens: 1, ..Default::default() };
        let mut m = DraftMask::new(sets(), policy);
        let mut l = vec![1.0; 7];
        m.apply(&[], &mut l);
        assert_eq!(l[5], f32::NEG_INFINITY, "no EOG before min_tokens");
        // "Hi there." = 9 ≥ soft and ends a sentence → only EOG.
        let mut l = vec![1.0; 7];
        m.apply(&[0, 1], &mut l);
        assert!(l[5].is_finite());
        assert!(l.iter().enumerate().all(|(i, x)| i == 5 || *x == f32::NEG_INFINITY));
        // Over soft but not at a sentence end: free.
        let mut m2 = DraftMask::new(sets(), policy);
        let mut l = vec![1.0; 7];
        m2.apply(&[0, 6, 6, 6], &mut l);
        assert!(l[0].is_finite());
        // Over hard: only EOG, even mid-sentence.
        let mut l = vec![1.0; 7];
        m2.apply(&[0, 6, 6, 6, 6, 6, 6, 6], &mut l);
        assert!(l.iter().enumerate().all(|(i, x)| i == 5 || *x == f32::NEG_INFINITY));
        // A fork starts from zero.
        let mut f = m2.fork();
        let mut l = vec![1.0; 7];
        f.apply(&[0], &mut l);
        assert!(l[0].is_finite());
    }
}
