#![no_main]
//! `cargo fuzz run draft_request`: see `brandvoice::fuzzing::draft_request`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| brandvoice::fuzzing::draft_request(data));
