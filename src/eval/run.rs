//! The eval runner: every case of the given suites × `repeat`, through the
//! in-process drafting pipeline, into a run directory (`results.jsonl`
//! written line by line as cases finish, then `summary.json`, `report.md`,
//! `report.html`; formats in `shared/docs` / the README "Evaluation" section).
//!
//! Reproducible: each case's seed is derived from the run seed, the case id
//! and the repeat index (sha256, so adding or reordering cases does not move
//! the seeds of the others), and the pipeline is deterministic per seed — the
//! same seed and model give the same drafts. Latency is measured, so it is
//! the one field that differs between two such runs.
//!
//! The summary is a pure function of the result lines ([`summarize`]), so
//! `eval compare` and the reports recompute exactly what a run recorded, and
//! the threshold gate ([`Threshold`]) reads metrics by the names they have in
//! `summary.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::assert::{self, Failure, Observed};
use super::suite::{ValidCase, ValidSuite};
use crate::draft::Drafter;
use crate::score::scorer::{ScoreTarget, ToneScorer};
use crate::score::ToneScore;
use crate::style::lint::{LintRequest, RuleViolation};
use crate::style::rule::Level;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
    #[error("{path}: line {line}: {message}")]
    Parse { path: String, line: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.display().to_string(), source }
}

/// A violation as a result line records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViolationLine {
    pub rule: String,
    pub level: String,
    pub message: String,
}

/// One line of `results.jsonl`: one case × one repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case_id: String,
    pub suite: String,
    pub repeat: usize,
    pub brand: String,
    pub channel: String,
    pub mood_expected: Option<String>,
    pub mood_detected: Option<String>,
    /// The language the reply is written in.
    pub language: Option<String>,
    #[serde(default)]
    pub language_expected: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub message: String,
    /// The final (best) draft.
    pub draft: String,
    pub alternatives: Vec<String>,
    pub score: Option<ToneScore>,
    pub violations: Vec<ViolationLine>,
    pub fallback: bool,
    pub latency_ms: f64,
    #[serde(default)]
    pub exemplar_similarity: Option<f32>,
    /// The seed the case was drafted with.
    #[serde(default)]
    pub seed: u64,
    pub passed: bool,
    pub failures: Vec<Failure>,
    pub error: Option<String>,
}

impl CaseResult {
    /// `case_id`, plus `#repeat` when repeat > 0 (the review item id).
    pub fn item(&self) -> String {
        if self.repeat == 0 {
            self.case_id.clone()
        } else {
            format!("{}#{}", self.case_id, self.repeat)
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub cases: usize,
    pub passed: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrandStats {
    pub cases: usize,
    pub passed: usize,
    pub mean_tone: f64,
}

/// `--fail-under` / `--fail-over` as recorded in the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub metric: String,
    /// `under` (fails when the metric is below) or `over`.
    pub fail: String,
    pub value: f64,
    pub actual: Option<f64>,
    pub ok: bool,
}

/// `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub run_id: String,
    pub suites: Vec<String>,
    pub model: String,
    pub seed: u64,
    pub repeat: usize,
    pub started: String,
    pub finished: String,
    /// Result lines (cases × repeats).
    pub cases: usize,
    pub passed: usize,
    pub pass_rate: f64,
    pub error_rate: f64,
    pub fallback_rate: f64,
    pub mean_tone: f64,
    /// Share of lines with an expected mood whose detected mood matches; null when none has one.
    pub mood_accuracy: Option<f64>,
    pub language_accuracy: Option<f64>,
    pub latency_ms: Latency,
    pub by_channel_mood: BTreeMap<String, Cell>,
    pub by_brand: BTreeMap<String, BrandStats>,
    /// Failures per assertion type.
    pub failures_by_assert: BTreeMap<String, usize>,
    /// Mean of each tone-score part.
    pub mean_parts: BTreeMap<String, f64>,
    /// /proc/loadavg at the start (1, 5, 15 min), when readable.
    pub load_avg: Option<[f64; 3]>,
    pub limit: Option<usize>,
    pub tags: Vec<String>,
    pub thresholds: Vec<ThresholdResult>,
}

/// Metrics a threshold may name (as in `summary.json`; `latency_*` are the
/// fields of `latency_ms`).
pub const METRICS: [&str; 9] = ["pass_rate", "error_rate", "fallback_rate", "mean_tone", "mood_accuracy", "language_accuracy", "latency_p50", "latency_p95", "latency_max"];

impl Summary {
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "pass_rate" => Some(self.pass_rate),
            "error_rate" => Some(self.error_rate),
            "fallback_rate" => Some(self.fallback_rate),
            "mean_tone" => Some(self.mean_tone),
            "mood_accuracy" => self.mood_accuracy,
            "language_accuracy" => self.language_accuracy,
            "latency_p50" => Some(self.latency_ms.p50),
            "latency_p95" => Some(self.latency_ms.p95),
            "latency_max" => Some(self.latency_ms.max),
            _ => None,
        }
    }
}

/// `METRIC=VALUE` for `--fail-under` (fails when the metric is below VALUE)
/// or `--fail-over` (fails when it is above).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: String,
    pub value: f64,
    pub over: bool,
}

impl Threshold {
    pub fn parse(s: &str, over: bool) -> Result<Threshold, String> {
        let flag = if over { "--fail-over" } else { "--fail-under" };
        let (m, v) = s.split_once('=').ok_or_else(|| format!("{flag}: expected METRIC=VALUE, got `{s}`"))?;
        let m = m.trim();
        if !METRICS.contains(&m) {
            return Err(format!("{flag}: unknown metric `{m}`; expected one of: {}", METRICS.join(", ")));
        }
        let value: f64 = v.trim().parse().map_err(|_| format!("{flag}: `{m}` needs a number, got `{v}`"))?;
        if !value.is_finite() {
            return Err(format!("{flag}: `{m}` needs a finite number, got `{v}`"));
        }
        Ok(Threshold { metric: m.to_string(), value, over })
    }

    pub fn check(&self, s: &Summary) -> ThresholdResult {
        let actual = s.metric(&self.metric);
        let ok = match actual {
            Some(a) if self.over => a <= self.value,
            Some(a) => a >= self.value,
            None => false,
        };
        ThresholdResult { metric: self.metric.clone(), fail: if self.over { "over" } else { "under" }.into(), value: self.value, actual, ok }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    pub out: PathBuf,
    pub model: String,
    pub repeat: usize,
    pub seed: u64,
    pub limit: Option<usize>,
    /// Run only cases with at least one of these tags (all when empty).
    pub tags: Vec<String>,
    pub thresholds: Vec<Threshold>,
}

/// The seed of one case × repeat: independent of the other cases.
pub fn case_seed(seed: u64, case_id: &str, repeat: usize) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(case_id.as_bytes());
    h.update([0u8]);
    h.update((repeat as u64).to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The cases a run will execute, in order: tag filter, then limit.
pub fn select<'a>(suites: &'a [ValidSuite], tags: &[String], limit: Option<usize>) -> Vec<&'a ValidCase> {
    let mut v: Vec<&ValidCase> = suites.iter().flat_map(|s| &s.cases).filter(|c| tags.is_empty() || c.tags.iter().any(|t| tags.contains(t))).collect();
    if let Some(n) = limit {
        v.truncate(n);
    }
    v
}

/// UTC time as (RFC 3339, `YYYYMMDD-HHMMSS`).
pub fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    utc(secs)
}

pub fn utc(secs: i64) -> (String, String) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    (format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"), format!("{y:04}{m:02}{d:02}-{h:02}{mi:02}{s:02}"))
}

/// `YYYYMMDD-HHMMSS-<suite names joined by +>`.
pub fn run_id(compact_time: &str, suites: &[String]) -> String {
    format!("{compact_time}-{}", suites.join("+"))
}

fn load_avg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = s.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

fn level_name(l: Level) -> String {
    serde_json::to_value(l).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| format!("{l:?}").to_lowercase())
}

/// Drafts one case and checks it. Pipeline errors become the line's `error`.
pub fn run_case(drafter: &mut Drafter, scorer: &ToneScorer, case: &ValidCase, seed: u64, repeat: usize) -> CaseResult {
    let mut req = case.request.clone();
    req.seed = case_seed(seed, &case.id, repeat);
    let mut r = CaseResult {
        case_id: case.id.clone(),
        suite: case.suite.clone(),
        repeat,
        brand: req.brand.clone(),
        channel: req.channel.clone(),
        mood_expected: case.mood.clone(),
        mood_detected: None,
        language: None,
        language_expected: case.language.clone(),
        tags: case.tags.clone(),
        message: req.message.clone(),
        draft: String::new(),
        alternatives: Vec::new(),
        score: None,
        violations: Vec::new(),
        fallback: false,
        latency_ms: 0.0,
        exemplar_similarity: None,
        seed: req.seed,
        passed: false,
        failures: Vec::new(),
        error: None,
    };
    let started = std::time::Instant::now();
    let resp = match drafter.draft(&req, &mut |_| true) {
        Ok(resp) => resp,
        Err(e) => {
            r.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.latency_ms = resp.timings.total_ms;
    r.mood_detected = Some(resp.mood.label.clone());
    r.language = Some(resp.language.clone());
    let Some(best) = resp.drafts.first() else {
        r.error = Some("the pipeline returned no draft".into());
        return r;
    };
    r.draft = best.text.clone();
    r.fallback = best.fallback;
    r.alternatives = resp.drafts[1..].iter().map(|d| d.text.clone()).collect();
    // The pipeline's violations (its own checks included), plus a fresh
    // lint, so a pipeline bug that let an error through is not trusted away.
    let mut violations: Vec<RuleViolation> = best.violations.clone();
    let book = scorer.book();
    if let Ok(lr) = book.validate(&LintRequest { brand: req.brand.clone(), channel: req.channel.clone(), mood: Some(resp.mood.label.clone()), language: Some(resp.language.clone()), facts: req.facts.clone() }, "") {
        for v in book.lint(&lr, &best.text) {
            if !violations.iter().any(|x| x.check == v.check && x.message == v.message) {
                violations.push(v);
            }
        }
    }
    r.violations = violations.iter().map(|v| ViolationLine { rule: v.check.clone(), level: level_name(v.level), message: v.message.clone() }).collect();
    // The reply should fit the customer's real mood: the expected one when the case names it.
    let mood = case.mood.clone().unwrap_or_else(|| resp.mood.label.clone());
    match scorer.score(&ScoreTarget { brand: &req.brand, channel: &req.channel, mood: &mood, language: &resp.language, text: &best.text, violations: Some(&best.violations) }) {
        Ok(s) => r.score = Some(s),
        Err(e) => tracing::warn!(case = %case.id, "tone score failed: {e}"),
    }
    r.exemplar_similarity = scorer.voice_similarity(&req.brand, &best.text).map(|v| v.0);
    let o = Observed {
        draft: &best.text,
        violations: &violations,
        fallback: best.fallback,
        mood: &resp.mood.label,
        language: &resp.language,
        tone: r.score.as_ref().map(|s| s.overall),
        exemplar_similarity: r.exemplar_similarity,
        latency_ms: r.latency_ms,
    };
    r.failures = assert::evaluate(&case.asserts, &o);
    r.passed = r.failures.is_empty();
    r
}

/// Runs every selected case × repeat, appending each line to
/// `out/results.jsonl` as it finishes (so a long run can be followed and a
/// crash loses nothing), then writes `summary.json` and the reports.
/// `on_result` sees each line (the CLI's progress bar).
pub fn run(drafter: &mut Drafter, scorer: &ToneScorer, suites: &[ValidSuite], opts: &RunOptions, on_result: &mut dyn FnMut(&CaseResult)) -> Result<(Summary, Vec<CaseResult>), RunError> {
    if opts.repeat == 0 {
        return Err(RunError::Invalid("--repeat: must be at least 1, got 0".into()));
    }
    let mut names = Vec::new();
    for s in suites {
        if names.contains(&s.name) {
            return Err(RunError::Invalid(format!("{}: suite name `{}` is used by another suite of this run", s.file, s.name)));
        }
        names.push(s.name.clone());
    }
    let cases = select(suites, &opts.tags, opts.limit);
    if cases.is_empty() {
        return Err(RunError::Invalid(format!("no cases to run (tags: [{}], limit: {:?})", opts.tags.join(", "), opts.limit)));
    }
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let results_path = opts.out.join("results.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&results_path).map_err(io(&results_path))?);
    let (started, _) = utc_now();
    let load = load_avg();
    let mut results = Vec::with_capacity(cases.len() * opts.repeat);
    for repeat in 0..opts.repeat {
        for c in &cases {
            let r = run_case(drafter, scorer, c, opts.seed, repeat);
            serde_json::to_writer(&mut f, &r).map_err(|e| RunError::Invalid(e.to_string()))?;
            f.write_all(b"\n").and_then(|_| f.flush()).map_err(io(&results_path))?;
            on_result(&r);
            results.push(r);
        }
    }
    let (finished, _) = utc_now();
    let mut s = summarize(&results);
    s.run_id = opts.run_id.clone();
    s.suites = names;
    s.model = opts.model.clone();
    s.seed = opts.seed;
    s.repeat = opts.repeat;
    s.started = started;
    s.finished = finished;
    s.load_avg = load;
    s.limit = opts.limit;
    s.tags = opts.tags.clone();
    s.thresholds = opts.thresholds.iter().map(|t| t.check(&s)).collect();
    write_summary(&opts.out, &s)?;
    super::report::write(&opts.out, &s, &results)?;
    Ok((s, results))
}

pub fn write_summary(dir: &Path, s: &Summary) -> Result<(), RunError> {
    let p = dir.join("summary.json");
    let text = serde_json::to_string_pretty(s).map_err(|e| RunError::Invalid(e.to_string()))?;
    std::fs::write(&p, text + "\n").map_err(io(&p))
}

/// Percentile by nearest rank on sorted values (p in 0..=1).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The summary statistics of a set of result lines (run metadata left empty).
pub fn summarize(results: &[CaseResult]) -> Summary {
    let n = results.len();
    let frac = |k: usize, of: usize| if of == 0 { 0.0 } else { round(k as f64 / of as f64, 4) };
    let passed = results.iter().filter(|r| r.passed).count();
    let errors = results.iter().filter(|r| r.error.is_some()).count();
    let ok: Vec<&CaseResult> = results.iter().filter(|r| r.error.is_none()).collect();
    let fallbacks = ok.iter().filter(|r| r.fallback).count();
    let tones: Vec<f64> = ok.iter().filter_map(|r| r.score.as_ref().map(|s| s.overall as f64)).collect();
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { round(v.iter().sum::<f64>() / v.len() as f64, 2) };
    let with_mood: Vec<&&CaseResult> = ok.iter().filter(|r| r.mood_expected.is_some()).collect();
    let mood_accuracy = (!with_mood.is_empty()).then(|| frac(with_mood.iter().filter(|r| r.mood_detected == r.mood_expected).count(), with_mood.len()));
    let with_lang: Vec<&&CaseResult> = ok.iter().filter(|r| r.language_expected.is_some()).collect();
    let language_accuracy = (!with_lang.is_empty()).then(|| frac(with_lang.iter().filter(|r| r.language == r.language_expected).count(), with_lang.len()));
    let mut lat: Vec<f64> = ok.iter().map(|r| r.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    let latency_ms = Latency { p50: round(percentile(&lat, 0.5), 1), p95: round(percentile(&lat, 0.95), 1), max: round(lat.last().copied().unwrap_or(0.0), 1) };
    let mut by_channel_mood: BTreeMap<String, Cell> = BTreeMap::new();
    let mut by_brand: BTreeMap<String, (BrandStats, Vec<f64>)> = BTreeMap::new();
    let mut failures_by_assert: BTreeMap<String, usize> = BTreeMap::new();
    let mut parts: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in results {
        let mood = r.mood_expected.clone().or_else(|| r.mood_detected.clone()).unwrap_or_else(|| "unknown".into());
        let cell = by_channel_mood.entry(format!("{}/{}", r.channel, mood)).or_default();
        cell.cases += 1;
        cell.passed += r.passed as usize;
        let b = by_brand.entry(r.brand.clone()).or_default();
        b.0.cases += 1;
        b.0.passed += r.passed as usize;
        if let Some(s) = &r.score {
            b.1.push(s.overall as f64);
            for (k, v) in &s.parts {
                parts.entry(k.clone()).or_default().push(*v as f64);
            }
        }
        for f in &r.failures {
            *failures_by_assert.entry(f.assert.clone()).or_default() += 1;
        }
        if r.error.is_some() {
            *failures_by_assert.entry("error".into()).or_default() += 1;
        }
    }
    Summary {
        cases: n,
        passed,
        pass_rate: frac(passed, n),
        error_rate: frac(errors, n),
        fallback_rate: frac(fallbacks, ok.len()),
        mean_tone: mean(&tones),
        mood_accuracy,
        language_accuracy,
        latency_ms,
        by_channel_mood,
        by_brand: by_brand.into_iter().map(|(k, (mut s, t))| {
            s.mean_tone = mean(&t);
            (k, s)
        }).collect(),
        failures_by_assert,
        mean_parts: parts.into_iter().map(|(k, v)| (k, mean(&v))).collect(),
        ..Default::default()
    }
}

/// Reads a run directory's `results.jsonl` (and `summary.json` if present).
pub fn read_run(dir: &Path) -> Result<(Option<Summary>, Vec<CaseResult>), RunError> {
    let p = dir.join("results.jsonl");
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| RunError::Parse { path: p.display().to_string(), line: i + 1, message: e.to_string() })?);
    }
    let sp = dir.join("summary.json");
    let summary = match std::fs::read_to_string(&sp) {
        Ok(t) => Some(serde_json::from_str(&t).map_err(|e| RunError::Parse { path: sp.display().to_string(), line: e.line(), message: e.to_string() })?),
        Err(_) => None,
    };
    Ok((summary, out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn line(id: &str, passed: bool, tone: f32, latency: f64) -> CaseResult {
        CaseResult {
            case_id: id.into(),
            suite: "s".into(),
            repeat: 0,
            brand: "tunely".into(),
            channel: "twitter".into(),
            mood_expected: Some("angry".into()),
            mood_detected: Some(if passed { "angry" } else { "neutral" }.into()),
            language: Some("en".into()),
            language_expected: None,
            tags: vec![],
            message: "m".into(),
            draft: format!("draft {id}"),
            alternatives: vec![],
            score: Some(ToneScore { overall: tone, band: "green".into(), parts: [("rules".to_string(), tone)].into(), reasons: BTreeMap::new() }),
            violations: vec![],
            fallback: !passed,
            latency_ms: latency,
            exemplar_similarity: None,
            seed: 1,
            passed,
            failures: if passed { vec![] } else { vec![Failure { assert: "no-fallback".into(), message: "x".into() }] },
            error: None,
        }
    }

    #[test]
    fn summary_counts_rates_and_percentiles() {
        let mut v: Vec<CaseResult> = (0..10).map(|i| line(&format!("c{i}"), i < 7, 50.0 + i as f32, 100.0 * (i + 1) as f64)).collect();
        v[9].error = Some("boom".into());
        v[9].passed = false;
        let s = summarize(&v);
        assert_eq!((s.cases, s.passed), (10, 7));
        assert_eq!(s.pass_rate, 0.7);
        assert_eq!(s.error_rate, 0.1);
        assert_eq!(s.fallback_rate, 0.2222, "2 of the 9 without error");
        assert_eq!(s.mood_accuracy, Some(0.7778));
        assert_eq!(s.language_accuracy, None);
        assert_eq!(s.latency_ms, Latency { p50: 500.0, p95: 900.0, max: 900.0 });
        assert_eq!(s.mean_tone, 54.0);
        assert_eq!(s.by_channel_mood["twitter/angry"], Cell { cases: 10, passed: 7 });
        assert_eq!(s.failures_by_assert["no-fallback"], 3);
        assert_eq!(s.failures_by_assert["error"], 1);
    }

    #[test]
    fn thresholds_parse_and_check() {
        let s = summarize(&[line("a", true, 80.0, 10.0), line("b", false, 40.0, 30.0)]);
        let t = Threshold::parse("pass_rate=0.8", false).unwrap();
        let r = t.check(&s);
        assert!(!r.ok && r.actual == Some(0.5));
        assert!(Threshold::parse("pass_rate=0.5", false).unwrap().check(&s).ok);
        assert!(Threshold::parse("error_rate=0", true).unwrap().check(&s).ok);
        assert!(!Threshold::parse("latency_max=20", true).unwrap().check(&s).ok);
        assert!(Threshold::parse("passrate=1", false).unwrap_err().contains("unknown metric `passrate`"));
        assert!(Threshold::parse("pass_rate", false).unwrap_err().contains("METRIC=VALUE"));
        assert!(Threshold::parse("pass_rate=abc", true).unwrap_err().contains("--fail-over"));
        let none = Summary::default();
        assert!(!Threshold::parse("mood_accuracy=0.1", false).unwrap().check(&none).ok, "a missing metric misses the threshold");
    }

    #[test]
    fn seeds_depend_on_seed_case_and_repeat_only() {
        assert_eq!(case_seed(7, "a", 0), case_seed(7, "a", 0));
        assert_ne!(case_seed(7, "a", 0), case_seed(8, "a", 0));
        assert_ne!(case_seed(7, "a", 0), case_seed(7, "b", 0));
        assert_ne!(case_seed(7, "a", 0), case_seed(7, "a", 1));
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), ("1970-01-01T00:00:00Z".into(), "19700101-000000".into()));
        assert_eq!(utc(951_782_400 + 3661).0, "2000-02-29T01:01:01Z");
        assert_eq!(utc(1_796_000_000).0, "2026-11-30T00:53:20Z");
    }

    #[test]
    fn results_round_trip_through_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let v = vec![line("a", true, 80.0, 10.0), line("b", false, 40.0, 30.0)];
        let text: String = v.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        std::fs::write(dir.path().join("results.jsonl"), text).unwrap();
        let (s, back) = read_run(dir.path()).unwrap();
        assert!(s.is_none());
        assert_eq!(back, v);
        std::fs::write(dir.path().join("results.jsonl"), "{}\n").unwrap();
        let e = read_run(dir.path()).unwrap_err().to_string();
        assert!(e.contains("results.jsonl: line 1"), "{e}");
    }
}
