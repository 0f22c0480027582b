//! One error type for the engine layer. Every variant that concerns a file
//! names the file, so a truncated or unsupported model is an error a person can
//! act on, never a panic.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {reason}")]
    BadModelFile { path: PathBuf, reason: String },
    #[error("{path}: unsupported architecture `{arch}` (supported: llama, qwen2, gemma3)")]
    UnsupportedArch { path: PathBuf, arch: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("generation: {0}")]
    Generation(String),
    /// A request exceeds what the model can take (prompt longer than the
    /// context, too many tokens asked for): the caller's to fix.
    #[error("{field}: {message}")]
    Limit { field: String, message: String },
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
