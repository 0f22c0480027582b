//! SentencePiece-style BPE (`tokenizer.ggml.model = llama`, used by Gemma 3
//! and Llama 1/2): no merge list, so merges are rebuilt from token scores —
//! repeatedly join the adjacent pair whose concatenation is a token with the
//! highest score — and anything left that is not a token falls back to
//! `<0xNN>` byte tokens.
//!
//! A port of llama.cpp's `llm_tokenizer_spm_session`, including its tie
//! break (equal scores: leftmost pair first) and its staleness test (a pair
//! is stale when the two symbols' lengths no longer add up). Space handling
//! (`add_space_prefix`, `▁` escaping) happens in the caller, per fragment,
//! because it depends on whether a special token came before.

use super::Vocab;
use crate::engine::error::{EngineError, Result};
use super::Symbol;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

ord_from_cmp!(Bigram);
impl Ord for Bigram {
    /// Max-heap order: highest score first, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

/// Appends the ids of `text` (already space-escaped) to `out`.
pub(crate) fn encode(text: &str, vocab: &Vocab, out: &mut Vec<u32>) -> Result<()> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: None });
    }
    let n = symbols.len();
    for i in 0..n.saturating_sub(1) {
        symbols[i].next = Some(i + 1);
    }

    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let start = symbols[l].start;
        let size = symbols[l].len + symbols[r].len;
        let Some(piece) = text.get(start..start + size) else { return };
        if let Some(&id) = vocab.token_to_id.get(piece) {
            queue.push(Bigram { left: l, right: r, score: vocab.scores[id as usize], size });
        }
    };
    for i in 1..n {
        try_add(&mut queue, &symbols, Some(i - 1), Some(i));
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (b.left, b.right);
        if symbols[l].len == 0 || symbols[r].len == 0 || symbols[l].len + symbols[r].len != b.size {
            continue;
        }
        let right_next = symbols[r].next;
        symbols[l].len += symbols[r].len;
        symbols[r].len = 0;
        symbols[l].next = right_next;
        if let Some(rn) = right_next {
            symbols[rn].prev = Some(l);
        }
        let lp = symbols[l].prev;
        try_add(&mut queue, &symbols, lp, Some(l));
        let ln = symbols[l].next;
        try_add(&mut queue, &symbols, Some(l), ln);
    }

    // Every merged symbol is a token (a pair is only merged when its text is
    // one), so llama.cpp's `rev_merge` re-segmentation never fires: a symbol
    // is a token or a single character that needs byte fallback.
    let mut cur = if n > 0 { Some(0) } else { None };
    while let Some(i) = cur {
        let s = &symbols[i];
        cur = s.next;
        let piece = &text[s.start..s.start + s.len];
        match vocab.token_to_id.get(piece) {
            Some(&id) => out.push(id),
            None => {
                for &byte in piece.as_bytes() {
                    out.push(byte_token(vocab, byte)?);
                }
            }
        }
    }
    Ok(())
}

/// llama.cpp's `byte_to_token` for SPM: `<0xNN>`, else the byte itself as a
/// one-character token; a vocabulary with neither cannot encode the text.
fn byte_token(vocab: &Vocab, byte: u8) -> Result<u32> {
    if let Some(&id) = vocab.token_to_id.get(format!("<0x{byte:02X}>").as_str()) {
        return Ok(id);
    }
    if byte < 0x80 {
        let one = [byte];
        if let Some(&id) = std::str::from_utf8(&one).ok().and_then(|s| vocab.token_to_id.get(s)) {
            return Ok(id);
        }
    }
    Err(EngineError::Tokenizer(format!(
        "vocabulary has no byte-fallback token <0x{byte:02X}> for a character it cannot spell"
    )))
}
