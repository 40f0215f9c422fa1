//! Fuzz target `request_json`: arbitrary bytes through `countersign::fuzzing::request_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| countersign::fuzzing::request_json(data));
