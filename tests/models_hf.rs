//! `hf:owner/repo/file.gguf` specs against a pre-filled hf-hub cache
//! directory (the layout Python's huggingface_hub and the hf-hub crate
//! share: `models--owner--repo/refs/main` holds a commit hash,
//! `snapshots/<hash>/<file>` links to `blobs/<sha>`), with no network.

use brandvoice::engine::template::{ChatMessage, ChatTemplate};
use brandvoice::models::hf::resolve_hf;
use std::path::{Path, PathBuf};
use std::process::Command;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A cache at `root` with `owner/repo` at `main` = COMMIT holding `file`,
/// a symlink to the real smollm2 GGUF as the hub cache does with blobs.
fn fill_cache(root: &Path, file: &str) -> PathBuf {
    let real = brandvoice::models::resolve("smollm2-135m").unwrap();
    let repo = root.join("models--owner--repo");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let blobs = repo.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = blobs.join("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
    std::os::unix::fs::symlink(&real, &blob).unwrap();
    let snap = repo.join("snapshots").join(COMMIT).join(file);
    std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&blob, &snap).unwrap();
    snap
}

#[test]
fn cached_file_resolves_offline_and_loads() {
    let cache = tempfile::tempdir().unwrap();
    let snap = fill_cache(cache.path(), "sub/SmolLM2.gguf");
    let p = resolve_hf("owner/repo/sub/SmolLM2.gguf", cache.path()).unwrap();
    assert_eq!(p, snap);
    // It is a real model file: its chat template renders.
    let t = ChatTemplate::from_file(&p).unwrap();
    let out = t.render(&[ChatMessage::new("user", "hi")], true).unwrap();
    assert!(out.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"), "{out}");
}

#[test]
fn missing_file_offline_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    fill_cache(cache.path(), "a.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_brandvoice"))
        .args(["models", "path", "hf:owner/repo/other.gguf"])
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hf:owner/repo/other.gguf") && err.contains("not in the Hugging Face cache"), "{err}");
    assert!(err.contains(cache.path().to_str().unwrap()), "{err}");
}

#[test]
fn cli_reads_hf_home_and_hf_hub_cache() {
    // HF_HOME/hub is the cache when HF_HUB_CACHE is not set.
    let home = tempfile::tempdir().unwrap();
    let snap = fill_cache(&home.path().join("hub"), "m.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_brandvoice"))
        .args(["models", "path", "hf:owner/repo/m.gguf"])
        .env("HF_HOME", home.path())
        .env_remove("HF_HUB_CACHE")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), snap.to_str().unwrap());

    // The template subcommand takes the same spec.
    let msgs = home.path().join("m.json");
    std::fs::write(&msgs, r#"[{"role":"user","content":"hi"}]"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_brandvoice"))
        .args(["template", "--model", "hf:owner/repo/m.gguf", "--messages"])
        .arg(&msgs)
        .env("HF_HUB_CACHE", home.path().join("hub"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
}

#[test]
fn bad_specs_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    for spec in ["owner/repo", "owner/repo/../../etc/passwd", "/repo/x.gguf"] {
        let err = resolve_hf(spec, cache.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("hf:{spec}")), "{err}");
    }
}
