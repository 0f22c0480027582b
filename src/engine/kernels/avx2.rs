//! AVX2 + FMA + F16C kernels (x86-64; selected at run time).
//!
//! The shape follows llama.cpp's `ggml-cpu` x86 quants (`bytes_from_nibbles_32`,
//! `bytes_from_bits_32`, `_mm256_maddubs_epi16` on unsigned weights × signed
//! activations, the sign trick for Q8_0) with one change that matters for
//! prompt processing: a tile computes `T` tokens × `R` rows at once, so each
//! weight block is unpacked once and reused for `T` tokens and each activation
//! block is loaded once for `R` rows (llama.cpp does one row·column dot at a
//! time for Q4_1/Q5_0). Decoding uses `T = 1` and several rows to keep
//! independent accumulators in flight while the weights stream from memory.
//!
//! The Q4_1 minimum and the Q5_0 offset (−16) do not go through the integer
//! loop: they are `Σ_b c_b·s_b` with `s_b = d_y·Σq_y`, computed as one short f32
//! dot over the (padded) block arrays after the main loop.

#![allow(clippy::needless_range_loop)]

use super::blocks::{Acts, Packed, QK};
use half::f16;
use super::KvSpan;
use std::arch::x86_64::*;

pub const KD_Q4_1: u8 = 0;
pub const KD_Q5_0: u8 = 1;
pub const KD_Q8_0: u8 = 2;
pub const KD_Q6K: u8 = 3;

/// True when this CPU has what these kernels use.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// Horizontal sum in a fixed order (the reduction every tile ends with).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(p as *const __m128i);
    let bytes = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
    _mm256_and_si256(bytes, _mm256_set1_epi8(0x0F))
}

/// Byte j = 0xFF when bit j of `x` is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bits32(x: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// The 32 quants of a weight block as bytes: unsigned 0..15 (Q4_1), unsigned
/// 0..31 (Q5_0), signed (Q8_0; Q6K as q − 32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_w<const KD: u8>(w: &Packed, qs: *const u8, rb: usize) -> __m256i {
    match KD {
        KD_Q4_1 => nibbles(qs),
        KD_Q5_0 => {
            let hb = _mm256_and_si256(bits32(*w.qh.get_unchecked(rb)), _mm256_set1_epi8(0x10));
            _mm256_or_si256(nibbles(qs), hb)
        }
        KD_Q6K => {
            // Byte j of the broadcast holds h2 byte j % 8; shifting 64-bit
            // lane g by 2g brings element 8g + l's two bits to the bottom.
            let h = _mm256_set1_epi64x(*w.h2.get_unchecked(rb) as i64);
            let h = _mm256_srlv_epi64(h, _mm256_set_epi64x(6, 4, 2, 0));
            let h = _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(3)), 4);
            _mm256_sub_epi8(_mm256_or_si256(nibbles(qs), h), _mm256_set1_epi8(32))
        }
        _ => _mm256_loadu_si256(qs as *const __m256i),
    }
}

/// Q6K sub-scales of block `rb` as 16-bit lanes: the first 8 for elements
/// 0..16 (i32 lanes 0..4 after `madd`), the last 8 for 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_scales(w: &Packed, rb: usize) -> __m256i {
    let pair = (w.sc.as_ptr().add(rb * 2) as *const i32).read_unaligned();
    let ctl = _mm256_setr_epi8(
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
        2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
    );
    _mm256_shuffle_epi8(_mm256_set1_epi32(pair), ctl)
}

/// Converts f16 scales to f32 (`src.len()` a multiple of 8).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    debug_assert!(src.len() % 8 == 0 && dst.len() >= src.len());
    for i in (0..src.len()).step_by(8) {
        let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
    }
}

/// `out[(t0+j)·ldo + r0+i] = W[r0+i] · A[t0+j]` for `j < T`, `i < R`.
///
/// `cwf`: the Q4_1 minimums of rows `r0..r0+R` widened to f32, `nbp` apart
/// (unused for Q5_0 and Q8_0). Scales are widened inside the loop, eight blocks
/// at a time, so decoding streams only the weight arrays themselves.
///
/// # Safety
/// CPU has AVX2/FMA/F16C; `r0 + R <= w.rows`, `t0 + T <= a.m`, `out` holds
/// `(t0 + T) · ldo` floats and `ldo >= w.rows`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile<const KD: u8, const T: usize, const R: usize>(
    w: &Packed,
    r0: usize,
    a: &Acts,
    t0: usize,
    cwf: &[f32],
    out: *mut f32,
    ldo: usize,
) {
    let (nb, nbp, k) = (w.nb, w.nbp, a.k);
    let qsb = if KD == KD_Q8_0 { 32 } else { 16 };
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); R]; T];
    let wq = w.qs.as_ptr().add(r0 * nb * qsb);
    let yq = a.qs.as_ptr().add(t0 * k) as *const u8;
    let ad = a.d.as_ptr().add(t0 * nbp);
    let wd = w.d.as_ptr().add(r0 * nbp);
    let mut dbuf = [[0f32; 8]; R];
    // Q4_1: llama.cpp's `summs += m·s`, block after block inside the main
    // loop (the compiler contracts it to an FMA), added after the hsum — the
    // same order gives the same float, which greedy parity needs, and inside
    // the loop its latency hides behind the integer work.
    let mut summs = [[0f32; R]; T];
    let sy = a.s.as_ptr().add(t0 * nbp);
    // The next tile's weights, scales and minimums, a slice per block (see
    // `kernels::prefetch_tiles`; the pointers may run past the end: a
    // prefetch never faults).
    // Only the first token group of a row group prefetches (a prompt's
    // later groups find the lines there already; prefetching again cost a
    // quarter of the prompt speed).
    let pf = if t0 == 0 { super::prefetch_tiles() } else { 0 };
    let next = |p: *const u8, bytes: usize| (p.wrapping_add(pf * bytes), bytes);
    let regions = [
        next(wq, R * nb * qsb),
        next(wd as *const u8, R * nbp * 2),
        next(cwf.as_ptr() as *const u8, if KD == KD_Q4_1 { R * nbp * 4 } else { 0 }),
    ];
    for b in 0..nb {
        if pf > 0 {
            for &(base, len) in &regions {
                let (from, to) = ((len * b / nb) & !63, len * (b + 1) / nb);
                prefetch_lines(base.wrapping_add(from), to.saturating_sub(from));
            }
        }
        if b % 8 == 0 {
            for i in 0..R {
                let h = _mm_loadu_si128(wd.add(i * nbp + b) as *const __m128i);
                _mm256_storeu_ps(dbuf[i].as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        let mut wv = [_mm256_setzero_si256(); R];
        let mut bw = [0f32; R];
        let mut scv = [ones; R];
        for i in 0..R {
            wv[i] = load_w::<KD>(w, wq.add((i * nb + b) * qsb), (r0 + i) * nb + b);
            bw[i] = dbuf[i][b % 8];
            if KD == KD_Q6K {
                scv[i] = q6k_scales(w, (r0 + i) * nb + b);
            }
        }
        let mut wa = [_mm256_setzero_si256(); R];
        if KD == KD_Q8_0 || KD == KD_Q6K {
            for i in 0..R {
                wa[i] = _mm256_sign_epi8(wv[i], wv[i]);
            }
        }
        for j in 0..T {
            let y = _mm256_loadu_si256(yq.add(j * k + b * QK) as *const __m256i);
            let dy = *ad.add(j * nbp + b);
            let y16 = if KD == KD_Q5_0 {
                _mm256_loadu_si256(a.y16.as_ptr().add(((t0 + j) * nb + b) * 8) as *const __m256i)
            } else {
                _mm256_setzero_si256()
            };
            for i in 0..R {
                let p = if KD == KD_Q8_0 || KD == KD_Q6K {
                    _mm256_maddubs_epi16(wa[i], _mm256_sign_epi8(y, wv[i]))
                } else {
                    _mm256_maddubs_epi16(wv[i], y)
                };
                let mut si = _mm256_madd_epi16(p, scv[i]);
                if KD == KD_Q5_0 {
                    si = _mm256_sub_epi32(si, y16);
                }
                let s = _mm256_cvtepi32_ps(si);
                acc[j][i] = _mm256_fmadd_ps(s, _mm256_set1_ps(bw[i] * dy), acc[j][i]);
                if KD == KD_Q4_1 {
                    summs[j][i] = (*cwf.get_unchecked(i * nbp + b)).mul_add(*sy.add(j * nbp + b), summs[j][i]);
                }
            }
        }
    }
    for j in 0..T {
        for i in 0..R {
            let mut v = hsum(acc[j][i]);
            if KD == KD_Q4_1 {
                v += summs[j][i];
            }
            *out.add((t0 + j) * ldo + r0 + i) = v;
        }
    }
}

/// Prefetches the cache lines of `bytes` bytes from `p` into L1 (what the
/// tiles and the attention kernels fetch ahead; see
/// `kernels::prefetch_tiles`). `p` may point past the end of its data: a
/// prefetch never faults.
#[inline(always)]
pub fn prefetch_lines(p: *const u8, bytes: usize) {
    prefetch_lines_to::<_MM_HINT_T0>(p, bytes)
}

/// [`prefetch_lines`] into L2 only (`prefetcht1`). The AVX-512 tile fetches
/// its weights' quants and scales this way: a decode step's tile then stalled
/// on its prefetches (every line fill buffer of L1 in use), and fetching to L2
/// made smollm2's decode ~5% faster (BENCHMARKS "Minimums by row group"). The
/// AVX2 tile measured the same either way and keeps `prefetch_lines`.
#[inline(always)]
pub fn prefetch_lines_l2(p: *const u8, bytes: usize) {
    prefetch_lines_to::<_MM_HINT_T1>(p, bytes)
}

/// The lines of `bytes` bytes from `p`, with the `_mm_prefetch` hint `HINT`.
#[inline(always)]
fn prefetch_lines_to<const HINT: i32>(p: *const u8, bytes: usize) {
    let mut o = 0;
    while o < bytes {
        // SAFETY: a prefetch is only a hint; it reads nothing and never faults.
        unsafe { _mm_prefetch::<HINT>(p.wrapping_add(o) as *const i8) };
        o += 64;
    }
}

/// `v` rounded to the nearest f16, as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16r(v: f32) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v))))
}

/// Quantises row `x` (`k` floats) into row `t` of `a`; same quants as
/// `blocks::quantize_row_scalar` (llama.cpp's `quantize_row_q8_0` for AVX2).
///
/// # Safety
/// CPU has AVX2/FMA/F16C; `x.len() >= a.k`, `t < a.m`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_row(x: &[f32], a: &mut Acts, t: usize) {
    let (k, nbp) = (a.k, a.nbp);
    let sign = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..k / QK {
        let xp = x.as_ptr().add(b * QK);
        let v0 = _mm256_loadu_ps(xp);
        let v1 = _mm256_loadu_ps(xp.add(8));
        let v2 = _mm256_loadu_ps(xp.add(16));
        let v3 = _mm256_loadu_ps(xp.add(24));
        let mut m = _mm256_andnot_ps(sign, v0);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v1));
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v2));
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v3));
        let m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        let amax = _mm_cvtss_f32(m4);
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mul = _mm256_set1_ps(id);
        const RN: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        let i0 = _mm256_cvtps_epi32(_mm256_round_ps::<RN>(_mm256_mul_ps(v0, mul)));
        let i1 = _mm256_cvtps_epi32(_mm256_round_ps::<RN>(_mm256_mul_ps(v1, mul)));
        let i2 = _mm256_cvtps_epi32(_mm256_round_ps::<RN>(_mm256_mul_ps(v2, mul)));
        let i3 = _mm256_cvtps_epi32(_mm256_round_ps::<RN>(_mm256_mul_ps(v3, mul)));
        let sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        let s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01_00_11_10));
        let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b10_11_00_01));
        let isum = _mm_cvtsi128_si32(s4);
        let p01 = _mm256_packs_epi32(i0, i1);
        let p23 = _mm256_packs_epi32(i2, i3);
        let p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), perm);
        _mm256_storeu_si256(a.qs.as_mut_ptr().add(t * k + b * QK) as *mut __m256i, p);
        *a.d.get_unchecked_mut(t * nbp + b) = f16r(d);
        *a.s.get_unchecked_mut(t * nbp + b) = f16r(d * isum as f32);
        let y16 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(16), p), _mm256_set1_epi16(1));
        _mm256_storeu_si256(a.y16.as_mut_ptr().add((t * a.nb + b) * 8) as *mut __m256i, y16);
    }
}

/// llama.cpp's `ggml_v_expf` as its **AVX-512** build computes it (ARM's
/// optimized-routines algorithm, max error 1.45 ulp), emulated lane by lane
/// with AVX2: the polynomial includes the leading 1 (`fma(c1, b, 1)`) and the
/// result is `_mm512_scalef_ps(j, n)` = `j·2ⁿ` rounded once. The AVX2 build
/// instead computes `fma(j', 2ⁿ, 2ⁿ)` and rounds differently in the last bit;
/// the reference continuations were made with the AVX-512 build, so this is
/// the order we follow on every CPU (only AVX2 instructions are used).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn v_expf(x: __m256) -> __m256 {
    let r = _mm256_set1_ps(f32::from_bits(0x4b40_0000)); // 0x1.8p23
    let z = _mm256_fmadd_ps(x, _mm256_set1_ps(f32::from_bits(0x3fb8_aa3b)), r); // 0x1.715476p+0
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(
        n,
        _mm256_set1_ps(f32::from_bits(0x35bf_be8e)), // 0x1.7f7d1cp-20
        _mm256_fnmadd_ps(n, _mm256_set1_ps(f32::from_bits(0x3f31_7200)), x), // 0x1.62e4p-1
    );
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_set1_ps(f32::from_bits(0x3c07_2010)), b, _mm256_set1_ps(f32::from_bits(0x3d2b_9f17))), // 0x1.0e4020p-7, 0x1.573e2ep-5
            u,
            _mm256_fmadd_ps(_mm256_set1_ps(f32::from_bits(0x3e2a_af33)), b, _mm256_set1_ps(f32::from_bits(0x3eff_fedb))), // 0x1.555e66p-3, 0x1.fffdb6p-2
        ),
        u,
        _mm256_fmadd_ps(_mm256_set1_ps(f32::from_bits(0x3f7f_fff6)), b, _mm256_set1_ps(1.0)), // 0x1.ffffecp-1
    );
    // |n| ≤ 126: 2ⁿ is a normal float and j·2ⁿ rounds exactly as scalef does.
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_andnot_ps(_mm256_set1_ps(-0.0), n), _mm256_set1_ps(126.0));
    let k = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
    if _mm256_movemask_ps(big) == 0 {
        return _mm256_mul_ps(j, k);
    }
    // Rare lanes (|x| ≳ 87): scalef's result (subnormal, huge, ±overflow) via
    // f64, where j·2ⁿ is exact and the conversion rounds once; |n| > 192 is
    // ggml's explicit 0 / +inf.
    let mut jv = [0f32; 8];
    let mut nv = [0f32; 8];
    let mut kv = [0f32; 8];
    _mm256_storeu_ps(jv.as_mut_ptr(), j);
    _mm256_storeu_ps(nv.as_mut_ptr(), n);
    _mm256_storeu_ps(kv.as_mut_ptr(), _mm256_mul_ps(j, k));
    for l in 0..8 {
        kv[l] = scalef(jv[l], nv[l]);
    }
    _mm256_loadu_ps(kv.as_ptr())
}

/// `_mm512_scalef_ps(j, n)` for one lane of [`v_expf`] (with its |n| > 192 rule).
fn scalef(j: f32, n: f32) -> f32 {
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    (j as f64 * 2f64.powi(n as i32)) as f32
}

/// `g[i] = silu(g[i]) · u[i]` as llama.cpp's `ggml_vec_swiglu_f32` computes
/// it (`x / (1 + v_expf(−x))`, then the product, 16 lanes at a time in its
/// AVX-512 build); the tail past a multiple of 16 uses libm like ggml's
/// scalar loop.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn swiglu(g: &mut [f32], u: &[f32]) {
    let n = g.len().min(u.len());
    let mut i = 0;
    while i + 16 <= n {
        for h in [i, i + 8] {
            let x = _mm256_loadu_ps(g.as_ptr().add(h));
            let e = v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
            let s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            _mm256_storeu_ps(g.as_mut_ptr().add(h), _mm256_mul_ps(s, _mm256_loadu_ps(u.as_ptr().add(h))));
        }
        i += 16;
    }
    for j in i..n {
        g[j] = g[j] / (1.0 + (-g[j]).exp()) * u[j];
    }
}

/// `f16(x)` for 8 lanes, back in f32 (F16C, round to nearest even).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn r16x8(x: __m256) -> __m256 {
    _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
}

/// One query row of llama.cpp's CPU flash attention with an f16 K/V cache
/// (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`), reproducing its
/// floats as its AVX-512 build computes them: `ggml_vec_dot_f16` (4 × 16-lane
/// FMA accumulators over 64-element steps, then its reduction), the online softmax with libm `expf`, and the
/// V accumulator kept in f16 (`ggml_vec_scale_f16`, `ggml_vec_mad_f16`).
///
/// `q` holds f16-rounded values (`d` of them); the keys are the spans' keys in
/// order (key/value `j` of a span at `k/v[j·stride..]`). Writes `o` (`d`).
///
/// # Safety
/// CPU has AVX2/FMA/F16C; every key/value row is in bounds; `d % 8 == 0`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn attend_row(q: &[f32], spans: &[KvSpan], scale: f32, o: &mut [f32]) {
    let d = q.len();
    let np = d & !63;
    for a in o.iter_mut() {
        *a = 0.0;
    }
    let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
    let load8 = |p: *const f16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
    for span in spans {
        let (kb, vb, stride) = (span.k.as_ptr(), span.v.as_ptr(), span.stride);
        for j in span.keys.clone() {
            let kr = kb.add(j * stride);
            // The key and value 16 positions on (as `avx512::attend_rows`: a
            // decode step reads each layer's cache once, from L3).
            prefetch_lines(kb.wrapping_add((j + 16) * stride) as *const u8, d * 2);
            prefetch_lines(vb.wrapping_add((j + 16) * stride) as *const u8, d * 2);
            // ggml_vec_dot_f16 as the AVX-512 build runs it: 4 accumulators of
            // 16 lanes over 64-element steps (each 16-lane register is a lo/hi
            // pair of 8-lane ones here), reduced acc0+acc2, acc1+acc3, then the
            // two; then GCC's `_mm512_reduce_add_ps`: hi256+lo256, hi128+lo128,
            // [0]+[2] and [1]+[3], then those two. Leftovers in f64, as ggml.
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            let mut i = 0;
            while i < np {
                for (a, acc) in acc.iter_mut().enumerate() {
                    for (h, acc) in acc.iter_mut().enumerate() {
                        let x = load8(kr.add(i + 16 * a + 8 * h));
                        let y = _mm256_loadu_ps(q.as_ptr().add(i + 16 * a + 8 * h));
                        *acc = _mm256_fmadd_ps(x, y, *acc);
                    }
                }
                i += 64;
            }
            let lo = _mm256_add_ps(_mm256_add_ps(acc[0][0], acc[2][0]), _mm256_add_ps(acc[1][0], acc[3][0]));
            let hi = _mm256_add_ps(_mm256_add_ps(acc[0][1], acc[2][1]), _mm256_add_ps(acc[1][1], acc[3][1]));
            let t3 = _mm256_add_ps(hi, lo);
            let t6 = _mm_add_ps(_mm256_extractf128_ps::<1>(t3), _mm256_castps256_ps128(t3));
            let t8 = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));
            let t = _mm_add_ss(t8, _mm_movehdup_ps(t8));
            let mut sf = _mm_cvtss_f32(t) as f64;
            for i in np..d {
                sf += ((*kr.add(i)).to_f32() * q[i]) as f64;
            }
            let s = (sf as f32) * scale;
            let vr = vb.add(j * stride);
            let (ms, vs) = if s > m {
                let ms = (m - s).exp();
                m = s;
                let msv = _mm256_set1_ps(ms);
                for i in (0..d).step_by(8) {
                    let p = o.as_mut_ptr().add(i);
                    _mm256_storeu_ps(p, r16x8(_mm256_mul_ps(_mm256_loadu_ps(p), msv)));
                }
                (ms, 1.0)
            } else {
                (1.0, (s - m).exp())
            };
            let vsv = _mm256_set1_ps(vs);
            for i in (0..d).step_by(8) {
                let p = o.as_mut_ptr().add(i);
                _mm256_storeu_ps(p, r16x8(_mm256_fmadd_ps(load8(vr.add(i)), vsv, _mm256_loadu_ps(p))));
            }
            // `S = S*ms + vs`, contracted to an FMA by the C compiler
            sum = sum.mul_add(ms, vs);
        }
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for a in o.iter_mut() {
        *a *= inv;
    }
}
