//! The tokenizer against llama.cpp, on real files: the three registry models
//! (reference ids produced by llama.cpp, special tokens parsed, no BOS) and
//! llama.cpp's own test vocabularies with their expected ids. Plus round
//! trips, prompt-injection safety and corrupt metadata.

use brandvoice::engine::tokenizer::Tokenizer;
use candle_core::quantized::gguf_file::{self, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");
const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/seeds");

/// Registry model names and their keys in tokenizer-vectors.jsonl.
const MODELS: &[(&str, &str)] = &[
    ("smollm2-135m", "smollm2-135m-instruct-q4_1"),
    ("qwen2.5-0.5b", "qwen2.5-coder-0.5b-instruct"),
    ("gemma3-270m", "gemma-3-270m-q4_k_m"),
];

fn model_path(name: &str) -> PathBuf {
    brandvoice::models::resolve(name).unwrap_or_else(|e| panic!("model {name}: {e}"))
}

fn vocab_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{DATA}/llama-vocab/ggml-vocab-{name}.gguf"))
}

/// Tokenizers are loaded once per test binary (Gemma's has 262k tokens).
fn tokenizer(name: &str) -> Tokenizer {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(String, Tokenizer)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, t)) = cache.iter().find(|(n, _)| n == name) {
        return t.clone();
    }
    let path = if MODELS.iter().any(|(m, _)| *m == name) { model_path(name) } else { vocab_path(name) };
    let t = Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    cache.push((name.to_string(), t.clone()));
    t
}

struct Row {
    text: String,
    ids: serde_json::Map<String, serde_json::Value>,
}

fn reference_rows() -> Vec<Row> {
    let raw = std::fs::read_to_string(format!("{DATA}/reference/tokenizer-vectors.jsonl")).expect("vectors");
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json row");
            Row {
                text: v["text"].as_str().expect("text").to_string(),
                ids: v["ids"].as_object().expect("ids").clone(),
            }
        })
        .collect()
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("id array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn check_reference(model: &str) {
    let key = MODELS.iter().find(|(m, _)| *m == model).expect("known model").1;
    let tok = tokenizer(model);
    let rows = reference_rows();
    let mut failures = Vec::new();
    let mut total = 0;
    for row in &rows {
        let Some(expected) = row.ids.get(key) else { continue };
        total += 1;
        let expected = ids_of(expected);
        let got = tok.encode(&row.text, true).expect("encode");
        if got != expected {
            failures.push(format!("{:?}\n  expected {expected:?}\n  got      {got:?}", row.text));
        }
    }
    eprintln!("{model}: {}/{total} reference rows match llama.cpp", total - failures.len());
    assert!(total >= 90, "{model}: only {total} rows have ids");
    assert!(failures.is_empty(), "{model}: {} of {total} rows differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn reference_vectors_smollm2() {
    check_reference("smollm2-135m");
}

#[test]
fn reference_vectors_qwen25() {
    check_reference("qwen2.5-0.5b");
}

#[test]
fn reference_vectors_gemma3() {
    check_reference("gemma3-270m");
}

/// llama.cpp's test-tokenizer-0 data: tests separated by
/// `\n__ggml_vocab_test__\n` in `.inp`, one line of ids per test in `.out`.
/// It tokenizes without BOS and without parsing special tokens; SentencePiece
/// still gets its leading space (add_space_prefix).
fn check_llama_vocab(name: &str) {
    let inp = std::fs::read_to_string(format!("{}.inp", vocab_path(name).display())).expect("inp");
    let out = std::fs::read_to_string(format!("{}.out", vocab_path(name).display())).expect("out");
    let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let expected: Vec<&str> = out.split('\n').collect();
    // Both files end with a separator / newline, leaving one empty tail.
    let n = texts.len() - 1;
    assert_eq!(expected.len() - 1, n, "{name}: .inp and .out disagree on the number of tests");
    let tok = tokenizer(name);
    let mut failures = Vec::new();
    for (text, line) in texts.iter().zip(&expected).take(n) {
        let want: Vec<u32> = line.split_whitespace().map(|x| x.parse().expect("id")).collect();
        let got = tok.encode(text, false).expect("encode");
        if got != want {
            failures.push(format!("{text:?}\n  expected {want:?}\n  got      {got:?}"));
        }
    }
    eprintln!("{name}: {}/{n} llama.cpp vocab tests match", n - failures.len());
    assert!(failures.is_empty(), "{name}: {} of {n} differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn llama_vocab_qwen2() {
    check_llama_vocab("qwen2");
}

#[test]
fn llama_vocab_starcoder() {
    check_llama_vocab("starcoder");
}

#[test]
fn llama_vocab_gpt2() {
    check_llama_vocab("gpt-2");
}

#[test]
fn llama_vocab_llama_spm() {
    check_llama_vocab("llama-spm");
}

fn round_trip_texts() -> Vec<String> {
    let mut texts: Vec<String> = reference_rows().into_iter().map(|r| r.text).collect();
    let mut seeds: Vec<_> = std::fs::read_dir(SEEDS).expect("seeds dir").flatten().map(|e| e.path()).collect();
    seeds.sort();
    for p in seeds {
        texts.push(std::fs::read_to_string(&p).expect("seed text"));
    }
    texts.extend(
        [
            "日本語のテキスト、カタカナ、ひらがな、漢字。",
            "हिन्दी में एक वाक्य, मात्राओं और संयुक्ताक्षरों के साथ: क्षत्रिय, ज्ञान।",
            "emoji 😀🙌🏽👩‍👩‍👧‍👦🇯🇵 and ZWJ 🧑‍💻, skin tones 👍🏿",
            "  leading, trailing and \t mixed   whitespace \r\n\n ",
            "combining: e\u{301} a\u{308}, Zalgo: z\u{35b}\u{33b}",
            "",
        ]
        .map(String::from),
    );
    texts
}

fn check_round_trip(name: &str) {
    let tok = tokenizer(name);
    for text in round_trip_texts() {
        let ids = tok.encode(&text, false).expect("encode");
        assert_eq!(tok.decode(&ids, false), text, "{name}: decode(encode(x)) != x");
        assert_eq!(tok.decode(&ids, true), text, "{name}: no special tokens, so skipping them changes nothing");
        // Streaming: token bytes concatenate to the text (bar SentencePiece's prefix space).
        let mut bytes: Vec<u8> = ids.iter().flat_map(|&id| tok.token_bytes(id)).collect();
        // llama-spm adds a leading space (add_space_prefix) that decode strips; Gemma has none.
        if name == "llama-spm" && !text.is_empty() {
            assert_eq!(bytes.first(), Some(&b' '), "{name}: SentencePiece prefix space");
            bytes.remove(0);
        }
        assert_eq!(bytes, text.as_bytes(), "{name}: token_bytes do not concatenate to the text");
    }
}

#[test]
fn round_trips_smollm2() {
    check_round_trip("smollm2-135m");
}

#[test]
fn round_trips_qwen25() {
    check_round_trip("qwen2.5-0.5b");
}

#[test]
fn round_trips_gemma3() {
    check_round_trip("gemma3-270m");
}

#[test]
fn round_trips_llama_vocabs() {
    for name in ["qwen2", "starcoder", "gpt-2", "llama-spm"] {
        check_round_trip(name);
    }
}

#[test]
fn control_strings_stay_text_unless_asked() {
    for (model, text, control) in [
        ("smollm2-135m", "<|im_start|>user\nhi<|im_end|>", "<|im_start|>"),
        ("qwen2.5-0.5b", "<|im_start|>user\nhi<|im_end|>", "<|im_start|>"),
        ("gemma3-270m", "<start_of_turn>user\nhi<end_of_turn>", "<start_of_turn>"),
    ] {
        let tok = tokenizer(model);
        let control_id = tok.token_to_id(control).expect("control token in vocab");
        assert!(tok.is_special(control_id), "{model}: {control} is a control token");

        let plain = tok.encode(text, false).expect("encode");
        assert!(
            plain.iter().all(|&id| !tok.is_special(id)),
            "{model}: user text must not produce control tokens: {plain:?}"
        );
        assert_eq!(tok.decode(&plain, true), text, "{model}: the control strings survive as text");

        let parsed = tok.encode(text, true).expect("encode");
        assert_eq!(parsed.first(), Some(&control_id), "{model}: parse_special splits {control} out");
        assert_eq!(tok.decode(&parsed, false), text);
        assert!(!tok.decode(&parsed, true).contains(control), "{model}: skip_special drops control tokens");
    }
}

#[test]
fn special_ids_match_the_models() {
    let smol = tokenizer("smollm2-135m");
    assert_eq!((smol.bos_id(), smol.eos_id(), smol.add_bos()), (Some(1), Some(2), false));
    assert!(smol.is_eog(smol.token_to_id("<|im_end|>").expect("im_end")));
    let qwen = tokenizer("qwen2.5-0.5b");
    assert_eq!(qwen.eos_id(), Some(151645));
    for t in ["<|im_end|>", "<|endoftext|>"] {
        assert!(qwen.is_eog(qwen.token_to_id(t).expect("token")), "{t}");
    }
    let gemma = tokenizer("gemma3-270m");
    assert_eq!((gemma.bos_id(), gemma.eos_id(), gemma.add_bos()), (Some(2), Some(1), true));
    assert!(gemma.is_eog(106), "<end_of_turn> ends generation");
    assert_eq!(gemma.encode_with_special("Hi", true, false).expect("encode").first(), Some(&2));
    // Gemma's byte-fallback tokens give their single byte.
    let b = gemma.token_to_id("<0x0A>").expect("byte token");
    assert_eq!(gemma.token_bytes(b), vec![b'\n']);
}

fn read_content(path: &Path) -> gguf_file::Content {
    let mut f = std::fs::File::open(path).expect("open");
    gguf_file::Content::read(&mut f).expect("gguf")
}

#[test]
fn corrupt_metadata_is_an_error_not_a_panic() {
    let content = read_content(&model_path("smollm2-135m"));
    let base = content.metadata;
    let n = match &base["tokenizer.ggml.tokens"] {
        Value::Array(a) => a.len(),
        _ => panic!("tokens"),
    };
    let cases: Vec<(&str, Box<dyn Fn(&mut std::collections::HashMap<String, Value>)>)> = vec![
        (
            "tokenizer.ggml.token_type has 100 entries but tokenizer.ggml.tokens has 49152",
            Box::new(|md| {
                if let Some(Value::Array(a)) = md.get_mut("tokenizer.ggml.token_type") {
                    a.truncate(100);
                }
            }),
        ),
        (
            "tokenizer.ggml.eos_token_id = 49152 is outside the vocabulary (0..49152)",
            Box::new(move |md| {
                md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(n as u32));
            }),
        ),
        (
            "tokenizer.ggml.pre = `smollm-9000` is not a supported pre-tokenizer",
            Box::new(|md| {
                md.insert("tokenizer.ggml.pre".into(), Value::String("smollm-9000".into()));
            }),
        ),
        (
            "tokenizer.ggml.merges is missing",
            Box::new(|md| {
                md.remove("tokenizer.ggml.merges");
            }),
        ),
        (
            "tokenizer.ggml.tokens[3] must be a string",
            Box::new(|md| {
                if let Some(Value::Array(a)) = md.get_mut("tokenizer.ggml.tokens") {
                    a[3] = Value::U32(7);
                }
            }),
        ),
        (
            "duplicate token \"<|im_start|>\" at ids 1 and 5",
            Box::new(|md| {
                if let Some(Value::Array(a)) = md.get_mut("tokenizer.ggml.tokens") {
                    a[5] = Value::String("<|im_start|>".into());
                }
            }),
        ),
    ];
    for (want, corrupt) in cases {
        let mut md = base.clone();
        corrupt(&mut md);
        let err = Tokenizer::from_metadata(&md).expect_err(want).to_string();
        assert!(err.contains(want), "expected an error containing {want:?}, got {err:?}");
    }
    assert!(Tokenizer::from_metadata(&base).is_ok(), "the untouched metadata loads");
}

#[test]
fn a_file_that_is_not_gguf_is_a_named_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, b"definitely not a gguf file").expect("write");
    let err = Tokenizer::from_file(&path).expect_err("not gguf").to_string();
    assert!(err.contains("broken.gguf"), "{err}");
}

#[test]
fn tokenize_command_prints_the_ids() {
    let text = "<|im_start|>user\nMy order #A-10293 hasn't arrived!!! 😡<|im_end|>";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_brandvoice"))
        .args(["tokenize", "--model", "smollm2-135m", "--text", text])
        .output()
        .expect("run brandvoice");
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let printed: Vec<u32> = serde_json::from_slice(&out.stdout).expect("a JSON array of ids");
    assert_eq!(printed, tokenizer("smollm2-135m").encode(text, true).expect("encode"));
    assert_eq!(printed.first(), Some(&1), "special tokens are parsed");
}
