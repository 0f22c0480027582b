//! The reviewer-scoring routes: `POST /v1/reviews`, `GET /v1/reviews` (JSON,
//! CSV or JSONL) and `GET /v1/reviews/stats`.
//!
//! Thin over `crate::store`: the body is the same JSON as a line of
//! `brandvoice reviews import` (a review, or with `"kind": "pairwise"` a
//! blind A/B judgement), the exports are the store's own `export_csv` /
//! `export_jsonl`, and the statistics are `store::review_stats`, the function
//! `brandvoice reviews stats --format json` prints — so the API and the CLI
//! cannot disagree. `ReviewStore` is `Send` but not `Sync`: it sits in a
//! `Mutex` and every call runs on `spawn_blocking` (SQLite with
//! `synchronous=FULL` waits on fsync), which is plenty for human-paced
//! review traffic. The body is parsed in two steps: `kind` is taken out of
//! the JSON object, then the rest goes through axum's own JSON extractor for
//! the chosen type, so serde's error keeps its path (`scores.tone`) and the
//! 422 names the field. Validation (ranges, lengths, times) is the store's
//! own, one rule set for the API and the CLI import.

use super::error::{AppError, ErrorBody};
use super::{ApiJson, AppState};
use crate::eval::stats::Bootstrap;
use crate::store::{self, NewPairwise, NewReview, Pairwise, Review, ReviewStore};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest `run` query value (the store's id limit).
pub const MAX_RUN_CHARS: usize = 200;

/// Most bootstrap resamples one stats request may ask for (CPU time).
pub const MAX_BOOTSTRAP: usize = 10_000;

/// What `POST /v1/reviews` accepts: a `reviews import` JSONL line without `id`.
#[allow(dead_code)] // documents the body; parsing goes through `kind` by hand (see the module header)
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ReviewSubmission {
    /// 1–5 scores per goal for one draft (the default when `kind` is absent).
    Review(NewReview),
    /// A blind A/B preference between two runs' drafts for one case
    /// (inferred when `kind` is absent and `preferred` is present).
    Pairwise(NewPairwise),
}

/// A stored row, as `POST` returns it and `GET` lists it (the same objects as
/// the JSONL export's lines).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoredReview {
    Review(Review),
    Pairwise(Pairwise),
}

fn store_of(s: &AppState) -> Result<Arc<std::sync::Mutex<ReviewStore>>, AppError> {
    s.reviews.clone().ok_or(AppError::StoreUnavailable)
}

/// Runs `f` with the store on the blocking pool.
async fn with_store<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&mut ReviewStore) -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let store = store_of(s)?;
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().map_err(|_| AppError::Internal("the reviews store lock is poisoned".into()))?;
        f(&mut guard)
    })
    .await
    .map_err(|e| AppError::Internal(format!("reviews store task failed: {e}")))?
}

fn query_error(r: QueryRejection) -> AppError {
    let text = r.body_text().replace("Failed to deserialize query string: ", "");
    match super::error::serde_field(&text) {
        Some((field, message)) => AppError::Validation { field, message },
        None => AppError::invalid("query", text),
    }
}

fn required_run(run: Option<String>) -> Result<String, AppError> {
    match run {
        Some(r) if r.chars().count() > MAX_RUN_CHARS => Err(AppError::invalid("run", format!("at most {MAX_RUN_CHARS} characters, got {}", r.chars().count()))),
        Some(r) if !r.trim().is_empty() => Ok(r),
        Some(r) => Err(AppError::invalid("run", format!("must be a non-empty run id, got {r:?}"))),
        None => Err(AppError::invalid("run", "must be given (`?run=RUN_ID`), got nothing")),
    }
}

/// Stores one review, or (with `"kind": "pairwise"`) one blind A/B judgement.
///
/// The body is a line of `brandvoice reviews import` JSONL without `id`:
/// `{"kind": "review", run_id, case_id, draft_id, draft_text?, reviewer_id,
/// created_at?, scores: {voice?, mood_fit?, channel_fit?, rules?, readability?,
/// politeness?, overall?}, auto_scores?, comment?}` or `{"kind": "pairwise",
/// run_a, run_b, case_id, preferred: "a"|"b"|"tie", reviewer_id, created_at?,
/// comment?}`. Without `kind`, a body with `preferred` is a pairwise judgement,
/// any other a review. Unknown fields are rejected.
#[utoipa::path(post, path = "/v1/reviews", tag = "reviews", request_body = ReviewSubmission,
    responses(
        (status = 201, description = "The stored row, with its `id` and `created_at`", body = StoredReview),
        (status = 409, description = "This reviewer already reviewed this draft (or judged this A/B pair)", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or out of range; `error.field` names it", body = ErrorBody),
        (status = 503, description = "No reviews store is open", body = ErrorBody),
    ))]
pub async fn create(State(s): State<Arc<AppState>>, ApiJson(body): ApiJson<serde_json::Value>) -> Result<Response, AppError> {
    let serde_json::Value::Object(mut obj) = body else {
        return Err(AppError::invalid("body", format!("must be a JSON object, got {}", json_type(&body))));
    };
    let kind = match obj.remove("kind") {
        None if obj.contains_key("preferred") => "pairwise".to_string(),
        None => "review".to_string(),
        Some(serde_json::Value::String(k)) if k == "review" || k == "pairwise" => k,
        Some(other) => return Err(AppError::invalid("kind", format!("must be one of review, pairwise, got {other}"))),
    };
    let rest = serde_json::to_vec(&obj).map_err(|e| AppError::Internal(format!("re-encoding the body: {e}")))?;
    let parse_err = |r| AppError::from_json_rejection(r, s.body_limit);
    let stored = if kind == "review" {
        let Json(review) = Json::<NewReview>::from_bytes(&rest).map_err(parse_err)?;
        with_store(&s, move |st| Ok(StoredReview::Review(st.add_review(&review)?))).await?
    } else {
        let Json(pair) = Json::<NewPairwise>::from_bytes(&rest).map_err(parse_err)?;
        with_store(&s, move |st| Ok(StoredReview::Pairwise(st.add_pairwise(&pair)?))).await?
    };
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub run: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListFormat {
    Json,
    Csv,
    Jsonl,
    PairwiseCsv,
}

impl ListFormat {
    fn parse(s: Option<&str>) -> Result<Self, AppError> {
        match s.unwrap_or("json") {
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "jsonl" | "ndjson" => Ok(Self::Jsonl),
            "pairwise-csv" => Ok(Self::PairwiseCsv),
            other => Err(AppError::invalid("format", format!("must be one of json, csv, jsonl, pairwise-csv, got {other:?}"))),
        }
    }
}

/// A file name for `Content-Disposition`: the run id with anything but
/// letters, digits, `.`, `_` and `-` replaced.
fn file_name(run: &str, ext: &str) -> String {
    let safe: String = run.chars().take(100).map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    format!("attachment; filename=\"reviews-{safe}.{ext}\"")
}

/// A run's reviews: a JSON array (default), or a CSV / JSONL export.
///
/// `format=json` (default): reviews, then the pairwise judgements with the run
/// on either side, each `{"kind": "review"|"pairwise", …}` as `POST` returns
/// them. `format=jsonl`: the same objects one a line (`brandvoice reviews
/// export --format jsonl`, importable with `reviews import`). `format=csv`:
/// one row per review, one column per goal and per automatic score.
/// `format=pairwise-csv`: the A/B judgements as CSV.
#[utoipa::path(get, path = "/v1/reviews", tag = "reviews",
    params(
        ("run" = String, Query, description = "The run id (required)"),
        ("format" = Option<String>, Query, description = "json (default), csv, jsonl or pairwise-csv"),
    ),
    responses(
        (status = 200, description = "The run's reviews", content(
            (Vec<StoredReview> = "application/json"),
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        )),
        (status = 422, description = "`run` missing, unknown `format` or query parameter", body = ErrorBody),
        (status = 503, description = "No reviews store is open", body = ErrorBody),
    ))]
pub async fn list(State(s): State<Arc<AppState>>, q: Result<Query<ListQuery>, QueryRejection>) -> Result<Response, AppError> {
    let Query(q) = q.map_err(query_error)?;
    let format = ListFormat::parse(q.format.as_deref())?;
    let run = required_run(q.run)?;
    let r = run.clone();
    let body: Vec<u8> = with_store(&s, move |st| {
        let mut out = Vec::new();
        match format {
            ListFormat::Json => {
                let mut rows: Vec<StoredReview> = st.list(Some(&r))?.into_iter().map(StoredReview::Review).collect();
                rows.extend(st.list_pairwise(Some(&r))?.into_iter().map(StoredReview::Pairwise));
                out = serde_json::to_vec(&rows).map_err(|e| AppError::Internal(format!("encoding reviews: {e}")))?;
            }
            ListFormat::Jsonl => {
                st.export_jsonl(Some(&r), &mut out)?;
            }
            ListFormat::Csv => {
                st.export_csv(Some(&r), &mut out)?;
            }
            ListFormat::PairwiseCsv => {
                st.export_pairwise_csv(Some(&r), &mut out)?;
            }
        }
        Ok(out)
    })
    .await?;
    let (ctype, disposition) = match format {
        ListFormat::Json => ("application/json", None),
        ListFormat::Jsonl => ("application/x-ndjson", Some(file_name(&run, "jsonl"))),
        ListFormat::Csv => ("text/csv; charset=utf-8", Some(file_name(&run, "csv"))),
        ListFormat::PairwiseCsv => ("text/csv; charset=utf-8", Some(file_name(&run, "pairwise.csv"))),
    };
    let mut resp = ([(header::CONTENT_TYPE, ctype)], body).into_response();
    if let Some(d) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, d);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub run: Option<String>,
    pub min_shared: Option<usize>,
    pub bootstrap: Option<usize>,
    pub seed: Option<u64>,
}

/// Agreement statistics of a run's reviews: per goal, Krippendorff's alpha
/// (nominal, ordinal, interval), weighted Cohen's kappa per reviewer pair,
/// ICC, and the automatic score against the reviewers' mean (Spearman,
/// Kendall) beside the human ceiling; plus the blind A/B counts. The same
/// JSON as `brandvoice reviews stats --run RUN --format json`.
#[utoipa::path(get, path = "/v1/reviews/stats", tag = "reviews",
    params(
        ("run" = String, Query, description = "The run id (required)"),
        ("min_shared" = Option<usize>, Query, description = "Kappa only for reviewer pairs sharing at least this many drafts (default 5)"),
        ("bootstrap" = Option<usize>, Query, description = "Bootstrap resamples for confidence intervals (default 0 = none, at most 10000)"),
        ("seed" = Option<u64>, Query, description = "Bootstrap seed (default 0)"),
    ),
    responses(
        (status = 200, description = "`{run, goals: [{goal, units, raters, ratings, alpha_nominal, alpha_ordinal, alpha_interval, kappa, icc, automatic?}], pairwise: [{run_x, run_y, x_wins, y_wins, ties, x_win_rate}]}`", body = Object),
        (status = 422, description = "`run` missing, bootstrap too large, unknown query parameter", body = ErrorBody),
        (status = 503, description = "No reviews store is open", body = ErrorBody),
    ))]
pub async fn stats(State(s): State<Arc<AppState>>, q: Result<Query<StatsQuery>, QueryRejection>) -> Result<Response, AppError> {
    let Query(q) = q.map_err(query_error)?;
    let run = required_run(q.run)?;
    let mut opts = store::stats::default_options();
    if let Some(m) = q.min_shared {
        opts.min_shared = m;
    }
    match q.bootstrap.unwrap_or(0) {
        0 => {}
        n if n > MAX_BOOTSTRAP => return Err(AppError::invalid("bootstrap", format!("must be at most {MAX_BOOTSTRAP}, got {n}"))),
        n => opts.bootstrap = Some(Bootstrap { resamples: n, seed: q.seed.unwrap_or(0), level: 0.95 }),
    }
    let report = with_store(&s, move |st| Ok(store::review_stats(st, Some(&run), &[], &opts)?)).await?;
    Ok(Json(report).into_response())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{book, json, send};
    use super::super::{router, AppState, ServeConfig};
    use crate::store::{ImportFormat, ImportOptions, ReviewStore};
    use axum::http::{Method, StatusCode};
    use axum::Router;
    use serde_json::json;
    use std::sync::Arc;

    /// A router with a real SQLite store in a temp dir (no models).
    fn app_with_store() -> (tempfile::TempDir, std::path::PathBuf, Router) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = ServeConfig::default();
        let path = dir.path().join("db/reviews.sqlite");
        cfg.store.path = Some(path.clone());
        let store = super::super::open_store(&cfg).expect("open the store");
        let app = router(Arc::new(AppState::without_models(book(), &cfg).with_reviews(store)));
        (dir, path, app)
    }

    fn review(case: &str, reviewer: &str, overall: u8, voice: u8, auto: f64) -> serde_json::Value {
        json!({
            "kind": "review", "run_id": "run-1", "case_id": case, "draft_id": "d0",
            "draft_text": "Sorry about that, \"fixed\" now,\nthanks!", "reviewer_id": reviewer,
            "scores": { "overall": overall, "voice": voice }, "auto_scores": { "overall": auto },
            "comment": "ok, fine"
        })
    }

    async fn post(app: &Router, body: &serde_json::Value) -> (StatusCode, serde_json::Value) {
        let (st, _, out) = send(app.clone(), Method::POST, "/v1/reviews", Some(&body.to_string())).await;
        (st, json(&out))
    }

    #[tokio::test]
    async fn add_list_and_export() {
        let (_d, path, app) = app_with_store();
        let (st, v) = post(&app, &review("c1", "ann", 4, 5, 80.0)).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!((v["kind"].as_str(), v["run_id"].as_str(), v["scores"]["overall"].as_u64()), (Some("review"), Some("run-1"), Some(4)));
        assert!(v["id"].as_i64().unwrap() >= 1 && v["created_at"].as_str().unwrap().ends_with('Z'), "{v}");
        // without `kind`: a review
        let mut b = review("c1", "bob", 3, 4, 80.0);
        b.as_object_mut().unwrap().remove("kind");
        let (st, v) = post(&app, &b).await;
        assert_eq!((st, v["kind"].as_str()), (StatusCode::CREATED, Some("review")), "{v}");
        // a pairwise judgement, `kind` inferred from `preferred`
        let p = json!({ "run_a": "run-1", "run_b": "run-0", "case_id": "c1", "preferred": "a", "reviewer_id": "ann", "comment": "A is warmer" });
        let (st, v) = post(&app, &p).await;
        assert_eq!((st, v["kind"].as_str(), v["preferred"].as_str()), (StatusCode::CREATED, Some("pairwise"), Some("a")), "{v}");
        // another run's review is not listed
        let mut other = review("c9", "ann", 2, 2, 10.0);
        other["run_id"] = json!("run-2");
        assert_eq!(post(&app, &other).await.0, StatusCode::CREATED);

        let (st, h, out) = send(app.clone(), Method::GET, "/v1/reviews?run=run-1", None).await;
        assert_eq!(st, StatusCode::OK, "{out}");
        assert!(h["content-type"].to_str().unwrap().starts_with("application/json"));
        let rows = json(&out);
        let kinds: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["review", "review", "pairwise"], "{out}");
        assert_eq!(rows[1]["reviewer_id"], "bob");
        assert_eq!(rows[0]["draft_text"], "Sorry about that, \"fixed\" now,\nthanks!");

        let (st, h, csv_text) = send(app.clone(), Method::GET, "/v1/reviews?run=run-1&format=csv", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(h["content-type"], "text/csv; charset=utf-8");
        assert_eq!(h["content-disposition"], "attachment; filename=\"reviews-run-1.csv\"");
        let table = crate::eval::csv::Table::parse(&csv_text).expect("CSV parses");
        assert_eq!(table.rows.len(), 2, "{csv_text}");
        let (c_rev, c_text) = (table.column("reviewer_id").unwrap(), table.column("draft_text").unwrap());
        assert_eq!((table.rows[0].fields[c_rev].as_str(), table.rows[0].fields[c_text].as_str()), ("ann", "Sorry about that, \"fixed\" now,\nthanks!"));

        let (st, h, jsonl) = send(app.clone(), Method::GET, "/v1/reviews?run=run-1&format=jsonl", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(h["content-type"], "application/x-ndjson");
        assert_eq!(jsonl.lines().count(), 3, "{jsonl}");
        // each JSONL line is the JSON array's element, and the export imports into a fresh store
        let lines: Vec<serde_json::Value> = jsonl.lines().map(json).collect();
        assert_eq!(serde_json::Value::Array(lines), rows);
        let dir = tempfile::tempdir().unwrap();
        let mut fresh = ReviewStore::open(dir.path().join("copy.sqlite")).unwrap();
        let sum = fresh.import("api.jsonl", &jsonl, ImportFormat::Jsonl, ImportOptions::default()).unwrap();
        assert_eq!((sum.reviews, sum.pairwise), (2, 1));
        let (_, _, pcsv) = send(app.clone(), Method::GET, "/v1/reviews?run=run-1&format=pairwise-csv", None).await;
        assert_eq!(pcsv.lines().count(), 2, "{pcsv}");

        // an unknown run: an empty list, not an error
        let (st, _, out) = send(app.clone(), Method::GET, "/v1/reviews?run=nope", None).await;
        assert_eq!((st, out.as_str()), (StatusCode::OK, "[]"));
        // and the rows are in the SQLite file
        let direct = ReviewStore::open(&path).unwrap();
        assert_eq!(direct.list(Some("run-1")).unwrap().len(), 2);

        // the routes are counted in /metrics like the others
        let (_, _, m) = send(app.clone(), Method::GET, "/metrics", None).await;
        assert!(m.contains("brandvoice_http_requests_total{route=\"/v1/reviews\",status=\"201\"} 4"), "{m}");
        assert!(m.contains("brandvoice_http_requests_total{route=\"/v1/reviews\",status=\"200\"} 5"), "{m}");
    }

    #[tokio::test]
    async fn invalid_reviews_are_422_naming_field_limit_and_value() {
        let (_d, path, app) = app_with_store();
        let cases: Vec<(serde_json::Value, &str, &str)> = vec![
            (review("c1", "ann", 6, 4, 50.0), "scores.overall", "scores.overall: must be an integer from 1 to 5, got 6"),
            (review("c1", "ann", 4, 0, 50.0), "scores.voice", "scores.voice: must be an integer from 1 to 5, got 0"),
            (review("c1", "ann", 4, 4, 100.5), "auto_scores.overall", "auto_scores.overall: must be a number from 0 to 100, got 100.5"),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b["run_id"] = json!(""); b }, "run_id", "run_id: must be a non-empty id, got \"\""),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b["comment"] = json!("x".repeat(5001)); b }, "comment", "comment: must be at most 5000 characters, got 5001 characters"),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b["created_at"] = json!("tuesday"); b }, "created_at", "created_at: must be an RFC 3339 time"),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b["colour"] = json!("red"); b }, "colour", "unknown field `colour`"),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b["scores"]["tone"] = json!(3); b }, "scores.tone", "unknown field `tone`"),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b["id"] = json!(7); b }, "id", "unknown field `id`"),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b.as_object_mut().unwrap().remove("reviewer_id"); b }, "reviewer_id", "missing field `reviewer_id`"),
            ({ let mut b = review("c1", "ann", 4, 4, 50.0); b["kind"] = json!("rating"); b }, "kind", "kind: must be one of review, pairwise, got \"rating\""),
            (json!({ "kind": "pairwise", "run_a": "r", "run_b": "r", "case_id": "c", "preferred": "a", "reviewer_id": "ann" }), "run_b", "run_b: must be a different run from run_a, got \"r\""),
            (json!({ "kind": "pairwise", "run_a": "r", "run_b": "s", "case_id": "c", "preferred": "left", "reviewer_id": "ann" }), "preferred", "unknown variant `left`"),
            (json!([1, 2]), "body", "body: must be a JSON object, got an array"),
        ];
        for (body, field, message) in cases {
            let (st, v) = post(&app, &body).await;
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {v}");
            assert_eq!(v["error"]["type"], "validation_error", "{v}");
            assert_eq!(v["error"]["field"], field, "{v}");
            assert!(v["error"]["message"].as_str().unwrap().contains(message), "{message:?} not in {v}");
        }
        // nothing was stored
        assert!(ReviewStore::open(&path).unwrap().list(None).unwrap().is_empty());

        for (uri, field, message) in [
            ("/v1/reviews", "run", "run: must be given"),
            ("/v1/reviews?run=", "run", "run: must be a non-empty run id"),
            ("/v1/reviews?run=r&format=xml", "format", "format: must be one of json, csv, jsonl, pairwise-csv, got \"xml\""),
            ("/v1/reviews?run=r&page=2", "page", "unknown field `page`"),
            ("/v1/reviews/stats", "run", "run: must be given"),
            ("/v1/reviews/stats?run=r&bootstrap=20000", "bootstrap", "bootstrap: must be at most 10000, got 20000"),
            ("/v1/reviews/stats?run=r&min_shared=few", "min_shared", "invalid digit"),
        ] {
            let (st, _, out) = send(app.clone(), Method::GET, uri, None).await;
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {out}");
            let v = json(&out);
            assert_eq!(v["error"]["field"], field, "{uri}: {v}");
            assert!(v["error"]["message"].as_str().unwrap().contains(message), "{uri}: {message:?} not in {v}");
        }
    }

    #[tokio::test]
    async fn a_second_review_by_the_same_reviewer_is_409() {
        let (_d, path, app) = app_with_store();
        assert_eq!(post(&app, &review("c1", "ann", 4, 4, 50.0)).await.0, StatusCode::CREATED);
        let (st, v) = post(&app, &review("c1", "ann", 2, 2, 50.0)).await;
        assert_eq!(st, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["type"], "conflict");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("a review already exists") && m.contains("reviewer \"ann\""), "{m}");
        let p = json!({ "kind": "pairwise", "run_a": "r1", "run_b": "r2", "case_id": "c", "preferred": "tie", "reviewer_id": "ann" });
        assert_eq!(post(&app, &p).await.0, StatusCode::CREATED);
        assert_eq!(post(&app, &p).await.0, StatusCode::CONFLICT);
        // the first review stands
        let stored = ReviewStore::open(&path).unwrap().list(Some("run-1")).unwrap();
        assert_eq!((stored.len(), stored[0].scores.overall), (1, Some(4)));
    }

    #[tokio::test]
    async fn stats_match_the_cli_report() {
        let (_d, path, app) = app_with_store();
        // Two reviewers who agree exactly on six drafts: alpha is 1 at every level,
        // and an automatic score that ranks the drafts the same way has Spearman 1.
        let overall = [1, 2, 3, 4, 5, 3];
        for (i, o) in overall.iter().enumerate() {
            for reviewer in ["ann", "bob"] {
                let (st, v) = post(&app, &review(&format!("c{i}"), reviewer, *o, 3, *o as f64 * 20.0 - 10.0)).await;
                assert_eq!(st, StatusCode::CREATED, "{v}");
            }
        }
        let p = json!({ "kind": "pairwise", "run_a": "run-1", "run_b": "run-0", "case_id": "c1", "preferred": "b", "reviewer_id": "ann" });
        assert_eq!(post(&app, &p).await.0, StatusCode::CREATED);

        let (st, _, out) = send(app.clone(), Method::GET, "/v1/reviews/stats?run=run-1", None).await;
        assert_eq!(st, StatusCode::OK, "{out}");
        let v = json(&out);
        assert_eq!(v["run"], "run-1");
        let goals: Vec<&str> = v["goals"].as_array().unwrap().iter().map(|g| g["goal"].as_str().unwrap()).collect();
        assert_eq!(goals, ["voice", "overall"]);
        let o = &v["goals"][1];
        assert_eq!((o["units"].as_u64(), o["raters"].as_u64(), o["ratings"].as_u64()), (Some(6), Some(2), Some(12)), "{o}");
        for level in ["alpha_nominal", "alpha_ordinal", "alpha_interval"] {
            assert!((o[level]["value"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{level}: {o}");
        }
        assert!((o["automatic"]["spearman"]["value"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{o}");
        // every voice score is 3: alpha is undefined, and the report says why
        assert!(v["goals"][0]["alpha_interval"]["value"].is_null() && v["goals"][0]["alpha_interval"]["undefined"].is_string(), "{}", v["goals"][0]);
        assert_eq!((v["pairwise"][0]["run_x"].as_str(), v["pairwise"][0]["x_wins"].as_u64()), (Some("run-0"), Some(1)));

        // byte for byte the library function `brandvoice reviews stats --format json` prints
        let store = ReviewStore::open(&path).unwrap();
        let expected = crate::store::review_stats(&store, Some("run-1"), &[], &crate::store::stats::default_options()).unwrap();
        assert_eq!(v, serde_json::to_value(&expected).unwrap());

        // with a bootstrap, intervals appear and are reproducible with the seed
        let uri = "/v1/reviews/stats?run=run-1&bootstrap=200&seed=3&min_shared=2";
        let (st, _, a) = send(app.clone(), Method::GET, uri, None).await;
        assert_eq!(st, StatusCode::OK, "{a}");
        let (_, _, b) = send(app.clone(), Method::GET, uri, None).await;
        assert_eq!(a, b);
        let a = json(&a);
        assert!(a["goals"][1]["automatic"]["spearman"]["ci"].is_object(), "{}", a["goals"][1]);
        assert_eq!(a["goals"][1]["kappa"]["pairs"], 1, "{}", a["goals"][1]["kappa"]);
    }

    #[tokio::test]
    async fn without_a_store_the_routes_answer_503() {
        let app = super::super::test_support::app();
        let (st, _, out) = send(app.clone(), Method::GET, "/v1/reviews?run=r", None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{out}");
        assert_eq!(json(&out)["error"]["type"], "store_unavailable");
        let (st, _, _) = send(app, Method::POST, "/v1/reviews", Some(&review("c", "a", 3, 3, 1.0).to_string())).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_bad_store_path_is_a_clear_startup_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let mut cfg = ServeConfig::default();
        cfg.store.path = Some(file.join("reviews.sqlite"));
        let e = super::super::open_store(&cfg).err().expect("a file cannot be a directory").to_string();
        assert!(e.starts_with("store.path: cannot open the store ") && e.contains("not-a-dir/reviews.sqlite"), "{e}");
        // a file that is not SQLite
        std::fs::write(&file, "this is not a database\n".repeat(300)).unwrap();
        cfg.store.path = Some(file.clone());
        let e = super::super::open_store(&cfg).err().expect("not a database").to_string();
        assert!(e.starts_with("store.path: ") && e.contains("not a database"), "{e}");
    }
}
