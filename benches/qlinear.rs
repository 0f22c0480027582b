//! Matmul micro-benchmark: our `QLinear` against candle's `QMatMul` on real
//! weights of the shipped models (SmolLM2, Qwen2.5, Gemma 3), for one token
//! (decoding) and a 128-token prompt.
//!
//! `cargo bench --bench qlinear [-- FILTER]`; threads from `BRANDVOICE_THREADS`.
//! `-- --sweep MODEL...`: every matmul of one forward at m = 1, 4 and 128
//! (`BRANDVOICE_KQUANT=fast` for the old K-quant path, `BENCH_CPU_TIME=1`).
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

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}

/// Nanoseconds this thread has spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`, Linux).
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: plain libc call with a valid out-pointer; 3 = CLOCK_THREAD_CPUTIME_ID.
    let rc = unsafe { clock_gettime(3, &mut ts) };
    (rc == 0 && cfg!(target_os = "linux")).then(|| ts.sec as u64 * 1_000_000_000 + ts.nsec as u64)
}

/// Best of `reps` timings of `f`, in seconds, after one warm-up. With
/// `BENCH_CPU_TIME=1` (meaningful with one thread) the time this thread was on
/// a CPU is used instead of wall time, which hides other processes' load.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let cpu = std::env::var("BENCH_CPU_TIME").map(|v| v == "1").unwrap_or(false);
    // Calls per timing so one timing lasts >= ~20 ms (the /proc clock is coarse).
    let t = Instant::now();
    f();
    let inner = ((0.02 / t.elapsed().as_secs_f64().max(1e-7)) as usize).clamp(1, 10_000);
    (0..reps)
        .map(|_| {
            let c0 = thread_cpu_ns();
            let t = Instant::now();
            (0..inner).for_each(|_| f());
            let wall = t.elapsed().as_secs_f64();
            match (cpu, c0, thread_cpu_ns()) {
                (true, Some(a), Some(b)) => (b - a) as f64 * 1e-9 / inner as f64,
                _ => wall / inner as f64,
            }
        })
        .fold(f64::INFINITY, f64::min)
}

/// Every weight matmul of one forward pass of `model`, in order, as the engine
/// runs them (output head once, for the last token): projected matmul time per
/// generated token and per 128-token prompt, weights streaming from memory as
/// in a real forward (the whole model does not fit in cache).
fn sweep(model: &str, backend: Backend) -> anyhow::Result<()> {
    let path = models_dir().join(format!("{model}.gguf"));
    let mut file = std::fs::File::open(&path)?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut names: Vec<&String> = content
        .tensor_infos
        .keys()
        .filter(|n| n.starts_with("blk.") && n.ends_with(".weight") && content.tensor_infos[*n].shape.dims().len() == 2)
        .collect();
    let layer = |n: &str| n.split('.').nth(1).and_then(|l| l.parse::<usize>().ok()).unwrap_or(0);
    names.sort_by_key(|n| (layer(n), n.to_string()));
    let head = if content.tensor_infos.contains_key("output.weight") { "output.weight" } else { "token_embd.weight" };
    let opts = QLinearOptions { backend, ..QLinearOptions::from_env() };
    let load = |file: &mut std::fs::File, n: &str| -> anyhow::Result<QLinear> {
        Ok(QLinear::from_qtensor_with(content.tensor(file, n, &Device::Cpu)?, &opts)?)
    };
    let t0 = Instant::now();
    let layers: Vec<QLinear> = names.iter().map(|n| load(&mut file, n)).collect::<anyhow::Result<_>>()?;
    let head = load(&mut file, head)?;
    let load_s = t0.elapsed().as_secs_f64();
    let run = |m: usize| -> anyhow::Result<f64> {
        let xs: Vec<Tensor> = layers
            .iter()
            .map(|l| Tensor::randn(0f32, 1.0, (1, m, l.in_features()), &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        let xh = Tensor::randn(0f32, 1.0, (1, 1, head.in_features()), &Device::Cpu)?;
        let cpu = std::env::var("BENCH_CPU_TIME").map(|v| v == "1").unwrap_or(false);
        let (t, c0) = (Instant::now(), thread_cpu_ns());
        for (l, x) in layers.iter().zip(&xs) {
            l.forward(x)?;
        }
        head.forward(&xh)?;
        Ok(match (cpu, c0, thread_cpu_ns()) {
            (true, Some(a), Some(b)) => (b - a) as f64 * 1e-9,
            _ => t.elapsed().as_secs_f64(),
        })
    };
    let reps = if backend == Backend::Candle { 2 } else { 8 };
    let mut gen = f64::INFINITY;
    let mut pp = f64::INFINITY;
    let mut m4 = f64::INFINITY;
    for _ in 0..reps {
        gen = gen.min(run(1)?);
        m4 = m4.min(run(4)?);
    }
    for _ in 0..reps.min(3) {
        pp = pp.min(run(128)?);
    }
    println!(
        "{model:<14} {backend:?}: load {load_s:.2}s; matmuls per generated token {:.2} ms (bound {:.0} tok/s); per 4-token forward {:.2} ms; per 128-token prompt {:.1} ms (bound {:.0} tok/s)",
        gen * 1e3,
        1.0 / gen,
        m4 * 1e3,
        pp * 1e3,
        128.0 / pp
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--sweep") {
        let backend = if args.iter().any(|a| a == "--candle") { Backend::Candle } else { Backend::Auto };
        println!("threads={} isa={:?}", kernels::threads(), kernels::isa());
        for m in args[i + 1..].iter().filter(|a| !a.starts_with('-')) {
            sweep(m, backend)?;
        }
        return Ok(());
    }
    let filter = args.into_iter().find(|a| !a.starts_with('-'));
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
    println!("threads={} isa={:?} cpu_time={}", kernels::threads(), kernels::isa(), std::env::var("BENCH_CPU_TIME").unwrap_or_default());
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
        assert!(ours.is_native(), "{name} not on our kernels");
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
