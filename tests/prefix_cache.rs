//! The prefix KV cache gives the same logits as computing the prompt from
//! scratch (real SmolLM2-135M), and survives the working state moving on.

#[path = "generate_support/mod.rs"]
mod support;

use brandvoice::engine::generate::{chat_prompt, GenerateOptions, Generator};
use brandvoice::engine::prefix_cache::PrefixCache;
use brandvoice::engine::sampling::{argmax, SamplingParams};
use brandvoice::engine::template::ChatMessage;
use support::smollm2;

fn prompt(user: &str) -> Vec<u32> {
    let l = smollm2();
    let msgs = vec![
        ChatMessage {
            role: "system".into(),
            content: "You reply for Northwind Coffee. Be warm, brief and concrete. Never use emoji. \
                      Sign off with '— The Northwind team'."
                .into(),
        },
        ChatMessage { role: "user".into(), content: user.into() },
    ];
    chat_prompt(&l.tokenizer, &l.template, &msgs).unwrap()
}

/// Logits of the last prompt position, computed in one forward from empty.
fn scratch_logits(p: &[u32]) -> Vec<f32> {
    let mut m = smollm2().model;
    m.forward(p, 0).unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Logits from a split computation (prefix, then suffix) agree with one
/// forward over the whole prompt up to float reassociation in the matmuls.
const TOL: f32 = 1e-3;

#[test]
fn cached_prefix_gives_the_same_logits() {
    let p1 = prompt("Where is my order #4412? It was due on Monday.");
    let p2 = prompt("Can I change the grind of my subscription to espresso?");
    let shared = brandvoice::engine::prefix_cache::common_prefix(&p1, &p2);
    assert!(shared > 20 && shared < p2.len(), "shared {shared}");

    let l = smollm2();
    let mut gen = Generator::new(l.model, l.tokenizer.clone(), PrefixCache::new(64 << 20));
    let (logits1, reused1) = gen.prefill(&p1).unwrap();
    assert_eq!(reused1, 0);
    // Decode a while: the working state moves past the prompt.
    let opts = GenerateOptions { max_tokens: 16, sampling: SamplingParams::greedy(), ..Default::default() };
    gen.generate(&p1, &opts, None, &mut |_, _| true).unwrap();
    // An unrelated prompt takes the working state elsewhere entirely.
    let other = prompt("x");
    let unrelated: Vec<u32> = other.iter().rev().copied().collect();
    gen.prefill(&unrelated).unwrap();

    let (cached, reused) = gen.prefill(&p2).unwrap();
    assert!(reused >= shared, "reused {reused} of shared {shared}");
    let fresh = scratch_logits(&p2);
    let d = max_abs_diff(&cached, &fresh);
    eprintln!("max |Δlogit| cached vs scratch: {d:e} (reused {reused} of {})", p2.len());
    assert!(d <= TOL, "max |Δlogit| {d}");
    assert_eq!(argmax(&cached), argmax(&fresh));

    // The first prompt's logits also match from scratch (no cache involved).
    assert!(max_abs_diff(&logits1, &scratch_logits(&p1)) == 0.0);

    // Exactly the same computation as the cache did by hand: prefix state
    // from the p1 prefill, rolled back, suffix fed — bit-identical, so the
    // stored state was not disturbed by the decoding and the other prompt.
    let mut m = smollm2().model;
    m.forward(&p1, 0).unwrap();
    m.truncate(reused).unwrap();
    let by_hand = m.forward(&p2[reused..], reused).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(cached, by_hand);

    let s = gen.cache_stats();
    assert!(s.hits >= 1 && s.tokens_reused as usize >= shared, "{s:?}");
}

#[test]
fn repeating_a_prompt_reuses_all_but_the_last_token() {
    let p = prompt("Do you ship to Norway?");
    let l = smollm2();
    let mut gen = Generator::new(l.model, l.tokenizer.clone(), PrefixCache::new(64 << 20));
    let (a, _) = gen.prefill(&p).unwrap();
    let (b, reused) = gen.prefill(&p).unwrap();
    assert_eq!(reused, p.len() - 1);
    let d = max_abs_diff(&a, &b);
    assert!(d <= TOL, "{d}");
}

#[test]
fn generation_with_and_without_cache_agrees() {
    let p1 = prompt("My grinder arrived broken.");
    let p2 = prompt("My grinder arrived late.");
    let opts = GenerateOptions { max_tokens: 24, sampling: SamplingParams::greedy(), ..Default::default() };
    let l = smollm2();
    let mut cached = Generator::new(l.model, l.tokenizer.clone(), PrefixCache::new(64 << 20));
    cached.generate(&p1, &opts, None, &mut |_, _| true).unwrap();
    let with = cached.generate(&p2, &opts, None, &mut |_, _| true).unwrap();
    assert!(with.timings.cached_tokens > 10);
    let l = smollm2();
    let mut plain = Generator::new(l.model, l.tokenizer.clone(), PrefixCache::new(0));
    let without = plain.generate(&p2, &opts, None, &mut |_, _| true).unwrap();
    assert_eq!(without.timings.cached_tokens, 0);
    assert_eq!(with.candidates[0].tokens, without.candidates[0].tokens);
}

#[test]
fn byte_budget_bounds_the_cache() {
    let l = smollm2();
    // What one prompt's state costs as the cache accounts it (a stored copy
    // holds only its positions, not the live cache's spare capacity).
    let per_prompt = {
        let l = smollm2();
        let mut g = Generator::new(l.model, l.tokenizer.clone(), PrefixCache::new(usize::MAX));
        g.prefill(&prompt("a")).unwrap();
        g.cache_stats().bytes
    };
    assert!(per_prompt > 0);
    // Room for about two prompts' states.
    let budget = per_prompt * 5 / 2;
    let mut gen = Generator::new(l.model, l.tokenizer.clone(), PrefixCache::new(budget));
    for q in ["a", "b", "c", "d"] {
        // Different first content tokens: but the system prompt is shared, so
        // newer entries do not replace older ones (neither is a prefix of the other).
        gen.prefill(&prompt(q)).unwrap();
        let s = gen.cache_stats();
        assert!(s.bytes <= budget, "{s:?}");
    }
    let s = gen.cache_stats();
    assert!(s.evictions >= 1 && s.entries <= 2, "{s:?}");
}
