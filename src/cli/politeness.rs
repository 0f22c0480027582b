//! `brandvoice politeness TEXT|-` and `brandvoice politeness train`.
//!
//! Thin: load the scorer (or the corpus), call `brandvoice::score::politeness`,
//! print. Training prints the cross-validation report and writes the weights
//! file, recording the exact command in it.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use brandvoice::mood::embed::{self, Embedder};
use brandvoice::score::politeness::{self, Corpus, Politeness, PolitenessFile, Strategies, TrainOptions};

pub use super::Format;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PolitenessArgs {
    #[command(subcommand)]
    command: Option<PolitenessCommand>,
    /// The text to score, or `-` to read it from stdin.
    #[arg(required = true)]
    text: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Weights to use instead of models/score/politeness.json.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum PolitenessCommand {
    /// Train the ridge regression on the Stanford Politeness Corpus and write the weights.
    Train(TrainArgs),
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The corpus (columns Request, Normalized Score).
    #[arg(long, default_value = politeness::CORPUS_PATH)]
    data: PathBuf,
    /// Where to write the weights.
    #[arg(long, default_value = "models/score/politeness.json")]
    out: PathBuf,
    /// A strategies file to train with instead of the built-in prompts/politeness.yaml
    /// (for trying changes without a rebuild; ship by editing the built-in file).
    #[arg(long, value_name = "FILE")]
    strategies: Option<PathBuf>,
    /// Append the all-MiniLM-L6-v2 sentence embedding to the strategy features.
    #[arg(long)]
    embeddings: bool,
    /// Directory of all-MiniLM-L6-v2 (with --embeddings).
    #[arg(long, value_name = "DIR")]
    embedding_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    folds: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn politeness(a: PolitenessArgs) -> anyhow::Result<ExitCode> {
    if let Some(PolitenessCommand::Train(t)) = a.command {
        return train(t);
    }
    let text = match a.text.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the text from stdin")?;
            s
        }
        Some(t) => t.to_string(),
        None => anyhow::bail!("a TEXT argument is required"),
    };
    let file = match &a.weights {
        Some(p) => PolitenessFile::read(p)?,
        None => PolitenessFile::builtin()?,
    };
    let scorer = match &file.embedding {
        Some(_) => Politeness::load_with_embedder(file, Embedder::load(&embed::default_model_dir())?)?,
        None => Politeness::from_parts(Strategies::builtin()?, file, None)?,
    };
    let s = scorer.score(&text);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        Format::Text => println!("{:.0}  {}", s.score_0_100, s.reason),
    }
    Ok(ExitCode::SUCCESS)
}

fn train(t: TrainArgs) -> anyhow::Result<ExitCode> {
    let strategies = match &t.strategies {
        Some(p) => Strategies::read(p)?,
        None => Strategies::builtin()?,
    };
    let corpus = Corpus::read(&t.data)?;
    let embedder = if t.embeddings {
        let dir = t.embedding_dir.clone().unwrap_or_else(embed::default_model_dir);
        Some(Embedder::load(&dir)?)
    } else {
        None
    };
    let mut cmd = String::from("brandvoice politeness train");
    if t.embeddings {
        cmd += " --embeddings";
    }
    if t.folds != 10 {
        cmd += &format!(" --folds {}", t.folds);
    }
    if t.seed != 0 {
        cmd += &format!(" --seed {}", t.seed);
    }
    cmd += &format!(" --out {}", t.out.display());
    let made_with = format!(
        "{cmd}; data: Stanford Politeness Corpus, Wikipedia ({} requests, target Normalized Score); features: prompts/politeness.yaml{}",
        corpus.texts.len(),
        if t.embeddings { " + all-MiniLM-L6-v2 mean-pooled embedding" } else { "" }
    );
    let started = std::time::Instant::now();
    let opts = TrainOptions { folds: t.folds, seed: t.seed, ..Default::default() };
    let file = politeness::train(&strategies, &corpus, embedder.as_ref(), t.embeddings.then_some("all-minilm-l6-v2"), &opts, &made_with)?;
    file.write(&t.out)?;
    eprintln!("wrote {} in {:.1}s", t.out.display(), started.elapsed().as_secs_f64());
    println!("{}", serde_json::to_string_pretty(&file.cv)?);
    Ok(ExitCode::SUCCESS)
}
