//! `brandvoice draft …` — the drafting pipeline from the terminal — and
//! `brandvoice draft --suite FILE` — the committed suite run end to end with
//! a summary of the service targets (fallback rate per brand, error
//! violations left in non-fallback drafts, invented URLs/orders/prices,
//! latency p50/p90 for n = 1 and n = 4, prefix-cache hits).
//!
//! Thin: arguments → `DraftRequest` → `draft::validate` → `Drafter::draft`.
//! The suite re-checks every returned draft independently of the pipeline
//! (a fresh lint plus the invented-content check), so a pipeline bug that let
//! a bad draft through shows up in the numbers rather than being trusted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use brandvoice::draft::{self, check, Customer, DraftRequest, DraftResponse, Drafter, Limits};
use brandvoice::mood::MoodDetector;
use brandvoice::style::lint::{Fact, LintRequest, StyleBook};
use brandvoice::style::rule::Level;
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct DraftArgs {
    /// The customer's message, or `-` to read it from stdin (not with --suite).
    #[arg(required_unless_present = "suite")]
    text: Option<String>,
    #[arg(long, required_unless_present = "suite")]
    brand: Option<String>,
    #[arg(long, required_unless_present = "suite")]
    channel: Option<String>,
    /// One of the seven moods (detected when absent).
    #[arg(long)]
    mood: Option<String>,
    /// Reply language (the customer's when absent).
    #[arg(long)]
    language: Option<String>,
    /// A fact the reply must carry: `TEXT` or `TEXT=URL` (repeatable).
    #[arg(long = "fact", value_name = "TEXT[=URL]")]
    facts: Vec<String>,
    /// The intent (picks the fallback); inferred from the message when absent.
    #[arg(long)]
    intent: Option<String>,
    /// The customer's name.
    #[arg(long)]
    name: Option<String>,
    /// Alternatives (1–8).
    #[arg(long, default_value_t = 1)]
    n: usize,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Model name or GGUF path.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// Engine threads (default: BRANDVOICE_THREADS, else all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON instead of the human form.
    #[arg(long)]
    json: bool,
    /// Also print the prompt the model sees.
    #[arg(long)]
    show_prompt: bool,
    /// Run a JSONL suite of {"id","lang","mood","request":{…}} cases.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    suite: Option<PathBuf>,
    /// Where the suite writes one JSON line per run.
    #[arg(long, value_name = "FILE.jsonl", requires = "suite")]
    out: Option<PathBuf>,
    /// The `n` values the suite runs each case with.
    #[arg(long, value_delimiter = ',', default_value = "1,4", requires = "suite")]
    suite_n: Vec<usize>,
    /// Run only the first K cases of the suite.
    #[arg(long, requires = "suite")]
    limit: Option<usize>,
    /// Before the timed suite run, fill the prefix cache with the shared prompt
    /// part of every brand + channel + mood + language the suite's cases use
    /// (what a warm server holds); the warm-up is reported, not timed.
    #[arg(long, requires = "suite")]
    warm: bool,
    /// Byte budget of the prefix KV cache, in MiB.
    #[arg(long, default_value_t = 256)]
    prefix_cache_mb: usize,
}

fn parse_fact(s: &str) -> Fact {
    match s.rsplit_once('=') {
        Some((t, u)) if u.starts_with("http://") || u.starts_with("https://") => Fact { text: t.trim().to_string(), url: Some(u.trim().to_string()) },
        _ => Fact { text: s.trim().to_string(), url: None },
    }
}

pub(crate) fn load_drafter(model: &str, threads: Option<usize>) -> anyhow::Result<Drafter> {
    load_drafter_with_cache(model, threads, 256 << 20)
}

pub(crate) fn load_drafter_with_cache(model: &str, threads: Option<usize>, cache_bytes: usize) -> anyhow::Result<Drafter> {
    super::generate::apply_threads(threads)?;
    let book = Arc::new(StyleBook::load(brandvoice::style::default_prompts_dir())?);
    let mood = Arc::new(MoodDetector::load().context("loading the mood detector")?);
    let path = brandvoice::models::resolve(model)?;
    let m = brandvoice::engine::model::load(&path, &brandvoice::engine::model::LoadOptions::default()).with_context(|| format!("loading {}", path.display()))?;
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| model.to_string());
    Drafter::new(m, name, book, mood, cache_bytes).with_prompts_dir(&brandvoice::style::default_prompts_dir()).map_err(Into::into)
}

pub fn draft(a: DraftArgs) -> anyhow::Result<ExitCode> {
    if let Some(suite) = a.suite.clone() {
        return run_suite(&a, &suite);
    }
    let text = match a.text.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the message from stdin")?;
            s
        }
        Some(t) => t.to_string(),
        None => bail!("a message (TEXT or -) is required"),
    };
    let mut drafter = load_drafter_with_cache(&a.model, a.threads, a.prefix_cache_mb << 20)?;
    let req = DraftRequest {
        brand: a.brand.clone().unwrap_or_default(),
        channel: a.channel.clone().unwrap_or_default(),
        message: text,
        mood: a.mood.clone(),
        language: a.language.clone(),
        customer: a.name.clone().map(|n| Customer { name: Some(n), ..Default::default() }),
        facts: a.facts.iter().map(|f| parse_fact(f)).collect(),
        intent: a.intent.clone(),
        n: Some(a.n),
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        seed: a.seed,
        ..Default::default()
    };
    let valid = draft::validate(drafter.book(), &Limits::default(), req)?;
    if a.show_prompt {
        // The mood and language the draft will use (detected when not given).
        let u = drafter.understand(&valid)?;
        let p = drafter.plan(&valid, &u.mood.label, &u.language)?;
        eprintln!("--- system ---\n{}\n--- exemplars ---", p.system);
        for (c, r) in &p.exemplars {
            eprintln!("customer: {c}\nreply: {r}\n");
        }
        eprintln!("--- user ---\n{}\n---", p.user);
    }
    let resp = drafter.draft(&valid, &mut |_| true)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &resp)?;
        writeln!(out)?;
    } else {
        print_human(&mut out, &resp)?;
    }
    Ok(if resp.drafts.iter().all(|d| d.fallback) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_human(out: &mut impl Write, r: &DraftResponse) -> std::io::Result<()> {
    writeln!(out, "mood: {} ({:.2}{})  language: {}  intent: {}  model: {}  seed: {}", r.mood.label, r.mood.confidence, if r.mood.detected { ", detected" } else { "" }, r.language, r.intent, r.model, r.seed)?;
    for f in &r.escalation {
        writeln!(out, "escalation: {}", serde_json::to_string(f).unwrap_or_default())?;
    }
    for (i, d) in r.drafts.iter().enumerate() {
        let parts: Vec<String> = d.score.parts.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        writeln!(out, "\n#{} score {:.1} ({}){}{}", i + 1, d.score.overall, parts.join(", "), if d.fallback { "  [fallback]" } else { "" }, d.seed.map(|s| format!("  seed {s}")).unwrap_or_default())?;
        for line in d.text.lines() {
            writeln!(out, "  {line}")?;
        }
        if let Some(why) = &d.fallback_reason {
            writeln!(out, "  (fallback: {why})")?;
        }
        for v in &d.violations {
            writeln!(out, "  - {}:{}: {}", level_name(v.level), v.check, v.message)?;
        }
        for f in &d.fixes {
            writeln!(out, "  * fixed by {}", f.check)?;
        }
    }
    let t = &r.timings;
    writeln!(
        out,
        "\ntimings: understand {:.0} ms, plan {:.0} ms, prefill {:.0} ms, first token {:.0} ms, generate {:.0} ms, check {:.0} ms, total {:.0} ms; prompt {} tokens ({} shared, {} cached, {} computed), {} generated, {} round(s), {} rejected",
        t.understand_ms, t.plan_ms, t.prefill_ms, t.first_token_ms, t.generate_ms, t.check_ms, t.total_ms, t.prompt_tokens, t.shared_tokens, t.cached_tokens, t.prefill_tokens, t.generated_tokens, t.rounds, t.rejected
    )
}

fn level_name(l: Level) -> String {
    serde_json::to_value(l).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| format!("{l:?}"))
}

/// One line of a suite file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteCase {
    pub id: String,
    /// The customer's language (a label for the summary).
    pub lang: String,
    /// The mood the message was written with (a label; the request leaves
    /// mood out so it is detected, unless `request.mood` is set).
    pub mood: String,
    pub request: DraftRequest,
}

#[derive(Debug, Serialize)]
struct SuiteLine<'a> {
    id: &'a str,
    n: usize,
    brand: &'a str,
    channel: &'a str,
    lang: &'a str,
    mood_label: &'a str,
    /// Error-level violations a fresh lint finds in returned non-fallback drafts.
    recheck_errors: usize,
    /// URLs, order numbers and prices in returned drafts that the request lacks.
    invented: usize,
    response: &'a DraftResponse,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn run_suite(a: &DraftArgs, path: &PathBuf) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let c: SuiteCase = serde_json::from_str(line).with_context(|| format!("{}:{}: not a suite case", path.display(), i + 1))?;
        cases.push((i + 1, c));
    }
    if let Some(k) = a.limit {
        cases.truncate(k);
    }
    let mut drafter = load_drafter_with_cache(&a.model, a.threads, a.prefix_cache_mb << 20)?;
    let book = drafter.book().clone();
    // Validate everything first: a bad line fails before any model work.
    let mut valid = Vec::new();
    for (line, c) in &cases {
        for &n in &a.suite_n {
            let mut r = c.request.clone();
            r.n = Some(n);
            r.seed = Some(r.seed.unwrap_or(7));
            let v = draft::validate(&book, &Limits::default(), r).with_context(|| format!("{}:{line} ({})", path.display(), c.id))?;
            valid.push((c, n, v));
        }
    }
    let mut out = match &a.out {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)),
        None => None,
    };
    // Warm-up (pages in weights, starts the pool); not counted.
    if let Some((_, _, v)) = valid.first() {
        let mut w = v.clone();
        w.n = 1;
        drafter.draft(&w, &mut |_| true)?;
    }
    if a.warm {
        let mut combos = Vec::new();
        for (c, _, v) in &valid {
            let combo = drafter.combo_of(v).with_context(|| format!("case {}", c.id))?;
            if !combos.contains(&combo) {
                combos.push(combo);
            }
        }
        let r = drafter.warm(&combos)?;
        let st = drafter.generator().cache_stats();
        eprintln!(
            "warm-up: {} of {} brand+channel+mood+language combinations cached ({} prompt tokens fed, {:.1} s; prefix cache {} MiB of {} MiB){}",
            r.warmed,
            combos.len(),
            r.tokens_fed,
            r.ms / 1000.0,
            st.bytes >> 20,
            st.budget_bytes >> 20,
            if r.full { " — the cache is full: raise --prefix-cache-mb" } else { "" }
        );
    }
    let started = Instant::now();
    #[derive(Default)]
    struct Acc {
        runs: usize,
        fallback: usize,
    }
    let mut per_brand: BTreeMap<String, Acc> = BTreeMap::new();
    let mut lat: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut lat_twitter: Vec<f64> = Vec::new();
    let (mut non_fallback, mut recheck_bad, mut invented_total, mut cache_hits, mut runs) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut prompt_tokens, mut cached_tokens) = (0usize, 0usize);
    let (mut mood_right, mut lang_right, mut n1_runs) = (0usize, 0usize, 0usize);
    let mut rounds_total = 0usize;
    let (mut computed_tokens, mut shared_tokens, mut generated_tokens) = (0usize, 0usize, 0usize);
    let mut first_token: Vec<f64> = Vec::new();
    for (i, (c, n, v)) in valid.iter().enumerate() {
        let resp = drafter.draft(v, &mut |_| true).with_context(|| format!("case {}", c.id))?;
        let lint_req = book.validate(&LintRequest { brand: v.brand.clone(), channel: v.channel.clone(), mood: Some(resp.mood.label.clone()), language: Some(resp.language.clone()), facts: v.facts.clone() }, "")?;
        let source = check::request_text(v);
        let brand = &book.brands[&v.brand].guide;
        let mut approved = source.clone();
        for s in brand.sign_offs.values().flat_map(|m| m.values()).flatten() {
            approved.push('\n');
            approved.push_str(s);
        }
        for r in &brand.required_phrases {
            approved.extend(r.text.values().map(|t| format!("\n{t}")));
        }
        let mut recheck_errors = 0;
        let mut invented = 0;
        for d in &resp.drafts {
            invented += check::invented(&d.text, &approved).len();
            if !d.fallback {
                non_fallback += 1;
                let errs = book.lint(&lint_req, &d.text).iter().filter(|x| x.level == Level::Error).count() + check::garbled(&d.text).len();
                if errs > 0 {
                    recheck_bad += 1;
                }
                recheck_errors += errs;
            }
        }
        invented_total += invented;
        runs += 1;
        rounds_total += resp.timings.rounds;
        cache_hits += resp.timings.cache_hit as usize;
        prompt_tokens += resp.timings.prompt_tokens;
        cached_tokens += resp.timings.cached_tokens;
        computed_tokens += resp.timings.prefill_tokens;
        shared_tokens += resp.timings.shared_tokens;
        generated_tokens += resp.timings.generated_tokens;
        first_token.push(resp.timings.first_token_ms);
        lat.entry(*n).or_default().push(resp.timings.total_ms);
        if *n == 1 {
            n1_runs += 1;
            let acc = per_brand.entry(v.brand.clone()).or_default();
            acc.runs += 1;
            acc.fallback += resp.drafts.iter().all(|d| d.fallback) as usize;
            mood_right += (resp.mood.label == c.mood) as usize;
            lang_right += (resp.language == c.lang || !brand.languages.contains(&c.lang)) as usize;
            if v.channel == "twitter" {
                lat_twitter.push(resp.timings.total_ms);
            }
        }
        if let Some(o) = out.as_mut() {
            let line = SuiteLine { id: &c.id, n: *n, brand: &v.brand, channel: &v.channel, lang: &c.lang, mood_label: &c.mood, recheck_errors, invented, response: &resp };
            serde_json::to_writer(&mut *o, &line)?;
            writeln!(o)?;
        }
        eprint!("\r{}/{} runs", i + 1, valid.len());
    }
    eprintln!();
    if let Some(mut o) = out {
        o.flush()?;
    }
    let mut s = std::io::stdout().lock();
    writeln!(s, "suite {} — model {} — {} cases, {} runs in {:.0} s", path.display(), drafter.model_name(), cases.len(), runs, started.elapsed().as_secs_f64())?;
    writeln!(s, "fallback rate (n=1):")?;
    let (mut fb, mut tot) = (0, 0);
    for (b, acc) in &per_brand {
        fb += acc.fallback;
        tot += acc.runs;
        writeln!(s, "  {b:<10} {:>5.1}% ({}/{})", 100.0 * acc.fallback as f64 / acc.runs.max(1) as f64, acc.fallback, acc.runs)?;
    }
    writeln!(s, "  {:<10} {:>5.1}% ({fb}/{tot})", "all", 100.0 * fb as f64 / tot.max(1) as f64)?;
    writeln!(s, "non-fallback drafts with an error-level violation on re-lint: {recheck_bad} of {non_fallback}")?;
    writeln!(s, "invented URLs/order numbers/prices in returned drafts: {invented_total}")?;
    for (n, v) in lat.iter_mut() {
        writeln!(s, "latency n={n}: p50 {:.0} ms, p90 {:.0} ms ({} runs)", pct(v, 0.5), pct(v, 0.9), v.len())?;
    }
    writeln!(s, "latency n=1 twitter: p50 {:.0} ms ({} runs)", pct(&mut lat_twitter, 0.5), lat_twitter.len())?;
    writeln!(s, "prefix cache: {:.0}% of runs hit, {:.0}% of prompt tokens reused", 100.0 * cache_hits as f64 / runs.max(1) as f64, 100.0 * cached_tokens as f64 / prompt_tokens.max(1) as f64)?;
    let per = |x: usize| x as f64 / runs.max(1) as f64;
    writeln!(
        s,
        "tokens per run (mean): prompt {:.0}, shared {:.0}, computed (prefill) {:.0}, generated {:.0} (all rounds); first token p50 {:.0} ms",
        per(prompt_tokens),
        per(shared_tokens),
        per(computed_tokens),
        per(generated_tokens),
        pct(&mut first_token, 0.5)
    )?;
    writeln!(s, "mood detected = label: {mood_right}/{n1_runs}; reply language = customer's (where served): {lang_right}/{n1_runs}; mean rounds {:.2}", rounds_total as f64 / runs.max(1) as f64)?;
    Ok(if recheck_bad > 0 || invented_total > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_parse_with_and_without_url() {
        assert_eq!(parse_fact("arrives Friday=https://x.io/t/1"), Fact { text: "arrives Friday".into(), url: Some("https://x.io/t/1".into()) });
        assert_eq!(parse_fact("2+2=4"), Fact { text: "2+2=4".into(), url: None });
    }
}
