#![no_main]
//! `cargo fuzz run tokenizer_build`: see `brandvoice::fuzzing::tokenizer_build`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brandvoice::fuzzing::tokenizer_build(data));
