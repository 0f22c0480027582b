//! The model interface every architecture implements, and `load`, which turns a
//! GGUF file into a ready model (weights + tokenizer + chat template).
//!
//! The trait is shaped by what the rest of the engine needs: a prefix cache
//! (so `box_clone` copies the KV state while weights stay shared behind `Arc`,
//! and `truncate` rolls the cache back to a common prefix) and N candidates
//! decoded together (so `fork_batch` + `forward_batch`, and `retain_batch` to
//! drop candidates that have finished). Speculative decoding needs the logits
//! of every fed position (`forward_all`) and `truncate` to roll back what was
//! rejected.

use super::error::Result;
use super::gguf::GgufFile;
use super::template::ChatTemplate;
use super::tokenizer::Tokenizer;
use candle_core::Tensor;
use std::path::{Path, PathBuf};

/// Facts about a loaded model that callers need (read from GGUF metadata).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// `general.architecture`: llama, qwen2 or gemma3.
    pub arch: String,
    /// `general.name` when present, else the file stem.
    pub name: String,
    pub vocab_size: usize,
    /// The context this instance runs with: the training context capped by
    /// `LoadOptions::max_context` (rotary tables are sized to it).
    pub context_length: usize,
    /// `{arch}.context_length` as the file states it.
    pub train_context_length: usize,
    pub n_layer: usize,
    pub embedding_length: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// The GGUF file the model came from.
    pub path: PathBuf,
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Cap on positions per sequence; `None` means
    /// min(training context, [`DEFAULT_MAX_CONTEXT`]).
    pub max_context: Option<usize>,
}

/// Default cap on the context a model is loaded with. Drafts are short; the
/// cap bounds the rotary tables and makes an over-long prompt a clear error.
pub const DEFAULT_MAX_CONTEXT: usize = 8192;

impl LoadOptions {
    /// The context to run with for a file trained with `train` positions.
    pub fn context_for(&self, train: usize) -> usize {
        let want = self.max_context.unwrap_or(DEFAULT_MAX_CONTEXT);
        want.min(train).max(1)
    }
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

    /// Feeds `tokens` of one sequence like `forward` and returns the logits of
    /// every fed position: shape `(tokens.len(), vocab)`. Row `i` must equal
    /// what `forward` would return after feeding `tokens[..=i]` one by one
    /// (speculative decoding verifies k drafted tokens in one call and relies
    /// on it). The default feeds the tokens one at a time.
    fn forward_all(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        let mut rows = Vec::with_capacity(tokens.len());
        for (i, &t) in tokens.iter().enumerate() {
            rows.push(self.forward(&[t], pos + i)?);
        }
        Ok(Tensor::stack(&rows, 0)?)
    }

    /// Keeps only the batch sequences at indices `keep` (ascending, each
    /// below the batch size), in that order: candidates that have finished
    /// leave the batch so later steps do not compute them. The default
    /// refuses (an implementation without it keeps the batch whole).
    fn retain_batch(&mut self, keep: &[usize]) -> Result<()> {
        let _ = keep;
        Err(super::error::EngineError::Generation("this model cannot drop sequences from a batch".into()))
    }

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

/// A loaded model: weights with their KV cache, the tokenizer and the chat
/// template, all built from one GGUF file.
pub struct Model {
    pub info: ModelInfo,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub lm: Box<dyn CausalLm>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info).finish_non_exhaustive()
    }
}

/// Opens and validates `path`, then builds the tokenizer, the chat template
/// and the network. Every failure names the file.
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model> {
    let gguf = GgufFile::open(path.as_ref())?;
    let tokenizer = Tokenizer::from_gguf(gguf.content())?;
    let template = ChatTemplate::from_gguf(gguf.content(), &tokenizer)?;
    let lm = super::arch::load_lm(&gguf, opts)?;
    Ok(Model { info: lm.info().clone(), tokenizer, template, lm })
}

/// Loads only the network (no tokenizer or template): for tools and tests
/// that feed token ids directly.
pub fn load_lm(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Box<dyn CausalLm>> {
    let gguf = GgufFile::open(path.as_ref())?;
    super::arch::load_lm(&gguf, opts)
}
