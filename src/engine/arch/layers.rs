//! The pieces llama, qwen2 and gemma3 share: embedding lookup, RMS norm,
//! rotary tables, the KV cache, grouped-query attention with causal and
//! sliding-window masks, the gated MLP, and [`Decoder`], the one
//! implementation of [`CausalLm`] the three architectures plug into.
//!
//! Why one decoder and not three copies of candle's model files: the things a
//! prefix cache and batched candidates need (a KV cache that can be rolled
//! back, forked into N sequences and cloned without copying weights) are the
//! same for every architecture, and the places where candle's files were wrong
//! (gemma3's mask at a position > 0, its sliding window, its 131,072-position
//! rotary table per layer) were bugs in exactly this shared plumbing. Each
//! architecture file keeps only what is its own: metadata keys, tensor names
//! and the per-layer forward.
//!
//! KV cache layout: per layer, K and V of shape (batch, n_kv_head, capacity,
//! head_dim), grown in chunks of [`KV_CHUNK`] positions and written in place
//! with `slice_set`; attention reads a `narrow`ed view, so a decoding step
//! copies only the new position. GQA does not repeat K/V: the query heads that
//! share a KV head are folded into the query-row dimension of one matmul.

use super::super::error::{EngineError, Result};
use super::super::gguf::{AlignedBytes, GgufFile};
use super::super::model::{CausalLm, ModelInfo};
use super::super::qlinear::QLinear;
use candle_core::quantized::{ggml_file, GgmlDType};
use candle_core::{DType, Device, IndexOp, Tensor};
use memmap2::Mmap;
use std::sync::Arc;

/// KV cache growth step, in positions.
pub const KV_CHUNK: usize = 256;

fn gen_err(msg: impl Into<String>) -> EngineError {
    EngineError::Generation(msg.into())
}

// ---------------------------------------------------------------- embedding

/// Token-embedding table kept in its file encoding; rows are dequantized when
/// looked up. Reads straight from the file map, so an untouched row costs no
/// memory at all.
#[derive(Clone)]
pub struct Embedding {
    mmap: Arc<Mmap>,
    start: usize,
    row_bytes: usize,
    dtype: GgmlDType,
    vocab: usize,
    dim: usize,
}

impl Embedding {
    pub fn from_gguf(g: &GgufFile, name: &str, vocab: usize, dim: usize) -> Result<Self> {
        let loc = g.expect_shape(name, &[vocab, dim])?;
        let row_bytes = dim / loc.dtype.block_size() * loc.dtype.type_size();
        Ok(Self { mmap: g.mmap().clone(), start: loc.start, row_bytes, dtype: loc.dtype, vocab, dim })
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// `ids` (b, s) row-major → (b, s, dim) f32.
    pub fn forward(&self, ids: &[u32], b: usize, s: usize) -> Result<Tensor> {
        let mut out = Vec::with_capacity(ids.len() * self.dim);
        for &id in ids {
            let id = id as usize;
            if id >= self.vocab {
                return Err(gen_err(format!("token id {id} is out of range (vocabulary size {})", self.vocab)));
            }
            let at = self.start + id * self.row_bytes;
            let row = AlignedBytes::copy_from(&self.mmap[at..at + self.row_bytes]);
            let q = ggml_file::qtensor_from_ggml(self.dtype, row.as_bytes(), vec![self.dim], &Device::Cpu)?;
            out.extend(q.dequantize(&Device::Cpu)?.to_vec1::<f32>()?);
        }
        Ok(Tensor::from_vec(out, (b, s, self.dim), &Device::Cpu)?)
    }
}

// ---------------------------------------------------------------- norm

#[derive(Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn from_gguf(g: &GgufFile, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: g.dense(name, dim)?, eps: eps as f32 })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)?)
    }
}

// ---------------------------------------------------------------- rope

/// How rotary pairs are formed: llama's GGUF weights are permuted for the
/// interleaved form (pairs 2i, 2i+1); qwen2 and gemma3 use NEOX (i, i + d/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    Interleaved,
    Neox,
}

/// cos/sin tables (max_positions, head_dim/2), built once per distinct
/// (base, scale) and shared by every layer that uses them (Tensor clones share
/// storage). Sized to the configured context, not the model's training maximum.
#[derive(Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
    max_positions: usize,
}

impl Rope {
    /// `freq_scale` is llama.cpp's (1 / linear scaling factor): position p is
    /// rotated as if it were p × freq_scale.
    pub fn new(head_dim: usize, base: f64, freq_scale: f64, style: RopeStyle, max_positions: usize) -> Result<Self> {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half).map(|i| (1.0 / base.powf(2.0 * i as f64 / head_dim as f64)) as f32).collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            let p = (p as f64 * freq_scale) as f32;
            for &f in &inv {
                let a = p * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_positions, half), &Device::Cpu)?,
            sin: Tensor::from_vec(sin, (max_positions, half), &Device::Cpu)?,
            style,
            max_positions,
        })
    }

    /// x: (b, h, s, d) contiguous, positions pos..pos+s.
    pub fn apply(&self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let s = x.dim(2)?;
        if pos + s > self.max_positions {
            return Err(gen_err(format!(
                "position {} is past the configured context of {} tokens",
                pos + s,
                self.max_positions
            )));
        }
        let cos = self.cos.narrow(0, pos, s)?;
        let sin = self.sin.narrow(0, pos, s)?;
        let x = x.contiguous()?;
        Ok(match self.style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?,
            RopeStyle::Neox => candle_nn::rotary_emb::rope(&x, &cos, &sin)?,
        })
    }
}

// ---------------------------------------------------------------- kv cache

/// One layer's cached keys and values.
#[derive(Default)]
pub struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    cap: usize,
    batch: usize,
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn batch(&self) -> usize {
        if self.k.is_some() { self.batch } else { 1 }
    }

    pub fn bytes(&self) -> usize {
        match &self.k {
            Some(k) => 2 * k.elem_count() * 4,
            None => 0,
        }
    }

    /// Appends k, v (b, h, s, d) and returns views of everything cached.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, s, d) = k.dims4()?;
        let need = self.len + s;
        if self.k.is_none() || need > self.cap || self.batch != b {
            if self.k.is_some() && self.batch != b {
                return Err(gen_err(format!("KV cache holds {} sequences, got a batch of {b}", self.batch)));
            }
            let cap = need.div_ceil(KV_CHUNK) * KV_CHUNK;
            let nk = Tensor::zeros((b, h, cap, d), DType::F32, &Device::Cpu)?;
            let nv = Tensor::zeros((b, h, cap, d), DType::F32, &Device::Cpu)?;
            if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
                if self.len > 0 {
                    nk.slice_set(&ok.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    nv.slice_set(&ov.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
            }
            self.k = Some(nk);
            self.v = Some(nv);
            self.cap = cap;
            self.batch = b;
        }
        let (ck, cv) = match (&self.k, &self.v) {
            (Some(k), Some(v)) => (k, v),
            _ => return Err(gen_err("KV cache not allocated")),
        };
        ck.slice_set(&k.contiguous()?, 2, self.len)?;
        cv.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = need;
        Ok((ck.narrow(2, 0, need)?, cv.narrow(2, 0, need)?))
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// A deep copy holding exactly the cached positions (storage is not shared:
    /// `append` writes in place).
    pub fn deep_clone(&self) -> Result<Self> {
        match (&self.k, &self.v) {
            (Some(k), Some(v)) if self.len > 0 => Ok(Self {
                k: Some(k.narrow(2, 0, self.len)?.copy()?.contiguous()?),
                v: Some(v.narrow(2, 0, self.len)?.copy()?.contiguous()?),
                len: self.len,
                cap: self.len,
                batch: self.batch,
            }),
            _ => Ok(Self::default()),
        }
    }

    /// Replicates a batch-1 cache into `n` sequences.
    pub fn fork(&mut self, n: usize) -> Result<()> {
        if let (Some(k), Some(v)) = (&self.k, &self.v) {
            if self.batch != 1 {
                return Err(gen_err(format!("fork_batch needs a single-sequence cache, it holds {}", self.batch)));
            }
            let cap = (self.len + 1).div_ceil(KV_CHUNK) * KV_CHUNK;
            let mut fk = Vec::with_capacity(n);
            let mut fv = Vec::with_capacity(n);
            let k0 = k.narrow(2, 0, self.len)?.contiguous()?;
            let v0 = v.narrow(2, 0, self.len)?.contiguous()?;
            let (_, h, _, d) = k0.dims4()?;
            let nk = Tensor::zeros((1, h, cap, d), DType::F32, &Device::Cpu)?;
            let nv = Tensor::zeros((1, h, cap, d), DType::F32, &Device::Cpu)?;
            nk.slice_set(&k0, 2, 0)?;
            nv.slice_set(&v0, 2, 0)?;
            for _ in 0..n {
                fk.push(&nk);
                fv.push(&nv);
            }
            self.k = Some(Tensor::cat(&fk, 0)?);
            self.v = Some(Tensor::cat(&fv, 0)?);
            self.cap = cap;
            self.batch = n;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- attention

/// Additive mask (s, kv_len) for queries at pos..pos+s over keys
/// kv_start..pos+s: -inf where the key is in the future or, with a window,
/// `window` or more positions back (llama.cpp's `p1 - p0 >= n_swa`).
pub fn build_mask(s: usize, pos: usize, kv_start: usize, window: Option<usize>) -> Result<Tensor> {
    let kv_len = pos + s - kv_start;
    let mut m = vec![0f32; s * kv_len];
    for i in 0..s {
        let qp = pos + i;
        for j in 0..kv_len {
            let kp = kv_start + j;
            let masked = kp > qp || window.is_some_and(|w| qp - kp >= w);
            if masked {
                m[i * kv_len + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(m, (s, kv_len), &Device::Cpu)?)
}

/// The first cached position a layer with `window` needs for queries from `pos`.
pub fn window_start(pos: usize, window: Option<usize>) -> usize {
    match window {
        Some(w) if pos + 1 > w => pos + 1 - w,
        _ => 0,
    }
}

/// Grouped-query attention. q (b, n_head, s, d); k, v (b, n_kv, L, d) where
/// the last key is at absolute position pos + s - 1. Returns (b, s, n_head·d).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    pos: usize,
    window: Option<usize>,
    scale: f64,
) -> Result<Tensor> {
    let (b, n_head, s, d) = q.dims4()?;
    let n_kv = k.dim(1)?;
    let total = k.dim(2)?;
    let r = n_head / n_kv;
    let kv_start = window_start(pos, window);
    let (k, v) = if kv_start > 0 {
        (k.narrow(2, kv_start, total - kv_start)?, v.narrow(2, kv_start, total - kv_start)?)
    } else {
        (k.clone(), v.clone())
    };
    let kv_len = total - kv_start;
    // Query heads sharing a KV head are adjacent: fold them into rows.
    let q = q.contiguous()?.reshape((b, n_kv, r * s, d))?;
    let mut att = q.matmul(&k.t()?)?;
    if scale != 1.0 {
        att = (att * scale)?;
    }
    if s > 1 {
        let mask = build_mask(s, pos, kv_start, window)?;
        att = att.reshape((b, n_kv, r, s, kv_len))?.broadcast_add(&mask)?.reshape((b, n_kv, r * s, kv_len))?;
    }
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    let y = att.matmul(&v)?; // (b, n_kv, r*s, d)
    let y = y.reshape((b, n_head, s, d))?.transpose(1, 2)?.reshape((b, s, n_head * d))?;
    Ok(y)
}

// ---------------------------------------------------------------- mlp

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`, llama.cpp's LLM_FFN_GELU).
    GeluTanh,
}

/// down(act(gate(x)) * up(x)).
#[derive(Clone)]
pub struct Mlp {
    pub gate: QLinear,
    pub up: QLinear,
    pub down: QLinear,
    pub act: Activation,
}

impl Mlp {
    pub fn from_gguf(g: &GgufFile, prefix: &str, dim: usize, ff: usize, act: Activation) -> Result<Self> {
        Ok(Self {
            gate: linear(g, &format!("{prefix}.ffn_gate.weight"), ff, dim)?,
            up: linear(g, &format!("{prefix}.ffn_up.weight"), ff, dim)?,
            down: linear(g, &format!("{prefix}.ffn_down.weight"), dim, ff)?,
            act,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?;
        let u = self.up.forward(x)?;
        let g = match self.act {
            Activation::Silu => candle_nn::ops::silu(&g)?,
            Activation::GeluTanh => g.gelu()?,
        };
        Ok(self.down.forward(&(g * u)?)?)
    }
}

/// A weight matrix (out, in) as a [`QLinear`], shape-checked.
pub fn linear(g: &GgufFile, name: &str, out: usize, inp: usize) -> Result<QLinear> {
    g.expect_shape(name, &[out, inp])?;
    let q = g.tensor(name)?;
    QLinear::from_qtensor(q).map_err(|e| g.error(format!("tensor `{name}`: {e}")))
}

// ---------------------------------------------------------------- decoder

/// One transformer block of an architecture.
pub trait Block: Send + Sync + 'static {
    /// x (b, s, dim) at absolute positions pos..pos+s → (b, s, dim).
    fn forward(&self, x: &Tensor, kv: &mut KvCache, pos: usize) -> Result<Tensor>;
}

/// Weights shared by every copy of a model (behind one `Arc`).
pub struct DecoderWeights<B: Block> {
    pub embed: Embedding,
    /// Multiplies embeddings (gemma: √dim).
    pub embed_scale: Option<f64>,
    pub blocks: Vec<B>,
    pub norm: RmsNorm,
    pub output: QLinear,
    pub info: ModelInfo,
}

/// A model instance: shared weights + its own KV cache.
pub struct Decoder<B: Block> {
    w: Arc<DecoderWeights<B>>,
    kv: Vec<KvCache>,
}

impl<B: Block> Decoder<B> {
    pub fn new(w: DecoderWeights<B>) -> Self {
        let kv = (0..w.blocks.len()).map(|_| KvCache::default()).collect();
        Self { w: Arc::new(w), kv }
    }

    fn batch(&self) -> usize {
        self.kv.first().map(|c| c.batch()).unwrap_or(1)
    }

    /// tokens (b·s, row-major) → logits of the last position (b, vocab).
    fn run(&mut self, tokens: &[u32], b: usize, s: usize, pos: usize) -> Result<Tensor> {
        if s == 0 || tokens.is_empty() {
            return Err(gen_err("no tokens to feed"));
        }
        let cached = self.seq_len();
        if pos != cached {
            return Err(gen_err(format!(
                "position {pos} does not follow the cache, which holds {cached} positions (truncate first)"
            )));
        }
        let max = self.w.info.context_length;
        if pos + s > max {
            return Err(gen_err(format!(
                "{} tokens do not fit the context of {max} tokens (cache holds {pos})",
                s
            )));
        }
        let mut x = self.w.embed.forward(tokens, b, s)?;
        if let Some(scale) = self.w.embed_scale {
            x = (x * scale)?;
        }
        for (block, kv) in self.w.blocks.iter().zip(self.kv.iter_mut()) {
            x = block.forward(&x, kv, pos)?;
        }
        let x = x.i((.., s - 1, ..))?.contiguous()?;
        let x = self.w.norm.forward(&x)?;
        Ok(self.w.output.forward(&x)?)
    }

    fn rollback_on_error<T>(&mut self, pos: usize, r: Result<T>) -> Result<T> {
        if r.is_err() {
            for c in self.kv.iter_mut() {
                c.truncate(pos);
            }
        }
        r
    }
}

impl<B: Block> CausalLm for Decoder<B> {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        if self.batch() != 1 {
            return Err(gen_err(format!(
                "forward feeds one sequence but the cache holds {} (reset, or use forward_batch)",
                self.batch()
            )));
        }
        let r = self.run(tokens, 1, tokens.len(), pos);
        let r = self.rollback_on_error(pos, r)?;
        Ok(r.squeeze(0)?)
    }

    fn forward_batch(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        let b = self.batch();
        if tokens.len() != b {
            return Err(gen_err(format!("forward_batch got {} tokens for {b} cached sequences", tokens.len())));
        }
        let r = self.run(tokens, b, 1, pos);
        self.rollback_on_error(pos, r)
    }

    fn fork_batch(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(gen_err("fork_batch(0): at least one sequence is needed"));
        }
        if self.seq_len() == 0 {
            return Err(gen_err("fork_batch needs a prefilled cache"));
        }
        for c in self.kv.iter_mut() {
            c.fork(n)?;
        }
        Ok(())
    }

    fn seq_len(&self) -> usize {
        self.kv.first().map(|c| c.len()).unwrap_or(0)
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.seq_len() {
            return Err(gen_err(format!("cannot truncate to {len}: the cache holds {}", self.seq_len())));
        }
        for c in self.kv.iter_mut() {
            c.truncate(len);
        }
        Ok(())
    }

    fn reset(&mut self) {
        for c in self.kv.iter_mut() {
            c.reset();
        }
    }

    fn box_clone(&self) -> Box<dyn CausalLm> {
        // A failed copy (allocation) leaves the clone empty rather than sharing
        // storage that `append` would overwrite; its seq_len() then reads 0.
        let kv = self.kv.iter().map(|c| c.deep_clone().unwrap_or_default()).collect();
        Box::new(Self { w: self.w.clone(), kv })
    }

    fn kv_cache_bytes(&self) -> usize {
        self.kv.iter().map(|c| c.bytes()).sum()
    }

    fn info(&self) -> &ModelInfo {
        &self.w.info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_mask_matches_llama_cpp_rule() {
        // window 3, queries at 4..6 over keys 2..6 (kv_start = window_start(4) = 2)
        let start = window_start(4, Some(3));
        assert_eq!(start, 2);
        let m = build_mask(2, 4, start, Some(3)).unwrap().to_vec2::<f32>().unwrap();
        let inf = f32::NEG_INFINITY;
        // q4 sees k2,k3,k4 ; q5 sees k3,k4,k5
        assert_eq!(m, vec![vec![0., 0., 0., inf], vec![inf, 0., 0., 0.]]);
    }

    #[test]
    fn causal_mask_with_prefix() {
        let m = build_mask(2, 3, 0, None).unwrap().to_vec2::<f32>().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![vec![0., 0., 0., 0., inf], vec![0., 0., 0., 0., 0.]]);
    }

    #[test]
    fn kv_cache_grows_truncates_forks_and_clones_deeply() {
        let mut c = KvCache::default();
        let k = Tensor::arange(0f32, 2.0 * 300.0 * 4.0, &Device::Cpu).unwrap().reshape((1, 2, 300, 4)).unwrap();
        let (kk, _) = c.append(&k, &k).unwrap();
        assert_eq!(kk.dims(), &[1, 2, 300, 4]);
        assert_eq!(c.len(), 300);
        assert_eq!(c.cap, 512);
        let got: Vec<f32> = kk.flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f32> = k.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want);
        c.truncate(10);
        let snapshot = c.deep_clone().unwrap();
        let one = Tensor::ones((1, 2, 1, 4), DType::F32, &Device::Cpu).unwrap();
        let (kk, _) = c.append(&one, &one).unwrap();
        assert_eq!(kk.dim(2).unwrap(), 11);
        // the clone did not see the write at position 10
        assert_eq!(snapshot.len(), 10);
        let s: Vec<f32> = snapshot.k.as_ref().unwrap().i((0, 0, 9)).unwrap().to_vec1().unwrap();
        assert_eq!(s, vec![36., 37., 38., 39.]);
        c.fork(3).unwrap();
        assert_eq!(c.batch(), 3);
        let three = Tensor::zeros((3, 2, 1, 4), DType::F32, &Device::Cpu).unwrap();
        let (kk, _) = c.append(&three, &three).unwrap();
        assert_eq!(kk.dims(), &[3, 2, 12, 4]);
        let row: Vec<f32> = kk.i((2, 1, 10)).unwrap().to_vec1().unwrap();
        assert_eq!(row, vec![1., 1., 1., 1.]);
    }
}
