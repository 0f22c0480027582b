//! Prompt-lookup drafts for speculative decoding: the tokens that followed
//! the most recent earlier occurrence of the text's last few tokens.
//!
//! Why this and not a draft model: a support reply copies a lot from its
//! prompt — the facts, the brand's phrases, the exemplar replies, the
//! customer's own words — and a lookup costs microseconds, needs no second
//! model in 2 cores' worth of memory bandwidth, and is deterministic, which
//! keeps the verification simple: the generator samples every position
//! exactly as plain decoding would (same logits, same sampler, same RNG
//! draws) and keeps a drafted token only when it equals the sampled one.
//! For a deterministic draft that is the standard speculative-sampling rule
//! (token x accepted with probability p(x); on rejection the token drawn is
//! distributed as p without x, renormalised), and the text is the very text
//! plain decoding gives for the same seed.

/// How drafts are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LookupParams {
    /// Most tokens drafted per step; 0 turns speculation off.
    pub max_draft: usize,
    /// Shortest tail that must match (shorter tails propose too much noise).
    pub min_ngram: usize,
    /// Longest tail tried first.
    pub max_ngram: usize,
}

impl Default for LookupParams {
    fn default() -> Self {
        Self { max_draft: 0, min_ngram: 2, max_ngram: 4 }
    }
}

impl LookupParams {
    /// Speculation on with `max_draft` tokens per step.
    pub fn with_draft(max_draft: usize) -> Self {
        Self { max_draft, ..Self::default() }
    }
}

/// The draft after `prompt ++ generated`: for n from `max_ngram` down to
/// `min_ngram`, the last n tokens are searched for earlier in the sequence
/// (most recent occurrence first) and up to `max_draft` tokens that followed
/// it are returned. Empty when nothing matches.
pub fn propose(prompt: &[u32], generated: &[u32], p: &LookupParams) -> Vec<u32> {
    let len = prompt.len() + generated.len();
    let at = |i: usize| if i < prompt.len() { prompt[i] } else { generated[i - prompt.len()] };
    if p.max_draft == 0 {
        return Vec::new();
    }
    for n in (p.min_ngram.max(1)..=p.max_ngram).rev() {
        if len <= n {
            continue;
        }
        let tail = len - n;
        // Candidate starts j < tail, the most recent first; the match must be
        // followed by at least one token.
        for j in (0..tail).rev() {
            if (0..n).all(|i| at(j + i) == at(tail + i)) {
                let from = j + n;
                let to = (from + p.max_draft).min(len);
                if from < to {
                    return (from..to).map(at).collect();
                }
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposes_what_followed_the_latest_match() {
        let p = LookupParams { max_draft: 3, min_ngram: 2, max_ngram: 3 };
        // "... 1 2 3 4 5 ..." earlier; the text now ends in "1 2".
        let prompt = [9, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(propose(&prompt, &[8, 1, 2], &p), vec![3, 4, 5]);
        // The longer tail wins over a more recent shorter match.
        let prompt = [0, 1, 2, 3, 4, 9, 2, 3, 7];
        assert_eq!(propose(&prompt, &[1, 2, 3], &p), vec![4, 9, 2]);
        // Most recent occurrence of the same tail.
        let prompt = [1, 2, 5, 6, 1, 2, 7];
        assert_eq!(propose(&prompt, &[1, 2], &p), vec![7, 1, 2]);
        // Draft stops at the end of the text.
        assert_eq!(propose(&[4, 5, 6], &[4, 5], &p), vec![6, 4, 5]);
    }

    #[test]
    fn nothing_to_propose() {
        let p = LookupParams { max_draft: 4, min_ngram: 2, max_ngram: 3 };
        assert!(propose(&[1, 2, 3], &[4, 5], &p).is_empty(), "no earlier occurrence");
        assert!(propose(&[1], &[], &p).is_empty(), "too short");
        assert!(propose(&[1, 2, 1, 2], &[], &LookupParams::default()).is_empty(), "max_draft 0 is off");
        // A single-token match is not enough with min_ngram 2.
        assert!(propose(&[7, 8, 9], &[3, 7], &p).is_empty());
    }
}
