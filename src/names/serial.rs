//! [`Serial`]: a certificate serial, and its three forms in one place: the number
//! (`u64`, as OpenSSH and the KRL carry it), the stored integer (`i64`, SQLite's), and
//! the decimal string (the API, the audit log and sshd's log lines; JSON numbers cannot
//! hold 64 bits).

use std::fmt;
use std::num::NonZeroU64;

use rand::{Rng, RngExt};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::InvalidName;

/// A certificate serial: never 0. Serials countersign issues are random in
/// `1..=i64::MAX`, so that every one fits the database's signed integer; a serial typed
/// in (to look up or revoke) may be any positive 64-bit number, and one above `i64::MAX`
/// is simply never found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(NonZeroU64);

impl Serial {
    /// The serial `n`; `None` for 0, which is never issued.
    pub fn new(n: u64) -> Option<Serial> {
        NonZeroU64::new(n).map(Serial)
    }

    /// A fresh random serial in `1..=i64::MAX` (the caller checks it is unused).
    pub fn random(rng: &mut impl Rng) -> Serial {
        let n = rng.random_range(1..=i64::MAX as u64);
        Serial(NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN))
    }

    /// Parses a serial as people type it: a positive decimal number below 2^64.
    pub fn parse(s: &str) -> Result<Serial, InvalidName> {
        use std::num::IntErrorKind;
        let digits =
            || InvalidName("serial must be a positive decimal number (digits only)".into());
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(digits());
        }
        match s.parse::<u64>() {
            Ok(n) => Serial::new(n).ok_or_else(|| InvalidName("serial 0 is never issued".into())),
            Err(e) if *e.kind() == IntErrorKind::PosOverflow => Err(InvalidName(
                "serial is too large: serials are below 2^64 (18446744073709551616)".into(),
            )),
            Err(_) => Err(digits()),
        }
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// As the database stores it; `None` above `i64::MAX` (never stored, so never found).
    pub fn to_stored(self) -> Option<i64> {
        i64::try_from(self.get()).ok()
    }

    /// From the database's integer; `None` for a value no serial has (0 or negative).
    pub fn from_stored(v: i64) -> Option<Serial> {
        u64::try_from(v).ok().and_then(Serial::new)
    }
}

impl fmt::Display for Serial {
    /// The decimal string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Serial {
    /// A decimal string: JSON numbers lose precision above 2^53.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Serial, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Serial::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_agree() {
        let s = Serial::parse("8142207957869255637").unwrap();
        assert_eq!(s.get(), 8142207957869255637);
        assert_eq!(s.to_string(), "8142207957869255637");
        assert_eq!(Serial::from_stored(s.to_stored().unwrap()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), "8142207957869255637");
        let back: Serial =
            serde_json::from_value(serde_json::json!("8142207957869255637")).unwrap();
        assert_eq!(back, s);
        let top = Serial::new(u64::MAX).unwrap();
        assert_eq!(top.to_stored(), None, "above i64::MAX: never stored");
        assert_eq!(Serial::from_stored(0), None);
        assert_eq!(Serial::from_stored(-5), None);
        for _ in 0..100 {
            assert!(Serial::random(&mut rand::rng()).to_stored().is_some());
        }
    }
}
