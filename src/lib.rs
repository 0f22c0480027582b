//! brandvoice drafts customer replies in a brand's voice with a small local
//! language model, checks them against the brand's style guide, and scores
//! them for tone consistency.
//!
//! The library holds everything; `src/main.rs` is a thin CLI over it, and the
//! HTTP server (`server`) is another thin layer. One folder per concern:
//! `engine` runs GGUF models on candle, `models` provisions weights from
//! package registries, `style` is the brand guide and rule engine.

pub mod draft;
pub mod engine;
pub mod eval;
pub mod fuzzing;
pub mod models;
pub mod redact;
pub mod score;
pub mod mood;
pub mod store;
pub mod server;
pub mod style;
