//! Quantized matmul kernels of our own: `y = x Wᵀ` with `W` in a GGUF block
//! format and `x` f32, for the tensor types the shipped models use.
//!
//! Why hand-written: candle 0.11.1 has only scalar dot products for Q4_1 and
//! Q5_0 (the bulk of SmolLM2 and Qwen2.5), which left it 4–6× behind llama.cpp
//! on this CPU. The design copies llama.cpp's numerics (activations quantised
//! to 8-bit blocks, integer dot products, f16 scales) and adds a tiled GEMM
//! for prompt processing:
//! - `blocks`: repacked weight layout, activation quantisation, re-quantisation
//!   of the other types to Q8_0;
//! - `avx2`: the SIMD tile kernel and quantiser (chosen at run time when the CPU
//!   has AVX2+FMA+F16C); `scalar`: the portable fallback and test reference;
//! - `pool`: the persistent thread pool that splits output rows across cores;
//! - `kquant_exact`: Q4_K/Q6_K in llama.cpp's exact float order (greedy parity);
//!   `kquant_simd`: the same floats, 16 rows per AVX-512 register (8 on AVX2).
//!
//! The float order everywhere is that of llama.cpp's **AVX-512** build (which
//! made the greedy reference), reproduced with AVX2 instructions so every
//! x86-64 CPU with AVX2 gives the same floats.
//!
//! Threads: `BRANDVOICE_THREADS` or [`set_threads`] (default: all cores).
//! `BRANDVOICE_KERNELS=scalar` forces the scalar path (for comparison).

pub mod blocks;
pub mod kquant_exact;
pub mod kquant_simd;
pub mod pool;
pub mod scalar;
pub mod weightbuf;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;

pub use blocks::{Acts, Kind, PackError, Packed};
pub use pool::{set_threads, threads};

use std::sync::OnceLock;

/// Which implementation runs the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    /// AVX2 plus AVX-512 F/BW/DQ/VL/VNNI: the Q4_1/Q5_0/Q8_0 tiles run on
    /// `avx512` (same floats as `avx2`), everything else as `Avx2`.
    Avx512,
}

/// The best implementation this CPU supports (or the one named by
/// `BRANDVOICE_KERNELS=scalar|avx2`).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let want = std::env::var("BRANDVOICE_KERNELS").unwrap_or_default();
        if want == "scalar" {
            return Isa::Scalar;
        }
        #[cfg(target_arch = "x86_64")]
        if avx512::available() && want != "avx2" {
            return Isa::Avx512;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            return Isa::Avx2;
        }
        Isa::Scalar
    })
}

/// AVX-512 tile shape: (tokens, row pairs) for prompts and row pairs when
/// decoding; `BRANDVOICE_TILE512=TxP[,Pdecode]` overrides (each 1..=4).
/// 4 tokens × 3 row pairs: the same prompt speed as 4 × 2 and a 4-sequence
/// batch step (a draft's n = 4) ~7% faster on smollm2, ~4% on qwen2.5
/// (BENCHMARKS "Weight prefetch").
fn tile512_shape() -> (usize, usize, usize) {
    static S: OnceLock<(usize, usize, usize)> = OnceLock::new();
    *S.get_or_init(|| shape_from_env("BRANDVOICE_TILE512", (4, 3, 4)))
}

/// A tile shape `TxR[,Rdecode]` (each 1..=4) from the variable `var`, else
/// `default`; a value that does not parse is reported and ignored.
fn shape_from_env(var: &str, default: (usize, usize, usize)) -> (usize, usize, usize) {
    let Ok(v) = std::env::var(var) else { return default };
    parse_shape(&v, default.2).unwrap_or_else(|| {
        tracing::warn!("{var} must be TxR or TxR,R with each number from 1 to 4, got `{v}`; using {}x{},{}", default.0, default.1, default.2);
        default
    })
}

/// `TxR` or `TxR,R`, each number 1..=4 (`decode` when the third is absent).
fn parse_shape(v: &str, decode: usize) -> Option<(usize, usize, usize)> {
    let n = v.split(['x', ',']).map(|p| p.trim().parse::<usize>().ok().filter(|x| (1..=4).contains(x))).collect::<Option<Vec<_>>>()?;
    match n[..] {
        [t, r] => Some((t, r, decode)),
        [t, r, d] => Some((t, r, d)),
        _ => None,
    }
}

/// How many tiles ahead the AVX-512 tile prefetches the weights (its
/// quants, scales and Q4_1 minimums); 0 turns it off, `BRANDVOICE_PREFETCH=N`
/// overrides the default of 1.
///
/// Why: a decode step is one pass over all the weights with a single token,
/// and a row of a 576-wide matrix is only 4.5 cache lines, too short a stream
/// for the hardware prefetcher; the tile stalled on its loads at ~7 GB/s on a
/// CPU that reads 38 GB/s. Fetching the next tile's lines while this one
/// computes made smollm2's decode ~25% faster (BENCHMARKS "Weight prefetch").
/// It does not change a single float.
pub fn prefetch_tiles() -> usize {
    static S: OnceLock<usize> = OnceLock::new();
    *S.get_or_init(|| {
        let Ok(v) = std::env::var("BRANDVOICE_PREFETCH") else { return 1 };
        match v.trim().parse::<usize>() {
            Ok(n) if n <= 16 => n,
            _ => {
                tracing::warn!("BRANDVOICE_PREFETCH must be a whole number from 0 to 16, got `{v}`; using the default 1");
                1
            }
        }
    })
}

/// Tile shapes: (tokens, rows) of the prompt-processing kernel and rows per
/// tile when decoding. Defaults measured on the target CPU (BENCHMARKS.md);
/// `BRANDVOICE_TILE=TxR[,Rdecode]` overrides them for tuning (each 1..=4).
fn tile_shape() -> (usize, usize, usize) {
    static S: OnceLock<(usize, usize, usize)> = OnceLock::new();
    *S.get_or_init(|| shape_from_env("BRANDVOICE_TILE", (4, 2, 4)))
}

/// Quantises `x` (`m × k`, row-major) for the kernels.
pub fn quantize(x: &[f32], m: usize, k: usize, isa: Isa) -> Acts {
    let mut a = Acts::new(m, k);
    for t in 0..m {
        let row = &x[t * k..(t + 1) * k];
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2/Avx512 are only chosen when the CPU has the features.
            Isa::Avx2 | Isa::Avx512 => unsafe { avx2::quantize_row(row, &mut a, t) },
            _ => blocks::quantize_row_scalar(row, &mut a, t),
        }
    }
    a
}

/// `g[i] = silu(g[i]) · u[i]` with llama.cpp's arithmetic (its vectorised
/// `expf` on AVX2; `x / (1 + e^−x)` otherwise).
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    assert_eq!(g.len(), u.len(), "swiglu operands");
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2/Avx512 are only chosen when the CPU has the features.
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::swiglu(g, u) },
        _ => {
            for (x, &y) in g.iter_mut().zip(u) {
                *x = *x / (1.0 + (-*x).exp()) * y;
            }
        }
    }
}

/// `f(g_chunk, u_chunk)` over chunks of `g`/`u` on the global pool: every
/// chunk starts at a multiple of 16 elements (so vector kernels see the same
/// lanes as one call over the whole slice; only the last chunk has a tail).
/// Single-threaded below 32k elements.
pub fn par_chunks2(g: &mut [f32], u: &[f32], f: &(dyn Fn(&mut [f32], &[f32]) + Sync)) {
    assert_eq!(g.len(), u.len(), "par_chunks2 operands");
    let n = g.len();
    let pool = pool::global();
    if n < 32 * 1024 || pool.threads() < 2 {
        f(g, u);
        return;
    }
    let per = n.div_ceil(pool.threads() * 4).next_multiple_of(16);
    let tasks = n.div_ceil(per);
    let p = OutPtr(g.as_mut_ptr());
    pool.run(tasks, &|ti: usize| {
        let p = p;
        let (a, b) = (ti * per, ((ti + 1) * per).min(n));
        // SAFETY: tasks cover disjoint ranges inside `g`.
        let gc = unsafe { std::slice::from_raw_parts_mut(p.0.add(a), b - a) };
        f(gc, &u[a..b]);
    });
}

/// A run of cached keys and values (f16, as llama.cpp's default KV cache):
/// key and value `j` of `keys` start at `k[j·stride..]` and `v[j·stride..]`.
/// A query's keys may come in several spans — a prompt stored once for a
/// whole batch, then the sequence's own positions — walked in order.
#[derive(Clone, Debug)]
pub struct KvSpan<'a> {
    pub k: &'a [half::f16],
    pub v: &'a [half::f16],
    pub stride: usize,
    pub keys: std::ops::Range<usize>,
}

/// One query row of attention in llama.cpp's flash-attention arithmetic (see
/// `avx2::attend_row`) over the keys of `spans`, in order. Returns false (and
/// leaves `o` alone) when there is no exact kernel for this CPU or shape, so
/// the caller falls back to its portable loop.
pub fn attend_row(q: &[f32], spans: &[KvSpan], scale: f32, o: &mut [f32]) -> bool {
    attend_rows(q, q.len(), spans, scale, o)
}

/// [`attend_row`] for several query rows of width `d` (`q`, `o`: rows back
/// to back) that see the same keys — the heads of one KV group. On AVX-512
/// CPUs, head sizes 64/128/256 run `avx512::attend_rows` (up to 4/2/1 rows
/// per pass through the keys); each row's floats are those of `attend_row`.
pub fn attend_rows(q: &[f32], d: usize, spans: &[KvSpan], scale: f32, o: &mut [f32]) -> bool {
    if d == 0 || d % 8 != 0 || q.len() % d != 0 || o.len() != q.len() || spans.iter().all(|s| s.keys.is_empty()) {
        return false;
    }
    for s in spans.iter().filter(|s| !s.keys.is_empty()) {
        let end = (s.keys.end - 1) * s.stride + d;
        if s.k.len() < end || s.v.len() < end {
            return false;
        }
    }
    let rows = q.len() / d;
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features checked by `isa()`; every K/V row is in bounds
        // (checked above); each call gets `r` whole rows of `q` and `o`.
        Isa::Avx512 if d == 64 || d == 128 || d == 256 => unsafe {
            let mut i = 0;
            while i < rows {
                let r = (rows - i).min(256 / d);
                let (qs, os) = (&q[i * d..(i + r) * d], &mut o[i * d..(i + r) * d]);
                match (d, r) {
                    (64, 1) => avx512::attend_rows::<4, 1>(qs, spans, scale, os),
                    (64, 2) => avx512::attend_rows::<4, 2>(qs, spans, scale, os),
                    (64, 3) => avx512::attend_rows::<4, 3>(qs, spans, scale, os),
                    (64, _) => avx512::attend_rows::<4, 4>(qs, spans, scale, os),
                    (128, 1) => avx512::attend_rows::<8, 1>(qs, spans, scale, os),
                    (128, _) => avx512::attend_rows::<8, 2>(qs, spans, scale, os),
                    _ => avx512::attend_rows::<16, 1>(qs, spans, scale, os),
                }
                i += r;
            }
            true
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features checked by `isa()`; every row is in bounds (checked above).
        Isa::Avx2 | Isa::Avx512 => unsafe {
            for (qr, or) in q.chunks(d).zip(o.chunks_mut(d)) {
                avx2::attend_row(qr, spans, scale, or);
            }
            true
        },
        _ => false,
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `out (m × rows) = x (m × k) · Wᵀ`, using the global thread pool.
pub fn matmul(w: &Packed, x: &[f32], m: usize, out: &mut [f32]) {
    matmul_with(w, x, m, out, isa(), &pool::global());
}

/// [`matmul`] with an explicit implementation and pool (tests, benchmarks).
pub fn matmul_with(w: &Packed, x: &[f32], m: usize, out: &mut [f32], isa: Isa, pool: &pool::Pool) {
    matmul_many_with(&[w], x, m, &mut [out], isa, pool);
}

/// Several weights applied to the same input (q/k/v, gate/up): the input is
/// quantised once and all outputs are computed in one parallel job, which
/// halves the hand-offs between cores per layer when decoding.
pub fn matmul_many(ws: &[&Packed], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
    matmul_many_with(ws, x, m, outs, isa(), &pool::global());
}

/// [`matmul_many`] with an explicit implementation and pool.
pub fn matmul_many_with(ws: &[&Packed], x: &[f32], m: usize, outs: &mut [&mut [f32]], isa: Isa, pool: &pool::Pool) {
    assert_eq!(ws.len(), outs.len(), "one output per weight");
    let Some(k) = ws.first().map(|w| w.k) else { return };
    assert!(ws.iter().all(|w| w.k == k), "weights share the input width");
    assert_eq!(x.len(), m * k, "activation size");
    for (w, o) in ws.iter().zip(outs.iter()) {
        assert_eq!(o.len(), m * w.rows, "output size");
    }
    if m == 0 {
        return;
    }
    let a = quantize(x, m, k, isa);
    let (tp, rp, rd) = tile_shape();
    let mut rt = if m < tp { rd } else { rp };
    let (tp5, pp5, pd5) = tile512_shape();
    let pairs = if m < tp5 { pd5 } else { pp5 };
    if isa == Isa::Avx512 {
        rt = 2 * pairs;
    }
    // Tasks: row chunks of every weight. Enough of them that a core slowed by
    // another process takes fewer, few enough that the per-task cost (scale
    // widening, one atomic) stays small.
    let total_tiles: usize = ws.iter().map(|w| w.rows.div_ceil(rt)).sum();
    let per_task = total_tiles.div_ceil((pool.threads() * 8).min(total_tiles).max(1)).max(1);
    let mut tasks: Vec<(usize, usize, usize)> = Vec::new(); // (weight, row begin, row end)
    for (wi, w) in ws.iter().enumerate() {
        let mut r = 0;
        while r < w.rows {
            let e = (r + per_task * rt).min(w.rows);
            tasks.push((wi, r, e));
            r = e;
        }
    }
    // Block-major copy of the activations' `s` for the AVX-512 Q4_1 tile.
    let mut st = Vec::new();
    if isa == Isa::Avx512 && ws.iter().any(|w| w.kind == Kind::Q4_1) {
        st = vec![0f32; a.nb * m];
        for t in 0..m {
            for b in 0..a.nb {
                st[b * m + t] = a.s[t * a.nbp + b];
            }
        }
    }
    let ptrs: Vec<OutPtr> = outs.iter_mut().map(|o| OutPtr(o.as_mut_ptr())).collect();
    let task = |ti: usize| {
        let (wi, r_begin, r_end) = tasks[ti];
        let (w, p) = (ws[wi], ptrs[wi]);
        let ldo = w.rows;
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: feature checked by `isa()`; tasks write disjoint rows.
            Isa::Avx2 => unsafe { avx2_rows(w, &a, r_begin, r_end, rt, tp, p.0, ldo) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: features checked by `isa()`; tasks write disjoint rows.
            Isa::Avx512 => unsafe { avx512_rows(w, &a, &st, r_begin, r_end, pairs, tp5, p.0, ldo) },
            _ => {
                for r in r_begin..r_end {
                    for t in 0..m {
                        // SAFETY: disjoint rows per task, in bounds by construction.
                        unsafe { *p.0.add(t * ldo + r) = scalar::dot(w, r, &a, t) };
                    }
                }
            }
        }
    };
    pool.run(tasks.len(), &task);
}

/// Whether plain f32 loops may be compiled with AVX2 + FMA (checked once).
pub fn f32_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static F: OnceLock<bool> = OnceLock::new();
        *F.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// f32 loops compiled twice: plain, and with AVX2 + FMA enabled (the same
/// code, auto-vectorised 8 wide, `mul_add` one instruction instead of a call
/// into the software `fmaf`), picked at run time by [`f32_simd`]. The
/// generic function must be `#[inline(always)]` so its body is compiled
/// into the fast copy. Neither copy reorders a float operation.
macro_rules! dispatch_f32 {
    ($(fn $name:ident / $fast:ident ($($a:ident : $t:ty),*) => $generic:path;)*) => {$(
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $fast($($a: $t),*) {
            $generic($($a),*)
        }
        fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            if $crate::engine::kernels::f32_simd() {
                // SAFETY: the CPU has AVX2 and FMA (checked by `f32_simd`).
                return unsafe { $fast($($a),*) };
            }
            $generic($($a),*)
        }
    )*};
}
pub(crate) use dispatch_f32;

/// Calls `$isa::tile::<kind, T, R>` with the const generics picked from
/// runtime values: `$t` tokens and `$r` rows per tile (rows for `avx2`, row
/// pairs for `avx512`), each 1..=4.
#[cfg(target_arch = "x86_64")]
macro_rules! tile_call {
    ($isa:ident, $kd:expr, $t:expr, $r:expr, $($arg:expr),*) => {{
        use avx2::{KD_Q4_1, KD_Q5_0, KD_Q6K, KD_Q8_0};
        use $isa::tile;
        macro_rules! by_r {
            ($K:ident, $T:literal) => {
                match $r {
                    1 => tile::<$K, $T, 1>($($arg),*),
                    2 => tile::<$K, $T, 2>($($arg),*),
                    3 => tile::<$K, $T, 3>($($arg),*),
                    _ => tile::<$K, $T, 4>($($arg),*),
                }
            };
        }
        macro_rules! by_t {
            ($K:ident) => {
                match $t {
                    1 => by_r!($K, 1),
                    2 => by_r!($K, 2),
                    3 => by_r!($K, 3),
                    _ => by_r!($K, 4),
                }
            };
        }
        match $kd {
            KD_Q4_1 => by_t!(KD_Q4_1),
            KD_Q5_0 => by_t!(KD_Q5_0),
            KD_Q6K => by_t!(KD_Q6K),
            _ => by_t!(KD_Q8_0),
        }
    }};
}


/// Rows `r_begin..r_end` for all tokens on the AVX-512 tile (`pairs` row
/// pairs per tile, `tp` tokens); a last odd row goes to the AVX2 tile.
///
/// # Safety
/// CPU has the features of `avx512::available`; `out` is `a.m × ldo`; no
/// other thread writes these rows.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_rows(w: &Packed, a: &Acts, st: &[f32], r_begin: usize, r_end: usize, pairs: usize, tp: usize, out: *mut f32, ldo: usize) {
    let nbp = w.nbp;
    let kd = match w.kind {
        Kind::Q4_1 => avx2::KD_Q4_1,
        Kind::Q5_0 => avx2::KD_Q5_0,
        Kind::Q6K => avx2::KD_Q6K,
        Kind::Q8_0 => avx2::KD_Q8_0,
    };
    let (mins, mins_t) = w.mins_f32();
    {
        let mut r = r_begin;
        while r < r_end {
            let left = r_end - r;
            let cw: &[f32] = if w.kind == Kind::Q4_1 { &mins[r * nbp..] } else { &[] };
            let mut t = 0;
            if left >= 2 {
                let np = pairs.min(left / 2);
                while t < a.m {
                    let tt = tp.min(a.m - t);
                    tile_call!(avx512, kd, tt, np, w, r, a, t, cw, mins_t, st, out, ldo);
                    t += tt;
                }
                r += 2 * np;
            } else {
                while t < a.m {
                    let tt = tp.min(a.m - t);
                    tile_call!(avx2, kd, tt, 1, w, r, a, t, cw, out, ldo);
                    t += tt;
                }
                r += 1;
            }
        }
    }
}

/// Rows `r_begin..r_end` for all tokens.
///
/// # Safety
/// AVX2/FMA/F16C present; `out` is `a.m × ldo`; no other thread writes these rows.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2_rows(w: &Packed, a: &Acts, r_begin: usize, r_end: usize, rt: usize, tp: usize, out: *mut f32, ldo: usize) {
    let nbp = w.nbp;
    let kd = match w.kind {
        Kind::Q4_1 => avx2::KD_Q4_1,
        Kind::Q5_0 => avx2::KD_Q5_0,
        Kind::Q8_0 => avx2::KD_Q8_0,
        Kind::Q6K => avx2::KD_Q6K,
    };
    let (mins, _) = w.mins_f32();
    let mut r = r_begin;
    while r < r_end {
        let rr = rt.min(r_end - r);
        let cw: &[f32] = if w.kind == Kind::Q4_1 { &mins[r * nbp..] } else { &[] };
        let mut t = 0;
        while t < a.m {
            let tt = tp.min(a.m - t);
            tile_call!(avx2, kd, tt, rr, w, r, a, t, cw, out, ldo);
            t += tt;
        }
        r += rr;
    }
}

#[cfg(test)]
mod tests;
