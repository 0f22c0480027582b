//! The mood→tone table (`prompts/moods.yaml`): for each customer mood, how
//! the reply's tone must change (angry: no humour, no exclamation marks, one
//! apology at most, acknowledge first). Brands override single fields in their
//! guide's `moods:`. The phrase lists that make "apology" or
//! "acknowledgement" checkable are per language and live here too, as data.
//! Detecting the mood is `src/mood/`'s job; this is only the table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Language code → phrases.
pub type PhraseList = BTreeMap<String, Vec<String>>;

/// The file `prompts/moods.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoodBook {
    pub phrases: MoodPhrases,
    pub moods: BTreeMap<String, MoodTone>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoodPhrases {
    /// Ways of saying sorry.
    pub apology: PhraseList,
    /// Ways of acknowledging the problem (an apology also counts).
    pub acknowledgement: PhraseList,
    /// Markers of joking.
    pub humour: PhraseList,
    /// Ways of promising a concrete next step.
    pub next_step: PhraseList,
}

/// Tone adjustments for one mood. Every field is optional so a brand can
/// override one of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoodTone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Jokes and playfulness allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humour: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclamation_max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji_max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apologies_max: Option<u32>,
    /// The reply opens by acknowledging the problem (within two sentences).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_first: Option<bool>,
    /// The reply names one concrete next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<bool>,
    /// Shouted (ALL-CAPS) words allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps_words_max: Option<u32>,
    /// Tone instructions for the drafting prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guidance: Vec<String>,
}

impl MoodTone {
    /// This tone with every field `over` sets replaced.
    pub fn merged(&self, over: &MoodTone) -> MoodTone {
        MoodTone {
            description: over.description.clone().or_else(|| self.description.clone()),
            humour: over.humour.or(self.humour),
            exclamation_max: over.exclamation_max.or(self.exclamation_max),
            emoji_max: over.emoji_max.or(self.emoji_max),
            apologies_max: over.apologies_max.or(self.apologies_max),
            acknowledge_first: over.acknowledge_first.or(self.acknowledge_first),
            next_step: over.next_step.or(self.next_step),
            caps_words_max: over.caps_words_max.or(self.caps_words_max),
            guidance: if over.guidance.is_empty() { self.guidance.clone() } else { over.guidance.clone() },
        }
    }
}
