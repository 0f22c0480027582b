//! What a client sends for a draft or a rewrite, the limits on it, and the
//! one function that turns it into a [`ValidDraftRequest`].
//!
//! Validation needs only the style book (brands, channels, moods), never the
//! model, so the server rejects bad input in the handler, before the request
//! waits in the model's queue. Every error names the field, the limit and the
//! value given.

use super::DraftError;
use crate::style::lint::{Fact, StyleBook};
use serde::{Deserialize, Serialize};

/// Limits on a request; the server's config can tighten or loosen them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest customer message (or agent draft to rewrite), in characters.
    pub max_message_chars: usize,
    /// Most earlier turns.
    pub max_history_turns: usize,
    /// Longest earlier turn, in characters.
    pub max_turn_chars: usize,
    /// Most facts.
    pub max_facts: usize,
    /// Longest fact text, in characters.
    pub max_fact_chars: usize,
    /// Most alternatives (`n`).
    pub max_n: usize,
    /// Largest `max_tokens`.
    pub max_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_chars: 4000,
            max_history_turns: 20,
            max_turn_chars: 4000,
            max_facts: 10,
            max_fact_chars: 500,
            max_n: 8,
            max_tokens: 512,
        }
    }
}

/// An earlier turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// `customer` or `agent`.
    pub role: String,
    pub text: String,
    /// The channel it came through, when different from the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// What is known about the customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Known facts about the customer ("premium since 2021").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<String>,
}

/// A request for drafts, as a client sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    pub brand: String,
    pub channel: String,
    /// The customer's message.
    pub message: String,
    /// One of the seven moods; detected when absent.
    #[serde(default)]
    pub mood: Option<String>,
    /// ISO 639-1 code of the reply; the customer's language when absent.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub history: Vec<Turn>,
    #[serde(default)]
    pub customer: Option<Customer>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub facts: Vec<Fact>,
    /// delivery_delay, refund, outage, account_access, product_question, … (picks the fallback).
    #[serde(default)]
    pub intent: Option<String>,
    /// Alternatives, 1..=8 (default 1).
    #[serde(default)]
    pub n: Option<usize>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Same seed, same request → same drafts. Random when absent.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Server-Sent Events instead of one JSON answer.
    #[serde(default)]
    pub stream: bool,
}

/// An agent's own draft to rewrite into the brand's voice.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteRequest {
    pub brand: String,
    pub channel: String,
    /// The agent's draft.
    pub draft: String,
    /// The customer's message it answers, if any (used for mood and language).
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub mood: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub facts: Vec<Fact>,
    #[serde(default)]
    pub n: Option<usize>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: bool,
}

/// Reply to the customer, or rewrite an agent's draft.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    Reply,
    Rewrite { draft: String },
}

/// A request whose every field is within limits and whose brand, channel,
/// mood and language exist. Only [`validate`] and [`validate_rewrite`] make one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidDraftRequest {
    pub brand: String,
    pub channel: String,
    pub message: String,
    pub mode: Mode,
    pub mood: Option<String>,
    pub language: Option<String>,
    pub history: Vec<Turn>,
    pub customer: Customer,
    pub facts: Vec<Fact>,
    pub intent: Option<String>,
    pub n: usize,
    pub max_tokens: usize,
    pub temperature: f32,
    pub seed: u64,
    pub stream: bool,
}

pub const DEFAULT_MAX_TOKENS: usize = 120;
pub const DEFAULT_TEMPERATURE: f32 = 0.7;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> DraftError {
    DraftError::Invalid { field: field.into(), message: message.into() }
}

fn check_text(field: &str, text: &str, limit: usize, required: bool) -> Result<(), DraftError> {
    let n = text.chars().count();
    if required && text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if n > limit {
        return Err(invalid(field, format!("at most {limit} characters, got {n}")));
    }
    Ok(())
}

fn one_of(field: &str, value: &str, known: impl Iterator<Item = String>) -> Result<(), DraftError> {
    let known: Vec<String> = known.collect();
    if known.iter().any(|k| k == value) {
        Ok(())
    } else {
        Err(invalid(field, format!("unknown value `{value}`; expected one of: {}", known.join(", "))))
    }
}

/// Checks a draft request against the style book and the limits.
pub fn validate(book: &StyleBook, limits: &Limits, req: DraftRequest) -> Result<ValidDraftRequest, DraftError> {
    check_text("message", &req.message, limits.max_message_chars, true)?;
    if req.history.len() > limits.max_history_turns {
        return Err(invalid("history", format!("at most {} turns, got {}", limits.max_history_turns, req.history.len())));
    }
    for (i, t) in req.history.iter().enumerate() {
        one_of(&format!("history[{i}].role"), &t.role, ["customer", "agent"].into_iter().map(String::from))?;
        check_text(&format!("history[{i}].text"), &t.text, limits.max_turn_chars, false)?;
        if let Some(c) = &t.channel {
            one_of(&format!("history[{i}].channel"), c, book.channels.channels.keys().cloned())?;
        }
    }
    let common = validate_common(book, limits, Common {
        brand: req.brand,
        channel: req.channel,
        mood: req.mood,
        language: req.language,
        facts: req.facts,
        n: req.n,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
    })?;
    if let Some(intent) = &req.intent {
        let brand = &book.brands[&common.brand];
        one_of("intent", intent, brand.guide.fallbacks.keys().cloned())?;
    }
    let customer = req.customer.unwrap_or_default();
    if let Some(name) = &customer.name {
        check_text("customer.name", name, 100, false)?;
    }
    if customer.facts.len() > limits.max_facts {
        return Err(invalid("customer.facts", format!("at most {} facts, got {}", limits.max_facts, customer.facts.len())));
    }
    for (i, f) in customer.facts.iter().enumerate() {
        check_text(&format!("customer.facts[{i}]"), f, limits.max_fact_chars, false)?;
    }
    Ok(ValidDraftRequest {
        brand: common.brand,
        channel: common.channel,
        message: req.message,
        mode: Mode::Reply,
        mood: common.mood,
        language: common.language,
        history: req.history,
        customer,
        facts: common.facts,
        intent: req.intent,
        n: common.n,
        max_tokens: common.max_tokens,
        temperature: common.temperature,
        seed: req.seed.unwrap_or_else(rand::random),
        stream: req.stream,
    })
}

/// Checks a rewrite request; the result runs through the same pipeline.
pub fn validate_rewrite(book: &StyleBook, limits: &Limits, req: RewriteRequest) -> Result<ValidDraftRequest, DraftError> {
    check_text("draft", &req.draft, limits.max_message_chars, true)?;
    if let Some(m) = &req.message {
        check_text("message", m, limits.max_message_chars, false)?;
    }
    let common = validate_common(book, limits, Common {
        brand: req.brand,
        channel: req.channel,
        mood: req.mood,
        language: req.language,
        facts: req.facts,
        n: req.n,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
    })?;
    let message = req.message.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| req.draft.clone());
    Ok(ValidDraftRequest {
        brand: common.brand,
        channel: common.channel,
        message,
        mode: Mode::Rewrite { draft: req.draft },
        mood: common.mood,
        language: common.language,
        history: Vec::new(),
        customer: Customer::default(),
        facts: common.facts,
        intent: None,
        n: common.n,
        max_tokens: common.max_tokens,
        temperature: common.temperature,
        seed: req.seed.unwrap_or_else(rand::random),
        stream: req.stream,
    })
}

struct Common {
    brand: String,
    channel: String,
    mood: Option<String>,
    language: Option<String>,
    facts: Vec<Fact>,
    n: Option<usize>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
}

/// `Common` after checking, with the defaults filled in.
struct Checked {
    brand: String,
    channel: String,
    mood: Option<String>,
    language: Option<String>,
    facts: Vec<Fact>,
    n: usize,
    max_tokens: usize,
    temperature: f32,
}

fn validate_common(book: &StyleBook, limits: &Limits, c: Common) -> Result<Checked, DraftError> {
    one_of("brand", &c.brand, book.brands.keys().cloned())?;
    one_of("channel", &c.channel, book.channels.channels.keys().cloned())?;
    if let Some(m) = &c.mood {
        one_of("mood", m, book.moods.moods.keys().cloned())?;
    }
    if let Some(l) = &c.language {
        one_of("language", l, book.brands[&c.brand].guide.languages.iter().cloned())?;
    }
    if c.facts.len() > limits.max_facts {
        return Err(invalid("facts", format!("at most {} facts, got {}", limits.max_facts, c.facts.len())));
    }
    for (i, f) in c.facts.iter().enumerate() {
        check_text(&format!("facts[{i}].text"), &f.text, limits.max_fact_chars, true)?;
        if let Some(u) = &f.url {
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.chars().any(char::is_whitespace) || u.len() > 2000 {
                return Err(invalid(format!("facts[{i}].url"), format!("must be an http(s) URL without spaces, at most 2000 bytes, got `{}`", u.chars().take(80).collect::<String>())));
            }
        }
    }
    let n = c.n.unwrap_or(1);
    if n == 0 || n > limits.max_n {
        return Err(invalid("n", format!("must be between 1 and {}, got {n}", limits.max_n)));
    }
    // The default never exceeds a server's tighter `limits.max_tokens`.
    let max_tokens = c.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS.min(limits.max_tokens));
    if max_tokens == 0 || max_tokens > limits.max_tokens {
        return Err(invalid("max_tokens", format!("must be between 1 and {}, got {max_tokens}", limits.max_tokens)));
    }
    let temperature = c.temperature.unwrap_or(DEFAULT_TEMPERATURE);
    if !(0.0..=2.0).contains(&temperature) || temperature.is_nan() {
        return Err(invalid("temperature", format!("must be between 0 and 2, got {temperature}")));
    }
    Ok(Checked { brand: c.brand, channel: c.channel, mood: c.mood, language: c.language, facts: c.facts, n, max_tokens, temperature })
}
