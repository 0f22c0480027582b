#![no_main]
//! `cargo fuzz run style_yaml`: see `brandvoice::fuzzing::style_yaml`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brandvoice::fuzzing::style_yaml(data));
