//! A quantized linear layer: the one place where weight matmuls happen, so the
//! kernels behind it can be swapped without touching the model files.
//!
//! Q4_1, Q5_0, Q8_0 and Q6_K weights run on our own kernels (`engine::kernels`:
//! AVX2 integer dot products, a tiled GEMM for prompts, a persistent thread
//! pool). Q4_K and Q6_K have two paths. By default they run exact: on
//! `kernels::kquant_exact` / `kquant_simd`, which keep llama.cpp's own float
//! order (greedy parity with its AVX-512 build), 16 rows per AVX-512 register.
//! `BRANDVOICE_KQUANT=fast` opts into the older path: Q6_K on the integer tiles
//! (values unchanged, another summation order) and Q4_K repacked as Q4_1
//! (per-32 scale and minimum rounded to f16) — not llama.cpp's floats, so
//! greedy text can leave llama.cpp's at near-ties. Other quantized types (Q5_K, Q4_0, …) are
//! re-quantised to Q8_0 at load. f32/f16/bf16 weights and non-CPU tensors stay on candle's
//! `QMatMul`. `BRANDVOICE_QLINEAR=candle` (or [`QLinearOptions`]) keeps every
//! layer on candle — the "plain candle" baseline of BENCHMARKS.md.

use super::kernels::kquant_exact::{KKind, KQuantMatrix};
use super::kernels::{self, Kind, Packed};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Result, Storage, Tensor};
use std::sync::Arc;

/// Which implementation a layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Our kernels where the type allows, candle otherwise.
    Auto,
    /// candle's `QMatMul` for everything.
    Candle,
}

/// How `from_qtensor_with` builds a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QLinearOptions {
    pub backend: Backend,
    /// Re-quantise types without a native kernel (K-quants, Q4_0, Q5_1, …) to
    /// Q8_0 at load. When false they stay on candle's kernels.
    pub requant_to_q8_0: bool,
    /// Run Q4_K/Q6_K on `kernels::kquant_exact` (llama.cpp's floats; the
    /// default) instead of the integer tiles (Q6_K native, Q4_K repacked as Q4_1).
    pub exact_kquants: bool,
}

impl Default for QLinearOptions {
    fn default() -> Self {
        QLinearOptions { backend: Backend::Auto, requant_to_q8_0: true, exact_kquants: true }
    }
}

impl QLinearOptions {
    /// Defaults, overridden by `BRANDVOICE_QLINEAR=candle|auto`,
    /// `BRANDVOICE_REQUANT=0|1` and `BRANDVOICE_KQUANT=exact|fast`.
    pub fn from_env() -> Self {
        let mut o = Self::default();
        if let Ok(v) = std::env::var("BRANDVOICE_QLINEAR") {
            if v.eq_ignore_ascii_case("candle") {
                o.backend = Backend::Candle;
            }
        }
        if let Ok(v) = std::env::var("BRANDVOICE_REQUANT") {
            o.requant_to_q8_0 = !(v == "0" || v.eq_ignore_ascii_case("false"));
        }
        if let Ok(v) = std::env::var("BRANDVOICE_KQUANT") {
            o.exact_kquants = !v.eq_ignore_ascii_case("fast");
        }
        o
    }
}

#[derive(Debug)]
enum Inner {
    Packed(Packed),
    KQuant(KQuantMatrix),
    Candle(QMatMul),
}

/// `y = x Wᵀ` for a GGUF weight `W` of shape (out, in). Cheap to clone.
#[derive(Debug, Clone)]
pub struct QLinear {
    inner: Arc<Inner>,
    out_features: usize,
    in_features: usize,
}

fn native_kind(dt: GgmlDType) -> Option<Kind> {
    match dt {
        GgmlDType::Q4_1 => Some(Kind::Q4_1),
        GgmlDType::Q5_0 => Some(Kind::Q5_0),
        GgmlDType::Q8_0 => Some(Kind::Q8_0),
        GgmlDType::Q6K => Some(Kind::Q6K),
        _ => None,
    }
}

fn kquant_kind(dt: GgmlDType) -> Option<KKind> {
    match dt {
        GgmlDType::Q4K => Some(KKind::Q4K),
        GgmlDType::Q6K => Some(KKind::Q6K),
        _ => None,
    }
}

fn pack_err(e: kernels::PackError) -> candle_core::Error {
    candle_core::Error::Msg(format!("packing a quantized weight: {e}"))
}

impl QLinear {
    pub fn from_qtensor(w: QTensor) -> Result<Self> {
        Self::from_qtensor_with(w, &QLinearOptions::from_env())
    }

    pub fn from_qtensor_with(w: QTensor, opts: &QLinearOptions) -> Result<Self> {
        let (out_features, in_features) = w.shape().dims2()?;
        let on_cpu = matches!(w.device(), Device::Cpu);
        let dt = w.dtype();
        let is_float = matches!(dt, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        let inner = if opts.backend == Backend::Candle || !on_cpu || is_float || in_features % 32 != 0 {
            Inner::Candle(QMatMul::from_qtensor(w)?)
        } else if let (true, Some(kind), 0) = (opts.exact_kquants, kquant_kind(dt), in_features % 256) {
            let data = w.data()?;
            Inner::KQuant(
                KQuantMatrix::from_ggml(kind, out_features, in_features, &data)
                    .map_err(|e| candle_core::Error::Msg(format!("packing a K-quant weight: {e}")))?,
            )
        } else if let Some(kind) = native_kind(dt).filter(|k| in_features % k.ggml_block_elems() == 0) {
            let data = w.data()?;
            Inner::Packed(Packed::from_ggml(kind, out_features, in_features, &data).map_err(pack_err)?)
        } else if dt == GgmlDType::Q4K && in_features % kernels::blocks::QK_K == 0 {
            let data = w.data()?;
            Inner::Packed(Packed::q4_1_from_q4_k(out_features, in_features, &data).map_err(pack_err)?)
        } else if opts.requant_to_q8_0 {
            let f = w.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
            drop(w);
            Inner::Packed(Packed::q8_0_from_f32(out_features, in_features, &f).map_err(pack_err)?)
        } else {
            Inner::Candle(QMatMul::from_qtensor(w)?)
        };
        Ok(Self { inner: Arc::new(inner), out_features, in_features })
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// True when this layer runs on our kernels (not candle's).
    pub fn is_native(&self) -> bool {
        matches!(*self.inner, Inner::Packed(_) | Inner::KQuant(_))
    }

    /// x: (..., in) f32 → (..., out) f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &*self.inner {
            Inner::Candle(q) => return q.forward(x),
            Inner::KQuant(w) => return kquant_forward(w, x),
            Inner::Packed(_) => {}
        }
        Ok(Self::forward_many(&[self], x)?.remove(0))
    }

    /// The same input through several layers (q/k/v, or gate/up): quantised
    /// once and computed in one parallel job — fewer hand-offs between cores
    /// per decoder layer than separate `forward` calls. Same results as
    /// calling `forward` on each.
    pub fn forward_many(layers: &[&QLinear], x: &Tensor) -> Result<Vec<Tensor>> {
        if !layers.iter().all(|l| matches!(*l.inner, Inner::Packed(_))) {
            return layers.iter().map(|l| l.forward(x)).collect();
        }
        if !matches!(x.device(), Device::Cpu) || x.dtype() != candle_core::DType::F32 {
            candle_core::bail!("QLinear: expected an f32 CPU tensor, got {:?} on {:?}", x.dtype(), x.device());
        }
        let dims = x.dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("QLinear: input is a scalar, expected (..., features)");
        };
        if let Some(l) = layers.iter().find(|l| l.in_features != k) {
            candle_core::bail!("QLinear: input has {k} features, the weight expects {}", l.in_features);
        }
        let m: usize = lead.iter().product();
        let x = x.contiguous()?;
        let outs = {
            let (storage, layout) = x.storage_and_layout();
            let Storage::Cpu(cpu) = &*storage else {
                candle_core::bail!("QLinear: expected a CPU tensor");
            };
            let all = cpu.as_slice::<f32>()?;
            Self::forward_many_f32(layers, &all[layout.start_offset()..layout.start_offset() + m * k], m)?
        };
        layers
            .iter()
            .zip(outs)
            .map(|(l, out)| {
                let mut shape = lead.to_vec();
                shape.push(l.out_features);
                Tensor::from_vec(out, shape, &Device::Cpu)
            })
            .collect()
    }
}

impl QLinear {
    /// `x` (`m × in`, row-major) through this layer: `m × out`, without tensors.
    pub fn forward_f32(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        Ok(Self::forward_many_f32(&[self], x, m)?.remove(0))
    }

    /// [`forward_many`](Self::forward_many) on flat buffers: the same floats,
    /// no copies into and out of tensors (the MLP's intermediates are
    /// `m × ff`, megabytes per layer in a prompt).
    pub fn forward_many_f32(layers: &[&QLinear], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        if let Some(l) = layers.iter().find(|l| x.len() != m * l.in_features) {
            candle_core::bail!("QLinear: input holds {} floats, expected {m} × {}", x.len(), l.in_features);
        }
        let packed: Option<Vec<&Packed>> = layers
            .iter()
            .map(|l| match &*l.inner {
                Inner::Packed(w) => Some(w),
                Inner::Candle(_) | Inner::KQuant(_) => None,
            })
            .collect();
        if let Some(ws) = packed {
            let mut outs: Vec<Vec<f32>> = layers.iter().map(|l| vec![0f32; m * l.out_features]).collect();
            if m > 0 {
                let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
                kernels::matmul_many(&ws, x, m, &mut views);
            }
            return Ok(outs);
        }
        layers
            .iter()
            .map(|l| match &*l.inner {
                Inner::KQuant(w) => {
                    let mut out = vec![0f32; m * w.rows];
                    w.matmul(x, m, &mut out);
                    Ok(out)
                }
                _ => {
                    let t = Tensor::from_slice(x, (m, l.in_features), &Device::Cpu)?;
                    l.forward(&t)?.flatten_all()?.to_vec1::<f32>()
                }
            })
            .collect()
    }
}

/// x: (..., k) f32 → (..., rows) through the exact K-quant kernel.
fn kquant_forward(w: &KQuantMatrix, x: &Tensor) -> Result<Tensor> {
    if !matches!(x.device(), Device::Cpu) || x.dtype() != candle_core::DType::F32 {
        candle_core::bail!("QLinear: expected an f32 CPU tensor, got {:?} on {:?}", x.dtype(), x.device());
    }
    let dims = x.dims();
    let Some((&k, lead)) = dims.split_last() else {
        candle_core::bail!("QLinear: input is a scalar, expected (..., features)");
    };
    if k != w.k {
        candle_core::bail!("QLinear: input has {k} features, the weight expects {}", w.k);
    }
    let m: usize = lead.iter().product();
    let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; m * w.rows];
    w.matmul(&xs, m, &mut out);
    let mut shape = lead.to_vec();
    shape.push(w.rows);
    Tensor::from_vec(out, shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(rows: usize, k: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1).collect();
        Tensor::from_vec(v, (rows, k), &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Every type the shipped models use, native or re-quantised, against an
    /// f32 matmul of candle's dequantised weight, on (batch, seq, in) input.
    #[test]
    fn forward_matches_dequantised_matmul_for_model_types() {
        let (rows, k) = (48, 512);
        let w = weights(rows, k);
        let x = Tensor::randn(0f32, 1.0, (2, 3, k), &Device::Cpu).unwrap();
        for dt in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q6K] {
            let q = QTensor::quantize(&w, dt).unwrap();
            let deq = q.dequantize(&Device::Cpu).unwrap();
            let want = x.broadcast_matmul(&deq.t().unwrap()).unwrap();
            let lin = QLinear::from_qtensor_with(q, &QLinearOptions::default()).unwrap();
            assert!(lin.is_native(), "{dt:?} should run on our kernels");
            let got = lin.forward(&x).unwrap();
            assert_eq!(got.dims(), &[2, 3, rows]);
            let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            let d = max_abs_diff(&got, &want);
            // 8-bit activations (and for K-quants the Q8_0 re-quantisation) cost ~1% here.
            assert!(d <= 0.02 * scale, "{dt:?}: max abs diff {d} vs output scale {scale}");
        }
    }

    #[test]
    fn candle_backend_and_float_weights_still_work() {
        let w = weights(16, 64);
        let x = Tensor::randn(0f32, 1.0, (3, 64), &Device::Cpu).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let f = QLinear::from_qtensor(QTensor::quantize(&w, GgmlDType::F32).unwrap()).unwrap();
        assert!(!f.is_native());
        assert!(max_abs_diff(&f.forward(&x).unwrap(), &want) < 1e-4);
        let opts = QLinearOptions { backend: Backend::Candle, ..Default::default() };
        let c = QLinear::from_qtensor_with(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap(), &opts).unwrap();
        assert!(!c.is_native());
        let n = QLinear::from_qtensor_with(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap(), &QLinearOptions::default()).unwrap();
        assert!(max_abs_diff(&c.forward(&x).unwrap(), &n.forward(&x).unwrap()) < 0.05);
    }

    #[test]
    fn forward_many_equals_separate_forwards() {
        let x = Tensor::randn(0f32, 1.0, (1, 5, 128), &Device::Cpu).unwrap();
        let q = QLinear::from_qtensor(QTensor::quantize(&weights(40, 128), GgmlDType::Q4_1).unwrap()).unwrap();
        let k = QLinear::from_qtensor(QTensor::quantize(&weights(8, 128), GgmlDType::Q5_0).unwrap()).unwrap();
        let v = QLinear::from_qtensor(QTensor::quantize(&weights(8, 128), GgmlDType::Q8_0).unwrap()).unwrap();
        let many = QLinear::forward_many(&[&q, &k, &v], &x).unwrap();
        for (l, got) in [&q, &k, &v].iter().zip(&many) {
            let want = l.forward(&x).unwrap();
            assert_eq!(got.dims(), want.dims());
            assert_eq!(max_abs_diff(got, &want), 0.0);
        }
        let bad = QLinear::from_qtensor(QTensor::quantize(&weights(8, 64), GgmlDType::Q8_0).unwrap()).unwrap();
        assert!(QLinear::forward_many(&[&q, &bad], &x).is_err());
    }

    #[test]
    fn wrong_input_width_is_an_error() {
        let lin = QLinear::from_qtensor(QTensor::quantize(&weights(8, 64), GgmlDType::Q8_0).unwrap()).unwrap();
        let x = Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = lin.forward(&x).unwrap_err().to_string();
        assert!(e.contains("32 features") && e.contains("64"), "{e}");
    }
}
