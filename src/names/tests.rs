//! Tests of the names: what each kind accepts and refuses.

use std::time::Duration;

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
        an_invisible_code_point_is_refused_between(&before, &after, pick)?;
    }
}

/// The body of the property above, outside the macro so that rustfmt formats it.
fn an_invisible_code_point_is_refused_between(
    before: &str,
    after: &str,
    pick: usize,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let all: Vec<char> = INVISIBLE
        .iter()
        .flat_map(|&(lo, hi)| (lo..=hi).filter_map(char::from_u32))
        .collect();
    let c = all[pick % all.len()];
    let hidden = format!("{before}{c}{after}");
    proptest::prop_assert!(Text::parse(&hidden, "reason").is_err());
    let visible = format!("x{before}{after}");
    proptest::prop_assert_eq!(
        Text::parse(&visible, "reason").map(|t| t.as_str().to_owned()),
        Ok(visible.clone())
    );
    Ok(())
}

#[test]
fn request_ids_made_later_sort_later_as_text_within_a_year() {
    use chrono::TimeZone;
    let mut rng = rand::rng();
    let at = |ms: i64| chrono::Utc.timestamp_millis_opt(ms).single().unwrap();
    // Every millisecond of a minute, then days apart up to a year: each later id sorts
    // after the earlier ones as text (the time is written in ASCII order), whatever
    // characters the time's digits cross. From the start of a 2^35 ms (398-day) cycle.
    let start: i64 = 52 << 35;
    let times = (0..60_000)
        .map(|ms| start + ms)
        .chain((1..=397).map(|day| start + day * 86_400_000));
    let ids: Vec<RequestId> = times
        .map(|ms| RequestId::new_at(at(ms), &mut rng))
        .collect();
    for pair in ids.windows(2) {
        assert!(
            pair[0].as_str() < pair[1].as_str(),
            "{} !< {}",
            pair[0],
            pair[1]
        );
    }
    let a = &ids[0];
    assert_eq!(RequestId::parse(a.as_str()), Ok(a.clone()));
    // Ids of one millisecond share their first 9 characters and differ after.
    let same: Vec<RequestId> = (0..50)
        .map(|_| RequestId::new_at(at(start), &mut rng))
        .collect();
    assert!(same.iter().all(|id| id.as_str()[..9] == a.as_str()[..9]));
    assert!(
        same.iter().any(|id| id != a),
        "25 random bits after the time"
    );
    // Before 1970 counts as 0 ms: still an id of the accepted shape.
    let old = RequestId::new_at(at(-1_000), &mut rng);
    assert_eq!(RequestId::parse(old.as_str()), Ok(old.clone()));
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
    // A number alone is most likely minutes or hours, not humantime's "30sec or 30ms".
    let said = parse_duration("30", "ttl").unwrap_err().to_string();
    assert!(said.contains("30m, 30h or 30d"), "{said}");
}

#[test]
fn a_bad_serial_is_refused_with_what_is_wrong_with_it() {
    assert_eq!(Serial::parse("42").map(Serial::get), Ok(42));
    assert_eq!(
        Serial::parse("18446744073709551615").map(Serial::get),
        Ok(u64::MAX)
    );
    let why = |s: &str| Serial::parse(s).unwrap_err().0;
    assert!(why("0").contains("never issued"));
    assert!(why("18446744073709551616").contains("too large"));
    for bad in ["", "abc", "-1", "+7", "1.5", "0x10", " 7"] {
        assert!(why(bad).contains("decimal number"), "{bad:?}");
    }
}
