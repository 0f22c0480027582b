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

mod arbitrary_text {
    use super::tokenizer;
    use proptest::prelude::*;

    /// Mixed scripts, whitespace, emoji, control-token look-alikes and any
    /// other code point. Left out: U+2581 (`▁`), which SentencePiece uses for
    /// the space, so Gemma (like llama.cpp and Hugging Face) decodes it as one;
    /// and what SmolLM2's vocabulary cannot spell (see
    /// `smollm2_drops_bytes_its_vocabulary_lacks`).
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            3 => "[ -~]{1,8}",
            2 => prop::sample::select(vec![" ", "  ", "\n", "\n\n", "\t", "\r\n", " \u{3000}", "\u{a0}"]).prop_map(String::from),
            2 => "[\u{3040}-\u{30ff}\u{4e00}-\u{4fff}]{1,6}",
            2 => "[\u{0900}-\u{097f}]{1,6}",
            1 => "[\u{1f300}-\u{1f64f}\u{200d}\u{fe0f}]{1,4}",
            1 => prop::sample::select(vec!["<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<eos>", "<0x0A>"]).prop_map(String::from),
            1 => any::<char>().prop_filter("spellable by all three", |&c| spellable(c)).prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    fn spellable(c: char) -> bool {
        c != '\u{2581}' && !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{40000}'..='\u{bffff}')
    }

    proptest! {
        // 48 cases by default; PROPTEST_CASES=2000 for a longer hunt.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
            ..ProptestConfig::default()
        })]
        #[test]
        fn decode_inverts_encode(s in text()) {
            for name in ["smollm2-135m", "qwen2.5-0.5b", "gemma3-270m"] {
                let tok = tokenizer(name);
                for parse_special in [false, true] {
                    let ids = tok.encode(&s, parse_special).expect("encode");
                    prop_assert_eq!(tok.decode(&ids, false), s.clone(), "{} parse_special={}", name, parse_special);
                    if !parse_special {
                        prop_assert!(ids.iter().all(|&id| !tok.is_special(id)), "{}: control id from plain text", name);
                    }
                }
            }
        }
    }
}

/// SmolLM2's byte-level vocabulary lacks the byte characters for 0x04, 0x06,
/// 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2 and 0xF5..=0xFF. llama.cpp
/// drops such bytes without a word; so do we (parity), and the other models
/// keep them.
#[test]
fn smollm2_drops_bytes_its_vocabulary_lacks() {
    let smol = tokenizer("smollm2-135m");
    assert_eq!(smol.encode("\u{4}", false).expect("encode"), Vec::<u32>::new());
    assert_eq!(smol.decode(&smol.encode("a\u{4}b", false).expect("encode"), false), "ab");
    for name in ["qwen2.5-0.5b", "gemma3-270m"] {
        let tok = tokenizer(name);
        for text in ["a\u{4}b", "\u{40000}"] {
            assert_eq!(tok.decode(&tok.encode(text, false).expect("encode"), false), text, "{name}");
        }
    }
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Tokenizer>();
}

/// Speed numbers for BENCHMARKS.md:
/// `cargo test --test tokenizer_parity encode_speed -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn encode_speed() {
    use std::time::Instant;
    let mut seeds: Vec<_> = std::fs::read_dir(SEEDS).expect("seeds").flatten().map(|e| e.path()).collect();
    seeds.sort();
    let text: String = seeds.iter().map(|p| std::fs::read_to_string(p).expect("seed")).collect();
    let chat = "<|im_start|>system\nYou are a helpful support agent for Tunely.<|im_end|>\n<|im_start|>user\nMy playlists are gone after the update, fix it now!<|im_end|>\n<|im_start|>assistant\n";
    for (name, _) in MODELS {
        let path = model_path(name);
        let t0 = Instant::now();
        let tok = Tokenizer::from_file(&path).expect("load");
        let load = t0.elapsed();
        let t0 = Instant::now();
        let ids = tok.encode(&text, false).expect("encode");
        let enc = t0.elapsed();
        let t0 = Instant::now();
        for _ in 0..100 {
            tok.encode(chat, true).expect("encode");
        }
        let chat_t = t0.elapsed() / 100;
        let t0 = Instant::now();
        let back = tok.decode(&ids, false);
        let dec = t0.elapsed();
        assert_eq!(back, text);
        eprintln!(
            "{name}: load {:.0} ms; encode {} bytes -> {} tokens in {:.1} ms ({:.0}k tokens/s); chat prompt (parse_special) {:.2} ms; decode {:.1} ms",
            load.as_secs_f64() * 1e3,
            text.len(),
            ids.len(),
            enc.as_secs_f64() * 1e3,
            ids.len() as f64 / enc.as_secs_f64() / 1e3,
            chat_t.as_secs_f64() * 1e3,
            dec.as_secs_f64() * 1e3
        );
    }
}
