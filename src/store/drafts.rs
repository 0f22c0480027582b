//! The drafts audit log: every draft request (customer text redacted), the
//! drafts it produced and their scores, in the reviews store's SQLite file.
//!
//! Why a writer thread: the model worker must never wait on a disk. It hands
//! each finished draft to [`AuditLog::record`], which only `try_send`s into
//! a bounded channel; a thread of its own owns the connection and does the
//! inserts (WAL, `synchronous=FULL`, like the reviews). When the channel is
//! full the entry is dropped and counted (`dropped`) rather than slowing
//! drafting down. Retention: rows older than `retention_days` are purged
//! when the log starts and then once a day; `brandvoice audit purge
//! --older-than-days N` does it by hand; `[audit] enabled = false` writes
//! nothing at all. The table lives beside the reviews tables but outside
//! their numbered migrations (`CREATE TABLE IF NOT EXISTS`), so either can
//! change without the other.

use super::StoreError;
use crate::draft::{DraftResponse, Mode, ValidDraftRequest};
use crate::redact::redact_owned;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries that may wait for the writer thread.
pub const QUEUE: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS drafts_audit (
    id           INTEGER PRIMARY KEY,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_unix INTEGER NOT NULL DEFAULT (unixepoch()),
    route        TEXT    NOT NULL,
    brand        TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    seed         INTEGER NOT NULL,
    mood         TEXT    NOT NULL,
    request      TEXT    NOT NULL,
    drafts       TEXT    NOT NULL,
    best_score   REAL,
    fallback     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS drafts_audit_time ON drafts_audit (created_unix);
";

/// One row, ready to insert (text already redacted).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub route: String,
    pub brand: String,
    pub channel: String,
    pub model: String,
    pub seed: u64,
    pub mood: String,
    /// The request as JSON, customer text redacted, the customer's name left out.
    pub request: Value,
    /// `[{"text", "score", "fallback"}]`, text redacted.
    pub drafts: Value,
    pub best_score: Option<f32>,
    pub fallback: bool,
}

impl AuditEntry {
    pub fn new(route: &str, req: &ValidDraftRequest, resp: &DraftResponse) -> Self {
        let mut request = json!({
            "brand": req.brand,
            "channel": req.channel,
            "message": redact_owned(&req.message),
            "mood": req.mood,
            "language": req.language,
            "history": req.history.iter().map(|t| json!({"role": t.role, "text": redact_owned(&t.text)})).collect::<Vec<_>>(),
            "facts": req.facts.iter().map(|f| json!({"text": redact_owned(&f.text), "url": f.url})).collect::<Vec<_>>(),
            "customer_tier": req.customer.tier,
            "intent": req.intent,
            "n": req.n,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
        });
        if let Mode::Rewrite { draft } = &req.mode {
            request["draft"] = Value::String(redact_owned(draft));
        }
        let drafts = resp.drafts.iter().map(|d| json!({"text": redact_owned(&d.text), "score": d.score.overall, "fallback": d.fallback})).collect::<Vec<_>>();
        AuditEntry {
            route: route.to_string(),
            brand: req.brand.clone(),
            channel: req.channel.clone(),
            model: resp.model.clone(),
            seed: resp.seed,
            mood: resp.mood.label.clone(),
            request,
            drafts: Value::Array(drafts),
            best_score: resp.drafts.first().map(|d| d.score.overall),
            fallback: resp.drafts.first().is_some_and(|d| d.fallback),
        }
    }
}

/// The synchronous side: one connection to the store's file.
pub struct DraftsAudit {
    conn: Connection,
}

impl DraftsAudit {
    /// Opens (creating when missing) the audit table in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open { path: path.to_path_buf(), reason: format!("cannot create {}: {e}", dir.display()) })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open { path: path.to_path_buf(), reason: e.to_string() })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open { path: path.to_path_buf(), reason: format!("cannot switch to WAL mode (journal_mode is {mode})") });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(DraftsAudit { conn })
    }

    pub fn insert(&self, e: &AuditEntry) -> Result<i64, StoreError> {
        self.insert_at(e, None)
    }

    /// Inserts with an explicit creation time (unix seconds; `None`: now).
    pub fn insert_at(&self, e: &AuditEntry, unix: Option<i64>) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO drafts_audit (created_unix, created_at, route, brand, channel, model, seed, mood, request, drafts, best_score, fallback) \
             VALUES (COALESCE(?1, unixepoch()), strftime('%Y-%m-%dT%H:%M:%SZ', COALESCE(?1, unixepoch()), 'unixepoch'), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![unix, e.route, e.brand, e.channel, e.model, e.seed as i64, e.mood, e.request.to_string(), e.drafts.to_string(), e.best_score, e.fallback],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Deletes rows older than `days` days; returns how many.
    pub fn purge_older_than(&self, days: u32) -> Result<usize, StoreError> {
        Ok(self.conn.execute("DELETE FROM drafts_audit WHERE created_unix < unixepoch() - ?1 * 86400", params![days as i64])?)
    }

    pub fn count(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM drafts_audit", [], |r| r.get(0))?)
    }

    /// The newest rows, newest first: `(request JSON, drafts JSON)`.
    pub fn latest(&self, limit: usize) -> Result<Vec<(Value, Value)>, StoreError> {
        let mut st = self.conn.prepare("SELECT request, drafts FROM drafts_audit ORDER BY id DESC LIMIT ?1")?;
        let rows = st.query_map(params![limit as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (a, b) = row?;
            out.push((serde_json::from_str(&a)?, serde_json::from_str(&b)?));
        }
        Ok(out)
    }
}

enum Msg {
    Entry(Box<AuditEntry>),
    /// Reply once everything sent before is written (tests, shutdown).
    Flush(SyncSender<()>),
}

/// The non-blocking front the model worker holds. Cloneable; the writer
/// thread ends when every clone is dropped, after writing what is queued.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Opens the table, purges by `retention_days` (0: keep), and starts the writer thread.
    pub fn start(path: &Path, retention_days: u32) -> Result<(AuditLog, std::thread::JoinHandle<()>), StoreError> {
        let db = DraftsAudit::open(path)?;
        purge(&db, retention_days, path);
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let path: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new().name("brandvoice-audit".into()).spawn(move || {
            let day = Duration::from_secs(24 * 3600);
            let mut last_purge = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(Msg::Entry(e)) => {
                        if let Err(err) = db.insert(&e) {
                            tracing::error!(error = %err, "drafts audit: insert failed");
                        }
                    }
                    Ok(Msg::Flush(done)) => {
                        let _ = done.send(());
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if last_purge.elapsed() >= day {
                    purge(&db, retention_days, &path);
                    last_purge = Instant::now();
                }
            }
        }).map_err(StoreError::Io)?;
        Ok((AuditLog { tx, dropped: Arc::new(AtomicU64::new(0)) }, thread))
    }

    /// Queues one finished draft; never blocks (a full queue drops the entry and counts it).
    pub fn record(&self, route: &str, req: &ValidDraftRequest, resp: &DraftResponse) {
        self.record_entry(AuditEntry::new(route, req, resp));
    }

    pub fn record_entry(&self, e: AuditEntry) {
        match self.tx.try_send(Msg::Entry(Box::new(e))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(dropped = n, "drafts audit: writer behind, entry dropped");
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Entries dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until everything recorded before is written (blocking).
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

fn purge(db: &DraftsAudit, days: u32, path: &Path) {
    if days == 0 {
        return;
    }
    match db.purge_older_than(days) {
        Ok(n) => tracing::info!(purged = n, days, path = %path.display(), "drafts audit purged"),
        Err(e) => tracing::error!(error = %e, "drafts audit purge failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message: &str) -> AuditEntry {
        AuditEntry {
            route: "/v1/drafts".into(),
            brand: "tunely".into(),
            channel: "twitter".into(),
            model: "m".into(),
            seed: 7,
            mood: "angry".into(),
            request: json!({"message": redact_owned(message)}),
            drafts: json!([{"text": "Sorry!", "score": 80.0, "fallback": false}]),
            best_score: Some(80.0),
            fallback: false,
        }
    }

    #[test]
    fn writes_through_the_thread_redacted_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let (log, thread) = AuditLog::start(&path, 30).unwrap();
        log.record_entry(entry("mail me at jo@example.com, card 4111 1111 1111 1111"));
        log.record_entry(entry("second"));
        log.flush();
        let db = DraftsAudit::open(&path).unwrap();
        assert_eq!(db.count().unwrap(), 2);
        let rows = db.latest(10).unwrap();
        let first = rows[1].0["message"].as_str().unwrap().to_string();
        assert!(!first.contains("jo@example.com") && !first.contains("4111"), "{first}");
        assert!(first.contains("[email]") && first.contains("[card]"), "{first}");
        let (mode, sync): (String, i64) = (
            db.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap(),
            db.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap(),
        );
        assert_eq!((mode.as_str(), sync), ("wal", 2));
        assert_eq!(log.dropped(), 0);
        drop(log);
        thread.join().unwrap();
    }

    #[test]
    fn purge_drops_only_old_rows_and_start_purges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let db = DraftsAudit::open(&path).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        db.insert_at(&entry("old"), Some(now - 40 * 86400)).unwrap();
        db.insert_at(&entry("mid"), Some(now - 10 * 86400)).unwrap();
        db.insert(&entry("new")).unwrap();
        assert_eq!(db.purge_older_than(20).unwrap(), 1);
        assert_eq!(db.count().unwrap(), 2);
        let (log, thread) = AuditLog::start(&path, 5).unwrap();
        assert_eq!(db.count().unwrap(), 1, "start purges by retention_days");
        drop(log);
        thread.join().unwrap();
    }

    #[test]
    fn full_queue_drops_instead_of_blocking() {
        // A log whose writer never runs: a channel nobody reads.
        let (tx, _rx) = sync_channel::<Msg>(1);
        let log = AuditLog { tx, dropped: Arc::new(AtomicU64::new(0)) };
        log.record_entry(entry("a"));
        log.record_entry(entry("b"));
        log.record_entry(entry("c"));
        assert_eq!(log.dropped(), 2);
    }
}
