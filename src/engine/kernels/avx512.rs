//! AVX-512 (F, BW, DQ, VL, VNNI) tile kernel for Q4_1, Q5_0, Q8_0 and Q6K —
//! the same floats as `avx2::tile`, in fewer instructions.
//!
//! Why: prompt processing is bound by the integer dot products. The AVX2
//! tile spends ~7 instructions per (token, row, block); here two rows share
//! one 512-bit register (row `2p` in the low 256 bits, `2p + 1` in the high),
//! `vpdpbusd` does the `maddubs` + `madd` pair in one instruction (and folds
//! in Q5_0's −16 offset as its starting value), and the scale product is
//! one vector multiply — ~2 instructions per (token, row, block).
//!
//! Bit-identical to `avx2::tile` by construction: each 256-bit half holds
//! the same eight i32 lane sums (integer sums are exact, `vpdpbusd` does not
//! saturate), converted and multiplied-added with the same f32 operations
//! (`d_w·d_y` is one f32 multiply in both), reduced by the same `hsum`, and
//! Q4_1's `Σ m·s` term is the same scalar FMA chain. Q8_0 avoids the sign
//! trick: activations are offset to unsigned (`y + 128`) and `128·Σw` is
//! subtracted as the accumulator's starting value (exact in i32). Q6K runs
//! its unsigned quants through `vpdpbusd` starting from `−32·Σy` and then
//! multiplies each lane by its 16-element sub-scale (`vpmulld`): the same
//! lane integers as the AVX2 `maddubs`/`madd`-by-scale path.

#![allow(clippy::needless_range_loop)]

use super::avx2::{self, prefetch_lines, prefetch_lines_l2, KD_Q4_1, KD_Q5_0, KD_Q6K};
use super::blocks::{min_index, Acts, Packed, MIN_GROUP, QK};
use super::KvSpan;
use std::arch::x86_64::*;

/// True when this CPU has what these kernels use.
pub fn available() -> bool {
    avx2::available()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// Rows `r` and `r + 1` of a 16-byte-per-block type, nibbles unpacked:
/// bytes 0..32 row r (element j low nibble of byte j, j + 16 high), 32..64 row r+1.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn nibbles_pair(p0: *const u8, p1: *const u8) -> __m512i {
    let a = _mm256_broadcastsi128_si256(_mm_loadu_si128(p0 as *const __m128i));
    let b = _mm256_broadcastsi128_si256(_mm_loadu_si128(p1 as *const __m128i));
    let z = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
    let z = _mm512_srlv_epi64(z, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(z, _mm512_set1_epi8(0x0F))
}

/// `out[(t0+j)·ldo + r0+i] = W[r0+i] · A[t0+j]` for `j < T`, `i < 2P`, with
/// exactly the floats of `avx2::tile::<KD, T, 2P>`.
///
/// `KD`: `avx2::KD_Q4_1`, `KD_Q5_0`, `KD_Q8_0` or `KD_Q6K`. `cwf` as for
/// `avx2::tile`; for Q4_1 also `cwt`, the matrix's minimums block-major
/// (`Packed::mins_f32`, indexed by `blocks::min_index`), and `st`, the activations'
/// `s` block-major (`st[b·a.m + t]`): with them the `Σ m·s` chains of all
/// (token, row) pairs of the tile advance as the lanes of one vector FMA
/// (same operations per chain as the scalar form).
///
/// # Safety
/// CPU has the features of [`available`]; `r0 + 2P <= w.rows`, `t0 + T <= a.m`,
/// `out` holds `(t0 + T) · ldo` floats and `ldo >= w.rows`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile<const KD: u8, const T: usize, const P: usize>(
    w: &Packed,
    r0: usize,
    a: &Acts,
    t0: usize,
    cwf: &[f32],
    cwt: &[f32],
    st: &[f32],
    out: *mut f32,
    ldo: usize,
) {
    let (nb, nbp, k) = (w.nb, w.nbp, a.k);
    let nr = 2 * P;
    // The tile's rows must sit in one group of the block-major minimums.
    let in_group = r0 % MIN_GROUP + nr <= MIN_GROUP;
    let vec_summs = KD == KD_Q4_1 && T * nr <= 16 && in_group && !cwt.is_empty() && !st.is_empty();
    let (mut li, mut lj) = ([0i32; 16], [0i32; 16]);
    for l in 0..(T * nr).min(16) {
        li[l] = (l % nr) as i32;
        lj[l] = (l / nr) as i32;
    }
    let cw_idx = _mm512_loadu_si512(li.as_ptr() as *const __m512i);
    let sy_idx = _mm512_loadu_si512(lj.as_ptr() as *const __m512i);
    let (cmask, smask) = (((1u32 << nr) - 1) as u16, ((1u32 << T) - 1) as u16);
    let mut sv = _mm512_setzero_ps();
    let qsb = if KD == KD_Q4_1 || KD == KD_Q5_0 || KD == KD_Q6K { 16 } else { 32 };
    let sc_idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); P]; T];
    let wq = w.qs.as_ptr().add(r0 * nb * qsb);
    let yq = a.qs.as_ptr().add(t0 * k) as *const u8;
    let ad = a.d.as_ptr().add(t0 * nbp);
    let wd = w.d.as_ptr().add(r0 * nbp);
    let sy = a.s.as_ptr().add(t0 * nbp);
    let mut summs = [[[0f32; 2]; P]; T];
    // Scales of 8 blocks for a row pair: lanes 0..8 row 2p, 8..16 row 2p+1.
    let mut dv = [_mm512_setzero_ps(); P];
    let half_base = _mm512_set_epi32(8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0);
    // The next tile's quants (a slice per block) and scales into L2, its
    // Q4_1 minimums into L1 (see `kernels::prefetch_tiles`, `prefetch_lines_l2`).
    let pf = super::prefetch_tiles();
    let step = nr * qsb;
    let pf_q = wq.wrapping_add(pf * nb * step);
    // This tile's minimums of block 0, and the next tile's.
    let cwt0 = cwt.as_ptr().wrapping_add(min_index(nbp, r0, 0));
    let pf_m = cwt.as_ptr().wrapping_add(min_index(nbp, r0 + pf * nr, 0));
    if pf > 0 {
        prefetch_lines_l2((wd as *const u8).wrapping_add(pf * nr * nbp * 2), nr * nbp * 2);
    }
    for b in 0..nb {
        if pf > 0 {
            prefetch_lines_l2(pf_q.wrapping_add(b * step), step);
            if vec_summs {
                prefetch_lines(pf_m.wrapping_add(b * MIN_GROUP) as *const u8, nr * 4);
            }
        }
        if b % 8 == 0 {
            for p in 0..P {
                let h0 = _mm_loadu_si128(wd.add(2 * p * nbp + b) as *const __m128i);
                let h1 = _mm_loadu_si128(wd.add((2 * p + 1) * nbp + b) as *const __m128i);
                dv[p] = _mm512_cvtph_ps(_mm256_inserti128_si256::<1>(_mm256_castsi128_si256(h0), h1));
            }
        }
        let idx = _mm512_add_epi32(half_base, _mm512_set1_epi32((b % 8) as i32));
        if vec_summs {
            let c = _mm512_maskz_loadu_ps(cmask, cwt0.add(b * MIN_GROUP));
            let s = _mm512_maskz_loadu_ps(smask, st.as_ptr().add(b * a.m + t0));
            sv = _mm512_fmadd_ps(_mm512_permutexvar_ps(cw_idx, c), _mm512_permutexvar_ps(sy_idx, s), sv);
        }
        let mut wv = [zero; P];
        let mut init = [zero; P];
        let mut scv = [zero; P];
        let mut bw = [_mm512_setzero_ps(); P];
        for p in 0..P {
            let q0 = wq.add((2 * p * nb + b) * qsb);
            let q1 = wq.add(((2 * p + 1) * nb + b) * qsb);
            wv[p] = match KD {
                KD_Q4_1 => nibbles_pair(q0, q1),
                KD_Q5_0 => {
                    let n = nibbles_pair(q0, q1);
                    let h0 = *w.qh.get_unchecked((r0 + 2 * p) * nb + b) as u64;
                    let h1 = *w.qh.get_unchecked((r0 + 2 * p + 1) * nb + b) as u64;
                    _mm512_mask_add_epi8(n, h0 | (h1 << 32), n, _mm512_set1_epi8(0x10))
                }
                KD_Q6K => {
                    let (ra, rb) = ((r0 + 2 * p) * nb + b, (r0 + 2 * p + 1) * nb + b);
                    let h0 = *w.h2.get_unchecked(ra) as i64;
                    let h1 = *w.h2.get_unchecked(rb) as i64;
                    let h = _mm512_set_epi64(h1, h1, h1, h1, h0, h0, h0, h0);
                    let h = _mm512_srlv_epi64(h, _mm512_set_epi64(6, 4, 2, 0, 6, 4, 2, 0));
                    let h = _mm512_slli_epi16(_mm512_and_si512(h, _mm512_set1_epi8(3)), 4);
                    let s0 = (w.sc.as_ptr().add(ra * 2) as *const i32).read_unaligned();
                    let s1 = (w.sc.as_ptr().add(rb * 2) as *const i32).read_unaligned();
                    let s16 = _mm256_castsi128_si256(_mm_set_epi32(0, 0, s1, s0));
                    scv[p] = _mm512_permutexvar_epi32(sc_idx, _mm512_cvtepi16_epi32(s16));
                    _mm512_or_si512(nibbles_pair(q0, q1), h)
                }
                _ => {
                    let lo = _mm256_loadu_si256(q0 as *const __m256i);
                    let hi = _mm256_loadu_si256(q1 as *const __m256i);
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
                }
            };
            if KD != KD_Q4_1 && KD != KD_Q5_0 && KD != KD_Q6K {
                // −128·Σw per lane: the offset the unsigned activations add.
                init[p] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(-128), wv[p]));
            }
            bw[p] = _mm512_permutexvar_ps(idx, dv[p]);
        }
        for j in 0..T {
            let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(yq.add(j * k + b * QK) as *const __m256i));
            let dy = _mm512_set1_ps(*ad.add(j * nbp + b));
            let (y, start) = match KD {
                KD_Q4_1 => (y, zero),
                KD_Q5_0 => {
                    let y16 = _mm256_loadu_si256(a.y16.as_ptr().add(((t0 + j) * nb + b) * 8) as *const __m256i);
                    (y, _mm512_sub_epi32(zero, _mm512_broadcast_i64x4(y16)))
                }
                KD_Q6K => {
                    // 32·Σy per lane = 2 · (16·Σy).
                    let y16 = _mm256_loadu_si256(a.y16.as_ptr().add(((t0 + j) * nb + b) * 8) as *const __m256i);
                    (y, _mm512_sub_epi32(zero, _mm512_slli_epi32(_mm512_broadcast_i64x4(y16), 1)))
                }
                _ => (_mm512_xor_si512(y, _mm512_set1_epi8(-128)), zero),
            };
            for p in 0..P {
                let si = match KD {
                    KD_Q4_1 | KD_Q5_0 => _mm512_dpbusd_epi32(start, wv[p], y),
                    KD_Q6K => _mm512_mullo_epi32(_mm512_dpbusd_epi32(start, wv[p], y), scv[p]),
                    _ => _mm512_dpbusd_epi32(init[p], y, wv[p]),
                };
                let s = _mm512_cvtepi32_ps(si);
                acc[j][p] = _mm512_fmadd_ps(s, _mm512_mul_ps(bw[p], dy), acc[j][p]);
                if KD == KD_Q4_1 && !vec_summs {
                    let syv = *sy.add(j * nbp + b);
                    for h in 0..2 {
                        summs[j][p][h] = (*cwf.get_unchecked((2 * p + h) * nbp + b)).mul_add(syv, summs[j][p][h]);
                    }
                }
            }
        }
    }
    if vec_summs {
        let mut lanes = [0f32; 16];
        _mm512_storeu_ps(lanes.as_mut_ptr(), sv);
        for j in 0..T {
            for p in 0..P {
                for h in 0..2 {
                    summs[j][p][h] = lanes[j * nr + 2 * p + h];
                }
            }
        }
    }
    for j in 0..T {
        for p in 0..P {
            let halves = [_mm512_castps512_ps256(acc[j][p]), _mm512_extractf32x8_ps::<1>(acc[j][p])];
            for h in 0..2 {
                let mut v = avx2::hsum(halves[h]);
                if KD == KD_Q4_1 {
                    v += summs[j][p][h];
                }
                *out.add((t0 + j) * ldo + r0 + 2 * p + h) = v;
            }
        }
    }
}

/// glibc's `expf` table: `2^(i/32)` as f64 bits, minus `i << 47` (the
/// integer part is added back from the rounded exponent).
const EXP2F_TAB: [u64; 32] = [
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
];

/// `expf` on 16 lanes, bit for bit glibc's `__expf_fma` (what `f32::exp`
/// runs on every CPU with FMA, and what llama.cpp's attention calls): the
/// same f64 operations with the same fusions (read from the library's
/// machine code), the same table, and its out-of-range answers (0 below
/// −103.97, the smallest subnormal down to −103.28, +inf above 88.72, NaN
/// kept). Checked against `f32::exp` on every f32
/// (`kernels::tests::expf16_is_libm_expf_on_every_f32`, ignored by default;
/// a spread of inputs runs by default).
///
/// # Safety
/// CPU has AVX-512 F and DQ.
#[target_feature(enable = "avx512f,avx512dq")]
pub unsafe fn expf16(x: __m512) -> __m512 {
    let inv_ln2_n = _mm512_set1_pd(f64::from_bits(0x40471547652b82fe));
    let shift = _mm512_set1_pd(f64::from_bits(0x4338000000000000));
    let c0 = _mm512_set1_pd(f64::from_bits(0x3ebc6af84b912394));
    let c1 = _mm512_set1_pd(f64::from_bits(0x3f2ebfce50fac4f3));
    let c2 = _mm512_set1_pd(f64::from_bits(0x3f962e42ff0c52d6));
    let one = _mm512_set1_pd(1.0);
    let tab = |i: usize| _mm512_loadu_si512(EXP2F_TAB[8 * i..].as_ptr() as *const _);
    let (t0, t1, t2, t3) = (tab(0), tab(1), tab(2), tab(3));
    let half = |xf: __m256| -> __m256 {
        let xd = _mm512_cvtps_pd(xf);
        let kd_shifted = _mm512_fmadd_pd(inv_ln2_n, xd, shift);
        let ki = _mm512_castpd_si512(kd_shifted);
        let kd = _mm512_sub_pd(kd_shifted, shift);
        let r = _mm512_fmsub_pd(inv_ln2_n, xd, kd);
        // T[ki % 32]: bits 0–3 pick one of 16 entries (two registers of
        // 8), bit 4 which 16.
        let lo16 = _mm512_permutex2var_epi64(t0, ki, t1);
        let hi16 = _mm512_permutex2var_epi64(t2, ki, t3);
        let t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo16, hi16);
        let s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64::<47>(ki)));
        let z = _mm512_fmadd_pd(r, c0, c1);
        let r2 = _mm512_mul_pd(r, r);
        let y = _mm512_fmadd_pd(r, c2, one);
        let y = _mm512_fmadd_pd(z, r2, y);
        _mm512_cvtpd_ps(_mm512_mul_pd(y, s))
    };
    let lo = half(_mm512_castps512_ps256(x));
    let hi = half(_mm512_extractf32x8_ps::<1>(x));
    let y = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(lo), hi);
    // glibc's special cases, in its order of precedence (last wins here).
    let y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(f32::from_bits(0xc2ce8ed0))), _mm512_castsi512_ps(_mm512_set1_epi32(1)));
    let y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(f32::from_bits(0xc2cff1b4))), _mm512_setzero_ps());
    let y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(f32::from_bits(0x42b17217))), _mm512_set1_ps(f32::INFINITY));
    _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), _mm512_add_ps(x, x))
}

/// Each of 16 vectors summed across its lanes, in one vector (lane `k`:
/// vector `k`): the pairs of the per-vector tree `avx2::attend_row` uses
/// (lanes `i` and `i + 8`, then `i + 4`, `i + 2`, `i + 1`), so every sum has
/// the same floats, with each add serving 16 lanes instead of a few.
#[inline(always)]
unsafe fn hsum16x16(v: &[__m512; 16]) -> __m512 {
    // Lane i + lane i + 8: key 2k in 128-bit chunks 0–1, key 2k + 1 in 2–3.
    let mut u = [_mm512_setzero_ps(); 8];
    for k in 0..8 {
        let (a, b) = (v[2 * k], v[2 * k + 1]);
        u[k] = _mm512_add_ps(_mm512_shuffle_f32x4::<0b01_00_01_00>(a, b), _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b));
    }
    // + lane i + 4: key 4m + c in chunk c.
    let mut w = [_mm512_setzero_ps(); 4];
    for m in 0..4 {
        let (a, b) = (u[2 * m], u[2 * m + 1]);
        w[m] = _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b));
    }
    // + lane i + 2 (within each chunk): lanes 0–1 key 8p + c, 2–3 key 8p + 4 + c.
    let x0 = _mm512_add_ps(_mm512_shuffle_ps::<0b01_00_01_00>(w[0], w[1]), _mm512_shuffle_ps::<0b11_10_11_10>(w[0], w[1]));
    let x1 = _mm512_add_ps(_mm512_shuffle_ps::<0b01_00_01_00>(w[2], w[3]), _mm512_shuffle_ps::<0b11_10_11_10>(w[2], w[3]));
    // + lane i + 1: chunk c lane j holds key 4j + c.
    let z = _mm512_add_ps(_mm512_shuffle_ps::<0b10_00_10_00>(x0, x1), _mm512_shuffle_ps::<0b11_01_11_01>(x0, x1));
    _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), z)
}

/// The online-softmax bookkeeping of 16 keys in order (`s`: their scores,
/// unused lanes −inf; `m`: the running maximum before them), as the
/// key-at-a-time loop does it: a key above the maximum so far rescales
/// (`ms = exp(m − s)`, `vs = 1`), any other adds `vs = exp(s − m)` (`ms = 1`).
/// Returns (`ms`, `vs`, the maximum after the block).
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn softmax_block(s: __m512, m: f32) -> (__m512, __m512, f32) {
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mv = _mm512_set1_ps(m);
    // Inclusive prefix maximum (lane j: max of lanes 0..=j), then the
    // maximum each key sees: `m`, then the prefix maximum one lane down.
    let mut p = s;
    p = _mm512_max_ps(p, _mm512_castsi512_ps(_mm512_alignr_epi32::<15>(_mm512_castps_si512(p), _mm512_castps_si512(ninf))));
    p = _mm512_max_ps(p, _mm512_castsi512_ps(_mm512_alignr_epi32::<14>(_mm512_castps_si512(p), _mm512_castps_si512(ninf))));
    p = _mm512_max_ps(p, _mm512_castsi512_ps(_mm512_alignr_epi32::<12>(_mm512_castps_si512(p), _mm512_castps_si512(ninf))));
    p = _mm512_max_ps(p, _mm512_castsi512_ps(_mm512_alignr_epi32::<8>(_mm512_castps_si512(p), _mm512_castps_si512(ninf))));
    let p = _mm512_max_ps(p, mv);
    let seen = _mm512_castsi512_ps(_mm512_alignr_epi32::<15>(_mm512_castps_si512(p), _mm512_castps_si512(mv)));
    let new = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, seen);
    let arg = _mm512_mask_sub_ps(_mm512_sub_ps(s, seen), new, seen, s);
    let e = expf16(arg);
    let one = _mm512_set1_ps(1.0);
    let ms = _mm512_mask_mov_ps(one, new, e);
    let vs = _mm512_mask_mov_ps(e, new, one);
    let last = _mm512_reduce_max_ps(p);
    (ms, vs, last)
}

/// `avx2::attend_row` for `R` query rows that see the same keys (the heads
/// of one KV group at one position), with 16-lane registers and the output
/// rows kept in registers across all keys (`N` = d/16 per row): each row gets
/// the same floats lane by lane as `avx2::attend_row` (the Q·K dot is ggml's
/// 4 × 16-lane accumulators and the same reduction tree; the V update rounds
/// every lane to f16 after each key, as the AVX2 version does in memory).
/// The `R` rows are independent dependency chains through the same K/V
/// loads: the f16 round trip after every key no longer serialises the loop.
/// `d` = `16·N` must be a multiple of 64 (no f64 leftovers). The keys are
/// the spans' keys in order (the softmax state carries from one to the next).
///
/// # Safety
/// CPU has the features of [`available`]; `q.len() == o.len() == R·16·N`
/// (row `i` at `i·16·N`); every span's key and value `j` lie inside its
/// slices and hold `16·N` values (checked by `kernels::attend_rows`).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn attend_rows<const N: usize, const R: usize>(q: &[f32], spans: &[KvSpan], scale: f32, o: &mut [f32]) {
    #[inline(always)]
    unsafe fn r16(x: __m512) -> __m512 {
        _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
    }
    let d = 16 * N;
    debug_assert!(N % 4 == 0 && q.len() == R * d && o.len() == R * d);
    // Keys go in blocks of `B` = 16, three phases each: (1) the Q·K scores
    // of the block (each key's 16-lane sum reduced for all 16 keys at once,
    // `hsum16x16`), (2) the online-softmax bookkeeping (`softmax_block`: the
    // running maxima as a prefix maximum, one `expf16` for the block, the
    // sums a scalar chain in key order), (3) the V updates in key order with
    // the output rows in registers. Every row sees the same operations in
    // the same order as the key-at-a-time loop; only when they run moves.
    // (Before the split, each libm `expf` call forced the R·N output
    // registers out to the stack and back; phases 1–2 a block at a time took
    // a batch-of-4 decode step from 75.7 to 80.7 steps/s, smollm2, depth 440.)
    const B: usize = 16;
    let mut ov = [[_mm512_setzero_ps(); N]; R];
    let (mut m, mut sum) = ([f32::NEG_INFINITY; R], [0f32; R]);
    let (mut sc, mut msb, mut vsb) = ([[0f32; B]; R], [[1f32; B]; R], [[0f32; B]; R]);
    let mut sums = [[_mm512_setzero_ps(); B]; R];
    for span in spans {
        let (kb, vb, stride, keys) = (span.k.as_ptr(), span.v.as_ptr(), span.stride, span.keys.clone());
        let mut j0 = keys.start;
        while j0 < keys.end {
            let nb = (keys.end - j0).min(B);
            for jj in 0..nb {
                let kr = kb.add((j0 + jj) * stride);
                // The next block's keys and values: a decode step reads
                // each layer's cache once, from L3, and waited on it.
                prefetch_lines(kr.wrapping_add(B * stride) as *const u8, d * 2);
                prefetch_lines(vb.wrapping_add((j0 + jj + B) * stride) as *const u8, d * 2);
                let mut acc = [[_mm512_setzero_ps(); 4]; R];
                for i in 0..N {
                    let kv = _mm512_cvtph_ps(_mm256_loadu_si256(kr.add(16 * i) as *const __m256i));
                    for r in 0..R {
                        acc[r][i % 4] = _mm512_fmadd_ps(kv, _mm512_loadu_ps(q.as_ptr().add(r * d + 16 * i)), acc[r][i % 4]);
                    }
                }
                for r in 0..R {
                    let a = &acc[r];
                    sums[r][jj] = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
                }
            }
            // The 16 lanes of each key's sum, reduced for the whole block
            // at once (the same pairs as a per-key tree; lanes past `nb`
            // are left-overs, masked off below).
            for r in 0..R {
                _mm512_storeu_ps(sc[r].as_mut_ptr(), _mm512_mul_ps(hsum16x16(&sums[r]), _mm512_set1_ps(scale)));
            }
            // Phase 2 for 16 keys at once: the running maximum each key
            // sees is the prefix maximum, so every `expf` argument is known
            // up front and one `expf16` serves the block. Only the sums stay
            // a scalar chain per row, in key order.
            let live = if nb == B { !0u16 } else { (1u16 << nb) - 1 };
            for r in 0..R {
                let (ms, vs, last) = softmax_block(_mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), live, sc[r].as_ptr()), m[r]);
                _mm512_storeu_ps(msb[r].as_mut_ptr(), ms);
                _mm512_storeu_ps(vsb[r].as_mut_ptr(), vs);
                m[r] = last;
            }
            for jj in 0..nb {
                for r in 0..R {
                    sum[r] = sum[r].mul_add(msb[r][jj], vsb[r][jj]);
                }
            }
            for jj in 0..nb {
                let vr = vb.add((j0 + jj) * stride);
                for r in 0..R {
                    let ms = msb[r][jj];
                    if ms != 1.0 {
                        let msv = _mm512_set1_ps(ms);
                        for x in ov[r].iter_mut() {
                            *x = r16(_mm512_mul_ps(*x, msv));
                        }
                    }
                }
                for i in 0..N {
                    let vv = _mm512_cvtph_ps(_mm256_loadu_si256(vr.add(16 * i) as *const __m256i));
                    for r in 0..R {
                        ov[r][i] = r16(_mm512_fmadd_ps(vv, _mm512_set1_ps(vsb[r][jj]), ov[r][i]));
                    }
                }
            }
            j0 += nb;
        }
    }
    for r in 0..R {
        let inv = _mm512_set1_ps(if sum[r] == 0.0 { 0.0 } else { 1.0 / sum[r] });
        for (i, x) in ov[r].iter().enumerate() {
            _mm512_storeu_ps(o.as_mut_ptr().add(r * d + 16 * i), _mm512_mul_ps(*x, inv));
        }
    }
}
