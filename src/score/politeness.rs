//! The politeness part of the tone score: how polite a reply reads, 0–100,
//! with a one-line reason.
//!
//! Shaped after the politeness strategies of Danescu-Niculescu-Mizil et al.
//! (ACL 2013) as ConvoKit computes them — gratitude, apologies, "please",
//! hedges, counterfactual modals, direct questions, person markers, sentiment
//! lexicons — but matched by regular expressions kept as data
//! (`prompts/politeness.yaml`), since a dependency parser is not available
//! here. The features feed a ridge regression trained on the human ratings of
//! the Stanford Politeness Corpus (Wikipedia half, normalized score); its
//! weights are data too (`models/score/politeness.json`, written by
//! `brandvoice politeness train`, which also measures the 10-fold
//! cross-validated Spearman correlation with the human score). Ridge is
//! hand-written (a Cholesky solve of a few hundred unknowns) because no linear
//! algebra crate is in the tree. Optionally the MiniLM sentence embedding
//! (the mood module's `Embedder`) is appended to the features.
//!
//! The raw prediction is on the corpus's normalized-score scale; `score_0_100`
//! is its percentile among the training texts' predictions, so 50 is a
//! typical Wikipedia request and 90 is more polite than nine in ten.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::eval::csv;
use crate::eval::stats::{quantile_sorted, spearman};
use crate::mood::embed::{EmbedError, Embedder};

pub const STRATEGIES_YAML: &str = include_str!("../../prompts/politeness.yaml");
/// The committed weights. Read at run time so retraining needs no rebuild;
/// `BRANDVOICE_POLITENESS` points elsewhere.
pub const WEIGHTS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/score/politeness.json");
/// Weights trained with the MiniLM embedding appended (`politeness train --embeddings`).
pub const MINILM_WEIGHTS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/score/politeness-minilm.json");
/// The corpus the weights are trained on.
pub const CORPUS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/politeness/wikipedia.annotated.csv");

#[derive(Debug, thiserror::Error)]
pub enum PolitenessError {
    #[error("{file}: {reason}")]
    Strategies { file: String, reason: String },
    #[error("weights file {file}: {reason}")]
    Weights { file: String, reason: String },
    #[error("corpus {file}: {reason}")]
    Corpus { file: String, reason: String },
    #[error("training: {0}")]
    Train(String),
    #[error("the weights use the {0} embedding; load them with an Embedder (Politeness::load_with_embedder)")]
    NeedsEmbedder(String),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

// ---------------------------------------------------------------- strategies

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Where {
    #[default]
    Anywhere,
    SentenceStart,
    FirstSentenceStart,
    AfterStart,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Value {
    #[default]
    Presence,
    Count,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategySpec {
    name: String,
    description: String,
    #[serde(default, rename = "where")]
    place: Where,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    case_sensitive: bool,
    patterns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyFile {
    #[serde(default)]
    lexicons: BTreeMap<String, Vec<String>>,
    strategies: Vec<StrategySpec>,
}

struct Strategy {
    name: String,
    description: String,
    place: Where,
    value: Value,
    case_sensitive: bool,
    regexes: Vec<Regex>,
}

/// The compiled strategy set.
pub struct Strategies {
    list: Vec<Strategy>,
}

fn sentence_split() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[.!?]+\s+|\n+").expect("static regex"))
}

fn first_word() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"^[\s"'(\[*-]*\S+"#).expect("static regex"))
}

impl Strategies {
    /// The strategies shipped in `prompts/politeness.yaml`.
    pub fn builtin() -> Result<Self, PolitenessError> {
        Self::parse("prompts/politeness.yaml", STRATEGIES_YAML)
    }

    pub fn read(path: &Path) -> Result<Self, PolitenessError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolitenessError::Strategies { file: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(&path.display().to_string(), &text)
    }

    pub fn parse(file: &str, yaml: &str) -> Result<Self, PolitenessError> {
        let err = |reason: String| PolitenessError::Strategies { file: file.to_string(), reason };
        let spec: StrategyFile = serde_yaml::from_str(yaml).map_err(|e| err(e.to_string()))?;
        let placeholder = Regex::new(r"\{([a-z_]+)\}").expect("static regex");
        let mut seen = HashSet::new();
        let mut list = Vec::new();
        for s in spec.strategies {
            if !seen.insert(s.name.clone()) {
                return Err(err(format!("strategy `{}` is defined twice", s.name)));
            }
            if s.patterns.is_empty() {
                return Err(err(format!("strategy `{}`: patterns must not be empty", s.name)));
            }
            let mut regexes = Vec::new();
            for p in &s.patterns {
                let mut missing = None;
                let expanded = placeholder.replace_all(p, |c: &regex::Captures| match spec.lexicons.get(&c[1]) {
                    Some(words) => {
                        format!("(?:{})", words.iter().map(|w| regex::escape(&w.to_lowercase())).collect::<Vec<_>>().join("|"))
                    }
                    None => {
                        missing = Some(c[1].to_string());
                        String::new()
                    }
                });
                if let Some(m) = missing {
                    return Err(err(format!(
                        "strategy `{}`: pattern {p:?} names lexicon `{m}`, which is not defined (lexicons: {})",
                        s.name,
                        spec.lexicons.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                let anchored = match s.place {
                    Where::SentenceStart | Where::FirstSentenceStart => format!(r#"^[\s"'(\[*-]*(?:{expanded})"#),
                    _ => expanded.into_owned(),
                };
                let re = RegexBuilder::new(&anchored)
                    .size_limit(1 << 24)
                    .build()
                    .map_err(|e| err(format!("strategy `{}`: pattern {p:?}: {e}", s.name)))?;
                regexes.push(re);
            }
            list.push(Strategy {
                name: s.name,
                description: s.description,
                place: s.place,
                value: s.value,
                case_sensitive: s.case_sensitive,
                regexes,
            });
        }
        if list.is_empty() {
            return Err(err("strategies must not be empty".into()));
        }
        Ok(Self { list })
    }

    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|s| s.name.clone()).collect()
    }

    pub fn descriptions(&self) -> Vec<(String, String)> {
        self.list.iter().map(|s| (s.name.clone(), s.description.clone())).collect()
    }

    /// One value per strategy, in order.
    pub fn features(&self, text: &str) -> Vec<f64> {
        let folded = text.replace(['\u{2019}', '\u{2018}'], "'");
        let lower = folded.to_lowercase();
        let sentences = |t: &str| -> Vec<String> {
            sentence_split().split(t).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
        };
        let (sent_lower, sent_orig) = (sentences(&lower), sentences(&folded));
        self.list
            .iter()
            .map(|s| {
                let (whole, sents) = if s.case_sensitive { (&folded, &sent_orig) } else { (&lower, &sent_lower) };
                let count: usize = match s.place {
                    Where::Anywhere => s.regexes.iter().map(|r| r.find_iter(whole).count()).sum(),
                    Where::SentenceStart => {
                        sents.iter().map(|t| s.regexes.iter().filter(|r| r.is_match(t)).count().min(1)).sum()
                    }
                    Where::FirstSentenceStart => {
                        sents.first().map(|t| s.regexes.iter().any(|r| r.is_match(t)) as usize).unwrap_or(0)
                    }
                    Where::AfterStart => sents
                        .iter()
                        .map(|t| {
                            let rest = first_word().find(t).map(|m| &t[m.end()..]).unwrap_or("");
                            s.regexes.iter().map(|r| r.find_iter(rest).count()).sum::<usize>()
                        })
                        .sum(),
                };
                match s.value {
                    Value::Presence => (count > 0) as u8 as f64,
                    Value::Count => (count as f64).ln_1p(),
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------- ridge

/// A fitted ridge regression on standardized features.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ridge {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
    pub lambda: f64,
}

impl Ridge {
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.intercept
            + x.iter().zip(&self.mean).zip(&self.std).zip(&self.weights).map(|(((v, m), s), w)| w * (v - m) / s).sum::<f64>()
    }

    /// Per-feature contributions w·(x − mean)/std.
    pub fn contributions(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.mean).zip(&self.std).zip(&self.weights).map(|(((v, m), s), w)| w * (v - m) / s).collect()
    }
}

/// Fits ridge models for every λ in `lambdas` on rows `idx` of `x`, computing
/// the Gram matrix once.
pub fn fit_ridge_path(x: &[Vec<f64>], y: &[f64], idx: &[usize], lambdas: &[f64]) -> Result<Vec<Ridge>, PolitenessError> {
    let d = x.first().map(|r| r.len()).unwrap_or(0);
    let n = idx.len() as f64;
    if idx.len() < 2 || d == 0 {
        return Err(PolitenessError::Train(format!("needs at least 2 rows and 1 feature, got {} rows and {d} features", idx.len())));
    }
    let mut mean = vec![0.0; d];
    for &i in idx {
        for (m, v) in mean.iter_mut().zip(&x[i]) {
            *m += v / n;
        }
    }
    let mut std = vec![0.0; d];
    for &i in idx {
        for ((s, v), m) in std.iter_mut().zip(&x[i]).zip(&mean) {
            *s += (v - m).powi(2) / n;
        }
    }
    for s in std.iter_mut() {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    let ybar = idx.iter().map(|&i| y[i]).sum::<f64>() / n;
    let mut gram = vec![0.0; d * d];
    let mut rhs = vec![0.0; d];
    let mut z = vec![0.0; d];
    for &i in idx {
        for j in 0..d {
            z[j] = (x[i][j] - mean[j]) / std[j];
        }
        let yc = y[i] - ybar;
        for a in 0..d {
            let za = z[a];
            if za == 0.0 {
                continue;
            }
            rhs[a] += za * yc;
            let row = &mut gram[a * d..a * d + d];
            for b in a..d {
                row[b] += za * z[b];
            }
        }
    }
    for a in 0..d {
        for b in 0..a {
            gram[a * d + b] = gram[b * d + a];
        }
    }
    lambdas
        .iter()
        .map(|&lambda| {
            let mut g = gram.clone();
            for a in 0..d {
                g[a * d + a] += lambda;
            }
            let weights = cholesky_solve(&mut g, &rhs, d)
                .ok_or_else(|| PolitenessError::Train(format!("the system is not positive definite at lambda {lambda}")))?;
            Ok(Ridge { mean: mean.clone(), std: std.clone(), weights, intercept: ybar, lambda })
        })
        .collect()
}

/// Solves A w = b for symmetric positive definite A (row-major d×d, overwritten).
fn cholesky_solve(a: &mut [f64], b: &[f64], d: usize) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        if s <= 0.0 {
            return None;
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    let mut yv = b.to_vec();
    for i in 0..d {
        for k in 0..i {
            yv[i] -= a[i * d + k] * yv[k];
        }
        yv[i] /= a[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            yv[i] -= a[k * d + i] * yv[k];
        }
        yv[i] /= a[i * d + i];
    }
    Some(yv)
}

// ---------------------------------------------------------------- weights file

/// Cross-validation measured while training.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CvReport {
    pub folds: usize,
    pub seed: u64,
    /// Spearman between out-of-fold predictions and the normalized score, all folds pooled.
    pub spearman_pooled: f64,
    /// Mean of the per-fold Spearman correlations.
    pub spearman_fold_mean: f64,
    pub spearman_fold_min: f64,
    pub spearman_fold_max: f64,
    /// λ chosen inside each outer fold (by an inner 5-fold CV on its training part).
    pub lambdas_chosen: Vec<f64>,
    pub texts: usize,
}

/// `models/score/politeness.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolitenessFile {
    pub format: u32,
    /// How it was made (command, data, settings).
    pub made_with: String,
    /// Strategy names in feature order; must match the strategies file.
    pub strategies: Vec<String>,
    /// The sentence embedding appended to the strategies, if any.
    pub embedding: Option<String>,
    pub ridge: Ridge,
    /// 101 quantiles of the training texts' predictions (0th..100th percentile).
    pub quantiles: Vec<f64>,
    pub cv: CvReport,
}

impl PolitenessFile {
    pub fn builtin() -> Result<Self, PolitenessError> {
        match std::env::var_os("BRANDVOICE_POLITENESS") {
            Some(p) => Self::read(Path::new(&p)),
            None => Self::read(Path::new(WEIGHTS_PATH)),
        }
    }

    pub fn read(path: &Path) -> Result<Self, PolitenessError> {
        let file = path.display().to_string();
        let s = std::fs::read_to_string(path).map_err(|e| PolitenessError::Weights { file: file.clone(), reason: e.to_string() })?;
        let f: Self = serde_json::from_str(&s).map_err(|e| PolitenessError::Weights { file: file.clone(), reason: e.to_string() })?;
        let d = f.strategies.len() + if f.embedding.is_some() { crate::mood::embed::EMBEDDING_DIM } else { 0 };
        if f.ridge.weights.len() != d || f.ridge.mean.len() != d || f.ridge.std.len() != d {
            return Err(PolitenessError::Weights {
                file,
                reason: format!("{} weights for {d} features; retrain with `brandvoice politeness train`", f.ridge.weights.len()),
            });
        }
        if f.quantiles.len() != 101 || f.quantiles.windows(2).any(|w| w[0] > w[1]) {
            return Err(PolitenessError::Weights { file, reason: "quantiles must be 101 ascending values".into() });
        }
        Ok(f)
    }

    pub fn write(&self, path: &Path) -> Result<(), PolitenessError> {
        let werr = |e: String| PolitenessError::Write { path: path.to_path_buf(), reason: e };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| werr(e.to_string()))?;
        }
        let json = serde_json::to_string_pretty(self).map_err(|e| werr(e.to_string()))?;
        std::fs::write(path, json + "\n").map_err(|e| werr(e.to_string()))
    }
}

// ---------------------------------------------------------------- scorer

/// A politeness score with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolitenessScore {
    /// Percentile among the training texts: 50 is a typical request.
    pub score_0_100: f64,
    pub reason: String,
    /// The model's prediction on the corpus's normalized-score scale.
    pub raw: f64,
    /// Strategies found in the text.
    pub strategies: Vec<String>,
}

/// The loaded scorer.
pub struct Politeness {
    strategies: Strategies,
    file: PolitenessFile,
    embedder: Option<Embedder>,
}

impl Politeness {
    /// The built-in strategies and the committed weights.
    pub fn load() -> Result<Self, PolitenessError> {
        Self::from_parts(Strategies::builtin()?, PolitenessFile::builtin()?, None)
    }

    /// With an embedder, for weights trained with `--embeddings`.
    pub fn load_with_embedder(file: PolitenessFile, embedder: Embedder) -> Result<Self, PolitenessError> {
        Self::from_parts(Strategies::builtin()?, file, Some(embedder))
    }

    /// The committed MiniLM variant (better: see BENCHMARKS.md), sharing the
    /// caller's embedder (the tone score loads one for voice similarity anyway).
    pub fn load_minilm(embedder: Embedder) -> Result<Self, PolitenessError> {
        Self::load_with_embedder(PolitenessFile::read(Path::new(MINILM_WEIGHTS_PATH))?, embedder)
    }

    pub fn from_parts(strategies: Strategies, file: PolitenessFile, embedder: Option<Embedder>) -> Result<Self, PolitenessError> {
        if strategies.names() != file.strategies {
            return Err(PolitenessError::Weights {
                file: "politeness weights".into(),
                reason: format!(
                    "trained on strategies [{}] but the strategies file has [{}]; retrain with `brandvoice politeness train`",
                    file.strategies.join(", "),
                    strategies.names().join(", ")
                ),
            });
        }
        if let (Some(e), None) = (&file.embedding, &embedder) {
            return Err(PolitenessError::NeedsEmbedder(e.clone()));
        }
        Ok(Self { strategies, file, embedder })
    }

    pub fn weights(&self) -> &PolitenessFile {
        &self.file
    }

    /// Scores a text. Infallible with strategy-only weights; with embedding
    /// weights an embedding failure scores on the strategies alone (the
    /// embedding part held at its training mean) and says so in the reason.
    pub fn score(&self, text: &str) -> PolitenessScore {
        let mut x = self.strategies.features(text);
        let n_strat = x.len();
        let mut note = "";
        if self.file.embedding.is_some() {
            match self.embedder.as_ref().map(|e| e.embed(text)) {
                Some(Ok(v)) => x.extend(v.iter().map(|&f| f as f64)),
                _ => {
                    x.extend_from_slice(&self.file.ridge.mean[n_strat..]);
                    note = " (embedding unavailable; strategies only)";
                }
            }
        }
        let raw = self.file.ridge.predict(&x);
        let score = percentile(&self.file.quantiles, raw);
        let contrib = self.file.ridge.contributions(&x);
        let fired: Vec<usize> = (0..n_strat).filter(|&i| x[i] != 0.0 && self.file.strategies[i] != "length").collect();
        let mut up: Vec<(usize, f64)> = fired.iter().map(|&i| (i, contrib[i])).filter(|(_, c)| *c > 0.02).collect();
        let mut down: Vec<(usize, f64)> = fired.iter().map(|&i| (i, contrib[i])).filter(|(_, c)| *c < -0.02).collect();
        up.sort_by(|a, b| b.1.total_cmp(&a.1));
        down.sort_by(|a, b| a.1.total_cmp(&b.1));
        let name = |i: usize| self.file.strategies[i].replace('_', " ");
        let band = if score >= 67.0 {
            "reads as polite"
        } else if score >= 33.0 {
            "reads as neutral"
        } else {
            "reads as curt"
        };
        let list = |v: &[(usize, f64)]| v.iter().take(3).map(|&(i, _)| name(i)).collect::<Vec<_>>().join(", ");
        let reason = match (up.is_empty(), down.is_empty()) {
            (true, true) => format!("{band} ({score:.0}/100): no strong politeness markers{note}"),
            (false, true) => format!("{band} ({score:.0}/100); helped by {}{note}", list(&up)),
            (true, false) => format!("{band} ({score:.0}/100); hurt by {}{note}", list(&down)),
            (false, false) => format!("{band} ({score:.0}/100); helped by {}; hurt by {}{note}", list(&up), list(&down)),
        };
        PolitenessScore { score_0_100: score, reason, raw, strategies: fired.iter().map(|&i| self.file.strategies[i].clone()).collect() }
    }
}

/// Where `v` falls among 101 ascending quantiles, as 0–100 (interpolated).
fn percentile(q: &[f64], v: f64) -> f64 {
    if v <= q[0] {
        return 0.0;
    }
    if v >= q[q.len() - 1] {
        return 100.0;
    }
    let i = q.partition_point(|&x| x <= v); // q[i-1] <= v < q[i]
    let (lo, hi) = (q[i - 1], q[i]);
    let frac = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
    ((i - 1) as f64 + frac) * 100.0 / (q.len() - 1) as f64
}

// ---------------------------------------------------------------- training

/// The corpus: request texts and their normalized politeness score.
pub struct Corpus {
    pub texts: Vec<String>,
    pub scores: Vec<f64>,
}

impl Corpus {
    pub fn read(path: &Path) -> Result<Self, PolitenessError> {
        let file = path.display().to_string();
        let err = |reason: String| PolitenessError::Corpus { file: file.clone(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let t = csv::Table::parse(&text).map_err(|e| err(e.to_string()))?;
        let (rc, sc) = (t.column("Request").map_err(|e| err(e.to_string()))?, t.column("Normalized Score").map_err(|e| err(e.to_string()))?);
        let mut texts = Vec::new();
        let mut scores = Vec::new();
        for r in &t.rows {
            let s: f64 = r.fields[sc]
                .trim()
                .parse()
                .map_err(|_| err(format!("line {}: Normalized Score must be a number, got {:?}", r.line, r.fields[sc])))?;
            texts.push(r.fields[rc].clone());
            scores.push(s);
        }
        if texts.len() < 50 {
            return Err(err(format!("needs at least 50 rated texts, got {}", texts.len())));
        }
        Ok(Self { texts, scores })
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub folds: usize,
    pub seed: u64,
    pub lambdas: Vec<f64>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { folds: 10, seed: 0, lambdas: vec![0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0] }
    }
}

/// Feature rows for the corpus: strategies, then the embedding if given.
pub fn feature_rows(strategies: &Strategies, texts: &[String], embedder: Option<&Embedder>) -> Result<Vec<Vec<f64>>, PolitenessError> {
    let mut rows: Vec<Vec<f64>> = texts.iter().map(|t| strategies.features(t)).collect();
    if let Some(e) = embedder {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vecs = e.embed_batch(&refs)?;
        for (r, v) in rows.iter_mut().zip(vecs) {
            r.extend(v.iter().map(|&f| f as f64));
        }
    }
    Ok(rows)
}

fn folds_of(n: usize, k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut folds = vec![Vec::new(); k];
    for (j, i) in idx.into_iter().enumerate() {
        folds[j % k].push(i);
    }
    folds
}

fn spearman_of(pred: &[f64], y: &[f64], idx: &[usize]) -> f64 {
    let a: Vec<f64> = idx.iter().map(|&i| pred[i]).collect();
    let b: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    spearman(&a, &b).unwrap_or(f64::NAN)
}

/// Chooses λ by k-fold CV on `idx` (pooled Spearman of out-of-fold predictions).
fn choose_lambda(x: &[Vec<f64>], y: &[f64], idx: &[usize], k: usize, seed: u64, lambdas: &[f64]) -> Result<f64, PolitenessError> {
    let folds = folds_of(idx.len(), k, seed);
    let mut preds = vec![vec![0.0; y.len()]; lambdas.len()];
    for f in &folds {
        let test: HashSet<usize> = f.iter().map(|&j| idx[j]).collect();
        let train: Vec<usize> = idx.iter().copied().filter(|i| !test.contains(i)).collect();
        let models = fit_ridge_path(x, y, &train, lambdas)?;
        for (m, p) in models.iter().zip(preds.iter_mut()) {
            for &i in &test {
                p[i] = m.predict(&x[i]);
            }
        }
    }
    let mut best = (f64::NEG_INFINITY, lambdas[0]);
    for (p, &l) in preds.iter().zip(lambdas) {
        let s = spearman_of(p, y, idx);
        if s > best.0 {
            best = (s, l);
        }
    }
    Ok(best.1)
}

/// Nested cross-validation (outer `folds`, inner 5-fold λ choice), then the
/// final fit on all texts with λ chosen by `folds`-fold CV on all of them.
pub fn train(
    strategies: &Strategies,
    corpus: &Corpus,
    embedder: Option<&Embedder>,
    embedding_name: Option<&str>,
    opts: &TrainOptions,
    made_with: &str,
) -> Result<PolitenessFile, PolitenessError> {
    if opts.folds < 2 || opts.folds > corpus.texts.len() {
        return Err(PolitenessError::Train(format!("folds must be between 2 and {}, got {}", corpus.texts.len(), opts.folds)));
    }
    if opts.lambdas.is_empty() || opts.lambdas.iter().any(|l| !(*l > 0.0)) {
        return Err(PolitenessError::Train("lambdas must be positive numbers".into()));
    }
    let x = feature_rows(strategies, &corpus.texts, embedder)?;
    let y = &corpus.scores;
    let n = y.len();
    let all: Vec<usize> = (0..n).collect();
    let outer = folds_of(n, opts.folds, opts.seed);
    let mut oof = vec![0.0; n];
    let mut per_fold = Vec::new();
    let mut chosen = Vec::new();
    for (f, test) in outer.iter().enumerate() {
        let tset: HashSet<usize> = test.iter().copied().collect();
        let train_idx: Vec<usize> = all.iter().copied().filter(|i| !tset.contains(i)).collect();
        let lambda = choose_lambda(&x, y, &train_idx, 5, opts.seed.wrapping_add(1 + f as u64), &opts.lambdas)?;
        chosen.push(lambda);
        let m = fit_ridge_path(&x, y, &train_idx, &[lambda])?.remove(0);
        for &i in test {
            oof[i] = m.predict(&x[i]);
        }
        per_fold.push(spearman_of(&oof, y, test));
    }
    let pooled = spearman(&oof, y).map_err(|e| PolitenessError::Train(e.to_string()))?;
    let lambda = choose_lambda(&x, y, &all, opts.folds, opts.seed, &opts.lambdas)?;
    let ridge = fit_ridge_path(&x, y, &all, &[lambda])?.remove(0);
    let mut preds: Vec<f64> = x.iter().map(|r| ridge.predict(r)).collect();
    preds.sort_by(f64::total_cmp);
    let quantiles = (0..=100).map(|p| quantile_sorted(&preds, p as f64 / 100.0)).collect();
    let fold_mean = per_fold.iter().sum::<f64>() / per_fold.len() as f64;
    Ok(PolitenessFile {
        format: 1,
        made_with: made_with.to_string(),
        strategies: strategies.names(),
        embedding: embedding_name.map(str::to_string),
        ridge,
        quantiles,
        cv: CvReport {
            folds: opts.folds,
            seed: opts.seed,
            spearman_pooled: pooled,
            spearman_fold_mean: fold_mean,
            spearman_fold_min: per_fold.iter().copied().fold(f64::INFINITY, f64::min),
            spearman_fold_max: per_fold.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            lambdas_chosen: chosen,
            texts: n,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(s: &Strategies, text: &str, name: &str) -> f64 {
        let i = s.names().iter().position(|n| n == name).unwrap();
        s.features(text)[i]
    }

    #[test]
    fn strategies_match_where_they_should() {
        let s = Strategies::builtin().unwrap();
        assert_eq!(feature(&s, "Thanks so much for fixing it!", "gratitude"), 1.0);
        assert_eq!(feature(&s, "Please fix this now.", "please_start"), 1.0);
        assert_eq!(feature(&s, "Please fix this now.", "please"), 0.0);
        assert_eq!(feature(&s, "Could you please fix this?", "please"), 1.0);
        assert_eq!(feature(&s, "Could you please fix this?", "counterfactual_modal"), 1.0);
        assert_eq!(feature(&s, "Can you fix this?", "indicative_modal"), 1.0);
        assert_eq!(feature(&s, "Hi there. Why did you delete my edit?", "indirect_greeting"), 1.0);
        assert_eq!(feature(&s, "Hi there. Why did you delete my edit?", "direct_question"), 1.0);
        assert_eq!(feature(&s, "Hi there. Why did you delete my edit?", "accusation"), 1.0);
        assert_eq!(feature(&s, "Why did you delete my edit? Hi.", "indirect_greeting"), 0.0);
        assert_eq!(feature(&s, "I think this might be wrong.", "hedges"), 1.0);
        assert_eq!(feature(&s, "I think this might be wrong.", "first_person_start"), 1.0);
        assert_eq!(feature(&s, "I think this might be wrong.", "first_person"), 0.0);
        assert_eq!(feature(&s, "STOP reverting me", "shouting"), 1.0);
        assert_eq!(feature(&s, "stop reverting me", "shouting"), 0.0);
        assert_eq!(feature(&s, "Sorry, I didn\u{2019}t see that.", "apologizing"), 1.0);
        assert!((feature(&s, "good, great and nice", "positive_lexicon") - 4f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn strategy_file_errors_name_the_problem() {
        let e = Strategies::parse("t.yaml", "strategies:\n  - name: a\n    description: x\n    patterns: ['{nope}']\n").err().unwrap();
        assert!(e.to_string().contains("names lexicon `nope`, which is not defined"), "{e}");
        let e = Strategies::parse("t.yaml", "strategies:\n  - name: a\n    description: x\n    patterns: ['(']\n").err().unwrap();
        assert!(e.to_string().starts_with("t.yaml: strategy `a`: pattern \"(\""), "{e}");
        let e = Strategies::parse("t.yaml", "strategies:\n  - name: a\n    description: x\n    patterns: [a]\n    colour: red\n").err().unwrap();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let two = "strategies:\n  - {name: a, description: x, patterns: [a]}\n  - {name: a, description: y, patterns: [b]}\n";
        assert!(Strategies::parse("t.yaml", two).err().unwrap().to_string().contains("defined twice"));
    }

    #[test]
    fn ridge_recovers_a_linear_function() {
        // y = 2 a − 3 b + 1 on a small grid; a tiny λ gives the coefficients back.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for a in 0..6 {
            for b in 0..5 {
                let (a, b) = (a as f64, (b * b) as f64);
                x.push(vec![a, b]);
                y.push(2.0 * a - 3.0 * b + 1.0);
            }
        }
        let idx: Vec<usize> = (0..x.len()).collect();
        let m = fit_ridge_path(&x, &y, &idx, &[1e-9]).unwrap().remove(0);
        for (row, want) in x.iter().zip(&y) {
            assert!((m.predict(row) - want).abs() < 1e-6);
        }
        // A large λ shrinks towards the mean.
        let big = fit_ridge_path(&x, &y, &idx, &[1e9]).unwrap().remove(0);
        assert!((big.predict(&x[0]) - big.intercept).abs() < 1e-3);
    }

    #[test]
    fn percentile_interpolates_and_clamps() {
        let q: Vec<f64> = (0..=100).map(|i| i as f64 / 10.0).collect();
        assert_eq!(percentile(&q, -1.0), 0.0);
        assert_eq!(percentile(&q, 11.0), 100.0);
        assert!((percentile(&q, 5.05) - 50.5).abs() < 1e-9);
    }

    /// The committed weights load, fit the strategies file, and order clearly
    /// polite and clearly rude requests the way people do.
    #[test]
    fn committed_weights_rank_polite_above_rude() {
        let p = Politeness::load().unwrap();
        assert!(p.weights().cv.spearman_pooled > 0.45, "{:?}", p.weights().cv);
        let polite = p.score("Hi! Thanks so much for your help with the article. Would you mind taking a look at the references when you have a moment?");
        let rude = p.score("Why did you delete my edit? Stop reverting it. This is ridiculous.");
        assert!(polite.score_0_100 > 70.0, "{polite:?}");
        assert!(rude.score_0_100 < 30.0, "{rude:?}");
        assert!(polite.reason.contains("gratitude"), "{}", polite.reason);
        assert!(rude.reason.contains("hurt by"), "{}", rude.reason);
        assert!((0.0..=100.0).contains(&p.score("").score_0_100));
    }

    /// The MiniLM variant with the real embedding model.
    #[test]
    fn minilm_weights_score_with_the_embedder() {
        let file = PolitenessFile::read(Path::new(MINILM_WEIGHTS_PATH)).unwrap();
        assert!(file.cv.spearman_pooled > 0.6, "{:?}", file.cv);
        assert!(matches!(
            Politeness::from_parts(Strategies::builtin().unwrap(), file, None),
            Err(PolitenessError::NeedsEmbedder(_))
        ));
        let embedder = Embedder::load(&crate::mood::embed::default_model_dir()).unwrap();
        let p = Politeness::load_minilm(embedder).unwrap();
        let polite = p.score("Thank you so much for your patience. Would you be able to send the order number when convenient?");
        let rude = p.score("Stop emailing me. Why is this still broken? Ridiculous.");
        assert!(polite.score_0_100 > 70.0 && rude.score_0_100 < 30.0, "{polite:?} {rude:?}");
        assert!(!polite.reason.contains("embedding unavailable"));
    }
}
