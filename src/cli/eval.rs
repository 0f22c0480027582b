//! `brandvoice eval run SUITE…` and `brandvoice eval compare RUN_A RUN_B`.
//!
//! Thin: parse the thresholds and load every suite first (a bad suite or
//! threshold exits 2 before the model loads), build the in-process `Drafter`
//! the way `brandvoice draft` does, hand both to `eval::run::run`, draw the
//! progress bar (stderr, hidden when stderr is not a terminal), print the
//! summary and turn missed thresholds into exit status 1 — the CI gate.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use brandvoice::eval::run::{self, RunOptions, Summary, Threshold};
use brandvoice::eval::{compare, suite};
use brandvoice::score::scorer::ToneScorer;
use brandvoice::score::ScoringConfig;
use brandvoice::style::lint::StyleBook;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use super::Format;

#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Run suites through the drafting pipeline into a run directory
    /// (results.jsonl, summary.json, report.md, report.html); exit 1 when a threshold is missed.
    Run(RunArgs),
    /// Compare two run directories case by case and per metric (paired bootstrap 95% CI).
    Compare(CompareArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Suite files (eval/suites/*.yaml).
    #[arg(required = true, num_args = 1..)]
    suites: Vec<PathBuf>,
    /// Model name or GGUF path.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// Run directory (default: eval/runs/<YYYYMMDD-HHMMSS-suites>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run every case K times (with different derived seeds).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Run seed; each case's seed is derived from it, the case id and the repeat.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Exit 1 if METRIC (as named in summary.json: pass_rate, mean_tone, mood_accuracy, latency_p50, …) is below VALUE.
    #[arg(long = "fail-under", value_name = "METRIC=VALUE")]
    fail_under: Vec<String>,
    /// Exit 1 if METRIC is above VALUE (error_rate, fallback_rate, latency_p95, …).
    #[arg(long = "fail-over", value_name = "METRIC=VALUE")]
    fail_over: Vec<String>,
    /// Run only the first N selected cases.
    #[arg(long)]
    limit: Option<usize>,
    /// Run only cases with this tag (repeatable: any of them).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Engine threads (default: BRANDVOICE_THREADS, else all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct CompareArgs {
    run_a: PathBuf,
    run_b: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(c: EvalCommand) -> anyhow::Result<ExitCode> {
    match c {
        EvalCommand::Run(a) => run_suites(a),
        EvalCommand::Compare(a) => compare_runs(a),
    }
}

fn run_suites(a: RunArgs) -> anyhow::Result<ExitCode> {
    let mut thresholds = Vec::new();
    for t in &a.fail_under {
        thresholds.push(Threshold::parse(t, false).map_err(anyhow::Error::msg)?);
    }
    for t in &a.fail_over {
        thresholds.push(Threshold::parse(t, true).map_err(anyhow::Error::msg)?);
    }
    if a.repeat == 0 {
        anyhow::bail!("--repeat: must be at least 1, got 0");
    }
    let dir = brandvoice::style::default_prompts_dir();
    let book = StyleBook::load(&dir)?;
    let cfg = ScoringConfig::load(&dir)?;
    let suites = a.suites.iter().map(|p| suite::load(p, &book)).collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = suites.iter().map(|s| s.name.clone()).collect();
    let total = run::select(&suites, &a.tags, a.limit).len() * a.repeat;
    if total == 0 {
        anyhow::bail!("no cases to run (tags: [{}], limit: {:?})", a.tags.join(", "), a.limit);
    }
    let (_, compact) = run::utc_now();
    let run_id = run::run_id(&compact, &names);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("eval/runs").join(&run_id));
    let mut drafter = super::draft::load_drafter(&a.model, a.threads)?;
    let scorer = ToneScorer::new(drafter.book().clone(), drafter.mood_detector().clone(), cfg).context("building the tone scorer")?;
    let opts = RunOptions { run_id, out: out.clone(), model: drafter.model_name().to_string(), repeat: a.repeat, seed: a.seed, limit: a.limit, tags: a.tags.clone(), thresholds };
    let bar = ProgressBar::with_draw_target(Some(total as u64), if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} cases  {msg}  [{elapsed_precise} < {eta}]").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let mut passed = 0usize;
    let (summary, _) = run::run(&mut drafter, &scorer, &suites, &opts, &mut |r| {
        passed += r.passed as usize;
        bar.set_message(format!("{passed} passed, last {} {}", r.item(), if r.passed { "ok" } else { "FAILED" }));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print_summary(&summary, &out)?;
    let missed: Vec<_> = summary.thresholds.iter().filter(|t| !t.ok).collect();
    for t in &missed {
        let actual = t.actual.map(|v| v.to_string()).unwrap_or_else(|| "null (not measured in this run)".into());
        eprintln!("threshold missed: {} = {} ({} {}; --fail-{} {}={})", t.metric, actual, if t.fail == "over" { "above" } else { "below" }, t.value, t.fail, t.metric, t.value);
    }
    Ok(if missed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_summary(s: &Summary, out: &std::path::Path) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "run {} — suites {} — model {} — seed {}", s.run_id, s.suites.join(", "), s.model, s.seed)?;
    writeln!(o, "cases {}  passed {}  pass_rate {:.3}  error_rate {:.3}  fallback_rate {:.3}", s.cases, s.passed, s.pass_rate, s.error_rate, s.fallback_rate)?;
    writeln!(
        o,
        "mean_tone {:.1}  mood_accuracy {}  language_accuracy {}  latency p50 {:.0} ms  p95 {:.0} ms  max {:.0} ms",
        s.mean_tone,
        s.mood_accuracy.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into()),
        s.language_accuracy.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into()),
        s.latency_ms.p50,
        s.latency_ms.p95,
        s.latency_ms.max
    )?;
    if !s.failures_by_assert.is_empty() {
        let f: Vec<String> = s.failures_by_assert.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(o, "failures by assertion: {}", f.join(", "))?;
    }
    writeln!(o, "wrote {}/{{results.jsonl,summary.json,report.md,report.html}}", out.display())?;
    Ok(())
}

fn compare_runs(a: CompareArgs) -> anyhow::Result<ExitCode> {
    let c = compare::compare(&a.run_a, &a.run_b)?;
    let mut o = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut o, &c)?;
            writeln!(o)?;
        }
        Format::Text => write!(o, "{}", c.to_text())?,
    }
    Ok(ExitCode::SUCCESS)
}
