//! Agreement statistics: how far reviewers agree with each other, and how far
//! an automatic score agrees with them.
//!
//! - Krippendorff's alpha (nominal, ordinal, interval, ratio) from the values
//!   each unit received, missing ratings allowed — the coefficient to report
//!   when reviewers rate different subsets of drafts.
//! - Cohen's kappa for one pair of raters, unweighted, linear or quadratic.
//! - Intraclass correlations from Shrout & Fleiss (1979): two-way ICC(2,1) and
//!   ICC(2,k) (and ICC(3,·)) when every rater rated every unit, one-way ICC(1,·)
//!   when each unit had its own raters.
//! - Spearman's rho and Kendall's tau-b (Knight's O(n log n) algorithm, so a
//!   bootstrap over thousands of items stays fast), Pearson's r.
//! - A seeded percentile bootstrap over units for any of them.
//!
//! Hand-written: no statistics crate is in the dependency tree, and these are
//! short formulas whose correctness is pinned by the published worked examples
//! in the tests below (Krippendorff 2011, Shrout & Fleiss 1979, Artstein &
//! Poesio 2008 via scikit-learn's tests, SciPy's documented examples) and by
//! the Wikipedia politeness ratings (alpha 0.424 interval, 0.409 ordinal as the
//! Python `krippendorff` package computes them). Functions take plain slices
//! and return `Result`: an undefined coefficient (no variation, too few pairs)
//! is an error that says why, never a NaN.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StatsError {
    #[error("{what}: needs at least {need} {of}, got {got}")]
    TooFew { what: &'static str, need: usize, of: &'static str, got: usize },
    #[error("{what}: value {value} is not a finite number")]
    NotFinite { what: &'static str, value: f64 },
    #[error("{what}: the two series have different lengths ({left} and {right})")]
    LengthMismatch { what: &'static str, left: usize, right: usize },
    #[error("{what} is undefined: {reason}")]
    Undefined { what: &'static str, reason: String },
    #[error("rater {rater:?} rated unit {unit:?} twice ({first} and {second})")]
    DuplicateRating { unit: String, rater: String, first: f64, second: f64 },
    #[error("{what}: {field} must be {limit}, got {value}")]
    BadOption { what: &'static str, field: &'static str, limit: &'static str, value: String },
}

/// Level of measurement: decides which differences between values count, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Nominal,
    Ordinal,
    Interval,
    Ratio,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Nominal, Level::Ordinal, Level::Interval, Level::Ratio];
    pub fn name(self) -> &'static str {
        match self {
            Level::Nominal => "nominal",
            Level::Ordinal => "ordinal",
            Level::Interval => "interval",
            Level::Ratio => "ratio",
        }
    }
}

fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    match xs.iter().find(|v| !v.is_finite()) {
        Some(&value) => Err(StatsError::NotFinite { what, value }),
        None => Ok(()),
    }
}

/// Sorted distinct values of `xs` (which must be finite).
fn distinct(xs: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = xs.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

fn index_of(values: &[f64], x: f64) -> usize {
    // `values` is sorted and holds x.
    values.binary_search_by(|v| v.total_cmp(&x)).unwrap_or_else(|i| i)
}

// ---------------------------------------------------------------- alpha

/// Krippendorff's alpha with its ingredients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Alpha {
    pub alpha: f64,
    /// Observed disagreement D_o.
    pub observed: f64,
    /// Disagreement expected by chance D_e.
    pub expected: f64,
    /// Pairable values n (values in units with at least two values).
    pub pairable_values: usize,
    /// Units with at least two values.
    pub units: usize,
}

/// Krippendorff's alpha over `units`, each the list of values that unit
/// received (any number of raters, missing ratings simply absent). Units with
/// fewer than two values are not pairable and are skipped, as in
/// Krippendorff (2011), "Computing Krippendorff's alpha-reliability".
pub fn krippendorff_alpha(units: &[Vec<f64>], level: Level) -> Result<Alpha, StatsError> {
    const WHAT: &str = "Krippendorff's alpha";
    let pairable: Vec<&Vec<f64>> = units.iter().filter(|u| u.len() >= 2).collect();
    for u in &pairable {
        check_finite(WHAT, u)?;
    }
    let n: usize = pairable.iter().map(|u| u.len()).sum();
    if pairable.is_empty() {
        return Err(StatsError::TooFew { what: WHAT, need: 1, of: "unit with two or more ratings", got: 0 });
    }
    // Marginal counts n_c over the distinct pairable values.
    let values = distinct(pairable.iter().flat_map(|u| u.iter().copied()));
    let mut counts = vec![0f64; values.len()];
    for u in &pairable {
        for &v in u.iter() {
            counts[index_of(&values, v)] += 1.0;
        }
    }
    // Cumulative counts for the ordinal metric: cum[i] = sum of counts[..=i].
    let mut cum = Vec::with_capacity(counts.len());
    let mut acc = 0.0;
    for c in &counts {
        acc += c;
        cum.push(acc);
    }
    let delta2 = |i: usize, j: usize| -> f64 {
        if i == j {
            return 0.0;
        }
        let (a, b) = (values[i], values[j]);
        match level {
            Level::Nominal => 1.0,
            Level::Ordinal => {
                let (lo, hi) = if i < j { (i, j) } else { (j, i) };
                let between = cum[hi] - if lo == 0 { 0.0 } else { cum[lo - 1] };
                let d = between - (counts[lo] + counts[hi]) / 2.0;
                d * d
            }
            Level::Interval => (a - b) * (a - b),
            Level::Ratio => {
                let s = a + b;
                if s == 0.0 {
                    0.0
                } else {
                    ((a - b) / s).powi(2)
                }
            }
        }
    };
    let nf = n as f64;
    let mut observed = 0.0;
    for u in &pairable {
        let idx: Vec<usize> = u.iter().map(|&v| index_of(&values, v)).collect();
        let mut sum = 0.0;
        for (a, &i) in idx.iter().enumerate() {
            for (b, &j) in idx.iter().enumerate() {
                if a != b {
                    sum += delta2(i, j);
                }
            }
        }
        observed += sum / (u.len() as f64 - 1.0);
    }
    observed /= nf;
    let mut expected = 0.0;
    for i in 0..values.len() {
        for j in 0..values.len() {
            if i != j {
                expected += counts[i] * counts[j] * delta2(i, j);
            }
        }
    }
    expected /= nf * (nf - 1.0);
    if expected == 0.0 {
        return Err(StatsError::Undefined {
            what: WHAT,
            reason: format!("every pairable value is the same ({}), so no disagreement is expected by chance", values[0]),
        });
    }
    Ok(Alpha { alpha: 1.0 - observed / expected, observed, expected, pairable_values: n, units: pairable.len() })
}

// ---------------------------------------------------------------- ratings table

/// Ratings in long form: which rater gave which unit which value. Sparse, so
/// hundreds of crowd raters who each rated a few units cost nothing.
#[derive(Debug, Clone, Default)]
pub struct Ratings {
    units: Vec<String>,
    raters: Vec<String>,
    unit_index: HashMap<String, usize>,
    rater_index: HashMap<String, usize>,
    /// Per unit: (rater index, value), in insertion order.
    cells: Vec<Vec<(usize, f64)>>,
}

/// Two raters' values on the units both rated.
#[derive(Debug, Clone, PartialEq)]
pub struct RaterPair {
    pub rater_a: String,
    pub rater_b: String,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

impl Ratings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one rating. A second rating of the same unit by the same rater is
    /// an error: alpha and kappa assume one value per rater and unit.
    pub fn add(&mut self, unit: &str, rater: &str, value: f64) -> Result<(), StatsError> {
        if !value.is_finite() {
            return Err(StatsError::NotFinite { what: "rating", value });
        }
        let u = match self.unit_index.get(unit) {
            Some(&u) => u,
            None => {
                self.units.push(unit.to_string());
                self.cells.push(Vec::new());
                self.unit_index.insert(unit.to_string(), self.units.len() - 1);
                self.units.len() - 1
            }
        };
        let r = match self.rater_index.get(rater) {
            Some(&r) => r,
            None => {
                self.raters.push(rater.to_string());
                self.rater_index.insert(rater.to_string(), self.raters.len() - 1);
                self.raters.len() - 1
            }
        };
        if let Some(&(_, first)) = self.cells[u].iter().find(|(rr, _)| *rr == r) {
            return Err(StatsError::DuplicateRating { unit: unit.to_string(), rater: rater.to_string(), first, second: value });
        }
        self.cells[u].push((r, value));
        Ok(())
    }

    pub fn unit_count(&self) -> usize {
        self.units.len()
    }
    pub fn rater_count(&self) -> usize {
        self.raters.len()
    }
    pub fn rating_count(&self) -> usize {
        self.cells.iter().map(|c| c.len()).sum()
    }
    pub fn unit_ids(&self) -> &[String] {
        &self.units
    }
    pub fn rater_ids(&self) -> &[String] {
        &self.raters
    }

    /// The values each unit received, in unit order.
    pub fn unit_values(&self) -> Vec<Vec<f64>> {
        self.cells.iter().map(|c| c.iter().map(|&(_, v)| v).collect()).collect()
    }

    /// Mean rating per unit (None for a unit without ratings).
    pub fn unit_means(&self) -> Vec<Option<f64>> {
        self.cells
            .iter()
            .map(|c| if c.is_empty() { None } else { Some(c.iter().map(|&(_, v)| v).sum::<f64>() / c.len() as f64) })
            .collect()
    }

    /// Every pair of raters that shares at least `min_shared` units, with
    /// their values on the shared units (unit order).
    pub fn rater_pairs(&self, min_shared: usize) -> Vec<RaterPair> {
        let mut shared: HashMap<(usize, usize), (Vec<f64>, Vec<f64>)> = HashMap::new();
        for cell in &self.cells {
            for (x, &(ra, va)) in cell.iter().enumerate() {
                for &(rb, vb) in &cell[x + 1..] {
                    let (key, pa, pb) = if ra < rb { ((ra, rb), va, vb) } else { ((rb, ra), vb, va) };
                    let e = shared.entry(key).or_default();
                    e.0.push(pa);
                    e.1.push(pb);
                }
            }
        }
        let mut pairs: Vec<RaterPair> = shared
            .into_iter()
            .filter(|(_, (a, _))| a.len() >= min_shared.max(1))
            .map(|((ra, rb), (a, b))| RaterPair { rater_a: self.raters[ra].clone(), rater_b: self.raters[rb].clone(), a, b })
            .collect();
        pairs.sort_by(|p, q| (&p.rater_a, &p.rater_b).cmp(&(&q.rater_a, &q.rater_b)));
        pairs
    }

    /// The fully crossed block for a two-way ICC: the units every rater rated,
    /// as rows of values in rater order. Empty when no unit was rated by all.
    pub fn complete_rows(&self) -> Vec<Vec<f64>> {
        let k = self.raters.len();
        self.cells
            .iter()
            .filter(|c| c.len() == k)
            .map(|c| {
                let mut row = vec![0.0; k];
                for &(r, v) in c {
                    row[r] = v;
                }
                row
            })
            .collect()
    }

    /// A new table with only the units in `keep` (by position), for bootstrapping.
    pub fn resample(&self, keep: &[usize]) -> Vec<Vec<f64>> {
        keep.iter().map(|&u| self.cells[u].iter().map(|&(_, v)| v).collect()).collect()
    }
}

// ---------------------------------------------------------------- kappa

/// How Cohen's kappa weighs a disagreement between categories i and j.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KappaWeights {
    /// Every disagreement counts 1.
    Unweighted,
    /// |i - j|.
    Linear,
    /// (i - j)².
    Quadratic,
}

/// Cohen's kappa between two raters' values on the same units. `categories`
/// fixes the ordered category set (e.g. 1..=5 for a five-point scale) so
/// weights follow the scale's positions; `None` takes the values that occur.
/// Values outside given categories are an error.
pub fn cohen_kappa(a: &[f64], b: &[f64], weights: KappaWeights, categories: Option<&[f64]>) -> Result<f64, StatsError> {
    const WHAT: &str = "Cohen's kappa";
    if a.len() != b.len() {
        return Err(StatsError::LengthMismatch { what: WHAT, left: a.len(), right: b.len() });
    }
    if a.len() < 2 {
        return Err(StatsError::TooFew { what: WHAT, need: 2, of: "units rated by both raters", got: a.len() });
    }
    check_finite(WHAT, a)?;
    check_finite(WHAT, b)?;
    let cats = match categories {
        Some(c) => {
            check_finite(WHAT, c)?;
            let d = distinct(c.iter().copied());
            if let Some(&v) = a.iter().chain(b).find(|v| d.binary_search_by(|c| c.total_cmp(v)).is_err()) {
                return Err(StatsError::Undefined { what: WHAT, reason: format!("value {v} is not one of the categories {d:?}") });
            }
            d
        }
        None => distinct(a.iter().chain(b).copied()),
    };
    let k = cats.len();
    let n = a.len() as f64;
    let mut observed = vec![0f64; k * k];
    let mut row = vec![0f64; k];
    let mut col = vec![0f64; k];
    for (&x, &y) in a.iter().zip(b) {
        let (i, j) = (index_of(&cats, x), index_of(&cats, y));
        observed[i * k + j] += 1.0 / n;
        row[i] += 1.0 / n;
        col[j] += 1.0 / n;
    }
    let w = |i: usize, j: usize| -> f64 {
        let d = (i as f64 - j as f64).abs();
        match weights {
            KappaWeights::Unweighted => (d > 0.0) as u8 as f64,
            KappaWeights::Linear => d,
            KappaWeights::Quadratic => d * d,
        }
    };
    let (mut po, mut pe) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            po += w(i, j) * observed[i * k + j];
            pe += w(i, j) * row[i] * col[j];
        }
    }
    if pe == 0.0 {
        return Err(StatsError::Undefined {
            what: WHAT,
            reason: "no disagreement is expected by chance (both raters used a single category)".into(),
        });
    }
    Ok(1.0 - po / pe)
}

// ---------------------------------------------------------------- ICC

/// Intraclass correlations for a fully crossed design (Shrout & Fleiss 1979).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Icc {
    /// ICC(1,1): one-way random, single rating.
    pub icc1_1: f64,
    /// ICC(1,k): one-way random, mean of k ratings.
    pub icc1_k: f64,
    /// ICC(2,1): two-way random (raters a sample), absolute agreement, single rating.
    pub icc2_1: f64,
    /// ICC(2,k): two-way random, absolute agreement, mean of k ratings.
    pub icc2_k: f64,
    /// ICC(3,1): two-way mixed (these raters only), consistency, single rating.
    pub icc3_1: f64,
    /// ICC(3,k): two-way mixed, consistency, mean of k ratings.
    pub icc3_k: f64,
    pub units: usize,
    pub raters: usize,
}

/// ICCs from an n×k matrix (rows = units, columns = raters), every cell present.
pub fn icc(rows: &[Vec<f64>]) -> Result<Icc, StatsError> {
    const WHAT: &str = "ICC";
    let n = rows.len();
    if n < 2 {
        return Err(StatsError::TooFew { what: WHAT, need: 2, of: "units rated by every rater", got: n });
    }
    let k = rows[0].len();
    if k < 2 {
        return Err(StatsError::TooFew { what: WHAT, need: 2, of: "raters", got: k });
    }
    for r in rows {
        if r.len() != k {
            return Err(StatsError::LengthMismatch { what: WHAT, left: k, right: r.len() });
        }
        check_finite(WHAT, r)?;
    }
    let (nf, kf) = (n as f64, k as f64);
    let grand = rows.iter().flatten().sum::<f64>() / (nf * kf);
    let ss_total: f64 = rows.iter().flatten().map(|v| (v - grand).powi(2)).sum();
    let ss_rows: f64 = rows.iter().map(|r| (r.iter().sum::<f64>() / kf - grand).powi(2)).sum::<f64>() * kf;
    let ss_cols: f64 = (0..k)
        .map(|j| (rows.iter().map(|r| r[j]).sum::<f64>() / nf - grand).powi(2))
        .sum::<f64>()
        * nf;
    let ss_err = ss_total - ss_rows - ss_cols;
    let ss_within = ss_total - ss_rows;
    let bms = ss_rows / (nf - 1.0);
    let jms = ss_cols / (kf - 1.0);
    let ems = ss_err / ((nf - 1.0) * (kf - 1.0));
    let wms = ss_within / (nf * (kf - 1.0));
    if bms == 0.0 && ems == 0.0 && wms == 0.0 {
        return Err(StatsError::Undefined { what: WHAT, reason: "every rating is the same".into() });
    }
    let ratio = |num: f64, den: f64| if den == 0.0 { f64::NAN } else { num / den };
    let out = Icc {
        icc1_1: ratio(bms - wms, bms + (kf - 1.0) * wms),
        icc1_k: ratio(bms - wms, bms),
        icc2_1: ratio(bms - ems, bms + (kf - 1.0) * ems + kf * (jms - ems) / nf),
        icc2_k: ratio(bms - ems, bms + (jms - ems) / nf),
        icc3_1: ratio(bms - ems, bms + (kf - 1.0) * ems),
        icc3_k: ratio(bms - ems, bms),
        units: n,
        raters: k,
    };
    if [out.icc1_1, out.icc1_k, out.icc2_1, out.icc2_k, out.icc3_1, out.icc3_k].iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Undefined { what: WHAT, reason: "the units do not differ (between-unit mean square is 0)".into() });
    }
    Ok(out)
}

/// One-way ICC for designs where each unit had its own raters (crowd
/// ratings): ICC(1,1) and ICC(1,k̄). Units may have different numbers of
/// ratings; k₀ = (N − Σmᵤ²/N)/(n − 1) replaces k, as in unbalanced one-way
/// ANOVA. Units with fewer than two ratings are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IccOneWay {
    pub icc1_1: f64,
    pub icc1_k: f64,
    /// The effective number of ratings per unit k₀.
    pub k: f64,
    pub units: usize,
}

pub fn icc_oneway(units: &[Vec<f64>]) -> Result<IccOneWay, StatsError> {
    const WHAT: &str = "one-way ICC";
    let us: Vec<&Vec<f64>> = units.iter().filter(|u| u.len() >= 2).collect();
    if us.len() < 2 {
        return Err(StatsError::TooFew { what: WHAT, need: 2, of: "units with two or more ratings", got: us.len() });
    }
    for u in &us {
        check_finite(WHAT, u)?;
    }
    let big_n: f64 = us.iter().map(|u| u.len() as f64).sum();
    let n = us.len() as f64;
    let grand = us.iter().flat_map(|u| u.iter()).sum::<f64>() / big_n;
    let mut ss_between = 0.0;
    let mut ss_within = 0.0;
    for u in &us {
        let m = u.iter().sum::<f64>() / u.len() as f64;
        ss_between += u.len() as f64 * (m - grand).powi(2);
        ss_within += u.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    }
    let bms = ss_between / (n - 1.0);
    let wms = ss_within / (big_n - n);
    let k0 = (big_n - us.iter().map(|u| (u.len() as f64).powi(2)).sum::<f64>() / big_n) / (n - 1.0);
    if bms == 0.0 {
        return Err(StatsError::Undefined { what: WHAT, reason: "the units do not differ (between-unit mean square is 0)".into() });
    }
    Ok(IccOneWay { icc1_1: (bms - wms) / (bms + (k0 - 1.0) * wms), icc1_k: (bms - wms) / bms, k: k0, units: us.len() })
}

// ---------------------------------------------------------------- correlations

/// Ranks from 1, ties given their average rank.
pub fn average_ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&i, &j| xs[i].total_cmp(&xs[j]));
    let mut ranks = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = r;
        }
        i = j + 1;
    }
    ranks
}

fn paired(what: &'static str, x: &[f64], y: &[f64], need: usize) -> Result<(), StatsError> {
    if x.len() != y.len() {
        return Err(StatsError::LengthMismatch { what, left: x.len(), right: y.len() });
    }
    if x.len() < need {
        return Err(StatsError::TooFew { what, need, of: "pairs", got: x.len() });
    }
    check_finite(what, x)?;
    check_finite(what, y)
}

/// Pearson's product-moment correlation.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    const WHAT: &str = "Pearson's r";
    paired(WHAT, x, y, 2)?;
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        return Err(StatsError::Undefined { what: WHAT, reason: "one series is constant".into() });
    }
    Ok(sxy / (sxx * syy).sqrt())
}

/// Spearman's rho: Pearson's r of the average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    paired("Spearman's rho", x, y, 2)?;
    pearson(&average_ranks(x), &average_ranks(y)).map_err(|e| match e {
        StatsError::Undefined { reason, .. } => StatsError::Undefined { what: "Spearman's rho", reason },
        e => e,
    })
}

/// Kendall's tau-b (ties in either series corrected), O(n log n) after
/// Knight (1966), as SciPy's `kendalltau` computes it.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    const WHAT: &str = "Kendall's tau-b";
    paired(WHAT, x, y, 2)?;
    let n = x.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]).then(y[i].total_cmp(&y[j])));
    let pairs_in_runs = |same: &dyn Fn(usize, usize) -> bool, order: &[usize]| -> f64 {
        let mut total = 0f64;
        let mut run = 1f64;
        for w in 1..order.len() {
            if same(order[w - 1], order[w]) {
                run += 1.0;
            } else {
                total += run * (run - 1.0) / 2.0;
                run = 1.0;
            }
        }
        total + run * (run - 1.0) / 2.0
    };
    let x_ties = pairs_in_runs(&|i, j| x[i] == x[j], &idx);
    let joint_ties = pairs_in_runs(&|i, j| x[i] == x[j] && y[i] == y[j], &idx);
    // Count discordant pairs as the inversions of y in this order (strict).
    let mut ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    let mut buf = ys.clone();
    let swaps = merge_count(&mut ys, &mut buf);
    // ys is now sorted: count y ties.
    let order: Vec<usize> = (0..n).collect();
    let y_ties = pairs_in_runs(&|i, j| ys[i] == ys[j], &order);
    let total = n as f64 * (n as f64 - 1.0) / 2.0;
    let con_minus_dis = total - x_ties - y_ties + joint_ties - 2.0 * swaps;
    let den = ((total - x_ties) * (total - y_ties)).sqrt();
    if den == 0.0 {
        return Err(StatsError::Undefined { what: WHAT, reason: "one series is constant".into() });
    }
    Ok(con_minus_dis / den)
}

/// Sorts `v` and returns the number of strict inversions (i < j, v[i] > v[j]).
fn merge_count(v: &mut [f64], buf: &mut [f64]) -> f64 {
    let n = v.len();
    if n < 2 {
        return 0.0;
    }
    let mid = n / 2;
    let mut count = {
        let (l, r) = v.split_at_mut(mid);
        let (bl, br) = buf.split_at_mut(mid);
        merge_count(l, bl) + merge_count(r, br)
    };
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if v[j] < v[i] {
            buf[k] = v[j];
            count += (mid - i) as f64;
            j += 1;
        } else {
            buf[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    while i < mid {
        buf[k] = v[i];
        i += 1;
        k += 1;
    }
    while j < n {
        buf[k] = v[j];
        j += 1;
        k += 1;
    }
    v.copy_from_slice(&buf[..n]);
    count
}

// ---------------------------------------------------------------- bootstrap

/// Options for a percentile bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Number of resamples (≥ 10; 1000 is usual).
    pub resamples: usize,
    /// Seed, so the same data and seed give the same interval.
    pub seed: u64,
    /// Coverage, e.g. 0.95.
    pub level: f64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self { resamples: 1000, seed: 0, level: 0.95 }
    }
}

/// A point estimate with a bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub level: f64,
    /// Resamples on which the statistic was defined (the interval uses these).
    pub resamples: usize,
    /// Resamples on which it was undefined (e.g. no variation) and were skipped.
    pub undefined: usize,
}

impl Bootstrap {
    fn check(&self) -> Result<(), StatsError> {
        if self.resamples < 10 {
            return Err(StatsError::BadOption { what: "bootstrap", field: "resamples", limit: "at least 10", value: self.resamples.to_string() });
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(StatsError::BadOption { what: "bootstrap", field: "level", limit: "between 0 and 1 (exclusive)", value: self.level.to_string() });
        }
        Ok(())
    }

    /// Percentile interval for `statistic` over `n` units resampled with
    /// replacement. `statistic` receives the chosen unit indices (repeats
    /// allowed) and is also called once on 0..n for the point estimate.
    pub fn interval<F>(&self, n: usize, mut statistic: F) -> Result<Interval, StatsError>
    where
        F: FnMut(&[usize]) -> Result<f64, StatsError>,
    {
        self.check()?;
        if n < 2 {
            return Err(StatsError::TooFew { what: "bootstrap", need: 2, of: "units", got: n });
        }
        let all: Vec<usize> = (0..n).collect();
        let estimate = statistic(&all)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut values = Vec::with_capacity(self.resamples);
        let mut undefined = 0;
        let mut pick = vec![0usize; n];
        for _ in 0..self.resamples {
            for p in pick.iter_mut() {
                *p = rng.gen_range(0..n);
            }
            match statistic(&pick) {
                Ok(v) if v.is_finite() => values.push(v),
                _ => undefined += 1,
            }
        }
        if values.len() < self.resamples / 2 {
            return Err(StatsError::Undefined {
                what: "bootstrap interval",
                reason: format!("the statistic was undefined on {undefined} of {} resamples", self.resamples),
            });
        }
        values.sort_by(f64::total_cmp);
        let tail = (1.0 - self.level) / 2.0;
        Ok(Interval {
            estimate,
            low: quantile_sorted(&values, tail),
            high: quantile_sorted(&values, 1.0 - tail),
            level: self.level,
            resamples: values.len(),
            undefined,
        })
    }

    /// Paired bootstrap of mean(b − a): for comparing two runs on the same cases.
    pub fn mean_difference(&self, a: &[f64], b: &[f64]) -> Result<Interval, StatsError> {
        paired("paired mean difference", a, b, 2)?;
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
        self.interval(d.len(), |idx| Ok(idx.iter().map(|&i| d[i]).sum::<f64>() / idx.len() as f64))
    }
}

/// Linear-interpolated quantile (R's type 7) of sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} is not within {tol} of {b}");
    }

    /// Krippendorff (2011), "Computing Krippendorff's alpha-reliability",
    /// section C: 4 observers, 12 units, values 1–5, missing cells. Unit 12
    /// has a single value and is not pairable.
    fn krippendorff_2011() -> Vec<Vec<f64>> {
        const M: f64 = f64::NAN;
        let obs = [
            [1., 2., 3., 3., 2., 1., 4., 1., 2., M, M, M],
            [1., 2., 3., 3., 2., 2., 4., 1., 2., 5., M, 3.],
            [M, 3., 3., 3., 2., 3., 4., 2., 2., 5., 1., M],
            [1., 2., 3., 3., 2., 4., 4., 1., 2., 5., 1., M],
        ];
        (0..12).map(|u| obs.iter().map(|o| o[u]).filter(|v| !v.is_nan()).collect()).collect()
    }

    #[test]
    fn alpha_matches_krippendorff_2011_worked_example() {
        let units = krippendorff_2011();
        let nominal = krippendorff_alpha(&units, Level::Nominal).unwrap();
        close(nominal.alpha, 0.743, 0.0005);
        assert_eq!(nominal.pairable_values, 40);
        assert_eq!(nominal.units, 11);
        // The same paper's other metrics for the same data.
        close(krippendorff_alpha(&units, Level::Ordinal).unwrap().alpha, 0.815, 0.0005);
        close(krippendorff_alpha(&units, Level::Interval).unwrap().alpha, 0.849, 0.0005);
        close(krippendorff_alpha(&units, Level::Ratio).unwrap().alpha, 0.797, 0.0005);
        // The Python `krippendorff` package on the same matrix, to more digits.
        close(nominal.alpha, 0.743421052631579, 1e-12);
        close(krippendorff_alpha(&units, Level::Ordinal).unwrap().alpha, 0.8153875037548814, 1e-12);
        close(krippendorff_alpha(&units, Level::Interval).unwrap().alpha, 0.8491071428571428, 1e-12);
    }

    /// The Wikipedia half of the Stanford Politeness Corpus: 4,353 requests,
    /// five crowd raters each (`TurkId1..5`, `Score1..5`). The Python
    /// `krippendorff` package gives 0.424 (interval) and 0.409 (ordinal).
    pub(crate) fn politeness_ratings() -> Ratings {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/politeness/wikipedia.annotated.csv");
        let text = std::fs::read_to_string(path).expect("politeness fixture");
        let table = crate::eval::csv::Table::parse(&text).unwrap();
        let id = table.column("Id").unwrap();
        let mut r = Ratings::new();
        for row in &table.rows {
            for k in 1..=5 {
                let rater = &row.fields[table.column(&format!("TurkId{k}")).unwrap()];
                let score: f64 = row.fields[table.column(&format!("Score{k}")).unwrap()].parse().unwrap();
                r.add(&row.fields[id], rater, score).unwrap();
            }
        }
        r
    }

    #[test]
    fn alpha_matches_the_politeness_corpus() {
        let r = politeness_ratings();
        assert_eq!((r.unit_count(), r.rater_count(), r.rating_count()), (4353, 219, 21765));
        let units = r.unit_values();
        let interval = krippendorff_alpha(&units, Level::Interval).unwrap();
        let ordinal = krippendorff_alpha(&units, Level::Ordinal).unwrap();
        close(interval.alpha, 0.424, 0.0005);
        close(ordinal.alpha, 0.409, 0.0005);
        // To more digits, as the Python `krippendorff` package (0.8) prints them.
        close(interval.alpha, 0.42384936326072487, 1e-9);
        close(ordinal.alpha, 0.4089386265956967, 1e-9);
        close(krippendorff_alpha(&units, Level::Nominal).unwrap().alpha, 0.07318520998299216, 1e-9);
        close(krippendorff_alpha(&units, Level::Ratio).unwrap().alpha, 0.35239380695265443, 1e-9);
        // No two raters rated every unit, so only the one-way ICC applies.
        assert!(r.complete_rows().is_empty());
        let one = icc_oneway(&units).unwrap();
        assert!(one.icc1_1 > 0.3 && one.icc1_1 < 0.5, "{one:?}");
    }

    #[test]
    fn alpha_is_one_for_perfect_agreement_and_undefined_without_variation() {
        let perfect = vec![vec![1., 1.], vec![2., 2., 2.], vec![3., 3.]];
        for level in Level::ALL {
            close(krippendorff_alpha(&perfect, level).unwrap().alpha, 1.0, 1e-12);
        }
        let same = vec![vec![2., 2.], vec![2., 2.]];
        assert!(matches!(krippendorff_alpha(&same, Level::Interval), Err(StatsError::Undefined { .. })));
        assert!(matches!(krippendorff_alpha(&[vec![1.]], Level::Nominal), Err(StatsError::TooFew { .. })));
        assert!(matches!(krippendorff_alpha(&[vec![1., f64::NAN]], Level::Nominal), Err(StatsError::NotFinite { .. })));
    }

    #[test]
    fn ratings_table_pairs_and_duplicates() {
        let mut r = Ratings::new();
        for (u, rater, v) in [("u1", "a", 1.), ("u1", "b", 2.), ("u2", "a", 3.), ("u2", "b", 3.), ("u2", "c", 4.), ("u3", "c", 5.)] {
            r.add(u, rater, v).unwrap();
        }
        assert_eq!((r.unit_count(), r.rater_count(), r.rating_count()), (3, 3, 6));
        let pairs = r.rater_pairs(1);
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0], RaterPair { rater_a: "a".into(), rater_b: "b".into(), a: vec![1., 3.], b: vec![2., 3.] });
        assert_eq!(r.rater_pairs(2).len(), 1);
        assert_eq!(r.complete_rows(), vec![vec![3., 3., 4.]]);
        let e = r.add("u1", "a", 5.).unwrap_err();
        assert_eq!(e.to_string(), "rater \"a\" rated unit \"u1\" twice (1 and 5)");
        assert_eq!(r.unit_means(), vec![Some(1.5), Some(10. / 3.), Some(5.)]);
    }

    /// scikit-learn's `test_cohen_kappa`: contingency tables from Artstein &
    /// Poesio (2008), Tables 1 and 4, and its weighting example.
    #[test]
    fn kappa_matches_artstein_poesio_and_scikit_learn() {
        let rep = |parts: &[(f64, usize)]| -> Vec<f64> { parts.iter().flat_map(|&(v, n)| std::iter::repeat(v).take(n)).collect() };
        let y1 = rep(&[(0., 40), (1., 60)]);
        let y2 = rep(&[(0., 20), (1., 20), (0., 10), (1., 50)]);
        close(cohen_kappa(&y1, &y2, KappaWeights::Unweighted, None).unwrap(), 0.348, 0.0005);
        close(cohen_kappa(&y2, &y1, KappaWeights::Unweighted, None).unwrap(), 0.348, 0.0005);
        let y1 = rep(&[(0., 46), (1., 44), (2., 10)]);
        let y2 = rep(&[(0., 52), (1., 32), (2., 16)]);
        close(cohen_kappa(&y1, &y2, KappaWeights::Unweighted, None).unwrap(), 0.8013, 0.00005);
        let y2 = rep(&[(0., 50), (1., 40), (2., 10)]);
        close(cohen_kappa(&y1, &y2, KappaWeights::Unweighted, None).unwrap(), 0.9315, 0.00005);
        close(cohen_kappa(&y1, &y2, KappaWeights::Linear, None).unwrap(), 0.9412, 0.00005);
        close(cohen_kappa(&y1, &y2, KappaWeights::Quadratic, None).unwrap(), 0.9541, 0.00005);
    }

    /// Cohen (1960)'s own style of example as in Wikipedia's worked example:
    /// 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 → kappa 0.4.
    #[test]
    fn kappa_matches_the_textbook_grant_proposal_example() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (x, y, n) in [(1., 1., 20), (1., 0., 5), (0., 1., 10), (0., 0., 15)] {
            for _ in 0..n {
                a.push(x);
                b.push(y);
            }
        }
        close(cohen_kappa(&a, &b, KappaWeights::Unweighted, None).unwrap(), 0.4, 1e-12);
        // With two categories every weighting is the same coefficient.
        close(cohen_kappa(&a, &b, KappaWeights::Quadratic, None).unwrap(), 0.4, 1e-12);
    }

    #[test]
    fn kappa_categories_fix_the_scale_and_reject_strays() {
        let a = [1., 2., 3.];
        let b = [1., 2., 2.];
        let scale: Vec<f64> = (1..=5).map(f64::from).collect();
        // Same table either way for unweighted kappa.
        close(
            cohen_kappa(&a, &b, KappaWeights::Unweighted, Some(&scale)).unwrap(),
            cohen_kappa(&a, &b, KappaWeights::Unweighted, None).unwrap(),
            1e-12,
        );
        let e = cohen_kappa(&[1., 7.], &[1., 2.], KappaWeights::Linear, Some(&scale)).unwrap_err();
        assert!(e.to_string().contains("value 7 is not one of the categories"), "{e}");
        assert!(matches!(cohen_kappa(&[1.], &[1.], KappaWeights::Linear, None), Err(StatsError::TooFew { .. })));
        assert!(matches!(cohen_kappa(&[1., 1.], &[1., 1.], KappaWeights::Linear, None), Err(StatsError::Undefined { .. })));
    }

    /// Shrout & Fleiss (1979), Table 2 data and Table 4 results:
    /// ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71, ICC(1,4)=.44, ICC(2,4)=.62, ICC(3,4)=.91.
    #[test]
    fn icc_matches_shrout_fleiss_1979() {
        let data = vec![
            vec![9., 2., 5., 8.],
            vec![6., 1., 3., 2.],
            vec![8., 4., 6., 8.],
            vec![7., 1., 2., 6.],
            vec![10., 5., 6., 9.],
            vec![6., 2., 4., 7.],
        ];
        let i = icc(&data).unwrap();
        close(i.icc1_1, 0.17, 0.005);
        close(i.icc2_1, 0.29, 0.005);
        close(i.icc3_1, 0.71, 0.005);
        close(i.icc1_k, 0.44, 0.005);
        close(i.icc2_k, 0.62, 0.005);
        close(i.icc3_k, 0.91, 0.005);
        // From the paper's Table 3 mean squares (BMS 11.24, JMS 32.49, EMS 1.02),
        // rounded there to two decimals: ICC(2,1) = 10.22 / 35.28 = .2897.
        close(i.icc2_1, 10.22 / 35.28, 0.0005);
        // The one-way coefficients from the unit lists alone agree with the two-way table's.
        let one = icc_oneway(&data).unwrap();
        close(one.icc1_1, i.icc1_1, 1e-12);
        close(one.icc1_k, i.icc1_k, 1e-12);
        close(one.k, 4.0, 1e-12);
    }

    #[test]
    fn icc_rejects_ragged_and_degenerate_input() {
        assert!(matches!(icc(&[vec![1., 2.]]), Err(StatsError::TooFew { .. })));
        assert!(matches!(icc(&[vec![1., 2.], vec![1.]]), Err(StatsError::LengthMismatch { .. })));
        assert!(matches!(icc(&[vec![3., 3.], vec![3., 3.]]), Err(StatsError::Undefined { .. })));
    }

    /// SciPy's documented examples for `spearmanr` and `kendalltau`.
    #[test]
    fn correlations_match_scipy_examples() {
        close(spearman(&[1., 2., 3., 4., 5.], &[5., 6., 7., 8., 7.]).unwrap(), 0.82078268166812329, 1e-12);
        close(kendall_tau_b(&[12., 2., 1., 12., 2.], &[1., 4., 7., 1., 0.]).unwrap(), -0.47140452079103173, 1e-12);
        close(pearson(&[1., 2., 3.], &[2., 4., 6.]).unwrap(), 1.0, 1e-12);
        assert!(matches!(spearman(&[1., 1.], &[1., 2.]), Err(StatsError::Undefined { .. })));
        assert!(matches!(kendall_tau_b(&[1., 2.], &[1.]), Err(StatsError::LengthMismatch { .. })));
    }

    /// Knight's algorithm against the O(n²) definition on tie-heavy data.
    #[test]
    fn kendall_fast_equals_pairwise_definition() {
        let mut rng = StdRng::seed_from_u64(7);
        for n in [2usize, 3, 10, 57, 200] {
            let x: Vec<f64> = (0..n).map(|_| rng.gen_range(0..6) as f64).collect();
            let y: Vec<f64> = x.iter().map(|v| v + rng.gen_range(0..4) as f64).collect();
            let (mut c, mut d, mut tx, mut ty) = (0f64, 0f64, 0f64, 0f64);
            for i in 0..n {
                for j in i + 1..n {
                    let sx = (x[i] - x[j]).signum() * ((x[i] != x[j]) as u8 as f64);
                    let sy = (y[i] - y[j]).signum() * ((y[i] != y[j]) as u8 as f64);
                    if sx == 0.0 && sy == 0.0 {
                    } else if sx == 0.0 {
                        tx += 1.0;
                    } else if sy == 0.0 {
                        ty += 1.0;
                    } else if sx == sy {
                        c += 1.0;
                    } else {
                        d += 1.0;
                    }
                }
            }
            let den = ((c + d + tx) * (c + d + ty)).sqrt();
            match kendall_tau_b(&x, &y) {
                Ok(t) => close(t, (c - d) / den, 1e-12),
                Err(_) => assert_eq!(den, 0.0),
            }
        }
    }

    #[test]
    fn bootstrap_is_seeded_and_covers_the_estimate() {
        let units = krippendorff_2011();
        let b = Bootstrap { resamples: 200, seed: 42, level: 0.9 };
        let stat = |idx: &[usize]| {
            let sample: Vec<Vec<f64>> = idx.iter().map(|&i| units[i].clone()).collect();
            krippendorff_alpha(&sample, Level::Interval).map(|a| a.alpha)
        };
        let one = b.interval(units.len(), stat).unwrap();
        let two = b.interval(units.len(), stat).unwrap();
        assert_eq!(one, two);
        close(one.estimate, 0.849, 0.0005);
        assert!(one.low <= one.estimate && one.estimate <= one.high, "{one:?}");
        let other = Bootstrap { seed: 43, ..b }.interval(units.len(), stat).unwrap();
        assert_ne!(one.low, other.low);
        let bad = Bootstrap { resamples: 5, ..b }.interval(3, stat).unwrap_err();
        assert_eq!(bad.to_string(), "bootstrap: resamples must be at least 10, got 5");
    }

    #[test]
    fn paired_mean_difference_has_the_right_sign() {
        let a: Vec<f64> = (0..40).map(|i| (i % 5) as f64).collect();
        let b: Vec<f64> = a.iter().map(|v| v + 1.0 + if (*v as i32) % 2 == 0 { 0.5 } else { 0.0 }).collect();
        let ci = Bootstrap { resamples: 500, seed: 1, level: 0.95 }.mean_difference(&a, &b).unwrap();
        assert!(ci.low > 1.0 && ci.high < 1.5, "{ci:?}");
    }

    #[test]
    fn quantiles_interpolate() {
        let s = [1., 2., 3., 4.];
        close(quantile_sorted(&s, 0.0), 1.0, 0.0);
        close(quantile_sorted(&s, 0.5), 2.5, 1e-12);
        close(quantile_sorted(&s, 1.0), 4.0, 0.0);
    }
}
