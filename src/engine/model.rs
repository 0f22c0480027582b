//! The model interface every architecture implements, and `load`, which turns a
//! GGUF file into a ready model (weights + tokenizer + chat template).
//!
//! The trait is shaped by what the rest of the engine needs: a prefix cache
//! (so `box_clone` copies the KV state while weights stay shared behind `Arc`,
//! and `truncate` rolls the cache back to a common prefix) and N candidates
//! decoded together (so `fork_batch` + `forward_batch`).

use super::error::Result;
use candle_core::Tensor;

/// Facts about a loaded model that callers need (read from GGUF metadata).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// `general.architecture`: llama, qwen2 or gemma3.
    pub arch: String,
    /// `general.name` when present, else the file stem.
    pub name: String,
    pub vocab_size: usize,
    pub context_length: usize,
    pub n_layer: usize,
    pub embedding_length: usize,
}

/// A causal language model with its own KV cache.
pub trait CausalLm: Send {
    /// Feeds `tokens` of one sequence starting at absolute position `pos`, which
    /// must equal `seq_len()` (call `truncate` first to roll back). Returns the
    /// logits of the last token: shape `(vocab,)`, f32.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor>;

    /// One decoding step for a batch: one token per sequence, every sequence at
    /// position `pos`. Returns logits `(batch, vocab)`. The cache must hold
    /// `tokens.len()` sequences (see `fork_batch`).
    fn forward_batch(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor>;

    /// Replicates a batch-1 cache into `n` identical sequences, so N candidates
    /// share one prefill.
    fn fork_batch(&mut self, n: usize) -> Result<()>;

    /// Number of cached positions.
    fn seq_len(&self) -> usize;

    /// Drops cached positions at and after `len`.
    fn truncate(&mut self, len: usize) -> Result<()>;

    /// Empties the cache (back to batch 1).
    fn reset(&mut self);

    /// A copy with the same cached state; weights are shared, not copied.
    fn box_clone(&self) -> Box<dyn CausalLm>;

    /// Bytes held by the KV cache (for the prefix cache's byte budget).
    fn kv_cache_bytes(&self) -> usize;

    fn info(&self) -> &ModelInfo;
}
