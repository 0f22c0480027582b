//! `language`: the reply is in the customer's language. Scripts decide first
//! (Japanese needs kana or kanji, Hindi needs Devanagari: whatlang mistakes
//! short kanji-only text for Chinese and short Hindi for Marathi), then
//! whatlang decides between languages that share a script, only when it is
//! confident. URLs, @handles and `{{placeholders}}` are ignored; replies too
//! short to judge pass. `%s`: the language found, the one expected.

use super::lint::LintContext;
use super::rule::{allow_fix, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LanguageSpec {
    /// Expected language (ISO 639-1). Default: the request's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Replies with fewer letters are not judged.
    #[serde(default = "default_min_letters")]
    pub min_letters: u32,
}

fn default_min_letters() -> u32 {
    12
}

#[derive(Debug)]
pub struct Language {
    expected: Option<String>,
    min_letters: u32,
}

/// ISO 639-1 code → whatlang language, for the languages we name.
pub fn to_whatlang(code: &str) -> Option<whatlang::Lang> {
    use whatlang::Lang::*;
    Some(match code {
        "en" => Eng, "ja" => Jpn, "hi" => Hin, "es" => Spa, "fr" => Fra, "de" => Deu,
        "pt" => Por, "it" => Ita, "nl" => Nld, "zh" => Cmn, "ko" => Kor, "ru" => Rus,
        "ar" => Ara, "tr" => Tur, "pl" => Pol, "sv" => Swe, "id" => Ind, "vi" => Vie,
        "th" => Tha, "bn" => Ben, "mr" => Mar, "ta" => Tam, "ur" => Urd, "uk" => Ukr,
        _ => return None,
    })
}

fn name_of(code: &str) -> String {
    to_whatlang(code).map(|l| l.eng_name().to_string()).unwrap_or_else(|| code.to_string())
}

impl LanguageSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "language", &[])?;
        if let Some(e) = &self.expected {
            if to_whatlang(e).is_none() {
                return Err(vec![SpecError::new("expected", format!("expected an ISO 639-1 code such as en, ja, hi; found `{e}`"))]);
            }
        }
        Ok(Box::new(Language { expected: self.expected.clone(), min_letters: self.min_letters }))
    }
}

fn noise() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)https?://\S+|www\.\S+|[@#][\w.]+|\{\{[^}]*\}\}|\S+@\S+").expect("static regex"))
}

#[derive(Default)]
struct Scripts {
    letters: usize,
    kana: usize,
    han: usize,
    devanagari: usize,
    latin: usize,
}

fn scripts(s: &str) -> Scripts {
    let mut sc = Scripts::default();
    for c in s.chars().filter(|c| c.is_alphabetic()) {
        sc.letters += 1;
        match c as u32 {
            0x3040..=0x30FF | 0xFF66..=0xFF9F => sc.kana += 1,
            0x4E00..=0x9FFF | 0x3400..=0x4DBF => sc.han += 1,
            0x0900..=0x097F => sc.devanagari += 1,
            _ if c.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(&c) => sc.latin += 1,
            _ => {}
        }
    }
    sc
}

/// Detect the language of a reply (ISO 639-1 when known, else whatlang's code).
pub fn detect(text: &str) -> Option<String> {
    let clean = noise().replace_all(text, " ");
    let sc = scripts(&clean);
    if sc.letters == 0 {
        return None;
    }
    if sc.kana * 10 >= sc.letters || (sc.kana > 0 && (sc.kana + sc.han) * 2 >= sc.letters) {
        return Some("ja".into());
    }
    if sc.devanagari * 2 >= sc.letters {
        // Hindi vs Marathi/Nepali: trust whatlang only when it is sure.
        let info = whatlang::detect(&clean);
        return Some(match info {
            Some(i) if i.is_reliable() && i.lang() == whatlang::Lang::Mar => "mr".into(),
            Some(i) if i.is_reliable() && i.lang() == whatlang::Lang::Nep => "ne".into(),
            _ => "hi".into(),
        });
    }
    let info = whatlang::detect(&clean)?;
    let code = match info.lang() {
        whatlang::Lang::Eng => "en", whatlang::Lang::Jpn => "ja", whatlang::Lang::Hin => "hi",
        whatlang::Lang::Spa => "es", whatlang::Lang::Fra => "fr", whatlang::Lang::Deu => "de",
        whatlang::Lang::Por => "pt", whatlang::Lang::Ita => "it", whatlang::Lang::Nld => "nl",
        whatlang::Lang::Cmn => "zh", whatlang::Lang::Kor => "ko", whatlang::Lang::Rus => "ru",
        l => l.code(),
    };
    Some(code.to_string())
}

impl Check for Language {
    fn check(&self, seg: Segment<'_>, cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        let expected = self.expected.as_deref().unwrap_or(cx.language);
        let clean = noise().replace_all(seg.text, " ");
        let sc = scripts(&clean);
        let unspaced = sc.kana + sc.han;
        // Japanese packs meaning densely: count a kana/kanji as three letters.
        if (sc.letters + 2 * unspaced) < self.min_letters as usize {
            return;
        }
        let found: Option<String> = match expected {
            "ja" => (!(sc.kana * 10 >= sc.letters || (sc.kana > 0 && unspaced * 2 >= sc.letters))).then(|| detect(seg.text)).flatten(),
            "hi" => (sc.devanagari * 2 < sc.letters).then(|| detect(seg.text)).flatten(),
            _ => {
                if sc.latin * 2 < sc.letters {
                    detect(seg.text)
                } else {
                    match whatlang::detect(&clean) {
                        Some(i) if i.is_reliable() && i.confidence() >= 0.9 => {
                            let code = detect(seg.text).unwrap_or_default();
                            // Latin-script languages that whatlang confuses on short text.
                            let lang = to_whatlang(expected);
                            (Some(i.lang()) != lang && code != expected).then_some(code)
                        }
                        _ => None,
                    }
                }
            }
        };
        if let Some(found) = found.filter(|f| f != expected) {
            out.push(Hit { range: seg.start..seg.start + seg.text.len(), args: vec![name_of(&found), name_of(expected)], fix: None });
        }
    }
}
