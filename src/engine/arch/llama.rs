//! llama (SmolLM2 and other llama-architecture GGUF files).
//!
//! Derived from candle-transformers 0.11.1 `models/quantized_llama.rs`
//! (MIT/Apache-2.0, © the candle authors). Changes:
//! - the KV cache grows in chunks instead of `Tensor::cat` every step, holds
//!   f16-rounded values like llama.cpp's default cache, has a batch dimension
//!   (`fork_batch` + `forward_batch` decode N candidates together), rolls back
//!   with `truncate`, and is copied by `box_clone` while the weights stay
//!   shared behind one `Arc` (`layers::KvCache`);
//! - attention is `layers::attention`: each query visits exactly its visible
//!   keys in order (llama.cpp's flash-attention arithmetic), so prefix +
//!   suffix gives the same logits as one prefill; GQA without `repeat_kv`;
//! - RMS norm and rope follow ggml's arithmetic (f64 sum of squares; rope
//!   angles by repeated multiplication) instead of candle's ops;
//! - every weight matmul is a `qlinear::QLinear`; the token embedding stays in
//!   its file encoding and rows are dequantized on lookup (candle dequantized
//!   the whole table to f32);
//! - rotary tables are sized to the configured context (candle: a fixed 4,096),
//!   linear rope scaling is honoured, and files with features this code does
//!   not implement (`rope_freqs` llama-3 scaling, partial rotary dimension,
//!   mixture of experts) are refused with an error instead of run wrongly;
//! - the MoE branch, the ggml (pre-GGUF) loader and the tracing spans are gone;
//! - every tensor's shape is checked against the metadata at load.
//!
//! Checked against llama.cpp `src/models/llama.cpp`: pre-norm blocks, SiLU
//! gated MLP, interleaved ("NORM") rope because the GGUF converter permutes
//! Q/K, attention scale 1/√head_dim, output falls back to the tied embedding.

use super::layers::{attention, dump, keep_last, linear, to_vec, Activation, Block, Decoder, DecoderWeights, Embedding, KvCache, Mlp, RmsNorm, Rope, RopeStyle};
use super::{common, rope_freq_scale};
use crate::engine::error::Result;
use crate::engine::gguf::GgufFile;
use crate::engine::model::{CausalLm, LoadOptions};
use crate::engine::qlinear::QLinear;
use candle_core::Tensor;

/// A pre-norm attention + gated-MLP block; qwen2 uses it with Q/K/V biases.
pub struct LlamaBlock {
    pub attn_norm: RmsNorm,
    pub wq: QLinear,
    pub wk: QLinear,
    pub wv: QLinear,
    pub bq: Option<Tensor>,
    pub bk: Option<Tensor>,
    pub bv: Option<Tensor>,
    pub wo: QLinear,
    pub ffn_norm: RmsNorm,
    pub mlp: Mlp,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub rope: Rope,
    /// Index of this block (names debug dumps).
    pub layer: usize,
}

fn add_bias(x: Tensor, b: &Option<Tensor>) -> Result<Tensor> {
    Ok(match b {
        Some(b) => x.broadcast_add(b)?,
        None => x,
    })
}

impl Block for LlamaBlock {
    fn forward(&self, x: &Tensor, kv: &mut KvCache, pos: usize, last_only: bool) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let il = self.layer;
        let h = self.attn_norm.forward(x)?;
        dump::tensor("attn_norm", il, &h);
        let mut qkv = QLinear::forward_many(&[&self.wq, &self.wk, &self.wv], &h)?.into_iter();
        let mut next = || qkv.next().ok_or_else(|| crate::engine::error::EngineError::Generation("qkv: missing output".into()));
        let q = add_bias(next()?, &self.bq)?;
        let k = add_bias(next()?, &self.bk)?;
        let v = add_bias(next()?, &self.bv)?;
        let mut q = to_vec(&q)?;
        let mut k = to_vec(&k)?;
        let v = to_vec(&v)?;
        self.rope.apply(&mut q, b, s, self.n_head, pos)?;
        self.rope.apply(&mut k, b, s, self.n_kv_head, pos)?;
        dump::f32s("Qcur", il, &q);
        dump::f32s("Kcur", il, &k);
        dump::f32s("Vcur", il, &v);
        kv.append(&k, &v, b, s)?;
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let y = attention(&q, kv, b, s, self.n_head, self.n_kv_head, self.head_dim, pos, None, scale)?;
        dump::tensor("kqv_out", il, &y);
        let y = self.wo.forward(&y)?;
        dump::tensor("attn_out", il, &y);
        let (x, y) = keep_last(x.clone(), y, last_only)?;
        let x = (x + y)?;
        dump::tensor("ffn_inp", il, &x);
        let h = self.ffn_norm.forward(&x)?;
        dump::tensor("ffn_norm", il, &h);
        let y = self.mlp.forward(&h)?;
        dump::tensor("ffn_out", il, &y);
        let out = (&x + y)?;
        dump::tensor("l_out", il, &out);
        Ok(out)
    }
}

pub fn load(g: &GgufFile, opts: &LoadOptions) -> Result<Box<dyn CausalLm>> {
    let arch = "llama";
    let c = common(g, arch, opts, None)?;
    let info = c.info;
    if g.get_usize_or("llama.expert_count", 0)? > 1 {
        return Err(g.error("mixture-of-experts llama files are not supported"));
    }
    if g.has_tensor("rope_freqs.weight") {
        return Err(g.error("llama-3 style rope frequency factors (`rope_freqs.weight`) are not supported"));
    }
    let rope_dim = g.get_usize_or("llama.rope.dimension_count", info.head_dim)?;
    if rope_dim != info.head_dim {
        return Err(g.error(format!(
            "partial rotary embedding (llama.rope.dimension_count {rope_dim} < head dim {}) is not supported",
            info.head_dim
        )));
    }
    let base = g.get_f64_or("llama.rope.freq_base", 10_000.0)?;
    let rope = Rope::new(info.head_dim, base, rope_freq_scale(g, arch)?, RopeStyle::Interleaved, info.context_length)?;
    let blocks = load_blocks(g, &info, c.ff, c.eps, &rope, false)?;
    let dim = info.embedding_length;
    let embed = Embedding::from_gguf(g, "token_embd.weight", info.vocab_size, dim)?;
    let norm = RmsNorm::from_gguf(g, "output_norm.weight", dim, c.eps)?;
    let output = output_weight(g, info.vocab_size, dim)?;
    Ok(Box::new(Decoder::new(DecoderWeights { embed, embed_scale: None, blocks, norm, output, info })))
}

/// `output.weight`, or the tied token embedding when the file has none.
pub(crate) fn output_weight(g: &GgufFile, vocab: usize, dim: usize) -> Result<QLinear> {
    if g.has_tensor("output.weight") {
        linear(g, "output.weight", vocab, dim)
    } else {
        linear(g, "token_embd.weight", vocab, dim)
    }
}

/// The blocks of a llama-shaped file (`with_bias`: qwen2's Q/K/V biases).
pub(crate) fn load_blocks(
    g: &GgufFile,
    info: &crate::engine::model::ModelInfo,
    ff: usize,
    eps: f64,
    rope: &Rope,
    with_bias: bool,
) -> Result<Vec<LlamaBlock>> {
    let dim = info.embedding_length;
    let (nh, nkv, hd) = (info.n_head, info.n_kv_head, info.head_dim);
    let mut blocks = Vec::with_capacity(info.n_layer);
    for i in 0..info.n_layer {
        let p = format!("blk.{i}");
        let bias = |n: &str, len: usize| -> Result<Option<Tensor>> {
            if with_bias { Ok(Some(g.dense(&format!("{p}.{n}.bias"), len)?)) } else { Ok(None) }
        };
        blocks.push(LlamaBlock {
            attn_norm: RmsNorm::from_gguf(g, &format!("{p}.attn_norm.weight"), dim, eps)?,
            wq: linear(g, &format!("{p}.attn_q.weight"), nh * hd, dim)?,
            wk: linear(g, &format!("{p}.attn_k.weight"), nkv * hd, dim)?,
            wv: linear(g, &format!("{p}.attn_v.weight"), nkv * hd, dim)?,
            bq: bias("attn_q", nh * hd)?,
            bk: bias("attn_k", nkv * hd)?,
            bv: bias("attn_v", nkv * hd)?,
            wo: linear(g, &format!("{p}.attn_output.weight"), dim, nh * hd)?,
            ffn_norm: RmsNorm::from_gguf(g, &format!("{p}.ffn_norm.weight"), dim, eps)?,
            mlp: Mlp::from_gguf(g, &p, dim, ff, Activation::Silu)?,
            n_head: nh,
            n_kv_head: nkv,
            head_dim: hd,
            rope: rope.clone(),
            layer: i,
        });
    }
    Ok(blocks)
}
