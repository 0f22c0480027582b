//! The local inference engine: GGUF files in, text out, on a 2-core CPU.
//!
//! Why it is our own and not candle's examples glued together: the only weights
//! reachable here are GGUF files without a tokenizer.json (so the tokenizer is
//! rebuilt from GGUF metadata and checked id-for-id against llama.cpp), candle's
//! qwen2 and gemma3 model files lack what a prefix cache needs or are wrong (so
//! fixed copies live in `arch/`), and candle has only scalar kernels for the
//! tensor types these files use (so `qlinear` and `kernels` are ours).

pub mod arch;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod lookup;
pub mod model;
pub mod prefix_cache;
pub mod qlinear;
pub mod sampling;
pub mod stream;
pub mod template;
pub mod tokenizer;

pub use error::EngineError;
