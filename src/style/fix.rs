//! Fix actions and applying them.
//!
//! A violation may carry one mechanical fix: replace a span, remove a span,
//! append text, or truncate at a sentence boundary. `StyleBook::fix` lints,
//! applies one round of fixes, and lints again until nothing fixable is left
//! (at most `MAX_ROUNDS`), so fixes that interact — a sign-off appended to a
//! tweet that then runs over 280 — settle, and fixing a fixed text changes
//! nothing. Within a round, span fixes that overlap an earlier one wait for
//! the next round; truncation runs alone in a round, after the text has
//! stopped changing otherwise, because its offsets would be stale.

use super::length::LengthUnit;
use super::text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Lint → fix rounds before giving up.
pub const MAX_ROUNDS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Fix {
    /// Replace bytes `start..end` with `with` (an insertion when empty).
    Replace { start: usize, end: usize, with: String },
    /// Remove bytes `start..end` (and a space left doubled).
    Remove { start: usize, end: usize },
    /// Append `text` after `separator`.
    Append { text: String, separator: String },
    /// Drop sentences from the end of `start..keep_from` until `start..end`
    /// measures at most `max`; `keep_from..end` (the sign-off) is kept.
    Truncate { start: usize, end: usize, unit: LengthUnit, max: u32, keep_from: usize },
}

/// A fix that was applied, and by which rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedFix {
    pub check: String,
    pub fix: Fix,
}

/// Apply one round of fixes to `text`. Returns the new text and the fixes
/// that were applied (others are left for the next round).
pub fn apply_round(text: &str, fixes: &[(String, Fix)]) -> (String, Vec<AppliedFix>) {
    let mut spans: Vec<(usize, usize, Option<&str>, &String, &Fix)> = Vec::new();
    let mut appends: Vec<(&String, &Fix)> = Vec::new();
    let mut truncs: Vec<(&String, &Fix)> = Vec::new();
    for (check, f) in fixes {
        match f {
            Fix::Replace { start, end, with } => spans.push((*start, *end, Some(with.as_str()), check, f)),
            Fix::Remove { start, end } => spans.push((*start, *end, None, check, f)),
            Fix::Append { .. } => appends.push((check, f)),
            Fix::Truncate { .. } => truncs.push((check, f)),
        }
    }
    let mut applied = Vec::new();
    if spans.is_empty() && appends.is_empty() {
        if let Some((check, f)) = truncs.first() {
            if let Fix::Truncate { start, end, unit, max, keep_from } = f {
                let out = truncate(text, *start, *end, *unit, *max, *keep_from);
                if out != text {
                    applied.push(AppliedFix { check: (*check).clone(), fix: (*f).clone() });
                }
                return (out, applied);
            }
        }
        return (text.to_string(), applied);
    }
    // Span fixes: sorted, non-overlapping (an insertion at the same point as
    // another edit waits), applied back to front.
    spans.sort_by_key(|s| (s.0, s.1));
    let mut chosen: Vec<&(usize, usize, Option<&str>, &String, &Fix)> = Vec::new();
    let mut last_end: Option<usize> = None;
    for s in &spans {
        let valid = s.0 <= s.1 && s.1 <= text.len() && text.is_char_boundary(s.0) && text.is_char_boundary(s.1);
        if !valid {
            continue;
        }
        if last_end.is_some_and(|e| s.0 < e || (s.0 == e && s.0 == s.1)) {
            continue;
        }
        last_end = Some(s.1);
        chosen.push(s);
    }
    let mut out = text.to_string();
    for (start, end, with, check, f) in chosen.iter().rev().map(|s| (s.0, s.1, s.2, s.3, s.4)) {
        match with {
            Some(w) => out.replace_range(start..end, w),
            None => {
                let (a, b) = removal_range(&out, start, end);
                out.replace_range(a..b, "");
            }
        }
        applied.push(AppliedFix { check: check.clone(), fix: f.clone() });
    }
    applied.reverse();
    let mut seen: Vec<&str> = Vec::new();
    for (check, f) in appends {
        if let Fix::Append { text: t, separator } = f {
            if seen.contains(&t.as_str()) || out.trim_end().ends_with(t.trim()) {
                continue;
            }
            seen.push(t);
            let trimmed_len = out.trim_end().len();
            out.truncate(trimmed_len);
            if !out.is_empty() {
                out.push_str(separator);
            }
            out.push_str(t);
            applied.push(AppliedFix { check: check.clone(), fix: f.clone() });
        }
    }
    (out, applied)
}

/// Widen a removal so it does not leave a doubled or dangling space.
fn removal_range(s: &str, start: usize, end: usize) -> (usize, usize) {
    let before = s[..start].chars().next_back();
    let after = s[end..].chars().next();
    match (before, after) {
        (Some(' '), Some(' ')) => (start, end + 1),
        (Some(' '), None | Some('\n')) => (start - 1, end),
        (Some(' '), Some(c)) if ".,!?。、！？".contains(c) => (start - 1, end),
        (None, Some(' ')) => (start, end + 1),
        (Some('\n'), Some(' ')) => (start, end + 1),
        _ => (start, end),
    }
}

/// Cut `start..keep_from` back to whole sentences so that the segment
/// `start..end` (with the kept tail) measures at most `max`. When not even
/// one sentence fits, cut at a word (or grapheme) boundary and add "…".
pub fn truncate(text: &str, start: usize, end: usize, unit: LengthUnit, max: u32, keep_from: usize) -> String {
    let valid = start <= keep_from && keep_from <= end && end <= text.len() && [start, end, keep_from].iter().all(|b| text.is_char_boundary(*b));
    if !valid {
        return text.to_string();
    }
    let head = &text[..start];
    let body = &text[start..keep_from];
    let mut tail = &text[keep_from..end];
    let rest = &text[end..];
    let max = max as usize;
    // Keep whatever separated the body from the kept tail ("\n", "\n\n", " ").
    let gap = &body[body.trim_end().len()..];
    let sep = if gap.is_empty() { " " } else { gap };
    let join = |b: &str, tail: &str| join(b, tail, sep);
    let fits = |b: &str, tail: &str| -> bool { unit.measure(&join(b, tail)) <= max };
    if !tail.is_empty() && unit.measure(tail.trim()) > max {
        tail = ""; // the kept tail alone is too long: keep nothing
    }
    // Whole sentences first.
    let sents = text::sentences(body);
    for k in (0..sents.len()).rev() {
        let cut = &body[..sents[k].end];
        if fits(cut, tail) {
            return format!("{head}{}{rest}", join(cut, tail));
        }
    }
    // Then words within the first sentence, with an ellipsis.
    let first_end = sents.first().map_or(body.len(), |r| r.end);
    let first = &body[..first_end];
    let bounds: Vec<usize> = text::words(first).map(|(i, w)| i + w.len()).collect();
    for &b in bounds.iter().rev() {
        let cut = format!("{}…", first[..b].trim_end());
        if fits(&cut, tail) {
            return format!("{head}{}{rest}", join(&cut, tail));
        }
    }
    // Then graphemes (Japanese has no spaces to cut at).
    use unicode_segmentation::UnicodeSegmentation;
    let gs: Vec<usize> = first.grapheme_indices(true).map(|(i, g)| i + g.len()).collect();
    for &b in gs.iter().rev() {
        let cut = format!("{}…", first[..b].trim_end());
        if fits(&cut, tail) {
            return format!("{head}{}{rest}", join(&cut, tail));
        }
    }
    format!("{head}{}{rest}", if fits("", tail) { tail.trim().to_string() } else { String::new() })
}

fn join(body: &str, tail: &str, sep: &str) -> String {
    let body = body.trim_end();
    if tail.is_empty() {
        return body.to_string();
    }
    if body.is_empty() {
        return tail.trim().to_string();
    }
    format!("{body}{sep}{}", tail.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_sentence_keeping_sign_off() {
        let t = "One two. Three four five. Six seven.\n– Mia";
        let keep = t.find('–').unwrap();
        let out = truncate(t, 0, t.len(), LengthUnit::Words, 6, keep);
        assert_eq!(out, "One two. Three four five.\n– Mia");
    }

    #[test]
    fn truncates_inside_a_long_first_sentence() {
        let t = "こんにちは、ご連絡ありがとうございます";
        let out = truncate(t, 0, t.len(), LengthUnit::Graphemes, 6, t.len());
        assert_eq!(out, "こんにちは…");
    }

    #[test]
    fn removal_does_not_leave_double_spaces() {
        let t = "Great news 🎉 for you";
        let s = t.find('🎉').unwrap();
        let (out, _) = apply_round(t, &[("x".into(), Fix::Remove { start: s, end: s + '🎉'.len_utf8() })]);
        assert_eq!(out, "Great news for you");
    }
}
