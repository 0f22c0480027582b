//! The `mood` and `triage` commands end to end, with the real embedding model.

use std::path::Path;
use std::process::{Command, Output};

fn bv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brandvoice")).args(args).output().expect("run brandvoice")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn mood_json() {
    let o = bv(&["mood", "--format", "json", "I've been waiting two weeks for my refund and nobody replies!!"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert!(["frustrated", "angry"].contains(&v["mood"].as_str().unwrap_or("")), "{v}");
    assert_eq!(v["polarity"], "negative", "{v}");
    assert_eq!(v["language"]["code"], "en");
    assert_eq!(v["moods"].as_array().map(|a| a.len()), Some(7));
    assert_eq!(v["needs_reply"], true);
}

#[test]
fn mood_text_and_errors() {
    let o = bv(&["mood", "ありがとうございました！"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("mood:       grateful") && s.contains("language:   ja"), "{s}");
    let o = bv(&["mood", "   "]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("text is empty"), "{}", stderr(&o));
    let long = "a".repeat(20_001);
    let o = bv(&["mood", &long]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("20001") && stderr(&o).contains("20000"), "{}", stderr(&o));
}

/// A small fixture in TweetEval's layout: clear cases, so a working detector must score well.
fn write_fixture(dir: &Path) {
    let s = dir.join("sentiment");
    let e = dir.join("emotion");
    std::fs::create_dir_all(&s).expect("mkdir");
    std::fs::create_dir_all(&e).expect("mkdir");
    std::fs::write(s.join("mapping.txt"), "0\tnegative\n1\tneutral\n2\tpositive\n").expect("write");
    let sent = [
        ("This is the worst phone I have ever owned, it broke in a week", 0),
        ("Terrible customer service, I hate this company", 0),
        ("So disappointed with the show tonight, what a waste of money", 0),
        ("My flight got cancelled again, awful day", 0),
        ("The meeting is scheduled for 3pm on Tuesday", 1),
        ("The new iPhone comes out on Friday", 1),
        ("Watching the election coverage on BBC tonight", 1),
        ("Apple will announce earnings next week", 1),
        ("I love this song so much, best album of the year!", 2),
        ("Had an amazing time with my friends today :)", 2),
        ("Great game tonight, so proud of the team", 2),
        ("Happy birthday! Have a wonderful day", 2),
    ];
    std::fs::write(s.join("test_text.txt"), sent.iter().map(|(t, _)| format!("{t}\n")).collect::<String>()).expect("write");
    std::fs::write(s.join("test_labels.txt"), sent.iter().map(|(_, l)| format!("{l}\n")).collect::<String>()).expect("write");
    std::fs::write(e.join("mapping.txt"), "0\tanger\n1\tjoy\n2\toptimism\n3\tsadness\n").expect("write");
    let emo = [
        ("I am so angry right now, they lied to my face #furious", 0),
        ("Stop sending me spam you idiots, this is outrageous", 0),
        ("That referee was a disgrace, absolutely fuming", 0),
        ("Best day ever! Laughing so hard with my sister 😂", 1),
        ("Yay! Just got the puppy I always wanted", 1),
        ("This is hilarious, I can't stop laughing", 1),
        ("Tomorrow is a new day, keep going and never give up", 2),
        ("Believe in yourself and good things will come #motivation", 2),
        ("Stay positive, the future is bright", 2),
        ("I miss my grandma so much, it hurts", 3),
        ("Feeling so lonely and depressed tonight", 3),
        ("Heartbroken. My dog passed away this morning", 3),
    ];
    std::fs::write(e.join("test_text.txt"), emo.iter().map(|(t, _)| format!("{t}\n")).collect::<String>()).expect("write");
    std::fs::write(e.join("test_labels.txt"), emo.iter().map(|(_, l)| format!("{l}\n")).collect::<String>()).expect("write");
}

#[test]
fn eval_on_a_tweeteval_layout_fixture() {
    let d = tempfile::tempdir().expect("tempdir");
    write_fixture(d.path());
    let o = bv(&["mood", "--eval", &d.path().display().to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    for task in ["sentiment", "emotion"] {
        let t = &v[task];
        assert_eq!(t["n"], 12, "{v}");
        for k in ["macro_recall", "macro_f1", "accuracy"] {
            let x = t[k].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&x), "{task}.{k} = {x}");
        }
        // Clear-cut items: a working detector gets at least 9 of 12.
        assert!(t["accuracy"].as_f64().unwrap_or(0.0) >= 0.75, "{task}: {t}");
    }
    assert_eq!(v["split"], "test");
}

#[test]
fn eval_errors_name_the_file() {
    let d = tempfile::tempdir().expect("tempdir");
    let o = bv(&["mood", "--eval", &d.path().display().to_string()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no task found"), "{}", stderr(&o));
    write_fixture(d.path());
    std::fs::write(d.path().join("emotion/test_labels.txt"), "0\n1\nnine\n").expect("write");
    let o = bv(&["mood", "--eval", &d.path().display().to_string()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("test_labels.txt:3"), "{}", stderr(&o));
}

#[test]
fn triage_round_trip() {
    let d = tempfile::tempdir().expect("tempdir");
    let input = d.path().join("queue.jsonl");
    let lines = [
        r#"{"id": "t1", "text": "My lawyer will be in touch about the damaged sofa."}"#,
        r#"{"id": 2, "text": "Thanks for the quick help today!"}"#,
        r#"{"id": "t3", "text": "返品の方法が分かりません。どうすればいいですか？"}"#,
        "",
        r#"{"id": "t4", "text": "कृपया मेरा रिफंड जल्दी भेजिए, बहुत परेशानी हो रही है"}"#,
    ];
    std::fs::write(&input, lines.join("\n")).expect("write");
    let out = d.path().join("out.jsonl");
    let o = bv(&["triage", &input.display().to_string(), "--out", &out.display().to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("triaged 4 messages"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).expect("read out");
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["id"], "t1");
    assert_eq!(rows[1]["id"], 2);
    assert_eq!(rows[0]["escalation"], serde_json::json!(["legal_threat"]));
    assert_eq!(rows[0]["priority"], "urgent");
    assert_eq!(rows[1]["mood"], "grateful");
    assert_eq!(rows[1]["needs_reply"], false);
    assert_eq!(rows[2]["language"], "ja");
    assert_eq!(rows[2]["mood"], "confused");
    assert_eq!(rows[3]["language"], "hi");
    assert_eq!(rows[3]["polarity"], "negative");
    for r in &rows {
        for k in ["mood", "confidence", "polarity", "language", "escalation", "needs_reply", "priority"] {
            assert!(r.get(k).is_some(), "missing {k} in {r}");
        }
    }
}

#[test]
fn triage_bad_lines() {
    let d = tempfile::tempdir().expect("tempdir");
    let input = d.path().join("q.jsonl");
    std::fs::write(&input, "{\"id\": \"a\", \"text\": \"hello there\"}\n{\"id\": \"b\", \"txt\": \"typo\"}\n").expect("write");
    let o = bv(&["triage", &input.display().to_string()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("q.jsonl:2") && e.contains("txt"), "{e}");

    std::fs::write(&input, "{\"id\": \"a\", \"text\": \"hello there\"}\nnot json\n{\"id\": \"c\", \"text\": \"\"}\n").expect("write");
    let o = bv(&["triage", &input.display().to_string()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("q.jsonl:2: not valid JSON"), "{}", stderr(&o));

    let o = bv(&["triage", "--skip-bad", &input.display().to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("q.jsonl:3: `text`: text is empty"), "{e}");
    assert!(e.contains("2 bad lines skipped"), "{e}");
    assert_eq!(stdout(&o).lines().count(), 1);

    let o = bv(&["triage", &d.path().join("missing.jsonl").display().to_string()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.jsonl"), "{}", stderr(&o));
}
