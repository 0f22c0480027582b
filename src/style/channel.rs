//! Channel profiles (`prompts/channels.yaml`): what each place a reply goes
//! allows — public or private, how length is counted and its limit, formality,
//! emoji, links, hashtags, private data, whether a greeting and a sign-off
//! are expected. The rule engine turns each profile into `Channel.*` rules.

use super::length::LengthUnit;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The file `prompts/channels.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelBook {
    pub channels: BTreeMap<String, ChannelProfile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Formality {
    Casual,
    Neutral,
    Formal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PiiPolicy {
    /// Private data must not appear (public channels).
    Forbid,
    Allow,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LengthLimit {
    pub unit: LengthUnit,
    pub max: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelProfile {
    pub description: String,
    /// Everyone can read the reply.
    pub public: bool,
    pub formality: Formality,
    /// Hard length limit (error, fixed by truncating at a sentence boundary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<LengthLimit>,
    /// Soft limit on sentences (warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sentences: Option<u32>,
    /// Emoji may appear at all (the brand decides how many).
    pub emoji: bool,
    /// Links may appear (false for a phone script).
    pub links: bool,
    /// Most hashtags per reply.
    #[serde(default)]
    pub max_hashtags: u32,
    pub pii: PiiPolicy,
    /// A greeting is expected at the start.
    #[serde(default)]
    pub greeting: bool,
    /// A sign-off is expected at the end.
    #[serde(default)]
    pub sign_off: bool,
    /// What goes between the body and an appended sign-off or phrase.
    #[serde(default = "space")]
    pub separator: String,
    /// Read aloud by an agent (phone).
    #[serde(default)]
    pub spoken: bool,
}

fn space() -> String {
    " ".into()
}
