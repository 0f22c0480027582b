//! Greedy decoding follows llama.cpp: for the raw prompts of
//! `reference/greedy-continuations.jsonl`, the first 8 generated tokens give
//! the same bytes as llama.cpp's greedy continuation, for at least 7 of the 8
//! prompts. This runs SmolLM2 (fetched if missing) through the whole
//! generation path (generator, sampler, token bytes); the model-level parity
//! of all three architectures is `tests/greedy_parity.rs`.

#[path = "generate_support/mod.rs"]
mod support;

use brandvoice::engine::generate::{GenerateOptions, Generator};
use brandvoice::engine::prefix_cache::PrefixCache;
use brandvoice::engine::sampling::SamplingParams;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/reference/greedy-continuations.jsonl");

fn check(name: &str, key: &str, fetch: bool) {
    let Some(l) = support::load(name, fetch) else { return };
    let text = std::fs::read_to_string(REFERENCE).unwrap_or_else(|e| panic!("{REFERENCE}: {e}"));
    let mut gen = Generator::new(l.model, l.tokenizer.clone(), PrefixCache::new(0));
    let opts = GenerateOptions { max_tokens: 8, sampling: SamplingParams::greedy(), ..Default::default() };
    let (mut total, mut same) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        if row["model"] != key {
            continue;
        }
        total += 1;
        let ids: Vec<u32> =
            row["prompt_ids_with_bos_if_model_adds_it"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let reference = row["greedy_24"].as_str().unwrap().as_bytes();
        let out = gen.generate(&ids, &opts, None, &mut |_, _| true).unwrap();
        let c = &out.candidates[0];
        let ours: Vec<u8> = c.tokens.iter().flat_map(|&t| l.tokenizer.token_bytes(t)).collect();
        let mut ok = reference.starts_with(&ours);
        if ok && c.tokens.len() < 8 {
            // We stopped at end-of-generation: llama.cpp must have too.
            ok = reference[ours.len()..].starts_with(b" [end of text]");
        }
        if ok {
            same += 1;
        } else {
            eprintln!(
                "{name}: {:?}\n  ours: {:?}\n  ref:  {:?}",
                row["prompt"].as_str().unwrap(),
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&reference[..reference.len().min(ours.len() + 8)])
            );
        }
    }
    eprintln!("{name}: {same}/{total} prompts match llama.cpp's first 8 greedy tokens");
    assert_eq!(total, 8, "{key}: reference rows");
    assert!(same >= 7, "{name}: only {same}/{total} prompts match llama.cpp");
}

#[test]
fn smollm2_greedy_follows_llama_cpp() {
    check("smollm2-135m", "smollm2-135m-instruct-q4_1", true);
}
