//! Sampler micro-benchmark: µs per token drawn with the default parameters
//! (top-k 40, top-p 0.95, min-p 0.05, repeat penalty) over vocabularies the
//! size of smollm2's and qwen2.5's. `cargo run --release --example samp_mb`
use brandvoice::engine::sampling::{Sampler, SamplingParams};
use std::time::Instant;
fn main() {
    for n in [49152usize, 151936] {
        let mut x = 12345u64;
        let lg: Vec<f32> = (0..n).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ((x % 10000) as f32 / 10000.0 - 0.5) * 12.0 + if x % 97 == 0 { 8.0 } else { 0.0 } }).collect();
        let mut s = Sampler::new(SamplingParams { repeat_penalty: 1.1, ..SamplingParams::default() }).unwrap();
        let hist: Vec<u32> = (0..64).map(|i| (i * 7919 % n) as u32).collect();
        let it = 2000;
        let mut buf = lg.clone();
        let t = Instant::now();
        for _ in 0..it { buf.copy_from_slice(&lg); s.sample(&mut buf, &hist).unwrap(); }
        println!("vocab {n}: {:.1} us per sample", t.elapsed().as_secs_f64() * 1e6 / it as f64);
    }
}
