//! The one error type of the HTTP layer and the one place it becomes a
//! response (axum's `examples/error-handling`, TGI's `ErrorResponse`).
//!
//! Every 4xx body is `{"error": {"type", "message", "field"?}}` with a stable
//! machine-readable `type`; the message names the field, the limit and the
//! value given (the drafting layer's validation already words it so). 5xx
//! bodies stay generic: the details go to the log with the request's route,
//! never to the client. A full queue is a 503 with `Retry-After`.

use crate::draft::DraftError;
use crate::mood::MoodError;
use crate::store::StoreError;
use crate::style::StyleError;
use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field is out of range, unknown or malformed (422).
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// The body is not the JSON we expect (wrong shape: 422, bad syntax: 400).
    #[error("{message}")]
    BadJson { status: StatusCode, message: String },
    /// A path or query parameter is malformed (400), e.g. a run id with `/` in it.
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    /// No API key, or one that matches no configured key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid key whose role may not use this route (403).
    #[error("{0}")]
    Forbidden(String),
    /// `POST /v1/admin/reload` found a problem; the last valid book stays (422).
    #[error("{message}")]
    Reload { file: Option<String>, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists (a reviewer's second review of a draft: 409).
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("expected `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The model's queue is full (503 + `Retry-After`).
    #[error("the server is busy: {queued} requests are waiting for the model (queue size {capacity}); retry after {retry_after_secs} s")]
    Overloaded { queued: usize, capacity: usize, retry_after_secs: u64 },
    /// No model is loaded (a server started for lint/triage only, or the worker stopped).
    #[error("the model is not loaded")]
    NotReady,
    /// This server has no reviews store open (a server built without one).
    #[error("the reviews store is not open on this server")]
    StoreUnavailable,
    #[error("the draft took longer than the request timeout of {secs} s")]
    Timeout { secs: u64 },
    /// Anything that is our fault; the text is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

/// The error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `validation_error`, `invalid_json`, `bad_request`, `not_found`,
    /// `conflict`, `payload_too_large`, `unsupported_media_type`, `overloaded`,
    /// `not_ready`, `store_unavailable`, `timeout`, `internal_error`, `unauthorized`,
    /// `forbidden`, `reload_failed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, when there is one (`facts[2].url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The prompts file at fault (`reload_failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadJson { status, .. } => *status,
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Reload { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Overloaded { .. } | AppError::NotReady | AppError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "validation_error",
            AppError::BadJson { .. } => "invalid_json",
            AppError::BadRequest { .. } => "bad_request",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::Reload { .. } => "reload_failed",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::Overloaded { .. } => "overloaded",
            AppError::NotReady => "not_ready",
            AppError::StoreUnavailable => "store_unavailable",
            AppError::Timeout { .. } => "timeout",
            AppError::Internal(_) => "internal_error",
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation { field: field.into(), message: message.into() }
    }

    /// The body a client sees (also used inside SSE `error` events).
    pub fn body(&self) -> ErrorBody {
        let (message, field) = match self {
            AppError::Internal(detail) => {
                tracing::error!(error = %crate::redact::redact(detail), "internal error");
                ("internal error; the details are in the server log".to_string(), None)
            }
            AppError::Validation { field, message } | AppError::BadRequest { field, message } => (format!("{field}: {message}"), Some(field.clone())),
            other => (other.to_string(), None),
        };
        let file = match self {
            AppError::Reload { file, .. } => file.clone(),
            _ => None,
        };
        ErrorBody { error: ErrorDetail { kind: self.kind(), message, field, file } }
    }

    /// Maps axum's JSON extractor rejections: wrong shape 422 (serde's message
    /// names the field and the path), bad syntax 400, too large 413, wrong
    /// content type 415.
    pub fn from_json_rejection(r: JsonRejection, body_limit: usize) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                let message = e.body_text().replace("Failed to deserialize the JSON body into the target type: ", "");
                match serde_field(&message) {
                    Some((field, message)) => AppError::Validation { field, message },
                    None => AppError::BadJson { status: StatusCode::UNPROCESSABLE_ENTITY, message },
                }
            }
            JsonRejection::JsonSyntaxError(e) => AppError::BadJson { status: StatusCode::BAD_REQUEST, message: e.body_text() },
            JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge { limit: body_limit },
            other => AppError::BadJson { status: other.status(), message: other.body_text() },
        }
    }
}

/// The field serde complains about and the rest of its message. serde's
/// message starts with the path (`facts[0].url: invalid type …`; `.` at the
/// top level); an unknown field's path already ends in its name, a missing
/// field's path is its parent.
pub(crate) fn serde_field(message: &str) -> Option<(String, String)> {
    let (path, rest) = match message.split_once(": ") {
        Some((p, r)) if !p.is_empty() && !p.contains(' ') => (p, r),
        _ => (".", message),
    };
    if let Some(tail) = rest.strip_prefix("missing field `") {
        let name = tail.split('`').next().unwrap_or_default();
        let field = if path == "." { name.to_string() } else { format!("{path}.{name}") };
        return Some((field, rest.to_string()));
    }
    (path != ".").then(|| (path.to_string(), rest.to_string()))
}

impl From<DraftError> for AppError {
    fn from(e: DraftError) -> Self {
        match e {
            DraftError::Invalid { field, message } => AppError::Validation { field, message },
            DraftError::Style(s) => s.into(),
            DraftError::Mood(m) => m.into(),
            DraftError::Engine(crate::engine::EngineError::Limit { field, message }) => AppError::Validation { field, message },
            other if other.is_client_error() => AppError::invalid("request", other.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<StyleError> for AppError {
    fn from(e: StyleError) -> Self {
        match e {
            StyleError::Unknown { field, value, expected } => AppError::Validation { field: field.to_string(), message: format!("unknown value `{value}`; expected one of: {expected}") },
            StyleError::Invalid { field, message } => AppError::Validation { field, message },
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<MoodError> for AppError {
    fn from(e: MoodError) -> Self {
        match e {
            MoodError::Empty | MoodError::TooLong { .. } => AppError::invalid("message", e.to_string()),
            MoodError::TooMuchHistory { .. } => AppError::invalid("history", e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, limit, value } => AppError::Validation { field, message: format!("must be {limit}, got {value}") },
            StoreError::Duplicate { .. } => AppError::Conflict(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = match &self {
            AppError::Overloaded { retry_after_secs, .. } => Some(*retry_after_secs),
            AppError::NotReady => Some(5),
            _ => None,
        };
        let mut resp = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = retry {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_the_field() {
        let f = |m: &str| serde_field(m).map(|(f, _)| f);
        assert_eq!(f("n: invalid type: string \"x\", expected usize at line 1 column 9").as_deref(), Some("n"));
        assert_eq!(f("missing field `brand` at line 1 column 2").as_deref(), Some("brand"));
        assert_eq!(f(".: missing field `brand` at line 1 column 2").as_deref(), Some("brand"));
        assert_eq!(f("colour: unknown field `colour`, expected one of `brand`, `channel` at line 1 column 9").as_deref(), Some("colour"));
        assert_eq!(f("facts[0]: missing field `text` at line 1 column 9").as_deref(), Some("facts[0].text"));
        assert_eq!(f("facts[0].link: unknown field `link`, expected `text` or `url`").as_deref(), Some("facts[0].link"));
        assert_eq!(f("expected value at line 1 column 1"), None);
        assert_eq!(serde_field("n: invalid type: string").map(|(_, m)| m).as_deref(), Some("invalid type: string"));
    }

    #[test]
    fn statuses_and_kinds_are_stable() {
        assert_eq!(AppError::invalid("n", "x").status(), StatusCode::UNPROCESSABLE_ENTITY);
        let o = AppError::Overloaded { queued: 1, capacity: 1, retry_after_secs: 2 };
        assert_eq!((o.status(), o.kind()), (StatusCode::SERVICE_UNAVAILABLE, "overloaded"));
        let r = o.into_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("2"));
        let body = AppError::Internal("secret path /etc/x".into()).body();
        assert!(!body.error.message.contains("secret"), "{}", body.error.message);
    }
}
