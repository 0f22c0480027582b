//! The evaluation harness: agreement statistics between reviewers and
//! between the automatic score and reviewers, and the small CSV reader the
//! harness uses to take in ratings made in other tools.
//!
//! Statistics live in their own module with no I/O so that the HTTP layer,
//! the CLI and the eval runner all compute the same numbers from the same
//! code, and so every coefficient can be tested against published values.

pub mod agreement;
pub mod csv;
pub mod stats;
