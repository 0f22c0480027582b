//! `brandvoice tokenize | template | generate | bench` (placeholder: being written)
use std::process::ExitCode;
#[derive(clap::Args)]
pub struct TokenizeArgs {}
#[derive(clap::Args)]
pub struct TemplateArgs {}
#[derive(clap::Args)]
pub struct GenerateArgs {}
#[derive(clap::Args)]
pub struct BenchArgs {}
pub fn tokenize(_a: TokenizeArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn template(_a: TemplateArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn generate(_a: GenerateArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn bench(_a: BenchArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
