//! Kernel correctness: SIMD against scalar, both against an f32 matmul of the
//! dequantised weights, and against candle's own quantized matmul.

use super::*;
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use half::f16;
use rand::{Rng, SeedableRng};

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Random GGML bytes of a `(rows, k)` matrix of `kind`, with realistic scales.
fn random_ggml(kind: Kind, rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let nblocks = rows * k / 32;
    let mut out = Vec::with_capacity(nblocks * kind.ggml_block_bytes());
    for _ in 0..nblocks {
        let d = f16::from_f32(r.gen_range(0.001f32..0.05));
        out.extend_from_slice(&d.to_le_bytes());
        match kind {
            Kind::Q4_1 => {
                let m = f16::from_f32(r.gen_range(-0.4f32..0.0));
                out.extend_from_slice(&m.to_le_bytes());
                (0..16).for_each(|_| out.push(r.gen()));
            }
            Kind::Q5_0 => {
                out.extend_from_slice(&r.gen::<u32>().to_le_bytes());
                (0..16).for_each(|_| out.push(r.gen()));
            }
            Kind::Q8_0 => (0..32).for_each(|_| out.push(r.gen_range(-127i8..=127) as u8)),
            Kind::Q6K => unreachable!("K-quants: random_k_quant"),
        }
    }
    out
}

fn random_x(m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..m * k).map(|_| r.gen_range(-2.0f32..2.0)).collect()
}

fn ggml_dtype(kind: Kind) -> GgmlDType {
    match kind {
        Kind::Q4_1 => GgmlDType::Q4_1,
        Kind::Q5_0 => GgmlDType::Q5_0,
        Kind::Q8_0 => GgmlDType::Q8_0,
        Kind::Q6K => GgmlDType::Q6K,
    }
}

/// f32 reference and a bound on the error that 8-bit activations may cause:
/// per element |w|·(d_y/2 + |x|·2⁻¹⁰) (half a quantisation step, f16 scale rounding).
fn reference(w: &Packed, x: &[f32], m: usize) -> (Vec<f32>, Vec<f32>) {
    let k = w.k;
    let mut y = vec![0f32; m * w.rows];
    let mut bound = vec![0f32; m * w.rows];
    for t in 0..m {
        let xr = &x[t * k..(t + 1) * k];
        for r in 0..w.rows {
            let (mut acc, mut err) = (0f64, 0f64);
            for b in 0..k / 32 {
                let xs = &xr[b * 32..(b + 1) * 32];
                let dy = xs.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                for (j, &xv) in xs.iter().enumerate() {
                    let wv = w.get(r, b * 32 + j);
                    acc += wv as f64 * xv as f64;
                    err += wv.abs() as f64 * (0.5 * dy as f64 + xv.abs() as f64 / 1024.0);
                }
            }
            y[t * w.rows + r] = acc as f32;
            bound[t * w.rows + r] = err as f32 + 1e-4;
        }
    }
    (y, bound)
}

const SHAPES: &[(usize, usize, usize)] = &[
    // (m tokens, rows, k)
    (1, 8, 32),
    (1, 13, 96),
    (2, 7, 576),
    (3, 5, 256),
    (4, 16, 576),
    (5, 9, 288),
    (9, 6, 128),
    (17, 33, 576),
];

#[test]
fn every_isa_matches_the_dequantised_f32_matmul() {
    let pool = pool::Pool::new(2);
    let mut isas = vec![Isa::Scalar];
    if matches!(isa(), Isa::Avx2 | Isa::Avx512) {
        isas.push(Isa::Avx2);
    }
    if isa() == Isa::Avx512 {
        isas.push(Isa::Avx512);
    }
    for kind in [Kind::Q4_1, Kind::Q5_0, Kind::Q8_0] {
        for (si, &(m, rows, k)) in SHAPES.iter().enumerate() {
            let w = Packed::from_ggml(kind, rows, k, &random_ggml(kind, rows, k, si as u64)).unwrap();
            let x = random_x(m, k, 100 + si as u64);
            let (want, bound) = reference(&w, &x, m);
            for &isa in &isas {
                let mut got = vec![f32::NAN; m * rows];
                matmul_with(&w, &x, m, &mut got, isa, &pool);
                for i in 0..got.len() {
                    let e = (got[i] - want[i]).abs();
                    assert!(e <= bound[i], "{kind:?} {isa:?} m={m} rows={rows} k={k} at {i}: got {} want {} (err {e} > bound {})", got[i], want[i], bound[i]);
                }
            }
        }
    }
}

#[test]
fn simd_equals_scalar_up_to_float_summation_order() {
    if !matches!(isa(), Isa::Avx2 | Isa::Avx512) {
        eprintln!("no AVX2 on this CPU: nothing to compare");
        return;
    }
    let pool = pool::Pool::new(2);
    for kind in [Kind::Q4_1, Kind::Q5_0, Kind::Q8_0] {
        let (m, rows, k) = (7, 37, 4864);
        let w = Packed::from_ggml(kind, rows, k, &random_ggml(kind, rows, k, 7)).unwrap();
        let x = random_x(m, k, 8);
        // Same quants from both quantisers.
        let (qa, qs) = (quantize(&x, m, k, Isa::Avx2), quantize(&x, m, k, Isa::Scalar));
        assert_eq!(qa.qs, qs.qs, "{kind:?}: activation quants differ");
        assert_eq!(qa.d, qs.d, "{kind:?}: activation scales differ");
        let mut a = vec![0f32; m * rows];
        let mut s = vec![0f32; m * rows];
        matmul_with(&w, &x, m, &mut a, Isa::Avx2, &pool);
        matmul_with(&w, &x, m, &mut s, Isa::Scalar, &pool);
        for i in 0..a.len() {
            assert!((a[i] - s[i]).abs() <= 1e-4 * (1.0 + s[i].abs()), "{kind:?} at {i}: simd {} scalar {}", a[i], s[i]);
        }
    }
}

#[test]
fn agrees_with_candle_quantized_matmul() {
    for kind in [Kind::Q4_1, Kind::Q5_0, Kind::Q8_0] {
        let (m, rows, k) = (5, 64, 576);
        let bytes = random_ggml(kind, rows, k, 11);
        let w = Packed::from_ggml(kind, rows, k, &bytes).unwrap();
        let storage = QStorage::from_data(std::borrow::Cow::Borrowed(&bytes), &Device::Cpu, ggml_dtype(kind)).unwrap();
        let qt = QTensor::new(storage, (rows, k)).unwrap();
        // Our repacking reads the same values candle dequantises.
        let deq = qt.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        for r in 0..rows {
            for i in 0..k {
                assert_eq!(deq[r][i], w.get(r, i), "{kind:?} element ({r},{i})");
            }
        }
        let x = random_x(m, k, 12);
        let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
        let want = QMatMul::from_qtensor(qt).unwrap().forward(&xt).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut got = vec![0f32; m * rows];
        matmul(&w, &x, m, &mut got);
        let (_, bound) = reference(&w, &x, m);
        for i in 0..got.len() {
            // Both sides quantise activations; allow twice the one-sided bound.
            assert!((got[i] - want[i]).abs() <= 2.0 * bound[i], "{kind:?} at {i}: ours {} candle {}", got[i], want[i]);
        }
    }
}

#[test]
fn requantised_q8_0_is_close_to_its_source() {
    let (rows, k) = (4, 64);
    let x = random_x(rows, k, 3);
    let p = Packed::q8_0_from_f32(rows, k, &x).unwrap();
    for r in 0..rows {
        for b in 0..k / 32 {
            let amax = x[r * k + b * 32..][..32].iter().fold(0f32, |a, v| a.max(v.abs()));
            for j in 0..32 {
                let i = b * 32 + j;
                assert!((p.get(r, i) - x[r * k + i]).abs() <= amax / 127.0 * 0.51 + amax * 1e-3);
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    assert_eq!(Packed::from_ggml(Kind::Q8_0, 2, 33, &[]).unwrap_err(), PackError::RowLength { k: 33 });
    let e = Packed::from_ggml(Kind::Q4_1, 2, 64, &[0u8; 79]).unwrap_err();
    assert!(e.to_string().contains("79 bytes"), "{e}");
}

/// llama.cpp's AVX2 `ggml_vec_dot_q5_0_q8_0` / `ggml_vec_dot_q8_0_q8_0`, lane by
/// lane: 8 i32 lanes of 4 products of signed quants, one fma per block with
/// `d_w·d_y`, then `hsum_float_8`.
fn ggml_lanes_dot(w: &Packed, r: usize, a: &Acts, t: usize) -> f32 {
    let mut acc = [0f32; 8];
    for b in 0..w.nb {
        let d = w.d[r * w.nbp + b].to_f32() * a.d[t * a.nbp + b];
        for (l, lane) in acc.iter_mut().enumerate() {
            let mut s = 0i32;
            for e in 4 * l..4 * l + 4 {
                let q = match w.kind {
                    Kind::Q5_0 => (w.get(r, b * 32 + e) / w.d[r * w.nbp + b].to_f32()).round() as i32,
                    _ => w.qs[(r * w.nb + b) * 32 + e] as i8 as i32,
                };
                s += q * a.qs[t * a.k + b * 32 + e] as i32;
            }
            *lane = d.mul_add(s as f32, *lane);
        }
    }
    let r4: Vec<f32> = (0..4).map(|i| acc[i + 4] + acc[i]).collect();
    (r4[0] + r4[2]) + (r4[1] + r4[3])
}

#[test]
fn q5_0_and_q8_0_are_bitwise_llama_cpp_numerics() {
    if !matches!(isa(), Isa::Avx2 | Isa::Avx512) {
        return;
    }
    let pool = pool::Pool::new(2);
    for kind in [Kind::Q5_0, Kind::Q8_0] {
        for &(m, rows, k) in &[(1usize, 12usize, 896usize), (6, 10, 576)] {
            let w = Packed::from_ggml(kind, rows, k, &random_ggml(kind, rows, k, 21)).unwrap();
            let x = random_x(m, k, 22);
            let a = quantize(&x, m, k, Isa::Avx2);
            for isa in [Isa::Avx2, isa()] {
                let mut got = vec![0f32; m * rows];
                matmul_with(&w, &x, m, &mut got, isa, &pool);
                for t in 0..m {
                    for r in 0..rows {
                        let want = ggml_lanes_dot(&w, r, &a, t);
                        assert_eq!(got[t * rows + r].to_bits(), want.to_bits(), "{kind:?} {isa:?} m={m} t={t} r={r}: {} vs {want}", got[t * rows + r]);
                    }
                }
            }
        }
    }
}

/// Random GGML Q6_K (`q4k = false`) or Q4_K bytes of a `(rows, k)` matrix.
fn random_k_quant(q4k: bool, rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for _ in 0..rows * k / blocks::QK_K {
        if q4k {
            out.extend_from_slice(&f16::from_f32(r.gen_range(0.0005f32..0.004)).to_le_bytes());
            out.extend_from_slice(&f16::from_f32(r.gen_range(0.0005f32..0.004)).to_le_bytes());
            (0..12 + 128).for_each(|_| out.push(r.gen()));
        } else {
            (0..128 + 64).for_each(|_| out.push(r.gen()));
            (0..16).for_each(|_| out.push(r.gen_range(-60i8..=60) as u8));
            out.extend_from_slice(&f16::from_f32(r.gen_range(0.0002f32..0.002)).to_le_bytes());
        }
    }
    out
}

fn candle_dequant(bytes: &[u8], dt: GgmlDType, rows: usize, k: usize) -> Vec<Vec<f32>> {
    let storage = QStorage::from_data(std::borrow::Cow::Borrowed(bytes), &Device::Cpu, dt).unwrap();
    QTensor::new(storage, (rows, k)).unwrap().dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap()
}

const K_SHAPES: &[(usize, usize, usize)] = &[(1, 5, 256), (3, 7, 512), (4, 16, 768), (6, 9, 256), (17, 33, 512), (1, 12, 4864)];

/// Q6_K is regrouped without changing a value; the kernels (every ISA)
/// match the f32 matmul of those values, and SIMD equals scalar.
#[test]
fn q6_k_is_lossless_and_every_isa_matches_the_f32_matmul() {
    let pool = pool::Pool::new(2);
    for (si, &(m, rows, k)) in K_SHAPES.iter().enumerate() {
        let bytes = random_k_quant(false, rows, k, 40 + si as u64);
        let w = Packed::from_ggml(Kind::Q6K, rows, k, &bytes).unwrap();
        let deq = candle_dequant(&bytes, GgmlDType::Q6K, rows, k);
        for r in 0..rows {
            for i in 0..k {
                assert_eq!(deq[r][i], w.get(r, i), "Q6K element ({r},{i})");
            }
        }
        let x = random_x(m, k, 60 + si as u64);
        let (want, bound) = reference(&w, &x, m);
        let mut by_isa = Vec::new();
        for isa in [Isa::Scalar, isa()] {
            let mut got = vec![f32::NAN; m * rows];
            matmul_with(&w, &x, m, &mut got, isa, &pool);
            for i in 0..got.len() {
                let e = (got[i] - want[i]).abs();
                assert!(e <= bound[i], "Q6K {isa:?} m={m} rows={rows} k={k} at {i}: got {} want {} (err {e} > bound {})", got[i], want[i], bound[i]);
            }
            by_isa.push(got);
        }
        for i in 0..by_isa[0].len() {
            let (s, a) = (by_isa[0][i], by_isa[1][i]);
            assert!((a - s).abs() <= 1e-4 * (1.0 + s.abs()), "Q6K at {i}: simd {a} scalar {s}");
        }
    }
}

/// Q4_K repacked as Q4_1: every value within f16 rounding of the scale and
/// minimum products (what candle/ggml compute in f32), and the kernels
/// match the f32 matmul of the repacked values.
#[test]
fn q4_k_as_q4_1_is_within_f16_rounding_of_the_file_values() {
    let pool = pool::Pool::new(2);
    for (si, &(m, rows, k)) in K_SHAPES.iter().enumerate() {
        let bytes = random_k_quant(true, rows, k, 80 + si as u64);
        let w = Packed::q4_1_from_q4_k(rows, k, &bytes).unwrap();
        assert_eq!(w.kind, Kind::Q4_1);
        let deq = candle_dequant(&bytes, GgmlDType::Q4K, rows, k);
        for r in 0..rows {
            for i in 0..k {
                let (a, b) = (deq[r][i], w.get(r, i));
                // d·sc ≤ 0.004·63 and dmin·m ≤ 0.004·63: two f16 roundings of ≤ 2⁻¹¹ each.
                assert!((a - b).abs() <= 2.0 * 0.26 * 15.0 / 2048.0, "Q4_K element ({r},{i}): file {a} repacked {b}");
            }
        }
        let x = random_x(m, k, 90 + si as u64);
        let (want, bound) = reference(&w, &x, m);
        for isa in [Isa::Scalar, isa()] {
            let mut got = vec![f32::NAN; m * rows];
            matmul_with(&w, &x, m, &mut got, isa, &pool);
            for i in 0..got.len() {
                assert!((got[i] - want[i]).abs() <= bound[i], "Q4_K {isa:?} at {i}: got {} want {}", got[i], want[i]);
            }
        }
    }
}

#[test]
fn k_quant_rows_must_be_whole_super_blocks() {
    assert_eq!(Packed::from_ggml(Kind::Q6K, 2, 288, &[0; 420]).unwrap_err(), PackError::SuperRowLength { k: 288 });
    let e = Packed::q4_1_from_q4_k(2, 256, &[0u8; 100]).unwrap_err();
    assert!(e.to_string().contains("100 bytes"), "{e}");
}

/// The AVX-512 tile gives exactly the AVX2 tile's floats (bit for bit), for
/// prompt and decode shapes, odd row counts and the Q6K fallback.
#[test]
fn avx512_is_bitwise_avx2() {
    if isa() != Isa::Avx512 {
        eprintln!("no AVX-512 VNNI on this CPU: nothing to compare");
        return;
    }
    let pool = pool::Pool::new(2);
    let shapes: &[(usize, usize, usize)] = &[(1, 8, 896), (1, 13, 96), (2, 7, 576), (3, 5, 256), (4, 16, 576), (5, 9, 288), (9, 6, 128), (17, 33, 576), (128, 10, 896), (1, 40, 4864)];
    for kind in [Kind::Q4_1, Kind::Q5_0, Kind::Q8_0] {
        for (si, &(m, rows, k)) in shapes.iter().enumerate() {
            let w = Packed::from_ggml(kind, rows, k, &random_ggml(kind, rows, k, 200 + si as u64)).unwrap();
            let x = random_x(m, k, 300 + si as u64);
            let mut a2 = vec![f32::NAN; m * rows];
            let mut a5 = vec![f32::NAN; m * rows];
            matmul_with(&w, &x, m, &mut a2, Isa::Avx2, &pool);
            matmul_with(&w, &x, m, &mut a5, Isa::Avx512, &pool);
            for i in 0..a2.len() {
                assert_eq!(a2[i].to_bits(), a5[i].to_bits(), "{kind:?} m={m} rows={rows} k={k} at {i}: avx2 {} avx512 {}", a2[i], a5[i]);
            }
        }
    }
    // Q8_0 weights at the extremes (−128 included): the unsigned-offset trick stays exact.
    let (m, rows, k) = (4, 6, 256);
    let mut bytes = random_ggml(Kind::Q8_0, rows, k, 9);
    for blk in bytes.chunks_mut(34) {
        blk[2] = 0x80;
        blk[3] = 0x7f;
    }
    let w = Packed::from_ggml(Kind::Q8_0, rows, k, &bytes).unwrap();
    let x = random_x(m, k, 10);
    let (mut s, mut v) = (vec![0f32; m * rows], vec![0f32; m * rows]);
    matmul_with(&w, &x, m, &mut s, Isa::Scalar, &pool);
    matmul_with(&w, &x, m, &mut v, Isa::Avx512, &pool);
    for i in 0..s.len() {
        assert!((s[i] - v[i]).abs() <= 1e-4 * (1.0 + s[i].abs()), "Q8_0 extremes at {i}: scalar {} avx512 {}", s[i], v[i]);
    }
    for &(m, rows, k) in &[(5usize, 9usize, 512usize), (128, 10, 768), (1, 40, 4864), (3, 7, 256)] {
        let bytes = random_k_quant(false, rows, k, 5 + m as u64);
        let w = Packed::from_ggml(Kind::Q6K, rows, k, &bytes).unwrap();
        let x = random_x(m, k, 6);
        let (mut a2, mut a5) = (vec![0f32; m * rows], vec![0f32; m * rows]);
        matmul_with(&w, &x, m, &mut a2, Isa::Avx2, &pool);
        matmul_with(&w, &x, m, &mut a5, Isa::Avx512, &pool);
        for i in 0..a2.len() {
            assert_eq!(a2[i].to_bits(), a5[i].to_bits(), "Q6K m={m} rows={rows} k={k} at {i}: avx2 {} avx512 {}", a2[i], a5[i]);
        }
    }
}

/// The AVX-512-order `v_expf` stays within ggml's documented error of the
/// true exp, including the lanes that leave the normal range (the scalef
/// emulation: subnormal results, overflow to +inf, ggml's 0 / +inf beyond |n| > 192).
#[cfg(target_arch = "x86_64")]
#[test]
fn v_expf_is_accurate_across_the_range() {
    if !super::avx2::available() {
        return;
    }
    let xs: Vec<f32> = (-1100..=900).map(|i| i as f32 * 0.1 + 0.013).chain([-150.0, -104.5, 89.0, 200.0, 0.0]).collect();
    for c in xs.chunks(8) {
        let mut buf = [0f32; 8];
        buf[..c.len()].copy_from_slice(c);
        let mut out = [0f32; 8];
        // SAFETY: features checked above.
        unsafe {
            use std::arch::x86_64::*;
            _mm256_storeu_ps(out.as_mut_ptr(), super::avx2::v_expf(_mm256_loadu_ps(buf.as_ptr())));
        }
        for (&x, &y) in buf.iter().zip(&out) {
            let want = (x as f64).exp();
            if want > f32::MAX as f64 {
                assert_eq!(y, f32::INFINITY, "exp({x})");
            } else if want < 1e-45 {
                assert!(y == 0.0 || y <= 1.5e-45, "exp({x}) = {y}");
            } else if want > 1.2e-38 {
                let ulp = (want as f32).to_bits() as i64 - y.to_bits() as i64;
                assert!(ulp.abs() <= 2, "exp({x}): {y} vs {want} ({ulp} ulp)");
            } else {
                assert!(((y as f64) - want).abs() <= 2e-45, "exp({x}) = {y} vs {want}");
            }
        }
    }
}

/// The AVX-512 attention rows (outputs kept in registers, 1..=4 rows per
/// pass) give the AVX2 row's floats bit for bit, for the head sizes they
/// take, strided K/V, windows that start past 0, a key order whose running
/// maximum rises and falls, and keys split over two spans (a shared prompt,
/// then a sequence's own positions) — the same floats as one span.
#[test]
fn avx512_attend_rows_are_bitwise_avx2() {
    if isa() != Isa::Avx512 {
        eprintln!("no AVX-512 on this CPU: nothing to compare");
        return;
    }
    let h16 = |v: Vec<f32>| v.into_iter().map(half::f16::from_f32).collect::<Vec<_>>();
    let r16 = |v: Vec<f32>| v.into_iter().map(|x| half::f16::from_f32(x).to_f32()).collect::<Vec<f32>>();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (si, &d) in [64usize, 128, 256].iter().enumerate() {
        let stride = 3 * d;
        let n = 310;
        let k = h16(random_x(n, stride, 40 + si as u64));
        let v = h16(random_x(n, stride, 50 + si as u64));
        for rows in [1usize, 3, 5, 7] {
            let q = r16(random_x(rows, d, 60 + si as u64 + rows as u64));
            for keys in [0..1, 0..n, 17..n, 250..300] {
                let one = [KvSpan { k: &k[d..], v: &v[d..], stride, keys: keys.clone() }];
                let (mut a2, mut a5) = (vec![f32::NAN; rows * d], vec![f32::NAN; rows * d]);
                let scale = 1.0 / (d as f32).sqrt();
                for (qr, or) in q.chunks(d).zip(a2.chunks_mut(d)) {
                    // SAFETY: features checked above; all rows in bounds.
                    unsafe { avx2::attend_row(qr, &one, scale, or) };
                }
                assert!(attend_rows(&q, d, &one, scale, &mut a5));
                assert!(a2.iter().all(|x| x.is_finite()));
                assert_eq!(bits(&a2), bits(&a5), "d={d} rows={rows} keys={keys:?}");
                // The same keys as two spans: the first `cut` in a copy laid
                // out with another stride, the rest where they were.
                let cut = keys.start + (keys.end - keys.start) / 3;
                let copy = |src: &[half::f16]| (keys.start..cut).flat_map(|j| src[d + j * stride..d + j * stride + d].to_vec()).collect::<Vec<_>>();
                let (k0, v0) = (copy(&k), copy(&v));
                let two = [
                    KvSpan { k: &k0, v: &v0, stride: d, keys: 0..cut - keys.start },
                    KvSpan { k: &k[d..], v: &v[d..], stride, keys: cut..keys.end },
                ];
                let mut a6 = vec![f32::NAN; rows * d];
                assert!(attend_rows(&q, d, &two, scale, &mut a6));
                assert_eq!(bits(&a5), bits(&a6), "two spans: d={d} rows={rows} keys={keys:?} cut={cut}");
            }
        }
    }
}

#[test]
fn tile_shapes_parse_or_are_refused() {
    assert_eq!(parse_shape("4x3", 4), Some((4, 3, 4)));
    assert_eq!(parse_shape(" 2 x 1 , 3 ", 4), Some((2, 1, 3)));
    for bad in ["", "4", "4x5", "0x2", "4x3,9", "4x3,2,1", "axb", "4x-1"] {
        assert_eq!(parse_shape(bad, 4), None, "`{bad}`");
    }
}

/// The f32s with these bit patterns through `avx512::expf16` and `f32::exp`
/// (libm's `expf`), bit for bit (NaNs: both NaN). Returns how many.
#[cfg(target_arch = "x86_64")]
fn expf16_agrees_with_libm(bits: impl Iterator<Item = u32>) -> u64 {
    use std::arch::x86_64::*;
    let (mut x, mut y, mut n, mut checked) = ([0f32; 16], [0f32; 16], 0, 0u64);
    let check = |x: &[f32; 16], y: &mut [f32; 16], n: usize| {
        // SAFETY: callers check the CPU has AVX-512.
        unsafe { _mm512_storeu_ps(y.as_mut_ptr(), super::avx512::expf16(_mm512_loadu_ps(x.as_ptr()))) };
        for l in 0..n {
            let want = x[l].exp();
            assert!(
                y[l].to_bits() == want.to_bits() || (y[l].is_nan() && want.is_nan()),
                "expf16({:e} = {:#010x}) = {:e}, libm {:e}",
                x[l],
                x[l].to_bits(),
                y[l],
                want
            );
        }
    };
    for b in bits {
        x[n] = f32::from_bits(b);
        n += 1;
        if n == 16 {
            check(&x, &mut y, n);
            checked += 16;
            n = 0;
        }
    }
    check(&x, &mut y, n);
    checked + n as u64
}

#[cfg(target_arch = "x86_64")]
#[test]
fn expf16_is_libm_expf_on_a_spread_of_inputs() {
    if !super::avx512::available() {
        return;
    }
    // Every 997th bit pattern (all exponents, both signs, NaNs, infinities)…
    assert!(expf16_agrees_with_libm((0..=u32::MAX).step_by(997)) > 4_000_000);
    // …every pattern around the edges of glibc's special ranges…
    for edge in [0xc2ce8ed0u32, 0xc2cff1b4, 0x42b17217, 0xc2b00000, 0x42b00000, 0xff800000, 0x7f800000, 0x80000000, 0] {
        expf16_agrees_with_libm(edge.saturating_sub(5000)..=edge.saturating_add(5000));
    }
    // …and every 61st pattern of the attention's usual arguments, [−16, 0].
    expf16_agrees_with_libm((0x8000_0000..=0xc180_0000u32).step_by(61));
}

/// All 2^32 inputs (a minute or two in release):
/// `cargo test --release --lib expf16 -- --ignored`.
#[cfg(target_arch = "x86_64")]
#[test]
#[ignore]
fn expf16_is_libm_expf_on_every_f32() {
    if !super::avx512::available() {
        return;
    }
    assert_eq!(expf16_agrees_with_libm(0..=u32::MAX), 1 << 32);
}
