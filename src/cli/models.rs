//! `brandvoice models …` (placeholder: being written)
use std::process::ExitCode;
#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// List known models and whether they are present.
    List,
}
pub fn run(_c: ModelsCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
