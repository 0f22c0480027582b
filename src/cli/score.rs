//! `brandvoice score --brand B --channel C --mood M TEXT|-` — the
//! tone-consistency score of any reply, 0–100 per goal with a one-line
//! reason, overall and its green/yellow/red band. No language model: the
//! scorer needs the style book, the sentence embedder and the politeness
//! weights only. Thin: arguments → `score::scorer::ToneScorer::score` → print.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use brandvoice::mood::MoodDetector;
use brandvoice::score::scorer::{ScoreTarget, ToneScorer};
use brandvoice::score::ScoringConfig;
use brandvoice::style::lint::StyleBook;

pub use super::Format;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// The reply to score, or `-` to read it from stdin.
    text: String,
    #[arg(long)]
    brand: String,
    #[arg(long)]
    channel: String,
    /// The customer's mood the reply answers (one of the seven).
    #[arg(long)]
    mood: String,
    /// Language of the reply (detected when absent).
    #[arg(long)]
    language: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn score(a: ScoreArgs) -> anyhow::Result<ExitCode> {
    let text = if a.text == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the text from stdin")?;
        s
    } else {
        a.text.clone()
    };
    let dir = brandvoice::style::default_prompts_dir();
    let book = Arc::new(StyleBook::load(&dir)?);
    let cfg = ScoringConfig::load(&dir)?;
    let mood = Arc::new(MoodDetector::load().context("loading the sentence embedder")?);
    let language = match a.language.clone() {
        Some(l) => l,
        None => {
            let detected = mood.analyze(&text).map(|r| r.language.code).unwrap_or_else(|_| "en".into());
            let served = book.brand(&a.brand).map(|b| b.guide.languages.clone()).unwrap_or_default();
            if served.contains(&detected) { detected } else { served.first().cloned().unwrap_or(detected) }
        }
    };
    let scorer = ToneScorer::new(book, mood, cfg)?;
    let s = scorer.score(&ScoreTarget { brand: &a.brand, channel: &a.channel, mood: &a.mood, language: &language, text: &text, violations: None })?;
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            let v = serde_json::json!({"brand": a.brand, "channel": a.channel, "mood": a.mood, "language": language, "overall": s.overall, "band": s.band, "parts": s.parts, "reasons": s.reasons});
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
        Format::Text => {
            writeln!(out, "overall {:.1} ({})", s.overall, s.band)?;
            for (k, v) in &s.parts {
                writeln!(out, "  {k:<12} {v:>5.1}  {}", s.reasons.get(k).map(String::as_str).unwrap_or(""))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
