//! `brandvoice reviews import|export|stats`.
//!
//! Thin: open the store (or read a long-format CSV), call
//! `brandvoice::store` / `brandvoice::eval::agreement`, print. `stats` runs
//! the same report code over the store (one report per goal, plus A/B
//! preference counts) and over any CSV with one row per rating, so ratings
//! made in another tool are checked with exactly the same statistics.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use brandvoice::eval::agreement::{self, AgreementOptions, AgreementReport};
use brandvoice::eval::csv;
use brandvoice::eval::stats::{Bootstrap, Ratings};
use brandvoice::store::{self, ImportFormat, ImportOptions, ReviewStore, GOALS};
use serde::Serialize;

pub use super::Format as StatsFormat;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    PairwiseCsv,
}

#[derive(clap::Args, Clone)]
pub struct DbArg {
    /// The review store (SQLite). Default: $BRANDVOICE_DB, else
    /// $BRANDVOICE_HOME/reviews.sqlite, else ~/.local/share/brandvoice/reviews.sqlite.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
}

impl DbArg {
    fn open(&self) -> anyhow::Result<ReviewStore> {
        let path = self.db.clone().unwrap_or_else(store::default_db_path);
        Ok(ReviewStore::open(&path)?)
    }
}

#[derive(clap::Subcommand)]
pub enum ReviewsCommand {
    /// Import reviews and A/B judgements from JSONL or CSV files (all or nothing per file).
    Import(ImportArgs),
    /// Export reviews as JSONL (with A/B judgements) or CSV.
    Export(ExportArgs),
    /// Agreement statistics over the store, or over a long-format CSV with --from-csv.
    Stats(StatsArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Files to import (.jsonl or .csv; --format overrides the extension).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, value_enum)]
    format: Option<ImportFileFormat>,
    /// Skip rows already in the store instead of failing.
    #[arg(long)]
    skip_existing: bool,
    #[command(flatten)]
    db: DbArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ImportFileFormat {
    Jsonl,
    Csv,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    /// Only this run (pairwise: either side).
    #[arg(long)]
    run: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    db: DbArg,
}

#[derive(clap::Args)]
pub struct StatsArgs {
    /// Only this run's reviews.
    #[arg(long, conflicts_with = "from_csv")]
    run: Option<String>,
    /// Only these goals (repeatable; default all seven).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(GOALS), conflicts_with = "from_csv")]
    goal: Vec<String>,
    /// Read ratings from a long-format CSV (one row per rating) instead of the store.
    #[arg(long, value_name = "FILE", requires_all = ["unit", "rater", "score"])]
    from_csv: Option<PathBuf>,
    /// --from-csv: the column naming the rated unit.
    #[arg(long, value_name = "COL")]
    unit: Option<String>,
    /// --from-csv: the column naming the rater.
    #[arg(long, value_name = "COL")]
    rater: Option<String>,
    /// --from-csv: the column holding the rating (a number).
    #[arg(long, value_name = "COL")]
    score: Option<String>,
    /// --from-csv: a column holding the automatic score of the unit (optional).
    #[arg(long, value_name = "COL", requires = "from_csv")]
    auto: Option<String>,
    /// The rating scale as MIN..MAX (integers) for kappa weights; default 1..5 for
    /// the store, the values that occur for a CSV.
    #[arg(long, value_name = "MIN..MAX")]
    scale: Option<String>,
    /// Kappa only for reviewer pairs sharing at least this many units.
    #[arg(long, default_value_t = 5)]
    min_shared: usize,
    /// Bootstrap resamples for confidence intervals (0 = none).
    #[arg(long, default_value_t = 0)]
    bootstrap: usize,
    /// Seed for the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "text")]
    format: StatsFormat,
    #[command(flatten)]
    db: DbArg,
}

pub fn run(c: ReviewsCommand) -> anyhow::Result<ExitCode> {
    match c {
        ReviewsCommand::Import(a) => import(a),
        ReviewsCommand::Export(a) => export(a),
        ReviewsCommand::Stats(a) => stats(a),
    }
}

fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut store = a.db.open()?;
    for path in &a.files {
        let format = match a.format {
            Some(ImportFileFormat::Jsonl) => ImportFormat::Jsonl,
            Some(ImportFileFormat::Csv) => ImportFormat::Csv,
            None => ImportFormat::from_path(path)
                .with_context(|| format!("{}: cannot tell the format from the extension (use .jsonl or .csv, or --format)", path.display()))?,
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.display().to_string();
        let s = store.import(&name, &text, format, ImportOptions { skip_existing: a.skip_existing })?;
        eprintln!("{name}: imported {} reviews, {} pairwise judgements, skipped {}", s.reviews, s.pairwise, s.skipped);
    }
    Ok(ExitCode::SUCCESS)
}

fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = a.db.open()?;
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let run = a.run.as_deref();
    let n = match a.format {
        ExportFormat::Jsonl => store.export_jsonl(run, &mut out)?,
        ExportFormat::Csv => store.export_csv(run, &mut out)?,
        ExportFormat::PairwiseCsv => store.export_pairwise_csv(run, &mut out)?,
    };
    out.flush()?;
    eprintln!("exported {n} rows");
    Ok(ExitCode::SUCCESS)
}

fn parse_scale(s: &str) -> anyhow::Result<Vec<f64>> {
    let bad = || anyhow::anyhow!("--scale: must be MIN..MAX with integers MIN < MAX and at most 1000 points, got {s:?}");
    let (lo, hi) = s.split_once("..").ok_or_else(bad)?;
    let (lo, hi): (i64, i64) = (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?);
    if lo >= hi || hi - lo > 1000 {
        return Err(bad());
    }
    Ok((lo..=hi).map(|v| v as f64).collect())
}

#[derive(Serialize)]
struct CsvStats {
    file: String,
    unit: String,
    rater: String,
    score: String,
    #[serde(flatten)]
    report: AgreementReport,
}

fn stats(a: StatsArgs) -> anyhow::Result<ExitCode> {
    let bootstrap = match a.bootstrap {
        0 => None,
        n => Some(Bootstrap { resamples: n, seed: a.seed, level: 0.95 }),
    };
    let scale = a.scale.as_deref().map(parse_scale).transpose()?;
    if let Some(path) = &a.from_csv {
        let opts = AgreementOptions { scale, min_shared: a.min_shared, bootstrap, ..Default::default() };
        let (unit, rater, score) = (a.unit.unwrap_or_default(), a.rater.unwrap_or_default(), a.score.unwrap_or_default());
        let (ratings, auto) = ratings_from_csv(path, &unit, &rater, &score, a.auto.as_deref())?;
        let report = agreement::report(&ratings, auto.as_deref(), &opts);
        match a.format {
            StatsFormat::Json => {
                let out = CsvStats { file: path.display().to_string(), unit, rater, score, report };
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            StatsFormat::Text => print!("{}", report.to_text()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let store = a.db.open()?;
    let mut opts = store::stats::default_options();
    if let Some(scale) = scale {
        opts.scale = Some(scale);
    }
    opts.min_shared = a.min_shared;
    opts.bootstrap = bootstrap;
    let out = store::review_stats(&store, a.run.as_deref(), &a.goal, &opts)?;
    match a.format {
        StatsFormat::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        StatsFormat::Text => {
            if out.goals.is_empty() && out.pairwise.is_empty() {
                println!("no reviews{}", a.run.as_deref().map(|r| format!(" for run {r:?}")).unwrap_or_default());
            }
            for g in &out.goals {
                println!("== {} ==", g.goal);
                print!("{}", g.report.to_text());
            }
            if !out.pairwise.is_empty() {
                println!("== blind A/B ==");
                for p in &out.pairwise {
                    let rate = p.x_win_rate.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "-".into());
                    println!("{} vs {}: {} / {} wins, {} ties ({} wins {rate} of decided)", p.run_x, p.run_y, p.x_wins, p.y_wins, p.ties, p.run_x);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a long-format CSV: one row per rating.
fn ratings_from_csv(
    path: &PathBuf,
    unit: &str,
    rater: &str,
    score: &str,
    auto: Option<&str>,
) -> anyhow::Result<(Ratings, Option<Vec<Option<f64>>>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.display();
    let table = csv::Table::parse(&text).with_context(|| format!("{name}"))?;
    let col = |c: &str, flag: &str| table.column(c).with_context(|| format!("{name}: {flag}"));
    let (u, r, s) = (col(unit, "--unit")?, col(rater, "--rater")?, col(score, "--score")?);
    let a = auto.map(|c| col(c, "--auto")).transpose()?;
    let mut ratings = Ratings::new();
    let mut autos: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for row in &table.rows {
        let f = &row.fields;
        let raw = f[s].trim();
        if raw.is_empty() {
            continue; // a missing rating
        }
        let v: f64 = raw
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .with_context(|| format!("{name} line {}: column {score:?} must be a number, got {raw:?}", row.line))?;
        if f[u].is_empty() || f[r].is_empty() {
            bail!("{name} line {}: columns {unit:?} and {rater:?} must not be empty", row.line);
        }
        ratings.add(&f[u], &f[r], v).with_context(|| format!("{name} line {}", row.line))?;
        if let Some(a) = a {
            let raw = f[a].trim();
            if !raw.is_empty() {
                let x: f64 = raw
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .with_context(|| format!("{name} line {}: column {:?} must be a number, got {raw:?}", row.line, auto.unwrap_or("")))?;
                if let Some(prev) = autos.insert(f[u].clone(), x) {
                    if prev != x {
                        bail!("{name} line {}: unit {:?} has two automatic scores ({prev} and {x})", row.line, f[u]);
                    }
                }
            }
        }
    }
    if ratings.rating_count() == 0 {
        bail!("{name}: no ratings in column {score:?}");
    }
    let auto = a.map(|_| ratings.unit_ids().iter().map(|u| autos.get(u).copied()).collect());
    Ok((ratings, auto))
}
