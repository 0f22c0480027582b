//! `brandvoice mood TEXT|-`, `mood --eval DIR`, `mood train`, and `brandvoice triage FILE.jsonl`.
//!
//! Thin: parse arguments, load the detector once, call `brandvoice::mood`,
//! print. Triage validates every JSONL line up front so a bad line is reported
//! with its number before any work is done (or skipped with `--skip-bad`), then
//! analyses in batches so the embedding model runs with little padding.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use brandvoice::mood::{self, eval, train, HeadsFile, MoodDetector, MoodReport};
use serde::{Deserialize, Serialize};

pub use super::Format;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MoodArgs {
    #[command(subcommand)]
    command: Option<MoodCommand>,
    /// The customer message, or `-` to read it from stdin.
    #[arg(required_unless_present_any = ["eval", "eval_moods"])]
    text: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Earlier messages from the same customer, oldest first (repeatable).
    #[arg(long)]
    history: Vec<String>,
    /// Evaluate on a TweetEval-layout directory (sentiment/, emotion/ with
    /// {split}_text.txt, {split}_labels.txt, mapping.txt); prints JSON.
    #[arg(long, value_name = "DIR")]
    eval: Option<PathBuf>,
    /// Score the seven moods on a multilingual set (a directory of LANG.jsonl files with
    /// {"text", "mood"} lines, e.g. eval/mood); prints JSON.
    #[arg(long, value_name = "DIR", conflicts_with = "eval")]
    eval_moods: Option<PathBuf>,
    /// Which split files `--eval` reads.
    #[arg(long, default_value = "test")]
    split: String,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(clap::Args, Clone)]
pub struct LoadArgs {
    /// Head weights to use instead of the built-in models/mood/heads.json.
    #[arg(long, value_name = "FILE")]
    heads: Option<PathBuf>,
    /// Directory of all-MiniLM-L6-v2 (model.safetensors, tokenizer.json, config.json).
    #[arg(long, value_name = "DIR")]
    embedding_dir: Option<PathBuf>,
    /// Score the mood of non-Latin-script messages (Japanese, Hindi, …) with this local
    /// language model too (e.g. qwen2.5-0.5b), instead of the lexicon alone.
    #[arg(long, value_name = "MODEL")]
    lm: Option<String>,
    /// Share of the language model against the lexicon on that path, 0..=1.
    #[arg(long, value_name = "W", default_value_t = mood::LM_WEIGHT)]
    lm_weight: f32,
}

impl LoadArgs {
    fn load(&self) -> anyhow::Result<MoodDetector> {
        if !(0.0..=1.0).contains(&self.lm_weight) {
            bail!("--lm-weight must be between 0 and 1, got {}", self.lm_weight);
        }
        let heads = match &self.heads {
            Some(p) => HeadsFile::read(p)?,
            None => HeadsFile::builtin()?,
        };
        let dir = self.embedding_dir.clone().unwrap_or_else(mood::embed::default_model_dir);
        let det = MoodDetector::load_with(&dir, heads)?;
        Ok(match &self.lm {
            Some(spec) => det.with_lm(mood::lm::LmMood::load(spec)?, self.lm_weight),
            None => det,
        })
    }
}

#[derive(clap::Subcommand)]
pub enum MoodCommand {
    /// Train the sentiment and emotion heads and write the weights file.
    Train(TrainArgs),
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// TweetEval-layout data: emotion train+val, sentiment val.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tweeteval"))]
    data: PathBuf,
    /// Where to write the weights.
    #[arg(long, default_value = "models/mood/heads.json")]
    out: PathBuf,
    /// Folds for cross-validation.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Full-batch optimiser steps per head.
    #[arg(long, default_value_t = 300)]
    epochs: usize,
    /// Also train sentiment on emotion tweets as weak labels (anger/sadness → negative,
    /// joy/optimism → positive).
    #[arg(long)]
    sentiment_extra: bool,
    /// Train the format-1 recipe (embedding + signals, weak labels) instead of the default.
    #[arg(long)]
    baseline: bool,
    /// Also measure every recipe variant and print the table (slow: ~10 models × 5 folds).
    #[arg(long)]
    variants: bool,
    /// Keep tweet embeddings in this directory between runs (they take minutes to compute).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Directory of all-MiniLM-L6-v2.
    #[arg(long, value_name = "DIR")]
    embedding_dir: Option<PathBuf>,
}

pub fn mood(a: MoodArgs) -> anyhow::Result<ExitCode> {
    if let Some(MoodCommand::Train(t)) = a.command {
        return run_train(t);
    }
    if let Some(dir) = &a.eval {
        return run_eval(dir, &a.split, &a.load);
    }
    if let Some(dir) = &a.eval_moods {
        let set = eval::load_mood_set(dir)?;
        let det = a.load.load()?;
        let scores = eval::score_mood_set(&det, &set)?;
        println!("{}", serde_json::to_string_pretty(&scores)?);
        return Ok(ExitCode::SUCCESS);
    }
    let text = match a.text.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the message from stdin")?;
            s
        }
        Some(t) => t.to_string(),
        None => bail!("give a message (TEXT or - for stdin), or --eval DIR"),
    };
    mood::validate(&text)?;
    let det = a.load.load()?;
    let history: Vec<&str> = a.history.iter().map(|s| s.as_str()).collect();
    let r = det.analyze_with_history(&text, &history)?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Format::Text => print_text(&r),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &MoodReport) {
    let top = |v: &[mood::Scored]| {
        v.iter().map(|s| format!("{} {:.2}", s.label, s.probability)).collect::<Vec<_>>().join(", ")
    };
    println!("mood:       {} ({:.2})", r.mood, r.confidence);
    println!("            {}", top(&r.moods));
    println!("polarity:   {} ({})", r.polarity, top(&r.polarities));
    println!("emotion:    {}", top(&r.emotion));
    println!(
        "language:   {} (confidence {:.2}, {}{})",
        r.language.code,
        r.language.confidence,
        r.language.script,
        if r.language.reliable { "" } else { ", unreliable" }
    );
    let s = &r.signals;
    let mut ev = Vec::new();
    if s.all_caps_words > 0 {
        ev.push(format!("ALL-CAPS words {} ({:.0}% of letters)", s.all_caps_words, s.caps_ratio * 100.0));
    }
    if s.exclamations > 0 {
        ev.push(format!("'!' x{}", s.exclamations));
    }
    if s.questions > 0 {
        ev.push(format!("'?' x{}", s.questions));
    }
    if s.repeated_punctuation {
        ev.push("repeated punctuation".into());
    }
    if s.elongated_words > 0 {
        ev.push(format!("elongated words {}", s.elongated_words));
    }
    if !s.emoji.is_empty() {
        ev.push(format!("emoji {}", s.emoji.join("")));
    }
    if s.negations > 0 {
        ev.push(format!("negations {}", s.negations));
    }
    if s.intensifiers > 0 {
        ev.push(format!("intensifiers {}", s.intensifiers));
    }
    for (c, found) in &s.cues {
        ev.push(format!("{c}: {}", found.join(", ")));
    }
    println!("signals:    {}", if ev.is_empty() { "none".to_string() } else { ev.join("; ") });
    if r.escalation.is_empty() {
        println!("escalation: none");
    } else {
        let f: Vec<String> = r.escalation.iter().map(|f| format!("{} ({:?})", f.kind, f.matched)).collect();
        println!("escalation: {}", f.join(", "));
    }
    println!("needs reply: {} (priority {}, method {})", if r.needs_reply { "yes" } else { "no" }, r.priority, r.method);
}

#[derive(Serialize)]
struct EvalOutput {
    dir: String,
    split: String,
    note: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentiment: Option<eval::Metrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emotion: Option<eval::Metrics>,
}

fn run_eval(dir: &Path, split: &str, load: &LoadArgs) -> anyhow::Result<ExitCode> {
    let tasks = eval::available_tasks(dir, split);
    if tasks.is_empty() {
        return Err(eval::EvalError::NoTask { dir: dir.to_path_buf(), split: split.to_string() }.into());
    }
    // Load (and check) all data before the model.
    let data: Vec<eval::TaskData> = tasks.iter().map(|t| eval::load_task(dir, t, split)).collect::<Result<_, _>>()?;
    let det = load.load()?;
    let mut out = EvalOutput {
        dir: dir.display().to_string(),
        split: split.to_string(),
        note: "official metric: sentiment macro_recall, emotion macro_f1",
        sentiment: None,
        emotion: None,
    };
    for d in data {
        let refs: Vec<&str> = d.texts.iter().map(|s| s.as_str()).collect();
        // Blank lines cannot be analysed; they count as wrong (predicted class -1 never matches).
        let mut pred = vec![usize::MAX; refs.len()];
        let idx: Vec<usize> = (0..refs.len()).filter(|&i| mood::validate(refs[i]).is_ok()).collect();
        let ok: Vec<&str> = idx.iter().map(|&i| refs[i]).collect();
        let reports = det.analyze_batch(&ok)?;
        for (&i, r) in idx.iter().zip(&reports) {
            let (names, chosen) = if d.task == "sentiment" { (&r.polarities, &r.polarity) } else { (&r.emotion, &best(&r.emotion)) };
            let label = names.iter().find(|s| &s.label == chosen).map(|s| s.label.clone()).unwrap_or_default();
            pred[i] = d.labels.iter().position(|l| *l == label).with_context(|| {
                format!("{}/{}/mapping.txt has no label {label:?} (expected TweetEval's label names)", dir.display(), d.task)
            })?;
        }
        // Wrong-by-construction for unanalysable lines: pick a class that is not the gold one.
        for (i, p) in pred.iter_mut().enumerate() {
            if *p == usize::MAX {
                *p = (d.gold[i] + 1) % d.labels.len();
            }
        }
        let m = eval::Metrics::compute_named(&d.labels, &d.gold, &pred);
        if d.task == "sentiment" {
            out.sentiment = Some(m);
        } else {
            out.emotion = Some(m);
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

fn best(v: &[mood::Scored]) -> String {
    v.iter()
        .fold(None::<&mood::Scored>, |b, s| match b {
            Some(b) if b.probability >= s.probability => Some(b),
            _ => Some(s),
        })
        .map(|s| s.label.clone())
        .unwrap_or_default()
}

fn run_train(t: TrainArgs) -> anyhow::Result<ExitCode> {
    let dir = t.embedding_dir.clone().unwrap_or_else(mood::embed::default_model_dir);
    let embedder = mood::Embedder::load(&dir)?;
    let lexicon = mood::Lexicon::builtin()?;
    if t.folds < 2 {
        bail!("--folds must be at least 2, got {}", t.folds);
    }
    let opts = train::TrainOptions {
        data_dir: t.data.clone(),
        folds: t.folds,
        epochs: t.epochs,
        recipe: {
            let r = if t.baseline { train::Recipe::BASELINE } else { train::Recipe::DEFAULT };
            train::Recipe { sentiment_extra: r.sentiment_extra || t.sentiment_extra, ..r }
        },
        variants: t.variants,
        cache_dir: t.cache.clone(),
    };
    let start = Instant::now();
    let heads = train::train(&embedder, &lexicon, &opts, &|m| eprintln!("[{:>6.1}s] {m}", start.elapsed().as_secs_f32()))?;
    train::write(&heads, &t.out)?;
    eprintln!("wrote {}", t.out.display());
    println!("{}", serde_json::to_string_pretty(&heads.report)?);
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct TriageArgs {
    /// JSONL file with one {"id", "text"} object per line, or `-` for stdin.
    file: PathBuf,
    /// Write the results here instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Report bad lines on stderr and go on, instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// Messages per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Emit the full report for each message, not the triage summary.
    #[arg(long)]
    full: bool,
    /// Fast path for bulk queues: skip the embedding model and use the n-gram
    /// heads + lexicon (~10× the throughput, lower accuracy; see BENCHMARKS.md).
    #[arg(long)]
    fast: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriageIn {
    id: serde_json::Value,
    text: String,
}

/// One line of triage output.
#[derive(Serialize)]
struct TriageOut<'a> {
    id: &'a serde_json::Value,
    mood: &'a str,
    confidence: f32,
    polarity: &'a str,
    language: &'a str,
    escalation: Vec<&'a str>,
    needs_reply: bool,
    priority: &'a str,
}

#[derive(Serialize)]
struct TriageFull<'a> {
    id: &'a serde_json::Value,
    #[serde(flatten)]
    report: &'a MoodReport,
}

/// Parses and checks one JSONL line.
fn parse_line(line: &str) -> Result<TriageIn, String> {
    let v: TriageIn = serde_json::from_str(line).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("missing field") || msg.contains("unknown field") || msg.contains("invalid type") {
            format!("{msg} (expected {{\"id\": string or number, \"text\": string}})")
        } else {
            format!("not valid JSON: {msg}")
        }
    })?;
    if !(v.id.is_string() || v.id.is_number()) {
        return Err(format!("`id` must be a string or a number, got {}", v.id));
    }
    mood::validate(&v.text).map_err(|e| format!("`text`: {e}"))?;
    Ok(v)
}

pub fn triage(a: TriageArgs) -> anyhow::Result<ExitCode> {
    let name = a.file.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&a.file).with_context(|| format!("cannot open {name}"))?,
        ))
    };
    if a.batch == 0 {
        bail!("--batch must be at least 1, got 0");
    }
    let mut items = Vec::new();
    let mut bad = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}:{}: cannot read line", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(v) => items.push(v),
            Err(e) if a.skip_bad => {
                eprintln!("{name}:{}: {e} (skipped)", i + 1);
                bad += 1;
            }
            Err(e) => bail!("{name}:{}: {e}", i + 1),
        }
    }
    let det = a.load.load()?;
    if a.fast && !det.has_fast_path() {
        bail!("--fast needs n-gram heads in the heads file (format 2, `brandvoice mood train`); this one has none");
    }
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = indicatif::ProgressBar::new(items.len() as u64);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let start = Instant::now();
    for chunk in items.chunks(a.batch) {
        let texts: Vec<&str> = chunk.iter().map(|m| m.text.as_str()).collect();
        let reports = if a.fast { det.analyze_batch_fast(&texts)? } else { det.analyze_batch(&texts)? };
        for (m, r) in chunk.iter().zip(&reports) {
            let line = if a.full {
                serde_json::to_string(&TriageFull { id: &m.id, report: r })?
            } else {
                serde_json::to_string(&TriageOut {
                    id: &m.id,
                    mood: &r.mood,
                    confidence: r.confidence,
                    polarity: &r.polarity,
                    language: &r.language.code,
                    escalation: r.escalation.iter().map(|f| f.kind.as_str()).collect(),
                    needs_reply: r.needs_reply,
                    priority: &r.priority,
                })?
            };
            writeln!(out, "{line}")?;
        }
        bar.inc(chunk.len() as u64);
    }
    out.flush()?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "triaged {} messages in {:.2}s ({:.0}/s){}",
        items.len(),
        secs,
        items.len() as f64 / secs.max(1e-9),
        if bad > 0 { format!(", {bad} bad lines skipped") } else { String::new() }
    );
    Ok(ExitCode::SUCCESS)
}
