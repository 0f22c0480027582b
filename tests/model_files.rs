//! Broken model files are errors that name the file and the problem, never
//! panics: each case is a real file made in a temporary directory from the
//! SmolLM2 GGUF (truncated, magic flipped, architecture renamed, a metadata
//! key or tensor renamed, inconsistent sizes).

use brandvoice::engine::gguf::GgufFile;
use brandvoice::engine::model::{load_lm, LoadOptions};
use brandvoice::engine::EngineError;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn smollm2() -> PathBuf {
    brandvoice::models::resolve("smollm2-135m").expect("smollm2-135m model")
}

/// Copies the first `len` bytes of `src` (the rest of a `full_len` file is left
/// sparse: zeros, no disk used), then applies `edit` to the header bytes.
fn make_file(dir: &Path, name: &str, len: u64, full_len: Option<u64>, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut src = std::fs::File::open(smollm2()).unwrap();
    let mut head = Vec::new();
    (&mut src).take(len).read_to_end(&mut head).unwrap();
    edit(&mut head);
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&head).unwrap();
    if let Some(n) = full_len {
        f.set_len(n).unwrap();
    }
    p
}

fn header_len() -> u64 {
    GgufFile::open(smollm2()).unwrap().content().tensor_data_offset
}

fn full_len() -> u64 {
    std::fs::metadata(smollm2()).unwrap().len()
}

fn replace_once(buf: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = buf.windows(from.len()).position(|w| w == from).expect("pattern in header");
    buf[at..at + to.len()].copy_from_slice(to);
}

fn load_err(p: &Path) -> String {
    let e = load_lm(p, &LoadOptions::default()).err().expect("loading must fail");
    let s = e.to_string();
    assert!(s.contains(&p.display().to_string()), "error does not name the file: {s}");
    s
}

#[test]
fn truncated_in_tensor_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "cut.gguf", full_len() / 2, None, |_| {});
    let e = load_err(&p);
    assert!(e.contains("truncated") && e.contains("tensor `"), "{e}");
}

#[test]
fn truncated_by_one_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "cut1.gguf", full_len() - 1, None, |_| {});
    let e = load_err(&p);
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn truncated_in_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "head.gguf", 100_000, None, |_| {});
    let e = load_err(&p);
    assert!(e.contains("corrupt or truncated"), "{e}");
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "magic.gguf", header_len(), Some(full_len()), |b| b[0..4].copy_from_slice(b"GGLA"));
    let e = load_err(&p);
    assert!(e.contains("not a GGUF file") && e.contains("GGLA"), "{e}");
}

#[test]
fn not_a_model_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.gguf");
    std::fs::write(&p, "these are my notes, not a model\n".repeat(10)).unwrap();
    let e = load_err(&p);
    assert!(e.contains("not a GGUF file"), "{e}");
}

#[test]
fn missing_file_is_an_io_error() {
    let e = load_lm("/nonexistent/model.gguf", &LoadOptions::default()).err().unwrap();
    assert!(matches!(e, EngineError::Io { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/model.gguf"));
}

#[test]
fn unknown_architecture() {
    let dir = tempfile::tempdir().unwrap();
    // general.architecture = "llama" (string type 8, length 5) → "mamba"
    let p = make_file(dir.path(), "arch.gguf", header_len(), Some(full_len()), |b| {
        let mut from = b"general.architecture".to_vec();
        from.extend(8u32.to_le_bytes());
        from.extend(5u64.to_le_bytes());
        let mut to = from.clone();
        from.extend(b"llama");
        to.extend(b"mamba");
        replace_once(b, &from, &to);
    });
    let e = load_lm(&p, &LoadOptions::default()).err().unwrap();
    assert!(matches!(&e, EngineError::UnsupportedArch { arch, .. } if arch == "mamba"), "{e}");
    assert!(e.to_string().contains("mamba") && e.to_string().contains(&p.display().to_string()));
}

#[test]
fn missing_metadata_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "key.gguf", header_len(), Some(full_len()), |b| {
        replace_once(b, b"llama.block_count", b"llama.block_kount")
    });
    let e = load_err(&p);
    assert!(e.contains("missing metadata key `llama.block_count`"), "{e}");
}

#[test]
fn missing_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "tensor.gguf", header_len(), Some(full_len()), |b| {
        replace_once(b, b"blk.0.attn_q.weight", b"blk.0.attn_x.weight")
    });
    let e = load_err(&p);
    assert!(e.contains("missing tensor `blk.0.attn_q.weight`"), "{e}");
}

#[test]
fn inconsistent_head_counts() {
    let dir = tempfile::tempdir().unwrap();
    // llama.attention.head_count: u32 9 → 8 (not a multiple of head_count_kv 3)
    let p = make_file(dir.path(), "heads.gguf", header_len(), Some(full_len()), |b| {
        let mut from = b"llama.attention.head_count".to_vec();
        from.extend(4u32.to_le_bytes());
        let mut to = from.clone();
        from.extend(9u32.to_le_bytes());
        to.extend(8u32.to_le_bytes());
        replace_once(b, &from, &to);
    });
    let e = load_err(&p);
    assert!(e.contains("head_count") && e.contains("not a multiple"), "{e}");
}

#[test]
fn huge_tensor_dimension() {
    let dir = tempfile::tempdir().unwrap();
    // token_embd.weight dims (576, 49152) → (576, 2^40): far past the file's end
    let p = make_file(dir.path(), "dims.gguf", header_len(), Some(full_len()), |b| {
        let mut from = b"token_embd.weight".to_vec();
        from.extend(2u32.to_le_bytes());
        from.extend(576u64.to_le_bytes());
        let mut to = from.clone();
        from.extend(49152u64.to_le_bytes());
        to.extend((1u64 << 40).to_le_bytes());
        replace_once(b, &from, &to);
    });
    let e = load_err(&p);
    assert!(e.contains("token_embd.weight"), "{e}");
}

#[test]
fn the_real_file_opens_and_validates() {
    let g = GgufFile::open(smollm2()).unwrap();
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.get_usize("llama.block_count").unwrap(), 30);
    assert_eq!(g.tensor_loc("token_embd.weight").unwrap().dims, vec![49152, 576]);
    let mut f = std::fs::File::open(smollm2()).unwrap();
    let mut magic = [0u8; 4];
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_exact(&mut magic).unwrap();
    assert_eq!(&magic, b"GGUF");
}
