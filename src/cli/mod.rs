//! Subcommand bodies, one file per area. Each returns the process exit code.

pub mod draft;
pub mod engine;
pub mod generate;
pub mod models;
pub mod mood;
pub mod politeness;
pub mod reviews;
pub mod serve;
pub mod style;
