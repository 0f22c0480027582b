//! The tokenizer, rebuilt from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Why our own and not the `tokenizers` crate: the GGUF files we can reach
//! carry no tokenizer.json, and the ids must equal llama.cpp's (the reference
//! vectors and the greedy continuations we test against come from it). So
//! this is a port of llama.cpp's `llama-vocab.cpp`, in pieces:
//! - `mod.rs` reads and validates the metadata (untrusted input: ids out of
//!   range, arrays of different lengths, unknown models or pre-tokenizers are
//!   [`EngineError::Tokenizer`] errors naming the key, never panics), assigns
//!   token attributes the way llama.cpp does (token types, plus the
//!   end-of-generation names it recognises), splits special tokens out of the
//!   text (`tokenizer_st_partition`), and detokenises;
//! - `bpe.rs` is byte-level BPE (`model = gpt2`), `pretokenize.rs` its
//!   per-`pre` word splitting;
//! - `spm.rs` is SentencePiece BPE (`model = llama`: Gemma 3, Llama 2).
//!
//! Special tokens: control and unknown tokens are split out of the text only
//! when the caller passes `parse_special = true` (text typed by a user must
//! never become `<|im_start|>`); user-defined tokens (Gemma's runs of
//! newlines and spaces, Qwen's `<tool_call>`) are always split out, because
//! llama.cpp and Hugging Face treat them as ordinary vocabulary.
//!
//! Deliberate difference from llama.cpp: `decode` does not apply
//! `clean_up_tokenization_spaces` (none of our three models asks for it, and
//! it would break `decode(encode(x)) == x`).

/// `PartialEq`, `Eq` and `PartialOrd` from a type's `Ord::cmp`, for the merge-queue entries
/// of both tokenizers (a `BinaryHeap` needs all four; only `cmp` differs between them).
macro_rules! ord_from_cmp {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == std::cmp::Ordering::Equal
            }
        }
        impl Eq for $t {}
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
    };
}

mod bpe;
mod pretokenize;
mod spm;

use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file::{self, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One symbol of a word being merged: a byte range of the text in a doubly linked list
/// (both tokenizers merge the same way; they differ in how they rank a pair).
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

// Token attributes (a subset of llama.cpp's `llama_token_attr`).
const ATTR_UNKNOWN: u8 = 1 << 0;
const ATTR_UNUSED: u8 = 1 << 1;
const ATTR_NORMAL: u8 = 1 << 2;
const ATTR_CONTROL: u8 = 1 << 3;
const ATTR_USER_DEFINED: u8 = 1 << 4;
const ATTR_BYTE: u8 = 1 << 5;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
fn attr_from_token_type(t: i64) -> Option<u8> {
    Some(match t {
        0 => 0, // undefined
        1 => ATTR_NORMAL,
        2 => ATTR_UNKNOWN,
        3 => ATTR_CONTROL,
        4 => ATTR_USER_DEFINED,
        5 => ATTR_UNUSED,
        6 => ATTR_BYTE,
        _ => return None,
    })
}

const ESCAPED_SPACE: &str = "\u{2581}";

/// Hash map for the vocabulary-sized tables: foldhash instead of SipHash
/// (the keys are not attacker-chosen, and loading 262k tokens is 2x faster).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The vocabulary proper, shared by both tokenizer models.
#[derive(Debug)]
pub(crate) struct Vocab {
    pub(crate) tokens: Vec<String>,
    pub(crate) token_to_id: FastMap<String, u32>,
    pub(crate) scores: Vec<f32>,
    pub(crate) attrs: Vec<u8>,
}

#[derive(Debug)]
enum Model {
    /// `tokenizer.ggml.model = gpt2`
    Bpe(bpe::BpeModel),
    /// `tokenizer.ggml.model = llama`
    Spm,
}

struct Inner {
    vocab: Vocab,
    model: Model,
    /// Control, user-defined and unknown tokens, longest text first: the
    /// order in which they are cut out of raw text.
    special_cache: Vec<u32>,
    /// What each token stands for, as bytes (llama.cpp's
    /// `cache_token_to_piece`, rendered with `special = true`).
    pieces: Vec<Box<[u8]>>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    eog: Vec<u32>,
}

/// A tokenizer built from GGUF metadata. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("Tokenizer")
            .field("model", &match &i.model {
                Model::Bpe(b) => format!("gpt2 (pre = {})", b.pre_name()),
                Model::Spm => "llama (sentencepiece)".to_string(),
            })
            .field("vocab_size", &i.vocab.tokens.len())
            .field("bos", &i.bos)
            .field("eos", &i.eos)
            .field("add_bos", &i.add_bos)
            .field("eog", &i.eog)
            .finish()
    }
}

/// One piece of input during special-token partitioning.
#[derive(Debug, Clone, Copy)]
enum Fragment {
    /// Raw text: a byte range of the input.
    Text(usize, usize),
    Token(u32),
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::Tokenizer(msg.into())
}

// ---- metadata readers: each names the key and what was expected ----

fn value_as_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => *x as i64,
        Value::I8(x) => *x as i64,
        Value::U16(x) => *x as i64,
        Value::I16(x) => *x as i64,
        Value::U32(x) => *x as i64,
        Value::I32(x) => *x as i64,
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

fn type_name(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("array of {}", a.first().map_or("nothing".to_string(), type_name)),
        other => format!("{:?}", other.value_type()).to_lowercase(),
    }
}

struct Meta<'a>(&'a HashMap<String, Value>);

impl<'a> Meta<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(bad(format!("{key} must be a string, found {}", type_name(v)))),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&'a [Value]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.as_slice())),
            Some(v) => Err(bad(format!("{key} must be an array, found {}", type_name(v)))),
        }
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(arr) = self.array(key)? else { return Ok(None) };
        arr.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(format!("{key}[{i}] must be a string, found {}", type_name(other)))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(arr) = self.array(key)? else { return Ok(None) };
        arr.iter()
            .enumerate()
            .map(|(i, v)| {
                value_as_i64(v).ok_or_else(|| bad(format!("{key}[{i}] must be an integer, found {}", type_name(v))))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn floats(&self, key: &str) -> Result<Option<Vec<f32>>> {
        let Some(arr) = self.array(key)? else { return Ok(None) };
        arr.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::F32(x) => Ok(*x),
                Value::F64(x) => Ok(*x as f32),
                other => value_as_i64(other)
                    .map(|x| x as f32)
                    .ok_or_else(|| bad(format!("{key}[{i}] must be a number, found {}", type_name(other)))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => match value_as_i64(v) {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(bad(format!("{key} must be a bool, found {}", type_name(v)))),
            },
        }
    }

    /// A token id that must lie inside the vocabulary.
    fn token_id(&self, key: &str, n_tokens: usize) -> Result<Option<u32>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let id = value_as_i64(v).ok_or_else(|| bad(format!("{key} must be an integer, found {}", type_name(v))))?;
        if id < 0 || id as u64 >= n_tokens as u64 {
            return Err(bad(format!("{key} = {id} is outside the vocabulary (0..{n_tokens})")));
        }
        Ok(Some(id as u32))
    }
}

// Token texts llama.cpp recognises (`llama_vocab::impl::load`): they become
// control tokens and, for the EOG list, end generation.
const EOT_NAMES: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
];
const EOM_NAMES: &[&str] = &["<|eom_id|>"];
const FIM_PRE_NAMES: &[&str] =
    &["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"];
const FIM_SUF_NAMES: &[&str] =
    &["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"];
const FIM_MID_NAMES: &[&str] =
    &["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"];
const FIM_PAD_NAMES: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_NAMES: &[&str] = &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"];
const FIM_SEP_NAMES: &[&str] = &["<|file_sep|>"];
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
];

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        Self::from_metadata(&content.metadata)
    }

    /// Reads only the metadata of the GGUF file at `path` and builds the tokenizer.
    pub fn from_file(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        // Buffered: candle reads the header field by field (4x faster here).
        let mut file = std::io::BufReader::with_capacity(1 << 20, file);
        let content = gguf_file::Content::read(&mut file).map_err(|e| EngineError::BadModelFile {
            path: path.to_path_buf(),
            reason: format!("cannot read GGUF header: {e}"),
        })?;
        Self::from_gguf(&content).map_err(|e| match e {
            EngineError::Tokenizer(msg) => {
                EngineError::BadModelFile { path: path.to_path_buf(), reason: format!("tokenizer: {msg}") }
            }
            other => other,
        })
    }

    /// Builds the tokenizer from a GGUF metadata map.
    pub fn from_metadata(md: &HashMap<String, Value>) -> Result<Self> {
        let meta = Meta(md);
        let model_name = meta
            .string("tokenizer.ggml.model")?
            .ok_or_else(|| bad("tokenizer.ggml.model is missing: the file has no tokenizer"))?;
        let is_bpe = match model_name {
            "gpt2" => true,
            "llama" => false,
            other => {
                return Err(bad(format!(
                    "tokenizer.ggml.model = `{other}` is not supported (supported: gpt2, llama)"
                )))
            }
        };

        // Vocabulary.
        let mut tokens = meta
            .strings("tokenizer.ggml.tokens")?
            .ok_or_else(|| bad("tokenizer.ggml.tokens is missing"))?;
        let n = tokens.len();
        if n == 0 {
            return Err(bad("tokenizer.ggml.tokens is empty"));
        }
        if n > u32::MAX as usize {
            return Err(bad(format!("tokenizer.ggml.tokens has {n} entries, more than token ids can hold")));
        }
        let scores = match meta.floats("tokenizer.ggml.scores")? {
            Some(s) if s.len() != n => {
                return Err(bad(format!(
                    "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {n}",
                    s.len()
                )))
            }
            Some(s) => s,
            None => vec![0.0; n],
        };
        let mut attrs = match meta.ints("tokenizer.ggml.token_type")? {
            Some(t) if t.len() != n => {
                return Err(bad(format!(
                    "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {n}",
                    t.len()
                )))
            }
            Some(t) => t
                .iter()
                .enumerate()
                .map(|(i, &ty)| {
                    attr_from_token_type(ty).ok_or_else(|| {
                        bad(format!("tokenizer.ggml.token_type[{i}] = {ty} is not a token type (0..=6)"))
                    })
                })
                .collect::<Result<Vec<u8>>>()?,
            None => vec![ATTR_NORMAL; n],
        };
        let mut token_to_id = FastMap::with_capacity_and_hasher(n, Default::default());
        for (i, tok) in tokens.iter_mut().enumerate() {
            if tok.is_empty() {
                *tok = format!("[EMPTY_{i}]"); // as llama.cpp does
            }
            if let Some(prev) = token_to_id.insert(tok.clone(), i as u32) {
                return Err(bad(format!(
                    "tokenizer.ggml.tokens: duplicate token {tok:?} at ids {prev} and {i}"
                )));
            }
        }

        // Model-specific parts.
        let model = if is_bpe {
            let merges = meta
                .strings("tokenizer.ggml.merges")?
                .ok_or_else(|| bad("tokenizer.ggml.merges is missing (required for tokenizer.ggml.model = gpt2)"))?;
            let pre_name = meta.string("tokenizer.ggml.pre")?.ok_or_else(|| {
                bad("tokenizer.ggml.pre is missing: a gpt2-style vocabulary needs it to pick its pre-tokenizer")
            })?;
            let pre = pretokenize::PreTokenizer::from_name(pre_name).map_err(bad)?;
            Model::Bpe(bpe::BpeModel::new(&merges, pre))
        } else {
            Model::Spm
        };

        // Special ids. llama.cpp's SPM defaults (bos 1, eos 2, unk 0) apply
        // when the keys are absent; BPE has no sensible default.
        let default_if = |id: u32| (!is_bpe && (id as usize) < n).then_some(id);
        let bos = meta.token_id("tokenizer.ggml.bos_token_id", n)?.or(default_if(1));
        let eos = meta.token_id("tokenizer.ggml.eos_token_id", n)?.or(default_if(2));
        let mut eot = meta.token_id("tokenizer.ggml.eot_token_id", n)?;
        let mut eom = meta.token_id("tokenizer.ggml.eom_token_id", n)?;
        // Not used for tokenizing, but still validated: a bad id is bad metadata.
        for key in ["unknown", "seperator", "padding", "mask"] {
            meta.token_id(&format!("tokenizer.ggml.{key}_token_id"), n)?;
        }
        let mut fim_pre = meta.token_id("tokenizer.ggml.fim_pre_token_id", n)?;
        let mut fim_suf = meta.token_id("tokenizer.ggml.fim_suf_token_id", n)?;
        let mut fim_mid = meta.token_id("tokenizer.ggml.fim_mid_token_id", n)?;
        let mut fim_pad = meta.token_id("tokenizer.ggml.fim_pad_token_id", n)?;
        let mut fim_rep = meta.token_id("tokenizer.ggml.fim_rep_token_id", n)?;
        let mut fim_sep = meta.token_id("tokenizer.ggml.fim_sep_token_id", n)?;

        let add_bos = meta.bool("tokenizer.ggml.add_bos_token")?.unwrap_or(!is_bpe);
        let add_eos = meta.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let add_space_prefix = meta.bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(!is_bpe);
        if add_bos && bos.is_none() {
            return Err(bad("tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set"));
        }
        if add_eos && eos.is_none() {
            return Err(bad("tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set"));
        }

        // Auto-detect special tokens by text, as llama.cpp does; where several
        // names match, the lowest id wins (llama.cpp's pick depends on hash order).
        let find = |names: &[&str]| names.iter().filter_map(|t| token_to_id.get(*t).copied()).min();
        for (slot, names) in [
            (&mut eot, EOT_NAMES),
            (&mut eom, EOM_NAMES),
            (&mut fim_pre, FIM_PRE_NAMES),
            (&mut fim_suf, FIM_SUF_NAMES),
            (&mut fim_mid, FIM_MID_NAMES),
            (&mut fim_pad, FIM_PAD_NAMES),
            (&mut fim_rep, FIM_REP_NAMES),
            (&mut fim_sep, FIM_SEP_NAMES),
        ] {
            if slot.is_none() {
                if let Some(id) = find(names) {
                    *slot = Some(id);
                    attrs[id as usize] |= ATTR_CONTROL;
                }
            }
        }
        let mut eog: Vec<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        for &id in EOG_NAMES.iter().filter_map(|t| token_to_id.get(*t)) {
            eog.push(id);
            attrs[id as usize] |= ATTR_CONTROL;
        }
        // gpt-oss: these are always rendered.
        for &id in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"].iter().filter_map(|t| token_to_id.get(*t)) {
            attrs[id as usize] = ATTR_USER_DEFINED;
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        // o200k_harmony / solar-open: `<|end|>` is not an end of generation there.
        let has = |eog: &[u32], s: &str| token_to_id.get(s).is_some_and(|id| eog.contains(id));
        if (has(&eog, "<|return|>") && has(&eog, "<|call|>") && has(&eog, "<|end|>"))
            || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>") && has(&eog, "<|end|>"))
        {
            if let Some(&end) = token_to_id.get("<|end|>") {
                eog.retain(|&x| x != end);
                attrs[end as usize] = ATTR_USER_DEFINED;
            }
        }
        if has(&eog, "<|tool_response>") && has(&eog, "</s>") {
            if let Some(&s) = token_to_id.get("</s>") {
                eog.retain(|&x| x != s);
                attrs[s as usize] = ATTR_NORMAL;
            }
        }

        let mut special_cache: Vec<u32> = (0..n as u32)
            .filter(|&id| attrs[id as usize] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN) != 0)
            .collect();
        special_cache.sort_by(|&a, &b| tokens[b as usize].len().cmp(&tokens[a as usize].len()));

        let vocab = Vocab { tokens, token_to_id, scores, attrs };
        let pieces = (0..n).map(|id| render_piece(&vocab, &model, id)).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                vocab,
                model,
                special_cache,
                pieces,
                bos,
                eos,
                eot,
                add_bos,
                add_eos,
                add_space_prefix,
                eog,
            }),
        })
    }

    /// Token ids of `text`, no BOS added. With `parse_special`, special-token
    /// strings in the text become their control ids; without, they are plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        self.encode_with_special(text, false, parse_special)
    }

    /// llama.cpp's `tokenize(text, add_special, parse_special)`: with
    /// `add_special`, BOS (and EOS) are added when the model asks for them.
    pub fn encode_with_special(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let inner = &*self.inner;
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && inner.add_bos {
            out.extend(inner.bos);
        }
        match &inner.model {
            Model::Spm => {
                // A space goes before the first fragment and before every
                // fragment that follows a special token.
                let mut prev_special = true;
                let mut buf = String::new();
                for frag in fragments {
                    match frag {
                        Fragment::Text(s, e) => {
                            buf.clear();
                            if inner.add_space_prefix && prev_special {
                                buf.push(' ');
                            }
                            buf.push_str(&text[s..e]);
                            let escaped = buf.replace(' ', ESCAPED_SPACE);
                            spm::encode(&escaped, &inner.vocab, &mut out)?;
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe(bpe) => {
                for frag in fragments {
                    match frag {
                        Fragment::Text(s, e) => bpe.encode_fragment(&text[s..e], &inner.vocab, &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && inner.add_eos {
            out.extend(inner.eos);
        }
        Ok(out)
    }

    /// llama.cpp's `tokenizer_st_partition`: cut special tokens out of the
    /// text, longest first, leftmost occurrence first.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let inner = &*self.inner;
        let mut frags = if text.is_empty() { Vec::new() } else { vec![Fragment::Text(0, text.len())] };
        let mut next = Vec::new();
        for &id in &inner.special_cache {
            let attr = inner.vocab.attrs[id as usize];
            if !parse_special && attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
                continue;
            }
            let needle = inner.vocab.tokens[id as usize].as_str();
            if !frags.iter().any(|f| matches!(f, Fragment::Text(s, e) if text[*s..*e].contains(needle))) {
                continue;
            }
            next.clear();
            for &f in &frags {
                let Fragment::Text(mut s, e) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(off) = text[s..e].find(needle) {
                    let m = s + off;
                    if m > s {
                        next.push(Fragment::Text(s, m));
                    }
                    next.push(Fragment::Token(id));
                    s = m + needle.len();
                }
                if s < e {
                    next.push(Fragment::Text(s, e));
                }
            }
            std::mem::swap(&mut frags, &mut next);
        }
        frags
    }

    /// Text of `ids`; special tokens are dropped when `skip_special`.
    /// Invalid UTF-8 (a multi-byte character cut by the id list) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids, skip_special)).into_owned()
    }

    /// llama.cpp's `detokenize` (without `clean_spaces`), as raw bytes.
    /// Ids outside the vocabulary contribute nothing.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Vec<u8> {
        let inner = &*self.inner;
        let mut ids = ids;
        let mut remove_space = inner.add_space_prefix;
        if skip_special && inner.add_bos {
            if let (Some(&first), Some(bos)) = (ids.first(), inner.bos) {
                if first == bos {
                    remove_space = false;
                    ids = &ids[1..];
                }
            }
        }
        if skip_special && inner.add_eos {
            if let (Some(&last), Some(eos)) = (ids.last(), inner.eos) {
                if last == eos {
                    ids = &ids[..ids.len() - 1];
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let Some(piece) = inner.pieces.get(id as usize) else {
                remove_space = false;
                continue;
            };
            let hidden = skip_special && inner.vocab.attrs[id as usize] & (ATTR_CONTROL | ATTR_UNKNOWN) != 0;
            if !hidden {
                let piece: &[u8] = if remove_space && piece.first() == Some(&b' ') { &piece[1..] } else { piece };
                out.extend_from_slice(piece);
            }
            remove_space = false;
        }
        out
    }

    /// The raw bytes a token stands for (byte-fallback tokens give their byte),
    /// for streaming detokenisation that emits only valid UTF-8.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.token_piece(id).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// Like [`Tokenizer::token_bytes`] without copying; `None` outside the vocabulary.
    pub fn token_piece(&self, id: u32) -> Option<&[u8]> {
        self.inner.pieces.get(id as usize).map(|p| &p[..])
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.vocab.tokens.len()
    }
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.vocab.token_to_id.get(token).copied()
    }
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.inner.vocab.tokens.get(id as usize).map(String::as_str)
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.inner.eos
    }
    /// End-of-turn id (`<|im_end|>`, `<end_of_turn>`, …) when the model has one.
    pub fn eot_id(&self) -> Option<u32> {
        self.inner.eot
    }
    /// Whether the model wants BOS prepended (`tokenizer.ggml.add_bos_token`).
    pub fn add_bos(&self) -> bool {
        self.inner.add_bos
    }
    /// End-of-generation ids: eos, eot, `<|im_end|>`, `<end_of_turn>`, … (sorted).
    pub fn eog_ids(&self) -> &[u32] {
        &self.inner.eog
    }
    pub fn is_eog(&self, id: u32) -> bool {
        self.inner.eog.binary_search(&id).is_ok()
    }
    /// Control and unknown tokens: not text, dropped by `decode(_, true)`.
    /// (User-defined tokens such as Gemma's `"\n\n"` are text.)
    pub fn is_special(&self, id: u32) -> bool {
        self.inner.vocab.attrs.get(id as usize).is_some_and(|a| a & (ATTR_CONTROL | ATTR_UNKNOWN) != 0)
    }
    /// The `tokenizer.ggml.pre` name for byte-level BPE vocabularies.
    pub fn pre_tokenizer(&self) -> Option<&str> {
        match &self.inner.model {
            Model::Bpe(b) => Some(b.pre_name()),
            Model::Spm => None,
        }
    }
}

/// llama.cpp's `token_to_piece(id, special = true)`.
fn render_piece(vocab: &Vocab, model: &Model, id: usize) -> Box<[u8]> {
    let attr = vocab.attrs[id];
    let text = &vocab.tokens[id];
    if attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED) != 0 {
        return text.as_bytes().into();
    }
    if attr & ATTR_NORMAL != 0 {
        return match model {
            Model::Spm => text.replace(ESCAPED_SPACE, " ").into_bytes().into(),
            Model::Bpe(_) => bpe::decode_byte_level(text).into(),
        };
    }
    if attr & ATTR_BYTE != 0 {
        if let Some(b) = parse_byte_token(text) {
            return vec![b].into();
        }
        return text.as_bytes().into();
    }
    Box::default() // unused / undefined tokens render as nothing
}

/// `<0xNN>` → the byte.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny SentencePiece vocabulary: enough to check the metadata
    /// validation and the merge-by-score loop without a model file.
    fn spm_meta() -> HashMap<String, Value> {
        let tokens = ["<unk>", "<s>", "</s>", "<0x41>", "▁", "a", "b", "ab", "▁ab", "<ctl>", "\n\n"];
        let types = [2, 3, 3, 6, 1, 1, 1, 1, 1, 3, 4];
        let scores = [0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -0.5, -0.1, 0.0, 0.0];
        let mut md = HashMap::new();
        md.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
        md.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().map(|t| Value::String(t.to_string())).collect()),
        );
        md.insert("tokenizer.ggml.token_type".into(), Value::Array(types.iter().map(|&t| Value::I32(t)).collect()));
        md.insert("tokenizer.ggml.scores".into(), Value::Array(scores.iter().map(|&s| Value::F32(s)).collect()));
        md
    }

    #[test]
    fn spm_merges_by_score_and_falls_back_to_bytes() {
        let tok = Tokenizer::from_metadata(&spm_meta()).expect("valid metadata");
        assert!(tok.add_bos());
        assert_eq!(tok.bos_id(), Some(1));
        // "ab" → "▁ab" (space prefix added, ▁ab beats ▁ + ab).
        assert_eq!(tok.encode("ab", false).expect("encode"), vec![8]);
        // "A" has no token: byte fallback <0x41>.
        assert_eq!(tok.encode("abA", false).expect("encode"), vec![8, 3]);
        assert_eq!(tok.decode(&[8, 3], false), "abA");
        assert_eq!(tok.token_bytes(3), vec![0x41]);
        // User-defined tokens are split out even without parse_special;
        // control tokens only with it.
        assert_eq!(tok.encode("ab\n\nab", false).expect("encode"), vec![8, 10, 8]);
        let plain = tok.encode("<ctl>", false);
        assert!(plain.is_err(), "'<' has no byte token in this vocabulary, so plain text cannot be spelled");
        assert_eq!(tok.encode("ab<ctl>", true).expect("encode"), vec![8, 9]);
        assert_eq!(tok.encode_with_special("ab", true, false).expect("encode"), vec![1, 8]);
    }

    #[test]
    fn corrupt_metadata_is_an_error_naming_the_key() {
        let mut md = spm_meta();
        md.insert("tokenizer.ggml.token_type".into(), Value::Array(vec![Value::I32(1); 3]));
        let err = Tokenizer::from_metadata(&md).unwrap_err().to_string();
        assert!(err.contains("tokenizer.ggml.token_type has 3 entries"), "{err}");

        let mut md = spm_meta();
        md.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(99));
        let err = Tokenizer::from_metadata(&md).unwrap_err().to_string();
        assert!(err.contains("tokenizer.ggml.bos_token_id = 99 is outside the vocabulary"), "{err}");

        let mut md = spm_meta();
        md.insert("tokenizer.ggml.scores".into(), Value::String("nope".into()));
        let err = Tokenizer::from_metadata(&md).unwrap_err().to_string();
        assert!(err.contains("tokenizer.ggml.scores must be an array"), "{err}");

        let mut md = spm_meta();
        md.insert("tokenizer.ggml.token_type".into(), Value::Array(vec![Value::I32(9); 11]));
        let err = Tokenizer::from_metadata(&md).unwrap_err().to_string();
        assert!(err.contains("token_type[0] = 9"), "{err}");

        let mut md = spm_meta();
        md.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        md.insert("tokenizer.ggml.merges".into(), Value::Array(vec![]));
        md.insert("tokenizer.ggml.pre".into(), Value::String("mystery".into()));
        let err = Tokenizer::from_metadata(&md).unwrap_err().to_string();
        assert!(err.contains("`mystery`"), "{err}");

        let mut md = spm_meta();
        md.insert("tokenizer.ggml.model".into(), Value::String("t5".into()));
        let err = Tokenizer::from_metadata(&md).unwrap_err().to_string();
        assert!(err.contains("`t5`"), "{err}");

        let mut md = spm_meta();
        md.remove("tokenizer.ggml.tokens");
        let err = Tokenizer::from_metadata(&md).unwrap_err().to_string();
        assert!(err.contains("tokenizer.ggml.tokens is missing"), "{err}");
    }

    #[test]
    fn eog_includes_eos_and_known_names() {
        let mut md = spm_meta();
        md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
        let tok = Tokenizer::from_metadata(&md).expect("valid");
        assert!(tok.is_eog(2));
        assert!(tok.eog_ids().contains(&2), "</s> is an EOG name and the eos");
        assert!(tok.is_special(9) && !tok.is_special(10) && !tok.is_special(8));
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xff>"), Some(255));
        assert_eq!(parse_byte_token("<0x1>"), None);
    }
}
