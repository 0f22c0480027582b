//! Language identification: whatlang, reported as ISO 639-1.
//!
//! whatlang is trigram-based and reports ISO 639-3; replies and style guides
//! speak ISO 639-1, so the code is mapped here. Two corrections matter for
//! customer messages: any kana means Japanese (whatlang can call short
//! kanji-heavy Japanese Mandarin), and the script is reported too, because the
//! mood detector chooses its method by script (the embedding model reads
//! Latin-script English only).

use serde::{Deserialize, Serialize};

use super::signals::is_japanese;

/// The detected language of a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Language {
    /// ISO 639-1 code ("en", "ja", "hi"), or the ISO 639-3 code when there is
    /// no two-letter one, or "und" when nothing could be detected.
    pub code: String,
    /// 0..1, whatlang's confidence (1.0 for the kana rule).
    pub confidence: f32,
    /// Whether whatlang considers the guess reliable.
    pub reliable: bool,
    /// The dominant script ("Latin", "Devanagari", "Hiragana", …).
    pub script: String,
}

impl Language {
    /// Whether the text is in a script the English embedding model can read.
    pub fn is_latin(&self) -> bool {
        self.script == "Latin"
    }
}

/// Detects the language of `text`.
pub fn detect(text: &str) -> Language {
    let has_kana = text.chars().any(|c| matches!(c as u32, 0x3040..=0x30FF | 0xFF66..=0xFF9F));
    let script = whatlang::detect_script(text).map(|s| s.name().to_string()).unwrap_or_else(|| "Unknown".into());
    if has_kana {
        return Language { code: "ja".into(), confidence: 1.0, reliable: true, script };
    }
    match whatlang::detect(text) {
        Some(info) => {
            let mut code = iso639_1(info.lang().code()).to_string();
            // Kanji-only text with no kana: whatlang says Mandarin; keep it, but
            // mark ja-typical punctuation as Japanese.
            if code == "zh" && text.chars().any(|c| matches!(c, '。' | '、') ) && text.chars().any(is_japanese) && text.contains("です") {
                code = "ja".into();
            }
            Language { code, confidence: info.confidence() as f32, reliable: info.is_reliable(), script }
        }
        None => Language { code: "und".into(), confidence: 0.0, reliable: false, script },
    }
}

/// ISO 639-3 (as whatlang names them) → ISO 639-1 where one exists.
pub fn iso639_1(code3: &str) -> &str {
    match code3 {
        "epo" => "eo", "eng" => "en", "rus" => "ru", "cmn" => "zh", "spa" => "es", "por" => "pt",
        "ita" => "it", "ben" => "bn", "fra" => "fr", "deu" => "de", "ukr" => "uk", "kat" => "ka",
        "ara" => "ar", "hin" => "hi", "jpn" => "ja", "heb" => "he", "yid" => "yi", "pol" => "pl",
        "amh" => "am", "jav" => "jv", "kor" => "ko", "nob" => "nb", "dan" => "da", "swe" => "sv",
        "fin" => "fi", "tur" => "tr", "nld" => "nl", "hun" => "hu", "ces" => "cs", "ell" => "el",
        "bul" => "bg", "bel" => "be", "mar" => "mr", "kan" => "kn", "ron" => "ro", "slv" => "sl",
        "hrv" => "hr", "srp" => "sr", "mkd" => "mk", "lit" => "lt", "lav" => "lv", "est" => "et",
        "tam" => "ta", "vie" => "vi", "urd" => "ur", "tha" => "th", "guj" => "gu", "uzb" => "uz",
        "pan" => "pa", "aze" => "az", "ind" => "id", "tel" => "te", "pes" => "fa", "mal" => "ml",
        "ori" => "or", "mya" => "my", "nep" => "ne", "sin" => "si", "khm" => "km", "tuk" => "tk",
        "aka" => "ak", "zul" => "zu", "sna" => "sn", "afr" => "af", "lat" => "la", "slk" => "sk",
        "cat" => "ca", "tgl" => "tl", "hye" => "hy",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_japanese_hindi() {
        let en = detect("My order arrived broken and nobody has answered my emails for a week.");
        assert_eq!(en.code, "en");
        assert!(en.is_latin());
        let ja = detect("注文した商品がまだ届きません。いつ届きますか？");
        assert_eq!(ja.code, "ja");
        assert!(!ja.is_latin());
        let hi = detect("मेरा ऑर्डर अभी तक नहीं आया, कृपया जल्दी बताइए।");
        assert_eq!(hi.code, "hi");
        assert_eq!(hi.script, "Devanagari");
    }

    #[test]
    fn nothing_to_detect() {
        let l = detect("12345 !!!");
        assert!(l.confidence < 0.5 || l.code == "und", "{l:?}");
    }

    #[test]
    fn codes_map() {
        assert_eq!(iso639_1("eng"), "en");
        assert_eq!(iso639_1("hin"), "hi");
        assert_eq!(iso639_1("xyz"), "xyz");
    }
}
