//! The server's configuration: a TOML file, then `BRANDVOICE_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! One plain struct tree with `deny_unknown_fields` everywhere, so a misspelt
//! key is an error that names the file and the key instead of a setting that
//! silently does nothing. Environment values are parsed here (not by clap) so
//! that a bad value names the variable and the value given. The request
//! limits are the drafting contract's own [`Limits`], embedded as the
//! `[limits]` table, plus the HTTP-only limits (body size, triage batch,
//! timeout) in `[server]`.

use crate::draft::Limits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the config file (the `--config` flag wins).
pub const CONFIG_ENV: &str = "BRANDVOICE_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, #[source] source: std::io::Error },
    /// Syntax errors and unknown keys; toml's message names the key, line and column.
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: expected {expected}, got `{value}`")]
    Env { var: String, expected: String, value: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// The whole configuration (`brandvoice.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub server: ServerSection,
    pub model: ModelSection,
    pub limits: Limits,
    pub auth: AuthSection,
    pub store: StoreSection,
    pub eval: EvalSection,
    pub audit: AuditSection,
}

/// `[server]`: where to listen and the HTTP-level limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free port).
    pub bind: String,
    /// Requests that may wait for the model; one more runs. A full queue answers 503.
    pub queue_size: usize,
    /// Largest request body in bytes (413 above it).
    pub body_limit_bytes: usize,
    /// Most messages in one `/v1/triage` call.
    pub triage_batch: usize,
    /// Longest a draft may take, queue wait included, before a 504 (seconds).
    pub request_timeout_secs: u64,
    /// The prompts folder (brand guides, channels, moods); default: `BRANDVOICE_PROMPTS`, else the crate's `prompts/`.
    pub prompts: Option<PathBuf>,
    /// Pre-fill the prefix cache at start for hot brand × channel × mood ×
    /// language combinations (the model's worker does it between requests,
    /// so `/readyz` is ready as soon as the model is loaded).
    pub warm: bool,
    /// The channels warmed, hottest first: every brand × mood in the brand's
    /// first language for each of them, then its other languages, until
    /// `model.prefix_cache_bytes` is full.
    pub warm_channels: Vec<String>,
}

/// The default `server.warm_channels`: public, short channels first.
pub fn default_warm_channels() -> Vec<String> {
    ["twitter", "live_chat", "whatsapp", "messenger", "sms", "instagram_comment", "facebook_comment", "email", "phone"].map(String::from).to_vec()
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            bind: "127.0.0.1:8080".into(),
            queue_size: 16,
            body_limit_bytes: 256 * 1024,
            triage_batch: 256,
            request_timeout_secs: 60,
            prompts: None,
            warm: false,
            warm_channels: default_warm_channels(),
        }
    }
}

/// `[model]`: which model and how it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// A known model name, a `.gguf` path or `hf:owner/repo/file.gguf`.
    pub name: String,
    /// Engine threads; default: all cores.
    pub threads: Option<usize>,
    /// Byte budget of the prefix KV cache (shared brand + channel + mood prompt parts).
    pub prefix_cache_bytes: usize,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection { name: "qwen2.5-0.5b".into(), threads: None, prefix_cache_bytes: 1024 * 1024 * 1024 }
    }
}

/// `[store]`: the reviews store behind `/v1/reviews`, opened once at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The SQLite file (created when missing; a leading `~/` is the home
    /// directory). Default: `BRANDVOICE_DB`, else `$BRANDVOICE_HOME/reviews.sqlite`,
    /// else `~/.local/share/brandvoice/reviews.sqlite`, as for `brandvoice reviews`.
    pub path: Option<PathBuf>,
}

/// `[eval]`: where the web console finds eval runs (`GET /v1/runs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// The folder of run directories `brandvoice eval run` writes. Default:
    /// `BRANDVOICE_RUNS_DIR`, else `eval/runs` (relative to the working directory).
    pub runs_dir: Option<PathBuf>,
}

/// `[auth]`: the API keys, stored as sha256 hashes (see `crate::server::auth`).
/// No keys: every request is allowed, which `check` permits only on a
/// loopback bind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// `keys = [{name = "desk", role = "agent", sha256 = "…"}]`.
    pub keys: Vec<KeyEntry>,
    /// A TOML file with more `keys = [...]` (kept out of the main config);
    /// read by [`ServeConfig::load`], whose keys are appended to `keys`.
    pub keys_file: Option<PathBuf>,
}

/// One API key: who holds it, what it may do, and the sha256 (hex) of the key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Who the key belongs to (shown in logs, never the key).
    pub name: String,
    pub role: super::auth::Role,
    /// Lowercase hex sha256 of the key (`brandvoice keys new` prints it).
    pub sha256: String,
}

/// The shape of `auth.keys_file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// `[audit]`: the drafts audit log (request, redacted; drafts; scores) in the
/// store's SQLite file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Record every draft request and its drafts (false: nothing is written).
    pub enabled: bool,
    /// Rows older than this many days are purged at start and daily (0: keep forever).
    pub retention_days: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection { enabled: true, retention_days: 30 }
    }
}

/// Command-line overrides (`brandvoice serve --bind … --model …`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<String>,
    pub model: Option<String>,
    pub threads: Option<usize>,
    pub queue: Option<usize>,
    /// `--warm`: pre-fill the prefix cache at start.
    pub warm: Option<bool>,
}

impl ServeConfig {
    /// Parses a TOML text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let cfg: ServeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_string(), message: e.to_string().trim_end().to_string() })?;
        Ok(cfg)
    }

    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// File (given, else `BRANDVOICE_CONFIG`, else defaults), then the
    /// process environment, then the flags; checked at the end.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Self, ConfigError> {
        let env_file = std::env::var_os(CONFIG_ENV).map(PathBuf::from);
        let mut cfg = match file.map(Path::to_path_buf).or(env_file) {
            Some(p) => Self::read(&p)?,
            None => ServeConfig::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.apply_flags(flags);
        cfg.read_keys_file()?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Appends the keys of `auth.keys_file` (when set) to `auth.keys`.
    pub fn read_keys_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.auth.keys_file.clone() else { return Ok(()) };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let file: KeysFile = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string().trim_end().to_string() })?;
        self.auth.keys.extend(file.keys);
        Ok(())
    }

    /// Applies `BRANDVOICE_*` variables read through `get` (a function, so
    /// tests need not touch the process environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(var: &str, v: &str) -> Result<T, ConfigError> {
            v.trim().parse().map_err(|_| ConfigError::Env { var: var.into(), expected: "a whole number".into(), value: v.into() })
        }
        if let Some(v) = get("BRANDVOICE_BIND") {
            self.server.bind = v;
        }
        if let Some(v) = get("BRANDVOICE_MODEL") {
            self.model.name = v;
        }
        if let Some(v) = get("BRANDVOICE_THREADS") {
            self.model.threads = Some(num("BRANDVOICE_THREADS", &v)?);
        }
        if let Some(v) = get("BRANDVOICE_QUEUE_SIZE") {
            self.server.queue_size = num("BRANDVOICE_QUEUE_SIZE", &v)?;
        }
        if let Some(v) = get("BRANDVOICE_PREFIX_CACHE_BYTES") {
            self.model.prefix_cache_bytes = num("BRANDVOICE_PREFIX_CACHE_BYTES", &v)?;
        }
        if let Some(v) = get("BRANDVOICE_BODY_LIMIT_BYTES") {
            self.server.body_limit_bytes = num("BRANDVOICE_BODY_LIMIT_BYTES", &v)?;
        }
        if let Some(v) = get("BRANDVOICE_TRIAGE_BATCH") {
            self.server.triage_batch = num("BRANDVOICE_TRIAGE_BATCH", &v)?;
        }
        if let Some(v) = get("BRANDVOICE_REQUEST_TIMEOUT_SECS") {
            self.server.request_timeout_secs = num("BRANDVOICE_REQUEST_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = get("BRANDVOICE_WARM") {
            self.server.warm = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => return Err(ConfigError::Env { var: "BRANDVOICE_WARM".into(), expected: "true or false (1/0)".into(), value: v }),
            };
        }
        if let Some(v) = get("BRANDVOICE_PROMPTS") {
            self.server.prompts = Some(PathBuf::from(v));
        }
        if let Some(v) = get("BRANDVOICE_DB") {
            self.store.path = Some(PathBuf::from(v));
        }
        if let Some(v) = get("BRANDVOICE_RUNS_DIR") {
            self.eval.runs_dir = Some(PathBuf::from(v));
        }
        Ok(())
    }

    pub fn apply_flags(&mut self, f: &Overrides) {
        if let Some(b) = &f.bind {
            self.server.bind = b.clone();
        }
        if let Some(m) = &f.model {
            self.model.name = m.clone();
        }
        if let Some(t) = f.threads {
            self.model.threads = Some(t);
        }
        if let Some(q) = f.queue {
            self.server.queue_size = q;
        }
        if let Some(w) = f.warm {
            self.server.warm = w;
        }
    }

    /// Range checks that serde cannot express; each error names the key and value.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| Err(ConfigError::Invalid { key: key.into(), message });
        if self.bind_addr().is_err() {
            return bad("server.bind", format!("expected an address such as 127.0.0.1:8080, got `{}`", self.server.bind));
        }
        if self.server.queue_size == 0 || self.server.queue_size > 10_000 {
            return bad("server.queue_size", format!("must be between 1 and 10000, got {}", self.server.queue_size));
        }
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes", format!("must be at least 1024, got {}", self.server.body_limit_bytes));
        }
        if self.server.triage_batch == 0 {
            return bad("server.triage_batch", "must be at least 1, got 0".into());
        }
        if self.server.request_timeout_secs == 0 {
            return bad("server.request_timeout_secs", "must be at least 1, got 0".into());
        }
        if let Some(t) = self.model.threads {
            if t == 0 || t > 256 {
                return bad("model.threads", format!("must be between 1 and 256, got {t}"));
            }
        }
        if self.model.name.trim().is_empty() {
            return bad("model.name", "must not be empty".into());
        }
        if let Some(p) = &self.store.path {
            if p.as_os_str().is_empty() {
                return bad("store.path", "must not be empty (leave it out for the default)".into());
            }
        }
        if let Some(p) = &self.eval.runs_dir {
            if p.as_os_str().is_empty() {
                return bad("eval.runs_dir", "must not be empty (leave it out for the default)".into());
            }
        }
        let l = &self.limits;
        for (key, v) in [("limits.max_message_chars", l.max_message_chars), ("limits.max_n", l.max_n), ("limits.max_tokens", l.max_tokens)] {
            if v == 0 {
                return bad(key, "must be at least 1, got 0".into());
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, k) in self.auth.keys.iter().enumerate() {
            if k.name.trim().is_empty() || k.name.len() > 100 {
                return bad(&format!("auth.keys[{i}].name"), format!("must be 1 to 100 characters, got {:?}", k.name));
            }
            if !names.insert(k.name.as_str()) {
                return bad(&format!("auth.keys[{i}].name"), format!("must be unique, got `{}` twice", k.name));
            }
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(&format!("auth.keys[{i}].sha256"), format!("must be 64 hex digits (the sha256 of the key, see `brandvoice keys new`), got {} characters for key `{}`", k.sha256.len(), k.name));
            }
        }
        if let (true, Ok(addr)) = (self.auth.keys.is_empty(), self.bind_addr()) {
            if !addr.ip().is_loopback() {
                return bad("auth.keys", format!("no API keys are configured, so the server may only listen on loopback, but server.bind is {addr}; create keys with `brandvoice keys new --name N --role R`"));
            }
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.server.bind.parse()
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }

    /// The eval runs folder: `eval.runs_dir`, else `eval/runs`.
    pub fn runs_dir(&self) -> PathBuf {
        self.eval.runs_dir.clone().unwrap_or_else(|| PathBuf::from("eval/runs"))
    }

    /// The reviews store's file: `store.path` (with `~/` expanded), else the
    /// same default as the `reviews` CLI.
    pub fn store_path(&self) -> PathBuf {
        match &self.store.path {
            Some(p) => match (p.strip_prefix("~"), std::env::var_os("HOME")) {
                (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => p.clone(),
            },
            None => crate::store::default_db_path(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../brandvoice.toml");

    #[test]
    fn example_file_parses_and_checks() {
        let cfg = ServeConfig::parse(EXAMPLE, "brandvoice.toml").expect("example parses");
        cfg.check().expect("example is valid");
        assert_eq!(cfg.model.name, "qwen2.5-0.5b");
        assert_eq!(cfg.limits.max_n, 8);
    }

    #[test]
    fn keys_file_appends_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.toml");
        let hash = "a".repeat(64);
        std::fs::write(&file, format!("keys = [{{ name = \"ops\", role = \"admin\", sha256 = \"{hash}\" }}]\n")).unwrap();
        let text = format!("[server]\nbind = \"0.0.0.0:9\"\n[auth]\nkeys = [{{ name = \"desk\", role = \"agent\", sha256 = \"{hash}\" }}]\nkeys_file = \"{}\"\n", file.display());
        let mut cfg = ServeConfig::parse(&text, "k.toml").unwrap();
        cfg.read_keys_file().unwrap();
        assert_eq!(cfg.auth.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["desk", "ops"]);
        cfg.check().unwrap();
        std::fs::write(&file, "keys = [{ name = \"x\", role = \"root\", sha256 = \"00\" }]\n").unwrap();
        let e = ServeConfig::parse(&text, "k.toml").unwrap().read_keys_file().unwrap_err().to_string();
        assert!(e.contains("keys.toml") && e.contains("root"), "{e}");
        let e = ServeConfig::parse("[auth]\nkeys = [{ name = \"a\", role = \"agent\", key = \"plain\" }]\n", "p.toml").unwrap_err().to_string();
        assert!(e.contains("key"), "plain keys are not accepted: {e}");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = ServeConfig::parse("[server]\nbind = \"127.0.0.1:1\"\nqueue_sise = 3\n", "my.toml").unwrap_err().to_string();
        assert!(e.contains("my.toml") && e.contains("queue_sise"), "{e}");
        let e = ServeConfig::parse("[limits]\nmax_nn = 3\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("max_nn"), "{e}");
        let e = ServeConfig::parse("[serverr]\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("serverr"), "{e}");
    }

    #[test]
    fn env_then_flags_override_the_file() {
        let mut cfg = ServeConfig::parse("[server]\nbind = \"127.0.0.1:1111\"\nqueue_size = 2\n", "f").unwrap();
        let env = |k: &str| match k {
            "BRANDVOICE_BIND" => Some("127.0.0.1:2222".to_string()),
            "BRANDVOICE_QUEUE_SIZE" => Some("5".to_string()),
            "BRANDVOICE_MODEL" => Some("smollm2-135m".to_string()),
            _ => None,
        };
        cfg.apply_env(env).unwrap();
        assert_eq!(cfg.server.bind, "127.0.0.1:2222");
        assert_eq!(cfg.server.queue_size, 5);
        cfg.apply_flags(&Overrides { bind: Some("127.0.0.1:3333".into()), queue: Some(1), ..Default::default() });
        assert_eq!(cfg.server.bind, "127.0.0.1:3333");
        assert_eq!(cfg.server.queue_size, 1);
        assert_eq!(cfg.model.name, "smollm2-135m");
        cfg.check().unwrap();
    }

    #[test]
    fn store_path_from_file_env_and_home() {
        let mut cfg = ServeConfig::parse("[store]\npath = \"/data/reviews.sqlite\"\n", "f").unwrap();
        assert_eq!(cfg.store_path(), PathBuf::from("/data/reviews.sqlite"));
        cfg.apply_env(|k| (k == "BRANDVOICE_DB").then(|| "/elsewhere/r.sqlite".to_string())).unwrap();
        assert_eq!(cfg.store_path(), PathBuf::from("/elsewhere/r.sqlite"));
        if let Some(home) = std::env::var_os("HOME") {
            cfg.store.path = Some("~/x/r.sqlite".into());
            assert_eq!(cfg.store_path(), PathBuf::from(home).join("x/r.sqlite"));
        }
        let e = ServeConfig::parse("[store]\nfile = \"r.sqlite\"\n", "s.toml").unwrap_err().to_string();
        assert!(e.contains("s.toml") && e.contains("file"), "{e}");
        cfg.store.path = Some(PathBuf::new());
        let e = cfg.check().unwrap_err().to_string();
        assert!(e.starts_with("store.path: must not be empty"), "{e}");
    }

    #[test]
    fn runs_dir_from_file_env_and_default() {
        assert_eq!(ServeConfig::default().runs_dir(), PathBuf::from("eval/runs"));
        let mut cfg = ServeConfig::parse("[eval]\nruns_dir = \"/data/runs\"\n", "f").unwrap();
        assert_eq!(cfg.runs_dir(), PathBuf::from("/data/runs"));
        cfg.apply_env(|k| (k == "BRANDVOICE_RUNS_DIR").then(|| "/other/runs".to_string())).unwrap();
        assert_eq!(cfg.runs_dir(), PathBuf::from("/other/runs"));
        let e = ServeConfig::parse("[eval]\nruns = \"x\"\n", "e.toml").unwrap_err().to_string();
        assert!(e.contains("e.toml") && e.contains("runs"), "{e}");
        cfg.eval.runs_dir = Some(PathBuf::new());
        assert!(cfg.check().unwrap_err().to_string().starts_with("eval.runs_dir"));
    }

    #[test]
    fn warm_from_file_env_and_flag() {
        let cfg = ServeConfig::parse("[server]\nwarm = true\nwarm_channels = [\"twitter\"]\n", "w.toml").unwrap();
        assert!(cfg.server.warm);
        assert_eq!(cfg.server.warm_channels, ["twitter"]);
        let mut cfg = ServeConfig::default();
        assert!(!cfg.server.warm, "off unless asked for");
        assert_eq!(cfg.server.warm_channels[0], "twitter");
        cfg.apply_env(|k| (k == "BRANDVOICE_WARM").then(|| "1".to_string())).unwrap();
        assert!(cfg.server.warm);
        cfg.apply_flags(&Overrides { warm: Some(false), ..Default::default() });
        assert!(!cfg.server.warm);
        let e = cfg.apply_env(|k| (k == "BRANDVOICE_WARM").then(|| "maybe".to_string())).unwrap_err().to_string();
        assert!(e.contains("BRANDVOICE_WARM") && e.contains("maybe"), "{e}");
    }

    #[test]
    fn bad_env_and_values_name_the_variable_or_key() {
        let mut cfg = ServeConfig::default();
        let e = cfg.apply_env(|k| (k == "BRANDVOICE_THREADS").then(|| "two".to_string())).unwrap_err().to_string();
        assert!(e.contains("BRANDVOICE_THREADS") && e.contains("two"), "{e}");
        let mut cfg = ServeConfig::default();
        cfg.server.queue_size = 0;
        let e = cfg.check().unwrap_err().to_string();
        assert!(e.contains("server.queue_size") && e.contains("got 0"), "{e}");
        let mut cfg = ServeConfig::default();
        cfg.server.bind = "localhost".into();
        let e = cfg.check().unwrap_err().to_string();
        assert!(e.contains("server.bind") && e.contains("localhost"), "{e}");
    }
}
