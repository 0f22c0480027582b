//! The evaluation harness: suites of cases with assertions (`suite`,
//! `assert`), the runner that drafts them through the in-process pipeline
//! and writes a run directory (`run`), its reports (`report`), run-to-run
//! comparison with paired bootstrap intervals (`compare`), agreement
//! statistics between reviewers and between the automatic score and
//! reviewers (`stats`, `agreement`), and the small CSV reader the harness
//! uses to take in ratings made in other tools.
//!
//! Statistics live in their own module with no I/O so that the HTTP layer,
//! the CLI and the eval runner all compute the same numbers from the same
//! code, and so every coefficient can be tested against published values.

pub mod agreement;
pub mod assert;
pub mod compare;
pub mod csv;
pub mod report;
pub mod run;
pub mod stats;
pub mod suite;
