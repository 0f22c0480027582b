//! The drafting pipeline: validate → understand → plan → generate → check and
//! repair → score and rank (see `shared/docs/DESIGN.md`).
//!
//! This module is the one entry point the CLI (`brandvoice draft`) and the
//! HTTP server (`/v1/drafts`, `/v1/rewrite`, `/v1/chat/completions`) share, so
//! both produce the same drafts for the same request and seed.
//!
//! Shape of the contract:
//! - [`DraftRequest`] is what a client sends (serde, unknown fields rejected);
//!   [`validate`] turns it into a [`ValidDraftRequest`] against the loaded
//!   [`StyleBook`] and the configured [`Limits`] without touching the model, so
//!   a server can reject bad input before a request ever waits in the queue.
//! - [`Drafter`] owns the model (through the engine's `Generator` and its
//!   prefix cache); it lives in the one task that owns the model and is
//!   called with `&mut self`. The mood detector and style book are shared
//!   (`Arc`) because triage and lint use them outside the model's task.
//! - [`Drafter::draft`] streams [`DraftEvent`]s through a callback (returning
//!   `false` cancels: a client that disconnects stops its generation) and
//!   returns the final, checked [`DraftResponse`].

pub mod request;

pub use request::{validate, validate_rewrite, Customer, DraftRequest, Limits, Mode, RewriteRequest, Turn, ValidDraftRequest};

use crate::engine::generate::{chat_prompt, GenerateOptions, Generator};
use crate::engine::model::Model;
use crate::engine::prefix_cache::PrefixCache;
use crate::engine::sampling::SamplingParams;
use crate::engine::template::{ChatMessage, ChatTemplate};
use crate::engine::EngineError;
use crate::mood::escalation::EscalationFlag;
use crate::mood::{MoodDetector, MoodError};
use crate::style::fix::AppliedFix;
use crate::style::guide::fill_placeholders;
use crate::style::lint::{LintRequest, RuleViolation, StyleBook};
use crate::style::rule::Level;
use crate::style::StyleError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Errors of the drafting layer. `is_client_error` tells the server which
/// ones are the caller's fault (4xx) and which are ours (5xx).
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// A field is out of range or malformed: names the field, the limit and the value.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Unknown brand / channel / mood / language, or a broken style file.
    #[error(transparent)]
    Style(#[from] StyleError),
    #[error(transparent)]
    Mood(#[from] MoodError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The caller went away (the event callback returned `false`).
    #[error("request cancelled")]
    Cancelled,
}

impl DraftError {
    pub fn is_client_error(&self) -> bool {
        match self {
            DraftError::Invalid { .. } => true,
            DraftError::Style(StyleError::Unknown { .. } | StyleError::Invalid { .. }) => true,
            DraftError::Mood(MoodError::Empty | MoodError::TooLong { .. } | MoodError::TooMuchHistory { .. }) => true,
            _ => false,
        }
    }
}

/// The tone-consistency score of one draft: 0–100 overall and per part
/// (`rules`, `mood_fit`, `channel_fit`, `voice`, …).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DraftScore {
    pub overall: f32,
    pub parts: BTreeMap<String, f32>,
}

/// One checked draft.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Draft {
    pub text: String,
    pub score: DraftScore,
    /// Violations left after repair (warnings and suggestions; an error-level
    /// one only if `fallback` is true and the fallback itself breaks a rule).
    #[schema(value_type = Vec<Object>)]
    pub violations: Vec<RuleViolation>,
    /// Mechanical fixes applied to the generated text.
    #[schema(value_type = Vec<Object>)]
    pub fixes: Vec<AppliedFix>,
    /// The brand's approved fallback, used because no candidate passed.
    pub fallback: bool,
    /// The seed this draft was sampled with (`None` for a fallback).
    pub seed: Option<u64>,
}

/// The mood the pipeline used, and whether it was detected or given.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MoodUsed {
    pub label: String,
    pub confidence: f32,
    pub detected: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftTimings {
    /// Time spent waiting in the server's queue (filled by the server).
    pub queued_ms: f64,
    /// Mood, language and escalation detection.
    pub understand_ms: f64,
    pub prefill_ms: f64,
    pub generate_ms: f64,
    /// Lint, repair and scoring.
    pub check_ms: f64,
    pub total_ms: f64,
    pub prompt_tokens: usize,
    /// Prompt tokens served by the prefix cache.
    pub cached_tokens: usize,
    pub cache_hit: bool,
    pub generated_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftResponse {
    /// Best first.
    pub drafts: Vec<Draft>,
    pub mood: MoodUsed,
    /// The language the drafts are written in.
    pub language: String,
    #[schema(value_type = Vec<Object>)]
    pub escalation: Vec<EscalationFlag>,
    pub seed: u64,
    pub model: String,
    pub timings: DraftTimings,
}

/// What the pipeline reports while it works.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DraftEvent<'a> {
    /// Understanding is done: the mood and language the drafts will use.
    Understood { mood: &'a MoodUsed, language: &'a str, escalation: &'a [EscalationFlag] },
    /// Raw generated text of candidate `candidate`, as it comes (before checks).
    Token { candidate: usize, text: &'a str },
}

/// Owns the model; one per model-owning task.
pub struct Drafter {
    gen: Generator,
    template: ChatTemplate,
    book: Arc<StyleBook>,
    mood: Arc<MoodDetector>,
    model_name: String,
}

impl Drafter {
    /// `cache_bytes` bounds the prefix KV cache.
    pub fn new(model: Model, model_name: impl Into<String>, book: Arc<StyleBook>, mood: Arc<MoodDetector>, cache_bytes: usize) -> Self {
        let Model { tokenizer, template, lm, .. } = model;
        let gen = Generator::new(lm, Arc::new(tokenizer), PrefixCache::new(cache_bytes));
        Drafter { gen, template, book, mood, model_name: model_name.into() }
    }

    pub fn book(&self) -> &Arc<StyleBook> {
        &self.book
    }

    pub fn mood_detector(&self) -> &Arc<MoodDetector> {
        &self.mood
    }

    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    pub fn generator(&self) -> &Generator {
        &self.gen
    }

    /// Runs the whole pipeline for one request.
    pub fn draft(&mut self, req: &ValidDraftRequest, on_event: &mut dyn FnMut(DraftEvent<'_>) -> bool) -> Result<DraftResponse, DraftError> {
        let start = Instant::now();
        // understand
        let history: Vec<&str> = req.history.iter().filter(|t| t.role == "customer").map(|t| t.text.as_str()).collect();
        let report = self.mood.analyze_with_history(&req.message, &history)?;
        let mood = match &req.mood {
            Some(m) => MoodUsed { label: m.clone(), confidence: 1.0, detected: false },
            None => MoodUsed { label: report.mood.clone(), confidence: report.confidence, detected: true },
        };
        let brand = self.book.brand(&req.brand).ok_or_else(|| DraftError::Invalid { field: "brand".into(), message: format!("unknown brand `{}`", req.brand) })?;
        let served = &brand.guide.languages;
        let language = req
            .language
            .clone()
            .or_else(|| Some(report.language.code.clone()).filter(|l| served.contains(l)))
            .or_else(|| served.first().cloned())
            .unwrap_or_else(|| "en".into());
        let understand_ms = ms(start);
        if !on_event(DraftEvent::Understood { mood: &mood, language: &language, escalation: &report.escalation }) {
            return Err(DraftError::Cancelled);
        }

        // plan (minimal: voice + channel + mood in a system turn)
        let lint_req = self.book.validate(
            &LintRequest { brand: req.brand.clone(), channel: req.channel.clone(), mood: Some(mood.label.clone()), language: Some(language.clone()), facts: req.facts.clone() },
            "",
        )?;
        let profile = &self.book.channels.channels[&req.channel];
        let mut system = format!("You are a customer support agent for {}. Voice: {}\n", brand.guide.name, brand.guide.voice);
        system.push_str(&format!("Channel: {}. {}\n", req.channel, profile.description));
        system.push_str(&format!("The customer seems {}.\n", mood.label));
        for f in &req.facts {
            system.push_str(&format!("Fact: {}{}\n", f.text, f.url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default()));
        }
        let user = match &req.mode {
            Mode::Reply => req.message.clone(),
            Mode::Rewrite { draft } => format!("Rewrite this reply in our voice:\n{draft}"),
        };
        let messages = vec![ChatMessage::new("system", system), ChatMessage::new("user", user)];
        let prompt = chat_prompt(self.gen.tokenizer(), &self.template, &messages)?;

        // generate
        let opts = GenerateOptions {
            max_tokens: req.max_tokens,
            sampling: SamplingParams { temperature: req.temperature, seed: req.seed, ..SamplingParams::default() },
            stop: Vec::new(),
            n: req.n,
            ignore_eog: false,
        };
        let mut cancelled = false;
        let out = self.gen.generate(&prompt, &opts, None, &mut |c, t| {
            let go = on_event(DraftEvent::Token { candidate: c, text: t });
            cancelled |= !go;
            go
        })?;
        if cancelled {
            return Err(DraftError::Cancelled);
        }

        // check and repair, score and rank
        let check_start = Instant::now();
        let mut drafts = Vec::new();
        for c in &out.candidates {
            let (text, fixes) = self.book.fix(&lint_req, c.text.trim());
            let violations = self.book.lint(&lint_req, &text);
            if violations.iter().any(|v| v.level == Level::Error) {
                continue;
            }
            let score = simple_score(&violations);
            drafts.push(Draft { text, score, violations, fixes, fallback: false, seed: Some(c.seed) });
        }
        if drafts.is_empty() {
            let intent = req.intent.clone().unwrap_or_else(|| "product_question".into());
            let template = brand.guide.fallbacks.get(&intent).and_then(|m| m.get(&language)).cloned().unwrap_or_default();
            let mut values = BTreeMap::new();
            if let Some(f) = req.facts.first() {
                values.insert("fact".to_string(), f.text.clone());
            }
            let text = fill_placeholders(&template, &values);
            let violations = self.book.lint(&lint_req, &text);
            drafts.push(Draft { score: simple_score(&violations), text, violations, fixes: Vec::new(), fallback: true, seed: None });
        }
        drafts.sort_by(|a, b| b.score.overall.total_cmp(&a.score.overall));
        let t = &out.timings;
        Ok(DraftResponse {
            drafts,
            mood,
            language,
            escalation: report.escalation.clone(),
            seed: req.seed,
            model: self.model_name.clone(),
            timings: DraftTimings {
                queued_ms: 0.0,
                understand_ms,
                prefill_ms: t.prefill_ms,
                generate_ms: t.generate_ms,
                check_ms: ms(check_start),
                total_ms: ms(start),
                prompt_tokens: t.prompt_tokens,
                cached_tokens: t.cached_tokens,
                cache_hit: t.cached_tokens > 0,
                generated_tokens: t.generated_tokens,
            },
        })
    }
}

fn simple_score(violations: &[RuleViolation]) -> DraftScore {
    let rules = (100.0 - 15.0 * violations.len() as f32).max(0.0);
    DraftScore { overall: rules, parts: BTreeMap::from([("rules".to_string(), rules)]) }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
