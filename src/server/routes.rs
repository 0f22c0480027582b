//! The native routes: drafts (JSON or SSE), rewrite, triage, lint, brands,
//! channels, health, readiness and metrics.
//!
//! Each handler parses with [`ApiJson`], validates with the library's own
//! function, calls the library (the model through the worker's queue; the
//! mood detector on `spawn_blocking`, because embedding a batch is CPU work
//! that must not stall the async runtime) and returns JSON. The SSE stream of
//! `/v1/drafts` is the worker's event channel turned into `understood`,
//! `token`, `drafts`, `done` events; dropping it (a client that disconnects)
//! drops the channel, which cancels the generation.

use super::error::{AppError, ErrorBody};
use super::worker::WorkerEvent;
use super::{ApiJson, AppState};
use crate::draft::{self, DraftRequest, DraftResponse, RewriteRequest, ValidDraftRequest};
use crate::style::lint::Fact;
use crate::style::{AppliedFix, Level, LintRequest, RuleViolation};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Drafts replies to a customer's message in the brand's voice.
///
/// With `"stream": true` the answer is Server-Sent Events: `understood`
/// (mood, language, escalation), `token` (`{"candidate", "text"}`, raw
/// generated text as it comes, before checks), `drafts` (the final checked
/// response, the same JSON as without streaming), then `done`; an `error`
/// event replaces `drafts` if the pipeline fails.
#[utoipa::path(post, path = "/v1/drafts", tag = "drafting", request_body = DraftRequest,
    responses(
        (status = 200, description = "Checked drafts, best first (or an SSE stream when `stream` is true)", body = DraftResponse),
        (status = 422, description = "A field is out of range or unknown; `error.field` names it", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Queue full (`Retry-After` set) or model not loaded", body = ErrorBody),
        (status = 504, description = "The draft took longer than the request timeout", body = ErrorBody),
    ))]
pub async fn drafts(State(s): State<Arc<AppState>>, ApiJson(req): ApiJson<DraftRequest>) -> Result<Response, AppError> {
    let valid = draft::validate(&s.book(), &s.limits, req)?;
    run_draft(&s, valid, "/v1/drafts").await
}

/// Rewrites an agent's own draft into the brand's voice for the channel and mood, facts kept.
///
/// Same response (and the same SSE events with `"stream": true`) as `/v1/drafts`.
#[utoipa::path(post, path = "/v1/rewrite", tag = "drafting", request_body = RewriteRequest,
    responses(
        (status = 200, description = "Rewritten drafts, best first", body = DraftResponse),
        (status = 422, description = "A field is out of range or unknown", body = ErrorBody),
        (status = 503, description = "Queue full or model not loaded", body = ErrorBody),
    ))]
pub async fn rewrite(State(s): State<Arc<AppState>>, ApiJson(req): ApiJson<RewriteRequest>) -> Result<Response, AppError> {
    let valid = draft::validate_rewrite(&s.book(), &s.limits, req)?;
    run_draft(&s, valid, "/v1/rewrite").await
}

async fn run_draft(s: &AppState, valid: ValidDraftRequest, route: &'static str) -> Result<Response, AppError> {
    let worker = s.worker.as_ref().ok_or(AppError::NotReady)?;
    let stream = valid.stream;
    let rx = worker.submit(valid, stream, route)?;
    if stream {
        Ok(sse_drafts(rx, s.request_timeout).into_response())
    } else {
        Ok(Json(wait_for_draft(rx, s.request_timeout).await?).into_response())
    }
}

/// Waits for the worker's `Done`; dropping the receiver on timeout cancels the generation.
pub async fn wait_for_draft(mut rx: UnboundedReceiver<WorkerEvent>, timeout: Duration) -> Result<DraftResponse, AppError> {
    let done = async {
        while let Some(ev) = rx.recv().await {
            if let WorkerEvent::Done(r) = ev {
                return r;
            }
        }
        Err(AppError::Internal("the model worker dropped the request without an answer".into()))
    };
    tokio::time::timeout(timeout, done).await.map_err(|_| AppError::Timeout { secs: timeout.as_secs() })?
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default().event(name).json_data(data).unwrap_or_else(|e| Event::default().event("error").data(format!("{{\"error\":{{\"type\":\"internal_error\",\"message\":\"cannot encode event: {e}\"}}}}")))
}

/// The SSE answer of `/v1/drafts` and `/v1/rewrite`.
fn sse_drafts(rx: UnboundedReceiver<WorkerEvent>, timeout: Duration) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let events = futures_util::stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        let batch = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => vec![json_event("error", &AppError::Timeout { secs: timeout.as_secs() }.body())],
            Ok(None) => vec![json_event("error", &AppError::Internal("the model worker dropped the request".into()).body())],
            Ok(Some(WorkerEvent::Understood { mood, language, escalation })) => {
                let e = json_event("understood", &serde_json::json!({ "mood": mood, "language": language, "escalation": escalation }));
                return Some((vec![e], Some(rx)));
            }
            Ok(Some(WorkerEvent::Token { candidate, text })) => {
                return Some((vec![json_event("token", &serde_json::json!({ "candidate": candidate, "text": text }))], Some(rx)));
            }
            Ok(Some(WorkerEvent::Done(Ok(resp)))) => vec![json_event("drafts", &resp), Event::default().event("done").data("[DONE]")],
            Ok(Some(WorkerEvent::Done(Err(e)))) => vec![json_event("error", &e.body())],
        };
        Some((batch, None))
    })
    .flat_map(|batch| futures_util::stream::iter(batch.into_iter().map(Ok)));
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

/// A batch of messages to triage.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageRequest {
    /// 1 to `server.triage_batch` messages.
    pub messages: Vec<TriageMessage>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageMessage {
    /// The caller's id (a string or a number), echoed back.
    #[schema(value_type = Object)]
    pub id: serde_json::Value,
    pub text: String,
}

/// The triage of one message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriageResult {
    #[schema(value_type = Object)]
    pub id: serde_json::Value,
    /// One of angry, frustrated, anxious, confused, neutral, happy, grateful.
    pub mood: String,
    pub confidence: f32,
    /// negative, neutral or positive.
    pub polarity: String,
    /// ISO 639-1 code.
    pub language: String,
    /// Escalation flags raised (legal threat, safety, cancellation, …).
    pub escalation: Vec<String>,
    pub needs_reply: bool,
    /// urgent, high, normal or low.
    pub priority: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriageResponse {
    /// In request order.
    pub results: Vec<TriageResult>,
}

/// Mood, polarity, language, escalation and needs_reply for a batch of posts.
#[utoipa::path(post, path = "/v1/triage", tag = "analysis", request_body = TriageRequest,
    responses(
        (status = 200, description = "One result per message, in order", body = TriageResponse),
        (status = 422, description = "Empty or too large batch, bad id, empty or too long text", body = ErrorBody),
        (status = 503, description = "Mood detector not loaded", body = ErrorBody),
    ))]
pub async fn triage(State(s): State<Arc<AppState>>, ApiJson(req): ApiJson<TriageRequest>) -> Result<Json<TriageResponse>, AppError> {
    let n = req.messages.len();
    if n == 0 || n > s.triage_batch {
        return Err(AppError::invalid("messages", format!("must hold between 1 and {} messages, got {n}", s.triage_batch)));
    }
    let limit = s.limits.max_message_chars;
    for (i, m) in req.messages.iter().enumerate() {
        if !(m.id.is_string() || m.id.is_number()) {
            return Err(AppError::invalid(format!("messages[{i}].id"), format!("must be a string or a number, got {}", m.id)));
        }
        let chars = m.text.chars().count();
        if m.text.trim().is_empty() {
            return Err(AppError::invalid(format!("messages[{i}].text"), "must not be empty"));
        }
        if chars > limit {
            return Err(AppError::invalid(format!("messages[{i}].text"), format!("at most {limit} characters, got {chars}")));
        }
    }
    let mood = s.mood.clone().ok_or(AppError::NotReady)?;
    let texts: Vec<String> = req.messages.iter().map(|m| m.text.clone()).collect();
    let reports = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        mood.analyze_batch(&refs)
    })
    .await
    .map_err(|e| AppError::Internal(format!("triage task failed: {e}")))??;
    s.metrics.observe_triage(n);
    let results = req
        .messages
        .into_iter()
        .zip(reports)
        .map(|(m, r)| TriageResult {
            id: m.id,
            mood: r.mood,
            confidence: r.confidence,
            polarity: r.polarity,
            language: r.language.code,
            escalation: r.escalation.into_iter().map(|f| f.kind).collect(),
            needs_reply: r.needs_reply,
            priority: r.priority,
        })
        .collect();
    Ok(Json(TriageResponse { results }))
}

/// A reply to check against a brand's guide.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LintBody {
    pub brand: String,
    pub channel: String,
    /// Default neutral.
    #[serde(default)]
    pub mood: Option<String>,
    /// Detected from the text when absent.
    #[serde(default)]
    pub language: Option<String>,
    /// Facts and links the reply must carry.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub facts: Vec<Fact>,
    pub text: String,
    /// Also apply the mechanical fixes and return the fixed text.
    #[serde(default)]
    pub fix: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LintResponse {
    pub brand: String,
    pub channel: String,
    pub mood: String,
    pub language: String,
    /// Vale-style violations in text order (`check`, `level`, `message`, `span`, `fix`).
    #[schema(value_type = Vec<Object>)]
    pub violations: Vec<RuleViolation>,
    /// Error-level violations among them.
    pub errors: usize,
    /// With `"fix": true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<FixedText>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FixedText {
    pub text: String,
    #[schema(value_type = Vec<Object>)]
    pub applied: Vec<AppliedFix>,
    /// Violations left in the fixed text.
    #[schema(value_type = Vec<Object>)]
    pub remaining: Vec<RuleViolation>,
}

/// Lints a reply against a brand's guide, a channel and a mood (optionally fixing it).
#[utoipa::path(post, path = "/v1/lint", tag = "style", request_body = LintBody,
    responses(
        (status = 200, description = "Violations (and the fixed text when asked)", body = LintResponse),
        (status = 422, description = "Unknown brand, channel, mood or language; text too long", body = ErrorBody),
    ))]
pub async fn lint(State(s): State<Arc<AppState>>, ApiJson(b): ApiJson<LintBody>) -> Result<Json<LintResponse>, AppError> {
    let chars = b.text.chars().count();
    if chars > s.limits.max_message_chars {
        return Err(AppError::invalid("text", format!("at most {} characters, got {chars}", s.limits.max_message_chars)));
    }
    if b.facts.len() > s.limits.max_facts {
        return Err(AppError::invalid("facts", format!("at most {} facts, got {}", s.limits.max_facts, b.facts.len())));
    }
    let book = s.book();
    let req = book.validate(&LintRequest { brand: b.brand, channel: b.channel, mood: b.mood, language: b.language, facts: b.facts }, &b.text)?;
    let violations = book.lint(&req, &b.text);
    let fixed = b.fix.then(|| {
        let (text, applied) = book.fix(&req, &b.text);
        let remaining = book.lint(&req, &text);
        FixedText { text, applied, remaining }
    });
    let errors = violations.iter().filter(|v| v.level == Level::Error).count();
    Ok(Json(LintResponse { brand: req.brand.clone(), channel: req.channel.clone(), mood: req.mood.clone(), language: req.language.clone(), violations, errors, fixed }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrandSummary {
    pub id: String,
    pub name: String,
    pub voice: String,
    /// Languages served, the default first.
    pub languages: Vec<String>,
    /// Intents with an approved fallback reply.
    pub intents: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrandList {
    pub brands: Vec<BrandSummary>,
}

/// The brands this server has guides for.
#[utoipa::path(get, path = "/v1/brands", tag = "style", responses((status = 200, description = "Brand summaries", body = BrandList)))]
pub async fn brands(State(s): State<Arc<AppState>>) -> Json<BrandList> {
    let brands = s
        .book()
        .brands
        .iter()
        .map(|(id, b)| BrandSummary {
            id: id.clone(),
            name: b.guide.name.clone(),
            voice: b.guide.voice.clone(),
            languages: b.guide.languages.clone(),
            intents: b.guide.fallbacks.keys().cloned().collect(),
        })
        .collect();
    Json(BrandList { brands })
}

/// One brand's whole style guide, as loaded (`prompts/brands/<id>.yaml`).
#[utoipa::path(get, path = "/v1/brands/{id}", tag = "style",
    params(("id" = String, Path, description = "Brand id, e.g. tunely")),
    responses(
        (status = 200, description = "The guide (see prompts/brand.schema.json)", body = Object),
        (status = 404, description = "No such brand", body = ErrorBody),
    ))]
pub async fn brand(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, AppError> {
    let book = s.book();
    match book.brand(&id) {
        Some(b) => Ok(Json(&b.guide).into_response()),
        None => Err(AppError::NotFound(format!("no brand `{id}`; known brands: {}", book.brands.keys().cloned().collect::<Vec<_>>().join(", ")))),
    }
}

/// The channel profiles: public or private, length limit, formality, emoji, links, hashtags, PII.
#[utoipa::path(get, path = "/v1/channels", tag = "style", responses((status = 200, description = "`{\"channels\": [{\"id\", …profile}]}`", body = Object)))]
pub async fn channels(State(s): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, AppError> {
    let mut list = Vec::new();
    let book = s.book();
    for (id, p) in &book.channels.channels {
        let mut v = serde_json::to_value(p).map_err(|e| AppError::Internal(format!("encoding channel {id}: {e}")))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("id".into(), serde_json::Value::String(id.clone()));
        }
        list.push(v);
    }
    Ok(Json(serde_json::json!({ "channels": list })))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the model is loaded and its worker runs.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "`{\"status\": \"ready\", \"model\", \"queue_size\", \"warm\": {\"total\", \"done\", \"finished\"}}` (ready while the prefix-cache warm-up still runs)", body = Object),
        (status = 503, description = "Model not loaded", body = ErrorBody),
    ))]
pub async fn readyz(State(s): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, AppError> {
    match &s.worker {
        Some(w) if w.is_alive() && s.mood.is_some() => Ok(Json(serde_json::json!({ "status": "ready", "model": w.model_name(), "queue_size": w.capacity(), "warm": w.warm_progress().to_json() }))),
        _ => Err(AppError::NotReady),
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render()).into_response()
}

pub async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::NotFound(format!("no route {}; see /docs", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{app, json, send};
    use axum::http::{Method, StatusCode};

    #[tokio::test]
    async fn brands_and_channels() {
        let (st, _, body) = send(app(), Method::GET, "/v1/brands", None).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let v = json(&body);
        let ids: Vec<&str> = v["brands"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["northgate", "tunely", "wayfind"]);
        let (st, _, body) = send(app(), Method::GET, "/v1/brands/tunely", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(json(&body)["name"], "Tunely");
        let (st, _, body) = send(app(), Method::GET, "/v1/brands/nope", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let e = json(&body);
        assert_eq!(e["error"]["type"], "not_found");
        assert!(e["error"]["message"].as_str().unwrap().contains("tunely"), "{body}");
        let (st, _, body) = send(app(), Method::GET, "/v1/channels", None).await;
        assert_eq!(st, StatusCode::OK);
        let v = json(&body);
        let tw = v["channels"].as_array().unwrap().iter().find(|c| c["id"] == "twitter").expect("twitter").clone();
        assert_eq!(tw["public"], true);
        assert!(v["channels"].as_array().unwrap().len() >= 9);
    }

    #[tokio::test]
    async fn lint_and_fix() {
        let body = r#"{"brand":"tunely","channel":"twitter","mood":"angry","text":"Haha our valued customer!!","fix":true}"#;
        let (st, _, out) = send(app(), Method::POST, "/v1/lint", Some(body)).await;
        assert_eq!(st, StatusCode::OK, "{out}");
        let v = json(&out);
        assert!(!v["violations"].as_array().unwrap().is_empty(), "{out}");
        assert!(v["errors"].as_u64().unwrap() >= 1, "{out}");
        let fixed = v["fixed"]["text"].as_str().unwrap();
        assert_ne!(fixed, "Haha our valued customer!!");
        assert!(v["fixed"]["applied"].as_array().unwrap().len() >= 1, "{out}");
    }

    #[tokio::test]
    async fn lint_unknown_channel_names_field() {
        let body = r#"{"brand":"tunely","channel":"fax","text":"hi"}"#;
        let (st, _, out) = send(app(), Method::POST, "/v1/lint", Some(body)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
        let v = json(&out);
        assert_eq!(v["error"]["type"], "validation_error");
        assert_eq!(v["error"]["field"], "channel");
        assert!(v["error"]["message"].as_str().unwrap().contains("fax"), "{out}");
    }

    #[tokio::test]
    async fn draft_validation_names_field_limit_and_value() {
        let cases = [
            (r#"{"brand":"tunely","channel":"twitter","message":"hi","n":9}"#, "n", "9"),
            (r#"{"brand":"tunely","channel":"twitter","message":"hi","max_tokens":100000}"#, "max_tokens", "100000"),
            (r#"{"brand":"acme","channel":"twitter","message":"hi"}"#, "brand", "acme"),
            (r#"{"brand":"tunely","channel":"twitter","message":"  "}"#, "message", "empty"),
            (r#"{"brand":"tunely","channel":"twitter","message":"hi","facts":[{"text":"x","url":"ftp://a"}]}"#, "facts[0].url", "ftp://a"),
            (r#"{"brand":"tunely","channel":"twitter","message":"hi","colour":"red"}"#, "colour", "colour"),
            (r#"{"brand":"tunely","channel":"twitter"}"#, "message", "missing"),
            (r#"{"brand":"tunely","channel":"twitter","message":"hi","n":"two"}"#, "n", "two"),
        ];
        for (body, field, value) in cases {
            let (st, _, out) = send(app(), Method::POST, "/v1/drafts", Some(body)).await;
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {out}");
            let v = json(&out);
            assert_eq!(v["error"]["field"], field, "{body} → {out}");
            assert!(v["error"]["message"].as_str().unwrap().contains(value), "{body} → {out}");
        }
        // a valid request without a model: 503 not_ready, after validation
        let (st, h, out) = send(app(), Method::POST, "/v1/drafts", Some(r#"{"brand":"tunely","channel":"twitter","message":"hi"}"#)).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{out}");
        assert_eq!(json(&out)["error"]["type"], "not_ready");
        assert!(h.get("retry-after").is_some());
    }

    #[tokio::test]
    async fn bad_json_wrong_type_and_size() {
        let (st, _, out) = send(app(), Method::POST, "/v1/drafts", Some("{not json")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{out}");
        assert_eq!(json(&out)["error"]["type"], "invalid_json");
        let big = format!(r#"{{"brand":"tunely","channel":"twitter","message":"{}"}}"#, "a".repeat(300 * 1024));
        let (st, _, out) = send(app(), Method::POST, "/v1/drafts", Some(&big)).await;
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{out}");
        assert_eq!(json(&out)["error"]["type"], "payload_too_large");
        let (st, _, out) = send(app(), Method::GET, "/v2/nothing", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(json(&out)["error"]["type"], "not_found");
        let req = axum::http::Request::builder().method(Method::POST).uri("/v1/lint").body(axum::body::Body::from("{}")).unwrap();
        let resp = tower::ServiceExt::oneshot(app(), req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn triage_validation_without_model() {
        let (st, _, out) = send(app(), Method::POST, "/v1/triage", Some(r#"{"messages":[]}"#)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(&out)["error"]["field"], "messages");
        let (st, _, out) = send(app(), Method::POST, "/v1/triage", Some(r#"{"messages":[{"id":1,"text":"ok"},{"id":[1],"text":"x"}]}"#)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(&out)["error"]["field"], "messages[1].id");
        let (st, _, out) = send(app(), Method::POST, "/v1/triage", Some(r#"{"messages":[{"id":1,"text":" "}]}"#)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(&out)["error"]["field"], "messages[0].text");
    }

    #[tokio::test]
    async fn health_ready_metrics() {
        let a = app();
        let (st, _, _) = send(a.clone(), Method::GET, "/healthz", None).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _, out) = send(a.clone(), Method::GET, "/readyz", None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{out}");
        let (st, h, out) = send(a.clone(), Method::GET, "/metrics", None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(h["content-type"].to_str().unwrap().starts_with("text/plain"));
        assert!(out.contains("brandvoice_http_requests_total{route=\"/healthz\",status=\"200\"} 1"), "{out}");
        assert!(out.contains("brandvoice_http_requests_total{route=\"/readyz\",status=\"503\"} 1"), "{out}");
        assert!(out.contains("brandvoice_queue_depth 0"), "{out}");
        assert!(out.contains("brandvoice_model_ready 0"), "{out}");
    }
}
