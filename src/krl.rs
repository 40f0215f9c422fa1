//! An OpenSSH Key Revocation List writer (the serial-list form of PROTOCOL.krl).
//!
//! No crate writes KRLs, so this is the format by hand: a header (magic, format version,
//! KRL version, generated date, flags, reserved, comment) and one certificates section
//! for our CA holding one serial-list subsection. sshd reads the file named by
//! `RevokedKeys` on every authentication; `ssh-keygen -Q` reads it too (tested).

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
    /// Unix seconds; callers pass the newest revocation time so equal state gives equal bytes.
    pub generated_date: u64,
    /// Free text, e.g. "countersign".
    pub comment: &'a str,
    /// The CA whose certificates are revoked.
    pub ca: &'a KeyData,
    /// Revoked serials (non-zero); order and duplicates do not matter.
    pub serials: &'a [u64],
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
}

/// The KRL bytes.
pub fn encode(krl: &KrlContents<'_>) -> Result<Vec<u8>, KrlError> {
    let mut out = Vec::with_capacity(128 + 8 * krl.serials.len());
    out.extend_from_slice(&KRL_MAGIC.to_be_bytes());
    out.extend_from_slice(&KRL_FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&krl.version.to_be_bytes());
    out.extend_from_slice(&krl.generated_date.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // flags
    put_string(&mut out, b"")?; // reserved
    put_string(&mut out, krl.comment.as_bytes())?;
    if krl.serials.is_empty() {
        return Ok(out);
    }
    let mut serials = krl.serials.to_vec();
    serials.sort_unstable();
    serials.dedup();
    if serials.first() == Some(&0) {
        return Err(KrlError::ZeroSerial);
    }
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
    section.push(KRL_SECTION_CERT_SERIAL_LIST);
    put_string(&mut section, &list)?;
    out.push(KRL_SECTION_CERTIFICATES);
    put_string(&mut out, &section)?;
    Ok(out)
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
    fn empty_krl_is_just_the_header() {
        let ca = ca();
        let bytes = encode(&KrlContents {
            version: 3,
            generated_date: 1_800_000_000,
            comment: "c",
            ca: &ca,
            serials: &[],
        })
        .unwrap();
        assert_eq!(&bytes[..8], b"SSHKRL\n\0");
        assert_eq!(&bytes[8..12], &1u32.to_be_bytes());
        assert_eq!(&bytes[12..20], &3u64.to_be_bytes());
        assert_eq!(bytes.len(), 8 + 4 + 8 + 8 + 8 + 4 + 4 + 1);
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
        })
        .unwrap();
        let b = encode(&KrlContents {
            version: 1,
            generated_date: 0,
            comment: "",
            ca: &ca,
            serials: &[2, 9],
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
                serials: &[0, 5]
            })
            .is_err()
        );
    }
}
