//! Byte-level BPE (`tokenizer.ggml.model = gpt2`): GPT-2's byte-to-unicode
//! table, then merges by rank inside each pre-tokenized word.
//!
//! The merge loop is a port of llama.cpp's `llm_tokenizer_bpe_session`: a
//! priority queue of adjacent pairs ordered by (rank, left position), stale
//! pairs detected by comparing texts. Its quirks are kept on purpose because
//! they decide ids: a merged symbol that is not in the vocabulary falls back
//! to one token per byte, and a byte whose single-byte string is missing is
//! dropped, as in llama.cpp.

use super::pretokenize::PreTokenizer;
use super::{FastMap, Vocab};
use super::Symbol;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the rest
/// to U+0100.. in byte order.
pub(crate) fn byte_to_char_table() -> &'static [char; 256] {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..256u32 {
            let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
            table[b as usize] = if printable {
                char::from_u32(b).unwrap_or('\0')
            } else {
                let c = char::from_u32(256 + n).unwrap_or('\0');
                n += 1;
                c
            };
        }
        table
    })
}

/// The inverse of [`byte_to_char_table`], for decoding.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    static MAP: OnceLock<HashMap<char, u8>> = OnceLock::new();
    MAP.get_or_init(|| byte_to_char_table().iter().enumerate().map(|(b, &c)| (c, b as u8)).collect())
        .get(&c)
        .copied()
}

/// Text of a byte-level BPE token as the raw bytes it stands for. A char
/// outside the table (possible only in a malformed vocabulary) keeps its
/// UTF-8 bytes.
pub(crate) fn decode_byte_level(token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
pub(crate) struct BpeModel {
    /// `"left right"` → rank (index in `tokenizer.ggml.merges`; first wins).
    ranks: FastMap<String, u32>,
    pre: PreTokenizer,
}

struct Bigram {
    left: usize,
    right: usize,
    rank: u32,
    text: String,
}

ord_from_cmp!(Bigram);
impl Ord for Bigram {
    /// Max-heap order: lowest rank first, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank.cmp(&self.rank).then_with(|| other.left.cmp(&self.left))
    }
}

impl BpeModel {
    /// `merges` are the `tokenizer.ggml.merges` strings (`"a b"`), in rank order.
    pub(crate) fn new(merges: &[String], pre: PreTokenizer) -> Self {
        let mut ranks = FastMap::with_capacity_and_hasher(merges.len(), Default::default());
        for (i, m) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte; a
            // merge without one becomes the pair ("", "").
            // (byte-wise, like `word.find(' ', 1)`). With the space found the
            // key is the merge string itself.
            let has_space = m.as_bytes().iter().skip(1).any(|&b| b == b' ');
            let key = if has_space { m.clone() } else { " ".to_string() };
            ranks.entry(key).or_insert(i as u32);
        }
        Self { ranks, pre }
    }

    pub(crate) fn pre_name(&self) -> &str {
        self.pre.name()
    }

    /// Appends the ids of one raw-text fragment (no special tokens in it).
    pub(crate) fn encode_fragment(&self, text: &str, vocab: &Vocab, out: &mut Vec<u32>) {
        let table = byte_to_char_table();
        let mut encoded = String::new();
        let mut key = String::new();
        for word in self.pre.split(text) {
            encoded.clear();
            for &b in word.as_bytes() {
                encoded.push(table[b as usize]);
            }
            self.merge_word(&encoded, vocab, &mut key, out);
        }
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.ranks.get(key.as_str()).copied()
    }

    fn merge_word(&self, word: &str, vocab: &Vocab, key: &mut String, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        for (i, (start, c)) in word.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
        }
        let n = symbols.len();
        for i in 0..n.saturating_sub(1) {
            symbols[i].next = Some(i + 1);
        }
        let text_of = |s: &Symbol| &word[s.start..s.start + s.len];

        let mut queue = BinaryHeap::new();
        let push = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], key: &mut String, l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (lt, rt) = (text_of(&symbols[l]), text_of(&symbols[r]));
            if let Some(rank) = self.rank(key, lt, rt) {
                queue.push(Bigram { left: l, right: r, rank, text: format!("{lt}{rt}") });
            }
        };
        for i in 1..n {
            push(&mut queue, &symbols, key, Some(i - 1), Some(i));
        }
        while let Some(bigram) = queue.pop() {
            let (l, r) = (bigram.left, bigram.right);
            if symbols[l].len == 0 || symbols[r].len == 0 {
                continue;
            }
            let (ls, rs) = (&symbols[l], &symbols[r]);
            if ls.len + rs.len != bigram.text.len()
                || word.get(ls.start..ls.start + ls.len + rs.len) != Some(bigram.text.as_str())
                || ls.start + ls.len != rs.start
            {
                continue; // outdated
            }
            let right_next = symbols[r].next;
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            symbols[l].next = right_next;
            if let Some(rn) = right_next {
                symbols[rn].prev = Some(l);
            }
            let lp = symbols[l].prev;
            push(&mut queue, &symbols, key, lp, Some(l));
            let ln = symbols[l].next;
            push(&mut queue, &symbols, key, Some(l), ln);
        }

        let mut cur = if n > 0 { Some(0) } else { None };
        while let Some(i) = cur {
            let s = &symbols[i];
            cur = s.next;
            if s.len == 0 {
                continue;
            }
            let text = text_of(s);
            match vocab.token_to_id.get(text) {
                Some(&id) => out.push(id),
                None => {
                    // llama.cpp looks up each *byte* of the symbol as a
                    // one-byte string; bytes >= 0x80 can never match and are
                    // dropped, exactly as there.
                    for &b in text.as_bytes() {
                        if b < 0x80 {
                            let one = [b];
                            if let Ok(s) = std::str::from_utf8(&one) {
                                if let Some(&id) = vocab.token_to_id.get(s) {
                                    out.push(id);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[0xAD], '\u{143}');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(t[b as usize]), Some(b));
        }
        assert_eq!(decode_byte_level("ĠhelloĊ"), b" hello\n");
    }

    #[test]
    fn merge_rank_keys_split_at_first_space() {
        let m = BpeModel::new(
            &["Ġ t".to_string(), "h e".to_string(), "Ġ t".to_string()],
            PreTokenizer::from_name("gpt-2").expect("gpt-2"),
        );
        let mut key = String::new();
        assert_eq!(m.rank(&mut key, "Ġ", "t"), Some(0));
        assert_eq!(m.rank(&mut key, "h", "e"), Some(1));
        assert_eq!(m.rank(&mut key, "e", "h"), None);
    }
}
