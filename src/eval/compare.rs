//! `eval compare RUN_A RUN_B`: did B get better or worse than A?
//!
//! Cases are paired by item (`case_id`, `#repeat` when > 0) and only pairs
//! present in both runs count, so a run on a different suite or `--limit`
//! compares on what the two share. Each metric's difference (B − A) comes
//! with a paired bootstrap 95% interval (2000 resamples, fixed seed, so the
//! same two runs always print the same interval) from the shared
//! `eval::stats::Bootstrap`; pairing removes the between-case variance that
//! dominates small suites.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::run::{read_run, CaseResult, RunError};
use super::stats::Bootstrap;

pub const RESAMPLES: usize = 2000;
pub const SEED: u64 = 20_251_205;

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub dir: String,
    pub run_id: Option<String>,
    pub model: Option<String>,
    pub seed: Option<u64>,
    pub cases: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub passed: bool,
    pub tone: Option<f32>,
    pub fallback: bool,
    pub latency_ms: f64,
    pub draft: String,
    pub failures: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CasePair {
    pub item: String,
    pub brand: String,
    pub channel: String,
    /// `fixed` (failed in A, passes in B), `broke`, `same`.
    pub change: String,
    pub a: Side,
    pub b: Side,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricDiff {
    pub metric: String,
    /// Pairs the metric is defined on.
    pub n: usize,
    pub a: f64,
    pub b: f64,
    /// b − a.
    pub diff: f64,
    /// Paired bootstrap 95% interval of the difference; null when n < 2.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: RunInfo,
    pub b: RunInfo,
    pub paired: usize,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
    pub bootstrap: Bootstrap,
    pub metrics: Vec<MetricDiff>,
    pub cases: Vec<CasePair>,
}

fn side(r: &CaseResult) -> Side {
    Side { passed: r.passed, tone: r.score.as_ref().map(|s| s.overall), fallback: r.fallback, latency_ms: r.latency_ms, draft: r.draft.clone(), failures: r.failures.iter().map(|f| f.assert.clone()).collect(), error: r.error.clone() }
}

/// Paired values of one metric: (a, b) for the pairs where it is defined on both sides.
type Extract = fn(&CaseResult) -> Option<f64>;

const METRICS: [(&str, Extract); 6] = [
    ("pass_rate", |r| Some(r.passed as u8 as f64)),
    ("error_rate", |r| Some(r.error.is_some() as u8 as f64)),
    ("fallback_rate", |r| r.error.is_none().then_some(r.fallback as u8 as f64)),
    ("mean_tone", |r| r.score.as_ref().map(|s| s.overall as f64)),
    ("mood_accuracy", |r| r.mood_expected.as_ref().filter(|_| r.error.is_none()).map(|m| (r.mood_detected.as_ref() == Some(m)) as u8 as f64)),
    ("latency_ms", |r| r.error.is_none().then_some(r.latency_ms)),
];

/// Compares two sets of result lines.
pub fn compare_results(a_info: RunInfo, a: &[CaseResult], b_info: RunInfo, b: &[CaseResult]) -> Comparison {
    let bm: BTreeMap<String, &CaseResult> = b.iter().map(|r| (r.item(), r)).collect();
    let am: BTreeMap<String, &CaseResult> = a.iter().map(|r| (r.item(), r)).collect();
    let pairs: Vec<(&CaseResult, &CaseResult)> = a.iter().filter_map(|x| bm.get(&x.item()).map(|y| (x, *y))).collect();
    let bootstrap = Bootstrap { resamples: RESAMPLES, seed: SEED, level: 0.95 };
    let mut metrics = Vec::new();
    for (name, f) in METRICS {
        let (va, vb): (Vec<f64>, Vec<f64>) = pairs.iter().filter_map(|(x, y)| Some((f(x)?, f(y)?))).unzip();
        if va.is_empty() {
            continue;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (ma, mb) = (mean(&va), mean(&vb));
        let ci = bootstrap.mean_difference(&va, &vb).ok();
        metrics.push(MetricDiff { metric: name.into(), n: va.len(), a: ma, b: mb, diff: mb - ma, ci_low: ci.map(|c| c.low), ci_high: ci.map(|c| c.high) });
    }
    let cases = pairs
        .iter()
        .map(|(x, y)| CasePair {
            item: x.item(),
            brand: x.brand.clone(),
            channel: x.channel.clone(),
            change: match (x.passed, y.passed) {
                (false, true) => "fixed",
                (true, false) => "broke",
                _ => "same",
            }
            .into(),
            a: side(x),
            b: side(y),
        })
        .collect();
    Comparison {
        a: a_info,
        b: b_info,
        paired: pairs.len(),
        only_a: a.iter().map(|r| r.item()).filter(|i| !bm.contains_key(i)).collect(),
        only_b: b.iter().map(|r| r.item()).filter(|i| !am.contains_key(i)).collect(),
        bootstrap,
        metrics,
        cases,
    }
}

/// Reads two run directories and compares them.
pub fn compare(a: &Path, b: &Path) -> Result<Comparison, RunError> {
    let (sa, ra) = read_run(a)?;
    let (sb, rb) = read_run(b)?;
    let info = |dir: &Path, s: &Option<super::run::Summary>, n: usize| RunInfo { dir: dir.display().to_string(), run_id: s.as_ref().map(|s| s.run_id.clone()), model: s.as_ref().map(|s| s.model.clone()), seed: s.as_ref().map(|s| s.seed), cases: n };
    let c = compare_results(info(a, &sa, ra.len()), &ra, info(b, &sb, rb.len()), &rb);
    if c.paired == 0 {
        return Err(RunError::Invalid(format!("{} and {} share no case (compare runs of the same suite)", a.display(), b.display())));
    }
    Ok(c)
}

fn short(s: &str, n: usize) -> String {
    let one = s.replace('\n', " ");
    let t: String = one.chars().take(n).collect();
    if t.chars().count() < one.chars().count() {
        format!("{t}…")
    } else {
        t
    }
}

impl Comparison {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let name = |r: &RunInfo| format!("{} ({}, model {}, seed {})", r.dir, r.run_id.as_deref().unwrap_or("?"), r.model.as_deref().unwrap_or("?"), r.seed.map(|s| s.to_string()).unwrap_or_else(|| "?".into()));
        let _ = writeln!(o, "A: {}\nB: {}", name(&self.a), name(&self.b));
        let _ = writeln!(o, "{} paired cases; only in A: {}; only in B: {}", self.paired, self.only_a.len(), self.only_b.len());
        let _ = writeln!(o, "\n{:<15} {:>5} {:>10} {:>10} {:>10}  95% CI (paired bootstrap, {} resamples)", "metric", "n", "A", "B", "B − A", self.bootstrap.resamples);
        for m in &self.metrics {
            let ci = match (m.ci_low, m.ci_high) {
                (Some(l), Some(h)) => format!("[{l:+.4}, {h:+.4}]{}", if l > 0.0 || h < 0.0 { " *" } else { "" }),
                _ => "–".into(),
            };
            let _ = writeln!(o, "{:<15} {:>5} {:>10.4} {:>10.4} {:>+10.4}  {ci}", m.metric, m.n, m.a, m.b, m.diff);
        }
        let _ = writeln!(o, "(* the interval excludes 0)");
        let _ = writeln!(o, "\n{:<28} {:<7} {:>6} {:>6}  {:<48} {}", "case", "change", "toneA", "toneB", "draft A", "draft B");
        for c in &self.cases {
            let t = |s: &Side| s.tone.map(|t| format!("{t:.1}")).unwrap_or_else(|| "–".into());
            let mark = |s: &Side| format!("{}{}", if s.passed { "✓" } else { "✗" }, if s.fallback { "F" } else { "" });
            let _ = writeln!(o, "{:<28} {:<7} {:>6} {:>6}  {:<48} {}", short(&c.item, 28), c.change, t(&c.a), t(&c.b), format!("{} {}", mark(&c.a), short(&c.a.draft, 44)), format!("{} {}", mark(&c.b), short(&c.b.draft, 60)));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::run::tests::line;

    fn info(n: usize) -> RunInfo {
        RunInfo { dir: "x".into(), run_id: None, model: None, seed: None, cases: n }
    }

    #[test]
    fn pairs_by_item_and_bootstraps_the_difference() {
        // A passes 2 of 6, B passes 5 of 6 on the same cases; tone +10 everywhere.
        let a: Vec<CaseResult> = (0..6).map(|i| line(&format!("c{i}"), i < 2, 50.0, 100.0)).collect();
        let mut b: Vec<CaseResult> = (0..6).map(|i| line(&format!("c{i}"), i < 5, 60.0, 100.0)).collect();
        b.push(line("extra", true, 90.0, 1.0));
        let c = compare_results(info(6), &a, info(7), &b);
        assert_eq!(c.paired, 6);
        assert_eq!(c.only_b, vec!["extra".to_string()]);
        let m: BTreeMap<&str, &MetricDiff> = c.metrics.iter().map(|m| (m.metric.as_str(), m)).collect();
        let p = m["pass_rate"];
        assert!((p.diff - 0.5).abs() < 1e-12);
        // Differences are 0,0,1,1,1,0: the bootstrap mean lies in [0, 1] and
        // the 95% interval of a mean of six 0/1 values is wide but above 0.
        let (lo, hi) = (p.ci_low.unwrap(), p.ci_high.unwrap());
        assert!(lo > 0.0 && lo <= 0.5 && hi >= 0.5 && hi <= 1.0, "[{lo}, {hi}]");
        // A constant difference has a degenerate interval at that difference.
        let t = m["mean_tone"];
        assert_eq!((t.diff, t.ci_low, t.ci_high), (10.0, Some(10.0), Some(10.0)));
        assert_eq!(c.cases.iter().filter(|x| x.change == "fixed").count(), 3);
        // Fixed seed: the same inputs give the same interval.
        let again = compare_results(info(6), &a, info(7), &b);
        assert_eq!(again.metrics[0].ci_low, c.metrics[0].ci_low);
        let text = c.to_text();
        assert!(text.contains("pass_rate") && text.contains("fixed"), "{text}");
    }
}
