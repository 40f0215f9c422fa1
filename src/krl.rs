//! An OpenSSH Key Revocation List writer (the serial-list form of PROTOCOL.krl), and a
//! reader of the little `countersign krl` needs to compare two KRLs (version, CAs,
//! serials and when each certificate expires).
//!
//! No crate writes KRLs, so this is the format by hand: a header (magic, format version,
//! KRL version, generated date, flags, reserved, comment) and one certificates section
//! for our CA holding one serial-list subsection. sshd reads the file named by
//! `RevokedKeys` on every authentication; `ssh-keygen -Q` reads it too (tested).
//!
//! The comment also says when each listed certificate expires: `countersign ends=M,M,...`,
//! for each serial in ascending order the minutes after the KRL's generated date until
//! its certificate expires, in base 36, rounded up (sshd and ssh-keygen ignore comments;
//! a few bytes a serial, since sshd reads the whole file at every authentication). The
//! KRL is signed whole, so a server that fetched it knows, from the CA, how long each
//! revocation must stay: a KRL that drops one earlier came from a CA that forgot it
//! (`cli/krl/carry.rs`).

use std::collections::BTreeMap;

use ssh_key::encoding::Encode;
use ssh_key::public::KeyData;

/// `"SSHKRL\n\0"`.
const KRL_MAGIC: u64 = 0x5353_484b_524c_0a00;
const KRL_FORMAT_VERSION: u32 = 1;
const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;

/// What goes into one KRL.
#[derive(Debug, Clone)]
pub struct KrlContents<'a> {
    /// Increases with every revocation.
    pub version: u64,
    /// Unix seconds: when the KRL was made (signed with it, so a fetcher can tell its age).
    pub generated_date: u64,
    /// Free text, e.g. "countersign".
    pub comment: &'a str,
    /// The CA whose certificates are revoked.
    pub ca: &'a KeyData,
    /// Revoked serials (non-zero); order and duplicates do not matter.
    pub serials: &'a [u64],
    /// When each of `serials` expires (its certificate's `valid_before`, Unix seconds, or
    /// [`UNKNOWN_END`]), in the same order; empty to say nothing.
    pub expires: &'a [u64],
}

/// Why a KRL could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KrlError {
    /// The CA key would not encode.
    #[error("encoding the CA key")]
    Key(#[source] ssh_key::Error),
    /// A section longer than an SSH string can hold (4 GiB).
    #[error("the KRL is too large to encode")]
    TooLarge(#[source] ssh_key::encoding::Error),
    /// Serial 0 cannot be revoked by serial.
    #[error("serial 0 cannot be listed in a KRL")]
    ZeroSerial,
    /// `expires` is neither empty nor as long as `serials`.
    #[error("{0} expiry times for {1} serials")]
    Expiries(usize, usize),
}

mod ends;
use ends::{ENDS, expires_in, push_base36};

/// In [`KrlContents::expires`]: nothing says when this serial's certificate expires
/// (written `?`; only `krl --out` writes it, for a serial an older CA release listed).
pub const UNKNOWN_END: u64 = u64::MAX;

/// The KRL bytes.
pub fn encode(krl: &KrlContents<'_>) -> Result<Vec<u8>, KrlError> {
    let mut out = Vec::with_capacity(128 + 8 * krl.serials.len());
    out.extend_from_slice(&KRL_MAGIC.to_be_bytes());
    out.extend_from_slice(&KRL_FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&krl.version.to_be_bytes());
    out.extend_from_slice(&krl.generated_date.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // flags
    put_string(&mut out, b"")?; // reserved
    if !krl.expires.is_empty() && krl.expires.len() != krl.serials.len() {
        return Err(KrlError::Expiries(krl.expires.len(), krl.serials.len()));
    }
    // Sorted by serial, one entry each (the latest expiry if a serial came twice).
    let mut entries: Vec<(u64, u64)> = match krl.expires {
        [] => krl.serials.iter().map(|&s| (s, 0)).collect(),
        expires => krl
            .serials
            .iter()
            .copied()
            .zip(expires.iter().copied())
            .collect(),
    };
    entries.sort_unstable();
    entries.dedup_by(|later, kept| {
        later.0 == kept.0 && {
            kept.1 = later.1;
            true
        }
    });
    if entries.first().is_some_and(|e| e.0 == 0) {
        return Err(KrlError::ZeroSerial);
    }
    let mut comment = krl.comment.to_owned();
    if !krl.expires.is_empty() && !entries.is_empty() {
        comment.push_str(ENDS);
        for (i, (_, end)) in entries.iter().enumerate() {
            if i > 0 {
                comment.push(',');
            }
            if *end == UNKNOWN_END {
                comment.push('?');
                continue;
            }
            // Rounded up: a server keeps a revocation a little longer, never shorter.
            let minutes = end.saturating_sub(krl.generated_date).div_ceil(60);
            push_base36(&mut comment, minutes);
        }
    }
    put_string(&mut out, comment.as_bytes())?;
    // The certificates section is there even when nothing is revoked: it names the CA,
    // so a KRL of another CA is told apart from an empty one (`read`).
    let serials: Vec<u64> = entries.iter().map(|e| e.0).collect();
    let mut list = Vec::with_capacity(8 * serials.len());
    for s in serials {
        list.extend_from_slice(&s.to_be_bytes());
    }
    let ca_blob = ssh_key::PublicKey::new(krl.ca.clone(), "")
        .to_bytes()
        .map_err(KrlError::Key)?;
    let mut section = Vec::new();
    put_string(&mut section, &ca_blob)?;
    put_string(&mut section, b"")?; // reserved
    if !list.is_empty() {
        section.push(KRL_SECTION_CERT_SERIAL_LIST);
        put_string(&mut section, &list)?;
    }
    out.push(KRL_SECTION_CERTIFICATES);
    put_string(&mut out, &section)?;
    Ok(out)
}

/// What [`read`] finds in a KRL: enough to tell whether one KRL may replace another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrlSummary {
    /// Its version number: a newer KRL has a higher one.
    pub version: u64,
    /// When it was made (unix seconds), as its header says.
    pub generated_date: u64,
    /// The CA public keys its certificate sections name.
    pub cas: Vec<KeyData>,
    /// The serials it revokes, ascending, when that is all it revokes (as ours do); `None`
    /// when it also revokes by range, bitmap or key ID, or has a section other than
    /// certificates (plain keys, fingerprints, signatures): not wholly understood here.
    pub serials: Option<Vec<u64>>,
    /// When the certificates of listed serials expire, as its comment says (ours do;
    /// empty for any other KRL, or a comment that does not parse).
    pub expires: BTreeMap<u64, u64>,
}

/// Why bytes are not a KRL.
#[derive(Debug, thiserror::Error)]
#[error("not an OpenSSH KRL: {0}")]
pub struct NotAKrl(String);

/// Reads a KRL's version and the CAs its certificate sections name (any KRL
/// `ssh-keygen` writes, not only ours); the rest is skipped.
pub fn read(bytes: &[u8]) -> Result<KrlSummary, NotAKrl> {
    let mut r = bytes;
    if take_u64(&mut r)? != KRL_MAGIC {
        return Err(NotAKrl("bad magic".into()));
    }
    if take(&mut r, 4)? != KRL_FORMAT_VERSION.to_be_bytes() {
        return Err(NotAKrl("unknown format version".into()));
    }
    let version = take_u64(&mut r)?;
    let generated_date = take_u64(&mut r)?;
    take(&mut r, 8)?; // flags
    take_string(&mut r)?; // reserved
    let comment = take_string(&mut r)?;
    let mut cas = Vec::new();
    let mut serials = Some(Vec::new());
    while let Some((&kind, rest)) = r.split_first() {
        r = rest;
        let mut section = take_string(&mut r)?;
        if kind != KRL_SECTION_CERTIFICATES {
            serials = None;
        } else {
            let blob = take_string(&mut section)?;
            let key = ssh_key::PublicKey::from_bytes(blob)
                .map_err(|e| NotAKrl(format!("a CA key does not parse: {e}")))?;
            cas.push(key.key_data().clone());
            take_string(&mut section)?; // reserved
            while let Some((&sub, rest)) = section.split_first() {
                section = rest;
                let mut body = take_string(&mut section)?;
                match (sub, serials.as_mut()) {
                    (KRL_SECTION_CERT_SERIAL_LIST, Some(list)) => {
                        while !body.is_empty() {
                            list.push(take_u64(&mut body)?);
                        }
                    }
                    (KRL_SECTION_CERT_SERIAL_LIST, None) => {}
                    _ => serials = None,
                }
            }
        }
    }
    if let Some(list) = serials.as_mut() {
        list.sort_unstable();
        list.dedup();
    }
    let expires = match &serials {
        Some(list) => expires_in(comment, list, generated_date),
        None => Default::default(),
    };
    Ok(KrlSummary {
        version,
        generated_date,
        cas,
        serials,
        expires,
    })
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], NotAKrl> {
    if r.len() < n {
        return Err(NotAKrl("truncated".into()));
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Ok(head)
}

fn take_u64(r: &mut &[u8]) -> Result<u64, NotAKrl> {
    let b = take(r, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_be_bytes(a))
}

fn take_string<'a>(r: &mut &'a [u8]) -> Result<&'a [u8], NotAKrl> {
    let b = take(r, 4)?;
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    take(r, n)
}

/// An SSH `string`: uint32 length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), KrlError> {
    bytes.encode(out).map_err(KrlError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::{Algorithm, PrivateKey};

    fn ca() -> KeyData {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .key_data()
            .clone()
    }

    #[test]
    fn an_empty_krl_still_names_its_ca() {
        let ca = ca();
        let bytes = encode(&KrlContents {
            version: 3,
            generated_date: 1_800_000_000,
            comment: "c",
            ca: &ca,
            serials: &[],
            expires: &[],
        })
        .unwrap();
        assert_eq!(&bytes[..8], b"SSHKRL\n\0");
        assert_eq!(&bytes[8..12], &1u32.to_be_bytes());
        assert_eq!(&bytes[12..20], &3u64.to_be_bytes());
        let summary = read(&bytes).unwrap();
        assert_eq!(summary.version, 3);
        assert_eq!(summary.cas, vec![ca]);
    }

    #[test]
    fn read_finds_the_version_and_ca_of_a_krl_with_serials() {
        let ca = ca();
        let bytes = encode(&KrlContents {
            version: 7,
            generated_date: 0,
            comment: "",
            ca: &ca,
            serials: &[5, 9],
            expires: &[],
        })
        .unwrap();
        assert_eq!(
            read(&bytes).unwrap(),
            KrlSummary {
                version: 7,
                generated_date: 0,
                cas: vec![ca],
                serials: Some(vec![5, 9]),
                expires: Default::default(),
            }
        );
        assert!(read(&bytes[..bytes.len() - 3]).is_err());
        assert!(read(b"not a krl at all, not at all").is_err());
    }

    #[test]
    fn serials_are_sorted_and_deduplicated() {
        let ca = ca();
        let a = encode(&KrlContents {
            version: 1,
            generated_date: 0,
            comment: "",
            ca: &ca,
            serials: &[9, 2, 9],
            expires: &[],
        })
        .unwrap();
        let b = encode(&KrlContents {
            version: 1,
            generated_date: 0,
            comment: "",
            ca: &ca,
            serials: &[2, 9],
            expires: &[],
        })
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            &a[a.len() - 16..],
            [2u64.to_be_bytes(), 9u64.to_be_bytes()].concat().as_slice()
        );
    }

    #[test]
    fn serial_zero_is_refused() {
        let ca = ca();
        assert!(
            encode(&KrlContents {
                version: 1,
                generated_date: 0,
                comment: "",
                ca: &ca,
                serials: &[0, 5],
                expires: &[],
            })
            .is_err()
        );
    }

    #[test]
    fn expiry_times_ride_in_the_comment_and_read_back_per_serial() {
        let ca = ca();
        let bytes = encode(&KrlContents {
            version: 4,
            generated_date: 60,
            comment: "countersign",
            ca: &ca,
            serials: &[9, 2, 9, 4],
            expires: &[900, 200, 950, 30],
        })
        .unwrap();
        let summary = read(&bytes).unwrap();
        assert_eq!(summary.serials, Some(vec![2, 4, 9]));
        // Minutes after the generated date, rounded up: 200 s is 3 minutes after 60, the
        // latest of serial 9's two is kept, one already past is at the date itself.
        assert_eq!(summary.expires, [(2, 240), (4, 60), (9, 960)].into());
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("countersign ends=3,0,f\x01"), "{text}");
        // Base 36 round-trips large values too (a 30-day host certificate: 43,200 min).
        let mut long = String::new();
        push_base36(&mut long, 43_200);
        assert_eq!(
            (long.as_str(), u64::from_str_radix(&long, 36)),
            ("xc0", Ok(43_200))
        );
        // Lengths must agree; a comment that does not parse gives no times at all.
        let odd = KrlContents {
            version: 4,
            generated_date: 60,
            comment: "countersign",
            ca: &ca,
            serials: &[2, 9],
            expires: &[1],
        };
        assert!(matches!(encode(&odd), Err(KrlError::Expiries(1, 2))));
        for comment in [
            "countersign ends=3,!",
            "countersign ends=3",
            "countersign ends=3,4,5",
            "other",
        ] {
            let bytes = encode(&KrlContents {
                comment,
                expires: &[],
                ..odd.clone()
            })
            .unwrap();
            let summary = read(&bytes).unwrap();
            assert!(
                summary.expires.is_empty(),
                "{comment}: {:?}",
                summary.expires
            );
        }
    }
}
