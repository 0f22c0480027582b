//! `brandvoice guide check | lint | fix` (placeholder: being written)
use std::process::ExitCode;
#[derive(clap::Subcommand)]
pub enum GuideCommand {
    /// Check guide files and report every problem.
    Check,
}
#[derive(clap::Args)]
pub struct LintArgs {}
#[derive(clap::Args)]
pub struct FixArgs {}
pub fn guide(_c: GuideCommand) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn lint(_a: LintArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn fix(_a: FixArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
