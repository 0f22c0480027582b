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
//!
//! Latency shape: the prompt is everything for a brand + channel + mood +
//! language (system text and a stable set of exemplar turns) followed by the
//! customer's turn. Only that shared part goes into the engine's prefix cache
//! (`Generator::generate_shared`), so a warm request feeds just the customer's
//! turn; [`Drafter::warm`] fills the cache for hot combinations ahead of
//! time (the server does it between requests at start-up).

pub mod check;
pub mod constrain;
pub mod plan;
pub mod request;

pub use request::{validate, validate_rewrite, Customer, DraftRequest, Limits, Mode, RewriteRequest, Turn, ValidDraftRequest};

use crate::engine::generate::{chat_prompt, GenerateOptions, Generator};
use crate::engine::lookup::LookupParams;
use crate::engine::prefix_cache::common_prefix;
use crate::engine::model::Model;
use crate::engine::prefix_cache::PrefixCache;
use crate::engine::sampling::SamplingParams;
use crate::engine::template::{ChatMessage, ChatTemplate};
use crate::engine::EngineError;
use crate::mood::escalation::EscalationFlag;
use crate::mood::{MoodDetector, MoodError};
use crate::style::fix::AppliedFix;
use crate::style::lint::{LintRequest, RuleViolation, StyleBook};
use crate::style::rule::Level;
use check::{check_candidate, drop_failing_sentences, fill_fallback, keep_leading_sentences, request_text, Guard};
use constrain::{DraftMask, MaskPolicy, VocabSets};
use plan::{DraftingData, ExemplarIndex, Planner};
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
            DraftError::Engine(EngineError::Limit { .. }) => true,
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
    /// Why the fallback was used (only on a fallback): no candidate passed
    /// the guide, or the model does not write the reply's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
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
    /// Rendering and tokenizing the prompt.
    #[serde(default)]
    pub plan_ms: f64,
    pub prefill_ms: f64,
    /// From the start of the request to the first generated token (first round).
    #[serde(default)]
    pub first_token_ms: f64,
    pub generate_ms: f64,
    /// Lint, repair and scoring.
    pub check_ms: f64,
    /// The scoring part of `check_ms` (embedding the drafts for the voice
    /// score, scoring, ranking).
    #[serde(default)]
    pub score_ms: f64,
    pub total_ms: f64,
    pub prompt_tokens: usize,
    /// Prompt tokens served by the prefix cache.
    pub cached_tokens: usize,
    /// Prompt tokens computed (prompt − cached), first round.
    #[serde(default)]
    pub prefill_tokens: usize,
    /// Leading prompt tokens shared by every request for this brand +
    /// channel + mood + language (what the prefix cache keeps).
    #[serde(default)]
    pub shared_tokens: usize,
    pub cache_hit: bool,
    pub generated_tokens: usize,
    /// Generation rounds run (1 + regenerations of candidates that failed a check).
    #[serde(default)]
    pub rounds: usize,
    /// Candidates discarded because an error-level rule still failed after repair.
    #[serde(default)]
    pub rejected: usize,
    /// Candidates kept by dropping the sentences that broke an error-level rule
    /// (`Draft.DropSentence`) or all sentences from there on (`Draft.Shorten`)
    /// instead of regenerating.
    #[serde(default)]
    pub salvaged: usize,
    /// Forward passes while decoding, all rounds (a batch step counts once;
    /// with speculative decoding one pass can yield several tokens).
    #[serde(default)]
    pub decode_forwards: usize,
    /// Speculative decoding, all rounds: tokens drafted by prompt lookup and
    /// how many of them the model's own sampling confirmed.
    #[serde(default)]
    pub drafted_tokens: usize,
    #[serde(default)]
    pub accepted_tokens: usize,
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
    /// The intent used to pick the fallback (given, or inferred from the message).
    #[serde(default)]
    pub intent: String,
}

/// What the "understand" step found for a request.
#[derive(Debug, Clone)]
pub struct Understanding {
    pub mood: MoodUsed,
    pub language: String,
    pub intent: String,
    pub escalation: Vec<EscalationFlag>,
}

/// One brand + channel + mood + language: the unit of prompt sharing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WarmCombo {
    pub brand: String,
    pub channel: String,
    pub mood: String,
    pub language: String,
}

/// What a warm-up did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WarmReport {
    /// Combinations now in the prefix cache.
    pub warmed: usize,
    /// Prompt tokens fed (0 for combinations cached already).
    pub tokens_fed: usize,
    /// Stopped early: the prefix cache had no room for the next one.
    pub full: bool,
    pub ms: f64,
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

/// Regeneration rounds after the first, for candidates that still break an
/// error-level rule after repair.
pub const MAX_EXTRA_ROUNDS: usize = 2;

/// Built-in prompt data (the files under `prompts/` at build time); a
/// deployment can load its own with [`Drafter::with_prompts_dir`].
const DRAFT_J2: &str = include_str!("../../prompts/templates/draft.j2");
const REWRITE_J2: &str = include_str!("../../prompts/templates/rewrite.j2");
const DRAFTING_YAML: &str = include_str!("../../prompts/drafting.yaml");

/// Owns the model; one per model-owning task.
pub struct Drafter {
    gen: Generator,
    template: ChatTemplate,
    book: Arc<StyleBook>,
    mood: Arc<MoodDetector>,
    model_name: String,
    planner: Planner,
    data: DraftingData,
    exemplars: ExemplarIndex,
    vocab: Arc<VocabSets>,
    /// Strategy-only politeness scorer (no model file; `None` if its built-in data fails to load).
    politeness: Option<crate::score::politeness::Politeness>,
    /// The shared prompt tokens of each brand + channel + mood + language
    /// seen so far (cleared when the book or the templates change).
    shared: std::collections::HashMap<WarmCombo, Arc<Vec<u32>>>,
    /// Speculative decoding of drafts ([`DEFAULT_SPECULATE`], or
    /// `BRANDVOICE_SPECULATE`): changes the number of forward passes, never the text.
    speculate: LookupParams,
    /// Languages the model writes (the manifest's `languages`; empty: any).
    model_languages: Vec<String>,
}

/// Every brand's exemplars, embedded; without similarity if embedding fails.
fn exemplar_index(book: &StyleBook, mood: &MoodDetector) -> ExemplarIndex {
    ExemplarIndex::build(book, mood.embedder()).unwrap_or_else(|e| {
        tracing::warn!("embedding the exemplars failed ({e}); choosing them without similarity");
        let mut idx = ExemplarIndex::default();
        for (id, b) in &book.brands {
            for e in &b.guide.exemplars {
                idx.items.push(plan::IndexedExemplar { brand: id.clone(), exemplar: e.clone(), customer_emb: Vec::new(), reply_emb: Vec::new() });
            }
        }
        idx
    })
}

impl Drafter {
    /// `cache_bytes` bounds the prefix KV cache. Scans the vocabulary for the
    /// decoding masks and embeds every exemplar once. Uses the built-in
    /// templates; if embedding the exemplars fails, exemplars are chosen by
    /// channel/mood/language only and the `voice` score part is left out.
    pub fn new(model: Model, model_name: impl Into<String>, book: Arc<StyleBook>, mood: Arc<MoodDetector>, cache_bytes: usize) -> Self {
        let Model { tokenizer, template, lm, .. } = model;
        let vocab = Arc::new(VocabSets::build(&tokenizer));
        let gen = Generator::new(lm, Arc::new(tokenizer), PrefixCache::new(cache_bytes));
        let exemplars = exemplar_index(&book, &mood);
        Drafter {
            gen,
            template,
            book,
            mood,
            model_name: model_name.into(),
            planner: Planner::from_sources(DRAFT_J2, REWRITE_J2).expect("the built-in templates are checked by unit tests"),
            data: serde_yaml::from_str(DRAFTING_YAML).expect("the built-in drafting.yaml is checked by unit tests"),
            exemplars,
            vocab,
            politeness: crate::score::politeness::Politeness::load()
                .map_err(|e| tracing::warn!("politeness scorer unavailable, the score leaves it out: {e}"))
                .ok(),
            shared: Default::default(),
            speculate: speculate_params(),
            model_languages: Vec::new(),
        }
        .with_manifest_languages()
    }

    /// The languages the model's manifest entry says it writes (none listed,
    /// or a model not in the manifest: every language).
    fn with_manifest_languages(mut self) -> Self {
        if let Ok(m) = crate::models::manifest::Manifest::current() {
            if let Some(e) = m.model(&self.model_name) {
                self.model_languages = e.languages.clone();
            }
        }
        self
    }

    /// The languages the model writes (empty: any). A reply in another
    /// language is not generated: the brand's approved fallback in that
    /// language is returned, with the reason.
    pub fn model_languages(&self) -> &[String] {
        &self.model_languages
    }

    /// Sets [`Drafter::model_languages`] (the manifest's list by default).
    pub fn set_model_languages(&mut self, languages: Vec<String>) {
        self.model_languages = languages;
    }

    fn writes(&self, language: &str) -> bool {
        self.model_languages.is_empty() || self.model_languages.iter().any(|l| l == language)
    }

    /// The speculative-decoding policy drafts use.
    pub fn speculate(&self) -> LookupParams {
        self.speculate
    }

    /// Sets the speculative-decoding policy (`max_draft` 0: off). The drafts
    /// stay the same; only the forward passes change.
    pub fn set_speculate(&mut self, p: LookupParams) {
        self.speculate = p;
    }

    /// Loads templates and drafting data from a prompts directory instead of
    /// the built-in copies.
    pub fn with_prompts_dir(mut self, dir: &std::path::Path) -> Result<Self, DraftError> {
        self.planner = Planner::load(dir)?;
        self.data = DraftingData::load(dir)?;
        self.shared.clear();
        Ok(self)
    }

    pub fn book(&self) -> &Arc<StyleBook> {
        &self.book
    }

    /// Switches to a reloaded style book (`POST /v1/admin/reload`): the next
    /// draft uses its guides, rules and exemplars (embedded again here).
    pub fn set_book(&mut self, book: Arc<StyleBook>) {
        self.exemplars = exemplar_index(&book, &self.mood);
        self.book = book;
        self.shared.clear();
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

    pub fn vocab_sets(&self) -> &VocabSets {
        &self.vocab
    }

    pub fn drafting_data(&self) -> &DraftingData {
        &self.data
    }

    /// The prompt the model would see for `req` (for `--show-prompt` and tests).
    pub fn plan(&self, req: &ValidDraftRequest, mood: &str, language: &str) -> Result<plan::PromptPlan, DraftError> {
        let k = self.data.prompt_size(&req.channel).exemplars;
        let ex = self.exemplars.select_stable(&req.brand, &req.channel, mood, language, k);
        self.planner.render(&self.book, &self.data, req, mood, language, &ex)
    }

    /// The prompt's tokens and how many leading ones are shared by every
    /// request with the same brand, channel, mood and language (the common
    /// prefix with [`Drafter::shared_tokens`] of the combination, so a merge
    /// across the seam can never make the shared part claim a token this
    /// prompt does not have).
    pub fn prompt_tokens(&mut self, p: &plan::PromptPlan, req: &ValidDraftRequest, mood: &str, language: &str) -> Result<(Vec<u32>, usize), DraftError> {
        let messages = self.messages(p, req, language);
        let full = chat_prompt(self.gen.tokenizer(), &self.template, &messages)?;
        let combo = WarmCombo { brand: req.brand.clone(), channel: req.channel.clone(), mood: mood.to_string(), language: language.to_string() };
        let shared = self.shared_tokens(&combo)?;
        Ok((full.clone(), common_prefix(&full, &shared)))
    }

    /// The tokens every reply prompt for this brand + channel + mood +
    /// language starts with: system text, exemplar turns and the customer
    /// turn's instruction line, up to where the message begins. Computed as
    /// the common prefix of two prompts that differ only in the message, and
    /// remembered per combination.
    pub fn shared_tokens(&mut self, c: &WarmCombo) -> Result<Arc<Vec<u32>>, DraftError> {
        if let Some(t) = self.shared.get(c) {
            return Ok(t.clone());
        }
        let mut prompts = Vec::new();
        for message in ["A", "Z"] {
            let req = validate(
                &self.book,
                &Limits::default(),
                DraftRequest { brand: c.brand.clone(), channel: c.channel.clone(), message: message.into(), mood: Some(c.mood.clone()), language: Some(c.language.clone()), ..Default::default() },
            )?;
            let p = self.plan(&req, &c.mood, &c.language)?;
            let messages = self.messages(&p, &req, &c.language);
            prompts.push(chat_prompt(self.gen.tokenizer(), &self.template, &messages)?);
        }
        let n = common_prefix(&prompts[0], &prompts[1]);
        let t = Arc::new(prompts.swap_remove(0)[..n].to_vec());
        self.shared.insert(c.clone(), t.clone());
        Ok(t)
    }

    /// Mood, language and intent of a request (the pipeline's "understand"
    /// step, without the timing).
    pub fn understand(&self, req: &ValidDraftRequest) -> Result<Understanding, DraftError> {
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
        let intents: Vec<&str> = brand.guide.fallbacks.keys().map(String::as_str).collect();
        let intent = req.intent.clone().unwrap_or_else(|| self.data.infer_intent(&req.message, &intents));
        Ok(Understanding { mood, language, intent, escalation: report.escalation })
    }

    /// Every brand × `channels` × mood × the brand's languages, hottest
    /// first: the brand's first language before its others, then in the
    /// order of `channels`, then brand, then mood (the book's order). Unknown
    /// channels are skipped.
    pub fn hot_combos(&self, channels: &[String]) -> Vec<WarmCombo> {
        let moods: Vec<&String> = self.book.moods.moods.keys().collect();
        let max_langs = self.book.brands.values().map(|b| b.guide.languages.len()).max().unwrap_or(0);
        let mut out = Vec::new();
        for rank in 0..max_langs {
            for channel in channels.iter().filter(|c| self.book.channels.channels.contains_key(*c)) {
                for (id, b) in &self.book.brands {
                    let Some(language) = b.guide.languages.get(rank) else { continue };
                    if !self.writes(language) {
                        continue; // never generated: answered by the fallback
                    }
                    for mood in &moods {
                        out.push(WarmCombo { brand: id.clone(), channel: channel.clone(), mood: (*mood).clone(), language: language.clone() });
                    }
                }
            }
        }
        out
    }

    /// The combination a request will use (runs the mood detector when the
    /// request gives no mood).
    pub fn combo_of(&self, req: &ValidDraftRequest) -> Result<WarmCombo, DraftError> {
        let u = self.understand(req)?;
        Ok(WarmCombo { brand: req.brand.clone(), channel: req.channel.clone(), mood: u.mood.label, language: u.language })
    }

    /// Fills the prefix cache with the shared prompt part of one
    /// combination (system text and exemplar turns), so the first request
    /// for it feeds only its own turn. Returns the tokens fed (0 when it was
    /// cached already), or `None` when the cache has no room left for it
    /// (nothing is evicted for a warm-up).
    pub fn warm_one(&mut self, c: &WarmCombo) -> Result<Option<usize>, DraftError> {
        let tokens = self.shared_tokens(c)?;
        Ok(self.gen.warm(&tokens)?)
    }

    /// [`Drafter::warm_one`] for each combination in order, stopping when
    /// the prefix cache is full.
    pub fn warm(&mut self, combos: &[WarmCombo]) -> Result<WarmReport, DraftError> {
        let start = Instant::now();
        let mut r = WarmReport::default();
        for c in combos {
            match self.warm_one(c)? {
                Some(fed) => {
                    r.warmed += 1;
                    r.tokens_fed += fed;
                }
                None => {
                    r.full = true;
                    break;
                }
            }
        }
        r.ms = ms(start);
        Ok(r)
    }

    /// The chat messages of a plan: system, exemplar turns (in the guide's
    /// order, see `ExemplarIndex::select`), the customer's turn.
    fn messages(&self, p: &plan::PromptPlan, req: &ValidDraftRequest, language: &str) -> Vec<ChatMessage> {
        let mut m = vec![ChatMessage::new("system", p.system.clone())];
        let lang = self.data.language_name(language);
        for (customer, reply) in &p.exemplars {
            m.push(ChatMessage::new("user", format!("Reply in {lang} to this {} message:\n{customer}", req.channel)));
            m.push(ChatMessage::new("assistant", reply.clone()));
        }
        m.push(ChatMessage::new("user", p.user.clone()));
        m
    }

    /// The leak and personal-data checks for one request: the prompt and the
    /// brand's guide text are protected, except what a reply may quote (the
    /// request itself, the brand's exemplars, fallbacks, sign-offs, greetings,
    /// required phrases and its `do` examples, the mood phrase lists).
    pub fn guard(&self, req: &ValidDraftRequest, p: &plan::PromptPlan, source: &str) -> Guard {
        let Some(brand) = self.book.brand(&req.brand) else { return Guard::none() };
        let g = &brand.guide;
        let mut protected: Vec<&str> = vec![&p.system, &p.user, &g.voice];
        for t in &g.traits {
            protected.push(&t.description);
            protected.extend(t.dont.iter().map(String::as_str));
        }
        let approved = [
            serde_json::to_string(&g.fallbacks).unwrap_or_default(),
            serde_json::to_string(&g.greetings).unwrap_or_default(),
            serde_json::to_string(&self.book.moods.phrases).unwrap_or_default(),
        ];
        let mut allowed: Vec<&str> = vec![source];
        allowed.extend(approved.iter().map(String::as_str));
        for e in &g.exemplars {
            allowed.push(&e.customer);
            allowed.push(&e.reply);
        }
        for t in &g.traits {
            allowed.extend(t.r#do.iter().map(String::as_str));
        }
        let mut customer = req.message.clone();
        for t in &req.history {
            customer.push('\n');
            customer.push_str(&t.text);
        }
        for f in &req.customer.facts {
            customer.push('\n');
            customer.push_str(f);
        }
        let public = self.book.channels.channels.get(&req.channel).is_some_and(|c| c.public);
        Guard::new(&protected, &allowed, public, &customer)
    }

    /// What the decoding mask forbids for this request, and its length budget.
    pub fn mask_policy(&self, req: &ValidDraftRequest, mood: &str, language: &str) -> MaskPolicy {
        let brand = self.book.brand(&req.brand);
        let profile = self.book.channels.channels.get(&req.channel);
        let tone = plan::effective_tone(&self.book, &req.brand, mood);
        let brand_max = brand.and_then(|b| b.guide.emoji.max.get(&req.channel).copied()).unwrap_or(0);
        let allowed_empty = brand.is_none_or(|b| b.guide.emoji.allowed.is_empty());
        let ban_emoji = profile.is_none_or(|p| !p.emoji) || allowed_empty || brand_max == 0 || tone.emoji_max == Some(0);
        let has_url = req.facts.iter().any(|f| f.url.is_some());
        let ban_urls = !has_url || profile.is_none_or(|p| !p.links);
        let ban_hashtags = profile.is_none_or(|p| p.max_hashtags == 0);
        let mut policy = MaskPolicy { ban_emoji, ban_urls, ban_hashtags, min_tokens: 3, valid_utf8: true, ..Default::default() };
        if let Some(limit) = profile.and_then(|p| p.length.as_ref()) {
            use crate::style::length::LengthUnit as U;
            let cjk = language == "ja";
            let sign_offs: Vec<&String> = brand.and_then(|b| b.guide.sign_offs.get(&req.channel)).and_then(|m| m.get(language)).map(|l| l.iter().collect()).unwrap_or_default();
            // The brand's required phrases for this channel: repair adds them
            // when the model did not write them.
            let required: Vec<&String> = brand
                .map(|b| b.guide.required_phrases.iter().filter(|r| r.channels.is_empty() || r.channels.contains(&req.channel)).filter_map(|r| r.text.get(language)).collect())
                .unwrap_or_default();
            let sms = limit.unit == U::SmsSegments;
            // An SMS is GSM-7 (153 characters a segment) only when everything
            // in it is: one en dash in the sign-off makes the whole message
            // UCS-2, 67 a segment.
            let gsm7 = language == "en"
                && sign_offs.iter().chain(&required).all(|s| crate::style::text::sms_info(s).gsm7)
                && req.facts.iter().all(|f| crate::style::text::sms_info(&f.text).gsm7 && f.url.as_deref().is_none_or(|u| crate::style::text::sms_info(u).gsm7));
            let chars = match limit.unit {
                U::Twitter => Some(limit.max as usize),
                U::Graphemes => Some(limit.max as usize * if cjk { 2 } else { 1 }),
                U::Words => Some(limit.max as usize * if cjk { 4 } else { 6 }),
                U::SmsSegments => Some(limit.max as usize * if gsm7 { 153 } else { 67 * if cjk { 2 } else { 1 } }),
                _ => None,
            };
            if let Some(chars) = chars {
                // Room for what repair appends: the sign-off and facts the
                // model left out (half of them: it usually writes some
                // itself), and on SMS, where room is tight, all the facts and
                // the required phrases.
                let sign_off = sign_offs.iter().map(|s| s.chars().count()).max().map_or(0, |n| n + 2);
                let facts: usize = req.facts.iter().map(|f| f.text.chars().count() + f.url.as_ref().map_or(0, |u| u.len().min(23) + 1) + if sms { 2 } else { 1 }).sum();
                let reserved = if sms { sign_off + facts + required.iter().map(|r| r.chars().count() + 1).sum::<usize>() } else { sign_off + facts / 2 };
                let hard = chars.saturating_sub(reserved).max(chars / if sms { 6 } else { 3 });
                policy.hard_chars = Some(hard);
                policy.soft_chars = Some(hard * 6 / 10);
            }
        }
        // The channel's generation budget (drafting.yaml `length_budget`),
        // when tighter: a reply that says less is also drafted sooner.
        if let Some(b) = self.data.length_budget.get(&req.channel) {
            policy.hard_chars = Some(policy.hard_chars.map_or(b.hard, |h| h.min(b.hard)));
            policy.soft_chars = Some(policy.soft_chars.map_or(b.soft, |x| x.min(b.soft)));
        }
        policy
    }

    /// Runs the whole pipeline for one request.
    pub fn draft(&mut self, req: &ValidDraftRequest, on_event: &mut dyn FnMut(DraftEvent<'_>) -> bool) -> Result<DraftResponse, DraftError> {
        let start = Instant::now();
        // understand
        let Understanding { mood, language, intent, escalation } = self.understand(req)?;
        let book = self.book.clone();
        let brand = book.brand(&req.brand).ok_or_else(|| DraftError::Invalid { field: "brand".into(), message: format!("unknown brand `{}`", req.brand) })?;
        let understand_ms = ms(start);
        if !on_event(DraftEvent::Understood { mood: &mood, language: &language, escalation: &escalation }) {
            return Err(DraftError::Cancelled);
        }

        // plan
        let lint_req = self.book.validate(
            &LintRequest { brand: req.brand.clone(), channel: req.channel.clone(), mood: Some(mood.label.clone()), language: Some(language.clone()), facts: req.facts.clone() },
            "",
        )?;
        let tone = plan::effective_tone(&self.book, &req.brand, &mood.label);
        let plan_start = Instant::now();
        let prompt_plan = self.plan(req, &mood.label, &language)?;
        let (prompt, shared_len) = self.prompt_tokens(&prompt_plan, req, &mood.label, &language)?;
        let plan_ms = ms(plan_start);
        let mask = DraftMask::new(self.vocab.clone(), self.mask_policy(req, &mood.label, &language));
        let mut source = request_text(req);
        // The brand's own approved text (sign-offs, required phrases) is not invented.
        for list in brand.guide.sign_offs.values().flat_map(|m| m.values()).flatten() {
            source.push('\n');
            source.push_str(list);
        }
        for r in &brand.guide.required_phrases {
            for t in r.text.values() {
                source.push('\n');
                source.push_str(t);
            }
        }
        let ack = self.data.acknowledgements.get(&language).cloned();
        let guard = self.guard(req, &prompt_plan, &source);

        // generate, check and repair; regenerate what fails
        let mut timings = DraftTimings { understand_ms, plan_ms, shared_tokens: shared_len, ..Default::default() };
        let mut drafts: Vec<Draft> = Vec::new();
        let mut check_ms = 0.0;
        // A language the model does not write (smollm2 and Japanese, say)
        // would come out as fluent-looking nonsense that still passes the
        // rules; the brand's approved reply in that language is better.
        let gated = !self.writes(&language);
        for round in 0..=MAX_EXTRA_ROUNDS {
            let missing = req.n - drafts.len();
            if missing == 0 || gated {
                break;
            }
            let opts = self.round_options(req, round, missing);
            let offset = req.n * round;
            let mut cancelled = false;
            let round_start = Instant::now();
            let out = self.gen.generate_shared(&prompt, shared_len, &opts, Some(&mask), &mut |c, t| {
                let go = on_event(DraftEvent::Token { candidate: offset + c, text: t });
                cancelled |= !go;
                go
            })?;
            if cancelled {
                return Err(DraftError::Cancelled);
            }
            let t = &out.timings;
            if round == 0 {
                timings.prompt_tokens = t.prompt_tokens;
                timings.cached_tokens = t.cached_tokens;
                timings.prefill_tokens = t.prompt_tokens - t.cached_tokens;
                timings.cache_hit = t.cached_tokens > 0;
                timings.first_token_ms = ms(start) - ms(round_start) + t.ttft_ms;
            }
            timings.prefill_ms += t.prefill_ms;
            timings.generate_ms += t.generate_ms;
            timings.generated_tokens += t.generated_tokens;
            timings.decode_forwards += t.decode_forwards;
            timings.drafted_tokens += t.drafted_tokens;
            timings.accepted_tokens += t.accepted_tokens;
            timings.rounds = round + 1;
            let check_start = Instant::now();
            for c in &out.candidates {
                let mut checked = check_candidate(&self.book, &lint_req, &tone, ack.as_deref(), &source, &guard, &c.text);
                if checked.has_error() {
                    let saved = drop_failing_sentences(&self.book, &lint_req, &tone, ack.as_deref(), &source, &guard, &checked)
                        .or_else(|| keep_leading_sentences(&self.book, &lint_req, &tone, ack.as_deref(), &source, &guard, &c.text));
                    if let Some(saved) = saved {
                        timings.salvaged += 1;
                        checked = saved;
                    }
                }
                if checked.has_error() || checked.text.trim().is_empty() {
                    timings.rejected += 1;
                    tracing::debug!(seed = c.seed, text = %crate::redact::redact(&checked.text), "candidate rejected: {:?}", checked.violations.iter().filter(|v| v.level == Level::Error).map(|v| &v.message).collect::<Vec<_>>());
                    continue;
                }
                drafts.push(Draft { text: checked.text, score: DraftScore::default(), violations: checked.violations, fixes: checked.fixes, fallback: false, seed: Some(c.seed), fallback_reason: None });
            }
            check_ms += ms(check_start);
        }

        let check_start = Instant::now();
        if drafts.is_empty() {
            let mut f = self.fallback(req, &lint_req, &intent, &language, &source, &guard);
            f.fallback_reason = Some(if gated {
                format!("the model `{}` does not write `{language}` (it writes: {}); this is the brand's approved reply", self.model_name, self.model_languages.join(", "))
            } else {
                format!("no candidate passed the guide's error-level rules in {} round(s); this is the brand's approved reply", timings.rounds)
            });
            drafts.push(f);
        }
        // score and rank
        let score_start = Instant::now();
        let texts: Vec<&str> = drafts.iter().map(|d| d.text.as_str()).collect();
        let embs = self.mood.embedder().embed_batch(&texts).ok();
        let profile = &self.book.channels.channels[&req.channel];
        for (i, d) in drafts.iter_mut().enumerate() {
            let voice = embs.as_ref().and_then(|e| e.get(i)).filter(|e| !e.is_empty()).map(|e| self.exemplars.voice_similarity(&req.brand, e));
            let length = profile.length.as_ref().map(|l| (l.unit.measure(&d.text) as u32, l.max));
            let sentences = crate::style::text::sentences(&d.text).len();
            d.score = crate::score::score(&crate::score::ScoreInput {
                text: &d.text,
                violations: &d.violations,
                tone: &tone,
                phrases: &self.book.moods.phrases,
                profile,
                channel: &req.channel,
                language: &language,
                length,
                sentences,
                voice,
                politeness: self
                    .politeness
                    .as_ref()
                    .filter(|_| language == "en")
                    .map(|p| p.score(&d.text).score_0_100 as f32),
            });
        }
        crate::score::rank(&mut drafts, |d| (d.fallback, d.score.overall));
        drafts.truncate(req.n);
        timings.score_ms = ms(score_start);
        check_ms += ms(check_start);
        timings.check_ms = check_ms;
        timings.total_ms = ms(start);
        Ok(DraftResponse {
            drafts,
            mood,
            language,
            escalation,
            seed: req.seed,
            model: self.model_name.clone(),
            timings,
            intent,
        })
    }

    /// How round `round` (0: the first; later ones regenerate what failed)
    /// generates `n` candidates for `req`.
    pub fn round_options(&self, req: &ValidDraftRequest, round: usize, n: usize) -> GenerateOptions {
        let temperature = if round > 0 { req.temperature.max(DEFAULT_RETRY_TEMPERATURE) } else { req.temperature };
        GenerateOptions {
            max_tokens: req.max_tokens,
            sampling: SamplingParams { temperature, seed: req.seed.wrapping_add(1000 * round as u64), repeat_penalty: 1.1, ..SamplingParams::default() },
            stop: vec!["\nCustomer:".into(), "\nUser:".into(), "\n\n\n".into()],
            n,
            ignore_eog: false,
            speculate: self.speculate,
        }
    }

    /// The brand's approved fallback for the intent, filled with the facts
    /// and repaired like a generated draft (sign-off, facts appended).
    pub fn fallback(&self, req: &ValidDraftRequest, lint_req: &crate::style::lint::ValidLintRequest, intent: &str, language: &str, source: &str, guard: &Guard) -> Draft {
        let Some(brand) = self.book.brand(&req.brand) else {
            return Draft { text: String::new(), score: DraftScore::default(), violations: Vec::new(), fixes: Vec::new(), fallback: true, seed: None, fallback_reason: None };
        };
        let by_lang = brand.guide.fallbacks.get(intent).or_else(|| brand.guide.fallbacks.get("product_question"));
        let template = by_lang
            .and_then(|m| m.get(language).or_else(|| brand.guide.languages.first().and_then(|l| m.get(l))))
            .cloned()
            .unwrap_or_default();
        let filled = fill_fallback(&template, &req.facts, req.customer.name.as_deref(), self.data.placeholder_defaults.get(language));
        // The same repairs as a generated draft, including the acknowledgement opener.
        let tone = plan::effective_tone(&self.book, &req.brand, &lint_req.mood);
        let ack = self.data.acknowledgements.get(language).map(String::as_str);
        let checked = check_candidate(&self.book, lint_req, &tone, ack, source, guard, &filled);
        Draft { text: checked.text, score: DraftScore::default(), violations: checked.violations, fixes: checked.fixes, fallback: true, seed: None, fallback_reason: None }
    }
}

/// Speculative decoding of drafts (the same drafts, fewer forward passes):
/// a prompt-lookup draft is verified only after a match of at least
/// `min_ngram` tokens (longest tried first: `max_ngram`), and at most
/// `max_draft` tokens are drafted per step. Chosen by simulating policies on
/// the plain-decoded tokens of the suite and the HTTP benchmark's messages
/// (verification is exact, so what a draft would have kept is known
/// offline) against measured forward costs (BENCHMARKS.md, "Drafting latency
/// 3"): on twitter drafts a 2-token match is followed by the drafted token
/// only ~20% of the time, a 3-or-more-token match 40–70%, while every
/// drafted row costs ~15–35% of a pass on smollm2 at ~600 positions of
/// context. `6,2,4` (the earlier default) made English twitter drafts on
/// smollm2 slower than plain decoding; `3,3,8` is the one setting that is
/// within ~1.5% of plain decoding at worst on both models (a drafted row
/// costing up to half a pass) and saves 5–7% of decode time on smollm2 and
/// 4–25% on qwen2.5 at measured costs. `BRANDVOICE_SPECULATE=K[,MIN_NGRAM[,MAX_NGRAM]]`
/// overrides it; `0` turns it off.
pub const DEFAULT_SPECULATE: LookupParams = LookupParams { max_draft: 3, min_ngram: 3, max_ngram: 8 };

fn speculate_params() -> LookupParams {
    static P: std::sync::OnceLock<LookupParams> = std::sync::OnceLock::new();
    *P.get_or_init(|| {
        let Ok(v) = std::env::var("BRANDVOICE_SPECULATE") else { return DEFAULT_SPECULATE };
        let Some(n) = parse_speculate(&v) else {
            let d = DEFAULT_SPECULATE;
            tracing::warn!(
                "BRANDVOICE_SPECULATE must be K[,MIN_NGRAM[,MAX_NGRAM]] (whole numbers), got `{v}`; using the default {},{},{}",
                d.max_draft,
                d.min_ngram,
                d.max_ngram
            );
            return DEFAULT_SPECULATE;
        };
        let mut p = DEFAULT_SPECULATE;
        if let Some(&k) = n.first() {
            p.max_draft = k;
        }
        if let Some(&m) = n.get(1) {
            p.min_ngram = m.max(1);
        }
        p.max_ngram = n.get(2).copied().unwrap_or(p.max_ngram).max(p.min_ngram);
        p
    })
}

/// The fields of `BRANDVOICE_SPECULATE` (one to three whole numbers), or
/// `None` when any field is not one: a typo must not shift the others into
/// the wrong places.
fn parse_speculate(v: &str) -> Option<Vec<usize>> {
    let n: Vec<usize> = v.split(',').map(|x| x.trim().parse().ok()).collect::<Option<_>>()?;
    (1..=3).contains(&n.len()).then_some(n)
}

/// Temperature of the regeneration rounds when the request asked for less
/// (greedy decoding would only repeat the failed candidate).
pub const DEFAULT_RETRY_TEMPERATURE: f32 = 0.7;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speculate_setting_rejects_bad_fields_instead_of_shifting_them() {
        assert_eq!(parse_speculate("3"), Some(vec![3]));
        assert_eq!(parse_speculate(" 6, 2 ,4"), Some(vec![6, 2, 4]));
        assert_eq!(parse_speculate("0"), Some(vec![0]));
        assert_eq!(parse_speculate("x,2"), None);
        assert_eq!(parse_speculate("3,,8"), None);
        assert_eq!(parse_speculate("1,2,3,4"), None);
        assert_eq!(parse_speculate(""), None);
    }

    #[test]
    fn built_in_prompt_data_parses() {
        Planner::from_sources(DRAFT_J2, REWRITE_J2).unwrap();
        let d: DraftingData = serde_yaml::from_str(DRAFTING_YAML).unwrap();
        assert!(d.acknowledgements.contains_key("ja"));
    }
}
