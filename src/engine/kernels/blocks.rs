//! Weight and activation block formats the kernels compute on.
//!
//! Weights are repacked once at load from GGML's array-of-structs blocks into
//! structure-of-arrays per row: the quants of a row contiguous (what the SIMD
//! loop streams), the f16 scales (and Q4_1 minimums) in their own arrays padded
//! to a multiple of 8 blocks so eight can be widened to f32 with one F16C
//! instruction. Sizes stay those of the GGUF file (no bandwidth is added for
//! decoding). Three types are native because the shipped models are made of
//! them — Q4_1 (SmolLM2), Q5_0 (Qwen, Gemma), Q8_0 (embeddings, output heads);
//! every other quantized type (Q4_K, Q6_K, …) is re-quantised to Q8_0 at load
//! through candle's dequantizer, which costs a little precision and memory but
//! keeps one fast path.
//!
//! Activations are quantised per call to 32-element blocks of i8 with an f32
//! scale (stored rounded to f16, as llama.cpp's `block_q8_0`/`block_q8_1` do, so
//! numerics follow llama.cpp) and `s = d·Σq`, which the Q4_1 minimum needs.

use half::f16;
use super::weightbuf::WeightBuf;

/// Elements per block for every native type.
pub const QK: usize = 32;
/// Elements per K-quant super-block.
pub const QK_K: usize = 256;
/// Bytes of a GGML `block_q6_K` (ql 128, qh 64, scales 16, d 2).
pub const Q6K_BYTES: usize = 210;
/// Bytes of a GGML `block_q4_K` (d 2, dmin 2, scales 12, qs 128).
pub const Q4K_BYTES: usize = 144;

/// The weight types the kernels compute on directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `v = d·q + m`, q ∈ 0..16.
    Q4_1,
    /// `v = d·(q − 16)`, q ∈ 0..32 (4 low bits in `qs`, the 5th in `qh`).
    Q5_0,
    /// `v = d·q`, q ∈ −128..128.
    Q8_0,
    /// GGML's Q6_K, regrouped into 32-element blocks: `v = d·sc·(q − 32)`,
    /// q ∈ 0..64 (4 low bits in `qs`, 2 high bits in `h2`), one signed 8-bit
    /// sub-scale `sc` per 16 elements (`sc`), `d` the super-block's f16 scale
    /// (repeated for each of its eight 32-blocks). Same values as the file.
    Q6K,
}

impl Kind {
    /// Bytes of quants per block in `Packed::qs`.
    pub fn qs_bytes(self) -> usize {
        match self {
            Kind::Q4_1 | Kind::Q5_0 | Kind::Q6K => 16,
            Kind::Q8_0 => 32,
        }
    }

    /// Bytes of one GGML block (`ggml_block_elems` elements).
    pub fn ggml_block_bytes(self) -> usize {
        match self {
            Kind::Q4_1 => 20,
            Kind::Q5_0 => 22,
            Kind::Q8_0 => 34,
            Kind::Q6K => Q6K_BYTES,
        }
    }

    /// Elements per GGML block (32, or 256 for the K-quants).
    pub fn ggml_block_elems(self) -> usize {
        match self {
            Kind::Q6K => QK_K,
            _ => QK,
        }
    }
}

/// Rounds a block count up to a multiple of 8 (one F16C conversion).
pub fn pad8(nb: usize) -> usize {
    nb.div_ceil(8) * 8
}

/// Rows per group of the block-major Q4_1 minimums: within a group, block
/// `b` holds the group's rows side by side, so the AVX-512 tile (2, 4, 6 or 8
/// rows, starting at a multiple of its height: each divides 24) loads its
/// rows' minimums of one block with one load, and the loads of consecutive
/// blocks walk forward through one 2 KB run (`nbp · 24` floats). With a stride
/// of a whole matrix height per block (the layout before), a decode step's
/// tile stalled on these loads for a third of its time (`perf annotate`).
pub const MIN_GROUP: usize = 24;

/// Index of row `row`, block `b` in the block-major minimums (see [`MIN_GROUP`]).
#[inline(always)]
pub fn min_index(nbp: usize, row: usize, b: usize) -> usize {
    (row / MIN_GROUP * nbp + b) * MIN_GROUP + row % MIN_GROUP
}

/// A weight matrix `(rows, k)` in the kernels' layout.
#[derive(Debug, Clone)]
pub struct Packed {
    pub kind: Kind,
    pub rows: usize,
    pub k: usize,
    /// Blocks per row (`k / 32`).
    pub nb: usize,
    /// `nb` padded to a multiple of 8: the stride of `d` and `m`.
    pub nbp: usize,
    /// `rows × nb × kind.qs_bytes()`.
    pub qs: WeightBuf<u8>,
    /// Q5_0 high bits, `rows × nb` (empty otherwise).
    pub qh: WeightBuf<u32>,
    /// Scales, `rows × nbp`, zero padded.
    pub d: WeightBuf<f16>,
    /// Q4_1 minimums, `rows × nbp`, zero padded (empty otherwise).
    pub m: WeightBuf<f16>,
    /// Q6K high 2 bits, `rows × nb`: bits 2g..2g+2 of byte l belong to
    /// element 8g + l of the block (empty otherwise).
    pub h2: WeightBuf<u64>,
    /// Q6K sub-scales, `rows × nb × 2` (elements 0..16, 16..32 of a block).
    pub sc: WeightBuf<i16>,
    /// Q4_1 minimums widened to f32 once, on first use: row-major (`rows × nbp`) and
    /// block-major in groups of [`MIN_GROUP`] rows (see [`min_index`]). Each matmul call
    /// used to widen and transpose its rows again (~5% of smollm2's decode). Same values,
    /// so same results.
    mins_f32: std::sync::OnceLock<(WeightBuf<f32>, WeightBuf<f32>)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PackError {
    #[error("weight row length {k} is not a multiple of the block size {QK}")]
    RowLength { k: usize },
    #[error("weight row length {k} is not a multiple of the K-quant super-block size {QK_K}")]
    SuperRowLength { k: usize },
    #[error("weight data holds {got} bytes, a {rows}x{k} {kind:?} matrix needs {want}")]
    Size { kind: Kind, rows: usize, k: usize, got: usize, want: usize },
}

impl Packed {
    fn empty(kind: Kind, rows: usize, k: usize) -> Result<Self, PackError> {
        if k % QK != 0 {
            return Err(PackError::RowLength { k });
        }
        let nb = k / QK;
        let nbp = pad8(nb);
        Ok(Packed {
            kind,
            rows,
            k,
            nb,
            nbp,
            qs: WeightBuf::filled(rows * nb * kind.qs_bytes()),
            qh: WeightBuf::filled(if kind == Kind::Q5_0 { rows * nb } else { 0 }),
            d: WeightBuf::filled(rows * nbp),
            m: WeightBuf::filled(if kind == Kind::Q4_1 { rows * nbp } else { 0 }),
            h2: WeightBuf::filled(if kind == Kind::Q6K { rows * nb } else { 0 }),
            sc: WeightBuf::filled(if kind == Kind::Q6K { rows * nb * 2 } else { 0 }),
            mins_f32: std::sync::OnceLock::new(),
        })
    }

    /// The Q4_1 minimums as f32, row-major and block-major (see `mins_f32`); empty slices for
    /// the other kinds. Call only once `m` is final (the matmuls do).
    pub fn mins_f32(&self) -> (&[f32], &[f32]) {
        let (rm, bm) = self.mins_f32.get_or_init(|| {
            if self.kind != Kind::Q4_1 {
                return (WeightBuf::default(), WeightBuf::default());
            }
            let mut rm = WeightBuf::filled(self.m.len());
            for (o, v) in rm.iter_mut().zip(self.m.iter()) {
                *o = v.to_f32();
            }
            let mut bm = WeightBuf::filled(self.rows.div_ceil(MIN_GROUP) * self.nbp * MIN_GROUP);
            for i in 0..self.rows {
                for b in 0..self.nb {
                    bm[min_index(self.nbp, i, b)] = rm[i * self.nbp + b];
                }
            }
            (rm, bm)
        });
        (rm, bm)
    }

    fn check_k_quant(kind: Kind, rows: usize, k: usize, data: &[u8], block_bytes: usize) -> Result<(), PackError> {
        if k % QK_K != 0 {
            return Err(PackError::SuperRowLength { k });
        }
        let want = rows * (k / QK_K) * block_bytes;
        if data.len() != want {
            return Err(PackError::Size { kind, rows, k, got: data.len(), want });
        }
        Ok(())
    }

    /// Stores 32 unsigned quants (< 16) of block `bi` as Q4_1-style nibbles
    /// (byte j: element j low, element j + 16 high).
    fn put_nibbles(&mut self, bi: usize, u: &[u8]) {
        let q = &mut self.qs[bi * 16..bi * 16 + 16];
        for j in 0..16 {
            q[j] = (u[j] & 15) | ((u[j + 16] & 15) << 4);
        }
    }

    /// GGML Q6_K data of a `(rows, k)` matrix, regrouped losslessly into
    /// [`Kind::Q6K`] 32-blocks (same values, no re-quantisation).
    pub fn from_q6_k(rows: usize, k: usize, data: &[u8]) -> Result<Self, PackError> {
        Self::check_k_quant(Kind::Q6K, rows, k, data, Q6K_BYTES)?;
        let mut p = Self::empty(Kind::Q6K, rows, k)?;
        let nsb = k / QK_K;
        for r in 0..rows {
            for sb in 0..nsb {
                let src = &data[(r * nsb + sb) * Q6K_BYTES..][..Q6K_BYTES];
                let sc = &src[192..208];
                let d = f16::from_le_bytes([src[208], src[209]]);
                let u = super::kquant_exact::q6k_unpack(src);
                for b in 0..QK_K / QK {
                    let blk = sb * (QK_K / QK) + b;
                    let bi = r * p.nb + blk;
                    let ub = &u[b * QK..(b + 1) * QK];
                    p.d[r * p.nbp + blk] = d;
                    p.sc[bi * 2] = sc[2 * b] as i8 as i16;
                    p.sc[bi * 2 + 1] = sc[2 * b + 1] as i8 as i16;
                    p.put_nibbles(bi, ub);
                    let mut h = 0u64;
                    for (j, &v) in ub.iter().enumerate() {
                        h |= ((v >> 4) as u64 & 3) << ((j % 8) * 8 + 2 * (j / 8));
                    }
                    p.h2[bi] = h;
                }
            }
        }
        Ok(p)
    }

    /// GGML Q4_K data of a `(rows, k)` matrix as [`Kind::Q4_1`]: a Q4_K
    /// sub-block of 32 is `d·sc·q − dmin·m`, i.e. a Q4_1 block with scale
    /// `d·sc` and minimum `−dmin·m`. Quants are kept as they are; the two
    /// products are rounded to f16 (relative error ≤ 2⁻¹¹ per sub-block,
    /// against ~0.4% of the block's range for re-quantising to Q8_0), and
    /// the layout is 0.625 bytes per weight instead of Q8_0's 1.06.
    pub fn q4_1_from_q4_k(rows: usize, k: usize, data: &[u8]) -> Result<Self, PackError> {
        Self::check_k_quant(Kind::Q4_1, rows, k, data, Q4K_BYTES)?;
        let mut p = Self::empty(Kind::Q4_1, rows, k)?;
        let nsb = k / QK_K;
        let mut u = [0u8; QK];
        for r in 0..rows {
            for sb in 0..nsb {
                let src = &data[(r * nsb + sb) * Q4K_BYTES..][..Q4K_BYTES];
                let d = f16::from_le_bytes([src[0], src[1]]).to_f32();
                let dmin = f16::from_le_bytes([src[2], src[3]]).to_f32();
                let (scales, qs) = (&src[4..16], &src[16..144]);
                for b in 0..QK_K / QK {
                    let (sc, m) = super::kquant_exact::scale_min_k4(b, scales);
                    // Sub-block b: low nibbles of chunk b/2 when b is even, high when odd.
                    let chunk = &qs[(b / 2) * 32..(b / 2) * 32 + 32];
                    for l in 0..QK {
                        u[l] = if b % 2 == 0 { chunk[l] & 15 } else { chunk[l] >> 4 };
                    }
                    let blk = sb * (QK_K / QK) + b;
                    p.d[r * p.nbp + blk] = f16::from_f32(d * sc as f32);
                    p.m[r * p.nbp + blk] = f16::from_f32(-(dmin * m as f32));
                    p.put_nibbles(r * p.nb + blk, &u);
                }
            }
        }
        Ok(p)
    }

    /// Repacks GGML blocks (`data` as stored in a GGUF file) of a `(rows, k)` matrix.
    pub fn from_ggml(kind: Kind, rows: usize, k: usize, data: &[u8]) -> Result<Self, PackError> {
        if kind == Kind::Q6K {
            return Self::from_q6_k(rows, k, data);
        }
        let mut p = Self::empty(kind, rows, k)?;
        let bb = kind.ggml_block_bytes();
        let want = rows * p.nb * bb;
        if data.len() != want {
            return Err(PackError::Size { kind, rows, k, got: data.len(), want });
        }
        let qsb = kind.qs_bytes();
        for r in 0..rows {
            for b in 0..p.nb {
                let src = &data[(r * p.nb + b) * bb..][..bb];
                let di = r * p.nbp + b;
                let qi = (r * p.nb + b) * qsb;
                p.d[di] = f16::from_le_bytes([src[0], src[1]]);
                match kind {
                    Kind::Q4_1 => {
                        p.m[di] = f16::from_le_bytes([src[2], src[3]]);
                        p.qs[qi..qi + 16].copy_from_slice(&src[4..20]);
                    }
                    Kind::Q5_0 => {
                        p.qh[r * p.nb + b] = u32::from_le_bytes([src[2], src[3], src[4], src[5]]);
                        p.qs[qi..qi + 16].copy_from_slice(&src[6..22]);
                    }
                    Kind::Q8_0 => p.qs[qi..qi + 32].copy_from_slice(&src[2..34]),
                    Kind::Q6K => unreachable!("Q6K is packed by from_q6_k"),
                }
            }
        }
        Ok(p)
    }

    /// Quantises f32 rows (`rows × k`, row-major) to Q8_0 (`d = max|x|/127`,
    /// round to nearest). Used for the types without a native kernel.
    pub fn q8_0_from_f32(rows: usize, k: usize, x: &[f32]) -> Result<Self, PackError> {
        let mut p = Self::empty(Kind::Q8_0, rows, k)?;
        if x.len() != rows * k {
            return Err(PackError::Size { kind: Kind::Q8_0, rows, k, got: x.len() * 4, want: rows * k * 4 });
        }
        for r in 0..rows {
            for b in 0..p.nb {
                let xs = &x[r * k + b * QK..][..QK];
                let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                p.d[r * p.nbp + b] = f16::from_f32(d);
                let q = &mut p.qs[(r * p.nb + b) * QK..][..QK];
                for (qi, &v) in q.iter_mut().zip(xs) {
                    *qi = (v * id).round() as i8 as u8;
                }
            }
        }
        Ok(p)
    }

    /// Bytes held (what a decode step streams).
    pub fn bytes(&self) -> usize {
        self.qs.len() + self.qh.len() * 4 + self.d.len() * 2 + self.m.len() * 2 + self.h2.len() * 8 + self.sc.len() * 2
    }

    /// Element `(r, i)` as f32 (reference path for tests).
    pub fn get(&self, r: usize, i: usize) -> f32 {
        let (b, j) = (i / QK, i % QK);
        let d = self.d[r * self.nbp + b].to_f32();
        let qsb = self.kind.qs_bytes();
        let qs = &self.qs[(r * self.nb + b) * qsb..][..qsb];
        match self.kind {
            Kind::Q4_1 => {
                let q = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                d * q as f32 + self.m[r * self.nbp + b].to_f32()
            }
            Kind::Q5_0 => {
                let lo = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                let hi = ((self.qh[r * self.nb + b] >> j) & 1) as u8;
                d * ((lo | (hi << 4)) as i32 - 16) as f32
            }
            Kind::Q8_0 => d * (qs[j] as i8) as f32,
            Kind::Q6K => {
                let bi = r * self.nb + b;
                let lo = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                let hi = ((self.h2[bi] >> ((j % 8) * 8 + 2 * (j / 8))) & 3) as u8;
                let sc = self.sc[bi * 2 + j / 16] as f32;
                d * sc * ((lo | (hi << 4)) as i32 - 32) as f32
            }
        }
    }
}

/// Activations `(m, k)` quantised to 32-element i8 blocks.
#[derive(Debug, Clone, Default)]
pub struct Acts {
    pub m: usize,
    pub k: usize,
    pub nb: usize,
    pub nbp: usize,
    /// `m × k` quants.
    pub qs: Vec<i8>,
    /// Scales `m × nbp` (f16-rounded values, zero padded).
    pub d: Vec<f32>,
    /// `d · Σq` per block rounded to f16 (llama.cpp's `block_q8_1.s`, for
    /// Q4_1), `m × nbp`, zero padded.
    pub s: Vec<f32>,
    /// Per block, `16 · Σq` over each of the 8 lanes of 4 consecutive quants
    /// (`m × nb × 8`): subtracting it from the Q5_0 lane sums gives exactly the
    /// lane sums of llama.cpp's signed `(q − 16)·y` kernel. Filled by the SIMD
    /// quantiser only.
    pub y16: Vec<i32>,
}

impl Acts {
    pub fn new(m: usize, k: usize) -> Self {
        let nb = k / QK;
        let nbp = pad8(nb);
        Acts { m, k, nb, nbp, qs: vec![0; m * k], d: vec![0.0; m * nbp], s: vec![0.0; m * nbp], y16: vec![0; m * nb * 8] }
    }
}

/// Scalar quantisation of one row (`x.len() == k`) into row `t` of `a`.
/// Rounding is half-to-even, as `_mm256_round_ps` does, so the SIMD path
/// produces the same quants.
pub fn quantize_row_scalar(x: &[f32], a: &mut Acts, t: usize) {
    let (k, nbp) = (a.k, a.nbp);
    let (qs, d, s) = (&mut a.qs[t * k..(t + 1) * k], &mut a.d[t * nbp..], &mut a.s[t * nbp..]);
    for b in 0..k / QK {
        let xs = &x[b * QK..(b + 1) * QK];
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let dd = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in qs[b * QK..(b + 1) * QK].iter_mut().zip(xs) {
            let r = (v * id).round_ties_even() as i32;
            *q = r as i8;
            sum += r;
        }
        d[b] = f16::from_f32(dd).to_f32();
        s[b] = f16::from_f32(dd * sum as f32).to_f32();
    }
}
