//! Portable scalar kernels: the fallback on CPUs without AVX2/FMA/F16C and the
//! reference the SIMD kernels are tested against. Same integer arithmetic as
//! the SIMD path (per-block i32 sums, then one f32 multiply-add per block).

use super::blocks::{Acts, Kind, Packed, QK};

/// Dot product of weight row `r` with activation row `t`.
pub fn dot(w: &Packed, r: usize, a: &Acts, t: usize) -> f32 {
    let qsb = w.kind.qs_bytes();
    let mut acc = 0f32;
    let mut corr = 0f32;
    for b in 0..w.nb {
        let qs = &w.qs[(r * w.nb + b) * qsb..][..qsb];
        let y = &a.qs[t * a.k + b * QK..][..QK];
        let dw = w.d[r * w.nbp + b].to_f32();
        let dy = a.d[t * a.nbp + b];
        let mut sumi = 0i32;
        match w.kind {
            Kind::Q4_1 => {
                for j in 0..16 {
                    sumi += (qs[j] & 15) as i32 * y[j] as i32 + (qs[j] >> 4) as i32 * y[j + 16] as i32;
                }
                corr += w.m[r * w.nbp + b].to_f32() * a.s[t * a.nbp + b];
            }
            Kind::Q5_0 => {
                let qh = w.qh[r * w.nb + b];
                for j in 0..16 {
                    let lo = (qs[j] & 15) as i32 | ((((qh >> j) & 1) as i32) << 4);
                    let hi = (qs[j] >> 4) as i32 | ((((qh >> (j + 16)) & 1) as i32) << 4);
                    sumi += lo * y[j] as i32 + hi * y[j + 16] as i32;
                }
                let ysum: i32 = y.iter().map(|&v| v as i32).sum();
                sumi -= 16 * ysum;
            }
            Kind::Q8_0 => {
                for j in 0..32 {
                    sumi += (qs[j] as i8) as i32 * y[j] as i32;
                }
            }
            Kind::Q6K => {
                let bi = r * w.nb + b;
                let h = w.h2[bi];
                for half in 0..2 {
                    let mut s = 0i32;
                    for j in half * 16..half * 16 + 16 {
                        let lo = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                        let hi = ((h >> ((j % 8) * 8 + 2 * (j / 8))) & 3) as u8;
                        s += ((lo | (hi << 4)) as i32 - 32) * y[j] as i32;
                    }
                    sumi += w.sc[bi * 2 + half] as i32 * s;
                }
            }
        }
        acc += sumi as f32 * (dw * dy);
    }
    acc + corr
}

/// Rows `rows` of `out[t][r] = dot(w_r, a_t)` for every token (`out` row stride `w.rows`).
pub fn rows(w: &Packed, a: &Acts, rows: std::ops::Range<usize>, out: &mut dyn FnMut(usize, usize, f32)) {
    for r in rows {
        for t in 0..a.m {
            out(t, r, dot(w, r, a, t));
        }
    }
}
