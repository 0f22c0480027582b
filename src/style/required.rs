//! `required`: what a reply must contain — every phrase of a list (a bank's
//! disclosure), at least one of a list (an acknowledgement, within the first
//! sentences for an angry customer), a greeting at the start, a sign-off at
//! the end, and every fact and link the request supplied (the model must
//! never drop or invent them). Greetings and sign-offs are templates whose
//! `{{placeholders}}` match any short text. `%s` is what is missing.
//! Fixes: append a missing phrase, sign-off or link; put a placeholder-free
//! greeting in front (a replace of the empty span at 0).

use super::fix::Fix;
use super::lint::LintContext;
use super::rule::{allow_fix, compile_alternation, Check, CompileContext, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequiredSpec {
    /// Every one of these must appear verbatim (case and spacing aside).
    #[serde(default)]
    pub phrases: Vec<String>,
    /// At least one of these must appear.
    #[serde(default)]
    pub any_of: Vec<String>,
    /// With `any_of`: it must appear within the first N sentences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_first_sentences: Option<u32>,
    /// The reply must start with one of these greeting templates.
    #[serde(default)]
    pub greeting: Vec<String>,
    /// The reply must end with one of these sign-off templates.
    #[serde(default)]
    pub sign_off: Vec<String>,
    /// Every fact text and link from the request must appear.
    #[serde(default)]
    pub facts: bool,
}

#[derive(Debug)]
enum Mode {
    Phrases(Vec<(Regex, String)>, Vec<Regex>),
    AnyOf(Regex, Option<u32>, String),
    Greeting(Vec<Regex>, Option<String>),
    SignOff(Vec<Regex>, Option<String>),
    Facts,
}

#[derive(Debug)]
pub struct Required {
    mode: Mode,
    fix: bool,
}

/// A template such as "Hi {{name}}," as a regex; placeholders match 1–40
/// characters on one line. Whitespace matches any run of whitespace.
pub fn template_regex(t: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t.trim();
    while let Some(i) = rest.find("{{") {
        out.push_str(&ws_escape(&rest[..i]));
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!("unclosed `{{{{` in `{t}`"));
        };
        let name = after[..j].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("expected a placeholder name of letters, digits and _, found `{{{{{}}}}}`", &after[..j]));
        }
        out.push_str(r"[^\n]{1,40}?");
        rest = &after[j + 2..];
    }
    if rest.contains("}}") {
        return Err(format!("`}}}}` without `{{{{` in `{t}`"));
    }
    out.push_str(&ws_escape(rest));
    Ok(out)
}

fn ws_escape(s: &str) -> String {
    s.split_whitespace().map(regex::escape).collect::<Vec<_>>().join(r"\s+")
        + if s.ends_with(char::is_whitespace) && !s.trim().is_empty() { r"\s*" } else { "" }
}

fn templates(list: &[String], key: &str, anchor_start: bool) -> Result<(Vec<Regex>, Option<String>), Vec<SpecError>> {
    let mut res = Vec::new();
    let mut errors = Vec::new();
    for (i, t) in list.iter().enumerate() {
        match template_regex(t) {
            Ok(p) => {
                let p = if anchor_start { format!(r"^\s*{p}") } else { format!(r"{p}\s*$") };
                match regex::RegexBuilder::new(&p).case_insensitive(true).build() {
                    Ok(r) => res.push(r),
                    Err(e) => errors.push(SpecError::new(format!("{key}[{i}]"), e.to_string())),
                }
            }
            Err(e) => errors.push(SpecError::new(format!("{key}[{i}]"), e)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let fixed = list.iter().find(|t| !t.contains("{{")).cloned();
    Ok((res, fixed))
}

impl RequiredSpec {
    pub fn compile(&self, fix: Option<FixKind>, ctx: &CompileContext) -> Result<Box<dyn Check>, Vec<SpecError>> {
        let modes = [!self.phrases.is_empty(), !self.any_of.is_empty(), !self.greeting.is_empty(), !self.sign_off.is_empty(), self.facts];
        if modes.iter().filter(|m| **m).count() != 1 {
            return Err(vec![SpecError::new(
                "",
                "expected exactly one of `phrases`, `any_of`, `greeting`, `sign_off`, `facts: true`",
            )]);
        }
        let mode = if !self.phrases.is_empty() {
            allow_fix(fix, "required phrases", &[FixKind::Append])?;
            let mut v = Vec::new();
            for (i, p) in self.phrases.iter().enumerate() {
                let re = regex::RegexBuilder::new(&ws_escape(p))
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| vec![SpecError::new(format!("phrases[{i}]"), e.to_string())])?;
                v.push((re, p.clone()));
            }
            Mode::Phrases(v, ctx.sign_offs.clone())
        } else if !self.any_of.is_empty() {
            allow_fix(fix, "required any_of", &[])?;
            let re = compile_alternation(&self.any_of, &[], true)
                .map_err(|e| e.into_iter().map(|s| SpecError::new("any_of", s.message)).collect::<Vec<_>>())?;
            Mode::AnyOf(re, self.within_first_sentences, self.any_of.first().cloned().unwrap_or_default())
        } else if !self.greeting.is_empty() {
            allow_fix(fix, "required greeting", &[FixKind::Replace])?;
            let (r, f) = templates(&self.greeting, "greeting", true)?;
            Mode::Greeting(r, f)
        } else if !self.sign_off.is_empty() {
            allow_fix(fix, "required sign_off", &[FixKind::Append])?;
            let (r, f) = templates(&self.sign_off, "sign_off", false)?;
            Mode::SignOff(r, f)
        } else {
            allow_fix(fix, "required facts", &[FixKind::Append])?;
            Mode::Facts
        };
        Ok(Box::new(Required { mode, fix: fix.is_some() }))
    }
}

fn normalized(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl Check for Required {
    fn check(&self, seg: Segment<'_>, cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        let end = seg.start + seg.text.len();
        let sep = cx.separator;
        let at_end = |args: String, fix: Option<Fix>| Hit { range: end..end, args: vec![args], fix };
        match &self.mode {
            Mode::Phrases(list, sign_offs) => {
                // Insert before a sign-off that ends the reply, else append.
                let before = sign_offs.iter().filter_map(|r| r.find(seg.text)).map(|m| m.start() + (m.as_str().len() - m.as_str().trim_start().len())).filter(|s| *s > 0).min();
                for (re, p) in list {
                    if !re.is_match(seg.text) {
                        let fix = self.fix.then(|| match before {
                            Some(b) => Fix::Replace { start: seg.start + b, end: seg.start + b, with: format!("{p}{sep}") },
                            None => Fix::Append { text: p.clone(), separator: sep.to_string() },
                        });
                        out.push(at_end(p.clone(), fix));
                    }
                }
            }
            Mode::AnyOf(re, within, first) => {
                let hay = match within {
                    Some(n) => {
                        let ss: Vec<_> = seg.index.sentences.iter().filter(|r| r.start >= seg.start && r.end <= end).collect();
                        match ss.get((*n as usize).saturating_sub(1)).or(ss.last()) {
                            Some(last) => &seg.index.text[seg.start..last.end],
                            None => seg.text,
                        }
                    }
                    None => seg.text,
                };
                if !re.is_match(hay) {
                    out.push(Hit { range: seg.start..seg.start + hay.len(), args: vec![first.clone()], fix: None });
                }
            }
            Mode::Greeting(res, fixed) => {
                if !res.iter().any(|r| r.is_match(seg.text)) {
                    let fix = match (self.fix, fixed) {
                        (true, Some(g)) => Some(Fix::Replace { start: seg.start, end: seg.start, with: format!("{g}{sep}") }),
                        _ => None,
                    };
                    out.push(Hit { range: seg.start..seg.start, args: vec![fixed.clone().unwrap_or_else(|| "a greeting".into())], fix });
                }
            }
            Mode::SignOff(res, fixed) => {
                if !res.iter().any(|r| r.is_match(seg.text)) {
                    let fix = match (self.fix, fixed) {
                        (true, Some(s)) => Some(Fix::Append { text: s.clone(), separator: sep.to_string() }),
                        _ => None,
                    };
                    out.push(at_end(fixed.clone().unwrap_or_else(|| "a sign-off".into()), fix));
                }
            }
            Mode::Facts => {
                let norm = normalized(seg.text);
                for f in cx.facts {
                    if !f.text.trim().is_empty() && !norm.contains(&normalized(&f.text)) {
                        out.push(at_end(f.text.clone(), None));
                    }
                    if let Some(url) = f.url.as_deref().filter(|u| !u.trim().is_empty()) {
                        if !seg.text.contains(url.trim()) {
                            let fix = self.fix.then(|| Fix::Append { text: url.trim().to_string(), separator: " ".into() });
                            out.push(at_end(url.trim().to_string(), fix));
                        }
                    }
                }
            }
        }
    }
}
