//! Reviewer scores: single reviews (1–5 per goal plus a comment) and blind
//! pairwise A/B preferences between two runs, in SQLite.
//!
//! Shaped around three uses. The HTTP layer adds one review at a time and
//! lists a run's reviews (`add_review`, `add_pairwise`, `list`); the CLI
//! moves reviews in and out of other tools (`export_csv`, `export_jsonl`,
//! `import`, all lossless round trips); the statistics read one goal at a
//! time as a ratings table (`goal_ratings`). Every input goes through one
//! validation step whose errors name the field, the limit and the value, and
//! a reviewer can review a draft (or judge an A/B pair) once: a second
//! attempt is a `Duplicate`, since agreement statistics assume one rating per
//! reviewer and unit. Scores are columns rather than a JSON blob so SQL and
//! CSV see them directly; a goal a reviewer skipped is NULL.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::eval::csv;
use crate::eval::stats::Ratings;

/// The goals a reviewer scores, in column order.
pub const GOALS: [&str; 7] = ["voice", "mood_fit", "channel_fit", "rules", "readability", "politeness", "overall"];

/// Longest id (run, case, draft, reviewer), in characters.
pub const MAX_ID_CHARS: usize = 200;
/// Longest `draft_text`, in characters.
pub const MAX_DRAFT_CHARS: usize = 20_000;
/// Longest `comment`, in characters.
pub const MAX_COMMENT_CHARS: usize = 5_000;

/// Scores 1–5 per goal; a goal left out was not scored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood_fit: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_fit: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readability: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub politeness: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<u8>,
}

impl Scores {
    pub fn get(&self, goal: &str) -> Option<u8> {
        self.as_array()[GOALS.iter().position(|g| *g == goal)?]
    }
    fn as_array(&self) -> [Option<u8>; 7] {
        [self.voice, self.mood_fit, self.channel_fit, self.rules, self.readability, self.politeness, self.overall]
    }
    fn from_array(a: [Option<u8>; 7]) -> Self {
        Self { voice: a[0], mood_fit: a[1], channel_fit: a[2], rules: a[3], readability: a[4], politeness: a[5], overall: a[6] }
    }
}

/// The automatic tone score (0–100 per goal) the draft got, when known, so
/// the statistics can set it against the reviewers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoScores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood_fit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_fit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub politeness: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<f64>,
}

impl AutoScores {
    pub fn get(&self, goal: &str) -> Option<f64> {
        self.as_array()[GOALS.iter().position(|g| *g == goal)?]
    }
    fn as_array(&self) -> [Option<f64>; 7] {
        [self.voice, self.mood_fit, self.channel_fit, self.rules, self.readability, self.politeness, self.overall]
    }
    fn from_array(a: [Option<f64>; 7]) -> Self {
        Self { voice: a[0], mood_fit: a[1], channel_fit: a[2], rules: a[3], readability: a[4], politeness: a[5], overall: a[6] }
    }
    fn is_empty(&self) -> bool {
        self.as_array().iter().all(Option::is_none)
    }
}

/// A review as a reviewer (or an import) submits it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub run_id: String,
    pub case_id: String,
    pub draft_id: String,
    #[serde(default)]
    pub draft_text: String,
    pub reviewer_id: String,
    /// RFC 3339 time; now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    pub scores: Scores,
    #[serde(default, skip_serializing_if = "AutoScores::is_empty")]
    pub auto_scores: AutoScores,
    #[serde(default)]
    pub comment: String,
}

/// A stored review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub id: i64,
    pub run_id: String,
    pub case_id: String,
    pub draft_id: String,
    pub draft_text: String,
    pub reviewer_id: String,
    pub created_at: String,
    pub scores: Scores,
    #[serde(default, skip_serializing_if = "AutoScores::is_empty")]
    pub auto_scores: AutoScores,
    pub comment: String,
}

/// Which side a reviewer preferred in a blind A/B comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Preference {
    A,
    B,
    Tie,
}

impl Preference {
    fn as_str(self) -> &'static str {
        match self {
            Preference::A => "a",
            Preference::B => "b",
            Preference::Tie => "tie",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "a" | "A" => Some(Preference::A),
            "b" | "B" => Some(Preference::B),
            "tie" | "TIE" | "Tie" => Some(Preference::Tie),
            _ => None,
        }
    }
}

/// A blind pairwise judgement as submitted: the reviewer saw two drafts for
/// `case_id` labelled A and B without knowing that A came from `run_a`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPairwise {
    pub run_a: String,
    pub run_b: String,
    pub case_id: String,
    pub preferred: Preference,
    pub reviewer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pairwise {
    pub id: i64,
    pub run_a: String,
    pub run_b: String,
    pub case_id: String,
    pub preferred: Preference,
    pub reviewer_id: String,
    pub created_at: String,
    pub comment: String,
}

/// One JSONL line of an export: reviews and pairwise judgements in one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Review(NewReviewLine),
    Pairwise(NewPairwiseLine),
}

/// An import line: the submitted shape plus an optional id (ignored, so an
/// export imports back into another store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReviewLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    #[serde(flatten)]
    review: NewReviewFields,
}

/// `NewReview` without `deny_unknown_fields` (serde cannot combine it with `flatten`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NewReviewFields {
    run_id: String,
    case_id: String,
    draft_id: String,
    #[serde(default)]
    draft_text: String,
    reviewer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    scores: Scores,
    #[serde(default, skip_serializing_if = "AutoScores::is_empty")]
    auto_scores: AutoScores,
    #[serde(default)]
    comment: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPairwiseLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    run_a: String,
    run_b: String,
    case_id: String,
    preferred: Preference,
    reviewer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(default)]
    comment: String,
}

/// File formats for import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Jsonl,
    /// Reviews CSV (as `export_csv` writes) or pairwise CSV (`export_pairwise_csv`),
    /// told apart by the header.
    Csv,
}

impl ImportFormat {
    /// From a file name's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Skip rows a reviewer already has in the store instead of failing.
    pub skip_existing: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub reviews: usize,
    pub pairwise: usize,
    pub skipped: usize,
}

/// Preference counts for one pair of runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairwiseSummary {
    pub run_x: String,
    pub run_y: String,
    pub x_wins: usize,
    pub y_wins: usize,
    pub ties: usize,
    /// x's share of the decided judgements.
    pub x_win_rate: Option<f64>,
}

// ---------------------------------------------------------------- validation

fn rfc3339() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$")
            .expect("static regex")
    })
}

fn check_id(field: &str, v: &str) -> Result<(), StoreError> {
    let n = v.chars().count();
    if v.trim().is_empty() {
        return Err(StoreError::invalid(field, "a non-empty id", format!("{v:?}")));
    }
    if n > MAX_ID_CHARS {
        return Err(StoreError::invalid(field, format!("at most {MAX_ID_CHARS} characters"), format!("{n} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(StoreError::invalid(field, "free of control characters", format!("{v:?}")));
    }
    Ok(())
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), StoreError> {
    let n = v.chars().count();
    if n > max {
        return Err(StoreError::invalid(field, format!("at most {max} characters"), format!("{n} characters")));
    }
    Ok(())
}

fn check_time(field: &str, v: &Option<String>) -> Result<(), StoreError> {
    match v {
        Some(t) if !rfc3339().is_match(t) => {
            Err(StoreError::invalid(field, "an RFC 3339 time such as 2026-01-31T09:30:00Z", format!("{t:?}")))
        }
        _ => Ok(()),
    }
}

fn validate_review(r: &NewReview) -> Result<(), StoreError> {
    check_id("run_id", &r.run_id)?;
    check_id("case_id", &r.case_id)?;
    check_id("draft_id", &r.draft_id)?;
    check_id("reviewer_id", &r.reviewer_id)?;
    check_text("draft_text", &r.draft_text, MAX_DRAFT_CHARS)?;
    check_text("comment", &r.comment, MAX_COMMENT_CHARS)?;
    check_time("created_at", &r.created_at)?;
    let scores = r.scores.as_array();
    for (goal, s) in GOALS.iter().zip(scores) {
        if let Some(s) = s {
            if !(1..=5).contains(&s) {
                return Err(StoreError::invalid(format!("scores.{goal}"), "an integer from 1 to 5", s));
            }
        }
    }
    if scores.iter().all(Option::is_none) {
        return Err(StoreError::invalid("scores", format!("at least one of {}", GOALS.join(", ")), "none"));
    }
    for (goal, s) in GOALS.iter().zip(r.auto_scores.as_array()) {
        if let Some(s) = s {
            if !(s.is_finite() && (0.0..=100.0).contains(&s)) {
                return Err(StoreError::invalid(format!("auto_scores.{goal}"), "a number from 0 to 100", s));
            }
        }
    }
    Ok(())
}

fn validate_pairwise(p: &NewPairwise) -> Result<(), StoreError> {
    check_id("run_a", &p.run_a)?;
    check_id("run_b", &p.run_b)?;
    check_id("case_id", &p.case_id)?;
    check_id("reviewer_id", &p.reviewer_id)?;
    check_text("comment", &p.comment, MAX_COMMENT_CHARS)?;
    check_time("created_at", &p.created_at)?;
    if p.run_a == p.run_b {
        return Err(StoreError::invalid("run_b", "a different run from run_a", format!("{:?}", p.run_b)));
    }
    Ok(())
}

// ---------------------------------------------------------------- schema

/// Migrations in order; migration i takes the schema from version i to i+1.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE reviews (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL,
    case_id      TEXT NOT NULL,
    draft_id     TEXT NOT NULL,
    draft_text   TEXT NOT NULL DEFAULT '',
    reviewer_id  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    voice        INTEGER CHECK (voice BETWEEN 1 AND 5),
    mood_fit     INTEGER CHECK (mood_fit BETWEEN 1 AND 5),
    channel_fit  INTEGER CHECK (channel_fit BETWEEN 1 AND 5),
    rules        INTEGER CHECK (rules BETWEEN 1 AND 5),
    readability  INTEGER CHECK (readability BETWEEN 1 AND 5),
    politeness   INTEGER CHECK (politeness BETWEEN 1 AND 5),
    overall      INTEGER CHECK (overall BETWEEN 1 AND 5),
    auto_voice        REAL,
    auto_mood_fit     REAL,
    auto_channel_fit  REAL,
    auto_rules        REAL,
    auto_readability  REAL,
    auto_politeness   REAL,
    auto_overall      REAL,
    comment      TEXT NOT NULL DEFAULT '',
    UNIQUE (run_id, case_id, draft_id, reviewer_id)
);
CREATE INDEX reviews_run ON reviews (run_id);
CREATE TABLE pairwise (
    id           INTEGER PRIMARY KEY,
    run_a        TEXT NOT NULL,
    run_b        TEXT NOT NULL,
    case_id      TEXT NOT NULL,
    preferred    TEXT NOT NULL CHECK (preferred IN ('a', 'b', 'tie')),
    reviewer_id  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    comment      TEXT NOT NULL DEFAULT '',
    UNIQUE (run_a, run_b, case_id, reviewer_id)
);
CREATE INDEX pairwise_runs ON pairwise (run_a, run_b);
"#];

/// The reviews store.
pub struct ReviewStore {
    conn: Connection,
}

const REVIEW_COLUMNS: &str = "id, run_id, case_id, draft_id, draft_text, reviewer_id, created_at, \
    voice, mood_fit, channel_fit, rules, readability, politeness, overall, \
    auto_voice, auto_mood_fit, auto_channel_fit, auto_rules, auto_readability, auto_politeness, auto_overall, comment";

impl ReviewStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open { path: path.to_path_buf(), reason: format!("cannot create {}: {e}", dir.display()) })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open { path: path.to_path_buf(), reason: e.to_string() })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open { path: path.to_path_buf(), reason: format!("cannot switch to WAL mode (journal_mode is {mode})") });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Self { conn };
        store.migrate(path)?;
        Ok(store)
    }

    /// The schema version of this build.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    fn migrate(&mut self, path: &Path) -> Result<(), StoreError> {
        let found: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > Self::SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: path.to_path_buf(), found, known: Self::SCHEMA_VERSION });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// `journal_mode` and `synchronous` as SQLite reports them (for tests and `doctor`-style checks).
    pub fn durability(&self) -> Result<(String, i64), StoreError> {
        let mode: String = self.conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let sync: i64 = self.conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        Ok((mode, sync))
    }

    fn now(&self) -> Result<String, StoreError> {
        Ok(self.conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0))?)
    }

    /// Validates and stores one review.
    pub fn add_review(&self, r: &NewReview) -> Result<Review, StoreError> {
        validate_review(r)?;
        insert_review(&self.conn, r, self.now()?)
    }

    /// Validates and stores one blind A/B judgement.
    pub fn add_pairwise(&self, p: &NewPairwise) -> Result<Pairwise, StoreError> {
        validate_pairwise(p)?;
        insert_pairwise(&self.conn, p, self.now()?)
    }

    /// Reviews of one run (all runs with `None`), oldest first.
    pub fn list(&self, run: Option<&str>) -> Result<Vec<Review>, StoreError> {
        let sql = format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE (?1 IS NULL OR run_id = ?1) ORDER BY id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![run], review_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pairwise judgements involving `run` on either side (all with `None`).
    pub fn list_pairwise(&self, run: Option<&str>) -> Result<Vec<Pairwise>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, run_a, run_b, case_id, preferred, reviewer_id, created_at, comment FROM pairwise \
             WHERE (?1 IS NULL OR run_a = ?1 OR run_b = ?1) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![run], pairwise_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes reviews (and pairwise judgements) as JSONL, one `{"kind": ...}` object a line.
    pub fn export_jsonl(&self, run: Option<&str>, out: &mut dyn Write) -> Result<usize, StoreError> {
        let mut n = 0;
        for r in self.list(run)? {
            let mut v = serde_json::to_value(&r)?;
            v.as_object_mut().map(|o| o.insert("kind".into(), "review".into()));
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
            n += 1;
        }
        for p in self.list_pairwise(run)? {
            let mut v = serde_json::to_value(&p)?;
            v.as_object_mut().map(|o| o.insert("kind".into(), "pairwise".into()));
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
            n += 1;
        }
        Ok(n)
    }

    /// Writes reviews as CSV, one row per review, one column per goal score
    /// and per automatic score (empty when absent).
    pub fn export_csv(&self, run: Option<&str>, out: &mut dyn Write) -> Result<usize, StoreError> {
        out.write_all(csv::line(&review_csv_header()).as_bytes())?;
        let reviews = self.list(run)?;
        for r in &reviews {
            let mut f = vec![
                r.id.to_string(),
                r.run_id.clone(),
                r.case_id.clone(),
                r.draft_id.clone(),
                r.draft_text.clone(),
                r.reviewer_id.clone(),
                r.created_at.clone(),
            ];
            f.extend(r.scores.as_array().iter().map(|s| s.map(|s| s.to_string()).unwrap_or_default()));
            f.extend(r.auto_scores.as_array().iter().map(|s| s.map(|s| s.to_string()).unwrap_or_default()));
            f.push(r.comment.clone());
            out.write_all(csv::line(&f).as_bytes())?;
        }
        Ok(reviews.len())
    }

    /// Writes pairwise judgements as CSV.
    pub fn export_pairwise_csv(&self, run: Option<&str>, out: &mut dyn Write) -> Result<usize, StoreError> {
        out.write_all(csv::line(&PAIRWISE_CSV_HEADER).as_bytes())?;
        let rows = self.list_pairwise(run)?;
        for p in &rows {
            let f = [
                p.id.to_string(),
                p.run_a.clone(),
                p.run_b.clone(),
                p.case_id.clone(),
                p.preferred.as_str().to_string(),
                p.reviewer_id.clone(),
                p.created_at.clone(),
                p.comment.clone(),
            ];
            out.write_all(csv::line(&f).as_bytes())?;
        }
        Ok(rows.len())
    }

    /// Imports a JSONL or CSV file's text in one transaction: either every row
    /// goes in or none does, and an error names the source and line. `id`
    /// fields are ignored (the store assigns its own), so an export from one
    /// store imports into another.
    pub fn import(&mut self, source_name: &str, text: &str, format: ImportFormat, opts: ImportOptions) -> Result<ImportSummary, StoreError> {
        let err = |line: usize, e: StoreError| StoreError::Import { source_name: source_name.to_string(), line, message: e.to_string() };
        let now = self.now()?;
        let tx = self.conn.transaction()?;
        let mut sum = ImportSummary::default();
        let put_review = |r: NewReview, line: usize, sum: &mut ImportSummary| -> Result<(), StoreError> {
            validate_review(&r).map_err(|e| err(line, e))?;
            match insert_review(&tx, &r, now.clone()) {
                Ok(_) => sum.reviews += 1,
                Err(StoreError::Duplicate { .. }) if opts.skip_existing => sum.skipped += 1,
                Err(e) => return Err(err(line, e)),
            }
            Ok(())
        };
        let mut pairs = Vec::new();
        match format {
            ImportFormat::Jsonl => {
                for (i, l) in text.lines().enumerate() {
                    let line = i + 1;
                    if l.trim().is_empty() {
                        continue;
                    }
                    let parsed: Line = serde_json::from_str(l)
                        .map_err(|e| StoreError::Import { source_name: source_name.to_string(), line, message: e.to_string() })?;
                    match parsed {
                        Line::Review(r) => {
                            let f = r.review;
                            let nr = NewReview {
                                run_id: f.run_id,
                                case_id: f.case_id,
                                draft_id: f.draft_id,
                                draft_text: f.draft_text,
                                reviewer_id: f.reviewer_id,
                                created_at: f.created_at,
                                scores: f.scores,
                                auto_scores: f.auto_scores,
                                comment: f.comment,
                            };
                            put_review(nr, line, &mut sum)?;
                        }
                        Line::Pairwise(p) => pairs.push((
                            line,
                            NewPairwise {
                                run_a: p.run_a,
                                run_b: p.run_b,
                                case_id: p.case_id,
                                preferred: p.preferred,
                                reviewer_id: p.reviewer_id,
                                created_at: p.created_at,
                                comment: p.comment,
                            },
                        )),
                    }
                }
            }
            ImportFormat::Csv => {
                let table = csv::Table::parse(text).map_err(|e| err(0, StoreError::invalid("csv", "well-formed CSV", e)))?;
                if table.header.iter().any(|h| h == "preferred") {
                    pairs = pairwise_from_csv(&table).map_err(|(line, e)| err(line, e))?;
                } else {
                    for (line, r) in reviews_from_csv(&table).map_err(|(line, e)| err(line, e))? {
                        put_review(r, line, &mut sum)?;
                    }
                }
            }
        }
        for (line, p) in pairs {
            validate_pairwise(&p).map_err(|e| err(line, e))?;
            match insert_pairwise(&tx, &p, now.clone()) {
                Ok(_) => sum.pairwise += 1,
                Err(StoreError::Duplicate { .. }) if opts.skip_existing => sum.skipped += 1,
                Err(e) => return Err(err(line, e)),
            }
        }
        tx.commit()?;
        Ok(sum)
    }

    /// One goal's scores as a ratings table for the agreement statistics:
    /// unit = run/case/draft, rater = reviewer. The second value is the
    /// automatic score per unit (in the table's unit order), when any review
    /// of that unit carried one.
    pub fn goal_ratings(&self, run: Option<&str>, goal: &str) -> Result<(Ratings, Vec<Option<f64>>), StoreError> {
        if !GOALS.contains(&goal) {
            return Err(StoreError::invalid("goal", format!("one of {}", GOALS.join(", ")), goal));
        }
        let mut ratings = Ratings::new();
        let mut auto: BTreeMap<String, f64> = BTreeMap::new();
        for r in self.list(run)? {
            let unit = format!("{}/{}/{}", r.run_id, r.case_id, r.draft_id);
            if let Some(s) = r.scores.get(goal) {
                ratings.add(&unit, &r.reviewer_id, s as f64).map_err(|e| StoreError::invalid("reviews", "one rating per reviewer and draft", e))?;
            }
            if let Some(a) = r.auto_scores.get(goal) {
                auto.insert(unit, a);
            }
        }
        let auto = ratings.unit_ids().iter().map(|u| auto.get(u).copied()).collect();
        Ok((ratings, auto))
    }

    /// Preference counts per pair of runs (the pair named in sorted order).
    pub fn pairwise_summary(&self, run: Option<&str>) -> Result<Vec<PairwiseSummary>, StoreError> {
        let mut by: BTreeMap<(String, String), (usize, usize, usize)> = BTreeMap::new();
        for p in self.list_pairwise(run)? {
            let swap = p.run_a > p.run_b;
            let key = if swap { (p.run_b.clone(), p.run_a.clone()) } else { (p.run_a.clone(), p.run_b.clone()) };
            let e = by.entry(key).or_default();
            match (p.preferred, swap) {
                (Preference::Tie, _) => e.2 += 1,
                (Preference::A, false) | (Preference::B, true) => e.0 += 1,
                _ => e.1 += 1,
            }
        }
        Ok(by
            .into_iter()
            .map(|((x, y), (xw, yw, t))| PairwiseSummary {
                run_x: x,
                run_y: y,
                x_wins: xw,
                y_wins: yw,
                ties: t,
                x_win_rate: (xw + yw > 0).then(|| xw as f64 / (xw + yw) as f64),
            })
            .collect())
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn insert_review(conn: &Connection, r: &NewReview, now: String) -> Result<Review, StoreError> {
    let created_at = r.created_at.clone().unwrap_or(now);
    let s = r.scores.as_array();
    let a = r.auto_scores.as_array();
    let res = conn.execute(
        "INSERT INTO reviews (run_id, case_id, draft_id, draft_text, reviewer_id, created_at, \
         voice, mood_fit, channel_fit, rules, readability, politeness, overall, \
         auto_voice, auto_mood_fit, auto_channel_fit, auto_rules, auto_readability, auto_politeness, auto_overall, comment) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        params![
            r.run_id, r.case_id, r.draft_id, r.draft_text, r.reviewer_id, created_at, s[0], s[1], s[2], s[3], s[4], s[5], s[6], a[0],
            a[1], a[2], a[3], a[4], a[5], a[6], r.comment
        ],
    );
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate {
                what: "a review",
                key: format!("run {:?}, case {:?}, draft {:?} by reviewer {:?}", r.run_id, r.case_id, r.draft_id, r.reviewer_id),
            })
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Review {
        id: conn.last_insert_rowid(),
        run_id: r.run_id.clone(),
        case_id: r.case_id.clone(),
        draft_id: r.draft_id.clone(),
        draft_text: r.draft_text.clone(),
        reviewer_id: r.reviewer_id.clone(),
        created_at,
        scores: r.scores.clone(),
        auto_scores: r.auto_scores.clone(),
        comment: r.comment.clone(),
    })
}

fn insert_pairwise(conn: &Connection, p: &NewPairwise, now: String) -> Result<Pairwise, StoreError> {
    let created_at = p.created_at.clone().unwrap_or(now);
    let res = conn.execute(
        "INSERT INTO pairwise (run_a, run_b, case_id, preferred, reviewer_id, created_at, comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![p.run_a, p.run_b, p.case_id, p.preferred.as_str(), p.reviewer_id, created_at, p.comment],
    );
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate {
                what: "a pairwise judgement",
                key: format!("runs {:?} vs {:?}, case {:?} by reviewer {:?}", p.run_a, p.run_b, p.case_id, p.reviewer_id),
            })
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Pairwise {
        id: conn.last_insert_rowid(),
        run_a: p.run_a.clone(),
        run_b: p.run_b.clone(),
        case_id: p.case_id.clone(),
        preferred: p.preferred,
        reviewer_id: p.reviewer_id.clone(),
        created_at,
        comment: p.comment.clone(),
    })
}

fn review_from_row(row: &Row) -> rusqlite::Result<Review> {
    let mut s = [None; 7];
    let mut a = [None; 7];
    for i in 0..7 {
        s[i] = row.get::<_, Option<u8>>(7 + i)?;
        a[i] = row.get::<_, Option<f64>>(14 + i)?;
    }
    Ok(Review {
        id: row.get(0)?,
        run_id: row.get(1)?,
        case_id: row.get(2)?,
        draft_id: row.get(3)?,
        draft_text: row.get(4)?,
        reviewer_id: row.get(5)?,
        created_at: row.get(6)?,
        scores: Scores::from_array(s),
        auto_scores: AutoScores::from_array(a),
        comment: row.get(21)?,
    })
}

fn pairwise_from_row(row: &Row) -> rusqlite::Result<Pairwise> {
    let pref: String = row.get(4)?;
    Ok(Pairwise {
        id: row.get(0)?,
        run_a: row.get(1)?,
        run_b: row.get(2)?,
        case_id: row.get(3)?,
        preferred: Preference::parse(&pref).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, format!("bad preference {pref:?}").into())
        })?,
        reviewer_id: row.get(5)?,
        created_at: row.get(6)?,
        comment: row.get(7)?,
    })
}

fn review_csv_header() -> Vec<String> {
    let mut h: Vec<String> =
        ["id", "run_id", "case_id", "draft_id", "draft_text", "reviewer_id", "created_at"].iter().map(|s| s.to_string()).collect();
    h.extend(GOALS.iter().map(|g| g.to_string()));
    h.extend(GOALS.iter().map(|g| format!("auto_{g}")));
    h.push("comment".into());
    h
}

const PAIRWISE_CSV_HEADER: [&str; 8] = ["id", "run_a", "run_b", "case_id", "preferred", "reviewer_id", "created_at", "comment"];

type LineError = (usize, StoreError);

/// Reviews from CSV: required columns run_id, case_id, draft_id, reviewer_id;
/// any of the goal columns, auto_<goal> columns, draft_text, created_at,
/// comment, id optional. Unknown columns are an error (a typo would
/// otherwise silently drop a goal).
fn reviews_from_csv(t: &csv::Table) -> Result<Vec<(usize, NewReview)>, LineError> {
    let known = review_csv_header();
    if let Some(h) = t.header.iter().find(|h| !known.contains(h)) {
        return Err((1, StoreError::invalid("CSV column", format!("one of {}", known.join(", ")), format!("{h:?}"))));
    }
    let col = |name: &str| t.column(name).map_err(|e| (1, StoreError::invalid("CSV header", "to have the column", e)));
    let (run, case, draft, reviewer) = (col("run_id")?, col("case_id")?, col("draft_id")?, col("reviewer_id")?);
    let opt = |name: &str| t.column(name).ok();
    let (text, created, comment) = (opt("draft_text"), opt("created_at"), opt("comment"));
    let goal_cols: Vec<Option<usize>> = GOALS.iter().map(|g| opt(g)).collect();
    let auto_cols: Vec<Option<usize>> = GOALS.iter().map(|g| opt(&format!("auto_{g}"))).collect();
    let mut out = Vec::new();
    for row in &t.rows {
        let f = &row.fields;
        let get = |c: Option<usize>| c.map(|c| f[c].clone()).unwrap_or_default();
        let mut s = [None; 7];
        let mut a = [None; 7];
        for (i, g) in GOALS.iter().enumerate() {
            let v = get(goal_cols[i]);
            if !v.trim().is_empty() {
                s[i] = Some(v.trim().parse::<u8>().map_err(|_| (row.line, StoreError::invalid(*g, "an integer from 1 to 5", format!("{v:?}"))))?);
            }
            let v = get(auto_cols[i]);
            if !v.trim().is_empty() {
                a[i] = Some(
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| (row.line, StoreError::invalid(format!("auto_{g}"), "a number from 0 to 100", format!("{v:?}"))))?,
                );
            }
        }
        let created_at = get(created);
        out.push((
            row.line,
            NewReview {
                run_id: f[run].clone(),
                case_id: f[case].clone(),
                draft_id: f[draft].clone(),
                draft_text: get(text),
                reviewer_id: f[reviewer].clone(),
                created_at: (!created_at.is_empty()).then_some(created_at),
                scores: Scores::from_array(s),
                auto_scores: AutoScores::from_array(a),
                comment: get(comment),
            },
        ));
    }
    Ok(out)
}

fn pairwise_from_csv(t: &csv::Table) -> Result<Vec<(usize, NewPairwise)>, LineError> {
    if let Some(h) = t.header.iter().find(|h| !PAIRWISE_CSV_HEADER.contains(&h.as_str())) {
        return Err((1, StoreError::invalid("CSV column", format!("one of {}", PAIRWISE_CSV_HEADER.join(", ")), format!("{h:?}"))));
    }
    let col = |name: &str| t.column(name).map_err(|e| (1, StoreError::invalid("CSV header", "to have the column", e)));
    let (a, b, case, pref, reviewer) = (col("run_a")?, col("run_b")?, col("case_id")?, col("preferred")?, col("reviewer_id")?);
    let (created, comment) = (t.column("created_at").ok(), t.column("comment").ok());
    let mut out = Vec::new();
    for row in &t.rows {
        let f = &row.fields;
        let preferred = Preference::parse(f[pref].trim())
            .ok_or_else(|| (row.line, StoreError::invalid("preferred", "one of a, b, tie", format!("{:?}", f[pref]))))?;
        let created_at = created.map(|c| f[c].clone()).unwrap_or_default();
        out.push((
            row.line,
            NewPairwise {
                run_a: f[a].clone(),
                run_b: f[b].clone(),
                case_id: f[case].clone(),
                preferred,
                reviewer_id: f[reviewer].clone(),
                created_at: (!created_at.is_empty()).then_some(created_at),
                comment: comment.map(|c| f[c].clone()).unwrap_or_default(),
            },
        ));
    }
    Ok(out)
}

/// Lets callers look a review up by id (the HTTP layer's `GET` of one review).
impl ReviewStore {
    pub fn get(&self, id: i64) -> Result<Option<Review>, StoreError> {
        let sql = format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = ?1");
        Ok(self.conn.query_row(&sql, params![id], review_from_row).optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(run: &str, case: &str, reviewer: &str, overall: u8) -> NewReview {
        NewReview {
            run_id: run.into(),
            case_id: case.into(),
            draft_id: "d1".into(),
            draft_text: "Thanks, we're on it.".into(),
            reviewer_id: reviewer.into(),
            scores: Scores { overall: Some(overall), voice: Some(4), ..Default::default() },
            ..Default::default()
        }
    }

    fn temp_store() -> (tempfile::TempDir, ReviewStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ReviewStore::open(dir.path().join("sub/reviews.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn opens_in_wal_with_full_sync_and_migrates_once() {
        let (dir, store) = temp_store();
        assert_eq!(store.durability().unwrap(), ("wal".to_string(), 2));
        assert_eq!(store.schema_version().unwrap(), ReviewStore::SCHEMA_VERSION);
        store.add_review(&review("r1", "c1", "ann", 4)).unwrap();
        drop(store);
        // Reopening keeps the data and does not re-run migrations.
        let store = ReviewStore::open(dir.path().join("sub/reviews.sqlite")).unwrap();
        assert_eq!(store.list(None).unwrap().len(), 1);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        let e = ReviewStore::open(&path).err().unwrap();
        assert!(e.to_string().contains("schema version 99, newer than this build knows (1)"), "{e}");
    }

    #[test]
    fn validation_names_field_limit_and_value() {
        let (_d, store) = temp_store();
        let mut r = review("r1", "c1", "ann", 6);
        assert_eq!(store.add_review(&r).unwrap_err().to_string(), "scores.overall: must be an integer from 1 to 5, got 6");
        r.scores = Scores::default();
        assert!(store.add_review(&r).unwrap_err().to_string().starts_with("scores: must be at least one of voice"));
        r = review("", "c1", "ann", 3);
        assert_eq!(store.add_review(&r).unwrap_err().to_string(), "run_id: must be a non-empty id, got \"\"");
        r = review("r1", "c1", "ann", 3);
        r.created_at = Some("yesterday".into());
        assert!(store.add_review(&r).unwrap_err().to_string().contains("created_at: must be an RFC 3339 time"));
        r.created_at = None;
        r.auto_scores.overall = Some(101.0);
        assert_eq!(store.add_review(&r).unwrap_err().to_string(), "auto_scores.overall: must be a number from 0 to 100, got 101");
        r.auto_scores.overall = None;
        r.comment = "x".repeat(MAX_COMMENT_CHARS + 1);
        assert_eq!(store.add_review(&r).unwrap_err().to_string(), "comment: must be at most 5000 characters, got 5001 characters");
        let p = NewPairwise {
            run_a: "r1".into(),
            run_b: "r1".into(),
            case_id: "c".into(),
            preferred: Preference::A,
            reviewer_id: "ann".into(),
            created_at: None,
            comment: String::new(),
        };
        assert_eq!(store.add_pairwise(&p).unwrap_err().to_string(), "run_b: must be a different run from run_a, got \"r1\"");
    }

    #[test]
    fn duplicate_reviews_are_conflicts() {
        let (_d, store) = temp_store();
        let stored = store.add_review(&review("r1", "c1", "ann", 4)).unwrap();
        assert!(stored.created_at.ends_with('Z') && rfc3339().is_match(&stored.created_at), "{}", stored.created_at);
        assert_eq!(store.get(stored.id).unwrap().unwrap(), stored);
        let e = store.add_review(&review("r1", "c1", "ann", 2)).unwrap_err();
        assert!(matches!(e, StoreError::Duplicate { .. }), "{e}");
        assert!(e.to_string().contains("reviewer \"ann\""));
    }

    #[test]
    fn jsonl_and_csv_round_trip_into_a_fresh_store() {
        let (_d, store) = temp_store();
        let mut r = review("r1", "c1", "ann", 4);
        r.draft_text = "Line one,\n\"quoted\" line two".into();
        r.comment = "fine, mostly".into();
        r.auto_scores.overall = Some(72.5);
        r.created_at = Some("2026-01-02T03:04:05Z".into());
        store.add_review(&r).unwrap();
        store.add_review(&review("r1", "c1", "bob", 3)).unwrap();
        store
            .add_pairwise(&NewPairwise {
                run_a: "r1".into(),
                run_b: "r2".into(),
                case_id: "c1".into(),
                preferred: Preference::B,
                reviewer_id: "ann".into(),
                created_at: None,
                comment: "B is warmer".into(),
            })
            .unwrap();
        let strip = |v: Vec<Review>| v.into_iter().map(|mut r| { r.id = 0; r }).collect::<Vec<_>>();

        let mut jsonl = Vec::new();
        assert_eq!(store.export_jsonl(None, &mut jsonl).unwrap(), 3);
        let (_d2, mut other) = temp_store();
        let s = other.import("x.jsonl", std::str::from_utf8(&jsonl).unwrap(), ImportFormat::Jsonl, ImportOptions::default()).unwrap();
        assert_eq!(s, ImportSummary { reviews: 2, pairwise: 1, skipped: 0 });
        assert_eq!(strip(other.list(None).unwrap()), strip(store.list(None).unwrap()));
        assert_eq!(other.list_pairwise(Some("r2")).unwrap()[0].comment, "B is warmer");

        let mut csv_out = Vec::new();
        store.export_csv(Some("r1"), &mut csv_out).unwrap();
        let (_d3, mut third) = temp_store();
        third.import("x.csv", std::str::from_utf8(&csv_out).unwrap(), ImportFormat::Csv, ImportOptions::default()).unwrap();
        assert_eq!(strip(third.list(None).unwrap()), strip(store.list(None).unwrap()));
        let mut pcsv = Vec::new();
        store.export_pairwise_csv(None, &mut pcsv).unwrap();
        third.import("p.csv", std::str::from_utf8(&pcsv).unwrap(), ImportFormat::Csv, ImportOptions::default()).unwrap();
        assert_eq!(third.pairwise_summary(None).unwrap()[0].y_wins, 1);

        // Importing the same file again: a conflict naming the line, nothing written;
        // with skip_existing, everything skipped.
        let text = std::str::from_utf8(&jsonl).unwrap();
        let e = other.import("x.jsonl", text, ImportFormat::Jsonl, ImportOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("x.jsonl line 1: a review already exists"), "{e}");
        let s = other.import("x.jsonl", text, ImportFormat::Jsonl, ImportOptions { skip_existing: true }).unwrap();
        assert_eq!(s, ImportSummary { reviews: 0, pairwise: 0, skipped: 3 });
    }

    #[test]
    fn import_is_all_or_nothing_and_names_the_line() {
        let (_d, mut store) = temp_store();
        let text = "{\"kind\":\"review\",\"run_id\":\"r\",\"case_id\":\"c\",\"draft_id\":\"d\",\"reviewer_id\":\"a\",\"scores\":{\"overall\":3}}\n\
                    {\"kind\":\"review\",\"run_id\":\"r\",\"case_id\":\"c\",\"draft_id\":\"d\",\"reviewer_id\":\"b\",\"scores\":{\"overal\":3}}\n";
        let e = store.import("in.jsonl", text, ImportFormat::Jsonl, ImportOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("in.jsonl line 2: unknown field `overal`"), "{e}");
        assert!(store.list(None).unwrap().is_empty());
        let csv_text = "run_id,case_id,draft_id,reviewer_id,overall\nr,c,d,a,3\nr,c,d,b,9\n";
        let e = store.import("in.csv", csv_text, ImportFormat::Csv, ImportOptions::default()).unwrap_err();
        assert_eq!(e.to_string(), "in.csv line 3: scores.overall: must be an integer from 1 to 5, got 9");
        let e = store.import("in.csv", "run_id,case_id,draft_id,reviewer_id,overal\n", ImportFormat::Csv, ImportOptions::default()).unwrap_err();
        assert!(e.to_string().contains("CSV column: must be one of id, run_id"), "{e}");
        assert!(store.list(None).unwrap().is_empty());
    }

    #[test]
    fn goal_ratings_build_the_agreement_table() {
        let (_d, store) = temp_store();
        for (case, reviewer, overall) in [("c1", "ann", 4), ("c1", "bob", 5), ("c2", "ann", 2), ("c2", "bob", 2)] {
            let mut r = review("r1", case, reviewer, overall);
            r.auto_scores.overall = Some(if case == "c1" { 80.0 } else { 30.0 });
            store.add_review(&r).unwrap();
        }
        let (ratings, auto) = store.goal_ratings(Some("r1"), "overall").unwrap();
        assert_eq!((ratings.unit_count(), ratings.rater_count(), ratings.rating_count()), (2, 2, 4));
        assert_eq!(auto, vec![Some(80.0), Some(30.0)]);
        let (politeness, _) = store.goal_ratings(None, "politeness").unwrap();
        assert_eq!(politeness.rating_count(), 0);
        assert!(store.goal_ratings(None, "tone").unwrap_err().to_string().starts_with("goal: must be one of voice"));
    }
}
