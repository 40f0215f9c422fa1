//! [`Serial`]: a certificate serial, and its three forms in one place: the number
//! (`u64`, as OpenSSH and the KRL carry it), the stored integer (`i64`, SQLite's), and
//! the decimal string (the API, the audit log and sshd's log lines; JSON numbers cannot
//! hold 64 bits).

use std::fmt;
use std::num::NonZeroU64;

use chrono::{DateTime, Utc};
use rand::{Rng, RngExt};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::InvalidName;

/// A certificate serial: never 0. Serials countersign issues ([`Serial::fresh`]) are in
/// `1..=i64::MAX`, so that every one fits the database's signed integer; a serial typed
/// in (to look up or revoke) may be any positive 64-bit number, and one above `i64::MAX`
/// is simply never found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(NonZeroU64);

/// The bits of a fresh serial that count milliseconds since 1970 (the top of 63).
const MILLIS_BITS: u32 = 42;
/// The random bits below them.
const RANDOM_BITS: u32 = 63 - MILLIS_BITS;

impl Serial {
    /// The serial `n`; `None` for 0, which is never issued.
    pub fn new(n: u64) -> Option<Serial> {
        NonZeroU64::new(n).map(Serial)
    }

    /// A fresh serial for a certificate signed at `at` (the caller checks it is unused):
    /// the milliseconds since 1970 in the top 42 bits of `1..=i64::MAX` (until the year
    /// 2109), then 21 random bits.
    ///
    /// Serials issued later sort after earlier ones, so the indexes keyed by serial
    /// (certificates, audit events) take each new one on their newest pages instead of a
    /// random page: 4-10% more flows at 32 clients on SQLite (docs/benchmark.md). The random part
    /// keeps serials unique without a lock, whatever replica draws them in the same
    /// millisecond (2,097,152 values; the unique constraint and the caller's check catch
    /// the rare repeat), and after a database is restored from an older copy, serials
    /// drawn later do not repeat the ones the copy forgot unless the clock went back.
    /// A time before 1970 counts as 0 ms, a time past 2109 as the last millisecond.
    pub fn fresh(at: DateTime<Utc>, rng: &mut impl Rng) -> Serial {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        let millis = millis.min((1 << MILLIS_BITS) - 1);
        let n = (millis << RANDOM_BITS) | rng.random_range(0..1u64 << RANDOM_BITS);
        Serial(NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN))
    }

    /// A serial anywhere in `1..=i64::MAX`, uniformly: what a caller draws once the
    /// fresh ones it drew were all taken.
    pub fn any(rng: &mut impl Rng) -> Serial {
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
    }

    #[test]
    fn fresh_serials_follow_the_clock_and_always_fit_the_database() {
        use chrono::TimeZone;
        let rng = &mut rand::rng();
        let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap();
        let now = at(1_796_000_000_123);
        let drawn: Vec<Serial> = (0..200).map(|_| Serial::fresh(now, rng)).collect();
        for s in &drawn {
            assert!(s.to_stored().is_some(), "{s} must fit i64");
            assert_eq!(
                s.get() >> 21,
                1_796_000_000_123,
                "{s}: the millisecond on top"
            );
        }
        // 21 random bits: 200 draws in one millisecond do not all repeat one value.
        assert!(
            drawn.iter().any(|s| *s != drawn[0]),
            "the low bits are random"
        );
        // One millisecond later sorts after every serial of the one before.
        let later = Serial::fresh(at(1_796_000_000_124), rng);
        assert!(
            drawn.iter().all(|s| *s < later),
            "{later} after the earlier ones"
        );
        // Clocks outside 1970..2109 still give a serial the database can hold, never 0.
        let (y1900, y2200) = (-2_208_988_800_000, 7_258_118_400_000);
        for ms in [y1900, -1, 0, y2200] {
            let s = Serial::fresh(at(ms), rng);
            assert!(s.to_stored().is_some_and(|n| n > 0), "{ms}: {s}");
        }
        assert_eq!(Serial::fresh(at(y2200), rng).get() >> 21, (1 << 42) - 1);
    }
}
