//! `pii`: private data in a reply — email addresses, phone numbers, card
//! numbers (Luhn-checked, so a 16-digit order number is not a card), order
//! and account ids — which must never appear on a public channel. `%s` names
//! the kind found. No mechanical fix: the agent moves the talk to a DM.

use super::lint::LintContext;
use super::rule::{allow_fix, Check, FixKind, Hit, Segment, SpecError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    Card,
    OrderId,
    AccountId,
}

impl PiiKind {
    fn label(self) -> &'static str {
        match self {
            PiiKind::Email => "an email address",
            PiiKind::Phone => "a phone number",
            PiiKind::Card => "a card number",
            PiiKind::OrderId => "an order number",
            PiiKind::AccountId => "an account number",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PiiSpec {
    /// Which kinds to look for (default: all).
    #[serde(default = "all_kinds")]
    pub kinds: Vec<PiiKind>,
}

fn all_kinds() -> Vec<PiiKind> {
    vec![PiiKind::Email, PiiKind::Phone, PiiKind::Card, PiiKind::OrderId, PiiKind::AccountId]
}

#[derive(Debug)]
pub struct Pii {
    kinds: Vec<PiiKind>,
}

impl PiiSpec {
    pub fn compile(&self, fix: Option<FixKind>) -> Result<Box<dyn Check>, Vec<SpecError>> {
        allow_fix(fix, "pii", &[])?;
        if self.kinds.is_empty() {
            return Err(vec![SpecError::new("kinds", "expected at least one kind")]);
        }
        Ok(Box::new(Pii { kinds: self.kinds.clone() }))
    }
}

fn re(kind: PiiKind) -> &'static Regex {
    static RES: OnceLock<[Regex; 5]> = OnceLock::new();
    let all = RES.get_or_init(|| {
        let r = |s: &str| Regex::new(s).expect("static PII regex");
        [
            r(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"),
            // Area/trunk group of 2 to 5 digits: "07700 900123" (UK mobile), "(555) 123-4567".
            r(r"(?:\+\d{1,3}[\s.-]?)?\(?\d{2,5}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}(?-u:\b)"),
            r(r"(?-u:\b)(?:\d[ -]?){12,18}\d(?-u:\b)"),
            r(r"(?i)(?:(?-u:\b)order\s*(?:#|no\.?|number|id)?\s*:?\s*#?|注文番号\s*[:：]?\s*|ऑर्डर\s*(?:नंबर|संख्या)?\s*[:：]?\s*#?|#)[A-Z]{0,4}-?\d{5,}(?-u:\b)"),
            r(r"(?i)(?:(?-u:\b)(?:account|acct|a/c)\s*(?:#|no\.?|number|ending in)?\s*:?\s*|口座番号\s*[:：]?\s*|खाता\s*(?:संख्या|नंबर)\s*[:：]?\s*)[\d-]{4,}\d"),
        ]
    });
    &all[kind as usize]
}

fn luhn(digits: &[u32]) -> bool {
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = *d;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Every piece of private data of the given kinds in `text`, in text order:
/// cards before phones (a card number is not also a phone), no overlaps.
/// Shared by the `pii` rule, the drafting pipeline's echo check and log
/// redaction, so all three agree on what private data is.
pub fn find(text: &str, kinds: &[PiiKind]) -> Vec<(PiiKind, std::ops::Range<usize>)> {
    let mut taken: Vec<(PiiKind, std::ops::Range<usize>)> = Vec::new();
    let mut order = kinds.to_vec();
    order.sort_by_key(|k| match k {
        PiiKind::Card => 0,
        PiiKind::Email => 1,
        PiiKind::OrderId | PiiKind::AccountId => 2,
        PiiKind::Phone => 3,
    });
    order.dedup();
    for kind in order {
        for m in re(kind).find_iter(text) {
            let s = m.as_str();
            let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
            let ok = match kind {
                PiiKind::Card => (13..=19).contains(&digits.len()) && luhn(&digits),
                PiiKind::Phone => digits.len() >= 9 && digits.len() <= 15,
                _ => true,
            };
            let range = m.range();
            if ok && !taken.iter().any(|(_, t)| t.start < range.end && range.start < t.end) {
                taken.push((kind, range));
            }
        }
    }
    taken.sort_by_key(|(_, r)| r.start);
    taken
}

impl PiiKind {
    /// Short machine name (`email`, `phone`, `card`, `order_id`, `account_id`).
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Card => "card",
            PiiKind::OrderId => "order_id",
            PiiKind::AccountId => "account_id",
        }
    }

    /// What it is, for messages ("an email address").
    pub fn describe(self) -> &'static str {
        self.label()
    }
}

impl Check for Pii {
    fn check(&self, seg: Segment<'_>, _cx: &LintContext<'_>, out: &mut Vec<Hit>) {
        for (kind, r) in find(seg.text, &self.kinds) {
            out.push(Hit { range: seg.start + r.start..seg.start + r.end, args: vec![kind.label().to_string()], fix: None });
        }
    }
}
