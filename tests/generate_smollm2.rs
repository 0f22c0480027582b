//! Generation with the real SmolLM2-135M model: seeds, stop strings, max
//! tokens, streaming, N candidates.

#[path = "generate_support/mod.rs"]
mod support;

use brandvoice::engine::generate::{chat_prompt, raw_prompt, FinishReason, GenerateOptions};
use brandvoice::engine::sampling::{BanTokens, SamplingParams};
use brandvoice::engine::template::ChatMessage;
use support::{generator, run, smollm2};

fn sampled(seed: u64, max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampling: SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed, ..Default::default() },
        ..Default::default()
    }
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions { max_tokens, sampling: SamplingParams::greedy(), ..Default::default() }
}

fn chat(text: &str) -> Vec<u32> {
    let l = smollm2();
    let msgs = vec![
        ChatMessage { role: "system".into(), content: "You are a friendly support agent for an online shop.".into() },
        ChatMessage { role: "user".into(), content: text.into() },
    ];
    chat_prompt(&l.tokenizer, &l.template, &msgs).expect("chat prompt")
}

#[test]
fn same_seed_same_text_across_fresh_generators() {
    let prompt = chat("My parcel arrived damaged. What can you do?");
    let opts = GenerateOptions {
        max_tokens: 24,
        sampling: SamplingParams { temperature: 0.9, seed: 1234, ..Default::default() },
        ..Default::default()
    };
    let (a, _) = run(&mut generator(0), &prompt, &opts);
    let (b, _) = run(&mut generator(0), &prompt, &opts);
    assert_eq!(a.candidates[0].tokens, b.candidates[0].tokens);
    assert_eq!(a.candidates[0].text, b.candidates[0].text);
    assert!(!a.candidates[0].text.trim().is_empty());
}

#[test]
fn different_seeds_give_different_candidates() {
    let prompt = chat("Write one sentence about our new coffee blend.");
    let opts = GenerateOptions { n: 4, ..sampled(7, 16) };
    let (out, _) = run(&mut generator(0), &prompt, &opts);
    let texts: std::collections::HashSet<&str> = out.candidates.iter().map(|c| c.text.as_str()).collect();
    assert!(texts.len() >= 3, "expected distinct candidates, got {:#?}", out.candidates);
    let seeds: Vec<u64> = out.candidates.iter().map(|c| c.seed).collect();
    assert_eq!(seeds, vec![7, 8, 9, 10]);
}

#[test]
fn max_tokens_is_honoured() {
    let l = smollm2();
    let prompt = raw_prompt(&l.tokenizer, "The capital of France is", false).unwrap();
    for max in [1, 5, 12] {
        let (out, _) = run(&mut generator(0), &prompt, &greedy(max));
        let c = &out.candidates[0];
        assert_eq!(c.tokens.len(), max, "{c:?}");
        assert_eq!(c.finish, FinishReason::Length);
    }
    let (out, chunks) = run(&mut generator(0), &prompt, &greedy(0));
    assert!(out.candidates[0].tokens.is_empty() && out.candidates[0].text.is_empty());
    assert!(chunks[0].is_empty());
}

#[test]
fn stop_strings_are_honoured_and_not_emitted() {
    let l = smollm2();
    let prompt = raw_prompt(&l.tokenizer, "Once upon a time", false).unwrap();
    let (free, _) = run(&mut generator(0), &prompt, &greedy(32));
    let full = free.candidates[0].text.clone();
    // A stop string taken from the middle of the free-running text, so it
    // surely appears, and likely spans a token boundary.
    let chars: Vec<(usize, char)> = full.char_indices().collect();
    assert!(chars.len() > 40, "{full:?}");
    let (s, _) = chars[20];
    let (e, _) = chars[26];
    let stop = full[s..e].to_string();
    let cut = full.find(&stop).unwrap();
    let opts = GenerateOptions { stop: vec!["never appears ☃".into(), stop.clone()], ..greedy(32) };
    let (out, chunks) = run(&mut generator(0), &prompt, &opts);
    let c = &out.candidates[0];
    assert_eq!(c.finish, FinishReason::Stop, "stop {stop:?} in {full:?}");
    assert_eq!(c.text, full[..cut]);
    assert_eq!(chunks[0].concat(), c.text);
    assert!(chunks[0].iter().all(|ch| !ch.contains(&stop)));
    assert!(c.tokens.len() < free.candidates[0].tokens.len());
}

#[test]
fn end_of_generation_stops_a_chat_reply() {
    let prompt = chat("Say hello.");
    let (out, _) = run(&mut generator(0), &prompt, &greedy(120));
    let c = &out.candidates[0];
    assert_eq!(c.finish, FinishReason::Eog, "{c:?}");
    let l = smollm2();
    assert!(c.tokens.iter().all(|t| !l.tokenizer.eog_ids().contains(t)));
    assert!(!c.text.contains("<|im_end|>"));
}

#[test]
fn streaming_chunks_are_valid_utf8_and_rebuild_the_text() {
    let l = smollm2();
    // Japanese: SmolLM2's byte-level BPE splits many characters across tokens.
    let prompt = raw_prompt(&l.tokenizer, "お問い合わせありがとうございます。ご注文の商品は", false).unwrap();
    let mut split_seen = 0;
    for seed in 0..3 {
        let (out, chunks) = run(&mut generator(0), &prompt, &sampled(seed, 32));
        let c = &out.candidates[0];
        assert_eq!(chunks[0].concat(), c.text);
        for ch in &chunks[0] {
            assert!(!ch.is_empty());
            assert!(std::str::from_utf8(ch.as_bytes()).is_ok());
        }
        if c.finish != FinishReason::Length {
            assert!(!c.text.contains('\u{FFFD}'), "{:?}", c.text);
        }
        // Same text as decoding all the ids at once.
        assert_eq!(c.text, l.tokenizer.decode(&c.tokens, true));
        split_seen += c.tokens.iter().filter(|&&t| std::str::from_utf8(&l.tokenizer.token_bytes(t)).is_err()).count();
    }
    assert!(split_seen > 0, "no token held a partial character: the split case was not exercised");
}

#[test]
fn logit_mask_is_applied_per_candidate() {
    let l = smollm2();
    let prompt = raw_prompt(&l.tokenizer, "The capital of France is", false).unwrap();
    let (free, _) = run(&mut generator(0), &prompt, &greedy(4));
    let banned = free.candidates[0].tokens[0];
    let mask = BanTokens { ids: vec![banned] };
    let mut gen = generator(0);
    let opts = GenerateOptions { n: 2, ..greedy(4) };
    let out = gen.generate(&prompt, &opts, Some(&mask), &mut |_, _| true).unwrap();
    for c in &out.candidates {
        assert!(!c.tokens.contains(&banned), "{c:?}");
    }
}

#[test]
fn batched_candidates_equal_sequential_runs() {
    let prompt = chat("Our order was late. Please help.");
    // Greedy: every candidate equals the single greedy run.
    let (single, _) = run(&mut generator(0), &prompt, &greedy(16));
    let (batch, chunks) = run(&mut generator(0), &prompt, &GenerateOptions { n: 3, ..greedy(16) });
    for (c, ch) in batch.candidates.iter().zip(&chunks) {
        assert_eq!(c.tokens, single.candidates[0].tokens, "candidate {}", c.index);
        assert_eq!(ch.concat(), c.text);
    }
    // Sampled: candidate i of a batch equals a lone run with seed + i.
    let opts = GenerateOptions { n: 3, ..sampled(100, 16) };
    let (batch, _) = run(&mut generator(0), &prompt, &opts);
    for c in &batch.candidates {
        let (lone, _) = run(&mut generator(0), &prompt, &GenerateOptions { n: 1, ..sampled(100 + c.index as u64, 16) });
        assert_eq!(c.tokens, lone.candidates[0].tokens, "candidate {} (seed {})", c.index, c.seed);
        assert_eq!(c.text, lone.candidates[0].text);
    }
}

#[test]
fn candidates_stop_independently() {
    let prompt = chat("Write a short greeting.");
    // Different seeds end at different lengths; each candidate's finish is its own.
    let opts = GenerateOptions { n: 4, stop: vec!["!".into()], ..sampled(3, 24) };
    let (out, chunks) = run(&mut generator(0), &prompt, &opts);
    let lens: std::collections::HashSet<usize> = out.candidates.iter().map(|c| c.tokens.len()).collect();
    assert!(lens.len() > 1, "{:#?}", out.candidates);
    for (c, ch) in out.candidates.iter().zip(&chunks) {
        assert_eq!(ch.concat(), c.text);
        assert!(!c.text.contains('!'));
        assert!(c.tokens.len() <= 24);
    }
}

#[test]
fn bad_options_are_clear_errors() {
    let l = smollm2();
    let prompt = raw_prompt(&l.tokenizer, "Hi", false).unwrap();
    let mut gen = generator(0);
    let mut err = |o: GenerateOptions, p: &[u32]| gen.generate(p, &o, None, &mut |_, _| true).unwrap_err().to_string();
    let e = err(GenerateOptions { n: 0, ..greedy(4) }, &prompt);
    assert!(e.contains("n must be between 1 and 16, got 0"), "{e}");
    let e = err(GenerateOptions { max_tokens: 10_000_000, ..greedy(4) }, &prompt);
    assert!(e.contains("max_tokens") && e.contains("10000000"), "{e}");
    let e = err(GenerateOptions { sampling: SamplingParams { top_p: 0.0, ..Default::default() }, ..greedy(4) }, &prompt);
    assert!(e.contains("top_p"), "{e}");
    let e = err(greedy(4), &[]);
    assert!(e.contains("prompt is empty"), "{e}");
    let e = err(greedy(4), &[u32::MAX]);
    assert!(e.contains("outside the vocabulary"), "{e}");
}

#[test]
fn cancelling_from_the_callback_stops_generation() {
    let l = smollm2();
    let prompt = raw_prompt(&l.tokenizer, "Once upon a time", false).unwrap();
    let mut gen = generator(0);
    let mut seen = 0;
    let out = gen
        .generate(&prompt, &greedy(64), None, &mut |_, _| {
            seen += 1;
            seen < 3
        })
        .unwrap();
    let c = &out.candidates[0];
    assert_eq!(c.finish, FinishReason::Cancelled);
    assert!(c.tokens.len() < 64);
}
