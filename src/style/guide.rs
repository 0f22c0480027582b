//! The brand style guide as marketers write it (`prompts/brands/<id>.yaml`).
//!
//! Plain data with `deny_unknown_fields` everywhere: the JSON Schema the
//! loader validates against (and that we commit as `prompts/brand.schema.json`)
//! is generated from these types, so a misspelt key is an error that names
//! the key. Maps keyed by channel, mood or language are checked against
//! `channels.yaml`, `moods.yaml` and the guide's own `languages` after
//! loading (`lint::StyleBook::load`), with the key path and line of each
//! mistake. Doc comments become the schema's descriptions.

use super::mood::MoodTone;
use super::rule::RuleSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Channel id → language code → templates.
pub type PerChannelLang = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// A brand's voice, vocabulary and rules.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StyleGuide {
    /// Lower-case id used on the command line (`--brand tunely`).
    pub id: String,
    /// Display name; alerts from the brand's rules are named `Name.Rule`.
    pub name: String,
    /// One paragraph: who the brand sounds like.
    pub voice: String,
    /// Personality traits with examples of what to do and not do.
    #[serde(default)]
    pub traits: Vec<Trait>,
    /// Languages served (ISO 639-1), the default first.
    pub languages: Vec<String>,
    #[serde(default)]
    pub vocabulary: Vocabulary,
    /// Greeting templates per channel and language (`{{name}}` placeholders allowed).
    #[serde(default)]
    pub greetings: PerChannelLang,
    /// Sign-off templates per channel and language; the first placeholder-free one is used by fixes.
    #[serde(default)]
    pub sign_offs: PerChannelLang,
    #[serde(default)]
    pub emoji: EmojiPolicy,
    /// Phrases a reply must contain (disclosures), per channel.
    #[serde(default)]
    pub required_phrases: Vec<RequiredPhrase>,
    /// Changes to the shared mood→tone table for this brand.
    #[serde(default)]
    pub moods: BTreeMap<String, MoodTone>,
    /// Shared rule packs from `prompts/rules/` to apply (by file name without `.yaml`).
    #[serde(default)]
    pub packs: Vec<String>,
    /// Rules to switch off, by full name (`Common.Jargon`).
    #[serde(default)]
    pub disable: Vec<String>,
    /// The brand's own rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Example replies in the brand's voice.
    #[serde(default)]
    pub exemplars: Vec<Exemplar>,
    /// Approved replies per intent and language, with `{{placeholders}}` for facts.
    #[serde(default)]
    pub fallbacks: BTreeMap<String, BTreeMap<String, String>>,
    /// Competitors' names (any language's spelling): a reply that names one is
    /// an error (`Name.Competitors`), whether it praises or criticises them.
    #[serde(default)]
    pub competitors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trait {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub r#do: Vec<String>,
    #[serde(default)]
    pub dont: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vocabulary {
    /// Words the brand never uses.
    #[serde(default)]
    pub banned: Vec<BannedTerm>,
    /// Preferred words and what they replace.
    #[serde(default)]
    pub preferred: Vec<PreferredTerm>,
    /// Product and feature names in their exact capitalisation.
    #[serde(default)]
    pub products: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BannedTerm {
    pub term: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferredTerm {
    /// The word to use.
    pub r#use: String,
    /// The words it replaces.
    pub instead_of: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmojiPolicy {
    /// The only emoji the brand uses (empty: any).
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Most emoji per reply, per channel; channels not listed allow none.
    #[serde(default)]
    pub max: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequiredPhrase {
    /// Short name used in the alert (`Brand.Required`).
    pub id: String,
    /// Channels where it is required (empty: all).
    #[serde(default)]
    pub channels: Vec<String>,
    /// The phrase per language; every language the brand serves needs one.
    pub text: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exemplar {
    pub channel: String,
    pub mood: String,
    pub language: String,
    /// What the customer wrote.
    pub customer: String,
    /// The reply in the brand's voice.
    pub reply: String,
    /// Facts the reply had to carry.
    #[serde(default)]
    pub facts: Vec<super::lint::Fact>,
}

/// The intents every brand needs an approved fallback for.
pub const REQUIRED_INTENTS: [&str; 5] = ["delivery_delay", "refund", "outage", "account_access", "product_question"];

/// Fill `{{placeholders}}` from a map; unknown placeholders are left as they are.
pub fn fill_placeholders(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                let name = after[..j].trim();
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 2 + j + 2]),
                }
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Placeholder names used in a template.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        out.push(after[..j].trim().to_string());
        rest = &after[j + 2..];
    }
    out
}
