//! Fuzz target `config`: arbitrary bytes through `countersign::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| countersign::fuzzing::config(data));
