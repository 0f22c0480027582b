//! The eval runs the reviewer console scores: `GET /v1/runs`,
//! `GET /v1/runs/{id}` and `GET /v1/runs/{id}/report`.
//!
//! A run is a directory that `brandvoice eval run` wrote under the runs
//! folder (`[eval] runs_dir`, `BRANDVOICE_RUNS_DIR`, default `eval/runs`):
//! `summary.json`, `results.jsonl`, `report.html`. The server only reads
//! them, so the files stay the one source of truth and the console needs no
//! import step. The run id comes from the URL and becomes a path, so it is
//! parsed into a [`ValidRunId`] first (letters, digits, `-`, `_`, `.`; no
//! leading dot), which makes `..` and `/` impossible rather than filtered. A
//! bad line in `results.jsonl` does not hide the run: it is reported in
//! `problems` beside the lines that parse. `report.html` is served under a
//! sandboxing CSP, because it quotes model output.

use super::error::AppError;
use super::AppState;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Longest run id accepted.
pub const MAX_RUN_ID_CHARS: usize = 128;

/// A run id that is safe to join onto the runs folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRunId(String);

impl ValidRunId {
    pub fn parse(id: &str) -> Result<Self, AppError> {
        let bad = |why: &str| AppError::BadRequest { field: "run_id".into(), message: format!("{why}, got {:?}", id.chars().take(MAX_RUN_ID_CHARS + 8).collect::<String>()) };
        if id.is_empty() || id.chars().count() > MAX_RUN_ID_CHARS {
            return Err(bad(&format!("must be 1 to {MAX_RUN_ID_CHARS} characters")));
        }
        if id.starts_with('.') {
            return Err(bad("must not start with `.`"));
        }
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(bad("may hold only letters, digits, `-`, `_` and `.`"));
        }
        Ok(ValidRunId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("no run `{0}` in the runs folder")]
    NotFound(String),
    #[error("run `{0}` has no report.html")]
    NoReport(String),
    #[error("reading {path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
}

impl From<RunsError> for AppError {
    fn from(e: RunsError) -> Self {
        match e {
            RunsError::NotFound(_) | RunsError::NoReport(_) => AppError::NotFound(e.to_string()),
            RunsError::Io { .. } => AppError::Internal(e.to_string()),
        }
    }
}

/// One run in the list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunEntry {
    pub run_id: String,
    /// `summary.json` as written (`null` while a run is still writing or when it does not parse).
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    pub has_report: bool,
    /// Why `summary` is null, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunList {
    /// Newest first (run ids start with their start time).
    pub runs: Vec<RunEntry>,
}

/// One run: its summary and every result line.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub run_id: String,
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    /// `results.jsonl`, one object per case × repeat, in file order.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<serde_json::Value>,
    /// Lines of `results.jsonl` that did not parse (`line N: why`).
    pub problems: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunsError + '_ {
    move |source| RunsError::Io { path: path.display().to_string(), source }
}

fn read_summary(dir: &Path) -> (serde_json::Value, Option<String>) {
    let path = dir.join("summary.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(v) => (v, None),
            Err(e) => (serde_json::Value::Null, Some(format!("summary.json does not parse: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (serde_json::Value::Null, Some("no summary.json yet".into())),
        Err(e) => (serde_json::Value::Null, Some(format!("summary.json: {e}"))),
    }
}

/// The runs in `dir`: subdirectories with a valid id that hold a
/// `summary.json` or a `results.jsonl`. A missing folder is an empty list.
pub fn list_runs(dir: &Path) -> Result<Vec<RunEntry>, RunsError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut runs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io(dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let path = entry.path();
        if ValidRunId::parse(&name).is_err() || !path.is_dir() {
            continue;
        }
        if !path.join("summary.json").is_file() && !path.join("results.jsonl").is_file() {
            continue;
        }
        let (summary, problem) = read_summary(&path);
        runs.push(RunEntry { run_id: name, summary, has_report: path.join("report.html").is_file(), problem });
    }
    runs.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    Ok(runs)
}

fn run_path(dir: &Path, id: &ValidRunId) -> Result<PathBuf, RunsError> {
    let path = dir.join(id.as_str());
    if path.is_dir() {
        Ok(path)
    } else {
        Err(RunsError::NotFound(id.as_str().to_string()))
    }
}

/// A run's summary and results.
pub fn read_run(dir: &Path, id: &ValidRunId) -> Result<RunDetail, RunsError> {
    let path = run_path(dir, id)?;
    let (summary, problem) = read_summary(&path);
    let mut problems: Vec<String> = problem.into_iter().collect();
    let results_path = path.join("results.jsonl");
    let text = match std::fs::read_to_string(&results_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push("no results.jsonl".into());
            String::new()
        }
        Err(e) => return Err(io(&results_path)(e)),
    };
    let mut results = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => results.push(v),
            Ok(_) => problems.push(format!("results.jsonl line {}: not a JSON object", i + 1)),
            Err(e) => problems.push(format!("results.jsonl line {}: {e}", i + 1)),
        }
    }
    Ok(RunDetail { run_id: id.as_str().to_string(), summary, results, problems })
}

/// A run's `report.html`.
pub fn read_report(dir: &Path, id: &ValidRunId) -> Result<String, RunsError> {
    let path = run_path(dir, id)?.join("report.html");
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RunsError::NoReport(id.as_str().to_string())),
        Err(e) => Err(io(&path)(e)),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, RunsError> + Send + 'static) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| AppError::Internal(format!("runs task failed: {e}")))?.map_err(AppError::from)
}

/// The eval runs in the runs folder, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "reviews", responses((status = 200, description = "`{runs: [{run_id, summary, has_report, problem?}]}`", body = RunList)))]
pub async fn list(State(s): State<Arc<AppState>>) -> Result<Json<RunList>, AppError> {
    let dir = s.runs_dir.clone();
    Ok(Json(RunList { runs: blocking(move || list_runs(&dir)).await? }))
}

/// One eval run: `summary.json` and every line of `results.jsonl`.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "reviews",
    params(("id" = String, Path, description = "Run id, e.g. 20260101-120000-core")),
    responses(
        (status = 200, description = "Summary, results and lines that did not parse", body = RunDetail),
        (status = 400, description = "The run id is malformed (`error.field` is `run_id`)", body = super::error::ErrorBody),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
    ))]
pub async fn get(State(s): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Json<RunDetail>, AppError> {
    let id = ValidRunId::parse(&id)?;
    let dir = s.runs_dir.clone();
    Ok(Json(blocking(move || read_run(&dir, &id)).await?))
}

/// A run's HTML report (sandboxed: no scripts reach the console's origin).
#[utoipa::path(get, path = "/v1/runs/{id}/report", tag = "reviews",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "report.html", content_type = "text/html"),
        (status = 400, description = "The run id is malformed", body = super::error::ErrorBody),
        (status = 404, description = "No such run or no report", body = super::error::ErrorBody),
    ))]
pub async fn report(State(s): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Response, AppError> {
    let id = ValidRunId::parse(&id)?;
    let dir = s.runs_dir.clone();
    let html = blocking(move || read_report(&dir, &id)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, "sandbox allow-scripts; default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{book, json, send};
    use super::super::{router, AppState, ServeConfig};
    use super::*;
    use axum::http::{Method, StatusCode};

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("20260101-120000-smoke");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("summary.json"), r#"{"run_id":"20260101-120000-smoke","cases":2,"pass_rate":0.5}"#).unwrap();
        std::fs::write(a.join("results.jsonl"), "{\"case_id\":\"c1\",\"draft\":\"Hi\"}\nnot json\n\n{\"case_id\":\"c2\",\"draft\":\"Yo\"}\n").unwrap();
        std::fs::write(a.join("report.html"), "<h1>report</h1>").unwrap();
        let b = dir.path().join("20260102-090000-core");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("results.jsonl"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("not-a-run")).unwrap();
        std::fs::create_dir_all(dir.path().join(".hidden")).unwrap();
        std::fs::write(dir.path().join(".hidden/summary.json"), "{}").unwrap();
        dir
    }

    fn app(dir: &Path) -> axum::Router {
        let mut cfg = ServeConfig::default();
        cfg.eval.runs_dir = Some(dir.to_path_buf());
        router(Arc::new(AppState::without_models(book(), &cfg)))
    }

    #[test]
    fn run_ids_are_plain_names() {
        for ok in ["20260101-120000-core", "a", "run_1.v2"] {
            assert!(ValidRunId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", "../etc", "a/b", ".hidden", "a\\b", "é", &"x".repeat(129)] {
            let e = ValidRunId::parse(bad).unwrap_err();
            assert!(matches!(&e, AppError::BadRequest { field, .. } if field == "run_id"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn list_get_and_report() {
        let dir = fixture();
        let (st, _, out) = send(app(dir.path()), Method::GET, "/v1/runs", None).await;
        assert_eq!(st, StatusCode::OK, "{out}");
        let v = json(&out);
        let ids: Vec<&str> = v["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["20260102-090000-core", "20260101-120000-smoke"]);
        assert_eq!(v["runs"][1]["summary"]["cases"], 2);
        assert_eq!(v["runs"][1]["has_report"], true);
        assert!(v["runs"][0]["summary"].is_null() && v["runs"][0]["problem"].as_str().unwrap().contains("summary.json"), "{out}");

        let (st, _, out) = send(app(dir.path()), Method::GET, "/v1/runs/20260101-120000-smoke", None).await;
        assert_eq!(st, StatusCode::OK, "{out}");
        let v = json(&out);
        assert_eq!(v["results"].as_array().unwrap().len(), 2);
        assert_eq!(v["results"][1]["case_id"], "c2");
        assert_eq!(v["problems"].as_array().unwrap().len(), 1);
        assert!(v["problems"][0].as_str().unwrap().starts_with("results.jsonl line 2"), "{out}");

        let (st, h, out) = send(app(dir.path()), Method::GET, "/v1/runs/20260101-120000-smoke/report", None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(h["content-security-policy"].to_str().unwrap().contains("sandbox"));
        assert_eq!(out, "<h1>report</h1>");
        let (st, _, out) = send(app(dir.path()), Method::GET, "/v1/runs/20260102-090000-core/report", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{out}");
    }

    #[tokio::test]
    async fn bad_and_unknown_ids() {
        let dir = fixture();
        for uri in ["/v1/runs/..%2F..%2Fetc", "/v1/runs/.hidden", "/v1/runs/%2E%2E/report", "/v1/runs/a%5Cb"] {
            let (st, _, out) = send(app(dir.path()), Method::GET, uri, None).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}: {out}");
            let v = json(&out);
            assert_eq!((v["error"]["type"].as_str(), v["error"]["field"].as_str()), (Some("bad_request"), Some("run_id")), "{out}");
        }
        let (st, _, out) = send(app(dir.path()), Method::GET, "/v1/runs/20990101-000000-none", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{out}");
        assert!(json(&out)["error"]["message"].as_str().unwrap().contains("20990101-000000-none"));
        // a missing runs folder is an empty list, not an error
        let (st, _, out) = send(app(&dir.path().join("nope")), Method::GET, "/v1/runs", None).await;
        assert_eq!((st, json(&out)["runs"].as_array().unwrap().len()), (StatusCode::OK, 0));
    }

    #[tokio::test]
    async fn openapi_documents_the_runs_routes() {
        let (_, _, out) = send(super::super::test_support::app(), Method::GET, "/openapi.json", None).await;
        let v = json(&out);
        for p in ["/v1/runs", "/v1/runs/{id}", "/v1/runs/{id}/report"] {
            assert!(v["paths"][p]["get"].is_object(), "{p} missing from the OpenAPI document");
        }
        assert!(v["components"]["schemas"]["RunDetail"].is_object());
        assert!(v["paths"]["/v1/runs/{id}"]["get"]["responses"]["400"].is_object());
    }
}
