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
pub struct TemplateArgs {
    /// Model: a known name, a .gguf path, or hf:owner/repo/file.gguf.
    #[arg(long)]
    pub model: String,
    /// A JSON file holding an array of {"role", "content"} messages.
    #[arg(long)]
    pub messages: std::path::PathBuf,
    /// Show the split into template text and message content (JSON) instead.
    #[arg(long)]
    pub parts: bool,
}
pub fn tokenize(a: TokenizeArgs) -> anyhow::Result<ExitCode> {
    let path = brandvoice::models::resolve(&a.model)?;
    let tokenizer = brandvoice::engine::tokenizer::Tokenizer::from_file(&path)?;
    let ids = tokenizer.encode(&a.text, true)?;
    println!("{}", serde_json::to_string(&ids)?);
    Ok(ExitCode::SUCCESS)
}
/// Prints the prompt exactly as the model will see it (generation prompt added).
pub fn template(a: TemplateArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use brandvoice::engine::template::{ChatMessage, ChatTemplate, PromptPart};
    let text = std::fs::read_to_string(&a.messages).with_context(|| format!("cannot read {}", a.messages.display()))?;
    let messages: Vec<ChatMessage> = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a JSON array of {{\"role\", \"content\"}} messages: {e}",
            a.messages.display()
        )
    })?;
    let path = brandvoice::models::resolve(&a.model)?;
    let tmpl = ChatTemplate::from_file(&path)?;
    if a.parts {
        let parts: Vec<serde_json::Value> = tmpl
            .render_parts(&messages, true)?
            .iter()
            .map(|p| match p {
                PromptPart::Template(t) => serde_json::json!({ "template": t }),
                PromptPart::Content(c) => serde_json::json!({ "content": c }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&parts)?);
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(tmpl.render(&messages, true)?.as_bytes())?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

// `generate` and `bench` live in `cli/generate.rs` (the generation work's file).
pub use super::generate::{bench, generate, BenchArgs, GenerateArgs};
