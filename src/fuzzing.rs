//! Fuzz target bodies: every parser of untrusted input, driven by raw bytes.
//!
//! The bodies live in the library (not in `fuzz/`) so two harnesses run the
//! very same code: the `cargo fuzz` crate in `fuzz/` (libFuzzer, coverage
//! guided, needs a nightly compiler) and `tests/fuzz_harness.rs`, a
//! random-mutation runner on the stable compiler that `cargo test` can run.
//! A target returns normally for any input, accepted or rejected; a panic,
//! a hang or an out-of-memory is the bug a fuzzer reports. Targets also
//! assert what must hold for accepted input (spans inside the text and on
//! character boundaries, a tokenizer that decodes what it encoded), so a
//! silent wrong answer is a crash too.
//!
//! The style book the text targets lint against is the shipped one
//! (`prompts/`), loaded once per process.

use crate::draft::check::{self, Guard};
use crate::draft::{validate, validate_rewrite, DraftRequest, Limits, RewriteRequest};
use crate::engine::gguf::GgufFile;
use crate::engine::template::{ChatMessage, ChatTemplate};
use crate::engine::tokenizer::Tokenizer;
use crate::style::lint::{compile_brand, check_guide, Fact, LintRequest, RulePack, Shared, StyleBook};
use crate::style::schema::load_str;
use crate::style::StyleGuide;
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

/// The names of every target, for harnesses that take one by name.
pub const TARGETS: [&str; 5] = ["gguf_parse", "tokenizer_build", "lint_text", "style_yaml", "draft_request"];

/// Runs the target called `name` on `data`; `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "gguf_parse" => gguf_parse(data),
        "tokenizer_build" => tokenizer_build(data),
        "lint_text" => lint_text(data),
        "style_yaml" => style_yaml(data),
        "draft_request" => draft_request(data),
        _ => return false,
    }
    true
}

fn book() -> &'static StyleBook {
    static BOOK: OnceLock<StyleBook> = OnceLock::new();
    BOOK.get_or_init(|| StyleBook::load(crate::style::default_prompts_dir()).expect("the shipped prompts load"))
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| match Shared::load(&crate::style::default_prompts_dir()) {
        Ok(s) => s,
        Err(p) => panic!("the shipped prompts load: {p:?}"),
    })
}

/// A GGUF file: header, metadata and tensor table validation, then the
/// tokenizer and chat template built from its metadata, as a model load does.
pub fn gguf_parse(data: &[u8]) {
    let Ok((content, _tensors)) = GgufFile::parse(Path::new("fuzz.gguf"), data) else { return };
    if let Ok(tok) = Tokenizer::from_gguf(&content) {
        exercise_tokenizer(&tok, b"Hi <|im_start|>system\n\xe3\x81\x93\xe3\x82\x93 12.5 \xf0\x9f\x8e\xb5");
    }
    if let Ok(t) = ChatTemplate::from_metadata(&content) {
        let _ = t.render_parts(&[ChatMessage::new("system", "s"), ChatMessage::new("user", "<|im_end|>u")], true);
    }
}

/// Encodes `text` with and without special-token parsing and decodes the
/// ids; every id must be inside the vocabulary. (That plain text never
/// becomes a control token is tested on the real vocabularies in
/// `engine::generate`: in an arbitrary vocabulary a merge or `<unk>` may
/// legitimately yield one.)
fn exercise_tokenizer(tok: &Tokenizer, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for special in [false, true] {
        if let Ok(ids) = tok.encode(&text, special) {
            assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()), "encode gave an id outside the vocabulary");
            let _ = tok.decode(&ids, true);
            let _ = tok.decode(&ids, false);
        }
    }
}

/// Little-endian reader over the fuzz input that never runs dry (zeros after the end).
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    /// Up to the next 0xFF byte (or the end), as lossy UTF-8.
    fn piece(&mut self) -> String {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len());
        self.pos += end + 1;
        String::from_utf8_lossy(&rest[..end]).into_owned()
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// `tokenizer.ggml.*` metadata made from the input — a vocabulary, token
/// types (valid and not), merges, scores, special ids (in range or not) —
/// then the tokenizer built from it, encoding and decoding.
pub fn tokenizer_build(data: &[u8]) {
    let mut b = Bytes { data, pos: 0 };
    let spm = b.u8() & 1 == 1;
    const PRES: [&str; 8] = ["default", "qwen2", "smollm", "starcoder", "gpt-2", "llama3", "refact", "mystery"];
    let pre = PRES[b.u8() as usize % PRES.len()];
    let n = (b.u8() as usize % 64) + 1;
    let mut tokens: Vec<String> = Vec::with_capacity(n + 256);
    let mut types = Vec::new();
    // Byte tokens for SentencePiece (its fallback needs them) or single bytes for BPE.
    if b.u8() & 1 == 1 {
        for x in 0..=255u8 {
            if spm {
                tokens.push(format!("<0x{x:02X}>"));
                types.push(Value::I32(6));
            } else {
                tokens.push(byte_to_bpe_char(x).to_string());
                types.push(Value::I32(1));
            }
        }
    }
    for _ in 0..n {
        if b.done() {
            break;
        }
        let t = b.piece();
        let ty = b.u8();
        tokens.push(t);
        types.push(Value::I32(match ty % 16 {
            0..=9 => 1,
            10 => 3,
            11 => 4,
            12 => 2,
            13 => 5,
            14 => 6,
            _ => ty as i32 - 8, // out of range on purpose
        }));
    }
    let mut md: HashMap<String, Value> = HashMap::new();
    md.insert("tokenizer.ggml.model".into(), Value::String(if spm { "llama" } else { "gpt2" }.into()));
    md.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
    if b.u8() % 8 != 0 {
        md.insert("tokenizer.ggml.token_type".into(), Value::Array(types));
    }
    let scores: Vec<Value> = (0..tokens.len()).map(|_| Value::F32(b.u16() as f32 / -256.0)).collect();
    md.insert("tokenizer.ggml.scores".into(), Value::Array(scores));
    let mut merges = Vec::new();
    for _ in 0..(b.u8() % 32) {
        let (x, y) = (b.u16() as usize, b.u16() as usize);
        let m = match (tokens.get(x % tokens.len().max(1)), tokens.get(y % tokens.len().max(1))) {
            (Some(a), Some(c)) if b.u8() % 4 != 0 => format!("{a} {c}"),
            _ => b.piece(),
        };
        merges.push(Value::String(m));
    }
    md.insert("tokenizer.ggml.merges".into(), Value::Array(merges));
    for key in ["bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id", "padding_token_id"] {
        if b.u8() % 2 == 0 {
            let id = b.u16() as u32 % (tokens.len() as u32 + 4);
            md.insert(format!("tokenizer.ggml.{key}"), Value::U32(id));
        }
    }
    md.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(b.u8() & 1 == 1));
    md.insert("tokenizer.ggml.tokens".into(), Value::Array(tokens.into_iter().map(Value::String).collect()));
    let text = data.get(b.pos.min(data.len())..).unwrap_or(&[]);
    if let Ok(tok) = Tokenizer::from_metadata(&md) {
        exercise_tokenizer(&tok, text);
        exercise_tokenizer(&tok, b"hello world <|im_start|> \n\n  x");
    }
}

/// GPT-2's byte-to-unicode map (the printable stand-ins byte-level BPE uses).
fn byte_to_bpe_char(b: u8) -> char {
    let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if printable {
        return b as char;
    }
    // Non-printable bytes map to 256 + their rank among non-printable bytes.
    let rank = (0..b).filter(|&x| !((b'!'..=b'~').contains(&x) || (0xA1..=0xAC).contains(&x) || (0xAE..=0xFF).contains(&x))).count();
    char::from_u32(256 + rank as u32).unwrap_or('?')
}

/// Arbitrary text through the rule engine (lint and fix) for a brand,
/// channel, mood and language chosen by the first bytes, and through the
/// drafting checks (clean, invented, garbled, personal data, leak guard,
/// facts insertion, fallback filling with the text as the template).
pub fn lint_text(data: &[u8]) {
    let book = book();
    let pick = |i: usize, n: usize| data.get(i).map_or(0, |&b| b as usize % n.max(1));
    let brands: Vec<&String> = book.brands.keys().collect();
    let brand = brands[pick(0, brands.len())];
    let channels: Vec<&String> = book.channels.channels.keys().collect();
    let channel = channels[pick(1, channels.len())];
    let moods: Vec<&String> = book.moods.moods.keys().collect();
    let mood = moods[pick(2, moods.len())];
    let langs = &book.brands[brand].guide.languages;
    let lang = langs.get(pick(3, langs.len())).cloned();
    let text = String::from_utf8_lossy(data.get(4..).unwrap_or(&[])).into_owned();
    let facts = text.split('\n').take(2).map(|t| Fact { text: t.chars().take(200).collect(), url: None }).collect::<Vec<_>>();
    let req = LintRequest { brand: brand.clone(), channel: channel.clone(), mood: Some(mood.clone()), language: lang, facts };
    let Ok(valid) = book.validate(&req, &text) else { return };
    let check_spans = |t: &str, vs: &[crate::style::lint::RuleViolation]| {
        for v in vs {
            assert!(v.span.start <= v.span.end && v.span.end <= t.len(), "{} span {:?} outside a text of {} bytes", v.check, v.span, t.len());
            assert!(t.is_char_boundary(v.span.start) && t.is_char_boundary(v.span.end), "{} span {:?} splits a character", v.check, v.span);
        }
    };
    let v = book.lint(&valid, &text);
    check_spans(&text, &v);
    let (fixed, _) = book.fix(&valid, &text);
    check_spans(&fixed, &book.lint(&valid, &fixed));

    let cleaned = check::clean(&text);
    check_spans(&cleaned, &check::invented(&cleaned, "order TN-1234 $5 https://tunely.fm"));
    check_spans(&text, &check::garbled(&text));
    for (_, r) in check::personal_data(&text) {
        assert!(r.start <= r.end && r.end <= text.len() && text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
    }
    let half = text.len() / 2;
    let cut = (0..=half).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let guard = Guard::new(&[&text[..cut]], &[], true, &text[cut..]);
    check_spans(&text, &guard.check(&text));
    let _ = check::insert_facts(&text, &valid.facts, &valid.language);
    let _ = check::fill_fallback(&text, &valid.facts, Some("Sam"), None);
}

/// YAML as a brand guide (schema check with positions, semantic checks,
/// compiling its rules) and as a rule pack.
pub fn style_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((g, doc)) = load_str::<StyleGuide>("fuzz.yaml", text) {
        let problems = check_guide(&g, &doc, shared());
        if problems.is_empty() {
            let _ = compile_brand(&g, shared());
        }
    }
    if let Ok((pack, _)) = load_str::<RulePack>("fuzz-pack.yaml", text) {
        for r in &pack.rules {
            let _ = r.compile(&pack.name, &crate::style::rule::CompileContext::default());
        }
    }
}

/// A JSON body as `POST /v1/drafts` and `/v1/rewrite` read it: parsed
/// (unknown fields rejected) and validated against the shipped style book.
pub fn draft_request(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<DraftRequest>(data) {
        if let Ok(v) = validate(book(), &Limits::default(), req) {
            let _ = check::request_text(&v);
        }
    }
    if let Ok(req) = serde_json::from_slice::<RewriteRequest>(data) {
        let _ = validate_rewrite(book(), &Limits::default(), req);
    }
    let _ = serde_json::from_slice::<LintRequest>(data);
}
