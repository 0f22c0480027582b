//! all-MiniLM-L6-v2's BERT forward with int8 linears, for bulk triage.
//!
//! Why not candle's `BertModel`: its f32 matmuls on tweet-sized batches reach
//! ~25 GFLOP/s a core, and a tweet costs ~0.7 GFLOP, so triage stalled near
//! 75 messages/s on two cores. The six linears of each layer are >95% of the
//! work; here they run on the engine's Q8_0 × Q8 integer tiles
//! (`engine::kernels`, AVX-512 VNNI / AVX2, weights quantised once at load).
//! The small parts (embeddings, layer norm, attention, GELU, pooling) are
//! plain f32 loops.
//!
//! Texts are not padded: the tokens of several texts are stacked into one
//! matrix for the linears (a linear acts on each token alone), and attention
//! runs per text over its own tokens — the same result as candle's masked,
//! padded batch, without computing the padding. Every token's activations
//! are quantised on their own, so a text's embedding does not depend on
//! which texts share its batch (tested).
//!
//! candle's `BertModel` stays the f32 reference (`embed::Backend::Candle`, and
//! the test that the two agree on real tweets).

use std::path::Path;

use candle_core::Device;
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::engine::kernels::{self, dispatch_f32, pool::Pool, Packed};

use super::embed::EmbedError;

/// A linear layer: Q8_0 weight (out × in) and f32 bias.
struct Lin {
    w: Packed,
    b: Vec<f32>,
}

struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    ln_attn: Norm,
    up: Lin,
    down: Lin,
    ln_out: Norm,
}

/// The loaded int8 encoder.
pub struct QBert {
    hidden: usize,
    heads: usize,
    inter: usize,
    eps: f32,
    vocab: usize,
    max_pos: usize,
    word: Vec<f32>,
    pos: Vec<f32>,
    type0: Vec<f32>,
    emb_ln: Norm,
    layers: Vec<Layer>,
}

fn bad(reason: String) -> EmbedError {
    EmbedError::Weights(reason)
}

impl QBert {
    /// Loads `model.safetensors` for a BERT `config` (absolute positions, erf GELU).
    pub fn load(weights: &Path, config: &Config) -> Result<Self, EmbedError> {
        if config.hidden_act != HiddenAct::Gelu {
            return Err(bad(format!("hidden_act {:?} is not supported (only gelu)", config.hidden_act)));
        }
        let (h, inter) = (config.hidden_size, config.intermediate_size);
        if config.num_attention_heads == 0 || h % config.num_attention_heads != 0 || h % 32 != 0 || inter % 32 != 0 {
            return Err(bad(format!(
                "hidden_size {h} / intermediate_size {inter} / {} heads: need multiples of 32 and of the head count",
                config.num_attention_heads
            )));
        }
        let mut t = candle_core::safetensors::load(weights, &Device::Cpu)?;
        let mut take = |name: &str, len: usize| -> Result<Vec<f32>, EmbedError> {
            let v = t
                .remove(name)
                .ok_or_else(|| bad(format!("{}: tensor {name} is missing", weights.display())))?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if v.len() != len {
                return Err(bad(format!(
                    "{}: tensor {name} has {} values, expected {len}",
                    weights.display(),
                    v.len()
                )));
            }
            Ok(v)
        };
        let emb_ln = Norm {
            w: take("embeddings.LayerNorm.weight", h)?,
            b: take("embeddings.LayerNorm.bias", h)?,
        };
        let word = take("embeddings.word_embeddings.weight", config.vocab_size * h)?;
        let pos = take("embeddings.position_embeddings.weight", config.max_position_embeddings * h)?;
        let mut type0 = take("embeddings.token_type_embeddings.weight", config.type_vocab_size * h)?;
        type0.truncate(h);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut lin = |name: &str, rows: usize, k: usize| -> Result<Lin, EmbedError> {
                let w = take(&format!("{p}.{name}.weight"), rows * k)?;
                let w = Packed::q8_0_from_f32(rows, k, &w).map_err(|e| bad(format!("{p}.{name}: {e}")))?;
                Ok(Lin {
                    w,
                    b: take(&format!("{p}.{name}.bias"), rows)?,
                })
            };
            let q = lin("attention.self.query", h, h)?;
            let k = lin("attention.self.key", h, h)?;
            let v = lin("attention.self.value", h, h)?;
            let o = lin("attention.output.dense", h, h)?;
            let up = lin("intermediate.dense", inter, h)?;
            let down = lin("output.dense", h, inter)?;
            let mut norm = |name: &str| -> Result<Norm, EmbedError> {
                Ok(Norm {
                    w: take(&format!("{p}.{name}.weight"), h)?,
                    b: take(&format!("{p}.{name}.bias"), h)?,
                })
            };
            let ln_attn = norm("attention.output.LayerNorm")?;
            let ln_out = norm("output.LayerNorm")?;
            layers.push(Layer {
                q,
                k,
                v,
                o,
                ln_attn,
                up,
                down,
                ln_out,
            });
        }
        Ok(Self {
            hidden: h,
            heads: config.num_attention_heads,
            inter,
            eps: config.layer_norm_eps as f32,
            vocab: config.vocab_size,
            max_pos: config.max_position_embeddings,
            word,
            pos,
            type0,
            emb_ln,
            layers,
        })
    }

    /// Mean-pooled, unit-length embeddings of token sequences (each with its
    /// [CLS]/[SEP]), computed as one stacked batch; `pool` runs the linears.
    pub fn embed_ids(&self, seqs: &[&[u32]], pool: &Pool) -> Result<Vec<Vec<f32>>, EmbedError> {
        let h = self.hidden;
        let mut starts = Vec::with_capacity(seqs.len() + 1);
        let mut m = 0;
        for s in seqs {
            if s.is_empty() {
                return Err(EmbedError::Encode("a text gave no tokens".into()));
            }
            if s.len() > self.max_pos {
                return Err(EmbedError::Encode(format!(
                    "{} tokens, the model takes at most {}",
                    s.len(),
                    self.max_pos
                )));
            }
            starts.push(m);
            m += s.len();
        }
        starts.push(m);
        // Embeddings: word + position + token type 0, then layer norm.
        let mut x = vec![0f32; m * h];
        for (si, s) in seqs.iter().enumerate() {
            for (p, &id) in s.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(EmbedError::Encode(format!(
                        "token id {id} is outside the vocabulary of {}",
                        self.vocab
                    )));
                }
                let row = &mut x[(starts[si] + p) * h..][..h];
                let (w, ps) = (&self.word[id * h..][..h], &self.pos[p * h..][..h]);
                for j in 0..h {
                    row[j] = w[j] + ps[j] + self.type0[j];
                }
            }
        }
        layer_norm_fast(&mut x, h, &self.emb_ln, self.eps);
        let isa = kernels::isa();
        let (mut q, mut k, mut v) = (vec![0f32; m * h], vec![0f32; m * h], vec![0f32; m * h]);
        let mut ctx = vec![0f32; m * h];
        let mut a = vec![0f32; m * h];
        let mut up = vec![0f32; m * self.inter];
        let mut scores = Vec::new();
        for l in &self.layers {
            kernels::matmul_many_with(&[&l.q.w, &l.k.w, &l.v.w], &x, m, &mut [&mut q, &mut k, &mut v], isa, pool);
            add_bias_fast(&mut q, &l.q.b);
            add_bias_fast(&mut k, &l.k.b);
            add_bias_fast(&mut v, &l.v.b);
            for si in 0..seqs.len() {
                let (b, e) = (starts[si], starts[si + 1]);
                attention_fast(
                    &q[b * h..e * h],
                    &k[b * h..e * h],
                    &v[b * h..e * h],
                    &mut ctx[b * h..e * h],
                    &mut scores,
                    h,
                    self.heads,
                );
            }
            kernels::matmul_many_with(&[&l.o.w], &ctx, m, &mut [&mut a], isa, pool);
            add_bias_fast(&mut a, &l.o.b);
            add_in_place(&mut a, &x);
            layer_norm_fast(&mut a, h, &l.ln_attn, self.eps);
            kernels::matmul_many_with(&[&l.up.w], &a, m, &mut [&mut up], isa, pool);
            add_bias_fast(&mut up, &l.up.b);
            gelu_fast(&mut up);
            kernels::matmul_many_with(&[&l.down.w], &up, m, &mut [&mut x], isa, pool);
            add_bias_fast(&mut x, &l.down.b);
            add_in_place(&mut x, &a);
            layer_norm_fast(&mut x, h, &l.ln_out, self.eps);
        }
        // Mean pooling over each text's tokens, then L2 normalisation.
        Ok((0..seqs.len())
            .map(|si| {
                let (b, e) = (starts[si], starts[si + 1]);
                let mut mean = vec![0f32; h];
                for t in b..e {
                    add_in_place(&mut mean, &x[t * h..][..h]);
                }
                let n = (e - b) as f32;
                mean.iter_mut().for_each(|v| *v /= n);
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|v| *v /= norm);
                mean
            })
            .collect())
    }
}

/// Self-attention of one text: `q`, `k`, `v`, `out` are (tokens × hidden).
#[inline(always)]
fn attention(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], scores: &mut Vec<f32>, h: usize, heads: usize) {
    let dh = h / heads;
    let n = q.len() / h;
    let scale = 1.0 / (dh as f32).sqrt();
    scores.resize(n, 0.0);
    for hd in 0..heads {
        let off = hd * dh;
        for i in 0..n {
            let qi = &q[i * h + off..][..dh];
            let mut max = f32::NEG_INFINITY;
            for (j, s) in scores.iter_mut().enumerate() {
                *s = dot(qi, &k[j * h + off..][..dh]) * scale;
                max = max.max(*s);
            }
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let o = &mut out[i * h + off..][..dh];
            o.iter_mut().for_each(|x| *x = 0.0);
            let inv = 1.0 / sum;
            for (j, &s) in scores.iter().enumerate() {
                let p = s * inv;
                for (x, &vj) in o.iter_mut().zip(&v[j * h + off..][..dh]) {
                    *x += p * vj;
                }
            }
        }
    }
}

dispatch_f32! {
    fn layer_norm_fast / layer_norm_avx2 (x: &mut [f32], h: usize, n: &Norm, eps: f32) => layer_norm;
    fn gelu_fast / gelu_avx2 (x: &mut [f32]) => gelu_erf_in_place;
    fn add_bias_fast / add_bias_avx2 (x: &mut [f32], b: &[f32]) => add_bias;
    fn attention_fast / attention_avx2 (q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], scores: &mut Vec<f32>, h: usize, heads: usize) => attention;
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums so the loop vectorises.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

#[inline(always)]
fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        add_in_place(row, b);
    }
}

#[inline(always)]
fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[inline(always)]
fn layer_norm(x: &mut [f32], h: usize, n: &Norm, eps: f32) {
    for row in x.chunks_exact_mut(h) {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&n.w).zip(&n.b) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// `erf` by Abramowitz & Stegun 7.1.28 (|error| ≤ 3e-7): polynomials and one
/// division, no branches on the data, so the GELU loop vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const A: [f32; 6] = [
        0.070_523_08,
        0.042_282_01,
        0.009_270_527,
        0.000_152_014_3,
        0.000_276_567_2,
        0.000_043_063_8,
    ];
    let ax = x.abs();
    let p = 1.0 + ax * (A[0] + ax * (A[1] + ax * (A[2] + ax * (A[3] + ax * (A[4] + ax * A[5])))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    let r = 1.0 - 1.0 / (p8 * p8);
    r.copysign(x)
}

/// BERT's exact GELU: `x · ½(1 + erf(x/√2))`.
#[inline(always)]
fn gelu_erf_in_place(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // erf from tables (Abramowitz & Stegun, table 7.1).
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.0, -0.842_700_8),
            (4.0, 1.0),
        ] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {} want {want}", erf(x));
        }
        let mut g = [1.0f32, -3.0];
        gelu_erf_in_place(&mut g);
        assert!((g[0] - 0.841_344_7).abs() < 1e-6 && (g[1] + 0.004_049_7).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn layer_norm_gives_zero_mean_unit_variance() {
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 14.0];
        let n = Norm {
            w: vec![1.0; 4],
            b: vec![0.0; 4],
        };
        layer_norm(&mut x, 4, &n, 1e-12);
        for row in x.chunks(4) {
            let mean: f32 = row.iter().sum::<f32>() / 4.0;
            let var: f32 = row.iter().map(|v| v * v).sum::<f32>() / 4.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "{row:?}");
        }
    }
}
