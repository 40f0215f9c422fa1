//! Fuzz target `public_key`: arbitrary bytes through `countersign::fuzzing::public_key`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| countersign::fuzzing::public_key(data));
