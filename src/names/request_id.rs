//! The id of an access request.

use std::fmt;

use serde::Serialize;

use super::InvalidName;

/// Identifies one access request: `r-` followed by 12 base32 characters (see
/// [`RequestId::new_at`]: 25 bits of time, then 35 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const ID_LEN: usize = 12;

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

    /// A new id for a request made at `unix_seconds`: 5 characters of time (big-endian,
    /// 25 bits of seconds, wrapping yearly) then 7 random (35 bits). Ids made close in time
    /// sort together, so inserts touch the same few B-tree pages instead of random ones
    /// (ids are names, not secrets: every read checks who may see the request).
    pub fn new_at(unix_seconds: i64, rng: &mut impl rand::Rng) -> Self {
        let time = (unix_seconds.max(0) as u64) & ((1 << 25) - 1);
        let mut id = String::with_capacity(2 + ID_LEN);
        id.push_str("r-");
        for i in (0..5).rev() {
            id.push(ID_ALPHABET[((time >> (5 * i)) & 31) as usize] as char);
        }
        let mut bits = rng.next_u64();
        for _ in 5..ID_LEN {
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
