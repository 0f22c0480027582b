//! Subcommand bodies, one file per area. Each returns the process exit code.

/// `--format text|json`, shared by the subcommands that print either.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

pub mod audit;
pub mod draft;
pub mod engine;
pub mod eval;
pub mod generate;
pub mod keys;
pub mod models;
pub mod mood;
pub mod politeness;
pub mod reviews;
pub mod score;
pub mod serve;
pub mod style;
