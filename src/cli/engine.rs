//! `brandvoice tokenize | template | generate | bench` (placeholder: being written)
use std::process::ExitCode;
/// `brandvoice tokenize --model M --text T`: the ids llama.cpp would give
/// (no BOS added, special-token strings parsed), as one JSON array.
#[derive(clap::Args)]
pub struct TokenizeArgs {
    /// Model: a known name (`brandvoice models list`), a `.gguf` path, or `hf:owner/repo/file.gguf`.
    #[arg(long)]
    pub model: String,
    /// Text to tokenize.
    #[arg(long)]
    pub text: String,
}
#[derive(clap::Args)]
pub struct TemplateArgs {}
#[derive(clap::Args)]
pub struct GenerateArgs {}
#[derive(clap::Args)]
pub struct BenchArgs {}
pub fn tokenize(a: TokenizeArgs) -> anyhow::Result<ExitCode> {
    let path = brandvoice::models::resolve(&a.model)?;
    let tokenizer = brandvoice::engine::tokenizer::Tokenizer::from_file(&path)?;
    let ids = tokenizer.encode(&a.text, true)?;
    println!("{}", serde_json::to_string(&ids)?);
    Ok(ExitCode::SUCCESS)
}
pub fn template(_a: TemplateArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn generate(_a: GenerateArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
pub fn bench(_a: BenchArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not built yet") }
