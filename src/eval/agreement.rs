//! One agreement report over a table of ratings, shared by `brandvoice
//! reviews stats` (over the reviews store) and `reviews stats --from-csv`
//! (over any long-format CSV), so both print the same numbers.
//!
//! A report answers two questions. How far do reviewers agree with each
//! other? Krippendorff's alpha at three levels (it allows missing ratings, so
//! it is the headline), Cohen's kappa for every pair of reviewers that shares
//! enough units, and the ICCs the design allows (two-way when every reviewer
//! rated every unit, one-way otherwise). How far does the automatic score
//! agree with them? Spearman and Kendall between the automatic score and the
//! reviewers' mean, shown beside the human ceiling: the same correlations
//! between one held-out reviewer and the mean of the others. Coefficients that
//! the data cannot define are reported as `undefined` with the reason rather
//! than dropped, so a reader sees why a number is missing.

use serde::Serialize;

use super::stats::{
    cohen_kappa, icc, icc_oneway, kendall_tau_b, krippendorff_alpha, spearman, Bootstrap, Icc, IccOneWay, Interval,
    KappaWeights, Level, Ratings, StatsError,
};

/// A coefficient, its bootstrap interval when asked for, or why it is undefined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undefined: Option<String>,
}

impl Estimate {
    fn from(r: Result<f64, StatsError>) -> Self {
        match r {
            Ok(v) => Self { value: Some(v), ci: None, undefined: None },
            Err(e) => Self { value: None, ci: None, undefined: Some(e.to_string()) },
        }
    }
    fn with_ci(mut self, ci: Option<Result<Interval, StatsError>>) -> Self {
        if self.value.is_some() {
            self.ci = ci.and_then(|c| c.ok());
        }
        self
    }
}

/// What the report computes and how.
#[derive(Debug, Clone)]
pub struct AgreementOptions {
    /// The ordered rating scale (e.g. 1..=5); kappa weights follow its positions.
    /// `None` takes the values that occur.
    pub scale: Option<Vec<f64>>,
    /// Pairs of raters sharing fewer units than this get no kappa.
    pub min_shared: usize,
    /// Pairs listed one by one up to this many (the summary covers all).
    pub max_pairs_listed: usize,
    /// Bootstrap intervals over units for alpha and the correlations.
    pub bootstrap: Option<Bootstrap>,
}

impl Default for AgreementOptions {
    fn default() -> Self {
        Self { scale: None, min_shared: 5, max_pairs_listed: 50, bootstrap: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairKappa {
    pub rater_a: String,
    pub rater_b: String,
    pub shared_units: usize,
    pub linear: Estimate,
    pub quadratic: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KappaSummary {
    /// Pairs with at least `min_shared` shared units.
    pub pairs: usize,
    pub min_shared: usize,
    /// Mean over those pairs, weighted by shared units.
    pub mean_linear: Option<f64>,
    pub mean_quadratic: Option<f64>,
    /// The pairs one by one, when there are no more than the listing limit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listed: Vec<PairKappa>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IccReport {
    /// Two-way ICCs over the units every rater rated, when there are two or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub two_way: Option<Icc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub two_way_undefined: Option<String>,
    /// One-way ICCs (each unit its own raters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_way: Option<IccOneWay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_way_undefined: Option<String>,
}

/// Agreement of the automatic score with the reviewers, and the human ceiling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoAgreement {
    /// Units with both an automatic score and at least one rating.
    pub units: usize,
    pub spearman: Estimate,
    pub kendall: Estimate,
    /// One held-out reviewer against the mean of the others, over every
    /// rating of a unit with two or more ratings.
    pub human_ceiling_spearman: Estimate,
    pub human_ceiling_kendall: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgreementReport {
    pub units: usize,
    pub raters: usize,
    pub ratings: usize,
    /// Units with two or more ratings (the ones alpha can use).
    pub pairable_units: usize,
    pub alpha_nominal: Estimate,
    pub alpha_ordinal: Estimate,
    pub alpha_interval: Estimate,
    pub kappa: KappaSummary,
    pub icc: IccReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic: Option<AutoAgreement>,
}

/// Computes the report. `auto` holds the automatic score per unit, in the
/// order of `ratings.unit_ids()` (None where a unit has none).
pub fn report(ratings: &Ratings, auto: Option<&[Option<f64>]>, opts: &AgreementOptions) -> AgreementReport {
    let units = ratings.unit_values();
    let alpha = |level: Level| {
        let est = Estimate::from(krippendorff_alpha(&units, level).map(|a| a.alpha));
        est.with_ci(opts.bootstrap.map(|b| {
            b.interval(units.len(), |idx| krippendorff_alpha(&ratings.resample(idx), level).map(|a| a.alpha))
        }))
    };
    let alpha_nominal = alpha(Level::Nominal);
    let alpha_ordinal = alpha(Level::Ordinal);
    let alpha_interval = alpha(Level::Interval);

    let pairs = ratings.rater_pairs(opts.min_shared);
    let mut listed = Vec::new();
    let (mut wl, mut wq, mut sl, mut sq) = (0.0, 0.0, 0.0, 0.0);
    for p in &pairs {
        let scale = opts.scale.as_deref();
        let linear = Estimate::from(cohen_kappa(&p.a, &p.b, KappaWeights::Linear, scale));
        let quadratic = Estimate::from(cohen_kappa(&p.a, &p.b, KappaWeights::Quadratic, scale));
        let w = p.a.len() as f64;
        if let Some(v) = linear.value {
            sl += w * v;
            wl += w;
        }
        if let Some(v) = quadratic.value {
            sq += w * v;
            wq += w;
        }
        if pairs.len() <= opts.max_pairs_listed {
            listed.push(PairKappa { rater_a: p.rater_a.clone(), rater_b: p.rater_b.clone(), shared_units: p.a.len(), linear, quadratic });
        }
    }
    let kappa = KappaSummary {
        pairs: pairs.len(),
        min_shared: opts.min_shared,
        mean_linear: (wl > 0.0).then(|| sl / wl),
        mean_quadratic: (wq > 0.0).then(|| sq / wq),
        listed,
    };

    let rows = ratings.complete_rows();
    let (two_way, two_way_undefined) = if ratings.rater_count() < 2 {
        (None, Some("fewer than two raters".to_string()))
    } else {
        match icc(&rows) {
            Ok(i) => (Some(i), None),
            Err(StatsError::TooFew { got, .. }) => (
                None,
                Some(format!("needs two or more units rated by all {} raters, found {got}", ratings.rater_count())),
            ),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let (one_way, one_way_undefined) = match icc_oneway(&units) {
        Ok(i) => (Some(i), None),
        Err(e) => (None, Some(e.to_string())),
    };

    let automatic = auto.map(|auto| automatic(ratings, &units, auto, opts.bootstrap));

    AgreementReport {
        units: ratings.unit_count(),
        raters: ratings.rater_count(),
        ratings: ratings.rating_count(),
        pairable_units: units.iter().filter(|u| u.len() >= 2).count(),
        alpha_nominal,
        alpha_ordinal,
        alpha_interval,
        kappa,
        icc: IccReport { two_way, two_way_undefined, one_way, one_way_undefined },
        automatic,
    }
}

fn automatic(ratings: &Ratings, units: &[Vec<f64>], auto: &[Option<f64>], boot: Option<Bootstrap>) -> AutoAgreement {
    let means = ratings.unit_means();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (a, m) in auto.iter().zip(&means) {
        if let (Some(a), Some(m)) = (a, m) {
            xs.push(*a);
            ys.push(*m);
        }
    }
    let corr = |f: fn(&[f64], &[f64]) -> Result<f64, StatsError>, x: &[f64], y: &[f64]| {
        Estimate::from(f(x, y)).with_ci(boot.map(|b| {
            b.interval(x.len(), |idx| {
                let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
                let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
                f(&xs, &ys)
            })
        }))
    };
    // Human ceiling: each rating against the mean of the unit's other ratings.
    let (mut hx, mut hy) = (Vec::new(), Vec::new());
    for u in units.iter().filter(|u| u.len() >= 2) {
        let sum: f64 = u.iter().sum();
        for &v in u {
            hx.push(v);
            hy.push((sum - v) / (u.len() as f64 - 1.0));
        }
    }
    AutoAgreement {
        units: xs.len(),
        spearman: corr(spearman, &xs, &ys),
        kendall: corr(kendall_tau_b, &xs, &ys),
        human_ceiling_spearman: corr(spearman, &hx, &hy),
        human_ceiling_kendall: corr(kendall_tau_b, &hx, &hy),
    }
}

fn fmt_est(e: &Estimate) -> String {
    match (e.value, &e.ci, &e.undefined) {
        (Some(v), Some(ci), _) => format!("{v:.3} [{:.3}, {:.3}]", ci.low, ci.high),
        (Some(v), None, _) => format!("{v:.3}"),
        (None, _, Some(why)) => format!("undefined ({why})"),
        (None, _, None) => "undefined".into(),
    }
}

impl AgreementReport {
    /// A plain-text rendering for the terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "units {} (pairable {}), raters {}, ratings {}\n",
            self.units, self.pairable_units, self.raters, self.ratings
        );
        s += &format!("Krippendorff's alpha  nominal  {}\n", fmt_est(&self.alpha_nominal));
        s += &format!("                      ordinal  {}\n", fmt_est(&self.alpha_ordinal));
        s += &format!("                      interval {}\n", fmt_est(&self.alpha_interval));
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        s += &format!(
            "Cohen's kappa (pairs sharing >= {} units: {})  linear {}  quadratic {} (mean weighted by shared units)\n",
            self.kappa.min_shared,
            self.kappa.pairs,
            opt(self.kappa.mean_linear),
            opt(self.kappa.mean_quadratic)
        );
        for p in &self.kappa.listed {
            s += &format!(
                "  {} x {} ({} units): linear {}  quadratic {}\n",
                p.rater_a,
                p.rater_b,
                p.shared_units,
                fmt_est(&p.linear),
                fmt_est(&p.quadratic)
            );
        }
        match (&self.icc.two_way, &self.icc.two_way_undefined) {
            (Some(i), _) => {
                s += &format!(
                    "ICC two-way ({} units x {} raters)  ICC(2,1) {:.3}  ICC(2,k) {:.3}  ICC(3,1) {:.3}  ICC(3,k) {:.3}\n",
                    i.units, i.raters, i.icc2_1, i.icc2_k, i.icc3_1, i.icc3_k
                )
            }
            (None, Some(why)) => s += &format!("ICC two-way  undefined ({why})\n"),
            _ => {}
        }
        match (&self.icc.one_way, &self.icc.one_way_undefined) {
            (Some(i), _) => {
                s += &format!("ICC one-way ({} units, k = {:.2})  ICC(1,1) {:.3}  ICC(1,k) {:.3}\n", i.units, i.k, i.icc1_1, i.icc1_k)
            }
            (None, Some(why)) => s += &format!("ICC one-way  undefined ({why})\n"),
            _ => {}
        }
        if let Some(a) = &self.automatic {
            s += &format!(
                "automatic score vs reviewers' mean ({} units)  Spearman {}  Kendall {}\n",
                a.units,
                fmt_est(&a.spearman),
                fmt_est(&a.kendall)
            );
            s += &format!(
                "human ceiling (one reviewer vs the others' mean)  Spearman {}  Kendall {}\n",
                fmt_est(&a.human_ceiling_spearman),
                fmt_est(&a.human_ceiling_kendall)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossed_design_gets_two_way_icc_and_listed_kappas() {
        // Shrout & Fleiss (1979) as long-form ratings.
        let data = [[9., 2., 5., 8.], [6., 1., 3., 2.], [8., 4., 6., 8.], [7., 1., 2., 6.], [10., 5., 6., 9.], [6., 2., 4., 7.]];
        let mut r = Ratings::new();
        for (u, row) in data.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                r.add(&format!("t{u}"), &format!("judge{j}"), *v).unwrap();
            }
        }
        let auto: Vec<Option<f64>> = data.iter().map(|row| Some(row.iter().sum::<f64>())).collect();
        let rep = report(&r, Some(&auto), &AgreementOptions { min_shared: 2, ..Default::default() });
        let two = rep.icc.two_way.unwrap();
        assert!((two.icc2_1 - 0.29).abs() < 0.005 && (two.icc2_k - 0.62).abs() < 0.005, "{two:?}");
        assert_eq!(rep.kappa.pairs, 6);
        assert_eq!(rep.kappa.listed.len(), 6);
        // The automatic score is the reviewers' sum, so it ranks units exactly as their mean.
        let a = rep.automatic.unwrap();
        assert_eq!(a.spearman.value, Some(1.0));
        assert!(a.human_ceiling_spearman.value.unwrap() < 1.0);
        let text = report(&r, None, &AgreementOptions::default()).to_text();
        assert!(text.contains("ICC(2,1) 0.290"), "{text}");
        assert!(text.contains("pairs sharing >= 5 units: 6"), "{text}");
    }

    #[test]
    fn undefined_coefficients_say_why() {
        let mut r = Ratings::new();
        r.add("u1", "a", 3.).unwrap();
        r.add("u1", "b", 3.).unwrap();
        r.add("u2", "a", 3.).unwrap();
        let rep = report(&r, None, &AgreementOptions::default());
        assert!(rep.alpha_interval.value.is_none());
        assert!(rep.alpha_interval.undefined.as_deref().unwrap().contains("every pairable value is the same"));
        assert!(rep.icc.two_way_undefined.as_deref().unwrap().contains("found 1"), "{:?}", rep.icc);
        let json = serde_json::to_value(&rep).unwrap();
        assert!(json["alpha_interval"]["value"].is_null());
    }

    #[test]
    fn politeness_report_with_bootstrap() {
        let r = crate::eval::stats::tests::politeness_ratings();
        let opts = AgreementOptions { bootstrap: Some(Bootstrap { resamples: 50, seed: 3, level: 0.95 }), ..Default::default() };
        let rep = report(&r, None, &opts);
        let interval = rep.alpha_interval.value.unwrap();
        assert!((interval - 0.424).abs() < 0.0005);
        let ci = rep.alpha_interval.ci.unwrap();
        assert!(ci.low < interval && interval < ci.high && ci.high - ci.low < 0.05, "{ci:?}");
        assert!(rep.icc.two_way.is_none() && rep.icc.one_way.is_some());
        assert!(rep.kappa.listed.is_empty() && rep.kappa.pairs > 50);
    }
}
