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
//! It also keeps the output valid UTF-8: byte-level BPE vocabularies hold
//! tokens that are parts of a multi-byte character, and a small model will
//! sometimes follow a lead byte with something that does not continue it
//! (or end mid-character), which decodes to U+FFFD and costs a whole
//! regeneration round (`Draft.Garbled`). The mask tracks the unfinished
//! character at the end of the output and only lets through tokens that
//! continue it correctly (std's UTF-8 validation decides, so overlong and
//! surrogate forms are refused too); with no character open, tokens that
//! start with a continuation byte are banned, and tokens that are invalid
//! in themselves are banned always.
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
    /// Per token: its bytes (empty for control tokens).
    pub bytes: Vec<Box<[u8]>>,
    /// Tokens that start with a UTF-8 continuation byte (and are otherwise
    /// well formed): only right after an unfinished character.
    pub utf8_continuations: Vec<u32>,
    /// Tokens that can never be part of valid UTF-8 output.
    pub utf8_invalid: Vec<u32>,
}

/// The unfinished character at the end of `bytes`: `Ok(tail)` when `bytes`
/// is valid UTF-8 up to an incomplete last character (`tail` holds its
/// bytes, empty when nothing is open), `Err(())` when it is not valid.
pub fn utf8_tail(bytes: &[u8]) -> Result<&[u8], ()> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(&[]),
        Err(e) if e.error_len().is_none() => Ok(&bytes[e.valid_up_to()..]),
        Err(_) => Err(()),
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
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
        let mut s = VocabSets { eog: tok.eog_ids().to_vec(), sentence_end: vec![false; n], weight: vec![0; n], bytes: vec![Box::default(); n], ..Default::default() };
        for id in 0..n as u32 {
            if tok.is_special(id) {
                continue;
            }
            let bytes = tok.token_bytes(id);
            let lead = bytes.iter().take_while(|&&b| is_continuation(b)).count();
            if lead > 3 || utf8_tail(&bytes[lead..]).is_err() {
                s.utf8_invalid.push(id);
            } else if lead > 0 {
                s.utf8_continuations.push(id);
            }
            s.bytes[id as usize] = bytes.clone().into_boxed_slice();
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
    /// Allow only tokens that keep the output valid UTF-8.
    pub valid_utf8: bool,
}

/// The engine `LogitMask` of one request; forked per candidate.
#[derive(Clone)]
pub struct DraftMask {
    sets: Arc<VocabSets>,
    policy: MaskPolicy,
    banned: Arc<Vec<u32>>,
    seen: usize,
    chars: usize,
    /// Bytes of the unfinished character at the end of the output (≤ 3).
    open: Vec<u8>,
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
        if policy.valid_utf8 {
            banned.extend_from_slice(&sets.utf8_invalid);
        }
        banned.sort_unstable();
        banned.dedup();
        DraftMask { sets, policy, banned: Arc::new(banned), seen: 0, chars: 0, open: Vec::new() }
    }

    /// Only tokens that continue the open character correctly keep their
    /// logit; everything else (end-of-generation included) is banned.
    fn continue_open_char(&self, logits: &mut [f32]) {
        let keep: Vec<(usize, f32)> = self
            .sets
            .utf8_continuations
            .iter()
            .map(|&t| t as usize)
            .filter(|&t| t < logits.len())
            .filter(|&t| {
                let mut b = self.open.clone();
                b.extend_from_slice(&self.sets.bytes[t]);
                utf8_tail(&b).is_ok()
            })
            .map(|t| (t, logits[t]))
            .collect();
        if keep.is_empty() {
            // Nothing in this vocabulary continues it: let the model end.
            return;
        }
        logits.iter_mut().for_each(|l| *l = f32::NEG_INFINITY);
        for (t, l) in keep {
            logits[t] = if l.is_finite() { l } else { -1e30 };
        }
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

impl DraftMask {
    /// Counts what was generated since the last call (length, open character).
    fn advance(&mut self, generated: &[u32]) {
        for &t in &generated[self.seen.min(generated.len())..] {
            self.chars += self.sets.weight.get(t as usize).copied().unwrap_or(1) as usize;
            if self.policy.valid_utf8 {
                if let Some(b) = self.sets.bytes.get(t as usize) {
                    self.open.extend_from_slice(b);
                    let keep = utf8_tail(&self.open).map(<[u8]>::len).unwrap_or(0);
                    self.open.drain(..self.open.len() - keep);
                }
            }
        }
        self.seen = generated.len();
    }

    /// The length budget is spent: only end-of-generation may follow.
    fn budget_spent(&self, generated: &[u32]) -> bool {
        if self.policy.valid_utf8 && !self.open.is_empty() {
            return false;
        }
        if self.policy.hard_chars.is_some_and(|hard| self.chars >= hard) {
            return true;
        }
        match (self.policy.soft_chars, generated.last()) {
            (Some(soft), Some(&last)) => self.chars >= soft && self.sets.sentence_end.get(last as usize).copied().unwrap_or(false),
            _ => false,
        }
    }
}

impl LogitMask for DraftMask {
    fn forces_end(&mut self, generated: &[u32]) -> bool {
        self.advance(generated);
        !self.sets.eog.is_empty() && self.budget_spent(generated)
    }

    fn apply(&mut self, generated: &[u32], logits: &mut [f32]) {
        self.advance(generated);
        if self.policy.valid_utf8 && !self.open.is_empty() {
            // Mid-character: finish it before anything else (the length
            // budget and end-of-generation wait one or two tokens).
            return self.continue_open_char(logits);
        }
        if self.budget_spent(generated) {
            return self.force_eog(logits);
        }
        for &id in self.banned.iter() {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        if self.policy.valid_utf8 {
            for &id in &self.sets.utf8_continuations {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = f32::NEG_INFINITY;
                }
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
        m.open.clear();
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
            ..Default::default()
        })
    }

    /// A byte-level vocabulary: 0 "a", 1 "\xE3" (lead of a 3-byte char),
    /// 2 "\x81\x82" (its two continuation bytes: "あ"), 3 "\x81" (one),
    /// 4 "\x82b", 5 "\xFF" (never valid), 6 EOG, 7 "\xE3\x81" (lead + one).
    fn byte_sets() -> Arc<VocabSets> {
        let bytes: Vec<&[u8]> = vec![b"a", b"\xE3", b"\x81\x82", b"\x81", b"\x82b", b"\xFF", b"", b"\xE3\x81"];
        let mut s = VocabSets { eog: vec![6], sentence_end: vec![false; 8], weight: vec![1; 8], ..Default::default() };
        for (id, b) in bytes.iter().enumerate() {
            s.bytes.push(b.to_vec().into_boxed_slice());
            let lead = b.iter().take_while(|&&x| is_continuation(x)).count();
            if utf8_tail(&b[lead..]).is_err() {
                s.utf8_invalid.push(id as u32);
            } else if lead > 0 {
                s.utf8_continuations.push(id as u32);
            }
        }
        Arc::new(s)
    }

    fn allowed(m: &mut DraftMask, generated: &[u32]) -> Vec<usize> {
        let mut l = vec![0.0; 8];
        m.apply(generated, &mut l);
        l.iter().enumerate().filter(|(_, x)| x.is_finite()).map(|(i, _)| i).collect()
    }

    #[test]
    fn utf8_mask_only_lets_valid_continuations_through() {
        let sets = byte_sets();
        assert_eq!(sets.utf8_invalid, vec![5]);
        assert_eq!(sets.utf8_continuations, vec![2, 3, 4]);
        let mut m = DraftMask::new(sets.clone(), MaskPolicy { valid_utf8: true, ..Default::default() });
        // Nothing open: no continuation bytes, never 0xFF.
        assert_eq!(allowed(&mut m, &[]), vec![0, 1, 6, 7]);
        // After the lead byte: two continuation bytes, or one; not "a", not EOG.
        assert_eq!(allowed(&mut m, &[1]), vec![2, 3]);
        // After lead + one continuation: exactly one more ("\x81\x82" would be one too many).
        assert_eq!(allowed(&mut m, &[1, 3]), vec![3, 4]);
        // Finished: back to normal.
        assert_eq!(allowed(&mut m, &[1, 3, 4]), vec![0, 1, 6, 7]);
        // The hard length budget waits for the character to finish.
        let mut h = DraftMask::new(sets.clone(), MaskPolicy { valid_utf8: true, hard_chars: Some(1), ..Default::default() });
        assert_eq!(allowed(&mut h, &[7]), vec![3, 4]);
        assert_eq!(allowed(&mut h, &[7, 3]), vec![6]);
        // Off: everything goes.
        let mut off = DraftMask::new(sets, MaskPolicy::default());
        assert_eq!(allowed(&mut off, &[1]).len(), 8);
    }

    #[test]
    fn utf8_tail_reports_the_open_character() {
        assert_eq!(utf8_tail(b"ab"), Ok(&b""[..]));
        assert_eq!(utf8_tail(b"a\xE3\x81"), Ok(&b"\xE3\x81"[..]));
        assert_eq!(utf8_tail(b"\xE3a"), Err(()));
        // A surrogate (ED A0 80) is refused already at its second byte.
        assert_eq!(utf8_tail(b"\xED\xA0"), Err(()));
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

    #[test]
    fn forces_end_exactly_when_apply_would_allow_only_eog() {
        let policy = MaskPolicy { soft_chars: Some(8), hard_chars: Some(20), min_tokens: 1, ..Default::default() };
        let cases: [&[u32]; 5] = [&[], &[0], &[0, 1], &[0, 6, 6, 6], &[0, 6, 6, 6, 6, 6, 6, 6]];
        for generated in cases {
            // Step by step, as the generator calls it: forces_end after each token.
            let mut m = DraftMask::new(sets(), policy);
            let mut forced = false;
            for k in 1..=generated.len() {
                forced = m.forces_end(&generated[..k]);
            }
            let mut l = vec![1.0; 7];
            DraftMask::new(sets(), policy).apply(generated, &mut l);
            let only_eog = l.iter().enumerate().all(|(i, x)| i == 5 || *x == f32::NEG_INFINITY);
            assert_eq!(forced, only_eog, "{generated:?}");
        }
        // No EOG in the vocabulary: never forced (nothing could end it).
        let mut m = DraftMask::new(Arc::new(VocabSets { eog: vec![], ..(*sets()).clone() }), policy);
        assert!(!m.forces_end(&[0, 1]));
    }
}
