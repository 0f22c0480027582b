//! Mood detection with the real all-MiniLM-L6-v2 weights and the committed heads.

use std::sync::OnceLock;

use brandvoice::mood::{self, MoodDetector, MoodError};

fn det() -> &'static MoodDetector {
    static D: OnceLock<MoodDetector> = OnceLock::new();
    D.get_or_init(|| MoodDetector::load().expect("load the mood detector (MiniLM in the models dir + built-in heads)"))
}

#[test]
fn embeddings_are_real_sentence_vectors() {
    let e = det().embedder();
    let v = e.embed_batch(&["My parcel is late again", "My delivery still hasn't arrived", "I love this song so much"]).expect("embed");
    for x in &v {
        assert_eq!(x.len(), mood::embed::EMBEDDING_DIM);
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let close = mood::embed::dot(&v[0], &v[1]);
    let far = mood::embed::dot(&v[0], &v[2]);
    assert!(close > far + 0.2, "paraphrase {close} vs unrelated {far}");
    // Batching (with padding) must not change a vector.
    let alone = e.embed("My parcel is late again").expect("embed");
    assert!(mood::embed::dot(&alone, &v[0]) > 0.9999);
}

fn check(cases: &[(&str, &str)]) {
    for (text, want) in cases {
        let r = det().analyze(text).expect("analyze");
        assert_eq!(&r.mood, want, "{text:?}: got {} ({:?})", r.mood, r.moods);
    }
}

#[test]
fn english_moods() {
    check(&[
        ("This is the FOURTH time you've cancelled my delivery. Absolutely useless company!!!", "angry"),
        ("Thank you so much for fixing my account so quickly, you're a star", "grateful"),
        ("I'm really worried, my card was declined abroad and I have no other way to pay", "anxious"),
        ("How do I add a second user to my subscription? I can't find the setting", "confused"),
        ("Can you confirm the delivery address for order 1182?", "neutral"),
        ("Absolutely loving the new playlist feature, it's brilliant 😍", "happy"),
    ]);
}

#[test]
fn japanese_moods() {
    check(&[
        ("何度言ったら分かるんだ！最悪の対応だ。許せない！", "angry"),
        ("丁寧に対応していただき、本当にありがとうございました。", "grateful"),
        ("明日の出発までにパスポートの書類が届くか心配です。大丈夫でしょうか？", "anxious"),
    ]);
    let r = det().analyze("丁寧に対応していただき、本当にありがとうございました。").expect("analyze");
    assert_eq!(r.language.code, "ja");
    assert_eq!(r.method, "lexicon");
    assert_eq!(r.polarity, "positive");
}

#[test]
fn hindi_moods() {
    check(&[
        ("यह बिल्कुल बकवास सर्विस है, मुझे बहुत गुस्सा आ रहा है!", "angry"),
        ("इतनी जल्दी मदद करने के लिए आपका बहुत बहुत धन्यवाद।", "grateful"),
        ("मेरी फ़्लाइट कल है और टिकट अभी तक नहीं आया, बहुत चिंता हो रही है।", "anxious"),
    ]);
    let r = det().analyze("इतनी जल्दी मदद करने के लिए आपका बहुत बहुत धन्यवाद।").expect("analyze");
    assert_eq!(r.language.code, "hi");
}

#[test]
fn probabilities_are_distributions() {
    let r = det().analyze("Where is my order??").expect("analyze");
    for v in [&r.moods, &r.polarities, &r.emotion] {
        let s: f32 = v.iter().map(|s| s.probability).sum();
        assert!((s - 1.0).abs() < 1e-4, "{v:?}");
    }
    assert_eq!(r.moods.len(), 7);
    assert!((r.confidence - r.mood_probability(&r.mood)).abs() < 1e-6);
    assert!(r.needs_reply);
    assert_eq!(r.signals.questions, 2);
    assert!(r.signals.repeated_punctuation);
}

#[test]
fn signals_reach_the_report() {
    let r = det().analyze("WHY IS MY ACCOUNT LOCKED AGAIN?! Sort it out 😡").expect("analyze");
    assert!(r.signals.all_caps_words >= 5);
    assert_eq!(r.signals.emoji, ["😡"]);
    assert!(matches!(r.mood.as_str(), "angry" | "frustrated"), "{:?}", r.moods);
    assert_eq!(r.polarity, "negative");
}

#[test]
fn escalation_through_the_detector() {
    let r = det().analyze("If my money isn't back by Monday my solicitor will take this further and I'm closing my account.").expect("analyze");
    let kinds: Vec<&str> = r.escalation.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["legal_threat", "churn_threat"]);
    assert_eq!(r.priority, "urgent");
    assert!(r.needs_reply);
    let r = det().analyze("Loved the gig last night, the encore was fire 🔥").expect("analyze");
    assert!(r.escalation.is_empty(), "{:?}", r.escalation);
    assert!(!r.needs_reply);
    assert_eq!(r.priority, "low");
}

#[test]
fn empty_and_long_input() {
    assert!(matches!(det().analyze("  \t\n"), Err(MoodError::Empty)));
    let too_long = "word ".repeat(mood::MAX_CHARS / 5 + 1);
    match det().analyze(&too_long) {
        Err(MoodError::TooLong { chars, limit }) => {
            assert_eq!(limit, mood::MAX_CHARS);
            assert_eq!(chars, too_long.chars().count());
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    // Long but allowed: the embedding sees the first 256 tokens, no panic.
    let long = "The delivery was late and the box was damaged. ".repeat(300);
    let r = det().analyze(&long).expect("long message within the limit");
    assert_eq!(r.moods.len(), 7);
    assert_eq!(r.language.code, "en");
    // Emoji-only and punctuation-only messages still get a mood.
    assert!(det().analyze("🙏🙏🙏").is_ok());
    assert!(det().analyze("???").is_ok());
}

#[test]
fn history_makes_a_repeat_complaint_more_frustrated() {
    let text = "My router still doesn't work.";
    let alone = det().analyze(text).expect("analyze");
    let with = det()
        .analyze_with_history(text, &["My router stopped working yesterday.", "Any update on my router? It's still down."])
        .expect("analyze");
    assert!(
        with.mood_probability("frustrated") > alone.mood_probability("frustrated"),
        "{} vs {}",
        with.mood_probability("frustrated"),
        alone.mood_probability("frustrated")
    );
    let many: Vec<&str> = vec!["x"; mood::MAX_HISTORY + 1];
    assert!(matches!(det().analyze_with_history(text, &many), Err(MoodError::TooMuchHistory { .. })));
}

/// Language detection on the lines of the seed articles (Japanese and Hindi): ≥ 95%.
#[test]
fn language_on_seed_lines() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/seeds");
    let mut total = 0;
    let mut right = 0;
    for entry in std::fs::read_dir(dir).expect("seeds dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read seed");
        // The file's language: the one whatlang gives the whole article.
        let want = mood::language::detect(&text).code;
        assert!(want == "ja" || want == "hi", "{} is {want}", path.display());
        for line in text.lines() {
            // Lines with at least a few letters of the article's script.
            let letters = line.chars().filter(|c| c.is_alphabetic() && !c.is_ascii()).count();
            if letters < 4 {
                continue;
            }
            total += 1;
            if mood::language::detect(line).code == want {
                right += 1;
            }
        }
    }
    let acc = right as f32 / total as f32;
    eprintln!("seed lines: {right}/{total} = {acc:.3}");
    assert!(total > 100);
    assert!(acc >= 0.95, "{right}/{total}");
}

/// The committed multilingual set: every language ≥ 30 items, language detection ≥ 95%,
/// and mood accuracy well above the 1-in-7 chance level.
#[test]
fn multilingual_set() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/eval/mood"));
    let set = mood::eval::load_mood_set(dir).expect("load eval/mood");
    let langs: Vec<&str> = set.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, ["en", "hi", "ja"]);
    let scores = mood::eval::score_mood_set(det(), &set).expect("score");
    for s in &scores {
        eprintln!("{}: accuracy {:.3}, macro-F1 {:.3}, language {:.3}", s.language, s.accuracy, s.macro_f1, s.language_accuracy);
        assert!(s.n >= 30);
        assert!(s.language_accuracy >= 0.95, "{}: {}", s.language, s.language_accuracy);
        assert!(s.accuracy >= 0.6, "{}: {} misses {:#?}", s.language, s.accuracy, s.misses);
    }
}

/// Where triage time goes (run with `--ignored --nocapture`): embedding vs lexicon vs escalation.
#[test]
#[ignore]
fn time_breakdown() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tweeteval/sentiment/val_text.txt")).expect("read");
    let tweets: Vec<&str> = text.lines().take(300).collect();
    let d = det();
    let t = std::time::Instant::now();
    d.embedder().embed_batch(&tweets).expect("embed");
    let embed = t.elapsed();
    let t = std::time::Instant::now();
    for tw in &tweets {
        d.lexicon().signals(tw);
    }
    let lex = t.elapsed();
    let rules = mood::EscalationRules::builtin().expect("rules");
    let t = std::time::Instant::now();
    for tw in &tweets {
        rules.check(tw);
    }
    let esc = t.elapsed();
    let t = std::time::Instant::now();
    for tw in &tweets {
        mood::language::detect(tw);
    }
    let lang = t.elapsed();
    let t = std::time::Instant::now();
    d.analyze(tweets[0]).expect("one");
    let one = t.elapsed();
    eprintln!("300 tweets: embed {embed:?}, lexicon {lex:?}, escalation {esc:?}, language {lang:?}; one analyze {one:?}");
}

/// Bulk analysis (token-sorted batches on all cores) must give what one-by-one analysis gives.
#[test]
fn batching_matches_one_by_one() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/eval/mood/en.jsonl")).expect("read");
    let mut msgs: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["text"].as_str().expect("text").to_string())
        .collect();
    // Lengths far apart, so batches pad, and more messages than one batch holds.
    msgs.push("ok".into());
    msgs.push("Why ".repeat(150));
    msgs.push("ありがとうございました！".into());
    let refs: Vec<&str> = msgs.iter().map(|s| s.as_str()).collect();
    let bulk = det().analyze_batch(&refs).expect("batch");
    let vecs = det().embedder().embed_batch(&refs).expect("embed batch");
    for (i, m) in refs.iter().enumerate() {
        let one = det().analyze(m).expect("one");
        assert_eq!(one.mood, bulk[i].mood, "{m:?}");
        assert_eq!(one.polarity, bulk[i].polarity, "{m:?}");
        for (a, b) in one.moods.iter().zip(&bulk[i].moods) {
            assert!((a.probability - b.probability).abs() < 1e-3, "{m:?}: {a:?} vs {b:?}");
        }
        let alone = det().embedder().embed(m).expect("embed");
        assert!(mood::embed::dot(&alone, &vecs[i]) > 0.9999, "{m:?}");
    }
}

/// The int8 forward (`mood::bert`, the default) against candle's f32 BERT, the reference:
/// 300 real tweets, raw and tweet-normalised, each vector within cosine 0.99.
#[test]
fn int8_forward_matches_candle_bert() {
    use mood::embed::{Backend, Embedder};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tweeteval/sentiment/val_text.txt")).expect("read");
    let mut tweets: Vec<String> = text.lines().take(150).map(|s| s.to_string()).collect();
    tweets.extend(text.lines().take(150).map(mood::tweet::normalize));
    let refs: Vec<&str> = tweets.iter().map(|s| s.as_str()).collect();
    let dir = mood::embed::default_model_dir();
    let int8 = Embedder::load_backend(&dir, Backend::Int8).expect("int8");
    let f32_ref = Embedder::load_backend(&dir, Backend::Candle).expect("candle");
    assert_eq!((int8.backend(), f32_ref.backend()), (Backend::Int8, Backend::Candle));
    let a = int8.embed_batch(&refs).expect("int8 embed");
    let b = f32_ref.embed_batch(&refs).expect("candle embed");
    let mut worst = (1.0f32, "");
    let mut sum = 0.0;
    for ((x, y), t) in a.iter().zip(&b).zip(&refs) {
        let c = mood::embed::dot(x, y);
        sum += c;
        if c < worst.0 {
            worst = (c, t);
        }
    }
    let mean = sum / refs.len() as f32;
    eprintln!("int8 vs candle f32: mean cosine {mean:.5}, worst {:.5} ({:?})", worst.0, worst.1);
    assert!(worst.0 >= 0.99, "worst cosine {} on {:?}", worst.0, worst.1);
    assert!(mean >= 0.995, "mean cosine {mean}");
    // And it is a different computation, not candle's by accident.
    assert!(mean < 0.999_999, "mean cosine {mean}");
}

#[test]
fn chunk_plan_keeps_order_and_bounds() {
    let counts = [300, 30, 5, 200, 7, 6, 31, 128, 129, 600];
    let plan = mood::embed::plan_chunks(&counts, 2);
    let flat: Vec<usize> = plan.iter().flat_map(|r| r.clone()).collect();
    assert_eq!(flat, (0..counts.len()).collect::<Vec<_>>());
    for r in &plan {
        let tokens: usize = counts[r.clone()].iter().sum();
        assert!(tokens <= 256 || r.len() == 1, "{r:?}: {tokens} tokens");
    }
    assert_eq!(plan, vec![0..1, 1..6, 6..8, 8..9, 9..10]);
    assert!(mood::embed::plan_chunks(&[], 2).is_empty());
    // A few texts that fit one chunk go one part per core, by tokens.
    assert_eq!(mood::embed::plan_chunks(&[45, 34, 44, 45], 2), vec![0..2, 2..4]);
    assert_eq!(mood::embed::plan_chunks(&[45, 34, 44, 45], 1), vec![0..4]);
    assert_eq!(mood::embed::plan_chunks(&[10, 10, 10, 90], 2), vec![0..3, 3..4]);
    assert_eq!(mood::embed::plan_chunks(&[90, 1, 1], 3), vec![0..1, 1..2, 2..3]);
    assert_eq!(mood::embed::plan_chunks(&[40], 2), vec![0..1]);
}

#[test]
fn batch_plan_sorts_and_bounds() {
    let counts = [30, 5, 200, 7, 6, 31, 128, 129];
    let plan = mood::embed::plan_batches(&counts);
    let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
    seen.sort();
    assert_eq!(seen, (0..counts.len()).collect::<Vec<_>>());
    for b in &plan {
        assert!(b.windows(2).all(|w| counts[w[0]] <= counts[w[1]]), "{b:?}");
    }
    assert!(mood::embed::plan_batches(&[]).is_empty());
}

/// Japanese and Hindi get a real mood from the local language model (qwen2.5-0.5b, multilingual),
/// mixed with the lexicon: a full distribution, method `lm+lexicon`, different from lexicon-only.
#[test]
fn japanese_and_hindi_through_the_language_model() {
    let lm = mood::lm::LmMood::load("qwen2.5-0.5b").expect("load qwen2.5-0.5b (in the models dir)");
    let with_lm = MoodDetector::load().expect("load").with_lm(lm, mood::LM_WEIGHT);
    let texts = ["本当にありがとうございました。とても助かりました！", "आपकी मदद के लिए बहुत बहुत धन्यवाद!", "注文がまだ届きません。"];
    let got = with_lm.analyze_batch(&texts).expect("analyze");
    let plain = det().analyze_batch(&texts).expect("analyze");
    for ((t, r), p) in texts.iter().zip(&got).zip(&plain) {
        assert_eq!(r.method, "lm+lexicon", "{t}");
        assert_eq!(p.method, "lexicon", "{t}");
        let sum: f32 = r.moods.iter().map(|s| s.probability).sum();
        assert!((sum - 1.0).abs() < 1e-3, "{t}: {sum}");
        let moved: f32 = r.moods.iter().zip(&p.moods).map(|(a, b)| (a.probability - b.probability).abs()).sum();
        assert!(moved > 1e-3, "{t}: the language model changed nothing");
    }
    // Thanks are a positive mood; qwen2.5-0.5b leans "happy" over "grateful" for the
    // Japanese line (BENCHMARKS.md: the 0.5B model does not beat the lexicon).
    for r in &got[..2] {
        assert!(["grateful", "happy"].contains(&r.mood.as_str()), "{:?}", r.moods);
        assert_eq!(r.polarity, "positive", "{:?}", r.polarities);
    }
    // English stays on the embedding path.
    let en = with_lm.analyze("Thanks so much for your help!").expect("analyze");
    assert_eq!(en.method, "embedding+lexicon");
}

/// The triage fast path: no embedding model, n-gram heads for Latin script.
#[test]
fn fast_path_reports() {
    assert!(det().has_fast_path(), "the committed heads carry n-gram heads");
    let texts = ["I love this, best day ever!", "This is the worst service, I want a refund NOW", "ありがとうございました"];
    let r = det().analyze_batch_fast(&texts).expect("fast");
    assert_eq!(r[0].method, "ngram+lexicon");
    assert_eq!(r[0].polarity, "positive");
    assert_eq!(r[1].polarity, "negative");
    assert_eq!(r[2].method, "lexicon");
}
