//! [`IdempotencyKey`]: the `Idempotency-Key` header a client sends so that a retried
//! `POST /v1/requests` (through a load balancer, after a timeout) creates one request.

use std::fmt;

use super::InvalidName;

/// A client's idempotency key: 1 to 255 visible ASCII characters (a UUID is typical).
/// Keys are the client's own: one user's key never finds another user's request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Longest key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

impl IdempotencyKey {
    /// Accepts 1 to [`MAX_IDEMPOTENCY_KEY`] characters from `!` to `~`.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        if s.is_empty() || s.len() > MAX_IDEMPOTENCY_KEY {
            return Err(InvalidName(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
            )));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidName(
                "Idempotency-Key must be visible ASCII characters (no spaces)".into(),
            ));
        }
        Ok(IdempotencyKey(s.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("3f2a9c1e-7b44-4f0e-9d7a-2c1b5e8f9a01").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "a b", "tab\there", "é", "new\nline"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}
