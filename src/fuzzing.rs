//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz), kept in the library so that
//! the normal test suite replays the committed corpus through exactly the same code
//! (`tests/it/fuzz_corpus.rs`). Each takes arbitrary bytes, must never panic, and checks
//! what must hold of whatever the parser accepts.
//!
//! Not an API: hidden from the docs and free to change.

use std::path::Path;

use crate::config::Config;
use crate::names::{MAX_DURATION, parse_duration};
use crate::pubkey::SubjectKey;

/// The config loader on any TOML text: an error or a config, never a panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_toml_str(text, Path::new("fuzz.toml"), Path::new("/fuzz")) {
        for role in c.policy.roles.values() {
            assert!(
                !role.principals.is_empty(),
                "a role without principals loaded"
            );
            assert!(role.default_ttl <= role.max_ttl);
        }
    }
}

/// A `POST /v1/requests` body, as the API parses it.
pub fn request_json(data: &[u8]) {
    if let Ok(req) = crate::api::parse_create_body(data) {
        if let Some(ttl) = req.ttl {
            assert!(!ttl.is_zero() && ttl <= MAX_DURATION);
        }
        assert!(!req.reason.as_str().chars().any(char::is_control));
    }
}

/// A subject public key line: whatever is accepted round-trips to the same key.
pub fn public_key(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = SubjectKey::parse(line) {
        let again = SubjectKey::parse(&key.to_openssh());
        assert_eq!(
            again.as_ref().ok(),
            Some(&key),
            "accepted key does not round-trip"
        );
    }
}

/// A human duration (ttl, config durations): accepted ones are positive, whole seconds
/// and at most [`MAX_DURATION`].
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text, "ttl") {
        assert!(!d.is_zero() && d.subsec_nanos() == 0 && d <= MAX_DURATION);
    }
}
