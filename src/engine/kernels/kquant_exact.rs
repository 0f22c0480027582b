//! Q4_K and Q6_K matmuls that give llama.cpp's floats, not just close ones.
//!
//! Why: greedy parity (issue 2) needs the K-quant layers of qwen2.5-0.5b and
//! gemma3-270m (their `ffn_down`, gemma's `attn_output`) to round exactly as
//! the llama.cpp build that made the reference did; re-quantising them to Q8_0
//! at load moved logits enough to change greedy tokens. The integer parts are
//! exact however they are computed, so only the float order is copied
//! (NOTES-kquant.md has the derivation from ggml's sources):
//! - activations → Q8_K (`quantize_row_q8_K_ref`: d = 1/(−127/max), f32);
//! - Q4_K runs as llama.cpp's repacked `q4_K_8x8_q8_K` on x86: the first
//!   `m − m%4` tokens of a call through its gemm (one FMA per 64 values),
//!   the rest through its gemv (one FMA per 256 values), min term separate;
//! - Q6_K runs as `ggml_vec_dot_q6_K_q8_K` (AVX2 code, also used by AVX-512
//!   builds): eight int32 lanes per block, one FMA per lane, `hsum_float_8` —
//!   but calls of 8 or more tokens go through llama.cpp's tiled K-quant matmul
//!   (one `fma(f32(s1)·d_w, d_y, acc)` per block).
//!
//! The integer dot products use AVX2 when present and a scalar loop
//! otherwise; both give the same integers, hence the same floats.

use super::kquant_simd::{self, KRows, Simd, GROUP};
use super::pool;
use half::f16;

/// Values per K-quant super-block.
pub const QK_K: usize = 256;

/// Which K-quant layout a [`KQuantMatrix`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KKind {
    Q4K,
    Q6K,
}

impl KKind {
    /// Bytes of one GGML block.
    pub fn block_bytes(self) -> usize {
        match self {
            KKind::Q4K => 144,
            KKind::Q6K => 210,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KQuantError {
    #[error("K-quant row length {k} is not a multiple of {QK_K}")]
    RowLength { k: usize },
    #[error("{kind:?} weight data holds {got} bytes, a {rows}x{k} matrix needs {want}")]
    Size { kind: KKind, rows: usize, k: usize, got: usize, want: usize },
}

/// A `(rows, k)` weight: its full 16-row groups repacked for
/// `kquant_simd` (when the CPU has AVX2), the remaining rows in GGML's own
/// block bytes for the per-row code here.
#[derive(Debug, Clone)]
pub struct KQuantMatrix {
    pub kind: KKind,
    pub rows: usize,
    pub k: usize,
    nb: usize,
    simd: Option<(Simd, KRows)>,
    /// First row kept in `data` (rows before it are in `simd`).
    tail: usize,
    data: Vec<u8>,
}

/// The SIMD kernels this CPU runs (`None`: scalar, or `BRANDVOICE_KERNELS=scalar`).
pub fn default_simd() -> Option<Simd> {
    match super::isa() {
        super::Isa::Avx512 => Some(Simd::Avx512),
        super::Isa::Avx2 => Some(Simd::Avx2),
        super::Isa::Scalar => None,
    }
}

/// Activations quantised to Q8_K, `m` rows.
#[derive(Debug, Clone)]
pub struct Q8K {
    pub m: usize,
    pub k: usize,
    pub(super) nb: usize,
    pub(super) qs: Vec<i8>,
    pub(super) d: Vec<f32>,
    pub(super) bsums: Vec<i16>,
}

/// llama.cpp's `nearest_int` (round half to even through the 1.5·2²³ trick).
#[inline]
fn nearest_int(v: f32) -> i32 {
    let t = v + 12_582_912.0;
    (t.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

impl Q8K {
    /// `quantize_row_q8_K_ref` for each of the `m` rows of `x` (`m × k`).
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        assert_eq!(x.len(), m * k, "activation size");
        assert_eq!(k % QK_K, 0, "row length");
        let nb = k / QK_K;
        let mut a = Q8K { m, k, nb, qs: vec![0; m * k], d: vec![0.0; m * nb], bsums: vec![0; m * nb * 16] };
        let n = m * nb;
        let simd = cfg!(target_arch = "x86_64") && super::isa() != super::Isa::Scalar;
        let pool = pool::global();
        let per = if n >= 64 && pool.threads() > 1 { n.div_ceil(pool.threads() * 2) } else { n };
        let (qp, dp, bp) = (SendPtr(a.qs.as_mut_ptr()), SendPtr(a.d.as_mut_ptr()), SendPtr(a.bsums.as_mut_ptr()));
        let task = |ti: usize| {
            let (qp, dp, bp) = (qp, dp, bp);
            for bi in ti * per..((ti + 1) * per).min(n) {
                let xs = &x[bi * QK_K..(bi + 1) * QK_K];
                // SAFETY: block `bi` belongs to this task only; the three
                // buffers hold `n` blocks.
                let (qs, d, bsums) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(qp.0.add(bi * QK_K), QK_K),
                        &mut *dp.0.add(bi),
                        std::slice::from_raw_parts_mut(bp.0.add(bi * 16), 16),
                    )
                };
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: `isa()` is not Scalar, so AVX2/FMA/F16C are present.
                    *d = unsafe { avx2::quantize_block(xs, qs) };
                } else {
                    *d = quantize_block_scalar(xs, qs);
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = simd;
                    *d = quantize_block_scalar(xs, qs);
                }
                for j in 0..16 {
                    bsums[j] = qs[j * 16..(j + 1) * 16].iter().map(|&q| q as i16).sum();
                }
            }
        };
        if per == n {
            task(0);
        } else {
            pool.run(n.div_ceil(per), &task);
        }
        a
    }
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// `quantize_row_q8_K_ref` for one block of 256: fills `qs`, returns `d`
/// (quants stay 0 and `d` 0 for an all-zero block).
fn quantize_block_scalar(xs: &[f32], qs: &mut [i8]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in xs {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (q, &v) in qs.iter_mut().zip(xs) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    1.0 / iscale
}

/// Q4_K's 6-bit scale and min of sub-block `j` (`get_scale_min_k4`); also
/// used by `blocks::Packed::q4_1_from_q4_k`.
#[inline]
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (i32, i32) {
    if j < 4 {
        ((q[j] & 63) as i32, (q[j + 4] & 63) as i32)
    } else {
        (((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)) as i32, ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32)
    }
}

/// Q4_K block: the four `isum(sb)` (scaled integer dot of the 64 values of
/// sub-blocks 2sb, 2sb+1) and `imin(sb)` (their mins times the Q8_K sums).
#[inline]
fn q4k_block_ints(w: &[u8], y: &[i8], bsums: &[i16]) -> ([i32; 4], [i32; 4]) {
    let scales = &w[4..16];
    let qs = &w[16..144];
    let mut isum = [0i32; 4];
    let mut imin = [0i32; 4];
    let dots = q4k_sub_dots(qs, y);
    for sb in 0..4 {
        let (s0, m0) = scale_min_k4(2 * sb, scales);
        let (s1, m1) = scale_min_k4(2 * sb + 1, scales);
        isum[sb] = s0 * dots[2 * sb] + s1 * dots[2 * sb + 1];
        let b0 = bsums[4 * sb] as i32 + bsums[4 * sb + 1] as i32;
        let b1 = bsums[4 * sb + 2] as i32 + bsums[4 * sb + 3] as i32;
        imin[sb] = m0 * b0 + m1 * b1;
    }
    (isum, imin)
}

/// `Σ q4·q8` for each of the 8 sub-blocks of 32 (q4 unsigned 0..15).
#[inline]
fn q4k_sub_dots(qs: &[u8], y: &[i8]) -> [i32; 8] {
    #[cfg(target_arch = "x86_64")]
    if super::isa() == super::Isa::Avx2 {
        // SAFETY: Avx2 is only chosen when the CPU has AVX2/FMA/F16C; slices are a full block.
        return unsafe { avx2::q4k_sub_dots(qs, y) };
    }
    q4k_sub_dots_scalar(qs, y)
}

fn q4k_sub_dots_scalar(qs: &[u8], y: &[i8]) -> [i32; 8] {
    let mut out = [0i32; 8];
    for j in 0..4 {
        let (mut lo, mut hi) = (0i32, 0i32);
        for i in 0..32 {
            let b = qs[32 * j + i];
            lo += (b & 0xF) as i32 * y[64 * j + i] as i32;
            hi += (b >> 4) as i32 * y[64 * j + 32 + i] as i32;
        }
        out[2 * j] = lo;
        out[2 * j + 1] = hi;
    }
    out
}

/// One Q4_K row · one Q8_K row in llama.cpp's repacked gemm (`per_sb`) or
/// gemv order.
fn q4k_dot(w: &[u8], a: &Q8K, t: usize, per_sb: bool) -> f32 {
    let (mut acc, mut accm) = (0f32, 0f32);
    for b in 0..a.nb {
        let wb = &w[b * 144..(b + 1) * 144];
        let dcol = f16::from_le_bytes([wb[0], wb[1]]).to_f32();
        let dmcol = f16::from_le_bytes([wb[2], wb[3]]).to_f32();
        let bi = t * a.nb + b;
        let drow = a.d[bi];
        let y = &a.qs[bi * QK_K..(bi + 1) * QK_K];
        let (isum, imin) = q4k_block_ints(wb, y, &a.bsums[bi * 16..(bi + 1) * 16]);
        let (ds, dm) = (dcol * drow, dmcol * drow);
        if per_sb {
            for sb in 0..4 {
                acc = (isum[sb] as f32).mul_add(ds, acc);
                accm = (imin[sb] as f32).mul_add(dm, accm);
            }
        } else {
            acc = (isum.iter().sum::<i32>() as f32).mul_add(ds, acc);
            accm = (imin.iter().sum::<i32>() as f32).mul_add(dm, accm);
        }
    }
    acc - accm
}

/// A Q6_K block's 256 unsigned 6-bit quants (0..63) in value order
/// (ggml's `dequantize_row_q6_K` without the −32 and the scales). The one
/// ql/qh unpacking of the crate: `blocks::Packed::from_q6_k`, the scalar lanes
/// below and `kquant_simd`'s repack all read it.
pub(super) fn q6k_unpack(w: &[u8]) -> [u8; QK_K] {
    let (ql, qh) = (&w[..128], &w[128..192]);
    let mut u = [0u8; QK_K];
    for half in 0..2 {
        let (ql, qh, o) = (&ql[half * 64..], &qh[half * 32..], half * 128);
        for l in 0..32 {
            u[o + l] = (ql[l] & 15) | ((qh[l] & 3) << 4);
            u[o + l + 32] = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
            u[o + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            u[o + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    u
}

/// Q6_K block: llama.cpp's eight int32 lanes (lane L = bytes 4L..4L+3 of
/// every 32-value vector, minus 32·Σ bsum·scale of sub-blocks 2L, 2L+1).
#[inline]
fn q6k_block_lanes(w: &[u8], y: &[i8], bsums: &[i16]) -> [i32; 8] {
    #[cfg(target_arch = "x86_64")]
    if super::isa() == super::Isa::Avx2 {
        // SAFETY: as in `q4k_sub_dots`.
        return unsafe { avx2::q6k_block_lanes(w, y, bsums) };
    }
    q6k_block_lanes_scalar(w, y, bsums)
}

fn q6k_block_lanes_scalar(w: &[u8], y: &[i8], bsums: &[i16]) -> [i32; 8] {
    let sc = &w[192..208];
    let u = q6k_unpack(w);
    let mut lanes = [0i32; 8];
    for j in 0..2 {
        for k in 0..4 {
            for byte in 0..32 {
                let q = u[128 * j + 32 * k + byte] as i32;
                let s = sc[8 * j + 2 * k + byte / 16] as i8 as i32;
                lanes[byte / 4] += s * q * y[128 * j + 32 * k + byte] as i32;
            }
        }
    }
    for (l, lane) in lanes.iter_mut().enumerate() {
        let sub = (bsums[2 * l] as i32) * (sc[2 * l] as i8 as i32) + (bsums[2 * l + 1] as i32) * (sc[2 * l + 1] as i8 as i32);
        *lane -= sub << 5;
    }
    lanes
}

/// Q6_K in llama.cpp's tiled K-quant matmul (`ggml/src/ggml-cpu/tiled`), which
/// takes over from `vec_dot` when a call multiplies 8 or more tokens: per
/// block the whole scaled integer sum `s1`, then `acc = fma(f32(s1)·d_w, d_y, acc)`
/// (GCC contracts its `add(acc, mul(r, d1))` into that FMA — read from the
/// AVX-512 build's machine code).
fn q6k_dot_tiled(w: &[u8], a: &Q8K, t: usize) -> f32 {
    let mut acc = 0f32;
    for b in 0..a.nb {
        let wb = &w[b * 210..(b + 1) * 210];
        let bi = t * a.nb + b;
        let dw = f16::from_le_bytes([wb[208], wb[209]]).to_f32();
        let lanes = q6k_block_lanes(wb, &a.qs[bi * QK_K..(bi + 1) * QK_K], &a.bsums[bi * 16..(bi + 1) * 16]);
        let s1: i32 = lanes.iter().sum();
        acc = (s1 as f32 * dw).mul_add(a.d[bi], acc);
    }
    acc
}

/// Tokens per call from which llama.cpp runs Q6_K through its tiled matmul.
pub const Q6K_TILED_MIN_TOKENS: usize = 8;

fn q6k_dot(w: &[u8], a: &Q8K, t: usize) -> f32 {
    let mut acc = [0f32; 8];
    for b in 0..a.nb {
        let wb = &w[b * 210..(b + 1) * 210];
        let bi = t * a.nb + b;
        let d = a.d[bi] * f16::from_le_bytes([wb[208], wb[209]]).to_f32();
        let lanes = q6k_block_lanes(wb, &a.qs[bi * QK_K..(bi + 1) * QK_K], &a.bsums[bi * 16..(bi + 1) * 16]);
        for (a, &l) in acc.iter_mut().zip(&lanes) {
            *a = d.mul_add(l as f32, *a);
        }
    }
    // hsum_float_8
    let r: [f32; 4] = std::array::from_fn(|i| acc[i + 4] + acc[i]);
    (r[0] + r[2]) + (r[1] + r[3])
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl KQuantMatrix {
    /// Takes GGML blocks (`data` as stored in the GGUF file) of a `(rows, k)`
    /// matrix, repacked for this CPU's SIMD kernels ([`default_simd`]).
    pub fn from_ggml(kind: KKind, rows: usize, k: usize, data: &[u8]) -> Result<Self, KQuantError> {
        Self::from_ggml_with(kind, rows, k, data, default_simd())
    }

    /// [`from_ggml`](Self::from_ggml) with the kernels named (`None`: all rows
    /// on the per-row code — the reference the SIMD kernels are tested against).
    /// The caller makes sure the CPU has `simd`'s features.
    pub fn from_ggml_with(kind: KKind, rows: usize, k: usize, data: &[u8], simd: Option<Simd>) -> Result<Self, KQuantError> {
        if k % QK_K != 0 {
            return Err(KQuantError::RowLength { k });
        }
        let nb = k / QK_K;
        let want = rows * nb * kind.block_bytes();
        if data.len() != want {
            return Err(KQuantError::Size { kind, rows, k, got: data.len(), want });
        }
        let groups = if simd.is_some() { rows / GROUP } else { 0 };
        let tail = groups * GROUP;
        let rb = nb * kind.block_bytes();
        let simd = simd.filter(|_| groups > 0).map(|s| (s, KRows::pack(kind, data, nb, groups)));
        Ok(Self { kind, rows, k, nb, simd, tail, data: data[tail * rb..].to_vec() })
    }

    pub fn bytes(&self) -> usize {
        self.data.len() + self.simd.as_ref().map_or(0, |(_, p)| p.bytes())
    }

    /// GGML bytes of row `r` (only rows from `self.tail` on are kept).
    fn row(&self, r: usize) -> &[u8] {
        let rb = self.nb * self.kind.block_bytes();
        let r = r.checked_sub(self.tail).expect("row is in the SIMD groups");
        &self.data[r * rb..(r + 1) * rb]
    }

    /// `W[r] · A[t]` as llama.cpp computes it when `t` is one of `m` tokens
    /// multiplied in one call, by the per-row code (row `r` must not be in a
    /// SIMD group: build the matrix with `from_ggml_with(.., None)`).
    pub fn dot(&self, r: usize, a: &Q8K, t: usize) -> f32 {
        match self.kind {
            KKind::Q4K => q4k_dot(self.row(r), a, t, t < a.m - a.m % 4),
            KKind::Q6K if a.m >= Q6K_TILED_MIN_TOKENS => q6k_dot_tiled(self.row(r), a, t),
            KKind::Q6K => q6k_dot(self.row(r), a, t),
        }
    }

    /// `out (m × rows) = x (m × k) · Wᵀ` on the global pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(out.len(), m * self.rows, "output size");
        if m == 0 {
            return;
        }
        let a = Q8K::quantize(x, m, self.k);
        let pool = pool::global();
        let p = OutPtr(out.as_mut_ptr());
        let rows = self.rows;
        // Tasks: runs of 16-row groups, then runs of the remaining rows.
        let groups = self.simd.as_ref().map_or(0, |(_, w)| w.groups);
        let gper = groups.div_ceil(pool.threads() * 4).max(1);
        let gtasks = groups.div_ceil(gper);
        let per = (rows - self.tail).div_ceil(pool.threads() * 8).max(8);
        let tasks = gtasks + (rows - self.tail).div_ceil(per);
        pool.run(tasks, &|ti: usize| {
            let p = p;
            if ti < gtasks {
                let (simd, w) = self.simd.as_ref().expect("groups exist");
                let (g0, g1) = (ti * gper, ((ti + 1) * gper).min(groups));
                // SAFETY: `simd` was chosen for this CPU (`default_simd` or the
                // caller of `from_ggml_with`); each group belongs to one task;
                // `out` is m × rows.
                unsafe { kquant_simd::run_groups(self.kind, w, &a, g0, g1, *simd, p.0, rows) };
                return;
            }
            let ti = ti - gtasks;
            for r in self.tail + ti * per..(self.tail + (ti + 1) * per).min(rows) {
                for t in 0..m {
                    // SAFETY: each row belongs to one task; (t, r) is inside `out`.
                    unsafe { *p.0.add(t * rows + r) = self.dot(r, &a, t) };
                }
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `quantize_block_scalar` with 8 lanes: the same floats (`iscale·x`
    /// rounded, then the 1.5·2²³ trick, as two separate operations), the
    /// same choice of `max` (the first element whose |x| is the maximum).
    ///
    /// # Safety
    /// AVX2 present; `xs` and `qs` hold 256 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_block(xs: &[f32], qs: &mut [i8]) -> f32 {
        let absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut mx = _mm256_setzero_ps();
        for i in 0..32 {
            mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(xs.as_ptr().add(8 * i)), absm));
        }
        let h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps::<1>(mx));
        let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_max_ss(h, _mm_movehdup_ps(h));
        let amax = _mm_cvtss_f32(h);
        if amax == 0.0 {
            qs[..256].iter_mut().for_each(|q| *q = 0);
            return 0.0;
        }
        let av = _mm256_set1_ps(amax);
        let mut max = 0f32;
        for i in 0..32 {
            let v = _mm256_and_ps(_mm256_loadu_ps(xs.as_ptr().add(8 * i)), absm);
            let bits = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, av));
            if bits != 0 {
                max = xs[8 * i + bits.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let iv = _mm256_set1_ps(iscale);
        let magic = _mm256_set1_ps(12_582_912.0);
        let (mant, off, top) = (_mm256_set1_epi32(0x007f_ffff), _mm256_set1_epi32(0x0040_0000), _mm256_set1_epi32(127));
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for c in 0..8 {
            let q: [__m256i; 4] = std::array::from_fn(|j| {
                let v = _mm256_mul_ps(iv, _mm256_loadu_ps(xs.as_ptr().add(32 * c + 8 * j)));
                let t = _mm256_castps_si256(_mm256_add_ps(v, magic));
                _mm256_min_epi32(_mm256_sub_epi32(_mm256_and_si256(t, mant), off), top)
            });
            let p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            _mm256_storeu_si256(qs.as_mut_ptr().add(32 * c) as *mut __m256i, _mm256_permutevar8x32_epi32(p, perm));
        }
        1.0 / iscale
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// # Safety
    /// AVX2 present; `qs` ≥ 128 bytes, `y` ≥ 256 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4k_sub_dots(qs: &[u8], y: &[i8]) -> [i32; 8] {
        let m4 = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut out = [0i32; 8];
        for j in 0..4 {
            let q = _mm256_loadu_si256(qs.as_ptr().add(32 * j) as *const __m256i);
            let lo = _mm256_and_si256(q, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
            let ylo = _mm256_loadu_si256(y.as_ptr().add(64 * j) as *const __m256i);
            let yhi = _mm256_loadu_si256(y.as_ptr().add(64 * j + 32) as *const __m256i);
            out[2 * j] = hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), ones));
            out[2 * j + 1] = hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), ones));
        }
        out
    }

    /// `ggml_vec_dot_q6_K_q8_K`'s integer lanes for one block (its AVX2 code).
    ///
    /// # Safety
    /// AVX2 present; `w` one 210-byte block, `y` 256 values, `bsums` 16.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q6k_block_lanes(w: &[u8], y: &[i8], bsums: &[i16]) -> [i32; 8] {
        const SHUF: [u8; 128] = {
            let mut t = [0u8; 128];
            let mut i = 0;
            while i < 128 {
                t[i] = (i / 8) as u8;
                i += 1;
            }
            t
        };
        let m3 = _mm256_set1_epi8(3);
        let m15 = _mm256_set1_epi8(15);
        let mut q4 = w.as_ptr();
        let mut qh = w.as_ptr().add(128);
        let mut q8 = y.as_ptr();
        let q8sums = _mm256_loadu_si256(bsums.as_ptr() as *const __m256i);
        let scales = _mm_loadu_si128(w.as_ptr().add(192) as *const __m128i);
        let scales_16 = _mm256_cvtepi8_epi16(scales);
        let q8sclsub = _mm256_slli_epi32::<5>(_mm256_madd_epi16(q8sums, scales_16));
        let mut sumi = _mm256_setzero_si256();
        let mut is = 0;
        for _ in 0..2 {
            let b1 = _mm256_loadu_si256(q4 as *const __m256i);
            let b2 = _mm256_loadu_si256(q4.add(32) as *const __m256i);
            let bh = _mm256_loadu_si256(qh as *const __m256i);
            q4 = q4.add(64);
            qh = qh.add(32);
            let h0 = _mm256_slli_epi16::<4>(_mm256_and_si256(bh, m3));
            let h1 = _mm256_slli_epi16::<2>(_mm256_and_si256(bh, _mm256_set1_epi8(12)));
            let h2 = _mm256_and_si256(bh, _mm256_set1_epi8(48));
            let h3 = _mm256_srli_epi16::<2>(_mm256_and_si256(bh, _mm256_set1_epi8(-64)));
            let q0 = _mm256_or_si256(_mm256_and_si256(b1, m15), h0);
            let q1 = _mm256_or_si256(_mm256_and_si256(b2, m15), h1);
            let q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b1), m15), h2);
            let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b2), m15), h3);
            let mut p = [q0, q1, q2, q3];
            for (k, p) in p.iter_mut().enumerate() {
                let y8 = _mm256_loadu_si256(q8.add(32 * k) as *const __m256i);
                let s = _mm_shuffle_epi8(scales, _mm_loadu_si128(SHUF.as_ptr().add(16 * (is + k)) as *const __m128i));
                *p = _mm256_madd_epi16(_mm256_cvtepi8_epi16(s), _mm256_maddubs_epi16(*p, y8));
            }
            q8 = q8.add(128);
            is += 4;
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[0], p[1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[2], p[3]));
        }
        let sumi = _mm256_sub_epi32(sumi, q8sclsub);
        let mut out = [0i32; 8];
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, sumi);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic bytes (an LCG), for the K-quant kernels' tests here and in `kquant_simd`.
    pub(crate) fn rand_bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 24) as u8
            })
            .collect()
    }

    fn rand_f32(n: usize, seed: u32) -> Vec<f32> {
        rand_bytes(n, seed).iter().map(|&b| (b as f32 - 127.5) / 40.0).collect()
    }

    /// Random blocks with sane f16 scales (raw random bytes may be NaN/huge).
    fn blocks(kind: KKind, rows: usize, nb: usize) -> Vec<u8> {
        let mut d = rand_bytes(rows * nb * kind.block_bytes(), 5);
        for blk in d.chunks_mut(kind.block_bytes()) {
            let h = f16::from_f32(0.01).to_le_bytes();
            match kind {
                KKind::Q4K => {
                    blk[0..2].copy_from_slice(&h);
                    blk[2..4].copy_from_slice(&f16::from_f32(0.003).to_le_bytes());
                }
                KKind::Q6K => blk[208..210].copy_from_slice(&h),
            }
        }
        d
    }

    /// Dequantised value of element `i` of a row (reference for the integer parts).
    fn deq(kind: KKind, row: &[u8], i: usize) -> f32 {
        let (b, i) = (i / QK_K, i % QK_K);
        let w = &row[b * kind.block_bytes()..];
        match kind {
            KKind::Q4K => {
                let d = f16::from_le_bytes([w[0], w[1]]).to_f32();
                let dm = f16::from_le_bytes([w[2], w[3]]).to_f32();
                let (sub, j) = (i / 32, i % 32);
                let (sc, m) = scale_min_k4(sub, &w[4..16]);
                let byte = w[16 + 32 * (sub / 2) + j];
                let q = if sub % 2 == 0 { byte & 0xF } else { byte >> 4 };
                d * sc as f32 * q as f32 - dm * m as f32
            }
            KKind::Q6K => {
                let d = f16::from_le_bytes([w[208], w[209]]).to_f32();
                let q = q6k_unpack(w)[i] as i32 - 32;
                d * (w[192 + i / 16] as i8) as f32 * q as f32
            }
        }
    }

    #[test]
    fn q8k_quantisation_follows_the_reference() {
        let x = rand_f32(512, 3);
        let a = Q8K::quantize(&x, 1, 512);
        for b in 0..2 {
            let xs = &x[b * 256..(b + 1) * 256];
            let max = xs.iter().cloned().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
            assert_eq!(a.d[b], 1.0 / (-127.0 / max));
            for i in 0..256 {
                let q = a.qs[b * 256 + i] as f32;
                assert!((q * a.d[b] - xs[i]).abs() <= a.d[b].abs() * 0.5 + 1e-6);
            }
            assert_eq!(a.bsums[b * 16] as i32, a.qs[b * 256..b * 256 + 16].iter().map(|&q| q as i32).sum::<i32>());
        }
        assert_eq!(nearest_int(2.5), 2);
        // The SIMD quantiser gives the same quants and scales (ties of ±amax,
        // exact halves, an all-zero block included).
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
            let mut y = rand_f32(4 * 256, 23);
            y[256 + 7] = -4.0;
            y[256 + 9] = 4.0;
            y[2 * 256 + 3] = 127.0 / 2.0;
            y[3 * 256..].iter_mut().for_each(|v| *v = 0.0);
            for xs in y.chunks(256) {
                let (mut q1, mut q2) = ([0i8; 256], [1i8; 256]);
                let d1 = quantize_block_scalar(xs, &mut q1);
                let d2 = unsafe { avx2::quantize_block(xs, &mut q2) };
                assert_eq!((d1.to_bits(), q1), (d2.to_bits(), q2));
            }
        }
        assert_eq!(nearest_int(-3.5), -4);
    }

    /// Scalar and AVX2 integer parts agree, and the dot product is the
    /// dequantised one up to the 8-bit activation error.
    #[test]
    fn kquant_dots_match_dequantised_weights() {
        let (rows, k, m) = (8, 512, 5);
        let x = rand_f32(m * k, 11);
        for kind in [KKind::Q4K, KKind::Q6K] {
            let w = KQuantMatrix::from_ggml(kind, rows, k, &blocks(kind, rows, k / QK_K)).unwrap();
            let a = Q8K::quantize(&x, m, k);
            let mut out = vec![0f32; m * rows];
            w.matmul(&x, m, &mut out);
            for r in 0..rows {
                let wb = w.row(r);
                for blk in 0..k / QK_K {
                    let wblk = &wb[blk * kind.block_bytes()..(blk + 1) * kind.block_bytes()];
                    let (y, bs) = (&a.qs[blk * QK_K..(blk + 1) * QK_K], &a.bsums[blk * 16..(blk + 1) * 16]);
                    match kind {
                        KKind::Q4K => assert_eq!(q4k_sub_dots(&wblk[16..], y), q4k_sub_dots_scalar(&wblk[16..], y)),
                        KKind::Q6K => assert_eq!(q6k_block_lanes(wblk, y, bs), q6k_block_lanes_scalar(wblk, y, bs)),
                    }
                }
                for t in 0..m {
                    let want: f32 = (0..k).map(|i| deq(kind, wb, i) * x[t * k + i]).sum();
                    let got = out[t * rows + r];
                    let scale: f32 = (0..k).map(|i| (deq(kind, wb, i) * x[t * k + i]).abs()).sum();
                    assert!((got - want).abs() <= 0.02 * scale, "{kind:?} r{r} t{t}: {got} vs {want}");
                }
            }
        }
    }

    /// Tokens in groups of four round per 64 values, the rest per 256 (as
    /// llama.cpp's repacked gemm/gemv): the same row gives (slightly)
    /// different floats depending on its place in the call.
    #[test]
    fn q4k_order_depends_on_the_token_group_like_llama_cpp() {
        let (rows, k) = (8, 1024);
        let w = KQuantMatrix::from_ggml(KKind::Q4K, rows, k, &blocks(KKind::Q4K, rows, k / QK_K)).unwrap();
        let x = rand_f32(5 * k, 17);
        let a = Q8K::quantize(&x, 5, k);
        let row = w.row(0);
        assert_eq!(w.dot(0, &a, 0), q4k_dot(row, &a, 0, true));
        assert_eq!(w.dot(0, &a, 4), q4k_dot(row, &a, 4, false));
        let a1 = Q8K::quantize(&x[..k], 1, k);
        assert_eq!(w.dot(0, &a1, 0), q4k_dot(row, &a1, 0, false));
    }

    /// Q6_K: fewer than 8 tokens per call use vec_dot's lanes, 8 or more the
    /// tiled matmul's per-block sums; both are the same dot product.
    #[test]
    fn q6k_switches_to_the_tiled_order_at_eight_tokens() {
        let (rows, k) = (8, 1024);
        let w = KQuantMatrix::from_ggml(KKind::Q6K, rows, k, &blocks(KKind::Q6K, rows, k / QK_K)).unwrap();
        let x = rand_f32(8 * k, 19);
        let a7 = Q8K::quantize(&x[..7 * k], 7, k);
        let a8 = Q8K::quantize(&x, 8, k);
        let (v, t) = (w.dot(3, &a7, 0), w.dot(3, &a8, 0));
        assert_eq!(v, q6k_dot(w.row(3), &a7, 0));
        assert_eq!(t, q6k_dot_tiled(w.row(3), &a8, 0));
        assert!((v - t).abs() <= 1e-4 * v.abs().max(1.0), "{v} vs {t}");
    }
}
