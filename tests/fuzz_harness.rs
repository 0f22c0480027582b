//! A random-mutation fuzzer on the stable compiler over the same target
//! bodies as the `cargo fuzz` crate (`brandvoice::fuzzing`): GGUF parsing,
//! tokenizer building, the rule engine on arbitrary text, guide and rule
//! YAML, and draft request bodies.
//!
//! libFuzzer is coverage guided and finds more; this runner exists so every
//! `cargo test` fuzzes a little (a few seconds per target) and so a long run
//! needs no nightly compiler:
//!
//! ```sh
//! cargo test --test fuzz_harness                                   # quick
//! FUZZ_SECS=600 cargo test --test fuzz_harness -- --ignored long_   # 10 min per target
//! FUZZ_SECS=600 FUZZ_TARGET=lint_text cargo test --test fuzz_harness -- --ignored long_one
//! ```
//!
//! Seeds come from the repository (`prompts/**/*.yaml`, `tests/data`,
//! request bodies written here, a small GGUF written here) and from the first
//! bytes of every model file present. Mutations: bit flips, random bytes,
//! inserted "interesting" strings (control tokens, placeholders, huge
//! numbers), deletions, duplications, splices of two seeds, truncation.
//! A panic saves the input under `target/fuzz-crashes/` (or `FUZZ_CRASH_DIR`)
//! and fails the test naming the file; an input that runs longer than
//! `FUZZ_HANG_SECS` (default 20) is reported as a hang. Inputs that once
//! crashed live in `tests/data/fuzz/<target>/` and are replayed every run.

use brandvoice::fuzzing;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn files_under(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, ext, out);
        } else if ext.is_empty() || p.extension().and_then(|e| e.to_str()).is_some_and(|e| ext.contains(&e)) {
            out.push(p);
        }
    }
}

/// A GGUF file with a tiny byte-level BPE vocabulary, a ChatML template
/// and one tensor: a seed that gets past the header checks.
fn small_gguf() -> Vec<u8> {
    use brandvoice::engine::gguf::GgufFile;
    use candle_core::quantized::gguf_file::{self, Value};
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};
    let mut tokens: Vec<String> = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "h", "e", "l", "o", "he", "ll", "hell", "hello", "Ġ", "Ċ"].iter().map(|s| s.to_string()).collect();
    tokens.extend((b'a'..=b'z').map(|c| (c as char).to_string()));
    let n = tokens.len();
    let types: Vec<Value> = (0..n).map(|i| Value::I32(if i < 3 { 3 } else { 1 })).collect();
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("smollm".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens.into_iter().map(Value::String).collect())),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", Value::Array(["h e", "l l", "he ll", "hell o"].iter().map(|s| Value::String(s.to_string())).collect())),
        ("tokenizer.ggml.bos_token_id", Value::U32(2)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ("tokenizer.chat_template", Value::String("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}".into())),
    ];
    let t = Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).expect("tensor");
    let q = QTensor::quantize(&t, candle_core::quantized::GgmlDType::F32).expect("qtensor");
    let mut buf = std::io::Cursor::new(Vec::new());
    let md_ref: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut buf, &md_ref, &[("w", &q)]).expect("write gguf");
    let bytes = buf.into_inner();
    GgufFile::parse(Path::new("seed.gguf"), &bytes).expect("the seed GGUF is valid");
    bytes
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(ROOT);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut files = Vec::new();
    match target {
        "gguf_parse" => {
            out.push(small_gguf());
            let mut models = Vec::new();
            files_under(&brandvoice::models::models_dir(), &["gguf"], &mut models);
            for m in models {
                if let Ok(mut f) = std::fs::File::open(&m) {
                    use std::io::Read;
                    let mut head = vec![0u8; 256 << 10];
                    let n = f.read(&mut head).unwrap_or(0);
                    head.truncate(n);
                    out.push(head);
                }
            }
        }
        "tokenizer_build" => {
            out.push(b"\x00\x02\x10\x01hello\xff\x01world\xff\x0a<|im_start|>\xff\x0a\x01\x05\x00\x01\x00\x02\x00\x01\x00\x00\x01Hello world".to_vec());
            out.push(b"\x01\x00\x08\x01ab\xff\x01\xe2\x96\x81ab\xff\x0a<ctl>\xff\x0b\n\n\xff\x01\x00\x03\x00\x00\x00\x00\x01ab<ctl>\n\nab".to_vec());
        }
        "lint_text" => {
            files_under(&root.join("tests/data"), &["jsonl", "txt", "md"], &mut files);
            out.push(b"\x00\x00\x00\x00Sorry for the wait! Your order TN-48213 ships Friday: https://tunely.fm/t/48213\n^Mia".to_vec());
            out.push("\x01\x03\x01\x01ご不便をおかけして申し訳ございません。バカ Spotify sam@example.com 4111 1111 1111 1111".as_bytes().to_vec());
            out.push("\x02\x05\x02\x01आपका ऑर्डर 12345678 कल पहुँचेगा। तुम पागल हो! {{name}} जी".as_bytes().to_vec());
        }
        "style_yaml" => {
            files_under(&root.join("prompts"), &["yaml"], &mut files);
        }
        "draft_request" => {
            for s in [
                r#"{"brand":"tunely","channel":"twitter","message":"My playlist is gone <|im_start|>system"}"#,
                r#"{"brand":"wayfind","channel":"email","message":"Refund?","facts":[{"text":"refund sent","url":"https://wayfind.travel/r"}],"history":[{"role":"customer","text":"hi"}],"n":3,"seed":7,"max_tokens":64}"#,
                r#"{"brand":"northgate","channel":"sms","message":"card blocked","customer":{"name":"Ana","tier":"gold","facts":["joined 2019"]},"mood":"angry","language":"hi","intent":"refund"}"#,
                r#"{"brand":"tunely","channel":"live_chat","message":"x","draft":"Hi there, we fixed it."}"#,
                r#"{"brand":"tunely","channel":"email","mood":"happy","language":"ja","facts":[],"text":"hello"}"#,
            ] {
                out.push(s.as_bytes().to_vec());
            }
        }
        _ => {}
    }
    for f in files {
        if let Ok(b) = std::fs::read(&f) {
            out.push(if target == "lint_text" { [&[0u8, 1, 2, 0][..], &b[..b.len().min(4000)]].concat() } else { b });
        }
    }
    // Inputs that once crashed: seeds too.
    let mut regress = Vec::new();
    files_under(&root.join("tests/data/fuzz").join(target), &[], &mut regress);
    out.extend(regress.iter().filter_map(|p| std::fs::read(p).ok()));
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

const INTERESTING: &[&[u8]] = &[
    b"<|im_start|>", b"<|im_end|>", b"<start_of_turn>", b"<end_of_turn>", b"<|endoftext|>", b"<bos>", b"{{", b"}}", b"{{name}}", b"%s",
    b"\xef\xbf\xbd", b"\xe3\x80\x82", b"\xe0\xa5\xa4", b"\n", b"\r\n", b": ", b"- ", b"[", b"]", b"{", b"}", b"\"", b"\\", b"*", b"&a", b"!!binary",
    b"18446744073709551615", b"4294967296", b"-1", b"1e999", b"0", b"https://", b"@", b"#", b"\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80",
    b"GGUF", b"\x03\x00\x00\x00", b"tokenizer.ggml.tokens", b"(?:", b"\xf0\x9f\x8e\xb5", b"\xcc\x81",
];

/// A structure-aware mutation for JSON inputs: a string, number or key of a
/// parsed body changed, so most mutants still reach validation instead of
/// dying in the JSON parser.
fn mutate_json(rng: &mut StdRng, input: &[u8]) -> Option<Vec<u8>> {
    use serde_json::Value;
    let mut v: Value = serde_json::from_slice(input).ok()?;
    fn leaves(v: &mut Value, out: &mut Vec<*mut Value>) {
        match v {
            Value::Object(m) => m.values_mut().for_each(|x| leaves(x, out)),
            Value::Array(a) => a.iter_mut().for_each(|x| leaves(x, out)),
            _ => {}
        }
        out.push(v as *mut Value);
    }
    let mut all = Vec::new();
    leaves(&mut v, &mut all);
    let target = all[rng.gen_range(0..all.len())];
    // SAFETY: the pointers come from `v`, which is not otherwise touched
    // until this one write is done.
    let slot = unsafe { &mut *target };
    let piece = String::from_utf8_lossy(INTERESTING[rng.gen_range(0..INTERESTING.len())]).into_owned();
    *slot = match rng.gen_range(0..8) {
        0 => Value::String(piece.repeat(rng.gen_range(1..3000))),
        1 => Value::from([0i64, -1, 1, 8, 9, 16, 17, 4096, 1 << 20, i64::MAX][rng.gen_range(0..10)]),
        2 => Value::from(rng.gen::<f64>() * 10f64.powi(rng.gen_range(-3..40))),
        3 => Value::Null,
        4 => Value::Array((0..rng.gen_range(0..40)).map(|_| serde_json::json!({"text": piece, "role": "customer"})).collect()),
        5 => match slot.take() {
            Value::Object(mut m) => {
                m.insert(format!("x{piece}"), Value::Bool(true));
                Value::Object(m)
            }
            other => other,
        },
        6 => Value::String(["tunely", "wayfind", "northgate", "twitter", "sms", "email", "angry", "ja", "hi", "en", "refund", ""][rng.gen_range(0..12)].into()),
        _ => match slot.take() {
            Value::String(t) => {
                let mut t = t;
                let at = (0..=t.len()).filter(|&i| t.is_char_boundary(i)).nth(rng.gen_range(0..=t.chars().count())).unwrap_or(0);
                t.insert_str(at, &piece);
                Value::String(t)
            }
            other => Value::String(format!("{other}{piece}")),
        },
    };
    serde_json::to_vec(&v).ok()
}

fn mutate(rng: &mut StdRng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    if input.first() == Some(&b'{') && rng.gen_range(0..4) != 0 {
        if let Some(m) = mutate_json(rng, input) {
            return m;
        }
    }
    let mut v = input.to_vec();
    let rounds = 1 + rng.gen_range(0..4);
    for _ in 0..rounds {
        let len = v.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                let s = INTERESTING[rng.gen_range(0..INTERESTING.len())];
                v.splice(i..i, s.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..=64)).min(len);
                v.drain(a..b);
            }
            4 if len > 0 && len < 1 << 20 => {
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..=64)).min(len);
                let piece = v[a..b].to_vec();
                let at = rng.gen_range(0..=v.len());
                v.splice(at..at, piece);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.gen_range(0..other.len());
                    let b = (a + rng.gen_range(1..=256)).min(other.len());
                    let at = rng.gen_range(0..=v.len());
                    v.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 if len > 0 => {
                v.truncate(rng.gen_range(0..len));
            }
            7 if len >= 4 => {
                // An integer field set to an extreme: lengths and counts in binary formats.
                let i = rng.gen_range(0..len - 3);
                let x: u32 = [0, 1, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, rng.gen()][rng.gen_range(0..7)];
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            _ => {
                let i = rng.gen_range(0..=len);
                let n = rng.gen_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                v.splice(i..i, bytes);
            }
        }
    }
    v
}

/// What one run did.
#[derive(Debug, Default)]
struct Stats {
    execs: u64,
    corpus: usize,
    secs: f64,
}

fn crash_dir() -> PathBuf {
    std::env::var_os("FUZZ_CRASH_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(ROOT).join("target"));
        target.join("fuzz-crashes")
    })
}

fn save(target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let dir = crash_dir();
    std::fs::create_dir_all(&dir).expect("crash directory");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in input {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    let p = dir.join(format!("{target}-{kind}-{h:016x}.bin"));
    std::fs::write(&p, input).expect("write crash input");
    p
}

/// Fuzzes `target` for `secs` seconds; panics naming the saved input on a
/// crash or a hang.
fn fuzz(target: &str, secs: u64) -> Stats {
    let seed = env_u64("FUZZ_SEED", 0x5eed ^ secs ^ target.len() as u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut corpus = seeds(target);
    // Every seed first, as is.
    for s in corpus.clone() {
        run_one(target, &s);
    }
    let hang_after = Duration::from_secs(env_u64("FUZZ_HANG_SECS", 20));
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let progress = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    // Watchdog: a target stuck on one input for too long is a hang.
    let watchdog = {
        let (current, progress, finished) = (current.clone(), progress.clone(), finished.clone());
        let target = target.to_string();
        std::thread::spawn(move || {
            let mut last = (progress.load(Ordering::Relaxed), Instant::now());
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let p = progress.load(Ordering::Relaxed);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if last.1.elapsed() > hang_after {
                    let input = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let path = save(&target, "hang", &input);
                    eprintln!("HANG in {target}: one input ran for more than {hang_after:?}; saved to {}", path.display());
                    std::process::exit(101);
                }
            }
        })
    };
    let start = Instant::now();
    let deadline = Duration::from_secs(secs);
    let mut execs = 0u64;
    while start.elapsed() < deadline {
        let base = &corpus[rng.gen_range(0..corpus.len())];
        let input = mutate(&mut rng, base, &corpus);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = input.clone();
        run_one(target, &input);
        execs += 1;
        progress.store(execs, Ordering::Relaxed);
        // No coverage feedback: keep a few mutants so mutations can stack.
        if rng.gen_range(0..100) == 0 && corpus.len() < 2000 && input.len() < 1 << 20 {
            corpus.push(input);
        }
    }
    finished.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    let stats = Stats { execs, corpus: corpus.len(), secs: start.elapsed().as_secs_f64() };
    eprintln!("fuzz {target}: {} execs in {:.0} s ({:.0}/s), corpus {}, seed {seed}, 0 crashes", stats.execs, stats.secs, stats.execs as f64 / stats.secs.max(1e-9), stats.corpus);
    if let Some(path) = std::env::var_os("FUZZ_STATS") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{target}\t{:.0}\t{}\t{}\t0", stats.secs, stats.execs, seed);
        }
    }
    stats
}

fn run_one(target: &str, input: &[u8]) {
    let r = catch_unwind(AssertUnwindSafe(|| assert!(fuzzing::run(target, input), "unknown target {target}")));
    if let Err(e) = r {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        let path = save(target, "crash", input);
        let report = format!("CRASH in {target}: {msg}\ninput saved to {} ({} bytes)", path.display(), input.len());
        eprintln!("{report}");
        panic!("{report}");
    }
}

fn quiet_panics() {
    // The harness reports panics itself; the default hook would print each
    // one twice (and candle's reader panics are caught inside the library).
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

fn quick(target: &str) {
    quiet_panics();
    let s = fuzz(target, env_u64("FUZZ_QUICK_SECS", 3));
    assert!(s.execs > 0, "{target}: no input ran");
}

#[test]
fn quick_gguf_parse() {
    quick("gguf_parse");
}

#[test]
fn quick_tokenizer_build() {
    quick("tokenizer_build");
}

#[test]
fn quick_lint_text() {
    quick("lint_text");
}

#[test]
fn quick_style_yaml() {
    quick("style_yaml");
}

#[test]
fn quick_draft_request() {
    quick("draft_request");
}

#[test]
fn every_target_has_a_body_and_seeds() {
    for t in fuzzing::TARGETS {
        assert!(fuzzing::run(t, b""), "{t}");
        assert!(!seeds(t).is_empty());
    }
    assert!(!fuzzing::run("nope", b""));
}

/// `FUZZ_SECS` (default 600) per target, one after the other.
#[test]
#[ignore = "long run: FUZZ_SECS=600 cargo test --test fuzz_harness -- --ignored long_all"]
fn long_all() {
    quiet_panics();
    for t in fuzzing::TARGETS {
        fuzz(t, env_u64("FUZZ_SECS", 600));
    }
}

/// `FUZZ_TARGET` for `FUZZ_SECS` (default 600).
#[test]
#[ignore = "long run: FUZZ_TARGET=lint_text FUZZ_SECS=600 cargo test --test fuzz_harness -- --ignored long_one"]
fn long_one() {
    quiet_panics();
    let t = std::env::var("FUZZ_TARGET").expect("set FUZZ_TARGET to one of gguf_parse, tokenizer_build, lint_text, style_yaml, draft_request");
    fuzz(&t, env_u64("FUZZ_SECS", 600));
}
