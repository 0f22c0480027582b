//! Persistent state: SQLite by default.
//!
//! One file, opened in WAL mode so the HTTP server's readers never block the
//! writer, with `synchronous=FULL` so a review a reviewer was told was saved
//! survives a power cut. The schema moves forward by numbered migrations keyed
//! on SQLite's `user_version`, each applied in its own transaction; a file
//! from a newer build is refused rather than guessed at. `rusqlite` is used
//! synchronously: the HTTP layer calls it from `spawn_blocking` behind a
//! mutex, which is plenty for human-paced review traffic.

pub mod drafts;
pub mod reviews;
pub mod stats;

pub use reviews::{
    ImportFormat, ImportOptions, ImportSummary, NewPairwise, NewReview, Pairwise, PairwiseSummary, Preference, Review,
    ReviewStore, Scores, AutoScores, GOALS,
};
pub use stats::{review_stats, GoalStats, ReviewStats};

use std::path::PathBuf;

/// Errors of the store layer. `Invalid` is the caller's fault (HTTP 422),
/// `Duplicate` a conflict (409), the rest are server-side.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{field}: must be {limit}, got {value}")]
    Invalid { field: String, limit: String, value: String },
    #[error("{what} already exists for {key}")]
    Duplicate { what: &'static str, key: String },
    #[error("{source_name} line {line}: {message}")]
    Import { source_name: String, line: usize, message: String },
    #[error("cannot open the store {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the store {path} has schema version {found}, newer than this build knows ({known}); upgrade brandvoice")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("store: {0}")]
    Json(#[from] serde_json::Error),
}

impl StoreError {
    pub(crate) fn invalid(field: impl Into<String>, limit: impl Into<String>, value: impl std::fmt::Display) -> Self {
        let mut v = value.to_string();
        if v.chars().count() > 80 {
            v = v.chars().take(77).collect::<String>() + "...";
        }
        StoreError::Invalid { field: field.into(), limit: limit.into(), value: v }
    }
}

/// Where the review store lives unless told otherwise: `$BRANDVOICE_DB`, else
/// `$BRANDVOICE_HOME/reviews.sqlite`, else `~/.local/share/brandvoice/reviews.sqlite`.
pub fn default_db_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BRANDVOICE_DB") {
        return PathBuf::from(p);
    }
    if let Some(h) = std::env::var_os("BRANDVOICE_HOME") {
        return PathBuf::from(h).join("reviews.sqlite");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/brandvoice/reviews.sqlite")
}
