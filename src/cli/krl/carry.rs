//! Revocations a fetched KRL drops before their certificates expire are kept.
//!
//! A CA whose whole data folder comes back from an older copy (key, database and mark
//! together, which the CA host cannot notice: SECURITY.md T14) has forgotten the
//! revocations made since, and its next revocations bring the KRL version back up to the
//! one servers hold: a version check alone would then let its KRL un-revoke them (found
//! by an operator's trial and a penetration test, 2026-12-07). Our KRLs say, signed, when
//! each listed certificate expires (`krl.rs`). A serial the file lists whose certificate
//! is still valid by this host's clock — the clock sshd judges it by — and that the new
//! KRL leaves out is written back into the file beside the new KRL's serials, until it
//! expires, and the round fails loudly so that someone looks at the CA.

use std::collections::BTreeSet;

use ssh_key::public::KeyData;

use crate::krl::{self, KrlContents, KrlSummary};

/// A revocation kept: the serial, and when its certificate expires (Unix seconds).
pub(super) type Kept = (u64, u64);

/// The serials `old` (the file) lists that `new` (the fetched KRL) leaves out while their
/// certificates are still valid at `now`, ascending. Nothing when either KRL does not
/// list its serials one by one (not one of ours), or `old` gives no expiry for a serial
/// (a file written before KRLs said them: kept as before, by version alone).
pub(super) fn dropped_early(old: &KrlSummary, new: &KrlSummary, now: u64) -> Vec<Kept> {
    let (Some(old_serials), Some(new_serials)) = (&old.serials, &new.serials) else {
        return Vec::new();
    };
    let listed: BTreeSet<u64> = new_serials.iter().copied().collect();
    old_serials
        .iter()
        .filter(|s| !listed.contains(s))
        .filter_map(|s| {
            old.expires
                .get(s)
                .filter(|&&end| end > now)
                .map(|&end| (*s, end))
        })
        .collect()
}

/// The KRL to write: the fetched one's version, date and serials (with their expiry
/// times), and the `kept` ones with theirs, for `ca`.
pub(super) fn with_kept(new: &KrlSummary, ca: &KeyData, kept: &[Kept]) -> anyhow::Result<Vec<u8>> {
    let fetched = new
        .serials
        .iter()
        .flatten()
        .map(|s| (*s, new.expires.get(s).copied()));
    let (serials, expires): (Vec<u64>, Vec<u64>) = fetched
        .map(|(s, end)| (s, end.unwrap_or(0)))
        .chain(kept.iter().copied())
        .unzip();
    let listed: Vec<String> = kept.iter().map(|(s, _)| s.to_string()).collect();
    let comment = format!("countersign, kept here: {}", listed.join(","));
    Ok(krl::encode(&KrlContents {
        version: new.version,
        generated_date: new.generated_date,
        comment: &comment,
        ca,
        serials: &serials,
        expires: &expires,
    })?)
}

/// What to tell the operator when revocations were kept (the round then fails).
pub(super) fn complaint(out: &std::path::Path, version: u64, kept: &[Kept]) -> String {
    const SHOWN: usize = 10;
    let mut listed: Vec<String> = kept
        .iter()
        .take(SHOWN)
        .map(|(s, end)| {
            let end = i64::try_from(*end)
                .ok()
                .and_then(|t| chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0))
                .map_or_else(|| end.to_string(), |t| t.to_rfc3339());
            format!("serial {s} (expires {end})")
        })
        .collect();
    if kept.len() > SHOWN {
        listed.push(format!("and {} more", kept.len() - SHOWN));
    }
    format!(
        "the CA's KRL (version {version}) no longer lists {} revoked certificate(s) that \
         have not expired: {}. Was the CA's data folder restored from an older copy, or is \
         its clock ahead of this host's? {} keeps them revoked until they expire, with the \
         CA's own revocations; revoke them again on the CA (docs/operations.md, \"A KRL \
         that forgets\")",
        kept.len(),
        listed.join(", "),
        out.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(serials: &[u64], expires: &[(u64, u64)]) -> KrlSummary {
        KrlSummary {
            version: 1,
            generated_date: 0,
            cas: Vec::new(),
            serials: Some(serials.to_vec()),
            expires: expires.iter().copied().collect(),
        }
    }

    #[test]
    fn only_a_listed_serial_dropped_before_it_expires_is_kept() {
        let old = summary(&[1, 2, 3, 4], &[(1, 100), (2, 500), (3, 900)]);
        let new = summary(&[3, 7], &[(3, 900), (7, 800)]);
        // 1 expired; 2 dropped early; 3 still listed; 4 has no expiry (an older file).
        assert_eq!(dropped_early(&old, &new, 200), vec![(2, 500)]);
        assert_eq!(dropped_early(&old, &new, 500), vec![]);
        let foreign = KrlSummary {
            serials: None,
            ..new.clone()
        };
        assert_eq!(dropped_early(&old, &foreign, 200), vec![]);
    }
}
