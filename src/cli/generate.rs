//! `brandvoice generate` and `brandvoice bench`: thin layers over
//! `engine::generate`. `generate` turns flags into `GenerateOptions` and prints
//! text (or JSON); `bench` measures the phases the product cares about —
//! prompt processing, decoding, time to first token cold and with a cached
//! prefix, peak memory — the same way every time, so numbers from different
//! days and machines can be compared as ratios to llama.cpp.

use anyhow::Context;
use brandvoice::engine::generate::{
    chat_prompt, raw_prompt, FinishReason, GenerateOptions, GenerateOutput, Generator,
};
use brandvoice::engine::model::{CausalLm, LoadOptions};
use brandvoice::engine::prefix_cache::PrefixCache;
use brandvoice::engine::sampling::{argmax, SamplingParams};
use brandvoice::engine::template::{ChatMessage, ChatTemplate};
use brandvoice::engine::tokenizer::Tokenizer;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Environment variable for the engine's thread count (the `--threads` flag wins).
pub const THREADS_ENV: &str = "BRANDVOICE_THREADS";

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Model: a known name, a .gguf path or hf:owner/repo/file.gguf.
    #[arg(long, default_value = "qwen2.5-0.5b")]
    pub model: String,
    /// The prompt (`-` reads it from stdin).
    #[arg(long)]
    pub prompt: String,
    /// A system message; implies --chat.
    #[arg(long)]
    pub system: Option<String>,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// Parse control-token text (e.g. `<|im_start|>`) in a raw prompt.
    #[arg(long)]
    pub parse_special: bool,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// 1 = off.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// 1 = off (llama.cpp semantics).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of candidates (candidate i uses seed + i), decoded as one batch.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Print text as it is generated.
    #[arg(long)]
    pub stream: bool,
    /// Stop string (repeatable); the text ends before it.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Print one JSON object (with --stream: one JSON line per chunk, then the result).
    #[arg(long)]
    pub json: bool,
    /// Engine threads (default: BRANDVOICE_THREADS, else all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "qwen2.5-0.5b")]
    pub model: String,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    /// Cached prefix length for `cached_prefix_ttft_ms`.
    #[arg(long, default_value_t = 300)]
    pub prefix_tokens: usize,
    /// New tokens after the cached prefix for `cached_prefix_ttft_ms`.
    #[arg(long, default_value_t = 20)]
    pub suffix_tokens: usize,
    /// Engine threads (default: BRANDVOICE_THREADS, else all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tokens already in the cache when generation is timed (llama-bench's
    /// `-d`): 0 times generation from an empty cache; the drafting prompts
    /// are ~600 tokens, so `--depth 600` is what a draft's decode steps cost.
    #[arg(long, default_value_t = 0)]
    pub depth: usize,
    /// Sequences decoded together in the generation timing (a draft's `n`
    /// candidates): with `--depth`, they share the cached tokens.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Sets the engine's thread count before any parallel work starts: candle's
/// CPU kernels read `RAYON_NUM_THREADS`, and the global rayon pool is sized
/// once. Returns the count in effect.
pub fn apply_threads(flag: Option<usize>) -> anyhow::Result<usize> {
    let from_env = match std::env::var(THREADS_ENV) {
        Ok(v) => Some(v.trim().parse::<usize>().with_context(|| {
            format!("{THREADS_ENV} must be a positive whole number, got `{v}`")
        })?),
        Err(_) => None,
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let n = flag.or(from_env).unwrap_or(cores);
    if n == 0 || n > 256 {
        anyhow::bail!("--threads must be between 1 and 256, got {n}");
    }
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var(THREADS_ENV, n.to_string());
    // Fails only if a pool already exists (then it already has its size).
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    Ok(n)
}

/// A loaded model with what generation needs around it.
struct Loaded {
    path: PathBuf,
    model: Box<dyn CausalLm>,
    tokenizer: Tokenizer,
    template: ChatTemplate,
}

fn load(spec: &str) -> anyhow::Result<Loaded> {
    let path = brandvoice::models::resolve(spec).with_context(|| format!("resolving model `{spec}`"))?;
    let loaded = brandvoice::engine::model::load(&path, &LoadOptions::default())
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(Loaded { path, model: loaded.lm, tokenizer: loaded.tokenizer, template: loaded.template })
}

pub fn generate(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    apply_threads(a.threads)?;
    if a.stream && !a.json && a.n > 1 {
        anyhow::bail!("--stream with --n {} needs --json (chunks of several candidates interleave)", a.n);
    }
    let prompt_text = if a.prompt == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading the prompt from stdin")?;
        s
    } else {
        a.prompt.clone()
    };
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repeat_penalty: a.repeat_penalty,
            repeat_last_n: a.repeat_last_n,
            seed: a.seed,
            ..SamplingParams::default()
        },
        stop: a.stop.clone(),
        n: a.n,
        ignore_eog: false,
        speculate: Default::default(),
    };
    // Check the flags before spending seconds on loading.
    opts.validate(usize::MAX).map_err(|e| anyhow::anyhow!("{e}"))?;

    let Loaded { path, model, tokenizer, template } = load(&a.model)?;
    let prompt = if a.chat || a.system.is_some() {
        let mut messages = Vec::new();
        if let Some(s) = &a.system {
            messages.push(ChatMessage { role: "system".into(), content: s.clone() });
        }
        messages.push(ChatMessage { role: "user".into(), content: prompt_text });
        chat_prompt(&tokenizer, &template, &messages)?
    } else {
        raw_prompt(&tokenizer, &prompt_text, a.parse_special)?
    };
    let mut gen = Generator::new(model, Arc::new(tokenizer), PrefixCache::new(0));

    let stdout = std::io::stdout();
    let mut write_err: Option<std::io::Error> = None;
    let mut on_chunk = |i: usize, chunk: &str| -> bool {
        if !a.stream {
            return true;
        }
        let mut out = stdout.lock();
        let r = if a.json {
            writeln!(out, "{}", serde_json::json!({ "candidate": i, "text": chunk }))
        } else {
            write!(out, "{chunk}").and_then(|_| out.flush())
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                // A closed pipe cancels the generation.
                write_err = Some(e);
                false
            }
        }
    };
    let out = gen.generate(&prompt, &opts, None, &mut on_chunk)?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to stdout");
        }
    }
    print_result(&a, &path, &out)?;
    Ok(ExitCode::SUCCESS)
}

fn print_result(a: &GenerateArgs, path: &std::path::Path, out: &GenerateOutput) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({
            "model": a.model,
            "file": path.display().to_string(),
            "seed": a.seed,
            "candidates": out.candidates,
            "timings": out.timings,
        });
        writeln!(stdout, "{v}")?;
    } else {
        for c in &out.candidates {
            if a.stream {
                writeln!(stdout)?;
            } else if out.candidates.len() > 1 {
                writeln!(stdout, "--- candidate {} (seed {}, {}) ---\n{}", c.index, c.seed, finish_name(c.finish), c.text)?;
            } else {
                writeln!(stdout, "{}", c.text)?;
            }
        }
        let t = &out.timings;
        eprintln!(
            "[{} prompt tokens ({} cached) in {:.0} ms; {} tokens in {:.0} ms = {:.1} tok/s; first token after {:.0} ms; finish: {}]",
            t.prompt_tokens,
            t.cached_tokens,
            t.prefill_ms,
            t.generated_tokens,
            t.generate_ms,
            t.tokens_per_s,
            t.ttft_ms,
            out.candidates.iter().map(|c| finish_name(c.finish)).collect::<Vec<_>>().join(",")
        );
    }
    Ok(())
}

fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Eog => "eog",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
    }
}

/// Ordinary support-desk English: the bench prompt is real text, so the
/// tokens are the kind the product feeds.
const BENCH_TEXT: &str = "Thank you for contacting us about your recent order. We are sorry to hear that the \
package arrived late and that one of the items was damaged in transit. We have checked the tracking details and \
can confirm that the parcel was delayed at the regional sorting centre because of the storms last week. A \
replacement for the damaged item has been sent today by express delivery, and you should receive it within two \
working days. You do not need to return the damaged item. We have also refunded the shipping cost of 4.99 to your \
original payment method; depending on your bank, it may take three to five days to appear on your statement. If \
anything else is not right with your order, reply to this message and a member of our team will help you. ";

/// `n` tokens of real text (repeated as needed), BOS first when the model wants it.
fn bench_tokens(tok: &Tokenizer, n: usize, salt: &str) -> anyhow::Result<Vec<u32>> {
    let mut ids = raw_prompt(tok, salt, false)?;
    let body = tok.encode(BENCH_TEXT, false)?;
    if body.is_empty() {
        anyhow::bail!("the tokenizer produced no tokens for the bench text");
    }
    while ids.len() < n {
        ids.extend_from_slice(&body);
    }
    ids.truncate(n);
    Ok(ids)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// CPU time of the calling thread in ms (`/proc/thread-self/schedstat`,
/// nanosecond resolution); `None` off Linux. With `--threads 1` every
/// kernel runs on this thread, so it is the work itself, untouched by how
/// long the thread waited for a core on a busy machine.
fn thread_cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}

/// Peak resident set size in MB (`VmHWM` of /proc/self/status); `None` off Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let threads = apply_threads(a.threads)?;
    if a.batch == 0 || a.batch > 8 {
        anyhow::bail!("--batch must be between 1 and 8, got {}", a.batch);
    }
    if a.batch > 1 && a.depth == 0 {
        anyhow::bail!("--batch {} needs --depth > 0 (the sequences fork from the cached tokens)", a.batch);
    }
    if a.prompt_tokens == 0 || a.gen_tokens == 0 || a.repeat == 0 || a.suffix_tokens == 0 {
        anyhow::bail!(
            "--prompt-tokens, --gen-tokens, --suffix-tokens and --repeat must be at least 1, got {}, {}, {}, {}",
            a.prompt_tokens,
            a.gen_tokens,
            a.suffix_tokens,
            a.repeat
        );
    }
    let t_load = Instant::now();
    let Loaded { path, model, tokenizer, template: _ } = load(&a.model)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1000.0;
    let ctx = model.info().context_length;
    let need = (a.prompt_tokens.max(a.prefix_tokens + a.suffix_tokens)).max(a.depth + a.gen_tokens + 1);
    if need >= ctx {
        anyhow::bail!("the bench needs {need} positions but the model's context length is {ctx}");
    }
    let file_size = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?.len();
    let info = model.info().clone();
    let prompt = bench_tokens(&tokenizer, a.prompt_tokens, "")?;
    let prefix = bench_tokens(&tokenizer, a.prefix_tokens, "")?;
    let depth = bench_tokens(&tokenizer, a.depth, "")?;
    let tokenizer = Arc::new(tokenizer);

    let mut m = model;
    // Warm-up (page in the weights, size the thread pool), like llama-bench.
    m.reset();
    m.forward(&prompt[..prompt.len().min(16)], 0)?;

    let (mut pp, mut tg, mut ttft, mut cached) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut pp_cpu, mut cached_cpu, mut tg_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..a.repeat {
        // Prompt processing: one forward over the whole prompt from empty.
        m.reset();
        let c = thread_cpu_ms();
        let t = Instant::now();
        let logits = m.forward(&prompt, 0)?.to_vec1::<f32>()?;
        pp.push(a.prompt_tokens as f64 / t.elapsed().as_secs_f64());
        if let (Some(c0), Some(c1)) = (c, thread_cpu_ms()) {
            pp_cpu.push(c1 - c0);
        }
        std::hint::black_box(argmax(&logits));

        // Generation: one token per step after `depth` cached tokens
        // (llama-bench's tg with `-d`; from an empty cache by default).
        m.reset();
        let mut tok = prompt[0];
        if !depth.is_empty() {
            m.forward(&depth, 0)?;
            tok = depth[depth.len() - 1];
        }
        if a.batch > 1 {
            m.fork_batch(a.batch)?;
        }
        let c = thread_cpu_ms();
        let t = Instant::now();
        for pos in a.depth..a.depth + a.gen_tokens {
            if a.batch > 1 {
                let logits = m.forward_batch(&vec![tok; a.batch], pos)?.to_vec2::<f32>()?;
                tok = argmax(&logits[0]).unwrap_or(0);
            } else {
                let logits = m.forward(&[tok], pos)?.to_vec1::<f32>()?;
                tok = argmax(&logits).unwrap_or(0);
            }
        }
        tg.push(a.gen_tokens as f64 / t.elapsed().as_secs_f64());
        if let (Some(c0), Some(c1)) = (c, thread_cpu_ms()) {
            tg_cpu.push((c1 - c0) / a.gen_tokens as f64);
        }

        // Time to first token through the generator, cold (no cache).
        let greedy1 = GenerateOptions { max_tokens: 1, sampling: SamplingParams::greedy(), ignore_eog: true, ..Default::default() };
        let mut cold = Generator::new(m.box_clone(), tokenizer.clone(), PrefixCache::new(0));
        let out = cold.generate(&prompt, &greedy1, None, &mut |_, _| true)?;
        ttft.push(out.timings.ttft_ms);

        // Time to first token with a cached prefix: warm the cache with prefix
        // + suffix A, move the working state elsewhere, then ask prefix + B.
        let mut warm = Generator::new(m.box_clone(), tokenizer.clone(), PrefixCache::default());
        let salt_a = format!("Order {r}A: ");
        let salt_b = format!("Order {r}B: ");
        let suffix_a = suffix_tokens(&tokenizer, &salt_a, a.suffix_tokens)?;
        let suffix_b = suffix_tokens(&tokenizer, &salt_b, a.suffix_tokens)?;
        let first = [prefix.as_slice(), suffix_a.as_slice()].concat();
        let second = [prefix.as_slice(), suffix_b.as_slice()].concat();
        warm.generate(&first, &greedy1, None, &mut |_, _| true)?;
        let other = bench_tokens(&tokenizer, 8, "Unrelated: ")?;
        warm.generate(&other, &greedy1, None, &mut |_, _| true)?;
        let c = thread_cpu_ms();
        let out = warm.generate(&second, &greedy1, None, &mut |_, _| true)?;
        if let (Some(c0), Some(c1)) = (c, thread_cpu_ms()) {
            cached_cpu.push(c1 - c0);
        }
        if out.timings.cached_tokens < a.prefix_tokens {
            anyhow::bail!(
                "prefix cache reused {} tokens, expected at least {}",
                out.timings.cached_tokens,
                a.prefix_tokens
            );
        }
        cached.push(out.timings.ttft_ms);
    }

    let v = serde_json::json!({
        "model": a.model,
        "file": path.display().to_string(),
        "file_size_mb": file_size as f64 / 1e6,
        "arch": info.arch,
        "threads": threads,
        "prompt_tokens": a.prompt_tokens,
        "gen_tokens": a.gen_tokens,
        "repeat": a.repeat,
        "load_ms": round1(load_ms),
        "prompt_tok_s": round1(median(pp)),
        "gen_tok_s": round1(median(tg)),
        "gen_depth": a.depth,
        "gen_batch": a.batch,
        "ttft_ms": round1(median(ttft)),
        "cached_prefix_tokens": a.prefix_tokens,
        "cached_suffix_tokens": a.suffix_tokens,
        "cached_prefix_ttft_ms": round1(median(cached)),
        "peak_rss_mb": peak_rss_mb().map(round1),
        // Calling thread's CPU time (the whole work with --threads 1): for
        // comparing builds on a loaded machine.
        "prompt_cpu_ms": (!pp_cpu.is_empty()).then(|| round1(median(pp_cpu))),
        "cached_prefix_cpu_ms": (!cached_cpu.is_empty()).then(|| round1(median(cached_cpu))),
        "gen_cpu_ms_per_token": (!tg_cpu.is_empty()).then(|| (median(tg_cpu) * 100.0).round() / 100.0),
        "kernels": format!("{:?}", brandvoice::engine::kernels::isa()),
    });
    if a.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `n` suffix tokens that start differently per salt (no BOS).
fn suffix_tokens(tok: &Tokenizer, salt: &str, n: usize) -> anyhow::Result<Vec<u32>> {
    let mut ids = tok.encode(salt, false)?;
    let body = tok.encode(BENCH_TEXT, false)?;
    while ids.len() < n {
        ids.extend_from_slice(&body);
    }
    ids.truncate(n);
    Ok(ids)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
