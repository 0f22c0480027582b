//! Attention kernel micro-benchmark: ns per (query row, key) of
//! `kernels::attend_rows` over 450 cached f16 keys (smollm2's head size 64),
//! data hot in cache, for 1, 3 and 4 rows per pass. The decode step reads the
//! cache from L3 instead, so a pass there costs more; this isolates the
//! arithmetic. `cargo run --release --example attn_mb`
use brandvoice::engine::kernels::{attend_rows, KvSpan};
use half::f16;
use std::time::Instant;
fn main() {
    let d = 64; let keys = 450; let kvh = 3; let stride = kvh * d;
    let k: Vec<f16> = (0..keys * stride).map(|i| f16::from_f32(((i * 7919 % 1000) as f32 / 1000.0) - 0.5)).collect();
    let v: Vec<f16> = (0..keys * stride).map(|i| f16::from_f32(((i * 104729 % 1000) as f32 / 1000.0) - 0.5)).collect();
    for rows in [1usize, 3, 4] {
        let q: Vec<f32> = (0..rows * d).map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5).collect();
        let mut o = vec![0f32; rows * d];
        let spans = [KvSpan { k: &k, v: &v, stride, keys: 0..keys }];
        let n = 20000;
        for _ in 0..100 { attend_rows(&q, d, &spans, 0.125, &mut o); }
        let t = Instant::now();
        for _ in 0..n { attend_rows(&q, d, &spans, 0.125, &mut o); }
        let ns = t.elapsed().as_nanos() as f64 / (n * rows * keys) as f64;
        println!("rows {rows}: {ns:.2} ns per row-key (hot)  o0={}", o[0]);
    }
}
