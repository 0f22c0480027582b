//! OpenAI-compatible `POST /v1/chat/completions` and `GET /v1/models`, so
//! existing clients (the official `openai` package, LangChain, …) can use
//! brandvoice unchanged.
//!
//! Like TGI's `ChatRequest::try_into_generate`, a chat request is converted
//! into the same [`DraftRequest`] the native route takes and runs through the
//! same validation, queue and pipeline — there is no second code path. The
//! `model` names the brand and channel (`brandvoice/tunely/twitter`,
//! optionally `/angry` for the mood); the last user message is the
//! customer's message and earlier user/assistant turns become the history
//! (system messages are ignored: the brand's guide is the system prompt).
//! brandvoice's own inputs (`facts`, `intent`, `language`, `customer`) may be
//! sent as extra body fields (`extra_body` in the Python client), and the
//! full checked response is echoed under `brandvoice`.
//!
//! Streaming sends the role first, then the checked drafts as content chunks
//! once the pipeline has linted and repaired them — never raw tokens that a
//! repair might later change — then `data: [DONE]`.

use super::error::{AppError, ErrorBody};
use super::routes::wait_for_draft;
use super::worker::WorkerEvent;
use super::{ApiJson, AppState};
use crate::draft::{self, Customer, DraftRequest, DraftResponse, Turn};
use crate::style::lint::Fact;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The model name prefix.
pub const MODEL_PREFIX: &str = "brandvoice/";

/// OpenAI fields that would change the answer's meaning and that we do not support.
const UNSUPPORTED: [&str; 6] = ["tools", "tool_choice", "functions", "function_call", "response_format", "logit_bias"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// system, developer, user or assistant.
    pub role: String,
    /// A string, or an array of `{"type": "text", "text": …}` parts.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub content: Value,
}

/// OpenAI's chat completion request (the fields brandvoice uses), plus brandvoice's own.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    /// `brandvoice/<brand>/<channel>` or `brandvoice/<brand>/<channel>/<mood>` (see `GET /v1/models`).
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Wins over `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Alternatives (choices), 1..=8.
    #[serde(default)]
    pub n: Option<usize>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// `{"include_usage": true}` adds a usage chunk before `[DONE]`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub stream_options: Option<Value>,
    /// brandvoice: facts and links the reply may (or must) use.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub facts: Vec<Fact>,
    /// brandvoice: the intent, which picks the approved fallback.
    #[serde(default)]
    pub intent: Option<String>,
    /// brandvoice: reply language (ISO 639-1); the customer's when absent.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub customer: Option<Customer>,
    /// Other OpenAI fields (top_p, user, stop, …) are accepted and ignored.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub other: BTreeMap<String, Value>,
}

/// The brand, channel and optional mood a model name stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRef {
    pub brand: String,
    pub channel: String,
    pub mood: Option<String>,
}

/// `brandvoice/<brand>/<channel>[/<mood>]`.
pub fn parse_model(model: &str) -> Result<ModelRef, AppError> {
    let bad = || AppError::invalid("model", format!("expected `brandvoice/<brand>/<channel>` or `brandvoice/<brand>/<channel>/<mood>` (see GET /v1/models), got `{model}`"));
    let rest = model.strip_prefix(MODEL_PREFIX).ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    match parts.as_slice() {
        [b, c] => Ok(ModelRef { brand: b.to_string(), channel: c.to_string(), mood: None }),
        [b, c, m] => Ok(ModelRef { brand: b.to_string(), channel: c.to_string(), mood: Some(m.to_string()) }),
        _ => Err(bad()),
    }
}

fn content_text(i: usize, c: &Value) -> Result<String, AppError> {
    match c {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push(t.to_string()),
                    _ => return Err(AppError::invalid(format!("messages[{i}].content[{j}]"), format!("only text parts are supported, got {}", short(p)))),
                }
            }
            Ok(out.join("\n"))
        }
        other => Err(AppError::invalid(format!("messages[{i}].content"), format!("expected a string or an array of text parts, got {}", short(other)))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

impl ChatCompletionRequest {
    /// The one conversion into the native request.
    pub fn into_draft_request(self) -> Result<(DraftRequest, bool, bool), AppError> {
        for key in UNSUPPORTED {
            if self.other.get(key).is_some_and(|v| !v.is_null()) {
                return Err(AppError::invalid(key, "is not supported by brandvoice (drafts are plain text)"));
            }
        }
        if !self.other.is_empty() {
            tracing::debug!(fields = ?self.other.keys().collect::<Vec<_>>(), "ignoring OpenAI fields");
        }
        let m = parse_model(&self.model)?;
        let last_user = self.messages.iter().rposition(|m| m.role == "user").ok_or_else(|| AppError::invalid("messages", format!("needs at least one message with role `user` (the customer's message), got {} messages and none from the user", self.messages.len())))?;
        let mut history = Vec::new();
        for (i, msg) in self.messages.iter().enumerate().take(last_user) {
            let role = match msg.role.as_str() {
                "user" => "customer",
                "assistant" => "agent",
                "system" | "developer" => continue,
                other => return Err(AppError::invalid(format!("messages[{i}].role"), format!("expected system, developer, user or assistant, got `{other}`"))),
            };
            history.push(Turn { role: role.into(), text: content_text(i, &msg.content)?, channel: None });
        }
        let message = content_text(last_user, &self.messages[last_user].content)?;
        let include_usage = self.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
        let stream = self.stream.unwrap_or(false);
        let req = DraftRequest {
            brand: m.brand,
            channel: m.channel,
            message,
            mood: m.mood,
            language: self.language,
            history,
            customer: self.customer,
            facts: self.facts,
            intent: self.intent,
            n: self.n,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            temperature: self.temperature,
            seed: self.seed,
            stream,
        };
        Ok((req, stream, include_usage))
    }
}

/// Brand, channel and mood errors are about the `model` name here.
fn model_field(e: AppError) -> AppError {
    match e {
        AppError::Validation { field, message } if matches!(field.as_str(), "brand" | "channel" | "mood") => AppError::Validation { field: "model".into(), message: format!("{field} {message}") },
        AppError::Validation { field, message } if field.starts_with("history[") => AppError::Validation { field: field.replacen("history", "messages(history)", 1), message },
        AppError::Validation { field, message } if field == "message" => AppError::Validation { field: "messages".into(), message: format!("last user message: {message}") },
        other => other,
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<Value>,
    #[schema(value_type = Object)]
    pub usage: Value,
    pub system_fingerprint: String,
    /// The full checked brandvoice response (scores, violations, mood, timings).
    pub brandvoice: DraftResponse,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn usage(r: &DraftResponse) -> Value {
    let p = r.timings.prompt_tokens;
    let c = r.timings.generated_tokens;
    json!({ "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c, "prompt_tokens_details": { "cached_tokens": r.timings.cached_tokens } })
}

fn fingerprint(r: &DraftResponse) -> String {
    format!("brandvoice-{}", r.model)
}

/// Drafts in the brand's voice through OpenAI's chat completions API.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "`chat.completion` (or `chat.completion.chunk` SSE with `stream`)", body = ChatCompletion),
        (status = 422, description = "Bad model name, no user message, field out of range", body = ErrorBody),
        (status = 503, description = "Queue full or model not loaded", body = ErrorBody),
    ))]
pub async fn chat_completions(State(s): State<Arc<AppState>>, ApiJson(req): ApiJson<ChatCompletionRequest>) -> Result<Response, AppError> {
    let model = req.model.clone();
    let (draft_req, stream, include_usage) = req.into_draft_request()?;
    let valid = draft::validate(&s.book(), &s.limits, draft_req).map_err(|e| model_field(e.into()))?;
    let worker = s.worker.as_ref().ok_or(AppError::NotReady)?;
    // Only the checked drafts are sent, so the worker need not stream tokens.
    let rx = worker.submit(valid, false, "/v1/chat/completions")?;
    let id = format!("chatcmpl-{:016x}", rand::random::<u64>());
    if !stream {
        let r = wait_for_draft(rx, s.request_timeout).await?;
        let choices = r.drafts.iter().enumerate().map(|(i, d)| json!({ "index": i, "message": { "role": "assistant", "content": d.text }, "finish_reason": "stop", "logprobs": null })).collect();
        return Ok(Json(ChatCompletion { id, object: "chat.completion", created: now_secs(), model, choices, usage: usage(&r), system_fingerprint: fingerprint(&r), brandvoice: r }).into_response());
    }
    Ok(sse_chunks(rx, s.request_timeout, id, model, include_usage).into_response())
}

fn chunk(id: &str, created: u64, model: &str, choices: Vec<Value>) -> Value {
    json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices })
}

fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// Splits text into word-sized pieces (whitespace kept), the way tokens arrive.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        if ch.is_whitespace() && !cur.trim().is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn sse_chunks(rx: tokio::sync::mpsc::UnboundedReceiver<WorkerEvent>, timeout: Duration, id: String, model: String, include_usage: bool) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let created = now_secs();
    let first = data(&chunk(&id, created, &model, vec![json!({ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null })]));
    let rest = futures_util::stream::once(async move {
        let mut events = Vec::new();
        match wait_for_draft(rx, timeout).await {
            Ok(r) => {
                for (i, d) in r.drafts.iter().enumerate() {
                    if i > 0 {
                        events.push(data(&chunk(&id, created, &model, vec![json!({ "index": i, "delta": { "role": "assistant", "content": "" }, "finish_reason": null })])));
                    }
                    for p in pieces(&d.text) {
                        events.push(data(&chunk(&id, created, &model, vec![json!({ "index": i, "delta": { "content": p }, "finish_reason": null })])));
                    }
                    events.push(data(&chunk(&id, created, &model, vec![json!({ "index": i, "delta": {}, "finish_reason": "stop" })])));
                }
                if include_usage {
                    let mut u = chunk(&id, created, &model, Vec::new());
                    u["usage"] = usage(&r);
                    events.push(data(&u));
                }
            }
            Err(e) => events.push(Event::default().data(serde_json::to_string(&e.body()).unwrap_or_default())),
        }
        events.push(Event::default().data("[DONE]"));
        futures_util::stream::iter(events)
    })
    .flatten();
    let all = futures_util::stream::once(async move { first }).chain(rest).map(Ok);
    Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

/// Every brand × channel combination as an OpenAI model id.
#[utoipa::path(get, path = "/v1/models", tag = "openai", responses((status = 200, description = "`{\"object\": \"list\", \"data\": [{\"id\": \"brandvoice/tunely/twitter\", …}]}`", body = Object)))]
pub async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    let mut data = Vec::new();
    let book = s.book();
    for id in book.brands.keys() {
        for ch in book.channels.channels.keys() {
            data.push(json!({ "id": format!("{MODEL_PREFIX}{id}/{ch}"), "object": "model", "created": 0, "owned_by": id }));
        }
    }
    Json(json!({ "object": "list", "data": data }))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{app, json, send};
    use super::*;
    use axum::http::{Method, StatusCode};

    #[test]
    fn model_names() {
        assert_eq!(parse_model("brandvoice/tunely/twitter").unwrap(), ModelRef { brand: "tunely".into(), channel: "twitter".into(), mood: None });
        assert_eq!(parse_model("brandvoice/tunely/twitter/angry").unwrap().mood.as_deref(), Some("angry"));
        for bad in ["gpt-4o", "brandvoice/tunely", "brandvoice/tunely//angry", "brandvoice/a/b/c/d"] {
            let e = parse_model(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.starts_with("model:"), "{e}");
        }
    }

    #[test]
    fn conversion_takes_last_user_message_and_history() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "brandvoice/wayfind/email/anxious",
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "My flight got cancelled"},
                {"role": "assistant", "content": "Sorry! Which booking?"},
                {"role": "user", "content": [{"type": "text", "text": "Booking WF-1234"}]}
            ],
            "max_tokens": 40, "max_completion_tokens": 30, "n": 2, "seed": 5, "top_p": 0.9,
            "facts": [{"text": "refund approved"}]
        }))
        .unwrap();
        let (d, stream, usage) = req.into_draft_request().unwrap();
        assert!(!stream && !usage);
        assert_eq!((d.brand.as_str(), d.channel.as_str(), d.mood.as_deref()), ("wayfind", "email", Some("anxious")));
        assert_eq!(d.message, "Booking WF-1234");
        assert_eq!(d.history, vec![
            Turn { role: "customer".into(), text: "My flight got cancelled".into(), channel: None },
            Turn { role: "agent".into(), text: "Sorry! Which booking?".into(), channel: None },
        ]);
        assert_eq!((d.max_tokens, d.n, d.seed), (Some(30), Some(2), Some(5)));
        assert_eq!(d.facts.len(), 1);
    }

    #[test]
    fn pieces_keep_the_text() {
        let t = "Hi there,  we are on it!\nSee you.";
        assert_eq!(pieces(t).concat(), t);
        assert!(pieces(t).len() >= 6);
    }

    #[tokio::test]
    async fn errors_name_openai_fields() {
        let cases = [
            (json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}), "model"),
            (json!({"model": "brandvoice/acme/twitter", "messages": [{"role": "user", "content": "hi"}]}), "model"),
            (json!({"model": "brandvoice/tunely/twitter", "messages": [{"role": "system", "content": "hi"}]}), "messages"),
            (json!({"model": "brandvoice/tunely/twitter", "messages": [{"role": "user", "content": "hi"}], "n": 20}), "n"),
            (json!({"model": "brandvoice/tunely/twitter", "messages": [{"role": "user", "content": "hi"}], "tools": []}), "tools"),
            (json!({"model": "brandvoice/tunely/twitter", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}), "messages[0].content[0]"),
        ];
        for (body, field) in cases {
            let (st, _, out) = send(app(), Method::POST, "/v1/chat/completions", Some(&body.to_string())).await;
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {out}");
            assert_eq!(json(&out)["error"]["field"], field, "{body} → {out}");
        }
    }

    #[tokio::test]
    async fn models_list_brand_channel_combos() {
        let (st, _, out) = send(app(), Method::GET, "/v1/models", None).await;
        assert_eq!(st, StatusCode::OK);
        let v = json(&out);
        let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"brandvoice/tunely/twitter") && ids.contains(&"brandvoice/northgate/email"), "{ids:?}");
        assert_eq!(ids.len(), 3 * 9);
    }
}
