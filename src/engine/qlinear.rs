//! A quantized linear layer: the one place where weight matmuls happen, so the
//! kernels behind it can be swapped without touching the model files.
//!
//! For now this wraps candle's `QMatMul`; `kernels` replaces the slow paths
//! (candle has only scalar dot products for Q4_1/Q5_0/Q5_1).

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};
use std::sync::Arc;

/// `y = x Wᵀ` for a GGUF weight `W` of shape (out, in). Cheap to clone.
#[derive(Debug, Clone)]
pub struct QLinear {
    inner: Arc<QMatMul>,
    out_features: usize,
    in_features: usize,
}

impl QLinear {
    pub fn from_qtensor(w: QTensor) -> Result<Self> {
        let (out_features, in_features) = w.shape().dims2()?;
        let inner = QMatMul::from_qtensor(w)?;
        Ok(Self { inner: Arc::new(inner), out_features, in_features })
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// x: (..., in) f32 → (..., out) f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
    }
}
