//! Shared set-up for the generation tests: real models, loaded once per test
//! binary and handed out as fresh copies (weights shared, empty KV cache).
#![allow(dead_code)]

use brandvoice::engine::generate::{GenerateOptions, GenerateOutput, Generator};
use brandvoice::engine::model::CausalLm;
use brandvoice::engine::prefix_cache::PrefixCache;
use brandvoice::engine::template::ChatTemplate;
use brandvoice::engine::tokenizer::Tokenizer;
use std::sync::{Arc, Mutex, OnceLock};

pub struct Loaded {
    pub model: Box<dyn CausalLm>,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
}

/// Loads a known model by name (fetching it if missing when `fetch`), or `None`
/// when it is absent and must not be fetched.
pub fn load(name: &str, fetch: bool) -> Option<Loaded> {
    let file = brandvoice::models::models_dir().join(format!("{name}.gguf"));
    if !fetch && !file.is_file() {
        eprintln!("skipping {name}: {} is not present", file.display());
        return None;
    }
    let path = brandvoice::models::resolve(name).unwrap_or_else(|e| panic!("resolving {name}: {e}"));
    let l = brandvoice::engine::model::load(&path, &brandvoice::engine::model::LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    Some(Loaded { model: l.lm, tokenizer: Arc::new(l.tokenizer), template: l.template })
}

static SMOL: OnceLock<Mutex<Loaded>> = OnceLock::new();

/// A fresh copy of SmolLM2-135M (the test model), with its tokenizer and template.
pub fn smollm2() -> Loaded {
    let m = SMOL.get_or_init(|| Mutex::new(load("smollm2-135m", true).expect("smollm2 is always fetched")));
    let g = m.lock().unwrap_or_else(|e| e.into_inner());
    let mut model = g.model.box_clone();
    model.reset();
    Loaded { model, tokenizer: g.tokenizer.clone(), template: g.template.clone() }
}

/// A generator over a fresh SmolLM2 copy with the given cache budget.
pub fn generator(budget: usize) -> Generator {
    let l = smollm2();
    Generator::new(l.model, l.tokenizer, PrefixCache::new(budget))
}

/// Runs a generation and collects the streamed chunks per candidate.
pub fn run(gen: &mut Generator, prompt: &[u32], opts: &GenerateOptions) -> (GenerateOutput, Vec<Vec<String>>) {
    let mut chunks = vec![Vec::new(); opts.n];
    let out = gen
        .generate(prompt, opts, None, &mut |i, c| {
            chunks[i].push(c.to_string());
            true
        })
        .expect("generation runs");
    (out, chunks)
}
