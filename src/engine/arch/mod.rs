//! Model architectures: llama (SmolLM2), qwen2 (Qwen2.5) and gemma3
//! (Gemma-3-270M), read from GGUF.
//!
//! The architecture files started as copies of candle-transformers 0.11.1's
//! `quantized_llama.rs`, `quantized_qwen2.rs` and `quantized_gemma3.rs`
//! (MIT/Apache-2.0); each file's header lists what changed. What they have in
//! common (embedding, norms, rotary tables, KV cache, attention, MLP and the
//! `CausalLm` implementation) lives once in `layers`. Every weight matmul goes
//! through `qlinear::QLinear`, so faster kernels drop in without touching
//! these files.

pub mod gemma3;
pub mod layers;
pub mod llama;
pub mod qwen2;

use super::error::{EngineError, Result};
use super::gguf::GgufFile;
use super::model::{CausalLm, LoadOptions, ModelInfo};

/// Builds the network for a validated file, by `general.architecture`.
pub fn load_lm(g: &GgufFile, opts: &LoadOptions) -> Result<Box<dyn CausalLm>> {
    let arch = g.architecture()?;
    match arch.as_str() {
        "llama" => llama::load(g, opts),
        "qwen2" => qwen2::load(g, opts),
        "gemma3" => gemma3::load(g, opts),
        _ => Err(EngineError::UnsupportedArch { path: g.path().to_path_buf(), arch }),
    }
}

/// Hyper-parameters every architecture reads the same way.
pub(crate) struct Common {
    pub info: ModelInfo,
    pub ff: usize,
    pub eps: f64,
}

/// Reads `{arch}.*` sizes, checks them against each other and against the
/// embedding tensor, and fills [`ModelInfo`].
pub(crate) fn common(g: &GgufFile, arch: &str, opts: &LoadOptions, head_dim: Option<usize>) -> Result<Common> {
    let k = |s: &str| format!("{arch}.{s}");
    let n_layer = g.get_usize(&k("block_count"))?;
    let dim = g.get_usize(&k("embedding_length"))?;
    let ff = g.get_usize(&k("feed_forward_length"))?;
    let n_head = g.get_usize(&k("attention.head_count"))?;
    let n_kv_head = g.get_usize(&k("attention.head_count_kv"))?;
    let train_ctx = g.get_usize(&k("context_length"))?;
    let eps = g.get_f64(&k("attention.layer_norm_rms_epsilon"))?;
    let limits = [
        ("block_count", n_layer, 1, 1024),
        ("embedding_length", dim, 1, 1 << 16),
        ("feed_forward_length", ff, 1, 1 << 18),
        ("attention.head_count", n_head, 1, 1024),
        ("attention.head_count_kv", n_kv_head, 1, 1024),
        ("context_length", train_ctx, 1, 1 << 24),
    ];
    for (key, v, lo, hi) in limits {
        if v < lo || v > hi {
            return Err(g.error(format!("metadata `{arch}.{key}` = {v} is outside {lo}..={hi}")));
        }
    }
    if n_head % n_kv_head != 0 {
        return Err(g.error(format!(
            "`{arch}.attention.head_count` {n_head} is not a multiple of `head_count_kv` {n_kv_head}"
        )));
    }
    let head_dim = match head_dim {
        Some(d) => d,
        None => {
            if dim % n_head != 0 {
                return Err(g.error(format!("embedding_length {dim} is not a multiple of head_count {n_head}")));
            }
            dim / n_head
        }
    };
    if head_dim == 0 || head_dim % 2 != 0 || head_dim > 1024 {
        return Err(g.error(format!("head dimension {head_dim} must be even and at most 1024")));
    }
    let vocab = match g.tensor_loc("token_embd.weight")?.dims.as_slice() {
        [v, d] if *d == dim => *v,
        other => {
            return Err(g.error(format!(
                "tensor `token_embd.weight` has shape {other:?}, expected (vocab, {dim})"
            )))
        }
    };
    let name = match g.get("general.name").and_then(|v| v.to_string().ok()) {
        Some(n) => n.clone(),
        None => g.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let info = ModelInfo {
        arch: arch.to_string(),
        name,
        vocab_size: vocab,
        context_length: opts.context_for(train_ctx),
        train_context_length: train_ctx,
        n_layer,
        embedding_length: dim,
        n_head,
        n_kv_head,
        head_dim,
        path: g.path().to_path_buf(),
    };
    Ok(Common { info, ff, eps })
}

/// Linear rope scaling as llama.cpp reads it: `rope.scaling.factor` f gives
/// freq_scale 1/f; types other than linear are refused rather than ignored.
pub(crate) fn rope_freq_scale(g: &GgufFile, arch: &str) -> Result<f64> {
    if let Some(t) = g.get(&format!("{arch}.rope.scaling.type")) {
        let t = t.to_string().map(|s| s.as_str()).unwrap_or("?");
        if t != "linear" && t != "none" {
            return Err(g.error(format!("rope scaling type `{t}` is not supported (only linear)")));
        }
        if t == "none" {
            return Ok(1.0);
        }
    }
    let f = g.get_f64_or(&format!("{arch}.rope.scaling.factor"), 0.0)?;
    Ok(if f == 0.0 { 1.0 } else { 1.0 / f })
}
