//! Durability: the built `brandvoice serve --no-model` binary as a child
//! process, reviews written by several client threads over real TCP, the
//! child SIGKILLed mid-stream (three times), then restarted on the same
//! SQLite file. Every review a client got a 2xx for must be there — read
//! both straight from the file and through the restarted server — and
//! `PRAGMA integrity_check` must say `ok`. No model is needed: reviews are
//! SQLite work only, which is what is being tested.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Starts the server on a free port; returns it once it listens.
fn start(db: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brandvoice"))
        .args(["serve", "--no-model", "--bind", "127.0.0.1:0"])
        .env("BRANDVOICE_DB", db)
        .env("BRANDVOICE_LOG", "warn")
        .env_remove("BRANDVOICE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn brandvoice serve");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        line.clear();
        assert!(Instant::now() < deadline, "the server did not start in time");
        if err.read_line(&mut line).expect("read stderr") == 0 {
            panic!("the server exited before listening: {:?}", child.wait());
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().expect("address");
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = err.read_to_string(&mut sink);
            });
            return (child, addr);
        }
    }
}

/// One POST; `None` when the connection fails (the server is being killed).
fn try_post(addr: SocketAddr, path: &str, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).ok()?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).ok()?;
    let code: u16 = status.split_whitespace().nth(1)?.parse().ok()?;
    // The status line is only an acknowledgement once the whole response arrived.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).ok()?;
    Some(code)
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Writes reviews from `threads` clients until `stop`; returns the acknowledged case ids.
fn write_reviews(addr: SocketAddr, round: usize, threads: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<BTreeSet<String>>>) -> Vec<std::thread::JoinHandle<usize>> {
    (0..threads)
        .map(|t| {
            let stop = stop.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut failures = 0;
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) || failures > 20 {
                        return i;
                    }
                    let case = format!("r{round}-t{t}-{i}");
                    let body = format!(
                        r#"{{"kind":"review","run_id":"durability","case_id":"{case}","draft_id":"d0","reviewer_id":"rev{t}","scores":{{"overall":{}}},"comment":"written before the crash"}}"#,
                        1 + i % 5
                    );
                    match try_post(addr, "/v1/reviews", &body) {
                        Some(code) if (200..300).contains(&code) => {
                            acked.lock().unwrap().insert(case);
                        }
                        Some(code) => panic!("unexpected status {code} for {case}"),
                        None => failures += 1,
                    }
                }
                unreachable!()
            })
        })
        .collect()
}

fn stored_cases(db: &Path) -> (BTreeSet<String>, String) {
    let c = rusqlite::Connection::open(db).expect("open the file");
    let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
    let mut st = c.prepare("SELECT case_id FROM reviews WHERE run_id = 'durability'").unwrap();
    let cases = st.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect();
    (cases, check)
}

#[test]
fn acknowledged_reviews_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.sqlite");
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    for round in 0..3 {
        let (mut child, addr) = start(&db);
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let writers = write_reviews(addr, round, 4, stop.clone(), acked.clone());
        // Kill once a good number of writes went through, while the writers keep going.
        let t = Instant::now();
        while acked.lock().unwrap().len() < before + 60 && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed, not stopped: {status:?}");
        stop.store(true, Ordering::Relaxed);
        let attempted: usize = writers.into_iter().map(|w| w.join().expect("writer")).sum();
        let now = acked.lock().unwrap().len();
        assert!(now >= before + 60, "round {round}: only {} reviews acknowledged", now - before);
        eprintln!("round {round}: {attempted} attempts, {} acknowledged before SIGKILL", now - before);

        let (stored, check) = stored_cases(&db);
        assert_eq!(check, "ok", "integrity_check after SIGKILL");
        let missing: Vec<String> = acked.lock().unwrap().iter().filter(|c| !stored.contains(*c)).cloned().collect();
        assert!(missing.is_empty(), "round {round}: {} acknowledged reviews lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    }

    // Restart on the same file: the server opens it and serves every acknowledged review.
    let (mut child, addr) = start(&db);
    let out = get(addr, "/v1/reviews?run=durability&format=jsonl");
    assert!(out.starts_with("HTTP/1.1 200"), "{}", &out[..out.len().min(300)]);
    for case in acked.lock().unwrap().iter() {
        assert!(out.contains(&format!("\"case_id\":\"{case}\"")), "{case} missing after restart");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, check) = stored_cases(&db);
    assert_eq!(check, "ok");
}
