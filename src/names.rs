//! Validated names and texts: the types every input is parsed into at the edge.
//!
//! Past this module nothing re-checks strings. User, group and role names are lower-case
//! ASCII so that no two names alias by case or look-alike letters; principals are limited
//! to the characters sshd compares literally; free texts (reasons, comments) carry no
//! control characters, so they are safe in logs, tables and sshd's key ID log line.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Why a piece of input was not accepted; the message names the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(pub String);

fn is_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=64).contains(&bytes.len())
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Accepts `[a-z0-9][a-z0-9._-]{0,63}` and nothing else.
            pub fn parse(s: &str) -> Result<Self, InvalidName> {
                if is_name(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidName(format!(
                        "invalid {} name {:?}: use 1-64 of a-z 0-9 . _ - starting with a letter or digit",
                        $what, s
                    )))
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A person known to the policy; the identity every token and approval resolves to.
    UserName,
    "user"
);
name_type!(
    /// A group of users, named in `requesters` and `approvers` as `group:NAME`.
    GroupName,
    "group"
);
name_type!(
    /// A role a user can ask for; it decides the certificate's principals and limits.
    RoleName,
    "role"
);

/// A login name a certificate is valid for; sshd compares it literally, so only a small
/// safe alphabet is allowed (no wildcards, commas, spaces or control characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// Accepts 1-64 of ASCII letters, digits, `.`, `_`, `-`, `@`, not starting with `-`.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let ok = (1..=64).contains(&s.len())
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidName(format!(
                "invalid principal {s:?}: use 1-64 of A-Z a-z 0-9 . _ - @, not starting with -"
            )))
        }
    }

    /// The principal as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free text a person wrote (a reason, a comment): bounded, without control characters,
/// so that it cannot forge log lines or terminal output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    /// Longest accepted text, in characters.
    pub const MAX_CHARS: usize = 1024;

    /// Accepts 1-1024 characters with no control characters; `what` names the field.
    pub fn parse(s: &str, what: &str) -> Result<Self, InvalidName> {
        let chars = s.chars().count();
        if chars == 0 || s.trim().is_empty() {
            return Err(InvalidName(format!("{what} is required")));
        }
        if chars > Self::MAX_CHARS {
            return Err(InvalidName(format!(
                "{what} is too long: {chars} characters, at most {}",
                Self::MAX_CHARS
            )));
        }
        if let Some(c) = s.chars().find(|&c| is_forbidden_char(c)) {
            return Err(InvalidName(format!(
                "{what} contains a control or invisible character (U+{:04X})",
                c as u32
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters, line and paragraph separators (a new line in a log viewer), and
/// every code point that shows as nothing or reorders text, so that a reason shown to an
/// approver is all there is to it: Unicode's `Default_Ignorable_Code_Point` set (bidi
/// marks and overrides, zero-width characters, soft hyphen, word joiner and invisible
/// operators, variation selectors, the combining grapheme joiner, Hangul fillers, Mongolian
/// free variation selectors, tag characters, and the code points reserved as such), plus
/// the Braille blank U+2800 and the interlinear annotation controls, which also show as
/// nothing; the other format characters (Cf); and private-use code points.
fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{34f}'
                | '\u{61c}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
                // The other format characters (General_Category Cf): prepended number
                // marks, the Syriac abbreviation mark, Egyptian hieroglyph format controls.
                | '\u{600}'..='\u{605}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1345f}'
                // Private use: no meaning anyone agreed on, drawn as anything or nothing.
                | '\u{e000}'..='\u{f8ff}'
                | '\u{f0000}'..='\u{10ffff}'
        )
}

/// A certificate serial as people type it: a positive decimal number below 2^64 (serials
/// are never 0).
pub fn parse_serial(s: &str) -> Result<u64, InvalidName> {
    use std::num::IntErrorKind;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidName(
            "serial must be a positive decimal number (digits only)".into(),
        ));
    }
    match s.parse::<u64>() {
        Ok(0) => Err(InvalidName("serial 0 is never issued".into())),
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Err(InvalidName(
            "serial is too large: serials are below 2^64 (18446744073709551616)".into(),
        )),
        Err(_) => Err(InvalidName(
            "serial must be a positive decimal number (digits only)".into(),
        )),
    }
}

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

/// Longest duration anything in countersign accepts (a year); keeps time arithmetic far
/// from overflow whatever a config or request says.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a positive human duration such as `45m`, `2h`, `1h30m`, whole seconds only.
pub fn parse_duration(s: &str, what: &str) -> Result<Duration, InvalidName> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| InvalidName(format!("invalid {what} {s:?}: {e}")))?;
    if d.subsec_nanos() != 0 {
        return Err(InvalidName(format!(
            "invalid {what} {s:?}: use whole seconds"
        )));
    }
    if d.is_zero() {
        return Err(InvalidName(format!(
            "invalid {what} {s:?}: must be positive"
        )));
    }
    if d > MAX_DURATION {
        return Err(InvalidName(format!(
            "invalid {what} {s:?}: at most 366 days"
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_ascii_only() {
        assert!(UserName::parse("alice").is_ok());
        assert!(UserName::parse("a.b_c-9").is_ok());
        for bad in [
            "",
            "Alice",
            "-x",
            ".x",
            "al ice",
            "аlice",
            "a:b",
            &"a".repeat(65),
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn principals_reject_wildcards_commas_and_leading_dash() {
        assert!(Principal::parse("Postgres@db.example_1").is_ok());
        for bad in [
            "",
            "*",
            "a,b",
            "a b",
            "-oProxy",
            "a\nb",
            "ä",
            &"p".repeat(65),
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn texts_reject_control_and_bidi_characters() {
        assert!(Text::parse("INC-4211: replica lag ✓", "reason").is_ok());
        assert!(Text::parse("", "reason").is_err());
        assert!(Text::parse("   ", "reason").is_err());
        assert!(Text::parse("a\nb", "reason").is_err());
        assert!(Text::parse("a\u{202e}b", "reason").is_err());
        for trick in [
            "\u{2028}",
            "\u{2029}",
            "\u{61c}",
            "\u{2060}",
            "\u{ad}",
            "\u{e0041}",
        ] {
            assert!(
                Text::parse(&format!("a{trick}b"), "reason").is_err(),
                "{trick:?}"
            );
        }
        assert!(Text::parse("café, naïve, 日本語, emoji 👍🏽", "reason").is_ok());
        assert!(
            Text::parse("한국어 ᄀ ᅡ", "reason").is_ok(),
            "real Hangul stays"
        );
        assert!(Text::parse(&"x".repeat(1024), "reason").is_ok());
        assert!(Text::parse(&"x".repeat(1025), "reason").is_err());
    }

    /// Every `Default_Ignorable_Code_Point` (Unicode 15.1, DerivedCoreProperties.txt),
    /// the Braille blank and the Hangul fillers: each shows as nothing, so a reason could
    /// carry text an approver does not see.
    const INVISIBLE: &[(u32, u32)] = &[
        (0x00ad, 0x00ad),
        (0x034f, 0x034f),
        (0x061c, 0x061c),
        (0x115f, 0x1160),
        (0x17b4, 0x17b5),
        (0x180b, 0x180f),
        (0x200b, 0x200f),
        (0x202a, 0x202e),
        (0x2060, 0x206f),
        (0x2800, 0x2800),
        (0x3164, 0x3164),
        (0xfe00, 0xfe0f),
        (0xfeff, 0xfeff),
        (0xffa0, 0xffa0),
        (0xfff0, 0xfff8),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0000, 0xe0fff),
        (0x0600, 0x0605),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x08e2, 0x08e2),
        (0x110bd, 0x110bd),
        (0x13430, 0x1345f),
        (0xe000, 0xf8ff),
        (0xf0000, 0xf0010),
        (0x10fff0, 0x10fffd),
    ];

    #[test]
    fn texts_reject_every_default_ignorable_and_invisible_code_point() {
        for &(lo, hi) in INVISIBLE {
            for c in (lo..=hi).filter_map(char::from_u32) {
                let e = Text::parse(&format!("ok{c}ok"), "reason").unwrap_err();
                assert!(
                    e.0.contains(&format!("U+{:04X}", c as u32)),
                    "{:04X}: {e}",
                    c as u32
                );
            }
        }
        // The brief's named examples, spelled out: variation selectors (also the emoji
        // one), combining grapheme joiner, Hangul fillers, Braille blank.
        for c in [
            '\u{fe0f}',
            '\u{e0100}',
            '\u{e01ef}',
            '\u{34f}',
            '\u{115f}',
            '\u{3164}',
            '\u{ffa0}',
            '\u{2800}',
        ] {
            assert!(Text::parse(&format!("a{c}b"), "reason").is_err(), "{c:?}");
        }
    }

    proptest::proptest! {
        /// Whatever surrounds it, one invisible code point makes a text refused; and text
        /// made only of visible characters is accepted as written.
        #[test]
        fn a_text_with_an_invisible_code_point_is_always_refused(
            before in "[a-zA-Z0-9 .,:!?éü日本👍-]{0,40}",
            after in "[a-zA-Z0-9 .,:!?éü日本👍-]{0,40}",
            pick in 0usize..1000,
        ) {
            let all: Vec<char> = INVISIBLE
                .iter()
                .flat_map(|&(lo, hi)| (lo..=hi).filter_map(char::from_u32))
                .collect();
            let c = all[pick % all.len()];
            let hidden = format!("{before}{c}{after}");
            proptest::prop_assert!(Text::parse(&hidden, "reason").is_err());
            let visible = format!("x{before}{after}");
            proptest::prop_assert_eq!(Text::parse(&visible, "reason").map(|t| t.0), Ok(visible.clone()));
        }
    }

    #[test]
    fn request_ids_made_later_sort_later_within_a_year() {
        let mut rng = rand::rng();
        let a = RequestId::new_at(1_800_000_000, &mut rng);
        let b = RequestId::new_at(1_800_000_001, &mut rng);
        let c = RequestId::new_at(1_800_086_400, &mut rng);
        assert!(a.as_str()[..7] < b.as_str()[..7] && b.as_str() < c.as_str());
        assert_eq!(RequestId::parse(a.as_str()), Ok(a.clone()));
        assert_ne!(a, RequestId::new_at(1_800_000_000, &mut rng));
    }

    #[test]
    fn request_ids_round_trip_and_reject_other_shapes() {
        let id = RequestId::random(&mut rand::rng());
        assert_eq!(RequestId::parse(id.as_str()), Ok(id));
        for bad in [
            "r-",
            "r-ABCDEFGHIJKL",
            "../etc/passwd",
            "r-abcdefghijk1",
            "x-abcdefghijkl",
        ] {
            assert!(RequestId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations_must_be_positive_whole_and_bounded() {
        assert_eq!(parse_duration("45m", "ttl"), Ok(Duration::from_secs(2700)));
        assert_eq!(
            parse_duration("1h 30m", "ttl"),
            Ok(Duration::from_secs(5400))
        );
        for bad in [
            "0s",
            "-5m",
            "abc",
            "1500ms",
            "400days",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad, "ttl").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_bad_serial_is_refused_with_what_is_wrong_with_it() {
        assert_eq!(parse_serial("42"), Ok(42));
        assert_eq!(parse_serial("18446744073709551615"), Ok(u64::MAX));
        let why = |s: &str| parse_serial(s).unwrap_err().0;
        assert!(why("0").contains("never issued"));
        assert!(why("18446744073709551616").contains("too large"));
        for bad in ["", "abc", "-1", "+7", "1.5", "0x10", " 7"] {
            assert!(why(bad).contains("decimal number"), "{bad:?}");
        }
    }
}
