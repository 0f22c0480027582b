//! Prompt and plain-decoded tokens (round 0, n = 1, speculation off) of each
//! case of a draft suite, one JSON line per case, for `eval/bench/spec_sim.py`:
//! speculative verification is exact, so what any lookup policy would keep is
//! known from these tokens alone, and policies can be compared offline without
//! timing noise. The request is built like `Drafter::draft`'s first round
//! (same prompt, mask, sampling, seed and stop strings).
//!
//!     spec_trace MODEL SUITE.jsonl > trace.jsonl
use brandvoice::draft::constrain::{DraftMask, VocabSets};
use brandvoice::draft::{validate, DraftRequest, Drafter, Limits};
use brandvoice::engine::generate::{GenerateOptions, Generator};
use brandvoice::engine::prefix_cache::PrefixCache;
use brandvoice::mood::MoodDetector;
use brandvoice::style::lint::StyleBook;
use std::sync::Arc;
#[derive(serde::Deserialize)]
struct Case { id: String, request: DraftRequest }
fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (Some(model), Some(suite)) = (a.get(1), a.get(2)) else {
        eprintln!("usage: spec_trace MODEL SUITE.jsonl");
        std::process::exit(2);
    };
    let book = Arc::new(StyleBook::load(brandvoice::style::default_prompts_dir())?);
    let mood = Arc::new(MoodDetector::load()?);
    let path = brandvoice::models::resolve(model)?;
    let m = brandvoice::engine::model::load(&path, &Default::default())?;
    let drafter = Drafter::new(m, model.clone(), book.clone(), mood, 1 << 20);
    let mut drafter = drafter.with_prompts_dir(&brandvoice::style::default_prompts_dir())?;
    let m2 = brandvoice::engine::model::load(&path, &Default::default())?;
    let tok = Arc::new(m2.tokenizer);
    let vocab = Arc::new(VocabSets::build(&tok));
    let mut gen = Generator::new(m2.lm, tok, PrefixCache::new(512 << 20));
    for line in std::fs::read_to_string(suite)?.lines() {
        let c: Case = serde_json::from_str(line)?;
        let mut r = c.request;
        r.n = Some(1);
        r.seed = Some(r.seed.unwrap_or(7));
        let v = validate(&book, &Limits::default(), r)?;
        let u = drafter.understand(&v)?;
        let p = drafter.plan(&v, &u.mood.label, &u.language)?;
        let (prompt, shared) = drafter.prompt_tokens(&p, &v, &u.mood.label, &u.language)?;
        let mask = DraftMask::new(vocab.clone(), drafter.mask_policy(&v, &u.mood.label, &u.language));
        let opts = GenerateOptions { speculate: Default::default(), ..drafter.round_options(&v, 0, 1) };
        let out = gen.generate_shared(&prompt, shared, &opts, Some(&mask), &mut |_, _| true)?;
        let cnd = &out.candidates[0];
        println!("{}", serde_json::json!({"id": c.id, "lang": u.language, "channel": v.channel, "shared": shared, "prompt": prompt, "gen": cnd.tokens, "finish": cnd.finish, "text": cnd.text, "forwards": out.timings.decode_forwards}));
    }
    Ok(())
}
