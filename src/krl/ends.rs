//! The expiry times a KRL's comment carries (`countersign ends=M,M,...`, see `krl.rs`):
//! written in base 36, read back all or nothing.

use std::collections::BTreeMap;

/// What a comment says before the expiry times.
pub(super) const ENDS: &str = " ends=";

/// The expiry times a comment of ours gives for `serials` of a KRL made at `generated`
/// (none if it gives none, or not one for each serial, or does not parse: nothing is
/// guessed).
pub(super) fn expires_in(comment: &[u8], serials: &[u64], generated: u64) -> BTreeMap<u64, u64> {
    let parsed = || {
        let text = std::str::from_utf8(comment).ok()?;
        let (_, ends) = text.split_once(ENDS)?;
        // `?`: not known (kept out of the map); anything else that does not parse spoils
        // the whole list.
        let minutes = ends
            .split(',')
            .map(|m| match m {
                "?" => Some(None),
                m => u64::from_str_radix(m, 36).ok().map(Some),
            })
            .collect::<Option<Vec<Option<u64>>>>()?;
        (minutes.len() == serials.len()).then(|| {
            let at = |m: u64| generated.saturating_add(m.saturating_mul(60));
            let known = serials.iter().copied().zip(minutes);
            known.filter_map(|(s, m)| Some((s, at(m?)))).collect()
        })
    };
    parsed().unwrap_or_default()
}

/// Appends `n` in base 36 (lower case).
pub(super) fn push_base36(out: &mut String, mut n: u64) {
    // u64::MAX is 13 digits in base 36.
    let mut digits = [b'0'; 13];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}
