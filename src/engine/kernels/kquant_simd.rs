//! Q4_K and Q6_K matmuls in llama.cpp's exact float order, vectorised across
//! output ROWS: 16 rows per AVX-512 register (8 per AVX2 register), tiled over
//! tokens.
//!
//! Why: `kquant_exact` computes one (token, row) at a time with scalar float
//! parts, ~9× the prompt CPU of the fast (re-packed, other-order) kernels on
//! qwen2.5-0.5b, which kept llama.cpp's floats opt-in. Here every SIMD lane
//! holds one row and performs exactly the scalar sequence of f32 operations
//! of `kquant_exact` for its (row, token) — the integer parts are exact in any
//! order — so results are bit-identical to it (tests below), at SIMD speed.
//! Same idea as llama.cpp's own `q4_K_8x8` repack.
//!
//! Layout ([`KRows`]), per group of 16 rows and 256-value block `b`:
//! - Q4_K: `qs` 8 chunks × 4 sub-block pairs × 16 rows × 4 bytes (2048 B): byte
//!   `p` of row `i` in chunk `c` of pair `sb` holds value `64sb + 4c + p` in its
//!   low nibble and `64sb + 32 + 4c + p` in its high nibble (GGML's own byte,
//!   moved); `sc`/`mn` the 8 six-bit scales/mins `[j][row]`; `d`/`dmin` as f32.
//! - Q6_K: `qs` 64 chunks × 16 rows × 4 unsigned 6-bit values (4096 B), chunk
//!   `c` = values `4c..4c+4`; `sc` the 16 signed sub-scales `[s][row]`; `d` f32.
//!
//! An AVX2 register takes rows 0..8 or 8..16 of a group: the same bytes, half
//! the width. Rows past the last full group stay on `kquant_exact`'s per-row code.
//!
//! Integer parts: AVX-512 uses `vpdpbusd` (Q4_K nibble · q8, 4 products per
//! lane) and `vpdpwssd` (Q6_K `maddubs` pairs · sub-scale); AVX2 uses
//! `maddubs` + `madd`. Neither saturates for these ranges (checked in comments).

#![allow(clippy::needless_range_loop)]

use super::kquant_exact::{q6k_unpack, scale_min_k4, KKind, Q8K, QK_K};
use half::f16;

/// Rows per group.
pub const GROUP: usize = 16;
const Q4K_QS: usize = 2048;
const Q6K_QS: usize = 4096;

/// The full 16-row groups of a K-quant matrix in the SIMD layout above.
#[derive(Debug, Clone, Default)]
pub struct KRows {
    pub groups: usize,
    pub nb: usize,
    qs: Vec<u8>,
    sc: Vec<u8>,
    mn: Vec<u8>,
    d: Vec<f32>,
    dmin: Vec<f32>,
}

impl KRows {
    /// Repacks the first `groups · 16` rows of GGML block data (`nb` blocks a row).
    pub fn pack(kind: KKind, data: &[u8], nb: usize, groups: usize) -> Self {
        let bb = kind.block_bytes();
        let n = groups * nb;
        let mut p = KRows { groups, nb, ..Default::default() };
        p.d = vec![0.0; n * GROUP];
        match kind {
            KKind::Q4K => {
                p.qs = vec![0; n * Q4K_QS];
                p.sc = vec![0; n * 8 * GROUP];
                p.mn = vec![0; n * 8 * GROUP];
                p.dmin = vec![0.0; n * GROUP];
            }
            KKind::Q6K => {
                p.qs = vec![0; n * Q6K_QS];
                p.sc = vec![0; n * 16 * GROUP];
            }
        }
        for g in 0..groups {
            for b in 0..nb {
                let gb = g * nb + b;
                for i in 0..GROUP {
                    let r = g * GROUP + i;
                    let w = &data[(r * nb + b) * bb..][..bb];
                    match kind {
                        KKind::Q4K => {
                            p.d[gb * GROUP + i] = f16::from_le_bytes([w[0], w[1]]).to_f32();
                            p.dmin[gb * GROUP + i] = f16::from_le_bytes([w[2], w[3]]).to_f32();
                            for j in 0..8 {
                                let (s, m) = scale_min_k4(j, &w[4..16]);
                                p.sc[(gb * 8 + j) * GROUP + i] = s as u8;
                                p.mn[(gb * 8 + j) * GROUP + i] = m as u8;
                            }
                            let qs = &w[16..144];
                            for sb in 0..4 {
                                for c in 0..8 {
                                    let o = gb * Q4K_QS + ((sb * 8 + c) * GROUP + i) * 4;
                                    p.qs[o..o + 4].copy_from_slice(&qs[32 * sb + 4 * c..][..4]);
                                }
                            }
                        }
                        KKind::Q6K => {
                            p.d[gb * GROUP + i] = f16::from_le_bytes([w[208], w[209]]).to_f32();
                            for s in 0..16 {
                                p.sc[(gb * 16 + s) * GROUP + i] = w[192 + s];
                            }
                            let u = q6k_unpack(w);
                            for c in 0..64 {
                                let o = gb * Q6K_QS + (c * GROUP + i) * 4;
                                p.qs[o..o + 4].copy_from_slice(&u[4 * c..4 * c + 4]);
                            }
                        }
                    }
                }
            }
        }
        p
    }

    pub fn bytes(&self) -> usize {
        self.qs.len() + self.sc.len() + self.mn.len() + 4 * (self.d.len() + self.dmin.len())
    }
}

/// Which SIMD kernels run the groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    Avx2,
    Avx512,
}

/// Computes `out[t·ldo + g·16 + i]` for every token `t < a.m`, row `i` of
/// groups `g0..g1`, in llama.cpp's order for a call of `a.m` tokens.
///
/// # Safety
/// The CPU has the features of `simd` (`avx2::available` /
/// `avx512::available`); `out` holds `a.m · ldo` floats, `ldo ≥ 16·g1`; no
/// other thread writes these rows.
#[allow(clippy::too_many_arguments)]
pub unsafe fn run_groups(kind: KKind, w: &KRows, a: &Q8K, g0: usize, g1: usize, simd: Simd, out: *mut f32, ldo: usize) {
    let m = a.m;
    macro_rules! call {
        ($f:ident [$($g:tt),*] ($($arg:expr),*)) => {
            match simd {
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => x512::$f::<$($g),*>($($arg),*),
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => {
                    x256::$f::<$($g),*>($($arg),*, 0);
                    x256::$f::<$($g),*>($($arg),*, 1);
                }
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!("no SIMD kernels on this architecture"),
            }
        };
    }
    for g in g0..g1 {
        match kind {
            KKind::Q4K => {
                // llama.cpp's repacked gemm for the first m − m%4 tokens, gemv for the rest.
                let g4 = m - m % 4;
                let mut t = 0;
                while t < g4 {
                    call!(q4k [4, true] (w, g, a, t, out, ldo));
                    t += 4;
                }
                // The gemv tokens (at most 3) share one pass over the weights.
                match m - t {
                    0 => {}
                    1 => call!(q4k [1, false] (w, g, a, t, out, ldo)),
                    2 => call!(q4k [2, false] (w, g, a, t, out, ldo)),
                    _ => call!(q4k [3, false] (w, g, a, t, out, ldo)),
                }
            }
            KKind::Q6K if m >= super::kquant_exact::Q6K_TILED_MIN_TOKENS => {
                let mut t = 0;
                while t < m {
                    match m - t {
                        1 => call!(q6k_tiled [1] (w, g, a, t, out, ldo)),
                        2 => call!(q6k_tiled [2] (w, g, a, t, out, ldo)),
                        3 => call!(q6k_tiled [3] (w, g, a, t, out, ldo)),
                        _ => call!(q6k_tiled [4] (w, g, a, t, out, ldo)),
                    }
                    t += 4.min(m - t);
                }
            }
            KKind::Q6K => {
                // Up to 7 tokens (speculative verification, batched
                // candidates): two per pass over the weights.
                let mut t = 0;
                while t < m {
                    if m - t >= 2 {
                        call!(q6k_vecdot [2] (w, g, a, t, out, ldo));
                        t += 2;
                    } else {
                        call!(q6k_vecdot [1] (w, g, a, t, out, ldo));
                        t += 1;
                    }
                }
            }
        }
    }
}

/// `(b0 as i16) | (b1 << 16)`: two i16 in one i32 lane for `madd`.
#[inline(always)]
fn pair(b0: i32, b1: i32) -> i32 {
    (b0 as i16 as u16 as i32) | (b1 << 16)
}

#[inline(always)]
unsafe fn y4(a: &Q8K, t: usize, off: usize) -> i32 {
    (a.qs.as_ptr().add(t * a.k + off) as *const i32).read_unaligned()
}

/// AVX-512: 16 rows per register.
#[cfg(target_arch = "x86_64")]
mod x512 {
    use super::*;
    use std::arch::x86_64::*;

    /// (sc as i16, sc as i16) per lane from 16 signed bytes.
    #[inline(always)]
    unsafe fn i16_pair(lo: *const u8, hi: *const u8) -> __m512i {
        let a = _mm512_cvtepi8_epi32(_mm_loadu_si128(lo as *const __m128i));
        let b = _mm512_cvtepi8_epi32(_mm_loadu_si128(hi as *const __m128i));
        _mm512_or_si512(_mm512_and_si512(a, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32::<16>(b))
    }

    /// Q4_K, tokens `t0..t0+T`: `PER_SB` = llama.cpp's gemm order (one FMA per
    /// 64 values), else its gemv order (one per 256).
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q4k<const T: usize, const PER_SB: bool>(w: &KRows, g: usize, a: &Q8K, t0: usize, out: *mut f32, ldo: usize) {
        let nb = w.nb;
        let m4 = _mm512_set1_epi8(0x0F);
        let zero = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_ps(); T];
        let mut accm = [_mm512_setzero_ps(); T];
        for b in 0..nb {
            let gb = g * nb + b;
            let qs = w.qs.as_ptr().add(gb * Q4K_QS);
            let sc = w.sc.as_ptr().add(gb * 8 * GROUP);
            let mn = w.mn.as_ptr().add(gb * 8 * GROUP);
            let dcol = _mm512_loadu_ps(w.d.as_ptr().add(gb * GROUP));
            let dmcol = _mm512_loadu_ps(w.dmin.as_ptr().add(gb * GROUP));
            let mut ds = [_mm512_setzero_ps(); T];
            let mut dm = [_mm512_setzero_ps(); T];
            for t in 0..T {
                let drow = _mm512_set1_ps(a.d[(t0 + t) * a.nb + b]);
                ds[t] = _mm512_mul_ps(dcol, drow);
                dm[t] = _mm512_mul_ps(dmcol, drow);
            }
            let mut isum_b = [zero; T];
            let mut imin_b = [zero; T];
            for sb in 0..4 {
                // |dot| ≤ 32·15·127: i32, no saturation in vpdpbusd.
                let mut dlo = [zero; T];
                let mut dhi = [zero; T];
                for c in 0..8 {
                    let wv = _mm512_loadu_si512(qs.add((sb * 8 + c) * 64) as *const __m512i);
                    let lo = _mm512_and_si512(wv, m4);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(wv), m4);
                    for t in 0..T {
                        let off = b * QK_K + 64 * sb + 4 * c;
                        dlo[t] = _mm512_dpbusd_epi32(dlo[t], lo, _mm512_set1_epi32(y4(a, t0 + t, off)));
                        dhi[t] = _mm512_dpbusd_epi32(dhi[t], hi, _mm512_set1_epi32(y4(a, t0 + t, off + 32)));
                    }
                }
                let s0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(sc.add(2 * sb * GROUP) as *const __m128i));
                let s1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(sc.add((2 * sb + 1) * GROUP) as *const __m128i));
                let mp = i16_pair(mn.add(2 * sb * GROUP), mn.add((2 * sb + 1) * GROUP));
                for t in 0..T {
                    let isum = _mm512_add_epi32(_mm512_mullo_epi32(s0, dlo[t]), _mm512_mullo_epi32(s1, dhi[t]));
                    let bs = &a.bsums[((t0 + t) * a.nb + b) * 16..][..16];
                    let b0 = bs[4 * sb] as i32 + bs[4 * sb + 1] as i32;
                    let b1 = bs[4 * sb + 2] as i32 + bs[4 * sb + 3] as i32;
                    let imin = _mm512_madd_epi16(mp, _mm512_set1_epi32(pair(b0, b1)));
                    if PER_SB {
                        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), ds[t], acc[t]);
                        accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), dm[t], accm[t]);
                    } else {
                        isum_b[t] = _mm512_add_epi32(isum_b[t], isum);
                        imin_b[t] = _mm512_add_epi32(imin_b[t], imin);
                    }
                }
            }
            if !PER_SB {
                for t in 0..T {
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum_b[t]), ds[t], acc[t]);
                    accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin_b[t]), dm[t], accm[t]);
                }
            }
        }
        for t in 0..T {
            _mm512_storeu_ps(out.add((t0 + t) * ldo + g * GROUP), _mm512_sub_ps(acc[t], accm[t]));
        }
    }

    /// Q6_K lanes' integer sums `−32·Σ bsum·sc` of the whole block (`L = None`)
    /// or of vec_dot lane `L`: sub-blocks 2L, 2L+1.
    #[inline(always)]
    unsafe fn q6k_corr(sc: *const u8, bs: &[i16], l: usize) -> __m512i {
        let p = i16_pair(sc.add(2 * l * GROUP), sc.add((2 * l + 1) * GROUP));
        _mm512_madd_epi16(p, _mm512_set1_epi32(pair(bs[2 * l] as i32, bs[2 * l + 1] as i32)))
    }

    /// Q6_K in llama.cpp's tiled order (calls of ≥ 8 tokens), tokens `t0..t0+T`.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q6k_tiled<const T: usize>(w: &KRows, g: usize, a: &Q8K, t0: usize, out: *mut f32, ldo: usize) {
        let nb = w.nb;
        let zero = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..nb {
            let gb = g * nb + b;
            let qs = w.qs.as_ptr().add(gb * Q6K_QS);
            let sc = w.sc.as_ptr().add(gb * 16 * GROUP);
            let dw = _mm512_loadu_ps(w.d.as_ptr().add(gb * GROUP));
            let mut s = [zero; T];
            for q in 0..8 {
                let scps = [i16_pair(sc.add(2 * q * GROUP), sc.add(2 * q * GROUP)), i16_pair(sc.add((2 * q + 1) * GROUP), sc.add((2 * q + 1) * GROUP))];
                for l in 0..8 {
                    let (c, scp) = (8 * q + l, scps[l / 4]);
                    let wv = _mm512_loadu_si512(qs.add(c * 64) as *const __m512i);
                    for t in 0..T {
                        // maddubs: 2·63·127 < 2¹⁵, no saturation.
                        let p = _mm512_maddubs_epi16(wv, _mm512_set1_epi32(y4(a, t0 + t, b * QK_K + 4 * c)));
                        s[t] = _mm512_dpwssd_epi32(s[t], p, scp);
                    }
                }
            }
            for t in 0..T {
                let bi = (t0 + t) * a.nb + b;
                let bs = &a.bsums[bi * 16..][..16];
                let mut corr = zero;
                for l in 0..8 {
                    corr = _mm512_add_epi32(corr, q6k_corr(sc, bs, l));
                }
                let s1 = _mm512_sub_epi32(s[t], _mm512_slli_epi32::<5>(corr));
                let f = _mm512_mul_ps(_mm512_cvtepi32_ps(s1), dw);
                acc[t] = _mm512_fmadd_ps(f, _mm512_set1_ps(a.d[bi]), acc[t]);
            }
        }
        for t in 0..T {
            _mm512_storeu_ps(out.add((t0 + t) * ldo + g * GROUP), acc[t]);
        }
    }

    /// Q6_K in `ggml_vec_dot_q6_K_q8_K`'s order (calls of < 8 tokens),
    /// tokens `t0..t0+T` (each token's floats as if alone).
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q6k_vecdot<const T: usize>(w: &KRows, g: usize, a: &Q8K, t0: usize, out: *mut f32, ldo: usize) {
        let nb = w.nb;
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); 8]; T];
        for b in 0..nb {
            let gb = g * nb + b;
            let qs = w.qs.as_ptr().add(gb * Q6K_QS);
            let sc = w.sc.as_ptr().add(gb * 16 * GROUP);
            let mut lane = [[zero; 8]; T];
            for q in 0..8 {
                let scps = [i16_pair(sc.add(2 * q * GROUP), sc.add(2 * q * GROUP)), i16_pair(sc.add((2 * q + 1) * GROUP), sc.add((2 * q + 1) * GROUP))];
                for l in 0..8 {
                    // Chunk 8q + l feeds vec_dot lane l (bytes 4l..4l+4 of a 32-value vector).
                    let (c, scp) = (8 * q + l, scps[l / 4]);
                    let wv = _mm512_loadu_si512(qs.add(c * 64) as *const __m512i);
                    for t in 0..T {
                        let p = _mm512_maddubs_epi16(wv, _mm512_set1_epi32(y4(a, t0 + t, b * QK_K + 4 * c)));
                        lane[t][l] = _mm512_dpwssd_epi32(lane[t][l], p, scp);
                    }
                }
            }
            let dw = _mm512_loadu_ps(w.d.as_ptr().add(gb * GROUP));
            for t in 0..T {
                let bi = (t0 + t) * a.nb + b;
                let d = _mm512_mul_ps(_mm512_set1_ps(a.d[bi]), dw);
                let bs = &a.bsums[bi * 16..][..16];
                for l in 0..8 {
                    let li = _mm512_sub_epi32(lane[t][l], _mm512_slli_epi32::<5>(q6k_corr(sc, bs, l)));
                    acc[t][l] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(li), acc[t][l]);
                }
            }
        }
        // hsum_float_8 of each row's eight lanes.
        for t in 0..T {
            let acc = &acc[t];
            let r: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(acc[i + 4], acc[i]));
            let v = _mm512_add_ps(_mm512_add_ps(r[0], r[2]), _mm512_add_ps(r[1], r[3]));
            _mm512_storeu_ps(out.add((t0 + t) * ldo + g * GROUP), v);
        }
    }
}

/// AVX2: 8 rows per register; `h` selects rows `8h..8h+8` of the group.
#[cfg(target_arch = "x86_64")]
mod x256 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn i16_pair(lo: *const u8, hi: *const u8) -> __m256i {
        let a = _mm256_cvtepi8_epi32(_mm_loadl_epi64(lo as *const __m128i));
        let b = _mm256_cvtepi8_epi32(_mm_loadl_epi64(hi as *const __m128i));
        _mm256_or_si256(_mm256_and_si256(a, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32::<16>(b))
    }

    #[inline(always)]
    unsafe fn u8_pair(lo: *const u8, hi: *const u8) -> __m256i {
        let a = _mm256_cvtepu8_epi32(_mm_loadl_epi64(lo as *const __m128i));
        let b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(hi as *const __m128i));
        _mm256_or_si256(a, _mm256_slli_epi32::<16>(b))
    }

    /// As `x512::q4k` for rows `8h..8h+8`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4k<const T: usize, const PER_SB: bool>(w: &KRows, g: usize, a: &Q8K, t0: usize, out: *mut f32, ldo: usize, h: usize) {
        let nb = w.nb;
        let m4 = _mm256_set1_epi8(0x0F);
        let zero = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_ps(); T];
        let mut accm = [_mm256_setzero_ps(); T];
        for b in 0..nb {
            let gb = g * nb + b;
            let qs = w.qs.as_ptr().add(gb * Q4K_QS + 32 * h);
            let sc = w.sc.as_ptr().add(gb * 8 * GROUP + 8 * h);
            let mn = w.mn.as_ptr().add(gb * 8 * GROUP + 8 * h);
            let dcol = _mm256_loadu_ps(w.d.as_ptr().add(gb * GROUP + 8 * h));
            let dmcol = _mm256_loadu_ps(w.dmin.as_ptr().add(gb * GROUP + 8 * h));
            let mut ds = [_mm256_setzero_ps(); T];
            let mut dm = [_mm256_setzero_ps(); T];
            for t in 0..T {
                let drow = _mm256_set1_ps(a.d[(t0 + t) * a.nb + b]);
                ds[t] = _mm256_mul_ps(dcol, drow);
                dm[t] = _mm256_mul_ps(dmcol, drow);
            }
            let mut isum_b = [zero; T];
            let mut imin_b = [zero; T];
            for sb in 0..4 {
                // i16 sums of maddubs pairs over 8 chunks: ≤ 8·2·15·127 = 30480 < 2¹⁵.
                let mut dlo = [zero; T];
                let mut dhi = [zero; T];
                for c in 0..8 {
                    let wv = _mm256_loadu_si256(qs.add((sb * 8 + c) * 64) as *const __m256i);
                    let lo = _mm256_and_si256(wv, m4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(wv), m4);
                    for t in 0..T {
                        let off = b * QK_K + 64 * sb + 4 * c;
                        dlo[t] = _mm256_add_epi16(dlo[t], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(y4(a, t0 + t, off))));
                        dhi[t] = _mm256_add_epi16(dhi[t], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(y4(a, t0 + t, off + 32))));
                    }
                }
                let s0 = u8_pair(sc.add(2 * sb * GROUP), sc.add(2 * sb * GROUP));
                let s1 = u8_pair(sc.add((2 * sb + 1) * GROUP), sc.add((2 * sb + 1) * GROUP));
                let mp = u8_pair(mn.add(2 * sb * GROUP), mn.add((2 * sb + 1) * GROUP));
                for t in 0..T {
                    let isum = _mm256_add_epi32(_mm256_madd_epi16(dlo[t], s0), _mm256_madd_epi16(dhi[t], s1));
                    let bs = &a.bsums[((t0 + t) * a.nb + b) * 16..][..16];
                    let b0 = bs[4 * sb] as i32 + bs[4 * sb + 1] as i32;
                    let b1 = bs[4 * sb + 2] as i32 + bs[4 * sb + 3] as i32;
                    let imin = _mm256_madd_epi16(mp, _mm256_set1_epi32(pair(b0, b1)));
                    if PER_SB {
                        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), ds[t], acc[t]);
                        accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin), dm[t], accm[t]);
                    } else {
                        isum_b[t] = _mm256_add_epi32(isum_b[t], isum);
                        imin_b[t] = _mm256_add_epi32(imin_b[t], imin);
                    }
                }
            }
            if !PER_SB {
                for t in 0..T {
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum_b[t]), ds[t], acc[t]);
                    accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin_b[t]), dm[t], accm[t]);
                }
            }
        }
        for t in 0..T {
            _mm256_storeu_ps(out.add((t0 + t) * ldo + g * GROUP + 8 * h), _mm256_sub_ps(acc[t], accm[t]));
        }
    }

    #[inline(always)]
    unsafe fn q6k_corr(sc: *const u8, bs: &[i16], l: usize) -> __m256i {
        let p = i16_pair(sc.add(2 * l * GROUP), sc.add((2 * l + 1) * GROUP));
        _mm256_madd_epi16(p, _mm256_set1_epi32(pair(bs[2 * l] as i32, bs[2 * l + 1] as i32)))
    }

    /// As `x512::q6k_tiled` for rows `8h..8h+8`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q6k_tiled<const T: usize>(w: &KRows, g: usize, a: &Q8K, t0: usize, out: *mut f32, ldo: usize, h: usize) {
        let nb = w.nb;
        let zero = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..nb {
            let gb = g * nb + b;
            let qs = w.qs.as_ptr().add(gb * Q6K_QS + 32 * h);
            let sc = w.sc.as_ptr().add(gb * 16 * GROUP + 8 * h);
            let dw = _mm256_loadu_ps(w.d.as_ptr().add(gb * GROUP + 8 * h));
            let mut s = [zero; T];
            for q in 0..8 {
                let scps = [i16_pair(sc.add(2 * q * GROUP), sc.add(2 * q * GROUP)), i16_pair(sc.add((2 * q + 1) * GROUP), sc.add((2 * q + 1) * GROUP))];
                for l in 0..8 {
                    let (c, scp) = (8 * q + l, scps[l / 4]);
                    let wv = _mm256_loadu_si256(qs.add(c * 64) as *const __m256i);
                    for t in 0..T {
                        let p = _mm256_maddubs_epi16(wv, _mm256_set1_epi32(y4(a, t0 + t, b * QK_K + 4 * c)));
                        s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(p, scp));
                    }
                }
            }
            for t in 0..T {
                let bi = (t0 + t) * a.nb + b;
                let bs = &a.bsums[bi * 16..][..16];
                let mut corr = zero;
                for l in 0..8 {
                    corr = _mm256_add_epi32(corr, q6k_corr(sc, bs, l));
                }
                let s1 = _mm256_sub_epi32(s[t], _mm256_slli_epi32::<5>(corr));
                let f = _mm256_mul_ps(_mm256_cvtepi32_ps(s1), dw);
                acc[t] = _mm256_fmadd_ps(f, _mm256_set1_ps(a.d[bi]), acc[t]);
            }
        }
        for t in 0..T {
            _mm256_storeu_ps(out.add((t0 + t) * ldo + g * GROUP + 8 * h), acc[t]);
        }
    }

    /// As `x512::q6k_vecdot` for rows `8h..8h+8` (one token per pass).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q6k_vecdot<const T: usize>(w: &KRows, g: usize, a: &Q8K, t0: usize, out: *mut f32, ldo: usize, h: usize) {
        for t in t0..t0 + T {
            q6k_vecdot1(w, g, a, t, out, ldo, h);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q6k_vecdot1(w: &KRows, g: usize, a: &Q8K, t: usize, out: *mut f32, ldo: usize, h: usize) {
        let nb = w.nb;
        let zero = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_ps(); 8];
        for b in 0..nb {
            let gb = g * nb + b;
            let qs = w.qs.as_ptr().add(gb * Q6K_QS + 32 * h);
            let sc = w.sc.as_ptr().add(gb * 16 * GROUP + 8 * h);
            let bi = t * a.nb + b;
            let d = _mm256_mul_ps(_mm256_set1_ps(a.d[bi]), _mm256_loadu_ps(w.d.as_ptr().add(gb * GROUP + 8 * h)));
            let mut lane = [zero; 8];
            for q in 0..8 {
                let scps = [i16_pair(sc.add(2 * q * GROUP), sc.add(2 * q * GROUP)), i16_pair(sc.add((2 * q + 1) * GROUP), sc.add((2 * q + 1) * GROUP))];
                for l in 0..8 {
                    // Chunk 8q + l feeds vec_dot lane l (bytes 4l..4l+4 of a 32-value vector).
                    let (c, scp) = (8 * q + l, scps[l / 4]);
                    let wv = _mm256_loadu_si256(qs.add(c * 64) as *const __m256i);
                    let p = _mm256_maddubs_epi16(wv, _mm256_set1_epi32(y4(a, t, b * QK_K + 4 * c)));
                    lane[l] = _mm256_add_epi32(lane[l], _mm256_madd_epi16(p, scp));
                }
            }
            let bs = &a.bsums[bi * 16..][..16];
            for l in 0..8 {
                let li = _mm256_sub_epi32(lane[l], _mm256_slli_epi32::<5>(q6k_corr(sc, bs, l)));
                acc[l] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(li), acc[l]);
            }
        }
        let r: [__m256; 4] = std::array::from_fn(|i| _mm256_add_ps(acc[i + 4], acc[i]));
        let v = _mm256_add_ps(_mm256_add_ps(r[0], r[2]), _mm256_add_ps(r[1], r[3]));
        _mm256_storeu_ps(out.add(t * ldo + g * GROUP + 8 * h), v);
    }
}

#[cfg(test)]
mod tests {
    use super::super::kquant_exact::tests::rand_bytes;
    use super::super::kquant_exact::KQuantMatrix;
    use super::*;

    /// Random GGML blocks with varied but finite f16 scales.
    fn blocks(kind: KKind, n: usize, seed: u32) -> Vec<u8> {
        let mut d = rand_bytes(n * kind.block_bytes(), seed);
        for (i, blk) in d.chunks_mut(kind.block_bytes()).enumerate() {
            let s = f16::from_f32(0.002 + 0.0013 * (i % 11) as f32).to_le_bytes();
            match kind {
                KKind::Q4K => {
                    blk[0..2].copy_from_slice(&s);
                    blk[2..4].copy_from_slice(&f16::from_f32(0.0007 * (i % 5) as f32).to_le_bytes());
                }
                KKind::Q6K => blk[208..210].copy_from_slice(&s),
            }
        }
        d
    }

    fn available() -> Vec<Simd> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if super::super::avx2::available() {
                v.push(Simd::Avx2);
            }
            if super::super::avx512::available() {
                v.push(Simd::Avx512);
            }
        }
        v
    }

    /// The SIMD kernels give the per-row reference's floats bit for bit, for
    /// every token count 1..=9 (both Q4_K orders, both Q6_K orders), with
    /// full groups and a partial one (rows 40 = 2 groups + 8 per-row rows).
    #[test]
    fn simd_kernels_equal_the_scalar_reference_bit_for_bit() {
        let simds = available();
        assert!(!simds.is_empty() || !cfg!(target_arch = "x86_64") || !is_x86_feature_detected!("avx2"));
        for kind in [KKind::Q4K, KKind::Q6K] {
            for (rows, k) in [(16, 256), (40, 1024), (48, 512)] {
                let data = blocks(kind, rows * k / QK_K, rows as u32 * 7 + k as u32);
                let reference = KQuantMatrix::from_ggml_with(kind, rows, k, &data, None).unwrap();
                for m in 1..=9 {
                    let x: Vec<f32> = rand_bytes(m * k, (m * 31 + rows) as u32).iter().map(|&b| (b as f32 - 127.5) / 37.0).collect();
                    let mut want = vec![0f32; m * rows];
                    reference.matmul(&x, m, &mut want);
                    for &simd in &simds {
                        let w = KQuantMatrix::from_ggml_with(kind, rows, k, &data, Some(simd)).unwrap();
                        let mut got = vec![f32::NAN; m * rows];
                        w.matmul(&x, m, &mut got);
                        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(g.to_bits(), e.to_bits(), "{kind:?} {simd:?} rows {rows} k {k} m {m}: t{} r{}: {g} vs {e}", i / rows, i % rows);
                        }
                    }
                }
            }
        }
    }

    /// Extreme quants (all 15 / all 63, activations at ±127) stay exact: no
    /// i16 saturation in the `maddubs` sums.
    #[test]
    fn extreme_values_do_not_saturate() {
        let (rows, k, m) = (16, 512, 9);
        for kind in [KKind::Q4K, KKind::Q6K] {
            let mut data = blocks(kind, rows * k / QK_K, 3);
            for blk in data.chunks_mut(kind.block_bytes()) {
                match kind {
                    KKind::Q4K => blk[4..144].iter_mut().for_each(|b| *b = 0xFF),
                    KKind::Q6K => {
                        blk[0..192].iter_mut().for_each(|b| *b = 0xFF);
                        blk[192..208].iter_mut().enumerate().for_each(|(i, b)| *b = if i % 2 == 0 { 127 } else { 128 });
                    }
                }
            }
            let x: Vec<f32> = (0..m * k).map(|i| if (i / 4) % 3 == 0 { -1.0 } else { 1.0 }).collect();
            let reference = KQuantMatrix::from_ggml_with(kind, rows, k, &data, None).unwrap();
            let mut want = vec![0f32; m * rows];
            reference.matmul(&x, m, &mut want);
            for simd in available() {
                let w = KQuantMatrix::from_ggml_with(kind, rows, k, &data, Some(simd)).unwrap();
                let mut got = vec![0f32; m * rows];
                w.matmul(&x, m, &mut got);
                assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{kind:?} {simd:?}");
            }
        }
    }
}
