//! Admin routes: `POST /v1/admin/reload` (brand guides, channels, moods and
//! rule packs from the prompts folder) and `GET /v1/admin/config`.
//!
//! The live style book sits in a [`BookCell`]: readers take a cheap
//! `Arc<StyleBook>` snapshot per request, a reload builds a whole new book
//! off the runtime (`spawn_blocking`, it parses YAML and compiles regexes)
//! and swaps it in only when every file loads and checks. An invalid edit
//! therefore never reaches a request: the answer is a 422 naming the file
//! and the problem, and the service keeps drafting and linting with the last
//! valid book. The model worker compares the cell's version before each job
//! and takes the new book then, so no message has to squeeze into its
//! bounded queue.

use super::error::{AppError, ErrorBody};
use super::AppState;
use crate::style::{StyleBook, StyleError};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The current style book, swapped whole on reload.
#[derive(Debug)]
pub struct BookCell {
    book: RwLock<Arc<StyleBook>>,
    version: AtomicU64,
}

impl BookCell {
    pub fn new(book: Arc<StyleBook>) -> Self {
        BookCell { book: RwLock::new(book), version: AtomicU64::new(1) }
    }

    /// A snapshot; valid for as long as the caller holds it.
    pub fn get(&self) -> Arc<StyleBook> {
        match self.book.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Bumped by every successful [`BookCell::set`].
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn set(&self, book: Arc<StyleBook>) {
        let mut g = match self.book.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = book;
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

/// What a successful reload loaded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReloadReport {
    pub status: &'static str,
    /// The prompts folder read.
    pub prompts: String,
    pub brands: Vec<String>,
    pub channels: usize,
    /// Increases with every successful reload.
    pub version: u64,
    pub ms: u64,
}

/// The first file named by a load error, for the error body.
fn reload_error(e: StyleError) -> AppError {
    let file = match &e {
        StyleError::Guide(problems) => problems.first().map(|p| p.file.clone()),
        StyleError::Io { path, .. } => Some(path.clone()),
        _ => None,
    };
    AppError::Reload { file, message: format!("reload failed; still serving the last valid version. {e}") }
}

/// Loads `dir` and swaps it into the cell only when it is valid.
pub fn reload_into(cell: &BookCell, dir: &std::path::Path) -> Result<ReloadReport, AppError> {
    let t = Instant::now();
    let book = StyleBook::load(dir).map_err(reload_error)?;
    let brands = book.brands.keys().cloned().collect();
    let channels = book.channels.channels.len();
    cell.set(Arc::new(book));
    Ok(ReloadReport { status: "reloaded", prompts: dir.display().to_string(), brands, channels, version: cell.version(), ms: t.elapsed().as_millis() as u64 })
}

/// Reloads brand guides, channels, moods and rule packs from the prompts folder.
///
/// All or nothing: on any problem the last valid version keeps serving and the
/// answer is a 422 whose `error.file` names the file and `error.message` every problem.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "admin",
    responses(
        (status = 200, description = "The new book is live", body = ReloadReport),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "The key's role is not admin", body = ErrorBody),
        (status = 422, description = "A prompts file is invalid; nothing changed", body = ErrorBody),
    ))]
pub async fn reload(State(s): State<Arc<AppState>>) -> Result<Json<ReloadReport>, AppError> {
    let state = s.clone();
    let result = tokio::task::spawn_blocking(move || reload_into(&state.book_cell, &state.prompts))
        .await
        .map_err(|e| AppError::Internal(format!("reload task failed: {e}")))?;
    match &result {
        Ok(r) => tracing::info!(version = r.version, brands = r.brands.len(), ms = r.ms, "style book reloaded"),
        Err(e) => tracing::warn!(error = %e, "style book reload failed; keeping the last valid version"),
    }
    Ok(Json(result?))
}

/// The running configuration, with key hashes left out.
#[utoipa::path(get, path = "/v1/admin/config", tag = "admin",
    responses(
        (status = 200, description = "The effective config (file, environment, flags); `auth.keys` lists names and roles only", body = Object),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "The key's role is not admin", body = ErrorBody),
    ))]
pub async fn config(State(s): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, AppError> {
    let mut v = serde_json::to_value(&*s.config).map_err(|e| AppError::Internal(format!("encoding the config: {e}")))?;
    if let Some(keys) = v.pointer_mut("/auth/keys").and_then(|k| k.as_array_mut()) {
        for k in keys {
            if let Some(o) = k.as_object_mut() {
                o.remove("sha256");
            }
        }
    }
    Ok(Json(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_edit_keeps_the_last_valid_book() {
        let dir = tempfile::tempdir().unwrap();
        let copy = fs_extra::dir::CopyOptions::new().content_only(true);
        fs_extra::dir::copy(crate::style::default_prompts_dir(), dir.path(), &copy).unwrap();
        let cell = BookCell::new(Arc::new(StyleBook::load(dir.path()).unwrap()));
        let v0 = cell.version();
        let file = dir.path().join("brands/tunely.yaml");
        let good = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{good}\n  : [unclosed\n")).unwrap();
        let e = reload_into(&cell, dir.path()).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let body = e.body();
        assert_eq!(body.error.kind, "reload_failed");
        assert!(body.error.file.as_deref().unwrap_or_default().ends_with("tunely.yaml"), "{:?}", body.error.file);
        assert_eq!(cell.version(), v0, "a failed reload must not swap");
        assert!(cell.get().brand("tunely").is_some());
        std::fs::write(&file, good.replace("name: Tunely", "name: Tunely Reloaded")).unwrap();
        let r = reload_into(&cell, dir.path()).expect("fixed file reloads");
        assert_eq!(r.version, v0 + 1);
        assert_eq!(cell.get().brand("tunely").unwrap().guide.name, "Tunely Reloaded");
    }
}
