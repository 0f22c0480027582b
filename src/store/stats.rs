//! The agreement statistics over the reviews store, in one place so that
//! `brandvoice reviews stats --format json` and `GET /v1/reviews/stats` give
//! the same JSON for the same store: one [`agreement::report`] per goal that
//! has ratings, plus the blind A/B preference counts.

use serde::Serialize;

use super::{PairwiseSummary, ReviewStore, StoreError, GOALS};
use crate::eval::agreement::{self, AgreementOptions, AgreementReport};

/// The statistics of one run (or the whole store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewStats {
    pub run: Option<String>,
    /// Goals with at least one rating, in [`GOALS`] order.
    pub goals: Vec<GoalStats>,
    pub pairwise: Vec<PairwiseSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoalStats {
    pub goal: String,
    #[serde(flatten)]
    pub report: AgreementReport,
}

/// The options the store's statistics use unless told otherwise: the 1–5
/// review scale for kappa weights.
pub fn default_options() -> AgreementOptions {
    AgreementOptions { scale: Some((1..=5).map(f64::from).collect()), ..Default::default() }
}

/// Agreement reports for `goals` (all seven when empty) over `run`'s reviews
/// (all runs with `None`). A goal nobody scored is left out.
pub fn review_stats(store: &ReviewStore, run: Option<&str>, goals: &[String], opts: &AgreementOptions) -> Result<ReviewStats, StoreError> {
    let goals: Vec<String> = if goals.is_empty() { GOALS.iter().map(|g| g.to_string()).collect() } else { goals.to_vec() };
    let mut out = ReviewStats { run: run.map(str::to_string), goals: Vec::new(), pairwise: store.pairwise_summary(run)? };
    for goal in goals {
        let (ratings, auto) = store.goal_ratings(run, &goal)?;
        if ratings.rating_count() == 0 {
            continue;
        }
        let auto = auto.iter().any(Option::is_some).then_some(auto);
        let report = agreement::report(&ratings, auto.as_deref(), opts);
        out.goals.push(GoalStats { goal, report });
    }
    Ok(out)
}
