//! `punctuation`: exclamation marks (at most `max`; none to an angry
//! customer), runs of repeated marks ("!!!", "?!?"), and ALL-CAPS words
//! (shouting; acronyms listed in `exceptions` pass). One mark per rule so each
//! rule has one message. `%s` is what was found. Fixes: an exclamation mark
//! past the limit is replaced by a full stop (`。` after Japanese, `।` after
//! Hindi), a run by its first mark, a shouted word by its lowercase form.

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    Exclamation,
    Repeated,
    AllCaps,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PunctuationSpec {
    pub mark: Mark,
    /// At most this many (exclamation marks, ALL-CAPS words). Default 0.
    #[serde(default)]
    pub max: u32,
    /// ALL-CAPS words that are fine (acronyms).
    #[serde(default)]
    pub exceptions: Vec<String>,
}

#[derive(Debug)]
pub struct Punctuation {
    mark: Mark,
    max: u32,
    exceptions: HashSet<String>,
    fix: bool,
}

impl PunctuationSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "punctuation", &[FixKind::Replace])?;
        Ok(Box::new(Punctuation {
            mark: self.mark,
            max: self.max,
            exceptions: self.exceptions.iter().cloned().collect(),
            fix: fix.is_some(),
        }))
    }
}

fn repeated_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[!?！？]{2,}").expect("static regex"))
}
fn caps_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\b\p{Lu}{3,}\b").expect("static regex"))
}

fn full_stop_for(before: &str) -> &'static str {
    match before.trim_end().chars().last().map(|c| c as u32) {
        Some(0x3040..=0x30FF | 0x4E00..=0x9FFF | 0x3400..=0x4DBF) => "。",
        Some(0x0900..=0x097F) => "।",
        _ => ".",
    }
}

impl Check for Punctuation {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        match self.mark {
            Mark::Exclamation => {
                let mut n = 0;
                let mut prev_end = usize::MAX;
                for (i, c) in seg.text.char_indices() {
                    if c != '!' && c != '！' {
                        continue;
                    }
                    // A run ("!!") counts once here; `repeated` handles runs.
                    let contiguous = prev_end == i;
                    prev_end = i + c.len_utf8();
                    if contiguous {
                        continue;
                    }
                    n += 1;
                    if n > self.max {
                        let mut end = i + c.len_utf8();
                        for d in seg.text[end..].chars() {
                            if d == '!' || d == '！' {
                                end += d.len_utf8();
                            } else {
                                break;
                            }
                        }
                        let range = seg.start + i..seg.start + end;
                        let stop = full_stop_for(&seg.text[..i]);
                        let fix = self.fix.then(|| Fix::Replace { start: range.start, end: range.end, with: stop.to_string() });
                        out.push(Hit { range, args: vec![seg.text[i..end].to_string()], fix });
                        prev_end = end;
                    }
                }
            }
            Mark::Repeated => {
                for m in repeated_re().find_iter(seg.text) {
                    let range = seg.start + m.start()..seg.start + m.end();
                    let first = m.as_str().chars().next().map(String::from).unwrap_or_default();
                    let fix = self.fix.then(|| Fix::Replace { start: range.start, end: range.end, with: first });
                    out.push(Hit { range, args: vec![m.as_str().to_string()], fix });
                }
            }
            Mark::AllCaps => {
                let mut n = 0;
                for m in caps_re().find_iter(seg.text) {
                    if self.exceptions.contains(m.as_str()) {
                        continue;
                    }
                    n += 1;
                    if n > self.max {
                        let range = seg.start + m.start()..seg.start + m.end();
                        let fix = self.fix.then(|| Fix::Replace { start: range.start, end: range.end, with: m.as_str().to_lowercase() });
                        out.push(Hit { range, args: vec![m.as_str().to_string()], fix });
                    }
                }
            }
        }
    }
}
