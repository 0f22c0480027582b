//! Whole-model speed, measured like llama.cpp's `llama-bench -p 128 -n 64`:
//! pp = one 128-token forward from an empty cache, tg = 64 single-token
//! forwards from an empty cache. Prints best and median of `BENCH_REPS` runs
//! and the process's peak RSS.
//!
//! `cargo bench --bench model -- MODEL [THREADS]` (MODEL: a name under
//! `BRANDVOICE_MODELS` or a path).

use brandvoice::engine::kernels;
use brandvoice::engine::model::{load_lm, LoadOptions};
use std::time::Instant;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let model = args.first().cloned().unwrap_or_else(|| "smollm2-135m".into());
    if let Some(t) = args.get(1).and_then(|t| t.parse().ok()) {
        kernels::set_threads(t);
    }
    let path = if model.ends_with(".gguf") {
        std::path::PathBuf::from(&model)
    } else {
        let dir = std::env::var_os("BRANDVOICE_MODELS").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/brandvoice/models")
        });
        dir.join(format!("{model}.gguf"))
    };
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let t = Instant::now();
    let mut lm = load_lm(&path, &LoadOptions::default())?;
    let load_s = t.elapsed().as_secs_f64();
    let vocab = lm.info().vocab_size as u32;
    let prompt: Vec<u32> = (0..128u32).map(|i| (i * 7919 + 13) % vocab.min(30000)).collect();
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..reps + 1 {
        let only_tg = std::env::var("BENCH_ONLY").map(|v| v == "tg").unwrap_or(false);
        lm.reset();
        let t = Instant::now();
        if !only_tg {
            lm.forward(&prompt, 0)?;
        }
        pp.push(128.0 / t.elapsed().as_secs_f64());
        lm.reset();
        let t = Instant::now();
        for i in 0..64 {
            lm.forward(&[prompt[i]], i)?;
        }
        tg.push(64.0 / t.elapsed().as_secs_f64());
    }
    // Drop the warm-up run.
    pp.remove(0);
    tg.remove(0);
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() - 1], v[v.len() / 2])
    };
    let (ppb, ppm) = stat(&mut pp);
    let (tgb, tgm) = stat(&mut tg);
    println!(
        "{model} threads={} isa={:?} load={load_s:.2}s pp128 best {ppb:.1} median {ppm:.1} tok/s | tg64 best {tgb:.1} median {tgm:.1} tok/s | peak RSS {:.0} MB",
        kernels::threads(),
        kernels::isa(),
        peak_rss_mb()
    );
    Ok(())
}
