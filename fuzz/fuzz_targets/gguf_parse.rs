#![no_main]
//! `cargo fuzz run gguf_parse`: see `brandvoice::fuzzing::gguf_parse`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brandvoice::fuzzing::gguf_parse(data));
