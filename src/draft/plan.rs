//! Plan: what the model is told. The prompt is data (`prompts/templates/draft.j2`
//! and `rewrite.j2`, rendered with minijinja) and is built in a fixed order so
//! the engine's prefix cache pays off: the brand + channel + mood part first
//! (identical for every request with the same three), then the brand's
//! exemplar replies for that brand + channel + mood + language as earlier
//! turns ([`ExemplarIndex::select_stable`]: the same for every such request,
//! so everything up to the customer's turn is one cached prefix), then the
//! customer-specific part (history, customer, facts, message) last.
//!
//! Every exemplar of every brand is embedded once with the mood detector's
//! MiniLM embedder; the embeddings serve the `voice` part of the score (and
//! [`ExemplarIndex::select`], choice by similarity to the message, which the
//! pipeline no longer uses: it made every prompt's exemplar part different).

use super::request::{Mode, ValidDraftRequest};
use super::DraftError;
use crate::mood::embed::Embedder;
use crate::style::guide::Exemplar;
use crate::style::lint::StyleBook;
use crate::style::mood::MoodTone;
use minijinja::{context, Environment};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How many exemplar replies go into a prompt when `drafting.yaml` does not
/// say otherwise for the channel (`prompt_size`).
pub const EXEMPLARS_PER_PROMPT: usize = 3;

/// `prompts/drafting.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftingData {
    /// Language code → name used in the prompt ("Reply in …").
    pub languages: BTreeMap<String, String>,
    /// Language code → opener prepended when a draft forgot to acknowledge first.
    pub acknowledgements: BTreeMap<String, String>,
    /// Intent → language → lower-case keywords.
    pub intents: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Language → placeholder → wording for fallback placeholders no fact fills.
    #[serde(default)]
    pub placeholder_defaults: BTreeMap<String, BTreeMap<String, String>>,
    /// Channel → generation budget in weighted characters (tighter than the
    /// channel's own limit; the smaller of the two applies).
    #[serde(default)]
    pub length_budget: BTreeMap<String, LengthBudget>,
    /// Channel → how much of the brand guide the prompt carries (channels
    /// not listed: [`PromptSize::default`]).
    #[serde(default)]
    pub prompt_size: BTreeMap<String, PromptSize>,
}

/// How much of the brand guide goes into a channel's prompt. Every prompt
/// token is attention work in every decode step and in the prefill of each
/// request's own turn, so a channel whose replies are one or two sentences
/// gets a compact prompt: the voice's first sentence and the trait names
/// instead of the whole voice and trait descriptions, the channel rules on
/// one line, a few of the allowed emoji, fewer exemplar turns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSize {
    /// Exemplar replies (earlier user/assistant turns).
    pub exemplars: usize,
    /// The compact form of the system part (see above).
    #[serde(default)]
    pub compact: bool,
}

impl Default for PromptSize {
    fn default() -> Self {
        PromptSize { exemplars: EXEMPLARS_PER_PROMPT, compact: false }
    }
}

/// How much text generation may produce for a channel, in weighted
/// characters (CJK counted twice): past `soft` the reply ends at the next
/// sentence end, at `hard` it ends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthBudget {
    pub soft: usize,
    pub hard: usize,
}

impl DraftingData {
    pub fn load(prompts_dir: &Path) -> Result<Self, DraftError> {
        let path = prompts_dir.join("drafting.yaml");
        let text = std::fs::read_to_string(&path).map_err(|e| invalid_file(&path, e))?;
        serde_yaml::from_str(&text).map_err(|e| invalid_file(&path, e))
    }

    /// The prompt size for `channel`.
    pub fn prompt_size(&self, channel: &str) -> PromptSize {
        self.prompt_size.get(channel).copied().unwrap_or_default()
    }

    pub fn language_name<'a>(&'a self, code: &'a str) -> &'a str {
        self.languages.get(code).map(String::as_str).unwrap_or(code)
    }

    /// The intent whose keywords occur most often in `message` (ties: the
    /// first in file order); `product_question` when none occurs.
    pub fn infer_intent(&self, message: &str, known: &[&str]) -> String {
        let lower = message.to_lowercase();
        let mut best: Option<(&str, usize)> = None;
        for (intent, langs) in &self.intents {
            if !known.is_empty() && !known.contains(&intent.as_str()) {
                continue;
            }
            let hits = langs.values().flatten().filter(|k| keyword_in(&lower, &k.to_lowercase())).count();
            if hits > 0 && best.is_none_or(|(_, h)| hits > h) {
                best = Some((intent, hits));
            }
        }
        best.map(|(i, _)| i.to_string()).unwrap_or_else(|| "product_question".into())
    }
}

/// `kw` occurs in `text`; a keyword starting/ending with an ASCII letter must
/// sit at a word boundary there ("down" is not in "downloads"), while
/// keywords in unspaced scripts match anywhere.
fn keyword_in(text: &str, kw: &str) -> bool {
    if kw.is_empty() {
        return false;
    }
    let starts_word = kw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ends_word = kw.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices(kw).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + kw.len()..].chars().next();
        (!starts_word || !before.is_some_and(char::is_alphanumeric)) && (!ends_word || !after.is_some_and(char::is_alphanumeric))
    })
}

fn invalid_file(path: &Path, e: impl std::fmt::Display) -> DraftError {
    DraftError::Invalid { field: path.display().to_string(), message: e.to_string() }
}

/// One exemplar with its embedding (of the customer message and of the reply).
#[derive(Debug, Clone)]
pub struct IndexedExemplar {
    pub brand: String,
    pub exemplar: Exemplar,
    pub customer_emb: Vec<f32>,
    pub reply_emb: Vec<f32>,
}

/// Every brand's exemplars, embedded once.
#[derive(Debug, Clone, Default)]
pub struct ExemplarIndex {
    pub items: Vec<IndexedExemplar>,
}

impl ExemplarIndex {
    pub fn build(book: &StyleBook, embedder: &Embedder) -> Result<Self, DraftError> {
        let mut items = Vec::new();
        for (id, b) in &book.brands {
            for e in &b.guide.exemplars {
                items.push(IndexedExemplar { brand: id.clone(), exemplar: e.clone(), customer_emb: Vec::new(), reply_emb: Vec::new() });
            }
        }
        let texts: Vec<&str> = items.iter().flat_map(|i| [i.exemplar.customer.as_str(), i.exemplar.reply.as_str()]).collect();
        let embs = if texts.is_empty() { Vec::new() } else { embedder.embed_batch(&texts).map_err(crate::mood::MoodError::from)? };
        for (i, item) in items.iter_mut().enumerate() {
            item.customer_emb = embs.get(2 * i).cloned().unwrap_or_default();
            item.reply_emb = embs.get(2 * i + 1).cloned().unwrap_or_default();
        }
        Ok(ExemplarIndex { items })
    }

    /// The brand's `k` exemplars most like the message: cosine similarity of
    /// the customer messages, plus a bonus for the same language (strong: a
    /// reply in another language misleads a small model), channel and mood.
    pub fn select(&self, brand: &str, channel: &str, mood: &str, language: &str, message_emb: &[f32], k: usize) -> Vec<&Exemplar> {
        let mut scored: Vec<(f32, usize)> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.brand == brand)
            .map(|(n, i)| {
                let e = &i.exemplar;
                let mut s = cosine(message_emb, &i.customer_emb);
                s += if e.language == language { 0.5 } else { 0.0 };
                s += if e.channel == channel { 0.2 } else { 0.0 };
                s += if e.mood == mood { 0.15 } else { 0.0 };
                (s, n)
            })
            .collect();
        // Stable on ties: index order.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        // The chosen few go into the prompt in the guide's order, not by
        // similarity: two requests that pick the same exemplars then share
        // the prompt up to the customer's part (a longer cached prefix).
        let mut chosen: Vec<usize> = scored.into_iter().take(k).map(|(_, n)| n).collect();
        chosen.sort_unstable();
        chosen.into_iter().map(|n| &self.items[n].exemplar).collect()
    }

    /// The brand's `k` exemplars for a brand + channel + mood + language,
    /// without looking at the message: the same language first (a reply in
    /// another language misleads a small model), then the same channel, then
    /// the same mood; ties in the guide's order. Every request with the same
    /// four then gets the same exemplars, so the whole prompt up to the
    /// customer's turn is one shared prefix that the engine's prefix cache
    /// keeps (and `Drafter::warm` can fill ahead of time). Returned in the
    /// guide's order, like [`ExemplarIndex::select`].
    pub fn select_stable(&self, brand: &str, channel: &str, mood: &str, language: &str, k: usize) -> Vec<&Exemplar> {
        self.select(brand, channel, mood, language, &[], k)
    }

    /// Mean of the top-3 similarities of `reply_emb` to this brand's exemplar
    /// replies, and the same for the best other brand.
    pub fn voice_similarity(&self, brand: &str, reply_emb: &[f32]) -> (f32, f32) {
        let mut per_brand: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
        for i in &self.items {
            per_brand.entry(i.brand.as_str()).or_default().push(cosine(reply_emb, &i.reply_emb));
        }
        let top = |v: &mut Vec<f32>| {
            v.sort_by(|a, b| b.total_cmp(a));
            let n = v.len().min(3);
            if n == 0 {
                0.0
            } else {
                v[..n].iter().sum::<f32>() / n as f32
            }
        };
        let mut own = 0.0;
        let mut other = f32::NEG_INFINITY;
        for (b, mut v) in per_brand {
            let t = top(&mut v);
            if b == brand {
                own = t;
            } else {
                other = other.max(t);
            }
        }
        (own, if other.is_finite() { other } else { 0.0 })
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The rendered prompt: the shared system part, exemplar turns, the user part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptPlan {
    pub system: String,
    /// (customer message, reply) pairs of the most similar exemplars, in the guide's order.
    pub exemplars: Vec<(String, String)>,
    pub user: String,
}

/// The templates, loaded once.
pub struct Planner {
    env: Environment<'static>,
}

impl Planner {
    /// Loads `templates/draft.j2` and `templates/rewrite.j2` under `prompts_dir`.
    pub fn load(prompts_dir: &Path) -> Result<Self, DraftError> {
        let read = |name: &str| {
            let path = prompts_dir.join("templates").join(name);
            std::fs::read_to_string(&path).map_err(|e| invalid_file(&path, e))
        };
        Self::from_sources(&read("draft.j2")?, &read("rewrite.j2")?)
    }

    /// Compiles the two templates from their text.
    pub fn from_sources(draft: &str, rewrite: &str) -> Result<Self, DraftError> {
        let mut env = Environment::new();
        for (name, src) in [("draft.j2", draft), ("rewrite.j2", rewrite)] {
            env.add_template_owned(name.to_string(), src.to_string()).map_err(|e| invalid_file(Path::new(&format!("prompts/templates/{name}")), e))?;
        }
        Ok(Planner { env })
    }

    /// Renders the prompt for `req` in `language` with the customer's mood.
    pub fn render(
        &self,
        book: &StyleBook,
        data: &DraftingData,
        req: &ValidDraftRequest,
        mood: &str,
        language: &str,
        exemplars: &[&Exemplar],
    ) -> Result<PromptPlan, DraftError> {
        let brand = book.brand(&req.brand).ok_or_else(|| DraftError::Invalid { field: "brand".into(), message: format!("unknown brand `{}`", req.brand) })?;
        let g = &brand.guide;
        let profile = book.channels.channels.get(&req.channel).ok_or_else(|| DraftError::Invalid { field: "channel".into(), message: format!("unknown channel `{}`", req.channel) })?;
        let tone = effective_tone(book, &req.brand, mood);
        let brand_emoji_max = g.emoji.max.get(&req.channel).copied().unwrap_or(0);
        let emoji_max = tone.emoji_max.map_or(brand_emoji_max, |m| m.min(brand_emoji_max));
        let emoji_ok = profile.emoji && emoji_max > 0 && !g.emoji.allowed.is_empty();
        let length_hint = match &profile.length {
            Some(l) => format!("at most {} {} (aim for well under)", l.max, unit_name(&l.unit)),
            None => "short".to_string(),
        };
        let size = data.prompt_size(&req.channel);
        let ctx_brand = context! {
            name => &g.name,
            voice => &g.voice,
            voice_lead => first_sentence(&g.voice),
            traits => g.traits.iter().map(|t| context! { name => &t.name, description => &t.description }).collect::<Vec<_>>(),
            banned => g.vocabulary.banned.iter().filter(|b| b.term.is_ascii() || language != "en").map(|b| b.term.as_str()).collect::<Vec<_>>(),
        };
        let ctx_channel = context! {
            name => &req.channel,
            description => &profile.description,
            length_hint => length_hint,
            formality => format!("{:?}", profile.formality).to_lowercase(),
            emoji => emoji_ok,
            emoji_max => emoji_max,
            emoji_allowed => &g.emoji.allowed,
            links => profile.links,
            hashtags => profile.max_hashtags,
            public => profile.public,
            spoken => profile.spoken,
        };
        let ctx_mood = context! {
            name => mood,
            description => tone.description.clone().unwrap_or_default(),
            guidance => &tone.guidance,
            humour => tone.humour.unwrap_or(true),
            exclamation_max => tone.exclamation_max.unwrap_or(3),
        };
        let (template, draft) = match &req.mode {
            Mode::Reply => ("draft.j2", None),
            Mode::Rewrite { draft } => ("rewrite.j2", Some(draft.as_str())),
        };
        let tmpl = self.env.get_template(template).map_err(render_err)?;
        let system = tmpl
            .render(context! { part => "system", compact => size.compact, brand => &ctx_brand, channel => &ctx_channel, mood => &ctx_mood })
            .map_err(render_err)?;
        let history: Vec<_> = req.history.iter().map(|t| context! { role => &t.role, text => &t.text, channel => &t.channel }).collect();
        let facts: Vec<_> = req.facts.iter().map(|f| context! { text => &f.text, url => &f.url }).collect();
        let user = tmpl
            .render(context! {
                part => "user",
                history => history,
                customer => context! { name => &req.customer.name, tier => &req.customer.tier, facts => &req.customer.facts },
                facts => facts,
                language_name => data.language_name(language),
                channel_name => &req.channel,
                message => &req.message,
                draft => draft,
            })
            .map_err(render_err)?;
        let exemplars = exemplars.iter().map(|e| (e.customer.clone(), e.reply.clone())).collect();
        Ok(PromptPlan { system: system.trim().to_string(), exemplars, user: user.trim().to_string() })
    }
}

/// The first sentence of `text` (all of it when it has one).
fn first_sentence(text: &str) -> &str {
    let text = text.trim();
    crate::style::text::sentences(text).first().map_or(text, |r| &text[r.clone()])
}

fn render_err(e: minijinja::Error) -> DraftError {
    DraftError::Invalid { field: "prompts/templates".into(), message: format!("{e:#}") }
}

fn unit_name(u: &crate::style::length::LengthUnit) -> String {
    let s = u.to_string();
    match s.as_str() {
        "twitter characters" => "characters".into(),
        "SMS segments" => "SMS segments (about 150 characters each)".into(),
        other => other.to_string(),
    }
}

/// The mood's tone rules with the brand's overrides.
pub fn effective_tone(book: &StyleBook, brand: &str, mood: &str) -> MoodTone {
    let base = book.moods.moods.get(mood).cloned().unwrap_or_default();
    match book.brand(brand).and_then(|b| b.guide.moods.get(mood)) {
        Some(over) => base.merged(over),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::request::{validate, DraftRequest, Limits};
    use crate::style::lint::Fact;

    fn prompts() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
    }

    fn req(brand: &str, channel: &str, msg: &str, facts: Vec<Fact>) -> ValidDraftRequest {
        let book = StyleBook::load(prompts()).unwrap();
        validate(&book, &Limits::default(), DraftRequest { brand: brand.into(), channel: channel.into(), message: msg.into(), facts, seed: Some(1), ..Default::default() }).unwrap()
    }

    #[test]
    fn renders_shared_part_first_and_customer_part_last() {
        let book = StyleBook::load(prompts()).unwrap();
        let data = DraftingData::load(&prompts()).unwrap();
        let planner = Planner::load(&prompts()).unwrap();
        let fact = Fact { text: "arrives Friday 14 March".into(), url: Some("https://tunely.fm/t/1".into()) };
        let a = planner.render(&book, &data, &req("tunely", "twitter", "where is my hoodie??", vec![fact]), "angry", "en", &[]).unwrap();
        let b = planner.render(&book, &data, &req("tunely", "twitter", "the app crashed again", vec![]), "angry", "en", &[]).unwrap();
        // Same brand + channel + mood → identical system part (the cached prefix).
        assert_eq!(a.system, b.system);
        assert!(a.system.contains("Tunely") && a.system.contains("twitter") && a.system.contains("angry"), "{}", a.system);
        assert!(a.system.contains("No exclamation marks"), "{}", a.system);
        assert!(!a.system.contains("hoodie"));
        assert!(a.user.contains("arrives Friday 14 March — https://tunely.fm/t/1"), "{}", a.user);
        // The user part opens with the instruction line the exemplar turns use
        // (shared), then the request's own part: the message, then its facts.
        assert!(a.user.starts_with("Reply in English to this twitter message:\nwhere is my hoodie??\n\nFacts to use word for word:"), "{}", a.user);
        assert_eq!(b.user, "Reply in English to this twitter message:\nthe app crashed again");
        // Another mood or channel changes the system part.
        let c = planner.render(&book, &data, &req("tunely", "email", "the app crashed again", vec![]), "happy", "en", &[]).unwrap();
        assert_ne!(a.system, c.system);
        assert!(c.system.contains("No emoji."), "{}", c.system);
    }

    #[test]
    fn short_channels_get_the_compact_prompt() {
        let book = StyleBook::load(prompts()).unwrap();
        let data = DraftingData::load(&prompts()).unwrap();
        let planner = Planner::load(&prompts()).unwrap();
        assert_eq!(data.prompt_size("twitter"), PromptSize { exemplars: 2, compact: true });
        assert_eq!(data.prompt_size("email"), PromptSize::default());
        assert_eq!(PromptSize::default().exemplars, EXEMPLARS_PER_PROMPT);
        let voice = &book.brand("tunely").unwrap().guide.voice;
        let lead = first_sentence(voice);
        assert!(lead.starts_with("Tunely sounds like") && lead.ends_with("side.") && lead.len() < voice.trim().len(), "{lead}");
        let tw = planner.render(&book, &data, &req("tunely", "twitter", "the app crashed again", vec![]), "neutral", "en", &[]).unwrap();
        let em = planner.render(&book, &data, &req("tunely", "email", "the app crashed again", vec![]), "neutral", "en", &[]).unwrap();
        // Twitter: the voice's first sentence, trait names, the rules on two
        // lines, four of the allowed emoji; email: the whole voice and traits.
        assert!(tw.system.contains(&format!("Voice: {lead} Traits: warm, playful, plain-spoken.")), "{}", tw.system);
        assert!(!tw.system.contains("policy words") && em.system.contains("policy words"), "{}", tw.system);
        assert!(!tw.system.contains("glad you wrote") && em.system.contains("- warm: We sound like a person who is glad you wrote."));
        assert!(tw.system.contains("Emoji: at most 2, e.g. 🎵 🎶 🎧 💜.") && !tw.system.contains("🥳"), "{}", tw.system);
        assert!(tw.system.contains("- Links only from the facts; at most 1 hashtag; no account numbers, emails or phone numbers; no signature (it is added for you)."), "{}", tw.system);
        // What the mood and the facts rule say is kept in full.
        assert!(tw.system.contains("The customer is neutral:") && tw.system.contains("never invent order numbers"), "{}", tw.system);
        assert!(tw.system.len() * 4 < em.system.len() * 3, "{} vs {} bytes", tw.system.len(), em.system.len());
    }

    #[test]
    fn intent_inference_reads_keywords_in_three_languages() {
        let data = DraftingData::load(&prompts()).unwrap();
        assert_eq!(data.infer_intent("I was charged twice, I want a refund", &[]), "refund");
        assert_eq!(data.infer_intent("Tunelyまた落ちてる。障害？", &[]), "outage");
        assert_eq!(data.infer_intent("मेरा पासवर्ड काम नहीं कर रहा, लॉग इन नहीं हो रहा", &[]), "account_access");
        assert_eq!(data.infer_intent("hello there", &[]), "product_question");
        // "down" is a word, not a prefix of "downloads".
        assert_eq!(data.infer_intent("logged me out again and my downloads are gone", &[]), "account_access");
    }
}
