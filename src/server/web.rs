//! The web console: the agent page at `/`, the reviewer page at `/review`,
//! and their assets under `/assets/`, all compiled into the binary.
//!
//! brandvoice is self-hosted and must work with no network, so the pages use
//! no CDN, web font or third-party script: plain HTML, one stylesheet and
//! small scripts that talk to the same `/v1` API as any other client (charts
//! are SVG the scripts draw). The files live in `src/server/web/` and are
//! `include_str!`-ed, so a release is one file and a page can never be out of
//! step with the API it calls. Every response carries a strong `ETag` (a hash
//! computed at compile time) and answers `If-None-Match` with 304; pages are
//! `no-cache` (always revalidated, so a new binary shows at once), assets may
//! be cached for ten minutes. A strict Content-Security-Policy (`'self'`
//! only, no inline script or style) is the second line behind the scripts
//! never building HTML from API text. `/assets/meta.json` carries the lists
//! the pickers need that have no API of their own (moods, review goals), read
//! from the loaded style book rather than hard-coded in the scripts.

use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    etag: u64,
}

/// FNV-1a, at compile time: the ETag of an embedded file.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x100000001b3);
        i += 1;
    }
    h
}

macro_rules! asset {
    ($name:literal, $ctype:literal) => {
        Asset { name: $name, content_type: $ctype, body: include_bytes!(concat!("web/", $name)), etag: fnv1a(include_bytes!(concat!("web/", $name))) }
    };
}

const HTML: &str = "text/html; charset=utf-8";

/// The pages (served at `/` and `/review`).
pub static AGENT_PAGE: Asset = asset!("agent.html", "text/html; charset=utf-8");
pub static REVIEW_PAGE: Asset = asset!("review.html", "text/html; charset=utf-8");

/// Everything under `/assets/`.
pub static ASSETS: [Asset; 5] = [
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("common.js", "text/javascript; charset=utf-8"),
    asset!("agent.js", "text/javascript; charset=utf-8"),
    asset!("review.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Scripts, styles, images and API calls from this origin only; no inline
/// code, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes, merged into the service's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(agent_page))
        .route("/review", get(review_page))
        .route("/assets/meta.json", get(meta))
        .route("/assets/{name}", get(asset))
        .route("/favicon.ico", get(favicon))
}

fn serve(a: &'static Asset, req: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", a.etag);
    let page = a.content_type == HTML;
    let cache = if page { "no-cache" } else { "public, max-age=600" };
    let mut headers = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(a.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.push((header::ETAG, v));
    }
    if page {
        headers.push((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)));
        headers.push((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    }
    let fresh = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { a.body.into_response() };
    for (k, v) in headers {
        resp.headers_mut().insert(k, v);
    }
    resp
}

async fn agent_page(h: HeaderMap) -> Response {
    serve(&AGENT_PAGE, &h)
}

async fn review_page(h: HeaderMap) -> Response {
    serve(&REVIEW_PAGE, &h)
}

async fn favicon(h: HeaderMap) -> Response {
    serve(&ASSETS[4], &h)
}

async fn asset(Path(name): Path<String>, h: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &h),
        None => super::AppError::NotFound(format!("no asset `{}`; assets: {}", name.chars().take(100).collect::<String>(), ASSETS.iter().map(|a| a.name).collect::<Vec<_>>().join(", "))).into_response(),
    }
}

/// The lists the consoles' pickers need that no `/v1` route gives: the
/// moods of the loaded style book and the review goals of the store.
async fn meta(State(s): State<Arc<AppState>>) -> Response {
    let book = s.book();
    let moods: Vec<&String> = book.moods.moods.keys().collect();
    let body = serde_json::json!({ "moods": moods, "goals": crate::store::GOALS });
    ([(header::CACHE_CONTROL, "no-cache")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{app, json, send};
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    #[tokio::test]
    async fn pages_and_assets_have_types_and_cache_headers() {
        for (uri, ctype, cache) in [
            ("/", "text/html", "no-cache"),
            ("/review", "text/html", "no-cache"),
            ("/assets/console.css", "text/css", "max-age=600"),
            ("/assets/common.js", "text/javascript", "max-age=600"),
            ("/assets/agent.js", "text/javascript", "max-age=600"),
            ("/assets/review.js", "text/javascript", "max-age=600"),
            ("/assets/favicon.svg", "image/svg+xml", "max-age=600"),
            ("/favicon.ico", "image/svg+xml", "max-age=600"),
        ] {
            let (st, h, body) = send(app(), Method::GET, uri, None).await;
            assert_eq!(st, StatusCode::OK, "{uri}");
            assert!(h["content-type"].to_str().unwrap().starts_with(ctype), "{uri}: {:?}", h["content-type"]);
            assert!(h["cache-control"].to_str().unwrap().contains(cache), "{uri}");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert!(h.contains_key("etag") && !body.is_empty(), "{uri}");
            if ctype == "text/html" {
                assert!(h["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
            }
        }
    }

    #[tokio::test]
    async fn etag_revalidation_answers_304() {
        let (_, h, _) = send(app(), Method::GET, "/assets/agent.js", None).await;
        let etag = h["etag"].to_str().unwrap().to_string();
        let req = Request::builder().uri("/assets/agent.js").header("if-none-match", &etag).body(Body::empty()).unwrap();
        let resp = app().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let req = Request::builder().uri("/assets/agent.js").header("if-none-match", "\"0000\"").body(Body::empty()).unwrap();
        assert_eq!(app().oneshot(req).await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_asset_is_a_json_404_naming_the_assets() {
        let (st, _, out) = send(app(), Method::GET, "/assets/..%2Fmod.rs", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let v = json(&out);
        assert_eq!(v["error"]["type"], "not_found");
        assert!(v["error"]["message"].as_str().unwrap().contains("agent.js"), "{out}");
    }

    #[tokio::test]
    async fn meta_lists_moods_and_goals() {
        let (st, _, out) = send(app(), Method::GET, "/assets/meta.json", None).await;
        assert_eq!(st, StatusCode::OK);
        let v = json(&out);
        let moods: Vec<&str> = v["moods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        assert!(moods.contains(&"angry") && moods.contains(&"grateful"), "{out}");
        assert_eq!(v["goals"].as_array().unwrap().len(), 7);
    }

    /// The pages stay self-contained: nothing loaded from another origin, no
    /// inline script or style (the CSP would block them anyway).
    #[test]
    fn pages_are_offline_and_csp_clean() {
        for a in [&AGENT_PAGE, &REVIEW_PAGE].into_iter().chain(ASSETS.iter()) {
            let text = std::str::from_utf8(a.body).unwrap();
            for attr in ["src=\"", "href=\""] {
                for (i, _) in text.match_indices(attr) {
                    let v = &text[i + attr.len()..];
                    assert!(v.starts_with('/') && !v.starts_with("//") || v.starts_with('#'), "{}: {attr}{}", a.name, &v[..v.len().min(40)]);
                }
            }
            for bad in ["url(", "@import", "\"http:", "\"https:", "'http:", "'https:", "//cdn", "fonts.googleapis"] {
                let hits: Vec<&str> = text.lines().filter(|l| l.contains(bad) && !l.contains("\"http://www.w3.org/2000/svg\"")).collect();
                assert!(hits.is_empty(), "{} refers to {bad}: {hits:?}", a.name);
            }
            if a.content_type == HTML {
                assert!(!text.contains("style=\"") && !text.contains(" onclick") && !text.contains("<script>") && !text.contains("<style"), "{} has inline code", a.name);
            }
        }
    }

    /// Every form control on the pages has an accessible name.
    #[test]
    fn every_control_is_labelled() {
        for page in [&AGENT_PAGE, &REVIEW_PAGE] {
            let text = std::str::from_utf8(page.body).unwrap();
            for tag in ["<input", "<select", "<textarea", "<button"] {
                for (i, _) in text.match_indices(tag) {
                    let end = text[i..].find('>').map(|e| i + e).unwrap();
                    let el = &text[i..=end];
                    let id = el.split("id=\"").nth(1).and_then(|r| r.split('"').next());
                    let labelled = el.contains("aria-label") || el.contains("aria-labelledby") || el.contains("type=\"hidden\"")
                        || id.is_some_and(|id| text.contains(&format!("for=\"{id}\"")))
                        || (tag == "<button" && !text[end + 1..].trim_start().starts_with("</button>"));
                    assert!(labelled, "{}: unlabelled control {el}", page.name);
                }
            }
        }
    }
}
