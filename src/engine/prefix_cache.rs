//! Prefix KV cache: model states kept after earlier prompts, so a new prompt
//! that shares a token prefix with one of them (the same system prompt, brand
//! voice and exemplars; only the customer message differs) feeds only the
//! tokens after the shared part.
//!
//! Shape: a small list of `(tokens, state)` entries, bounded by the bytes
//! their KV caches hold (`CausalLm::kv_cache_bytes`) and evicted least
//! recently used first. A list rather than a trie because there are a handful
//! of entries and each lookup is dominated by the model forward it saves; the
//! list is scanned for the longest common token prefix. An entry whose tokens
//! are a prefix of a newer entry's is dropped: the newer state, truncated,
//! serves it too.
//!
//! States are `box_clone`s of the model: weights are shared behind `Arc`, the
//! KV tensors are copied or shared copy-on-write depending on the
//! architecture, so the byte budget counts every entry's cache in full (an
//! upper bound).

use super::error::Result;
use super::model::CausalLm;

/// Default byte budget: about 1,400 positions of Qwen2.5-0.5B or 700 of
/// SmolLM2-135M — a few system prompts with exemplars.
pub const DEFAULT_BUDGET_BYTES: usize = 64 << 20;

struct Entry {
    tokens: Vec<u32>,
    state: Box<dyn CausalLm>,
    bytes: usize,
    last_used: u64,
}

/// What a lookup found: a state holding the first `reused` tokens of the
/// prompt (already truncated to them), or nothing useful.
pub struct Hit {
    pub state: Box<dyn CausalLm>,
    pub reused: usize,
}

/// Counters for logs, benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub budget_bytes: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Prompt tokens that did not have to be fed thanks to the cache.
    pub tokens_reused: u64,
}

pub struct PrefixCache {
    entries: Vec<Entry>,
    budget_bytes: usize,
    clock: u64,
    stats: CacheStats,
}

impl Default for PrefixCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET_BYTES)
    }
}

/// Length of the common prefix of two token sequences.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixCache {
    /// A cache holding at most `budget_bytes` of KV state (0 disables it).
    pub fn new(budget_bytes: usize) -> Self {
        Self { entries: Vec::new(), budget_bytes, clock: 0, stats: CacheStats::default() }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            bytes: self.entries.iter().map(|e| e.bytes).sum(),
            budget_bytes: self.budget_bytes,
            ..self.stats
        }
    }

    /// The longest common prefix any entry shares with `prompt`, capped at
    /// `max_reuse`, without touching the cache.
    pub fn best_prefix_len(&self, prompt: &[u32], max_reuse: usize) -> usize {
        self.entries.iter().map(|e| common_prefix(&e.tokens, prompt).min(max_reuse)).max().unwrap_or(0)
    }

    /// Finds the entry sharing the longest token prefix with `prompt`, at most
    /// `max_reuse` tokens (callers pass `prompt.len() - 1` so that at least one
    /// token is fed and yields logits), and returns a copy of its state rolled
    /// back to that prefix. Only a hit longer than `at_least` counts (the caller
    /// may already hold a state that good); otherwise `None`.
    pub fn lookup(&mut self, prompt: &[u32], max_reuse: usize, at_least: usize) -> Result<Option<Hit>> {
        let best = self
            .entries
            .iter_mut()
            .map(|e| (common_prefix(&e.tokens, prompt).min(max_reuse), e))
            .max_by_key(|(n, e)| (*n, e.last_used));
        let Some((reused, entry)) = best else {
            self.stats.misses += 1;
            return Ok(None);
        };
        if reused == 0 || reused <= at_least {
            self.stats.misses += 1;
            return Ok(None);
        }
        self.clock += 1;
        entry.last_used = self.clock;
        let mut state = entry.state.box_clone();
        state.truncate(reused)?;
        self.stats.hits += 1;
        self.stats.tokens_reused += reused as u64;
        Ok(Some(Hit { state, reused }))
    }

    /// Records that `reused` prompt tokens were served by a state the caller
    /// already held (not by an entry).
    pub fn note_external_reuse(&mut self, reused: usize) {
        if reused > 0 {
            self.stats.hits += 1;
            self.stats.tokens_reused += reused as u64;
        }
    }

    /// Whether an entry holds exactly `tokens`.
    pub fn contains(&self, tokens: &[u32]) -> bool {
        self.entries.iter().any(|e| e.tokens == tokens)
    }

    /// Marks the most recently used entry whose tokens start with `tokens`
    /// as just used; returns whether there is one (it serves `tokens`).
    pub fn touch_covering(&mut self, tokens: &[u32]) -> bool {
        self.clock += 1;
        let now = self.clock;
        match self.entries.iter_mut().filter(|e| e.tokens.starts_with(tokens)).max_by_key(|e| e.last_used) {
            Some(e) => {
                e.last_used = now;
                true
            }
            None => false,
        }
    }

    /// Marks the entry holding exactly `tokens` as just used. Returns whether
    /// nothing is left to insert: such an entry exists, or the cache is off.
    pub fn touch(&mut self, tokens: &[u32]) -> bool {
        self.clock += 1;
        let now = self.clock;
        match self.entries.iter_mut().find(|e| e.tokens == tokens) {
            Some(e) => {
                e.last_used = now;
                true
            }
            None => self.budget_bytes == 0,
        }
    }

    /// Keeps `state`, which holds exactly `tokens`. Entries whose tokens are a
    /// prefix of `tokens` are dropped (this one serves them); then the least
    /// recently used entries go until the budget holds. A state larger than
    /// the whole budget is not kept.
    pub fn insert(&mut self, tokens: &[u32], state: Box<dyn CausalLm>) {
        if self.budget_bytes == 0 || tokens.is_empty() {
            return;
        }
        self.clock += 1;
        if let Some(e) = self.entries.iter_mut().find(|e| e.tokens == tokens) {
            e.last_used = self.clock;
            return;
        }
        let bytes = state.kv_cache_bytes();
        if bytes > self.budget_bytes {
            return;
        }
        self.entries.retain(|e| !(e.tokens.len() < tokens.len() && tokens.starts_with(&e.tokens)));
        self.entries.push(Entry { tokens: tokens.to_vec(), state, bytes, last_used: self.clock });
        self.evict();
    }

    fn evict(&mut self) {
        let mut total: usize = self.entries.iter().map(|e| e.bytes).sum();
        while total > self.budget_bytes {
            let Some((i, _)) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used) else { break };
            total -= self.entries[i].bytes;
            self.entries.swap_remove(i);
            self.stats.evictions += 1;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    //! LRU and prefix accounting with a stand-in state that only records its
    //! tokens; whether reused states give the right logits is checked with a
    //! real model in `tests/prefix_cache.rs`.
    use super::*;
    use crate::engine::model::ModelInfo;
    use candle_core::Tensor;

    /// Holds a token count and claims `per_token` bytes per cached position.
    struct Recorder {
        len: usize,
        per_token: usize,
        info: ModelInfo,
    }

    impl Recorder {
        fn boxed(len: usize, per_token: usize) -> Box<dyn CausalLm> {
            let info = ModelInfo {
                arch: "test".into(),
                name: "recorder".into(),
                vocab_size: 0,
                context_length: 1 << 20,
                train_context_length: 1 << 20,
                n_layer: 0,
                embedding_length: 0,
                n_head: 0,
                n_kv_head: 0,
                head_dim: 0,
                path: "recorder.gguf".into(),
            };
            Box::new(Recorder { len, per_token, info })
        }
    }

    impl CausalLm for Recorder {
        fn forward(&mut self, tokens: &[u32], _pos: usize) -> Result<Tensor> {
            self.len += tokens.len();
            Ok(Tensor::zeros(1, candle_core::DType::F32, &candle_core::Device::Cpu)?)
        }
        fn forward_batch(&mut self, _tokens: &[u32], _pos: usize) -> Result<Tensor> {
            unreachable!("not used by the cache")
        }
        fn fork_batch(&mut self, _n: usize) -> Result<()> {
            Ok(())
        }
        fn seq_len(&self) -> usize {
            self.len
        }
        fn truncate(&mut self, len: usize) -> Result<()> {
            self.len = self.len.min(len);
            Ok(())
        }
        fn reset(&mut self) {
            self.len = 0;
        }
        fn box_clone(&self) -> Box<dyn CausalLm> {
            Box::new(Recorder { len: self.len, per_token: self.per_token, info: self.info.clone() })
        }
        fn kv_cache_bytes(&self) -> usize {
            self.len * self.per_token
        }
        fn info(&self) -> &ModelInfo {
            &self.info
        }
    }

    #[test]
    fn longest_prefix_wins_and_state_is_truncated() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2, 3, 4], Recorder::boxed(4, 10));
        c.insert(&[1, 2, 9, 9, 9], Recorder::boxed(5, 10));
        let hit = c.lookup(&[1, 2, 3, 7, 8], 4, 0).unwrap().unwrap();
        assert_eq!(hit.reused, 3);
        assert_eq!(hit.state.seq_len(), 3);
        // Capped so at least one token is left to feed.
        let hit = c.lookup(&[1, 2, 3, 4], 3, 0).unwrap().unwrap();
        assert_eq!((hit.reused, hit.state.seq_len()), (3, 3));
        // Not better than what the caller holds → no hit.
        assert!(c.lookup(&[1, 2, 3, 7], 3, 3).unwrap().is_none());
        assert!(c.lookup(&[5, 6], 1, 0).unwrap().is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.tokens_reused), (2, 2, 6));
    }

    #[test]
    fn lru_eviction_by_bytes() {
        // Budget fits two 10-token states of 100 bytes/token.
        let mut c = PrefixCache::new(2000);
        c.insert(&[1; 10], Recorder::boxed(10, 100));
        c.insert(&[2; 10], Recorder::boxed(10, 100));
        assert_eq!(c.stats().bytes, 2000);
        // Touch [1…] so [2…] is the least recently used.
        assert!(c.lookup(&[1, 1, 1, 5], 3, 0).unwrap().is_some());
        c.insert(&[3; 10], Recorder::boxed(10, 100));
        let s = c.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (2, 2000, 1));
        assert_eq!(c.best_prefix_len(&[2; 10], 9), 0, "[2…] evicted");
        assert_eq!(c.best_prefix_len(&[1; 10], 9), 9);
        assert_eq!(c.best_prefix_len(&[3; 10], 9), 9);
    }

    #[test]
    fn oversized_state_is_not_kept_and_zero_budget_disables() {
        let mut c = PrefixCache::new(500);
        c.insert(&[1; 10], Recorder::boxed(10, 100));
        assert_eq!(c.stats().entries, 0);
        let mut off = PrefixCache::new(0);
        off.insert(&[1], Recorder::boxed(1, 1));
        assert_eq!(off.stats().entries, 0);
    }

    #[test]
    fn extended_prompt_replaces_its_prefix_entry() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2, 3], Recorder::boxed(3, 1));
        c.insert(&[1, 2, 3, 4, 5], Recorder::boxed(5, 1));
        c.insert(&[1, 2, 3, 4, 5], Recorder::boxed(5, 1));
        assert_eq!(c.stats().entries, 1);
        let hit = c.lookup(&[1, 2, 3, 9], 3, 0).unwrap().unwrap();
        assert_eq!(hit.reused, 3);
    }
}
