//! (being written by the template work) Chat templates from
//! `tokenizer.chat_template`, rendered with minijinja like Hugging Face's Jinja.
//! The API below is the contract other engine modules code against.

use super::error::Result;
use super::tokenizer::Tokenizer;
use candle_core::quantized::gguf_file;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A piece of a rendered prompt: template text (may hold control tokens) or
/// text that came from a message (never parsed into control tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptPart {
    Template(String),
    Content(String),
}

#[derive(Debug, Clone)]
pub struct ChatTemplate {}

impl ChatTemplate {
    /// The file's own template, or Gemma's turn format when it has none.
    pub fn from_gguf(_content: &gguf_file::Content, _tokenizer: &Tokenizer) -> Result<Self> {
        unimplemented!("template being written")
    }
    /// The prompt as one string, exactly as Hugging Face renders it.
    pub fn render(&self, _messages: &[ChatMessage], _add_generation_prompt: bool) -> Result<String> {
        unimplemented!()
    }
    /// The same prompt split into template parts and message content, so the
    /// caller can tokenize message text without parsing special tokens.
    pub fn render_parts(&self, _messages: &[ChatMessage], _add_generation_prompt: bool) -> Result<Vec<PromptPart>> {
        unimplemented!()
    }
}
