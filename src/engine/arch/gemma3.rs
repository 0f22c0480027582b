//! gemma3 (Gemma-3 text models, e.g. Gemma-3-270M).
//!
//! Derived from candle-transformers 0.11.1 `models/quantized_gemma3.rs`
//! (MIT/Apache-2.0, © the candle authors). Fixes and changes:
//! - **multi-token forward at a position > 0**: candle built an (s, s) mask
//!   and padded the prefix columns with zeros — which in its convention mean
//!   "hidden" — as f32 next to a u32 mask, so a prefix-cached prompt failed;
//!   here each query attends to exactly the keys its absolute position allows
//!   (`layers::attention`);
//! - **sliding window**: sliding layers attend to the last
//!   `gemma3.attention.sliding_window` positions, with llama.cpp's rule (key
//!   p0 is hidden from query p1 when p1 − p0 ≥ window; candle let one more
//!   through), also when decoding one token (candle applied no window at all
//!   then); the pattern comes from `attention.sliding_window_pattern` when the
//!   file has it (period or per-layer flags), else every 6th layer is global;
//! - **MLP activation** is GELU (tanh approximation), not SiLU — computed as
//!   ggml does on CPU (through f16, `layers::gelu_like_ggml`);
//! - **rotary tables**: one table per (base, scale) shared by all layers and
//!   sized to the configured context — candle built a 131,072-position table in
//!   every layer (18 × 2 × 131,072 × 128 floats ≈ 2.4 GB for the 270M model);
//!   global layers honour linear rope scaling, local layers use base 10,000
//!   (or `rope.local_freq_base`) and no scaling, as llama.cpp does;
//! - **query scaling** is llama.cpp's `f_attention_scale`: 1/√key_length
//!   (1/√(embedding_length / head_count) for the 62-layer 27B model);
//! - KV cache, attention, `QLinear` matmuls, the row-wise embedding
//!   lookup and the shared weights behind `Arc` are the common code in
//!   `layers.rs`; tensor shapes are checked against the metadata at load.
//!
//! Checked against llama.cpp `src/models/gemma3.cpp`: embeddings × √dim,
//! Q/K RMS norms before rope, post-attention and post-FFN norms, NEOX rope,
//! final norm then the tied output, no logit soft-capping in the iSWA path.

use super::layers::{attention, dump, keep_last, linear, to_vec, Activation, Block, Decoder, DecoderWeights, Embedding, KvCache, Mlp, RmsNorm, Rope, RopeStyle};
use super::llama::output_weight;
use super::{common, rope_freq_scale};
use crate::engine::error::Result;
use crate::engine::gguf::GgufFile;
use crate::engine::model::{CausalLm, LoadOptions};
use crate::engine::qlinear::QLinear;
use candle_core::quantized::gguf_file::Value;
use candle_core::Tensor;

/// Every n-th layer is global when the file does not say (llama.cpp, HF).
pub const DEFAULT_SLIDING_WINDOW_PATTERN: usize = 6;

pub struct Gemma3Block {
    attn_norm: RmsNorm,
    wq: QLinear,
    wk: QLinear,
    wv: QLinear,
    wo: QLinear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    post_attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    post_ffn_norm: RmsNorm,
    mlp: Mlp,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    /// `Some(w)` on sliding (local) layers.
    window: Option<usize>,
    attn_scale: f32,
    rope: Rope,
    /// Layer index (names of the parity dumps).
    layer: usize,
}

impl Block for Gemma3Block {
    fn forward(&self, x: &Tensor, kv: &mut KvCache, pos: usize, last_only: bool) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let il = self.layer;
        let h = self.attn_norm.forward(x)?;
        dump::tensor("attn_norm", il, &h);
        let q = self.wq.forward(&h)?.reshape((b, s, self.n_head, self.head_dim))?;
        let k = self.wk.forward(&h)?.reshape((b, s, self.n_kv_head, self.head_dim))?;
        let v = self.wv.forward(&h)?.reshape((b, s, self.n_kv_head, self.head_dim))?;
        let mut q = to_vec(&self.q_norm.forward(&q)?)?;
        let mut k = to_vec(&self.k_norm.forward(&k)?)?;
        self.rope.apply(&mut q, b, s, self.n_head, pos)?;
        self.rope.apply(&mut k, b, s, self.n_kv_head, pos)?;
        kv.append(&k, &to_vec(&v)?, b, s)?;
        // llama.cpp scales Q before attention (`ggml_scale(Qcur, f_attention_scale)`,
        // then a kq scale of 1): the same product only when f16(q·s) = f16(q)·s,
        // which fails where q·s is an f16 subnormal — so scale first, as it does.
        for x in q.iter_mut() {
            *x *= self.attn_scale;
        }
        let y = attention(&q, kv, b, s, self.n_head, self.n_kv_head, self.head_dim, pos, self.window, 1.0)?;
        dump::tensor("kqv_out", il, &y);
        let (x, y) = keep_last(x.clone(), self.wo.forward(&y)?, last_only)?;
        let y = self.post_attn_norm.forward(&y)?;
        dump::tensor("attn_post_norm", il, &y);
        let x = (x + y)?;
        dump::tensor("sa_out", il, &x);
        let h = self.ffn_norm.forward(&x)?;
        dump::tensor("ffn_norm", il, &h);
        let h = self.mlp.forward(&h)?;
        dump::tensor("ffn_out", il, &h);
        let h = self.post_ffn_norm.forward(&h)?;
        let out = (&x + h)?;
        dump::tensor("l_out", il, &out);
        Ok(out)
    }
}

/// Which layers are sliding: from `gemma3.attention.sliding_window_pattern`
/// (a period n — layer i slides unless i % n == n − 1 — or one flag per
/// layer), else the default period.
pub fn sliding_layers(g: &GgufFile, n_layer: usize) -> Result<Vec<bool>> {
    let key = "gemma3.attention.sliding_window_pattern";
    let period = |n: usize| -> Vec<bool> { (0..n_layer).map(|i| n == 0 || i % n < n - 1).collect() };
    match g.get(key) {
        None => Ok(period(DEFAULT_SLIDING_WINDOW_PATTERN)),
        Some(Value::Array(flags)) => {
            if flags.len() != n_layer {
                return Err(g.error(format!("`{key}` has {} flags for {n_layer} layers", flags.len())));
            }
            flags
                .iter()
                .map(|f| f.to_bool().map_err(|_| g.error(format!("`{key}` must hold booleans, got {f:?}"))))
                .collect()
        }
        Some(_) => Ok(period(g.get_usize(key)?)),
    }
}

pub fn load(g: &GgufFile, opts: &LoadOptions) -> Result<Box<dyn CausalLm>> {
    let arch = "gemma3";
    let key_len = g.get_usize("gemma3.attention.key_length")?;
    let val_len = g.get_usize_or("gemma3.attention.value_length", key_len)?;
    if key_len != val_len {
        return Err(g.error(format!("key_length {key_len} != value_length {val_len} is not supported")));
    }
    let c = common(g, arch, opts, Some(key_len))?;
    let info = c.info;
    let window = g.get_usize("gemma3.attention.sliding_window")?;
    if window == 0 {
        return Err(g.error("`gemma3.attention.sliding_window` must be positive"));
    }
    let sliding = sliding_layers(g, info.n_layer)?;
    let (nh, nkv, hd, dim) = (info.n_head, info.n_kv_head, info.head_dim, info.embedding_length);
    let attn_scale = if info.n_layer == 62 {
        1.0 / ((dim / nh) as f32).sqrt()
    } else {
        1.0 / (hd as f32).sqrt()
    };
    let global_base = g.get_f64_or("gemma3.rope.freq_base", 1_000_000.0)?;
    let local_base = g.get_f64_or("gemma3.rope.local_freq_base", 10_000.0)?;
    let rope_global = Rope::new(hd, global_base, rope_freq_scale(g, arch)?, RopeStyle::Neox, info.context_length)?;
    let rope_local = Rope::new(hd, local_base, 1.0, RopeStyle::Neox, info.context_length)?;
    let eps = c.eps;
    let mut blocks = Vec::with_capacity(info.n_layer);
    for (i, &is_sliding) in sliding.iter().enumerate() {
        let p = format!("blk.{i}");
        let norm = |n: &str, len: usize| RmsNorm::from_gguf(g, &format!("{p}.{n}.weight"), len, eps);
        blocks.push(Gemma3Block {
            attn_norm: norm("attn_norm", dim)?,
            wq: linear(g, &format!("{p}.attn_q.weight"), nh * hd, dim)?,
            wk: linear(g, &format!("{p}.attn_k.weight"), nkv * hd, dim)?,
            wv: linear(g, &format!("{p}.attn_v.weight"), nkv * hd, dim)?,
            wo: linear(g, &format!("{p}.attn_output.weight"), dim, nh * hd)?,
            q_norm: norm("attn_q_norm", hd)?,
            k_norm: norm("attn_k_norm", hd)?,
            post_attn_norm: norm("post_attention_norm", dim)?,
            ffn_norm: norm("ffn_norm", dim)?,
            post_ffn_norm: norm("post_ffw_norm", dim)?,
            mlp: Mlp::from_gguf(g, &p, dim, c.ff, Activation::GeluTanh)?,
            n_head: nh,
            n_kv_head: nkv,
            head_dim: hd,
            window: is_sliding.then_some(window),
            attn_scale,
            rope: if is_sliding { rope_local.clone() } else { rope_global.clone() },
            layer: i,
        });
    }
    let embed = Embedding::from_gguf(g, "token_embd.weight", info.vocab_size, dim)?;
    let norm = RmsNorm::from_gguf(g, "output_norm.weight", dim, eps)?;
    let output = output_weight(g, info.vocab_size, dim)?;
    // `sqrtf(n_embd)` in llama.cpp: the f32 square root, not a rounded f64 one.
    let embed_scale = Some((dim as f32).sqrt() as f64);
    Ok(Box::new(Decoder::new(DecoderWeights { embed, embed_scale, blocks, norm, output, info })))
}
