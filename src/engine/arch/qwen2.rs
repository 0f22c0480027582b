//! qwen2 (Qwen2.5 and Qwen2.5-Coder GGUF files).
//!
//! Derived from candle-transformers 0.11.1 `models/quantized_qwen2.rs`
//! (MIT/Apache-2.0, © the candle authors). Changes:
//! - the model is cloneable: weights sit behind one `Arc` (candle's
//!   `ModelWeights` was not `Clone`, so a prefix cache could not keep states);
//! - the block is llama's (`llama::LlamaBlock`) with Q/K/V biases, so the KV
//!   cache (chunked, f16-rounded, batched, truncatable), the split-invariant
//!   attention, ggml-style norm and rope, `QLinear` matmuls and the row-wise
//!   embedding lookup are the same code as llama's — see `llama.rs`, `layers.rs`;
//! - the rotary table is sized to the configured context instead of the full
//!   `qwen2.context_length` (32,768 here);
//! - tensor shapes are checked against the metadata at load.
//!
//! Checked against llama.cpp `src/models/qwen2.cpp`: Q/K/V biases, NEOX rope,
//! SiLU gated MLP, attention scale 1/√head_dim, `output.weight` when present
//! (this Qwen file has its own, Q8_0) else the tied embedding.

use super::layers::{Decoder, DecoderWeights, Embedding, RmsNorm, Rope, RopeStyle};
use super::llama::{load_blocks, output_weight};
use super::{common, rope_freq_scale};
use crate::engine::error::Result;
use crate::engine::gguf::GgufFile;
use crate::engine::model::{CausalLm, LoadOptions};

pub fn load(g: &GgufFile, opts: &LoadOptions) -> Result<Box<dyn CausalLm>> {
    let arch = "qwen2";
    let c = common(g, arch, opts, None)?;
    let info = c.info;
    let base = g.get_f64_or("qwen2.rope.freq_base", 10_000.0)?;
    let rope = Rope::new(info.head_dim, base, rope_freq_scale(g, arch)?, RopeStyle::Neox, info.context_length)?;
    let blocks = load_blocks(g, &info, c.ff, c.eps, &rope, true)?;
    let dim = info.embedding_length;
    let embed = Embedding::from_gguf(g, "token_embd.weight", info.vocab_size, dim)?;
    let norm = RmsNorm::from_gguf(g, "output_norm.weight", dim, c.eps)?;
    let output = output_weight(g, info.vocab_size, dim)?;
    Ok(Box::new(Decoder::new(DecoderWeights { embed, embed_scale: None, blocks, norm, output, info })))
}
