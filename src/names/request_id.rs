//! The id of an access request.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::InvalidName;

/// Identifies one access request: `r-` followed by 12 base32 characters (see
/// [`RequestId::new_at`]: 35 bits of time, then 25 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// The same characters in ASCII order: time written with them sorts as text in time order.
const SORTED_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
const ID_LEN: usize = 12;
/// Characters of time at the start of an id made by [`RequestId::new_at`].
const TIME_CHARS: usize = 7;

impl RequestId {
    /// A new random id from a cryptographic RNG.
    pub fn random(rng: &mut impl rand::Rng) -> Self {
        let mut bits = rng.next_u64();
        let mut id = String::with_capacity(2 + ID_LEN);
        id.push_str("r-");
        for _ in 0..ID_LEN {
            id.push(ID_ALPHABET[(bits & 31) as usize] as char);
            bits >>= 5;
        }
        Self(id)
    }

    /// A new id for a request made at `at`: 7 characters of time (big-endian, 35 bits of
    /// Unix milliseconds, wrapping every 398 days), written in ASCII order, then 5 random
    /// (25 bits). Ids made close in time sort together as text, so inserts into the
    /// indexes keyed by request id (requests, approvals, certificates, audit events) touch
    /// the same page or two instead of pages scattered over the last second (ids are
    /// names, not secrets: every read checks who may see the request; a repeat is caught
    /// by the caller's check and the primary key).
    pub fn new_at(at: DateTime<Utc>, rng: &mut impl rand::Rng) -> Self {
        let time = u64::try_from(at.timestamp_millis()).unwrap_or(0) & ((1 << 35) - 1);
        let mut id = String::with_capacity(2 + ID_LEN);
        id.push_str("r-");
        for i in (0..TIME_CHARS).rev() {
            id.push(SORTED_ALPHABET[((time >> (5 * i)) & 31) as usize] as char);
        }
        let mut bits = rng.next_u64();
        for _ in TIME_CHARS..ID_LEN {
            id.push(ID_ALPHABET[(bits & 31) as usize] as char);
            bits >>= 5;
        }
        Self(id)
    }

    /// Accepts exactly the shape [`RequestId::random`] and [`RequestId::new_at`] produce.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let ok = s.len() == 2 + ID_LEN
            && s.starts_with("r-")
            && s.bytes().skip(2).all(|b| ID_ALPHABET.contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidName(format!("invalid request id {s:?}")))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
