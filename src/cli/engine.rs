//! `brandvoice tokenize | template | generate | bench` (placeholder: being written)
use std::process::ExitCode;
#[derive(clap::Args)]
pub struct TokenizeArgs {}
#[derive(clap::Args)]
pub struct TemplateArgs {}
pub fn tokenize(_a: TokenizeArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn template(_a: TemplateArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }

// `generate` and `bench` live in `cli/generate.rs` (the generation work's file).
pub use super::generate::{bench, generate, BenchArgs, GenerateArgs};
