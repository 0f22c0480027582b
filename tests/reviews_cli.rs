//! `brandvoice reviews import|export|stats` end to end: the real binary, a
//! real SQLite file in a temp dir, and the Wikipedia politeness ratings as a
//! long-format CSV whose agreement is known (alpha 0.424 interval, 0.409 ordinal).

use std::path::Path;
use std::process::Command;

const POLITENESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/politeness/wikipedia.annotated.csv");

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_brandvoice"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run brandvoice");
    assert!(out.status.success(), "failed: {}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Minimal CSV field splitter for the test's own derivation (handles quotes).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// Derives a long-format CSV (request id, rater id, score) from the wide
/// politeness file: 5 rows per request. Requests contain no newlines, so a
/// line-based split suffices here.
fn politeness_long(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(POLITENESS).unwrap();
    let mut lines = text.lines();
    let header = split_csv_line(lines.next().unwrap());
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut out = String::from("request,worker,politeness\n");
    let mut n = 0;
    for l in lines {
        let f = split_csv_line(l);
        assert_eq!(f.len(), header.len(), "{l}");
        for k in 1..=5 {
            out += &format!("{},{},{}\n", f[at("Id")], f[at(&format!("TurkId{k}"))], f[at(&format!("Score{k}"))]);
            n += 1;
        }
    }
    assert_eq!(n, 4353 * 5);
    let path = dir.join("politeness-long.csv");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn stats_from_csv_reproduces_the_politeness_alphas() {
    let dir = tempfile::tempdir().unwrap();
    let csv = politeness_long(dir.path());
    let out = run_ok(bin().args(["reviews", "stats", "--from-csv"]).arg(&csv).args([
        "--unit",
        "request",
        "--rater",
        "worker",
        "--score",
        "politeness",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["units"], 4353);
    assert_eq!(v["raters"], 219);
    assert_eq!(v["ratings"], 21765);
    let interval = v["alpha_interval"]["value"].as_f64().unwrap();
    let ordinal = v["alpha_ordinal"]["value"].as_f64().unwrap();
    assert!((interval - 0.424).abs() < 0.0005, "interval alpha {interval}");
    assert!((ordinal - 0.409).abs() < 0.0005, "ordinal alpha {ordinal}");
    // Crowd raters: no unit was rated by every rater, so the two-way ICC is
    // undefined and says why; the one-way ICC is there.
    assert!(v["icc"]["two_way_undefined"].as_str().unwrap().contains("rated by all 219 raters"));
    assert!(v["icc"]["one_way"]["icc1_k"].as_f64().unwrap() > 0.5);
    assert!(v["kappa"]["pairs"].as_u64().unwrap() > 100);

    // Text output carries the same numbers.
    let text = run_ok(bin().args(["reviews", "stats", "--from-csv"]).arg(&csv).args(["--unit", "request", "--rater", "worker", "--score", "politeness"]));
    assert!(text.contains("interval 0.424"), "{text}");
    assert!(text.contains("ordinal  0.409"), "{text}");
}

#[test]
fn stats_from_csv_errors_name_the_column_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "u,r,s\na,x,3\na,y,high\n").unwrap();
    let out = bin().args(["reviews", "stats", "--from-csv"]).arg(&path).args(["--unit", "u", "--rater", "r", "--score", "s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: column \"s\" must be a number, got \"high\""), "{err}");
    let out = bin().args(["reviews", "stats", "--from-csv"]).arg(&path).args(["--unit", "unit", "--rater", "r", "--score", "s"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--unit") && err.contains("no column \"unit\" (columns: u, r, s)"), "{err}");
}

#[test]
fn import_export_and_stats_over_a_real_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reviews.sqlite");
    // Three reviewers score six drafts of one run; an automatic score rides along.
    let overall = [[5, 4, 5], [2, 2, 1], [4, 4, 3], [1, 2, 1], [3, 3, 4], [5, 5, 4]];
    let auto = [90.0, 25.0, 70.0, 10.0, 55.0, 90.0];
    let mut csv = String::from("run_id,case_id,draft_id,reviewer_id,created_at,overall,politeness,auto_overall,comment\n");
    for (i, row) in overall.iter().enumerate() {
        for (j, s) in row.iter().enumerate() {
            csv += &format!("run-1,case-{i},d0,rev-{j},2026-03-0{}T10:00:00Z,{s},{},{},\"ok, {s}\"\n", j + 1, (s % 5) + 1, auto[i]);
        }
    }
    let csv_path = dir.path().join("in.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let ab = dir.path().join("ab.jsonl");
    std::fs::write(
        &ab,
        "{\"kind\":\"pairwise\",\"run_a\":\"run-1\",\"run_b\":\"run-0\",\"case_id\":\"case-0\",\"preferred\":\"a\",\"reviewer_id\":\"rev-0\"}\n\
         {\"kind\":\"pairwise\",\"run_a\":\"run-0\",\"run_b\":\"run-1\",\"case_id\":\"case-1\",\"preferred\":\"b\",\"reviewer_id\":\"rev-0\"}\n\
         {\"kind\":\"pairwise\",\"run_a\":\"run-0\",\"run_b\":\"run-1\",\"case_id\":\"case-2\",\"preferred\":\"tie\",\"reviewer_id\":\"rev-1\"}\n",
    )
    .unwrap();
    run_ok(bin().args(["reviews", "import"]).arg(&csv_path).arg(&ab).arg("--db").arg(&db));
    assert!(db.is_file());

    // Importing the same CSV twice fails as a whole, naming the file and line, and writes nothing.
    let out = bin().args(["reviews", "import"]).arg(&csv_path).arg("--db").arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in.csv line 2: a review already exists"));

    let json = run_ok(bin().args(["reviews", "stats", "--format", "json", "--bootstrap", "200", "--seed", "7", "--db"]).arg(&db));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let goals = v["goals"].as_array().unwrap();
    assert_eq!(goals.iter().map(|g| g["goal"].as_str().unwrap()).collect::<Vec<_>>(), ["politeness", "overall"]);
    let o = &goals[1];
    assert_eq!(o["units"], 6);
    assert_eq!(o["raters"], 3);
    // Fully crossed: the two-way ICC is defined, and pairwise kappas are listed.
    let icc2k = o["icc"]["two_way"]["icc2_k"].as_f64().unwrap();
    assert!(icc2k > 0.8 && icc2k < 1.0, "{icc2k}");
    assert_eq!(o["kappa"]["listed"].as_array().unwrap().len(), 3);
    let alpha = o["alpha_interval"]["value"].as_f64().unwrap();
    let ci = &o["alpha_interval"]["ci"];
    assert!(ci["low"].as_f64().unwrap() <= alpha && alpha <= ci["high"].as_f64().unwrap());
    // The automatic score orders the drafts as the reviewers' mean does.
    let rho = o["automatic"]["spearman"]["value"].as_f64().unwrap();
    assert!((rho - 1.0).abs() < 1e-12, "{rho}");
    assert!(o["automatic"]["human_ceiling_spearman"]["value"].as_f64().unwrap() < 1.0);
    // Blind A/B: run-0 vs run-1, run-1 won twice (once as A, once as B), one tie.
    let p = &v["pairwise"][0];
    assert_eq!((p["run_x"].as_str().unwrap(), p["x_wins"].as_u64().unwrap(), p["y_wins"].as_u64().unwrap(), p["ties"].as_u64().unwrap()), ("run-0", 0, 2, 1));

    // Same seed, same intervals.
    let again = run_ok(bin().args(["reviews", "stats", "--format", "json", "--bootstrap", "200", "--seed", "7", "--db"]).arg(&db));
    assert_eq!(json, again);

    // Export JSONL and CSV, import into a fresh store, same statistics.
    let jsonl = run_ok(bin().args(["reviews", "export", "--format", "jsonl", "--db"]).arg(&db));
    assert_eq!(jsonl.lines().count(), 18 + 3);
    let exported = dir.path().join("out.jsonl");
    std::fs::write(&exported, &jsonl).unwrap();
    let db2 = dir.path().join("copy.sqlite");
    run_ok(bin().args(["reviews", "import"]).arg(&exported).arg("--db").arg(&db2));
    let copy = run_ok(bin().args(["reviews", "stats", "--format", "json", "--bootstrap", "200", "--seed", "7", "--db"]).arg(&db2));
    assert_eq!(json, copy);
    let csv_out = dir.path().join("out.csv");
    run_ok(bin().args(["reviews", "export", "--format", "csv", "--run", "run-1", "--out"]).arg(&csv_out).arg("--db").arg(&db));
    let text = std::fs::read_to_string(&csv_out).unwrap();
    assert!(text.starts_with("id,run_id,case_id,draft_id,draft_text,reviewer_id,created_at,voice,"));
    assert_eq!(text.lines().count(), 19);
    assert!(text.contains("\"ok, 5\""));

    let human = run_ok(bin().args(["reviews", "stats", "--goal", "overall", "--db"]).arg(&db));
    assert!(human.contains("== overall ==") && human.contains("ICC(2,k)") && human.contains("run-0 vs run-1: 0 / 2 wins, 1 ties"), "{human}");
}

/// `politeness train` reproduces the committed weights (closed-form ridge,
/// seeded folds), and `politeness TEXT` scores with them.
#[test]
fn politeness_train_reproduces_the_committed_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("politeness.json");
    let report = run_ok(bin().args(["politeness", "train", "--out"]).arg(&out));
    let cv: serde_json::Value = serde_json::from_str(&report).unwrap();
    let rho = cv["spearman_pooled"].as_f64().unwrap();
    assert!(rho > 0.506, "below the ConvoKit strategies + ridge anchor: {rho}");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/score/politeness.json")).unwrap()).unwrap();
    let fresh: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(fresh["strategies"], committed["strategies"]);
    assert_eq!(fresh["cv"], committed["cv"]);
    let (a, b) = (fresh["ridge"]["weights"].as_array().unwrap(), committed["ridge"]["weights"].as_array().unwrap());
    for (x, y) in a.iter().zip(b) {
        assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-9);
    }

    let polite = run_ok(bin().args(["politeness", "--format", "json", "Hello, thank you for the quick reply! Could you check the date once more?"]));
    let v: serde_json::Value = serde_json::from_str(&polite).unwrap();
    assert!(v["score_0_100"].as_f64().unwrap() > 70.0, "{v}");
    let curt = run_ok(bin().args(["politeness", "Why didn't you answer? Fix it."]));
    let score: f64 = curt.split_whitespace().next().unwrap().parse().unwrap();
    assert!(score < 30.0, "{curt}");
}
