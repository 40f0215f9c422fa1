//! Fuzz target `duration`: arbitrary bytes through `countersign::fuzzing::duration`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| countersign::fuzzing::duration(data));
