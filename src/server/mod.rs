//! The HTTP service: thin axum handlers over the drafting library.
//!
//! Shaped after text-generation-inference's router and axum's examples:
//! handlers only parse (through [`ApiJson`], which turns every extractor
//! rejection into the one [`AppError`]), validate into a `ValidDraftRequest`
//! with the library's own `draft::validate` (so a bad request never waits in
//! the queue), hand it to the model's [`worker`] and map the result. The
//! OpenAI-compatible routes convert into the same `DraftRequest` — one code
//! path. [`router`] builds the whole `Router` from an [`AppState`], so tests
//! drive it with `oneshot` and without a model where none is needed (the
//! state's `worker` is then `None` and drafting routes answer 503).
//!
//! [`load_state`] does the slow, blocking part of a start (the reviews store
//! first, so a bad `store.path` fails at once; style book, mood detector, model — fetched when missing — and the worker thread);
//! [`serve`] runs the listener until a shutdown signal, then drains in-flight
//! requests and joins the worker; [`spawn_server`] runs both on a thread of
//! its own, for tests and embedding.

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod reviews;
pub mod routes;
pub mod runs;
pub mod web;
pub mod worker;

pub use config::{Overrides, ServeConfig};
pub use error::AppError;

use crate::draft::{Drafter, Limits};
use crate::mood::MoodDetector;
use crate::style::StyleBook;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use metrics::Metrics;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use crate::store::{ReviewStore, StoreError};
use worker::WorkerHandle;

/// Everything a handler may use. Built once at start.
pub struct AppState {
    /// The live style book; [`AppState::book`] takes a snapshot, `POST /v1/admin/reload` swaps it.
    pub book_cell: Arc<admin::BookCell>,
    /// Where the book was loaded from (reloads read it again).
    pub prompts: std::path::PathBuf,
    /// The API keys (`[auth]`); none: every request is allowed (loopback only).
    pub keys: Arc<auth::Keys>,
    /// The effective configuration (`GET /v1/admin/config`).
    pub config: Arc<ServeConfig>,
    /// The drafts audit log (`None`: off, or no store).
    pub audit: Option<crate::store::drafts::AuditLog>,
    /// `None` in a server built without the embedding model (triage answers 503).
    pub mood: Option<Arc<MoodDetector>>,
    /// `None` when no language model is loaded (drafting routes answer 503).
    pub worker: Option<WorkerHandle>,
    pub limits: Limits,
    pub body_limit: usize,
    pub triage_batch: usize,
    pub request_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// The reviews store (`None`: the `/v1/reviews` routes answer 503).
    /// `ReviewStore` is `Send` but not `Sync`; handlers lock it inside
    /// `spawn_blocking`, which is plenty for human-paced review traffic.
    pub reviews: Option<Arc<Mutex<ReviewStore>>>,
    /// The eval runs folder behind `/v1/runs` ([`ServeConfig::runs_dir`]).
    pub runs_dir: std::path::PathBuf,
}

impl AppState {
    /// A state with only the style book (lint, brands, channels, validation,
    /// OpenAPI work; drafting and triage answer 503).
    pub fn without_models(book: Arc<StyleBook>, cfg: &ServeConfig) -> Self {
        AppState {
            book_cell: Arc::new(admin::BookCell::new(book)),
            prompts: cfg.server.prompts.clone().unwrap_or_else(crate::style::default_prompts_dir),
            keys: Arc::new(auth::Keys::new(&cfg.auth.keys)),
            config: Arc::new(cfg.clone()),
            audit: None,
            mood: None,
            worker: None,
            limits: cfg.limits.clone(),
            body_limit: cfg.server.body_limit_bytes,
            triage_batch: cfg.server.triage_batch,
            request_timeout: cfg.request_timeout(),
            metrics: Arc::new(Metrics::new(cfg.server.queue_size)),
            reviews: None,
            runs_dir: cfg.runs_dir(),
        }
    }

    /// A snapshot of the live style book.
    pub fn book(&self) -> Arc<StyleBook> {
        self.book_cell.get()
    }

    /// The same state with a reviews store.
    pub fn with_reviews(mut self, store: ReviewStore) -> Self {
        self.reviews = Some(Arc::new(Mutex::new(store)));
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("loading the style guides: {0}")]
    Style(#[from] crate::style::StyleError),
    #[error("loading the mood detector: {0}")]
    Mood(#[from] crate::mood::MoodError),
    #[error(transparent)]
    Models(#[from] crate::models::ModelsError),
    #[error("loading the model {path}: {source}")]
    Engine { path: String, #[source] source: crate::engine::EngineError },
    #[error("{what}: {source}")]
    Io { what: String, #[source] source: std::io::Error },
    /// The reviews store named by `store.path` (or `BRANDVOICE_DB`) cannot be opened.
    #[error("store.path: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .route("/v1/drafts", post(routes::drafts))
        .route("/v1/rewrite", post(routes::rewrite))
        .route("/v1/triage", post(routes::triage))
        .route("/v1/lint", post(routes::lint))
        .route("/v1/brands", get(routes::brands))
        .route("/v1/brands/{id}", get(routes::brand))
        .route("/v1/channels", get(routes::channels))
        .route("/v1/reviews", post(reviews::create).get(reviews::list))
        .route("/v1/reviews/stats", get(reviews::stats))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/report", get(runs::report))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(openapi::spec))
        .route("/docs", get(openapi::docs))
        .merge(web::routes())
        .route("/v1/admin/reload", post(admin::reload))
        .route("/v1/admin/config", get(admin::config))
        .fallback(routes::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Counts every request by route template and status, with its latency.
async fn track(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    s.metrics.observe_request(&route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

/// The per-request timeout for every route: the draft timeout plus a grace
/// period, so a draft's own 504 (which cancels its generation) comes first.
/// Streams are bounded by their own deadline once their headers are out.
async fn deadline(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = s.request_timeout + Duration::from_secs(5);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => axum::response::IntoResponse::into_response(AppError::Timeout { secs: limit.as_secs() }),
    }
}

/// `axum::Json` with our error body: wrong shape 422 naming the field, bad
/// syntax 400, too large 413, wrong content type 415.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(AppError::from_json_rejection(r, state.body_limit)),
        }
    }
}

/// Loads the style book, the mood detector and the model (fetching it when
/// missing), and starts the model's worker. Blocking; seconds.
pub fn load_state(cfg: &ServeConfig) -> Result<(Arc<AppState>, std::thread::JoinHandle<()>), ServeError> {
    let mut state = load_base_state(cfg)?;
    let book = state.book();
    let t = Instant::now();
    let mood = Arc::new(MoodDetector::load()?);
    tracing::info!(ms = t.elapsed().as_millis() as u64, "mood detector loaded");
    let t = Instant::now();
    let path = crate::models::resolve(&cfg.model.name)?;
    let model = crate::engine::model::load(&path, &Default::default()).map_err(|source| ServeError::Engine { path: path.display().to_string(), source })?;
    tracing::info!(model = %cfg.model.name, path = %path.display(), arch = %model.info.arch, ms = t.elapsed().as_millis() as u64, "model loaded");
    let drafter = Drafter::new(model, cfg.model.name.clone(), book.clone(), mood.clone(), cfg.model.prefix_cache_bytes);
    let warm = if cfg.server.warm {
        if let Some(c) = cfg.server.warm_channels.iter().find(|c| !book.channels.channels.contains_key(*c)) {
            let known: Vec<&str> = book.channels.channels.keys().map(String::as_str).collect();
            return Err(config::ConfigError::Invalid { key: "server.warm_channels".into(), message: format!("unknown channel `{c}`; expected some of: {}", known.join(", ")) }.into());
        }
        let combos = drafter.hot_combos(&cfg.server.warm_channels);
        tracing::info!(combos = combos.len(), cache_bytes = cfg.model.prefix_cache_bytes, "prefix-cache warm-up starts (between requests)");
        combos
    } else {
        Vec::new()
    };
    let (handle, thread) = worker::spawn(drafter, cfg.server.queue_size, state.metrics.clone(), Some(state.book_cell.clone()), state.audit.clone(), warm)
        .map_err(|source| ServeError::Io { what: "starting the model worker thread".into(), source })?;
    state.mood = Some(mood);
    state.worker = Some(handle);
    Ok((Arc::new(state), thread))
}

/// The quick part of a start, without the mood detector and the model: the
/// reviews store (first, so a bad `store.path` fails at once), the drafts
/// audit log, the style book and the keys. `serve --no-model` runs on this
/// alone (lint, brands, channels, reviews, admin; drafting answers 503).
pub fn load_base_state(cfg: &ServeConfig) -> Result<AppState, ServeError> {
    let store = open_store(cfg)?;
    let prompts = cfg.server.prompts.clone().unwrap_or_else(crate::style::default_prompts_dir);
    let t = Instant::now();
    let book = Arc::new(StyleBook::load(&prompts)?);
    tracing::info!(brands = book.brands.len(), dir = %prompts.display(), ms = t.elapsed().as_millis() as u64, "style guides loaded");
    let mut state = AppState::without_models(book, cfg).with_reviews(store);
    if cfg.audit.enabled {
        let (log, _writer) = crate::store::drafts::AuditLog::start(&cfg.store_path(), cfg.audit.retention_days)?;
        state.audit = Some(log);
        tracing::info!(retention_days = cfg.audit.retention_days, "drafts audit log on");
    } else {
        tracing::info!("drafts audit log off ([audit] enabled = false)");
    }
    if state.keys.is_open() {
        tracing::warn!(bind = %cfg.server.bind, "no API keys configured: every request is allowed (accepted only on a loopback address); see `brandvoice keys new`");
    } else {
        tracing::info!(keys = state.keys.len(), "API keys required on /v1 and /metrics");
    }
    Ok(state)
}

/// Opens (creating when missing) the reviews store at [`ServeConfig::store_path`].
pub fn open_store(cfg: &ServeConfig) -> Result<ReviewStore, ServeError> {
    let path = cfg.store_path();
    let store = ReviewStore::open(&path).map_err(|e| match e {
        e @ (StoreError::Open { .. } | StoreError::TooNew { .. }) => e,
        other => StoreError::Open { path: path.clone(), reason: other.to_string() },
    })?;
    tracing::info!(path = %path.display(), "reviews store open");
    Ok(store)
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting,
/// lets in-flight requests (streams included) finish, and joins the worker.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>, worker_thread: Option<std::thread::JoinHandle<()>>, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Io { what: "serving HTTP".into(), source })?;
    tracing::info!("HTTP server stopped; waiting for the model worker");
    // The worker finishes what is queued before the stop signal, then exits.
    if let Some(w) = &state.worker {
        w.stop().await;
    }
    if let Some(t) = worker_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Some(a) = state.audit.clone() {
        let _ = tokio::task::spawn_blocking(move || a.flush()).await;
    }
    Ok(())
}

/// A server running on a thread of its own (its own tokio runtime).
pub struct ServerHandle {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl ServerHandle {
    /// Graceful shutdown: in-flight requests finish first.
    pub fn shutdown(mut self) -> Result<(), ServeError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(ServeError::Io { what: "server thread".into(), source: std::io::Error::other("panicked") })),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Loads everything (blocking), binds `cfg.server.bind` and serves on a new
/// thread; returns once the socket listens.
pub fn spawn_server(cfg: &ServeConfig) -> Result<ServerHandle, ServeError> {
    let (state, worker_thread) = load_state(cfg)?;
    spawn_with_state(cfg, state, Some(worker_thread))
}

/// [`spawn_server`] with a prepared state.
pub fn spawn_with_state(cfg: &ServeConfig, state: Arc<AppState>, worker_thread: Option<std::thread::JoinHandle<()>>) -> Result<ServerHandle, ServeError> {
    let addr = cfg.bind_addr().map_err(|e| ServeError::Io { what: format!("server.bind `{}`", cfg.server.bind), source: std::io::Error::other(e) })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| ServeError::Io { what: "starting the async runtime".into(), source })?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).map_err(|source| ServeError::Io { what: format!("binding {addr}"), source })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Io { what: "reading the bound address".into(), source })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("brandvoice-http".into())
        .spawn(move || {
            rt.block_on(serve(listener, state, worker_thread, async move {
                let _ = rx.await;
            }))
        })
        .map_err(|source| ServeError::Io { what: "starting the server thread".into(), source })?;
    Ok(ServerHandle { addr: bound, shutdown: Some(tx), thread: Some(thread) })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request as HttpRequest, StatusCode};
    use std::sync::OnceLock;
    use tower::ServiceExt;

    pub fn book() -> Arc<StyleBook> {
        static B: OnceLock<Arc<StyleBook>> = OnceLock::new();
        B.get_or_init(|| Arc::new(StyleBook::load(crate::style::default_prompts_dir()).expect("prompts/ loads"))).clone()
    }

    /// A router without models: lint, brands, channels, validation, OpenAPI.
    pub fn app() -> Router {
        router(Arc::new(AppState::without_models(book(), &ServeConfig::default())))
    }

    /// Sends one request; returns status, headers and the body as text.
    pub async fn send(app: Router, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut b = HttpRequest::builder().method(method).uri(uri);
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b.body(body.map(|s| Body::from(s.to_string())).unwrap_or_else(Body::empty)).expect("request");
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&bytes).to_string())
    }

    pub fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }
}
