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
use crate::service::rfc3339;

/// A revocation kept: the serial, and when its certificate expires (Unix seconds).
pub(super) type Kept = (u64, u64);

/// What a fetched KRL leaves out of the file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Dropped {
    /// Serials whose certificates are still valid: kept, ascending.
    pub kept: Vec<Kept>,
    /// Serials the file gives no expiry for (a file from a CA release before KRLs said
    /// them, or made by hand or by `ssh-keygen`), or 1 when either KRL is not wholly
    /// understood (ranges, key IDs, plain keys): nothing says whether they ended, so a
    /// KRL older than the file that drops one is refused, as before.
    pub unknown: usize,
    /// Serials both list, for which the file knows a later end than the KRL says (or the
    /// KRL says none): the file keeps its end (a CA that forgot a certificate may list
    /// its serial again with a shorter one).
    pub longer: usize,
}

/// What `new` (the fetched KRL) leaves out of `old` (the file) at `now`.
pub(super) fn dropped(old: &KrlSummary, new: &KrlSummary, now: u64) -> Dropped {
    let (Some(old_serials), Some(new_serials)) = (&old.serials, &new.serials) else {
        return Dropped {
            unknown: 1,
            ..Dropped::default()
        };
    };
    let listed: BTreeSet<u64> = new_serials.iter().copied().collect();
    let mut out = Dropped::default();
    // Serial 0 is no certificate's (and no KRL may list it): a hand-edited file's.
    for s in old_serials.iter().filter(|s| **s != 0) {
        let end = old.expires.get(s).copied();
        if listed.contains(s) {
            if end.is_some_and(|e| e > now && new.expires.get(s).is_none_or(|n| *n < e)) {
                out.longer += 1;
            }
            continue;
        }
        match end {
            Some(end) if end > now => out.kept.push((*s, end)),
            Some(_) => {}
            None => out.unknown += 1,
        }
    }
    out
}

/// The KRL to write: the fetched one's version, date and serials, each with the later
/// of the two ends the KRL and the file `old` give (or none known), and the `kept` ones
/// with theirs, for `ca`.
pub(super) fn with_kept(
    new: &KrlSummary,
    old: &KrlSummary,
    ca: &KeyData,
    kept: &[Kept],
) -> anyhow::Result<Vec<u8>> {
    let end = |s: &u64| {
        let ends = [new.expires.get(s), old.expires.get(s)];
        ends.into_iter()
            .flatten()
            .max()
            .copied()
            .unwrap_or(krl::UNKNOWN_END)
    };
    let fetched = new.serials.iter().flatten().map(|s| (*s, end(s)));
    let (serials, expires): (Vec<u64>, Vec<u64>) = fetched.chain(kept.iter().copied()).unzip();
    // Not the kept serials again: sshd reads the whole file at every authentication.
    let comment = match kept.len() {
        0 => "countersign".to_owned(),
        n => format!("countersign, {n} kept here"),
    };
    Ok(krl::encode(&KrlContents {
        version: new.version,
        generated_date: new.generated_date,
        comment: &comment,
        ca,
        serials: &serials,
        expires: &expires,
    })?)
}

/// What to tell the operator when revocations were kept (the round then fails); `host`:
/// of the host KRL.
pub(super) fn complaint(out: &std::path::Path, version: u64, kept: &[Kept], host: bool) -> String {
    const SHOWN: usize = 10;
    let time = |end: u64| i64::try_from(end).map_or_else(|_| end.to_string(), rfc3339);
    let listed: Vec<String> = kept
        .iter()
        .take(SHOWN)
        .map(|(s, end)| format!("serial {s} (expires {})", time(*end)))
        .collect();
    let more = match kept.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    // One command a serial, each ready to run (an operator's trial ran the one example
    // and met the next serial at the next round).
    let commands: Vec<String> = kept
        .iter()
        .map(|(s, end)| {
            format!(
                "  countersign krl forgotten --serial {s} --valid-before {}{} --reason TEXT",
                time(*end),
                if host { " --host" } else { "" }
            )
        })
        .collect();
    format!(
        "the CA's KRL (version {version}) no longer lists {} revoked certificate(s) that \
         have not expired: {}{more}. Was the CA's data folder restored from an older copy, or \
         is its clock ahead of this host's? {} keeps them revoked until they expire, with \
         the CA's own revocations. Have an admin list them again on the CA \
         (docs/operations.md, \"A KRL that forgets\"):\n{}",
        kept.len(),
        listed.join(", "),
        out.display(),
        commands.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> KeyData {
        let key = ssh_key::PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519);
        key.unwrap().public_key().key_data().clone()
    }

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
        let early = dropped(&old, &new, 200);
        assert_eq!((early.kept, early.unknown), (vec![(2, 500)], 1));
        assert_eq!(dropped(&old, &new, 500).kept, vec![]);
        let foreign = KrlSummary {
            serials: None,
            ..new.clone()
        };
        assert_eq!(dropped(&old, &foreign, 200).unknown, 1, "not understood");
        // Serial 0 (a hand-edited file) is never kept: no KRL may list it.
        let zero = summary(&[0], &[(0, 900)]);
        assert_eq!(dropped(&zero, &new, 200), Dropped::default());
        // A serial both list whose end the KRL shortens keeps the file's later one.
        let shorter = summary(&[3, 7], &[(3, 300), (7, 800)]);
        assert_eq!(dropped(&old, &shorter, 200).longer, 1);
        let merged = with_kept(&shorter, &old, &ca(), &[]).unwrap();
        let read = krl::read(&merged).unwrap();
        assert_eq!(read.expires.get(&3), Some(&900));
        // A serial no one gives an end for is written as unknown, never as ended.
        let bare = summary(&[7, 8], &[]);
        let merged = with_kept(&bare, &old, &ca(), &[]).unwrap();
        let read = krl::read(&merged).unwrap();
        assert_eq!((read.expires.get(&7), read.expires.get(&8)), (None, None));
        assert_eq!(read.serials, Some(vec![7, 8]));
    }
}
