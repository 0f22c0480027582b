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
//! KV cache layout: per layer, plain f16 vectors [position][sequence][kv_head·head_dim]
//! (llama.cpp's default cache type; half the bytes attention reads per step)
//! with capacity reserved in [`KV_CHUNK`]-position steps, so a decoding step
//! appends one position and rolling back is a truncate. A cache forked into a
//! batch keeps the prompt once, shared by every sequence (`KvShared`): n
//! candidates read one copy of a 600-token prompt, not n.
//! Attention is our own loop over each query's visible keys (see
//! [`attention`] for why), GQA without copying K/V per query head.

use super::super::error::{EngineError, Result};
use super::super::gguf::{AlignedBytes, GgufFile};
use super::super::model::{CausalLm, ModelInfo};
use super::super::kernels;
use super::super::qlinear::QLinear;
use candle_core::quantized::{ggml_file, GgmlDType};
use candle_core::{Device, IndexOp, Tensor};
use memmap2::Mmap;
use half::f16;
use half::slice::HalfFloatSliceExt;
use std::sync::Arc;

/// KV cache growth step, in positions.
pub const KV_CHUNK: usize = 256;

fn gen_err(msg: impl Into<String>) -> EngineError {
    EngineError::Generation(msg.into())
}

// ---------------------------------------------------------------- debug dumps

/// Parity debugging: with `BRANDVOICE_DUMP_DIR` set, the forward call number
/// `BRANDVOICE_DUMP_CALL` (1-based, default 1) writes named intermediate
/// tensors as raw f32 files `{call}_{name}-{layer}.bin`, named as llama.cpp's
/// graph names them, to compare with `eval/bench/llama_dump.cpp`. Off (one
/// atomic load per call) otherwise.
pub mod dump {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    static CALL: AtomicUsize = AtomicUsize::new(0);

    fn target() -> &'static Option<(std::path::PathBuf, usize)> {
        static T: OnceLock<Option<(std::path::PathBuf, usize)>> = OnceLock::new();
        T.get_or_init(|| {
            let dir = std::env::var_os("BRANDVOICE_DUMP_DIR")?;
            let call = std::env::var("BRANDVOICE_DUMP_CALL").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
            Some((dir.into(), call))
        })
    }

    /// Marks the start of a forward call.
    pub fn next_call() {
        if target().is_some() {
            CALL.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn f32s(name: &str, il: usize, data: &[f32]) {
        let Some((dir, call)) = target() else { return };
        let now = CALL.load(Ordering::Relaxed);
        if now != *call {
            return;
        }
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let _ = std::fs::write(dir.join(format!("{now}_{name}-{il}.bin")), bytes);
    }

    pub fn tensor(name: &str, il: usize, t: &candle_core::Tensor) {
        if target().is_none() {
            return;
        }
        if let Ok(v) = t.flatten_all().and_then(|t| t.to_vec1::<f32>()) {
            f32s(name, il, &v);
        }
    }
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
    w: Arc<Vec<f32>>,
    eps: f32,
}

impl RmsNorm {
    pub fn from_gguf(g: &GgufFile, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self { w: Arc::new(to_vec(&g.dense(name, dim)?)?), eps: eps as f32 })
    }

    /// Normalises over the last dimension the way ggml does (sum of squares in
    /// f64, scale by 1/√(mean + eps), then multiply by the weight).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let n = *dims.last().unwrap_or(&0);
        if n != self.w.len() {
            return Err(gen_err(format!("rms norm over {n} values with a weight of {}", self.w.len())));
        }
        let mut v = to_vec(x)?;
        for row in v.chunks_exact_mut(n) {
            let sum: f64 = row.iter().map(|&a| (a * a) as f64).sum();
            let mean = (sum / n as f64) as f32;
            let scale = 1.0 / (mean + self.eps).sqrt();
            for (a, w) in row.iter_mut().zip(self.w.iter()) {
                *a = (*a * scale) * w;
            }
        }
        Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
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

/// cos/sin tables [position][head_dim/2], built once per distinct
/// (base, scale) and shared by every layer that uses them (`Arc`). Sized to
/// the configured context, not the model's training maximum.
#[derive(Clone)]
pub struct Rope {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    half: usize,
    style: RopeStyle,
    max_positions: usize,
}

impl Rope {
    /// `freq_scale` is llama.cpp's (1 / linear scaling factor): position p is
    /// rotated as if it were p × freq_scale.
    pub fn new(head_dim: usize, base: f64, freq_scale: f64, style: RopeStyle, max_positions: usize) -> Result<Self> {
        let half = head_dim / 2;
        // As ggml's rope cache: θ starts at p and is multiplied by
        // base^(−2/d) per pair, in f32, then scaled by freq_scale.
        let theta_scale = (base as f32).powf(-2.0 / head_dim as f32);
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            let mut theta = p as f32;
            for _ in 0..half {
                let a = freq_scale as f32 * theta;
                cos.push(a.cos());
                sin.push(a.sin());
                theta *= theta_scale;
            }
        }
        Ok(Self { cos: Arc::new(cos), sin: Arc::new(sin), half, style, max_positions })
    }

    /// Rotates `x` in place: layout [b][s][heads][head_dim], positions pos..pos+s.
    pub fn apply(&self, x: &mut [f32], b: usize, s: usize, heads: usize, pos: usize) -> Result<()> {
        if pos + s > self.max_positions {
            return Err(gen_err(format!(
                "position {} is past the configured context of {} tokens",
                pos + s,
                self.max_positions
            )));
        }
        let (half, d) = (self.half, 2 * self.half);
        if x.len() != b * s * heads * d {
            return Err(gen_err(format!("rope: {} values for {b}×{s}×{heads}×{d}", x.len())));
        }
        let (cos, sin) = (&self.cos[pos * half..(pos + s) * half], &self.sin[pos * half..(pos + s) * half]);
        rotate_fast(self.style, x, s, heads, half, cos, sin);
        Ok(())
    }
}

// With FMA, `mul_add` is one instruction instead of a call into the software
// `fmaf` (same result: a fused multiply-add is exactly rounded either way);
// without it, rope took 0.3 ms of a batch-of-4 decode step on smollm2.
kernels::dispatch_f32! {
    fn rotate_fast / rotate_avx2 (style: RopeStyle, x: &mut [f32], s: usize, heads: usize, half: usize, cos: &[f32], sin: &[f32]) => rotate;
}

/// Rope on rows of `2·half` values, [b][s][heads] order; `cos`/`sin` hold
/// the `s` positions' angles, `half` each.
#[inline(always)]
fn rotate(style: RopeStyle, x: &mut [f32], s: usize, heads: usize, half: usize, cos: &[f32], sin: &[f32]) {
    for (r, row) in x.chunks_exact_mut(2 * half).enumerate() {
        let t = (r / heads) % s;
        let c = &cos[t * half..(t + 1) * half];
        let sn = &sin[t * half..(t + 1) * half];
        match style {
            RopeStyle::Interleaved => {
                for i in 0..half {
                    let (x0, x1) = (row[2 * i], row[2 * i + 1]);
                    row[2 * i] = x0.mul_add(c[i], -(x1 * sn[i]));
                    row[2 * i + 1] = x0.mul_add(sn[i], x1 * c[i]);
                }
            }
            RopeStyle::Neox => {
                for i in 0..half {
                    let (x0, x1) = (row[i], row[i + half]);
                    row[i] = x0.mul_add(c[i], -(x1 * sn[i]));
                    row[i + half] = x0.mul_add(sn[i], x1 * c[i]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- kv cache

/// The positions a batch has in common (the prompt before `fork`), stored
/// once: layout [position][kv_head·head_dim].
#[derive(Default)]
struct KvShared {
    k: Vec<f16>,
    v: Vec<f16>,
    len: usize,
}

/// One layer's cached keys and values in f16: positions `0..shared.len` in
/// `shared` (one copy for every sequence), the rest in `k`/`v`, layout
/// [position][sequence][kv_head·head_dim], so growing the cache appends at
/// the end (capacity reserved in [`KV_CHUNK`]-position steps) and rolling
/// back is `Vec::truncate`. Clones share `shared` and copy the rest.
#[derive(Default, Clone)]
pub struct KvCache {
    shared: Option<Arc<KvShared>>,
    k: Vec<f16>,
    v: Vec<f16>,
    len: usize,
    batch: usize,
    row: usize,
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn batch(&self) -> usize {
        self.batch.max(1)
    }

    /// Positions stored once for the whole batch.
    pub fn shared_len(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.len)
    }

    pub fn bytes(&self) -> usize {
        let shared = self.shared.as_ref().map_or(0, |s| s.k.capacity() + s.v.capacity());
        (shared + self.k.capacity() + self.v.capacity()) * std::mem::size_of::<f16>()
    }

    /// Appends k, v laid out [b][s][row] (row = kv_heads·head_dim), rounded
    /// to f16 (nearest even).
    pub fn append(&mut self, k: &[f32], v: &[f32], b: usize, s: usize) -> Result<()> {
        if b == 0 || s == 0 || k.len() != v.len() || k.len() % (b * s) != 0 {
            return Err(gen_err(format!("KV append: {} values for batch {b} × {s} positions", k.len())));
        }
        let row = k.len() / (b * s);
        if self.len == 0 {
            self.batch = b;
            self.row = row;
        } else if self.batch() != b || self.row != row {
            return Err(gen_err(format!("KV cache holds {} sequences, got a batch of {b}", self.batch())));
        }
        let own = self.len - self.shared_len();
        let need = (own + s) * b * row;
        if self.k.capacity() < need {
            let cap = (own + s).div_ceil(KV_CHUNK) * KV_CHUNK * b * row;
            self.k.reserve_exact(cap - self.k.len());
            self.v.reserve_exact(cap - self.v.len());
        }
        let at = self.k.len();
        self.k.resize(at + k.len(), f16::ZERO);
        self.v.resize(at + v.len(), f16::ZERO);
        for t in 0..s {
            for bi in 0..b {
                let (src, dst) = ((bi * s + t) * row, at + (t * b + bi) * row);
                self.k[dst..dst + row].convert_from_f32_slice(&k[src..src + row]);
                self.v[dst..dst + row].convert_from_f32_slice(&v[src..src + row]);
            }
        }
        self.len += s;
        Ok(())
    }

    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        if len < self.shared_len() {
            self.unshare();
        }
        let own = len - self.shared_len();
        self.len = len;
        self.k.truncate(own * self.batch() * self.row);
        self.v.truncate(own * self.batch() * self.row);
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Back to one flat layout: the shared positions copied into every sequence.
    fn unshare(&mut self) {
        let Some(sh) = self.shared.take() else { return };
        let (b, row) = (self.batch(), self.row);
        let flat = |shared: &[f16], own: &[f16]| {
            let mut out = Vec::with_capacity((self.len.div_ceil(KV_CHUNK) * KV_CHUNK).max(1) * b * row);
            for p in shared.chunks_exact(row) {
                for _ in 0..b {
                    out.extend_from_slice(p);
                }
            }
            out.extend_from_slice(own);
            out
        };
        self.k = flat(&sh.k, &self.k);
        self.v = flat(&sh.v, &self.v);
    }

    /// Turns a batch-1 cache into `n` sequences that share what it holds.
    pub fn fork(&mut self, n: usize) -> Result<()> {
        if self.len == 0 || n == 1 {
            return Ok(());
        }
        if self.batch() != 1 {
            return Err(gen_err(format!("fork_batch needs a single-sequence cache, it holds {}", self.batch())));
        }
        let (k, v) = (std::mem::take(&mut self.k), std::mem::take(&mut self.v));
        let shared = match self.shared.take() {
            None => KvShared { k, v, len: self.len },
            Some(sh) => KvShared { k: [sh.k.as_slice(), &k].concat(), v: [sh.v.as_slice(), &v].concat(), len: self.len },
        };
        self.shared = Some(Arc::new(shared));
        self.k = Vec::with_capacity(KV_CHUNK * n * self.row);
        self.v = Vec::with_capacity(KV_CHUNK * n * self.row);
        self.batch = n;
        Ok(())
    }

    /// Keeps the sequences at `keep` (ascending, in range), dropping the rest.
    pub fn retain(&mut self, keep: &[usize]) -> Result<()> {
        let b = self.batch();
        if keep.is_empty() || keep.windows(2).any(|w| w[0] >= w[1]) || keep.iter().any(|&i| i >= b) {
            return Err(gen_err(format!("retain_batch: {keep:?} is not an ascending list of sequences below {b}")));
        }
        if keep.len() == b || self.len == 0 {
            if self.len == 0 {
                self.batch = keep.len();
            }
            return Ok(());
        }
        // In place, front to back: a kept row only ever moves towards the
        // start (no new allocation, no page faults on fresh memory).
        let (row, nb, own) = (self.row, keep.len(), self.len - self.shared_len());
        for buf in [&mut self.k, &mut self.v] {
            for p in 0..own {
                for (j, &i) in keep.iter().enumerate() {
                    let src = (p * b + i) * row;
                    let dst = (p * nb + j) * row;
                    if src != dst {
                        buf.copy_within(src..src + row, dst);
                    }
                }
            }
            buf.truncate(own * nb * row);
        }
        self.batch = nb;
        Ok(())
    }

    /// The keys `range` of sequence `bi`, from KV-row column `col` on, as
    /// spans for `kernels::attend_rows`: the shared part, then its own.
    fn spans(&self, bi: usize, col: usize, range: std::ops::Range<usize>) -> [kernels::KvSpan<'_>; 2] {
        let sl = self.shared_len();
        let empty: &[f16] = &[];
        let shared = match &self.shared {
            Some(sh) if col < sh.k.len() => kernels::KvSpan {
                k: &sh.k[col..],
                v: &sh.v[col..],
                stride: self.row,
                keys: range.start.min(sl)..range.end.min(sl),
            },
            _ => kernels::KvSpan { k: empty, v: empty, stride: self.row, keys: 0..0 },
        };
        let off = bi * self.row + col;
        let (k, v) = if off < self.k.len() { (&self.k[off..], &self.v[off..]) } else { (empty, empty) };
        let own = kernels::KvSpan { k, v, stride: self.batch() * self.row, keys: range.start.max(sl) - sl..range.end.max(sl) - sl };
        [shared, own]
    }
}

// ---------------------------------------------------------------- attention

/// The first position a query at `p` sees: `window` positions back at most
/// (llama.cpp masks key p0 for query p1 when p1 − p0 ≥ n_swa).
pub fn window_start(p: usize, window: Option<usize>) -> usize {
    match window {
        Some(w) if p + 1 > w => p + 1 - w,
        _ => 0,
    }
}

/// Rounds to f16 precision (round to nearest even), kept as f32. Exact for
/// f16's normal range, which the attention accumulator stays in.
#[inline(always)]
fn r16(x: f32) -> f32 {
    let b = x.to_bits();
    f32::from_bits(b.wrapping_add(0x0FFF + ((b >> 13) & 1)) & !0x1FFF)
}

/// Dot product with a fixed summation order (8 lanes, then the lanes in
/// order), independent of how many rows or keys are processed together.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0f32;
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

/// Causal grouped-query attention over the cache, one query row at a time.
///
/// Hand-written rather than two batched matmuls because the result for a
/// query must not depend on how many queries or keys are processed together:
/// a batched matmul + masked softmax sums in a shape-dependent order, and
/// the tiny differences flip int8 rounding in the next quantized matmul,
/// which moved logits by 0.2 between "prefix then suffix" and "all at once".
/// Here each query visits exactly the keys it may see (causal, and the
/// sliding window when `window` is set) in position order.
///
/// q: [b][s][n_head][d] (f32, queries at pos..pos+s); returns (b, s, n_head·d).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    kv: &KvCache,
    b: usize,
    s: usize,
    n_head: usize,
    n_kv: usize,
    d: usize,
    pos: usize,
    window: Option<usize>,
    scale: f32,
) -> Result<Tensor> {
    if q.len() != b * s * n_head * d || kv.row != n_kv * d || kv.batch() != b || kv.len() != pos + s {
        return Err(gen_err("attention: query and cache shapes disagree"));
    }
    // Q at f16 precision, as llama.cpp converts it for the K·Q dot product.
    let qh: Vec<f32> = q.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    let group = n_head / n_kv;
    let mut out = vec![0f32; q.len()];
    // The portable loop (no exact kernel for this CPU or head size):
    // llama.cpp's CPU flash attention with an f16 V cache — online softmax
    // over keys in order, the V accumulator kept in f16.
    let portable = |qr: &[f32], spans: &[kernels::KvSpan], o: &mut [f32]| {
        let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
        let (mut kr, mut vr) = (vec![0f32; d], vec![0f32; d]);
        o.fill(0.0);
        for span in spans {
            for j in span.keys.clone() {
                span.k[j * span.stride..j * span.stride + d].convert_to_f32_slice(&mut kr);
                span.v[j * span.stride..j * span.stride + d].convert_to_f32_slice(&mut vr);
                let sc = dot(qr, &kr) * scale;
                let (ms, vs) = if sc > m {
                    let ms = (m - sc).exp();
                    m = sc;
                    (ms, 1.0)
                } else {
                    (1.0, (sc - m).exp())
                };
                if ms != 1.0 {
                    for a in o.iter_mut() {
                        *a = r16(*a * ms);
                    }
                }
                for (a, &x) in o.iter_mut().zip(&vr) {
                    *a = r16(*a + x * vs);
                }
                sum = sum * ms + vs;
            }
        }
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        for a in o.iter_mut() {
            *a *= inv;
        }
    };
    // Rows `r0..r1`, query heads of one KV head at one position, into `o`:
    // they see the same keys, so one pass through them serves all
    // (`kernels::attend_rows`, each row's floats unchanged), else row by row.
    let piece = |r0: usize, r1: usize, o: &mut [f32]| {
        let t = (r0 / n_head) % s;
        let bi = r0 / (n_head * s);
        let kh = (r0 % n_head) / group;
        let p = pos + t;
        let spans = kv.spans(bi, kh * d, window_start(p, window)..p + 1);
        let qs = &qh[r0 * d..r1 * d];
        if !kernels::attend_rows(qs, d, &spans, scale, o) {
            for (qr, o) in qs.chunks(d).zip(o.chunks_mut(d)) {
                portable(qr, &spans, o);
            }
        }
    };
    // Units go to the matmul kernels' pool (its workers are already spinning
    // between the matmuls of this layer; rayon's would wake up and compete
    // with them for the cores); small jobs stay on the calling thread.
    let rows = b * s * n_head;
    let units = rows / group;
    let work = rows * (pos + s);
    let pool = kernels::pool::global();
    if rows < 2 || work < 4096 || pool.threads() < 2 {
        for (u, o) in out.chunks_mut(d * group).enumerate() {
            piece(u * group, (u + 1) * group, o);
        }
    } else {
        #[derive(Clone, Copy)]
        struct OutPtr(*mut f32);
        unsafe impl Send for OutPtr {}
        unsafe impl Sync for OutPtr {}
        let ptr = OutPtr(out.as_mut_ptr());
        // Tasks are runs of whole units; when there are too few units to
        // keep every core busy (a decode step: smollm2's 3 KV heads on 2
        // cores left one core idle for a third of the time), equal runs of
        // rows instead, cut at unit boundaries into pieces. A row's floats do
        // not depend on which rows share its pass through the keys.
        let threads = pool.threads();
        let per_row = units < 2 * threads;
        let per_unit = units.div_ceil(threads * 4).max(1);
        let tasks = if per_row { threads.min(rows) } else { units.div_ceil(per_unit) };
        // The first row of task `ti` (of `tasks`: the end).
        let start = |ti: usize| if per_row { ti * rows / tasks } else { (ti * per_unit).min(units) * group };
        pool.run(tasks, &|ti: usize| {
            let p = ptr;
            let (mut r, end) = (start(ti), start(ti + 1));
            while r < end {
                let r1 = ((r / group + 1) * group).min(end);
                // SAFETY: each row belongs to exactly one task, so the
                // slices written are disjoint and inside `out`.
                let o = unsafe { std::slice::from_raw_parts_mut(p.0.add(r * d), (r1 - r) * d) };
                piece(r, r1, o);
                r = r1;
            }
        });
    }
    Ok(Tensor::from_vec(out, (b, s, n_head * d), &Device::Cpu)?)
}

/// A tensor (any shape) as a flat f32 vector, row-major.
pub fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

// ---------------------------------------------------------------- mlp

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`, llama.cpp's LLM_FFN_GELU).
    GeluTanh,
}

/// GELU (tanh form) as ggml computes it on CPU: through an f16 lookup table
/// (input and output rounded to f16), 0 below −10 and identity above 10.
fn gelu_like_ggml(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044715;
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let h = half::f16::from_f32(x).to_f32();
        // GCC contracts ggml's `1.0f + GELU_COEF_A*x*x` into an FMA when it
        // builds the table (checked against the AVX-512 build's table: this
        // form equals all 63,488 finite entries, the plain one misses one).
        let y = 0.5 * h * (1.0 + (SQRT_2_OVER_PI * h * (GELU_COEF_A * h).mul_add(h, 1.0)).tanh());
        half::f16::from_f32(y).to_f32()
    }
}

/// [`gelu_like_ggml`] by table lookup, the same floats (as ggml itself uses
/// a 65,536-entry f16 table): between the ±10 cut-offs the result depends on
/// `x` only through its f16 rounding, so each f16 value is computed once.
/// Gemma's prompt spent ~13% of its CPU time in `tanhf`/`expm1f` here.
fn gelu_by_table(x: f32) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    if !(x > -10.0 && x < 10.0) {
        return gelu_like_ggml(x);
    }
    let t = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let h = half::f16::from_bits(bits).to_f32();
                // An f32 strictly inside (−10, 10) that rounds to h, so the
                // function takes its table branch (h itself may be ±10).
                let x = if h <= -10.0 { f32::from_bits((-10f32).to_bits() - 1) } else if h >= 10.0 { f32::from_bits(10f32.to_bits() - 1) } else { h };
                if h.is_finite() && h.abs() <= 10.0 { gelu_like_ggml(x) } else { 0.0 }
            })
            .collect()
    });
    t[half::f16::from_f32(x).to_bits() as usize]
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

    /// On flat f32 buffers (no tensor copies between the three matmuls), the
    /// activation split across the pool (element-wise: same floats).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let xs = to_vec(x)?;
        let m = xs.len() / self.gate.in_features().max(1);
        let mut gu = QLinear::forward_many_f32(&[&self.gate, &self.up], &xs, m)?;
        let uv = gu.pop().ok_or_else(|| gen_err("mlp: missing up projection"))?;
        let mut gv = gu.pop().ok_or_else(|| gen_err("mlp: missing gate projection"))?;
        match self.act {
            // llama.cpp's fused swiglu: silu through its vectorised expf.
            Activation::Silu => kernels::par_chunks2(&mut gv, &uv, &|g, u| kernels::swiglu(g, u)),
            Activation::GeluTanh => kernels::par_chunks2(&mut gv, &uv, &|g, u| {
                for (a, &b) in g.iter_mut().zip(u) {
                    *a = gelu_by_table(*a) * b;
                }
            }),
        }
        let out = self.down.forward_f32(&gv, m)?;
        if let Some(last) = dims.last_mut() {
            *last = self.down.out_features();
        }
        Ok(Tensor::from_vec(out, dims, &Device::Cpu)?)
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
    /// x (b, s, dim) at absolute positions pos..pos+s → (b, s, dim), or
    /// (b, 1, dim) with `last_only`: the last layer keeps only the last
    /// position after attention, as llama.cpp does (`inp_out_ids`), so its
    /// MLP multiplies one token per sequence — which matters for the K-quant
    /// kernels, whose rounding follows the number of tokens per call.
    fn forward(&self, x: &Tensor, kv: &mut KvCache, pos: usize, last_only: bool) -> Result<Tensor>;
}

/// `(x, y)` → their last positions only, `(b, 1, dim)` each, when `last_only`.
pub fn keep_last(x: Tensor, y: Tensor, last_only: bool) -> Result<(Tensor, Tensor)> {
    let s = x.dim(1)?;
    if !last_only || s == 1 {
        return Ok((x, y));
    }
    Ok((x.narrow(1, s - 1, 1)?.contiguous()?, y.narrow(1, s - 1, 1)?.contiguous()?))
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

    /// tokens (b·s, row-major) → logits of the last position (b, vocab), or
    /// with `all` of every position (b·s, vocab).
    fn run(&mut self, tokens: &[u32], b: usize, s: usize, pos: usize, all: bool) -> Result<Tensor> {
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
        dump::next_call();
        let mut x = self.w.embed.forward(tokens, b, s)?;
        if let Some(scale) = self.w.embed_scale {
            x = (x * scale)?;
        }
        let n = self.w.blocks.len();
        for (il, (block, kv)) in self.w.blocks.iter().zip(self.kv.iter_mut()).enumerate() {
            x = block.forward(&x, kv, pos, !all && il + 1 == n)?;
        }
        if all {
            let dim = x.dim(2)?;
            let x = x.reshape((b * s, dim))?;
            let x = self.w.norm.forward(&x)?;
            return Ok(self.w.output.forward(&x)?);
        }
        let last = x.dim(1)? - 1;
        let x = x.i((.., last, ..))?.contiguous()?;
        let x = self.w.norm.forward(&x)?;
        Ok(self.w.output.forward(&x)?)
    }

    /// A failed forward leaves the cache as it was (`len` = length before it).
    fn rollback_on_error<T>(&mut self, len: usize, r: Result<T>) -> Result<T> {
        if r.is_err() {
            for c in self.kv.iter_mut() {
                c.truncate(len);
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
        let before = self.seq_len();
        let r = self.run(tokens, 1, tokens.len(), pos, false);
        let r = self.rollback_on_error(before, r)?;
        Ok(r.squeeze(0)?)
    }

    fn forward_all(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        if self.batch() != 1 {
            return Err(gen_err(format!("forward_all feeds one sequence but the cache holds {}", self.batch())));
        }
        let before = self.seq_len();
        let r = self.run(tokens, 1, tokens.len(), pos, true);
        self.rollback_on_error(before, r)
    }

    fn retain_batch(&mut self, keep: &[usize]) -> Result<()> {
        for c in self.kv.iter_mut() {
            c.retain(keep)?;
        }
        Ok(())
    }

    fn forward_batch(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        let b = self.batch();
        if tokens.len() != b {
            return Err(gen_err(format!("forward_batch got {} tokens for {b} cached sequences", tokens.len())));
        }
        let before = self.seq_len();
        let r = self.run(tokens, b, 1, pos, false);
        self.rollback_on_error(before, r)
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
        // Vec clones are deep and sized to the cached positions only.
        Box::new(Self { w: self.w.clone(), kv: self.kv.clone() })
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

    /// Reference attention with explicit loops and a -inf mask over all keys.
    fn naive(q: &[f32], k: &[f32], v: &[f32], s: usize, nh: usize, nkv: usize, d: usize, pos: usize, w: Option<usize>) -> Vec<f32> {
        let l = pos + s;
        let mut out = vec![0f32; s * nh * d];
        for h in 0..nh {
            let kh = h / (nh / nkv);
            for i in 0..s {
                let p = pos + i;
                let qr = &q[(i * nh + h) * d..][..d];
                let mut sc: Vec<f32> = (0..l)
                    .map(|j| {
                        let hidden = j > p || w.is_some_and(|w| p - j >= w);
                        if hidden { f32::NEG_INFINITY } else { (0..d).map(|x| qr[x] * k[(j * nkv + kh) * d + x]).sum::<f32>() }
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let z: f32 = sc.iter_mut().map(|x| { *x = (*x - m).exp(); *x }).sum();
                for x in 0..d {
                    out[(i * nh + h) * d + x] = (0..l).map(|j| sc[j] / z * v[(j * nkv + kh) * d + x]).sum();
                }
            }
        }
        out
    }

    fn rand(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n).map(|_| { x = x.wrapping_mul(1664525).wrapping_add(1013904223); (x >> 8) as f32 / (1 << 24) as f32 - 0.5 }).collect()
    }

    fn f16r(x: &[f32]) -> Vec<f32> {
        x.iter().map(|&v| f16::from_f32(v).to_f32()).collect()
    }

    fn f32s(x: &[f16]) -> Vec<f32> {
        x.iter().map(|v| v.to_f32()).collect()
    }

    /// Keys of sequence `bi` at positions `range`, row `row` wide, read
    /// through the spans attention sees.
    fn keys_seen(c: &KvCache, bi: usize, range: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = Vec::new();
        for sp in c.spans(bi, 0, range) {
            for j in sp.keys {
                out.extend(f32s(&sp.k[j * sp.stride..j * sp.stride + c.row]));
            }
        }
        out
    }

    #[test]
    fn gqa_attention_matches_naive_with_and_without_window() {
        let (nh, nkv, d, pos, s) = (6, 2, 8, 5, 4);
        let q = f16r(&rand(s * nh * d, 1));
        let k = f16r(&rand((pos + s) * nkv * d, 2));
        let v = f16r(&rand((pos + s) * nkv * d, 3));
        for w in [None, Some(3)] {
            let mut c = KvCache::default();
            c.append(&k[..pos * nkv * d], &v[..pos * nkv * d], 1, pos).unwrap();
            c.append(&k[pos * nkv * d..], &v[pos * nkv * d..], 1, s).unwrap();
            let got: Vec<f32> = attention(&q, &c, 1, s, nh, nkv, d, pos, w, 1.0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let want = naive(&q, &k, &v, s, nh, nkv, d, pos, w);
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // the accumulator is f16 (as llama.cpp's): ~2^-11 relative per step
            assert!(diff < 2e-3, "window {w:?}: diff {diff}");
        }
    }

    /// A decode step with fewer KV heads than twice the cores is split into
    /// runs of rows (smollm2: 9 heads over 3 KV heads); every row still gets
    /// the floats of attending alone, whichever rows share its pass.
    #[test]
    fn decode_attention_split_by_rows_gives_each_row_its_own_floats() {
        for (nh, nkv, d) in [(9, 3, 64), (4, 1, 256), (14, 2, 64)] {
            let pos = 700;
            let k = rand((pos + 1) * nkv * d, 31);
            let v = rand((pos + 1) * nkv * d, 32);
            let q = rand(nh * d, 33);
            let mut c = KvCache::default();
            c.append(&k, &v, 1, pos + 1).unwrap();
            let got: Vec<f32> = attention(&q, &c, 1, 1, nh, nkv, d, pos, None, 0.125).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let qh = f16r(&q);
            for h in 0..nh {
                let spans = c.spans(0, (h / (nh / nkv)) * d, 0..pos + 1);
                let mut want = vec![0f32; d];
                if !kernels::attend_row(&qh[h * d..(h + 1) * d], &spans, 0.125, &mut want) {
                    return; // no exact kernel on this CPU: the portable loop is row by row anyway
                }
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got[h * d..(h + 1) * d]), bits(&want), "{nh} heads / {nkv} KV heads, d {d}: head {h}");
            }
        }
    }

    /// A batch forked from one prompt (the prompt stored once) attends
    /// exactly as a batch that holds its own copy of the prompt.
    #[test]
    fn shared_prompt_attention_equals_per_sequence_copies() {
        let (nh, nkv, d, pos, b) = (6, 2, 64, 37, 3);
        let row = nkv * d;
        let prompt = rand(pos * row, 21);
        let (k1, v1) = (rand(b * row, 22), rand(b * row, 23));
        let q = rand(b * nh * d, 24);
        for w in [None, Some(8)] {
            let mut shared = KvCache::default();
            shared.append(&prompt, &prompt, 1, pos).unwrap();
            shared.fork(b).unwrap();
            shared.append(&k1, &v1, b, 1).unwrap();
            let mut flat = KvCache::default();
            let copies: Vec<f32> = (0..b).flat_map(|_| prompt.clone()).collect();
            flat.append(&copies, &copies, b, pos).unwrap();
            flat.append(&k1, &v1, b, 1).unwrap();
            assert_eq!((shared.shared_len(), flat.shared_len()), (pos, 0));
            let run = |c: &KvCache| -> Vec<u32> {
                let t = attention(&q, c, b, 1, nh, nkv, d, pos, w, 0.125).unwrap();
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
            };
            assert_eq!(run(&shared), run(&flat), "window {w:?}");
        }
    }

    #[test]
    fn gelu_table_gives_the_function_s_floats() {
        let mut xs: Vec<f32> = rand(200_000, 17).iter().map(|x| x * 24.0).collect();
        xs.extend([-10.0, -9.999, -9.99, 9.999, 10.0, 0.0, -0.0, 1e-8, -1e-8, 65504.0, f32::NAN]);
        for x in xs {
            let (a, b) = (gelu_like_ggml(x), gelu_by_table(x));
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "gelu({x}): {a} vs table {b}");
        }
    }

    #[test]
    fn r16_rounds_like_half() {
        for x in rand(10_000, 9).iter().map(|x| x * 300.0) {
            if x.abs() > 1e-4 {
                assert_eq!(r16(x), half::f16::from_f32(x).to_f32(), "{x}");
            }
        }
    }

    #[test]
    fn window_start_follows_llama_cpp() {
        assert_eq!(window_start(4, Some(3)), 2); // sees 2, 3, 4
        assert_eq!(window_start(2, Some(3)), 0);
        assert_eq!(window_start(100, None), 0);
    }

    #[test]
    fn kv_cache_grows_truncates_forks_and_clones_deeply() {
        let mut c = KvCache::default();
        let k = rand(300 * 8, 4);
        c.append(&k, &k, 1, 300).unwrap();
        assert_eq!(c.len(), 300);
        assert!(c.k.capacity() >= 512 * 8);
        assert_eq!(f32s(&c.k), f16r(&k));
        assert_eq!(c.bytes(), (c.k.capacity() + c.v.capacity()) * 2);
        c.truncate(10);
        let snapshot = c.clone();
        c.append(&[1.0; 8], &[1.0; 8], 1, 1).unwrap();
        assert_eq!(c.len(), 11);
        assert_eq!(snapshot.len(), 10);
        assert_eq!(f32s(&snapshot.k), f16r(&k[..80]));
        c.fork(3).unwrap();
        assert_eq!((c.batch(), c.shared_len()), (3, 11));
        // the prompt is stored once: no copies per sequence
        assert!(c.k.is_empty());
        c.append(&[2.0; 24], &[2.0; 24], 3, 1).unwrap();
        for bi in 0..3 {
            let seen = keys_seen(&c, bi, 0..12);
            assert_eq!(&seen[..80], &f16r(&k[..80])[..], "sequence {bi}");
            assert_eq!(&seen[80..], &[[1.0; 8], [2.0; 8]].concat()[..], "sequence {bi}");
            // a window that starts inside the shared part, and one past it
            assert_eq!(keys_seen(&c, bi, 9..12), seen[72..].to_vec());
            assert_eq!(keys_seen(&c, bi, 11..12), seen[88..].to_vec());
        }
        assert!(c.append(&[0.0; 8], &[0.0; 8], 1, 1).is_err());
        // rolling back into the shared part gives every sequence its copy
        let mut r = c.clone();
        r.truncate(5);
        assert_eq!((r.len(), r.shared_len(), r.batch()), (5, 0, 3));
        for bi in 0..3 {
            assert_eq!(keys_seen(&r, bi, 0..5), f16r(&k[..40]));
        }
        // the clone did not touch `c`'s shared prompt
        assert_eq!(keys_seen(&c, 2, 0..10), f16r(&k[..80]));
        // dropping sequences keeps the shared part
        c.append(&[3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0], &[0.0; 24], 3, 1).unwrap();
        c.retain(&[2]).unwrap();
        assert_eq!((c.batch(), c.shared_len(), c.len()), (1, 11, 13));
        assert_eq!(&keys_seen(&c, 0, 11..13), &[[2.0; 8], [5.0; 8]].concat()[..]);
        // a batch-1 cache with a shared part forks again (prompt + its own part)
        c.fork(2).unwrap();
        assert_eq!((c.batch(), c.shared_len()), (2, 13));
        assert_eq!(keys_seen(&c, 1, 0..13), keys_seen(&c, 0, 0..13));
    }

    #[test]
    fn rope_styles_rotate_the_right_pairs() {
        let r = Rope::new(4, 10_000.0, 1.0, RopeStyle::Interleaved, 8).unwrap();
        let mut x = vec![1.0, 0.0, 1.0, 0.0];
        r.apply(&mut x, 1, 1, 1, 1).unwrap();
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
        let r = Rope::new(4, 10_000.0, 1.0, RopeStyle::Neox, 8).unwrap();
        let mut x = vec![1.0, 1.0, 0.0, 0.0];
        r.apply(&mut x, 1, 1, 1, 1).unwrap();
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[2] - 1f32.sin()).abs() < 1e-6);
        assert!(r.apply(&mut x, 1, 1, 1, 8).is_err());
    }
}
