//! The `brandvoice` command line: a thin layer over the library. Each
//! subcommand's arguments and body live in `src/cli/<area>.rs`; this file only
//! parses and dispatches, and turns errors into exit codes.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "brandvoice", version, about = "Draft customer replies in a brand's voice with a local model")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List, fetch and locate models (`models list | pull NAME | path NAME`).
    #[command(subcommand)]
    Models(cli::models::ModelsCommand),
    /// Print the token ids of a text as a JSON array (no BOS, special tokens parsed).
    Tokenize(cli::engine::TokenizeArgs),
    /// Render a conversation with the model's chat template.
    Template(cli::engine::TemplateArgs),
    /// Generate text from a prompt.
    Generate(cli::engine::GenerateArgs),
    /// Measure prompt and generation speed.
    Bench(cli::engine::BenchArgs),
    /// Check brand style guides.
    #[command(subcommand)]
    Guide(cli::style::GuideCommand),
    /// Lint a reply against a brand's guide, a channel and a mood.
    Lint(cli::style::LintArgs),
    /// Apply the mechanical fixes to a reply and print the fixed text.
    Fix(cli::style::FixArgs),
    /// Detect a customer's mood, polarity, language and escalation flags
    /// (`mood TEXT|-`, `mood --eval DIR`, `mood train`).
    Mood(cli::mood::MoodArgs),
    /// Draft replies in a brand's voice for a channel and mood (`draft --brand B --channel C TEXT|-`),
    /// or run a suite of requests with a summary (`draft --suite FILE --out FILE.jsonl`).
    Draft(cli::draft::DraftArgs),
    /// Triage a JSONL queue of {"id","text"} messages into JSONL with mood and flags.
    Triage(cli::mood::TriageArgs),
    /// Reviewer scores: `reviews import FILE…`, `reviews export`, `reviews stats`
    /// (agreement statistics over the store, or any long-format CSV with --from-csv).
    #[command(subcommand)]
    Reviews(cli::reviews::ReviewsCommand),
    /// Score how polite a text reads, 0–100 with a reason (`politeness TEXT|-`),
    /// or retrain the scorer (`politeness train`).
    Politeness(cli::politeness::PolitenessArgs),
    /// Evaluation suites: `eval run SUITE… [--fail-under METRIC=VALUE…]` (a CI gate),
    /// `eval compare RUN_A RUN_B` (per case and per metric, paired bootstrap CI).
    #[command(subcommand)]
    Eval(cli::eval::EvalCommand),
    /// Tone-consistency score of a reply, 0–100 per goal with reasons, overall and band.
    Score(cli::score::ScoreArgs),
    /// Run the HTTP service (drafts, rewrite, triage, lint, OpenAI-compatible chat completions).
    Serve(cli::serve::ServeArgs),
    /// API keys: `keys new --name N --role agent|reviewer|admin` prints a key once and its config line.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// The drafts audit log: `audit purge --older-than-days N`, `audit count`.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A service logs its requests and lifecycle; one-shot commands stay quiet.
    let default_filter = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BRANDVOICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Models(c) => cli::models::run(c),
        Command::Tokenize(a) => cli::engine::tokenize(a),
        Command::Template(a) => cli::engine::template(a),
        Command::Generate(a) => cli::engine::generate(a),
        Command::Bench(a) => cli::engine::bench(a),
        Command::Guide(c) => cli::style::guide(c),
        Command::Lint(a) => cli::style::lint(a),
        Command::Fix(a) => cli::style::fix(a),
        Command::Mood(a) => cli::mood::mood(a),
        Command::Triage(a) => cli::mood::triage(a),
        Command::Reviews(c) => cli::reviews::run(c),
        Command::Politeness(a) => cli::politeness::politeness(a),
        Command::Serve(a) => cli::serve::serve(a),
        Command::Draft(a) => cli::draft::draft(a),
        Command::Keys(c) => cli::keys::run(c),
        Command::Audit(c) => cli::audit::run(c),
        Command::Eval(c) => cli::eval::run(c),
        Command::Score(a) => cli::score::score(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
