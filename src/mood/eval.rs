//! Measuring the detector on TweetEval-layout data, and the metrics.
//!
//! TweetEval ships each task as `TASK/{split}_text.txt` + `TASK/{split}_labels.txt`
//! (one item per line, labels as integers) and `TASK/mapping.txt` (`id<TAB>name`).
//! The official metrics are macro-recall for sentiment and macro-F1 for emotion;
//! we print both plus accuracy for every task so nothing is cherry-picked.
//! Loading checks every line and names the file and line of a bad one.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Bad { path: PathBuf, line: usize, reason: String },
    #[error("{text} has {texts} lines but {labels} has {labels_n}: they must match")]
    Mismatch { text: PathBuf, texts: usize, labels: PathBuf, labels_n: usize },
    #[error("{dir}: no task found (expected sentiment/ or emotion/ with {split}_text.txt, {split}_labels.txt and mapping.txt)")]
    NoTask { dir: PathBuf, split: String },
}

/// One labelled task split.
#[derive(Debug, Clone)]
pub struct TaskData {
    pub task: String,
    pub labels: Vec<String>,
    pub texts: Vec<String>,
    pub gold: Vec<usize>,
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| EvalError::Read { path: path.to_path_buf(), reason: e.to_string() })
}

/// Reads `DIR/TASK/mapping.txt` into label names ordered by id.
pub fn read_mapping(path: &Path) -> Result<Vec<String>, EvalError> {
    let text = read(path)?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split('\t');
        let (Some(id), Some(name)) = (it.next(), it.next()) else {
            return Err(EvalError::Bad { path: path.into(), line: i + 1, reason: format!("expected `id<TAB>name`, got {line:?}") });
        };
        let id: usize = id.trim().parse().map_err(|_| EvalError::Bad {
            path: path.into(),
            line: i + 1,
            reason: format!("label id {id:?} is not a number"),
        })?;
        pairs.push((id, name.trim().to_string()));
    }
    pairs.sort();
    for (i, (id, _)) in pairs.iter().enumerate() {
        if *id != i {
            return Err(EvalError::Bad { path: path.into(), line: i + 1, reason: format!("label ids must be 0..n without gaps; found {id} at position {i}") });
        }
    }
    Ok(pairs.into_iter().map(|(_, n)| n).collect())
}

/// Loads `DIR/TASK/{split}_text.txt` and `_labels.txt` with `mapping.txt`.
pub fn load_task(dir: &Path, task: &str, split: &str) -> Result<TaskData, EvalError> {
    let tdir = dir.join(task);
    let labels = read_mapping(&tdir.join("mapping.txt"))?;
    let text_path = tdir.join(format!("{split}_text.txt"));
    let label_path = tdir.join(format!("{split}_labels.txt"));
    let texts: Vec<String> = read(&text_path)?.lines().map(|l| l.to_string()).collect();
    let mut gold = Vec::new();
    for (i, line) in read(&label_path)?.lines().enumerate() {
        let v: usize = line.trim().parse().map_err(|_| EvalError::Bad {
            path: label_path.clone(),
            line: i + 1,
            reason: format!("label {line:?} is not a number"),
        })?;
        if v >= labels.len() {
            return Err(EvalError::Bad {
                path: label_path.clone(),
                line: i + 1,
                reason: format!("label {v} is out of range (mapping.txt has {} labels)", labels.len()),
            });
        }
        gold.push(v);
    }
    if texts.len() != gold.len() {
        return Err(EvalError::Mismatch { text: text_path, texts: texts.len(), labels: label_path, labels_n: gold.len() });
    }
    Ok(TaskData { task: task.to_string(), labels, texts, gold })
}

/// Which of `sentiment` / `emotion` exist in `dir` for `split`.
pub fn available_tasks(dir: &Path, split: &str) -> Vec<&'static str> {
    ["sentiment", "emotion"]
        .into_iter()
        .filter(|t| dir.join(t).join(format!("{split}_text.txt")).is_file())
        .collect()
}

/// Classification metrics over `k` classes.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f32,
    pub macro_recall: f32,
    pub macro_f1: f32,
    pub per_class: Vec<ClassMetrics>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassMetrics {
    pub label: String,
    pub support: usize,
    pub precision: f32,
    pub recall: f32,
    pub f1: f32,
}

impl Metrics {
    /// Metrics with classes named by index.
    pub fn compute(k: usize, gold: &[usize], pred: &[usize]) -> Metrics {
        let names: Vec<String> = (0..k).map(|i| i.to_string()).collect();
        Self::compute_named(&names, gold, pred)
    }

    pub fn compute_named(labels: &[String], gold: &[usize], pred: &[usize]) -> Metrics {
        let k = labels.len();
        let mut tp = vec![0usize; k];
        let mut gold_n = vec![0usize; k];
        let mut pred_n = vec![0usize; k];
        for (&g, &p) in gold.iter().zip(pred) {
            gold_n[g] += 1;
            pred_n[p] += 1;
            if g == p {
                tp[g] += 1;
            }
        }
        let div = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let precision = div(tp[c], pred_n[c]);
                let recall = div(tp[c], gold_n[c]);
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                ClassMetrics { label: labels[c].clone(), support: gold_n[c], precision, recall, f1 }
            })
            .collect();
        let kf = k.max(1) as f32;
        Metrics {
            n: gold.len(),
            accuracy: div(tp.iter().sum(), gold.len()),
            macro_recall: per_class.iter().map(|c| c.recall).sum::<f32>() / kf,
            macro_f1: per_class.iter().map(|c| c.f1).sum::<f32>() / kf,
            per_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        // gold: a a b b ; pred: a b b b
        let m = Metrics::compute(2, &[0, 0, 1, 1], &[0, 1, 1, 1]);
        assert!((m.accuracy - 0.75).abs() < 1e-6);
        assert!((m.macro_recall - 0.75).abs() < 1e-6); // (0.5 + 1.0) / 2
        // f1(a) = 2*1*0.5/1.5 = 0.6667; f1(b) = 2*(2/3)*1/(5/3) = 0.8
        assert!((m.macro_f1 - (0.666_666_7 + 0.8) / 2.0).abs() < 1e-5, "{}", m.macro_f1);
    }

    #[test]
    fn loader_names_bad_lines() {
        let d = tempfile::tempdir().expect("tempdir");
        let t = d.path().join("sentiment");
        std::fs::create_dir_all(&t).expect("mkdir");
        std::fs::write(t.join("mapping.txt"), "0\tnegative\n1\tneutral\n2\tpositive\n").expect("write");
        std::fs::write(t.join("test_text.txt"), "a\nb\n").expect("write");
        std::fs::write(t.join("test_labels.txt"), "0\nx\n").expect("write");
        let e = load_task(d.path(), "sentiment", "test").err().expect("must fail").to_string();
        assert!(e.contains("test_labels.txt:2") && e.contains("\"x\""), "{e}");
        std::fs::write(t.join("test_labels.txt"), "0\n7\n").expect("write");
        let e = load_task(d.path(), "sentiment", "test").err().expect("must fail").to_string();
        assert!(e.contains("out of range"), "{e}");
        std::fs::write(t.join("test_labels.txt"), "0\n").expect("write");
        let e = load_task(d.path(), "sentiment", "test").err().expect("must fail").to_string();
        assert!(e.contains("must match"), "{e}");
        std::fs::write(t.join("test_labels.txt"), "0\n2\n").expect("write");
        let ok = load_task(d.path(), "sentiment", "test").expect("loads");
        assert_eq!(ok.gold, [0, 2]);
        assert_eq!(ok.labels, ["negative", "neutral", "positive"]);
    }
}

/// One labelled message of the multilingual mood set (`eval/mood/LANG.jsonl`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoodItem {
    pub text: String,
    pub mood: String,
}

/// Loads every `LANG.jsonl` in `dir` (LANG = ISO 639-1 code), sorted by language.
pub fn load_mood_set(dir: &Path) -> Result<Vec<(String, Vec<MoodItem>)>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::Read { path: dir.into(), reason: e.to_string() })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EvalError::Read { path: dir.into(), reason: "no LANG.jsonl files".into() });
    }
    let mut out = Vec::new();
    for f in files {
        let lang = f.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let mut items = Vec::new();
        for (i, line) in read(&f)?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let item: MoodItem = serde_json::from_str(line)
                .map_err(|e| EvalError::Bad { path: f.clone(), line: i + 1, reason: e.to_string() })?;
            if !super::MOODS.contains(&item.mood.as_str()) {
                return Err(EvalError::Bad {
                    path: f.clone(),
                    line: i + 1,
                    reason: format!("mood {:?} is not one of {}", item.mood, super::MOODS.join(", ")),
                });
            }
            items.push(item);
        }
        out.push((lang, items));
    }
    Ok(out)
}

/// Per-language results on the mood set.
#[derive(Debug, Clone, Serialize)]
pub struct MoodSetScore {
    pub language: String,
    pub n: usize,
    pub accuracy: f32,
    pub macro_f1: f32,
    /// Share of messages whose detected language equals the file's.
    pub language_accuracy: f32,
    pub per_class: Vec<ClassMetrics>,
    /// (gold, predicted, text) of each miss.
    pub misses: Vec<(String, String, String)>,
}

/// Scores the detector on the mood set.
pub fn score_mood_set(
    det: &super::MoodDetector,
    set: &[(String, Vec<MoodItem>)],
) -> Result<Vec<MoodSetScore>, super::MoodError> {
    let labels: Vec<String> = super::MOODS.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    for (lang, items) in set {
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let reports = det.analyze_batch(&texts)?;
        let idx = |m: &str| labels.iter().position(|l| l == m).unwrap_or(0);
        let gold: Vec<usize> = items.iter().map(|i| idx(&i.mood)).collect();
        let pred: Vec<usize> = reports.iter().map(|r| idx(&r.mood)).collect();
        let m = Metrics::compute_named(&labels, &gold, &pred);
        let lang_ok = reports.iter().filter(|r| &r.language.code == lang).count();
        let misses = items
            .iter()
            .zip(&reports)
            .filter(|(i, r)| i.mood != r.mood)
            .map(|(i, r)| (i.mood.clone(), r.mood.clone(), i.text.clone()))
            .collect();
        out.push(MoodSetScore {
            language: lang.clone(),
            n: items.len(),
            accuracy: m.accuracy,
            macro_f1: m.macro_f1,
            language_accuracy: lang_ok as f32 / items.len().max(1) as f32,
            per_class: m.per_class,
            misses,
        });
    }
    Ok(out)
}
