//! Unicode-aware measuring and splitting of a reply: sentences, words,
//! graphemes, lines, URLs, emoji, Twitter's weighted length and SMS segments.
//!
//! Everything the rules count goes through here so that every rule counts the
//! same way. Sentences and words come from `unicode-segmentation` (UAX #29),
//! which knows `。` and `।` as sentence terminators, so Japanese and Hindi
//! split correctly; Japanese has no spaces, so "words" are only used for
//! spaced scripts and Japanese is measured in graphemes. Three things are
//! hand-written because no well-kept crate covers them: Twitter's weighted
//! length (the published twitter-text v3 configuration: code points in four
//! Latin/punctuation ranges weigh 1, everything else 2, an emoji sequence 2,
//! a URL 23), GSM-7 SMS segmentation (the 3GPP TS 23.038 default alphabet and
//! its extension table), and emoji detection (Emoji_Presentation ranges from
//! Unicode's emoji-data plus VS16/keycap/ZWJ sequences).

use regex::Regex;
use std::ops::Range;
use std::sync::OnceLock;
use unicode_segmentation::UnicodeSegmentation;

/// A text prepared once per lint: sentence ranges, line starts, URL ranges.
#[derive(Debug, Clone)]
pub struct TextIndex<'a> {
    pub text: &'a str,
    /// Byte ranges of sentences, trimmed of surrounding whitespace, non-empty.
    pub sentences: Vec<Range<usize>>,
    line_starts: Vec<usize>,
    /// Byte ranges of URLs.
    pub urls: Vec<Range<usize>>,
}

impl<'a> TextIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        TextIndex {
            text,
            sentences: sentences(text),
            line_starts,
            urls: urls(text),
        }
    }

    /// 1-based line and column (column in Unicode scalar values) of a byte offset.
    pub fn line_col(&self, byte: usize) -> (usize, usize) {
        let byte = byte.min(self.text.len());
        let line = match self.line_starts.binary_search(&byte) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.text.get(start..byte).map_or(0, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Sentence byte ranges (UAX #29), trimmed, empty ones dropped. A line break
/// also ends a sentence, so a sign-off on its own line is its own sentence.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for (start, s) in text.split_sentence_bound_indices() {
        let lead = s.len() - s.trim_start().len();
        let trimmed = s.trim();
        if trimmed.is_empty() {
            continue;
        }
        let b = start + lead;
        out.push(b..b + trimmed.len());
    }
    out
}

/// Word byte ranges: UAX #29 word segments that contain a letter or digit.
/// For Japanese each ideograph/kana run segment counts as a word, which is
/// only used for repetition; lengths in Japanese are measured in graphemes.
pub fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_word_bound_indices()
        .filter(|(_, w)| w.chars().any(|c| c.is_alphanumeric()))
}

pub fn word_count(text: &str) -> usize {
    words(text).count()
}

pub fn grapheme_count(text: &str) -> usize {
    text.graphemes(true).count()
}

/// True for characters of scripts written without spaces between words.
pub fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // hiragana, katakana
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF // CJK ext A
        | 0x4E00..=0x9FFF // CJK unified
        | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F // half-width katakana
        | 0x0E00..=0x0E7F // Thai
        | 0x20000..=0x2FFFF)
}

/// What counts as a URL: http(s) and www links, and bare domains on common
/// TLDs. ASCII word boundaries, so a URL glued to Japanese text is found.
pub const URL_PATTERN: &str = r"(?i)(?-u:\b)(?:https?://[\x21-\x7E]+|www\.[\x21-\x7E]+|[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|co|app|travel|bank|jp|in|uk|de|fm)(?-u:\b)(?:/[\x21-\x7E]*)?)";

fn url_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(URL_PATTERN).expect("static URL regex"))
}

/// URL byte ranges; trailing sentence punctuation is not part of a URL.
pub fn urls(text: &str) -> Vec<Range<usize>> {
    url_regex()
        .find_iter(text)
        .map(|m| {
            let s = m.as_str();
            let trimmed = s.trim_end_matches(['.', ',', '!', '?', ':', ';', '\'', '"', '…']);
            m.start()..m.start() + trimmed.len()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Is this grapheme cluster an emoji (as a reader would see one)?
pub fn is_emoji_grapheme(g: &str) -> bool {
    let mut chars = g.chars();
    let Some(first) = chars.next() else { return false };
    if g.contains('\u{20E3}') {
        return true; // keycap 1️⃣
    }
    if g.contains('\u{FE0F}') && !first.is_ascii_digit() && first != '#' && first != '*' {
        return true;
    }
    is_emoji_presentation(first)
}

fn is_emoji_presentation(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF
        | 0x231A | 0x231B | 0x23E9..=0x23EC | 0x23F0 | 0x23F3
        | 0x25FD | 0x25FE | 0x2614 | 0x2615 | 0x2648..=0x2653 | 0x267F | 0x2693
        | 0x26A1 | 0x26AA | 0x26AB | 0x26BD | 0x26BE | 0x26C4 | 0x26C5 | 0x26CE
        | 0x26D4 | 0x26EA | 0x26F2 | 0x26F3 | 0x26F5 | 0x26FA | 0x26FD | 0x2705
        | 0x270A | 0x270B | 0x2728 | 0x274C | 0x274E | 0x2753..=0x2755 | 0x2757
        | 0x2764 | 0x2795..=0x2797 | 0x27B0 | 0x27BF | 0x2B1B | 0x2B1C | 0x2B50
        | 0x2B55)
}

/// Byte ranges and text of the emoji in a text.
pub fn emoji(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.grapheme_indices(true).filter(|(_, g)| is_emoji_grapheme(g))
}

fn twitter_weight(c: char) -> usize {
    match c as u32 {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        _ => 2,
    }
}

/// Tweet length as Twitter counts it (twitter-text v3): a URL counts 23, an
/// emoji counts 2, CJK and other code points outside the Latin ranges count 2.
pub fn twitter_length(text: &str) -> usize {
    use unicode_normalization::UnicodeNormalization;
    let mut total = 0;
    let mut pos = 0;
    let add = |s: &str| -> usize {
        let norm: String = s.nfc().collect();
        norm.graphemes(true)
            .map(|g| {
                if is_emoji_grapheme(g) {
                    2
                } else {
                    g.chars().map(twitter_weight).sum()
                }
            })
            .sum()
    };
    for r in urls(text) {
        total += add(&text[pos..r.start]);
        total += 23;
        pos = r.end;
    }
    total += add(&text[pos..]);
    total
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

/// SMS encoding and size of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsInfo {
    pub gsm7: bool,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

/// SMS segments: one segment holds 160 GSM-7 septets or 70 UCS-2 units; a
/// concatenated message loses room to its header (153 / 67 per segment).
pub fn sms_info(text: &str) -> SmsInfo {
    let mut septets = 0;
    let mut gsm7 = true;
    for c in text.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(c) {
            septets += 2;
        } else {
            gsm7 = false;
            break;
        }
    }
    let (units, single, multi) = if gsm7 {
        (septets, 160, 153)
    } else {
        (text.encode_utf16().count(), 70, 67)
    };
    let segments = if units == 0 {
        0
    } else if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    SmsInfo { gsm7, units, segments }
}

/// Paragraphs: runs of text separated by blank lines.
pub fn paragraph_count(text: &str) -> usize {
    let mut n = 0;
    let mut in_par = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            in_par = false;
        } else if !in_par {
            in_par = true;
            n += 1;
        }
    }
    n
}

/// Count syllables of an English word (vowel groups, silent final e): the
/// classic heuristic readability formulas were calibrated with.
pub fn english_syllables(word: &str) -> usize {
    let w: Vec<char> = word.to_lowercase().chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if w.is_empty() {
        return 0;
    }
    if w.len() <= 3 {
        return 1;
    }
    let vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let mut count = 0;
    let mut prev = false;
    for &c in &w {
        let v = vowel(c);
        if v && !prev {
            count += 1;
        }
        prev = v;
    }
    let n = w.len();
    if w[n - 1] == 'e' && !(w[n - 2] == 'l' && !vowel(w[n - 3])) && count > 1 {
        count -= 1;
    }
    if n > 2 && w[n - 2] == 'e' && w[n - 1] == 'd' && !matches!(w[n - 3], 't' | 'd') && count > 1 {
        count -= 1;
    }
    count.max(1)
}

/// Does the text look like a spaced, Latin-script text (for readability)?
pub fn mostly_latin(text: &str) -> bool {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    letters > 0 && latin * 10 >= letters * 9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twitter_counts_urls_cjk_and_emoji() {
        assert_eq!(twitter_length("hello"), 5);
        assert_eq!(twitter_length("see https://example.com/a/very/long/path/indeed ok"), 4 + 23 + 3);
        assert_eq!(twitter_length("こんにちは"), 10);
        assert_eq!(twitter_length("🎵"), 2);
        assert_eq!(twitter_length("👩‍👩‍👧"), 2);
        assert_eq!(twitter_length("नमस्ते"), 6);
    }

    #[test]
    fn sms_segments_gsm_and_ucs2() {
        assert_eq!(sms_info(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_info(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_info(&"€".repeat(80)).units, 160);
        let s = sms_info("こんにちは");
        assert!(!s.gsm7);
        assert_eq!(s.units, 5);
        assert_eq!(sms_info(&"あ".repeat(71)).segments, 2);
    }

    #[test]
    fn japanese_and_hindi_sentences() {
        let ja = "ご不便をおかけしております。ただいま確認中です。";
        assert_eq!(sentences(ja).len(), 2);
        let hi = "असुविधा के लिए खेद है। हम जाँच कर रहे हैं।";
        assert_eq!(sentences(hi).len(), 2);
        let en = "Hi there! We're on it.\n– Mia";
        let s: Vec<&str> = sentences(en).into_iter().map(|r| &en[r]).collect();
        assert_eq!(s, vec!["Hi there!", "We're on it.", "– Mia"]);
    }

    #[test]
    fn line_and_column() {
        let t = TextIndex::new("ab\nこんに");
        assert_eq!(t.line_col(0), (1, 1));
        assert_eq!(t.line_col(3), (2, 1));
        assert_eq!(t.line_col(6), (2, 2));
    }

    #[test]
    fn emoji_detection() {
        let e: Vec<&str> = emoji("ok 🎵 ✓ ❤️ 1️⃣ 🇯🇵 #1").map(|(_, g)| g).collect();
        assert_eq!(e, vec!["🎵", "❤️", "1️⃣", "🇯🇵"]);
    }

    #[test]
    fn syllables() {
        assert_eq!(english_syllables("the"), 1);
        assert_eq!(english_syllables("playlist"), 2);
        assert_eq!(english_syllables("table"), 2);
        assert_eq!(english_syllables("refunded"), 3);
    }
}
