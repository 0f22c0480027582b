//! Tweet-aware text normalisation and VADER scores, as extra evidence for the heads.
//!
//! Why: all-MiniLM-L6-v2 reads emoji as `[UNK]` and a hashtag such as
//! `#NeverAgain` as sub-word noise, yet tweets and customer messages carry
//! much of their mood there. TweetEval's own baselines normalise the same
//! way (`@user`, `http`, hashtags split into words, emoji spelled out).
//! VADER (Hutto & Gilbert 2014, the `vader_sentiment` port of the reference
//! implementation) is a rule-based polarity scorer tuned on social media;
//! its four scores are features next to the embedding, not a replacement.

use unicode_segmentation::UnicodeSegmentation;

/// Number of VADER features ([`vader_features`]).
pub const VADER_FEATURES: usize = 4;

/// Normalises a tweet for the embedding model and the n-gram model:
/// `@name` → `@user`, URLs → `http`, `#CamelCase` → `camel case`, emoji →
/// their names (`😡` → ` pouting face `), runs of whitespace collapsed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        if word.starts_with('@') && word.len() > 1 {
            out.push_str("@user");
        } else if word.starts_with("http://") || word.starts_with("https://") || word.starts_with("www.") {
            out.push_str("http");
        } else if let Some(tag) = word.strip_prefix('#').filter(|t| !t.is_empty()) {
            out.push_str(&split_hashtag(tag));
        } else {
            push_with_emoji_names(&mut out, word);
        }
    }
    out
}

/// `NeverAgain` → `never again`, `worst_day_ever` → `worst day ever`; a
/// lower-case tag stays one word (no dictionary to split it by).
fn split_hashtag(tag: &str) -> String {
    let mut s = String::with_capacity(tag.len() + 4);
    let mut prev: Option<char> = None;
    for c in tag.chars() {
        if c == '_' {
            s.push(' ');
            prev = Some(' ');
            continue;
        }
        if let Some(p) = prev {
            let boundary = (c.is_uppercase() && p.is_lowercase()) || (c.is_ascii_digit() != p.is_ascii_digit() && p != ' ');
            if boundary {
                s.push(' ');
            }
        }
        s.extend(c.to_lowercase());
        prev = Some(c);
    }
    s
}

fn push_with_emoji_names(out: &mut String, word: &str) {
    for g in word.graphemes(true) {
        // Emoji with a skin tone or ZWJ: the name of the base emoji.
        let base: String = g.chars().take(1).collect();
        match vader_sentiment::EMOJI_LEXICON.get(g).or_else(|| vader_sentiment::EMOJI_LEXICON.get(base.as_str())) {
            Some(name) if super::signals::is_emoji(base.chars().next().unwrap_or(' ')) => {
                out.push(' ');
                out.push_str(name);
                out.push(' ');
            }
            _ => out.push_str(g),
        }
    }
}

/// VADER's scores for `text`: [negative, neutral, positive, compound], each
/// in [0, 1] except compound in [-1, 1]. Text VADER cannot score gives zeros.
pub fn vader_features(text: &str) -> [f32; VADER_FEATURES] {
    thread_local! {
        static ANALYZER: vader_sentiment::SentimentIntensityAnalyzer<'static> =
            vader_sentiment::SentimentIntensityAnalyzer::new();
    }
    // The port indexes tokens without bounds checks in a few rare shapes; a
    // feature extractor must never take a request down.
    let scores = std::panic::catch_unwind(|| {
        ANALYZER.with(|a| {
            let s = a.polarity_scores(text);
            let g = |k: &str| s.get(k).copied().unwrap_or(0.0) as f32;
            [g("neg"), g("neu"), g("pos"), g("compound")]
        })
    });
    scores.unwrap_or([0.0; VADER_FEATURES])
}

pub fn vader_feature_names() -> Vec<String> {
    ["vader_neg", "vader_neu", "vader_pos", "vader_compound"].iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_tweeteval() {
        assert_eq!(normalize("@jack see https://t.co/x #NeverAgain"), "@user see http never again");
        assert_eq!(normalize("#worst_day_ever #fail"), "worst day ever fail");
        let n = normalize("love it 😍");
        assert!(n.starts_with("love it") && n.contains("heart") && n.contains("eyes"), "{n}");
        assert_eq!(normalize("  a   b "), "a b");
    }

    #[test]
    fn vader_reads_polarity() {
        let pos = vader_features("I love this, best day ever! :)");
        let neg = vader_features("This is terrible, I hate it.");
        assert!(pos[3] > 0.5 && neg[3] < -0.5, "{pos:?} {neg:?}");
        assert_eq!(vader_features(""), [0.0; VADER_FEATURES]);
        // Odd shapes must not panic.
        for t in ["!", "but", "kind of", "no", "???!!!", "😡", "at least", "without doubt"] {
            let _ = vader_features(t);
        }
    }
}
