//! Matmul micro-benchmark: our `QLinear` against candle's `QMatMul` on real
//! weights of the shipped models (SmolLM2, Qwen2.5, Gemma 3), for one token
//! (decoding) and a 128-token prompt.
//!
//! `cargo bench --bench qlinear [-- FILTER]`; threads from `BRANDVOICE_THREADS`.
//! Models are read from `BRANDVOICE_MODELS` (default `~/.cache/brandvoice/models`).

use brandvoice::engine::kernels;
use brandvoice::engine::qlinear::{Backend, QLinear, QLinearOptions};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use std::time::Instant;

fn models_dir() -> std::path::PathBuf {
    std::env::var_os("BRANDVOICE_MODELS")
        .map(Into::into)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/brandvoice/models"))
}

/// Best of `reps` timings of `f`, in seconds, after one warm-up.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> anyhow::Result<()> {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let cases: &[(&str, &str)] = &[
        ("smollm2-135m", "blk.0.attn_q.weight"),
        ("smollm2-135m", "blk.0.ffn_up.weight"),
        ("smollm2-135m", "blk.0.ffn_down.weight"),
        ("smollm2-135m", "token_embd.weight"),
        ("qwen2.5-0.5b", "blk.0.attn_q.weight"),
        ("qwen2.5-0.5b", "blk.0.ffn_up.weight"),
        ("qwen2.5-0.5b", "blk.0.ffn_down.weight"),
        ("qwen2.5-0.5b", "output.weight"),
        ("gemma3-270m", "blk.0.attn_output.weight"),
        ("gemma3-270m", "blk.0.ffn_up.weight"),
        ("gemma3-270m", "blk.0.ffn_down.weight"),
    ];
    println!("threads={} isa={:?}", kernels::threads(), kernels::isa());
    println!("{:<14} {:<24} {:>6} {:>12} {:>3} {:>10} {:>10} {:>8} {:>9}", "model", "tensor", "type", "out x in", "m", "ours ms", "candle ms", "speedup", "ours rate");
    for &(model, name) in cases {
        if let Some(f) = &filter {
            if !model.contains(f.as_str()) && !name.contains(f.as_str()) {
                continue;
            }
        }
        let path = models_dir().join(format!("{model}.gguf"));
        let Ok(mut file) = std::fs::File::open(&path) else {
            println!("{model}: {} missing, skipped", path.display());
            continue;
        };
        let content = gguf_file::Content::read(&mut file)?;
        let qt = content.tensor(&mut file, name, &Device::Cpu)?;
        let dtype = qt.dtype();
        let qt2 = content.tensor(&mut file, name, &Device::Cpu)?;
        let (rows, k) = qt.shape().dims2()?;
        let ours = QLinear::from_qtensor_with(qt, &QLinearOptions::default())?;
        let cand = QLinear::from_qtensor_with(qt2, &QLinearOptions { backend: Backend::Candle, ..Default::default() })?;
        for m in [1usize, 128] {
            let x = Tensor::randn(0f32, 1.0, (1, m, k), &Device::Cpu)?;
            let reps = if rows * k * m > 500_000_000 { 2 } else { 10 };
            let diff = (ours.forward(&x)? - cand.forward(&x)?)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            let t_ours = best(reps, || {
                ours.forward(&x).expect("forward");
            });
            let t_cand = best(reps.min(3), || {
                cand.forward(&x).expect("forward");
            });
            let bytes = rows as f64 * k as f64 * if m == 1 { 1.0 } else { 0.0 };
            let _ = bytes;
            println!(
                "{:<14} {:<24} {:>6} {:>12} {:>3} {:>10.3} {:>10.3} {:>7.1}x {:>9} maxdiff={diff:.4}",
                model,
                name,
                format!("{dtype:?}"),
                format!("{rows}x{k}"),
                m,
                t_ours * 1e3,
                t_cand * 1e3,
                t_cand / t_ours,
                format!("{:.1} GMAC/s", rows as f64 * k as f64 * m as f64 / t_ours / 1e9),
            );
        }
    }
    Ok(())
}
