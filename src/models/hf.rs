//! `hf:owner/repo/file.gguf` (optionally `hf:owner/repo@revision/file.gguf`):
//! a GGUF on the Hugging Face Hub, through the hf-hub crate.
//!
//! The hf-hub cache is read first (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub` — the layout `models--owner--repo/refs/<rev>` +
//! `snapshots/<commit>/<file>` that Python's huggingface_hub shares), so a file
//! fetched once, or copied in by hand, works with no network. Only when it is
//! not cached, and `HF_HUB_OFFLINE` is not set, does hf-hub's blocking API
//! download it into that same cache.

use super::ModelsError;
use hf_hub::{Cache, Repo, RepoType};
use std::path::PathBuf;

/// A parsed `hf:` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfSpec {
    pub repo_id: String,
    pub revision: String,
    pub file: String,
}

impl HfSpec {
    /// Parses the part after `hf:`.
    pub fn parse(rest: &str) -> Result<Self, ModelsError> {
        let bad = |reason: &str| ModelsError::Hf { spec: format!("hf:{rest}"), reason: reason.to_string() };
        let mut it = rest.splitn(3, '/');
        let (Some(owner), Some(repo), Some(file)) = (it.next(), it.next(), it.next()) else {
            return Err(bad("expected hf:owner/repo/file.gguf"));
        };
        let (repo, revision) = match repo.split_once('@') {
            Some((r, rev)) => (r, rev.to_string()),
            None => (repo, "main".to_string()),
        };
        let ok = |s: &str| !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok(owner) || !ok(repo) {
            return Err(bad("owner and repo must be non-empty names of letters, digits, '.', '_' and '-'"));
        }
        if revision.is_empty() || revision.contains("..") {
            return Err(bad("the revision after '@' is empty or invalid"));
        }
        if file.is_empty() || file.split('/').any(|p| p.is_empty() || p == "..") {
            return Err(bad("the file path is empty or climbs out of the repository"));
        }
        Ok(Self { repo_id: format!("{owner}/{repo}"), revision, file: file.to_string() })
    }

    fn repo(&self) -> Repo {
        Repo::with_revision(self.repo_id.clone(), RepoType::Model, self.revision.clone())
    }
}

/// The hf-hub cache directory: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(h) = std::env::var_os("HF_HOME") {
        return PathBuf::from(h).join("hub");
    }
    // Not `Cache::default()`: it panics when there is no home directory.
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").map(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes" | "ON" | "on")).unwrap_or(false)
}

/// The local file for an `hf:` spec (the part after `hf:`), from the cache at
/// `cache_dir` or downloaded into it.
pub fn resolve_hf(rest: &str, cache_dir: &std::path::Path) -> Result<PathBuf, ModelsError> {
    let spec = HfSpec::parse(rest)?;
    let cache = Cache::new(cache_dir.to_path_buf());
    if let Some(p) = cache.repo(spec.repo()).get(&spec.file) {
        return Ok(p);
    }
    let name = format!("hf:{rest}");
    if offline() {
        return Err(ModelsError::Hf {
            spec: name,
            reason: format!(
                "not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set; fetch it once with network, \
                 or put it in that cache",
                cache_dir.display()
            ),
        });
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .map_err(|e| ModelsError::Hf { spec: name.clone(), reason: format!("cannot start the hub client: {e}") })?;
    api.repo(spec.repo()).get(&spec.file).map_err(|e| ModelsError::Hf {
        spec: name,
        reason: format!(
            "not in the Hugging Face cache at {} and the download failed: {e}. Check the network (HF_ENDPOINT, \
             HF_TOKEN for gated repos), or set HF_HUB_CACHE/HF_HOME to a cache that has it",
            cache_dir.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = HfSpec::parse("bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_K_M.gguf").unwrap();
        assert_eq!(s.repo_id, "bartowski/SmolLM2-135M-Instruct-GGUF");
        assert_eq!(s.revision, "main");
        assert_eq!(s.file, "SmolLM2-135M-Instruct-Q4_K_M.gguf");
        let s = HfSpec::parse("o/r@v1.0/sub/dir/f.gguf").unwrap();
        assert_eq!((s.repo_id.as_str(), s.revision.as_str(), s.file.as_str()), ("o/r", "v1.0", "sub/dir/f.gguf"));
        for bad in ["o/r", "o", "/r/f.gguf", "o/r/../f.gguf", "o/r@/f.gguf", "o/r/", "o w/r/f.gguf"] {
            assert!(HfSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
