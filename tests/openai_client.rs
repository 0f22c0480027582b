//! The OpenAI compatibility checked with the official `openai` Python package
//! against a live server (smollm2): models list, a completion, a stream, an
//! error. The package is installed with pip into `target/pyenv` (git-ignored)
//! the first time.

#[path = "server_support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `target/pyenv` with the `openai` package, installed when missing.
fn pyenv() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv"));
    if !dir.join("openai").join("__init__.py").exists() {
        let out = Command::new(python())
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&dir)
            .arg("openai")
            .output()
            .expect("run pip (Python 3 with pip is required)");
        assert!(out.status.success(), "pip install openai failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    dir
}

#[test]
fn official_openai_client_talks_to_the_server() {
    let env = pyenv();
    let addr = support::shared();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let out = Command::new(python())
        .arg(script)
        .arg(format!("http://{addr}/v1"))
        .env("PYTHONPATH", &env)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the openai client script failed:\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(v["models"], 27);
    assert!(v["chunks"].as_u64().unwrap() >= 3, "{v}");
    assert!(!v["text"].as_str().unwrap().trim().is_empty());
}
