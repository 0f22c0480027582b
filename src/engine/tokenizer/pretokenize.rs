//! Pre-tokenisation: cutting text into "words" before byte-level BPE merges,
//! exactly as llama.cpp's `unicode_regex_split` does for each `tokenizer.ggml.pre`.
//!
//! Why hand-written and not one `fancy_regex` per model: llama.cpp does not
//! run the Hugging Face regexes as written. It applies a *list* of regexes one
//! after the other (each splits the pieces the previous one produced, and the
//! text between matches stays a piece too); the GPT-2 pattern is a hand-coded
//! scanner whose corner cases (`\s+(?!\S)`, a lone trailing space) differ
//! from a regex engine's; and the other patterns run on a "collapsed" text in
//! which every non-ASCII code point is replaced by one byte standing for its
//! Unicode category. Reproducing the ids bit for bit means reproducing those
//! three mechanisms, so this module has one function per mechanism:
//! [`split_gpt2`] (port of `unicode_regex_split_custom_gpt2`), [`split_digits`]
//! (the `\p{N}` step of `smollm`/`starcoder`), and [`CollapsedRegex`]
//! (`fancy_regex` over the collapsed text, used for `qwen2`).
//!
//! Unicode categories come from `regex-syntax`'s tables (`\p{L}`, `\p{N}`)
//! and whitespace from `char::is_whitespace` (the Unicode `White_Space`
//! property), which is what llama.cpp's generated `unicode-data.cpp` encodes.

use std::sync::OnceLock;

/// The per-code-point facts llama.cpp's splitters look at. `in_range` is
/// false for a position outside the current piece (llama.cpp's empty
/// `unicode_cpt_flags{}`, whose `as_uint()` is 0); every real code point has
/// at least one category flag, so `in_range` stands in for `as_uint() != 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CptFlags {
    pub in_range: bool,
    pub letter: bool,
    pub number: bool,
    pub whitespace: bool,
}

struct CategoryTables {
    letter: Vec<(u32, u32)>,
    number: Vec<(u32, u32)>,
}

fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    // The patterns are constants; a failure here is a programming error that
    // the unit tests catch, so an empty table (not a panic) is the fallback.
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    match hir.kind() {
        HirKind::Class(Class::Unicode(cls)) => {
            cls.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        _ => Vec::new(),
    }
}

fn tables() -> &'static CategoryTables {
    static TABLES: OnceLock<CategoryTables> = OnceLock::new();
    TABLES.get_or_init(|| CategoryTables {
        letter: class_ranges(r"\p{L}"),
        number: class_ranges(r"\p{N}"),
    })
}

fn in_ranges(ranges: &[(u32, u32)], c: u32) -> bool {
    match ranges.binary_search_by(|&(lo, hi)| {
        if hi < c {
            std::cmp::Ordering::Less
        } else if lo > c {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }) {
        Ok(_) => true,
        Err(_) => false,
    }
}

pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_ranges(&tables().letter, c as u32)
}

pub(crate) fn is_number(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_ranges(&tables().number, c as u32)
}

pub(crate) fn flags(c: char) -> CptFlags {
    CptFlags { in_range: true, letter: is_letter(c), number: is_number(c), whitespace: c.is_whitespace() }
}

/// One step of a pre-tokenizer: takes piece lengths (in code points) and
/// returns finer ones covering the same text.
#[derive(Debug, Clone)]
enum SplitStep {
    /// llama.cpp's hand-coded GPT-2 pattern
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// The regex `\p{N}`: every number code point becomes its own piece.
    Digits,
    /// Any other pattern, run on the collapsed text.
    Regex(CollapsedRegex),
}

/// The pre-tokenizer named by `tokenizer.ggml.pre`, as the list of split steps
/// llama.cpp's `llm_tokenizer_bpe` constructor gives it.
#[derive(Debug, Clone)]
pub(crate) struct PreTokenizer {
    name: String,
    steps: Vec<SplitStep>,
}

/// `tokenizer.ggml.pre` values this module implements, for error messages.
pub(crate) const SUPPORTED_PRE: &[&str] = &[
    "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
    "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling",
    "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "qwen2",
    "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez", "hunyuan", "solar-open",
];

/// Qwen2's pattern as llama.cpp writes it (the `(?i:...)` group spelled out
/// because std::regex lacks inline flags).
const QWEN2_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` name; `Err` carries a
    /// message naming the unknown value (never a silent default).
    pub(crate) fn from_name(pre: &str) -> Result<Self, String> {
        let steps = match pre {
            // LLAMA_VOCAB_PRE_TYPE_GPT2 and the names llama.cpp maps to it.
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
            | "a.x-4.0" | "mellum" | "modern-bert" | "exaone4" | "mpt" | "olmo" | "jais"
            | "trillion" | "granite-docling" => vec![SplitStep::Gpt2],
            // STARCODER / SMOLLM family: digits one by one, then GPT-2.
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
                vec![SplitStep::Digits, SplitStep::Gpt2]
            }
            // QWEN2 family: one pattern, no custom scanner in llama.cpp.
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "megrez" | "hunyuan"
            | "solar-open" => vec![SplitStep::Regex(CollapsedRegex::new(QWEN2_PATTERN)?)],
            other => {
                return Err(format!(
                    "tokenizer.ggml.pre = `{other}` is not a supported pre-tokenizer (supported: {})",
                    SUPPORTED_PRE.join(", ")
                ))
            }
        };
        Ok(Self { name: pre.to_string(), steps })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Splits `text` into words (slices of `text`, in order, covering all of it).
    pub(crate) fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        if text.is_empty() {
            return Vec::new();
        }
        let cpts: Vec<char> = text.chars().collect();
        let mut offsets = vec![cpts.len()];
        for step in &self.steps {
            offsets = match step {
                SplitStep::Gpt2 => split_gpt2(&cpts, &offsets),
                SplitStep::Digits => split_digits(&cpts, &offsets),
                SplitStep::Regex(re) => re.split(&cpts, &offsets),
            };
        }
        // Code-point lengths back to byte slices of the original text.
        let mut words = Vec::with_capacity(offsets.len());
        let mut byte = 0usize;
        let mut chars = text.char_indices().peekable();
        for len in offsets {
            let start = byte;
            for _ in 0..len {
                if let Some((_, c)) = chars.next() {
                    byte += c.len_utf8();
                }
            }
            words.push(&text[start..byte]);
        }
        words
    }
}

/// Records piece boundaries the way llama.cpp's `_add_token` lambda does.
struct Emitter<'o> {
    prev_end: usize,
    out: &'o mut Vec<usize>,
}

impl Emitter<'_> {
    fn add(&mut self, end: usize) -> usize {
        let len = end.saturating_sub(self.prev_end);
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

/// Port of llama.cpp's `unicode_regex_split_custom_gpt2`.
pub(crate) fn split_gpt2(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &offset in offsets {
        let ini = start;
        let end = (start + offset).min(cpts.len());
        start = end;
        let get_cpt = |pos: usize| -> Option<char> { (ini <= pos && pos < end).then(|| cpts[pos]) };
        let get_flags =
            |pos: usize| -> CptFlags { if ini <= pos && pos < end { flags(cpts[pos]) } else { CptFlags::default() } };
        let mut em = Emitter { prev_end: ini, out: &mut out };
        let mut pos = ini;
        while pos < end {
            let cpt = cpts[pos];
            let fl = get_flags(pos);

            // 's|'t|'re|'ve|'m|'ll|'d
            if cpt == '\'' && pos + 1 < end {
                let next = cpts[pos + 1];
                if matches!(next, 's' | 't' | 'm' | 'd') {
                    pos += em.add(pos + 2);
                    continue;
                }
                if pos + 2 < end {
                    let next2 = cpts[pos + 2];
                    if (next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l') {
                        pos += em.add(pos + 3);
                        continue;
                    }
                }
            }

            let space = usize::from(cpt == ' ');
            let mut f2 = if cpt == ' ' { get_flags(pos + 1) } else { fl };
            // <space>?\p{L}+
            if f2.letter {
                pos += space;
                while f2.letter {
                    pos += 1;
                    f2 = get_flags(pos);
                }
                em.add(pos);
                continue;
            }
            // <space>?\p{N}+
            if f2.number {
                pos += space;
                while f2.number {
                    pos += 1;
                    f2 = get_flags(pos);
                }
                em.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+
            if !(f2.whitespace || f2.letter || f2.number) && f2.in_range {
                pos += space;
                while !(f2.whitespace || f2.letter || f2.number) && f2.in_range {
                    pos += 1;
                    f2 = get_flags(pos);
                }
                em.add(pos);
                continue;
            }

            let mut num_ws = 0usize;
            while get_flags(pos + num_ws).whitespace {
                num_ws += 1;
            }
            // \s+(?!\S)
            if num_ws > 1 && get_cpt(pos + num_ws).is_some() {
                pos += num_ws - 1;
                em.add(pos);
                continue;
            }
            // \s+
            if num_ws > 0 {
                pos += num_ws;
                em.add(pos);
                continue;
            }
            // no match
            pos += 1;
            em.add(pos);
        }
    }
    out
}

/// The regex `\p{N}` applied by llama.cpp's generic path: each number code
/// point is a match, the text between matches stays one piece.
pub(crate) fn split_digits(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &offset in offsets {
        let end = (start + offset).min(cpts.len());
        let mut run = 0usize;
        for &c in &cpts[start..end] {
            if is_number(c) {
                if run > 0 {
                    out.push(run);
                    run = 0;
                }
                out.push(1);
            } else {
                run += 1;
            }
        }
        if run > 0 {
            out.push(run);
        }
        start = end;
    }
    out
}

/// Stand-ins for the category bytes of llama.cpp's collapsed text
/// (`0xD1` number, `0xD2` letter, `0xD0` anything else). Private-use code
/// points keep the collapsed text valid UTF-8 for `fancy_regex`.
const COLLAPSED_OTHER: char = '\u{E000}';
const COLLAPSED_NUMBER: char = '\u{E001}';
const COLLAPSED_LETTER: char = '\u{E002}';

/// A pattern run the way llama.cpp runs a pattern that has no custom scanner:
/// ASCII stays as is, non-ASCII whitespace becomes `\x0B`, any other
/// non-ASCII code point becomes the marker of its category, and `\p{L}` /
/// `\p{N}` in the pattern become classes of marker + ASCII range.
#[derive(Debug, Clone)]
pub(crate) struct CollapsedRegex {
    re: fancy_regex::Regex,
}

impl CollapsedRegex {
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        let collapsed = collapse_pattern(pattern)?;
        let re = fancy_regex::Regex::new(&collapsed)
            .map_err(|e| format!("pre-tokenizer pattern `{pattern}` does not compile: {e}"))?;
        Ok(Self { re })
    }

    fn split(&self, cpts: &[char], offsets: &[usize]) -> Vec<usize> {
        // One char of collapsed text per code point; `byte_at[i]` is where
        // code point `i` starts in it.
        let mut collapsed = String::with_capacity(cpts.len());
        let mut byte_at = Vec::with_capacity(cpts.len() + 1);
        for &c in cpts {
            byte_at.push(collapsed.len());
            collapsed.push(collapse_cpt(c));
        }
        byte_at.push(collapsed.len());
        let cpt_index = |byte: usize| byte_at.partition_point(|&b| b < byte);

        let mut out = Vec::with_capacity(offsets.len());
        let mut start = 0usize;
        for &offset in offsets {
            let end = (start + offset).min(cpts.len());
            let hay = &collapsed[byte_at[start]..byte_at[end]];
            let base = byte_at[start];
            let mut cursor = start;
            let mut pos = 0usize;
            // Mirrors std::regex_iterator: gaps between matches are pieces too.
            while pos <= hay.len() {
                let m = match self.re.find_from_pos(hay, pos) {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    // The backtrack limit was hit (not seen with the shipped
                    // patterns): keep the rest as one piece rather than fail.
                    Err(e) => {
                        tracing::warn!("pre-tokenizer regex gave up on a {}-byte piece: {e}", hay.len() - pos);
                        break;
                    }
                };
                let (ms, me) = (cpt_index(base + m.start()), cpt_index(base + m.end()));
                if ms > cursor {
                    out.push(ms - cursor);
                }
                if me > ms {
                    out.push(me - ms);
                }
                cursor = me.max(cursor);
                pos = if m.end() > m.start() { m.end() } else { next_char_boundary(hay, m.end()) };
            }
            if end > cursor {
                out.push(end - cursor);
            }
            start = end;
        }
        out
    }
}

fn next_char_boundary(s: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < s.len() && !s.is_char_boundary(j) {
        j += 1;
    }
    j
}

fn collapse_cpt(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    if c.is_whitespace() {
        return '\u{0B}';
    }
    if is_number(c) {
        COLLAPSED_NUMBER
    } else if is_letter(c) {
        COLLAPSED_LETTER
    } else {
        COLLAPSED_OTHER
    }
}

/// Rewrites `\p{L}` and `\p{N}` the way llama.cpp's `unicode_regex_split`
/// does (bracketed unless already inside a class). Other categories are not
/// needed by the supported pre-tokenizers and are refused.
fn collapse_pattern(pattern: &str) -> Result<String, String> {
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut inside = false;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'[' && (i == 0 || bytes[i - 1] != b'\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && b == b']' && bytes[i - 1] != b'\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if b == b'\\' && i + 3 < bytes.len() && bytes[i + 1] == b'p' && bytes[i + 2] == b'{' {
            if let Some(close) = pattern[i + 3..].find('}') {
                let name = &pattern[i + 3..i + 3 + close];
                let class = match name {
                    "L" => format!("{COLLAPSED_LETTER}A-Za-z"),
                    "N" => format!("{COLLAPSED_NUMBER}0-9"),
                    other => return Err(format!("pre-tokenizer pattern uses unsupported category \\p{{{other}}}")),
                };
                if inside {
                    out.push_str(&class);
                } else {
                    out.push('[');
                    out.push_str(&class);
                    out.push(']');
                }
                i += 3 + close + 1;
                continue;
            }
        }
        // Copy one whole UTF-8 character.
        let ch_len = pattern[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&pattern[i..i + ch_len]);
        i += ch_len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<'a>(pre: &str, text: &'a str) -> Vec<&'a str> {
        PreTokenizer::from_name(pre).expect("known pre").split(text)
    }

    #[test]
    fn categories_follow_unicode() {
        assert!(is_letter('a') && is_letter('é') && is_letter('デ') && is_letter('क'));
        assert!(!is_letter('1') && !is_letter(' ') && !is_letter('!') && !is_letter('\u{094D}'));
        assert!(is_number('7') && is_number('½') && is_number('²') && is_number('५'));
        assert!(!is_number('a'));
        assert!(flags('\u{3000}').whitespace && flags('\u{A0}').whitespace && !flags('\u{1C}').whitespace);
    }

    #[test]
    fn gpt2_splits_like_llama_cpp() {
        assert_eq!(words("gpt-2", "Hello world"), ["Hello", " world"]);
        assert_eq!(words("gpt-2", "Hello  world"), ["Hello", " ", " world"]);
        assert_eq!(words("gpt-2", "trailing   "), ["trailing", "   "]);
        assert_eq!(words("gpt-2", "don't 12 ab!!"), ["don", "'t", " 12", " ab", "!!"]);
        assert_eq!(words("gpt-2", " "), [" "]);
    }

    #[test]
    fn smollm_splits_digits_first() {
        assert_eq!(words("smollm", "abc 1234"), ["abc", " ", "1", "2", "3", "4"]);
    }

    #[test]
    fn qwen2_pattern_runs_on_collapsed_text() {
        assert_eq!(words("qwen2", "Hello world"), ["Hello", " world"]);
        assert_eq!(words("qwen2", "a 123"), ["a", " ", "1", "2", "3"]);
        assert_eq!(words("qwen2", "line one\n\nline"), ["line", " one", "\n\n", "line"]);
        assert_eq!(words("qwen2", "I'M here"), ["I", "'M", " here"]);
        assert_eq!(words("qwen2", "これは、テスト"), ["これは", "、テスト"]);
        assert_eq!(words("qwen2", "x   y"), ["x", "  ", " y"]);
    }

    #[test]
    fn unknown_pre_is_named() {
        let err = PreTokenizer::from_name("llama-bpe-next").unwrap_err();
        assert!(err.contains("`llama-bpe-next`"), "{err}");
    }

    #[test]
    fn split_covers_the_text() {
        let text = "emoji 👩\u{200d}👩 and 🇯🇵 ½ — «ok»\r\n\t 3.14";
        for pre in ["gpt-2", "smollm", "qwen2"] {
            assert_eq!(words(pre, text).concat(), text, "{pre}");
        }
    }
}
