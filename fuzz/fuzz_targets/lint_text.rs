#![no_main]
//! `cargo fuzz run lint_text`: see `brandvoice::fuzzing::lint_text`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brandvoice::fuzzing::lint_text(data));
