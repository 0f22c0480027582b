//! API keys with roles, checked by one middleware in front of every route.
//!
//! Why this shape: the service hands text to people who paste it under a
//! brand's name, so who may draft, who may score and who may change the
//! rules are different people. A key carries one [`Role`]; a route needs one
//! [`Access`], decided from its path alone by [`required`] (all API routes
//! live under `/v1/`, so a route another module adds later is protected by
//! default; static pages, health, readiness and the docs stay public).
//!
//! Keys are never stored: the config holds the sha256 of each key, the
//! presented key is hashed and compared against every stored hash in
//! constant time (`subtle`), without an early exit, so neither the timing nor
//! the log says how close a guess was. Logs carry the key's *name* only.
//! With no keys configured every request is allowed; `ServeConfig::check`
//! refuses that unless the server listens on loopback, and the start logs a
//! warning saying so.

use super::config::KeyEntry;
use super::error::AppError;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Drafts, rewrite, triage, lint, chat completions; reads brands and channels.
    Agent,
    /// Reviews and eval runs/reports; reads brands and channels.
    Reviewer,
    /// Everything, plus reloading brands and rules, the config view and metrics.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key (health, readiness, docs, the web console's static pages).
    Public,
    /// Any valid key.
    AnyKey,
    /// This role (or admin).
    Role(Role),
}

/// The access a path needs. Everything outside `/v1/` and `/metrics` is
/// public; inside, unknown paths need some valid key (so probing for routes
/// without a key only ever sees 401).
pub fn required(path: &str) -> Access {
    if path == "/metrics" {
        return Access::Role(Role::Admin);
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return if path == "/v1" { Access::AnyKey } else { Access::Public };
    };
    let first = rest.split('/').next().unwrap_or_default();
    match first {
        "admin" => Access::Role(Role::Admin),
        "drafts" | "rewrite" | "triage" | "lint" | "chat" | "models" => Access::Role(Role::Agent),
        "reviews" | "runs" | "eval" => Access::Role(Role::Reviewer),
        _ => Access::AnyKey,
    }
}

/// Whether `role` satisfies `access`.
pub fn allows(access: Access, role: Role) -> bool {
    match access {
        Access::Public | Access::AnyKey => true,
        Access::Role(need) => role == need || role == Role::Admin,
    }
}

/// The caller, as the middleware identified it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The configured keys: name, role and the sha256 of the key.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    entries: Vec<(String, Role, [u8; 32])>,
}

impl Keys {
    /// From the checked config (`ServeConfig::check` has verified the hex).
    pub fn new(entries: &[KeyEntry]) -> Self {
        let entries = entries
            .iter()
            .filter_map(|k| {
                let bytes = hex::decode(&k.sha256).ok()?;
                let hash: [u8; 32] = bytes.try_into().ok()?;
                Some((k.name.clone(), k.role, hash))
            })
            .collect();
        Keys { entries }
    }

    /// No keys configured: every request is allowed (loopback only).
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key's holder, comparing the hash against every entry in constant time.
    pub fn identify(&self, presented: &str) -> Option<Caller> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<usize> = None;
        for (i, (_, _, stored)) in self.entries.iter().enumerate() {
            // Every entry is compared; no early exit.
            if bool::from(stored.ct_eq(&hash)) && found.is_none() {
                found = Some(i);
            }
        }
        found.map(|i| Caller { name: self.entries[i].0.clone(), role: self.entries[i].1 })
    }
}

/// Lowercase hex sha256 of a key, as stored in `[auth] keys`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh key: `bv_` and 64 hex digits (256 bits from the OS's generator).
pub fn new_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("bv_{}", hex::encode(bytes))
}

/// The key a request presents: `Authorization: Bearer KEY`, else `x-api-key: KEY`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty())
}

/// The middleware: 401 for a missing or unknown key, 403 for the wrong role.
pub async fn require(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let access = required(&path);
    if access == Access::Public || s.keys.is_open() {
        return next.run(req).await;
    }
    let Some(key) = presented_key(req.headers()) else {
        return AppError::Unauthorized("missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`".into()).into_response();
    };
    let Some(caller) = s.keys.identify(key) else {
        tracing::warn!(%path, "request with an unknown API key");
        return AppError::Unauthorized("unknown API key".into()).into_response();
    };
    if !allows(access, caller.role) {
        tracing::info!(key = %caller.name, role = %caller.role, %path, "forbidden: wrong role");
        let need = match access {
            Access::Role(r) => r.as_str(),
            _ => "any",
        };
        return AppError::Forbidden(format!("the key `{}` has role {}; {path} needs role {need} (or admin)", caller.name, caller.role)).into_response();
    }
    tracing::debug!(key = %caller.name, role = %caller.role, %path, "authorized");
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys() -> (Keys, String, String) {
        let a = new_key();
        let r = new_key();
        let k = Keys::new(&[
            KeyEntry { name: "desk".into(), role: Role::Agent, sha256: hash_key(&a) },
            KeyEntry { name: "qa".into(), role: Role::Reviewer, sha256: hash_key(&r) },
        ]);
        (k, a, r)
    }

    #[test]
    fn identifies_by_hash_only() {
        let (k, a, r) = keys();
        assert_eq!(k.identify(&a), Some(Caller { name: "desk".into(), role: Role::Agent }));
        assert_eq!(k.identify(&r).map(|c| c.role), Some(Role::Reviewer));
        assert_eq!(k.identify("bv_nope"), None);
        assert_eq!(k.identify(&a[..a.len() - 1]), None);
        // The stored hash is not itself a key.
        assert_eq!(k.identify(&hash_key(&a)), None);
        assert!(!k.is_open());
        assert!(Keys::new(&[]).is_open());
    }

    #[test]
    fn fresh_keys_are_long_and_distinct() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash_key(&a).len(), 64);
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn routes_map_to_roles() {
        assert_eq!(required("/healthz"), Access::Public);
        assert_eq!(required("/"), Access::Public);
        assert_eq!(required("/assets/app.js"), Access::Public);
        assert_eq!(required("/docs"), Access::Public);
        assert_eq!(required("/openapi.json"), Access::Public);
        assert_eq!(required("/v1/drafts"), Access::Role(Role::Agent));
        assert_eq!(required("/v1/chat/completions"), Access::Role(Role::Agent));
        assert_eq!(required("/v1/reviews/stats"), Access::Role(Role::Reviewer));
        assert_eq!(required("/v1/runs/x/results"), Access::Role(Role::Reviewer));
        assert_eq!(required("/v1/admin/reload"), Access::Role(Role::Admin));
        assert_eq!(required("/metrics"), Access::Role(Role::Admin));
        assert_eq!(required("/v1/brands/tunely"), Access::AnyKey);
        assert_eq!(required("/v1/whatever"), Access::AnyKey);
        assert!(allows(Access::Role(Role::Agent), Role::Admin));
        assert!(!allows(Access::Role(Role::Agent), Role::Reviewer));
        assert!(!allows(Access::Role(Role::Admin), Role::Agent));
        assert!(allows(Access::AnyKey, Role::Reviewer));
    }

    #[test]
    fn key_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", HeaderValue::from_static("k2"));
        assert_eq!(presented_key(&h), Some("k2"));
        h.insert("authorization", HeaderValue::from_static("Bearer k1"));
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h), Some("k2"));
    }
}
