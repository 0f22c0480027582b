//! The `lint`, `fix` and `guide check` commands end to end: output format
//! and exit status (1 on an error-level violation, 0 otherwise, 2 for bad
//! usage or a bad guide).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brandvoice"))
        .args(args)
        .env("BRANDVOICE_PROMPTS", concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run brandvoice");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn lint_prints_vale_lines_and_exits_1_on_error() {
    let o = run(&["lint", "--brand", "tunely", "--channel", "twitter", "--mood", "angry", "--lang", "en", "-"], "Haha our valued customer!!\n^Mia");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        out(&o),
        "stdin:1:1:error:Mood.AcknowledgeFirst:Acknowledge the problem first when the customer is angry (for example 'I understand').\n\
         stdin:1:1:error:Mood.NoHumour:No jokes for a angry customer: 'Haha'.\n\
         stdin:1:10:error:Tunely.Banned:'valued customer' is not a word Tunely uses.\n\
         stdin:1:25:error:Mood.Exclamation:At most 0 exclamation marks for a angry customer; found '!!'.\n\
         stdin:1:25:warning:Common.RepeatedMarks:'!!': one mark is enough.\n"
    );
}

#[test]
fn lint_warnings_only_exit_0_and_json() {
    let o = run(&["lint", "--brand", "wayfind", "--channel", "live_chat", "--lang", "en", "--format", "json", "-"], "Let's touch base about your trip tomorrow.");
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v[0]["check"], "Common.Jargon");
    assert_eq!(v[0]["level"], "warning");
    assert_eq!(v[0]["span"]["start"], 6);
    assert_eq!(v[0]["span"]["column"], 7);
}

#[test]
fn fix_prints_fixed_text_and_is_stable() {
    let args = ["fix", "--brand", "northgate", "--channel", "sms", "--lang", "en", "-"];
    let o = run(&args, "Your new card is on its way!!");
    assert_eq!(o.status.code(), Some(0));
    let fixed = out(&o);
    assert_eq!(fixed, "Your new card is on its way. We will never ask for your PIN or full password. – Northgate Bank\n");
    let again = run(&args, fixed.trim_end());
    assert_eq!(out(&again), fixed);
}

#[test]
fn bad_usage_exits_2() {
    let o = run(&["lint", "--brand", "nope", "--channel", "twitter", "-"], "hi");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown brand `nope`; expected one of: northgate, tunely, wayfind"));
    let o = run(&["lint", "--brand", "tunely", "--channel", "fax", "-"], "hi");
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["lint", "--channel", "twitter", "-"], "hi");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn guide_check_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("acme.yaml");
    std::fs::write(&bad, "id: acme\nname: Acme\nvoice: hi\nlanguages: [en]\nsignoffs: {}\nemoji: { max: { twitter: -1 } }\n").unwrap();
    let prompts = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts");
    let o = run(&["guide", "check", "--prompts", prompts, bad.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let name = bad.display().to_string();
    assert!(err.contains(&format!("{name}:5:1: signoffs: unknown key `signoffs` (did you mean `sign_offs`?)")), "{err}");
    assert!(err.contains(&format!("{name}:6:27: emoji.max.twitter: expected a number of at least 0, found -1")), "{err}");
    assert!(err.contains("2 problem(s) found"), "{err}");
}

#[test]
fn guide_check_passes_the_shipped_files() {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts");
    let files = [
        format!("{p}/brands/tunely.yaml"), format!("{p}/brands/northgate.yaml"), format!("{p}/brands/wayfind.yaml"),
        format!("{p}/channels.yaml"), format!("{p}/moods.yaml"), format!("{p}/rules/common.yaml"),
    ];
    let mut args = vec!["guide", "check"];
    args.extend(files.iter().map(String::as_str));
    let o = run(&args, "");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out(&o).lines().count(), files.len());
}
