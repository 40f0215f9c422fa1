//! The signatures folder: read once, bounded, outside any transaction; each signer's
//! `<user>.sig` judged as an SSHSIG over the file's bytes by one of their keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::{Authority, Basis, MAX_FILES, MAX_SIGNATURE_BYTES, NAMESPACE, Rejected, Tally, Valid};
use crate::names::UserName;

/// A signatures folder as read once, before the decision (outside any transaction):
/// each `<user>.sig` file's bytes or why it could not be read, and the other names.
#[derive(Debug, Default)]
pub struct Folder {
    /// `<user>.sig` files by user.
    signatures: BTreeMap<UserName, Result<Vec<u8>, String>>,
    /// Every other name (printable characters only), and why it counts for nothing;
    /// sorted.
    others: Vec<(String, String)>,
}

impl Folder {
    /// Reads `dir` (no folder: no signatures), at most [`MAX_FILES`] entries. A folder
    /// that cannot be read, an entry that cannot, and entries past the limit are named
    /// among the files that count for nothing, with why.
    pub fn read(dir: &Path) -> Folder {
        let mut folder = Folder::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return folder,
            Err(e) => {
                let why = format!("the folder cannot be read: {e}");
                folder
                    .others
                    .push((printable(&dir.display().to_string()), why));
                return folder;
            }
        };
        for (i, entry) in entries.enumerate() {
            if i == MAX_FILES {
                let why = format!("more than {MAX_FILES} entries: the rest were not read");
                folder
                    .others
                    .push((printable(&dir.display().to_string()), why));
                break;
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let why = format!("an entry cannot be read: {e}");
                    folder
                        .others
                        .push((printable(&dir.display().to_string()), why));
                    continue;
                }
            };
            let raw = entry.file_name();
            let name = raw.to_string_lossy();
            match name.strip_suffix(".sig").map(UserName::parse) {
                Some(Ok(user)) => {
                    let read = read_small(&dir.join(&raw));
                    folder.signatures.insert(user, read);
                }
                _ => folder
                    .others
                    .push((printable(&name), "not named <user>.sig".to_owned())),
            }
        }
        folder.others.sort();
        folder
    }
}

/// A file name as it may be shown: anything but `[A-Za-z0-9._-]` becomes `?` (no
/// terminal escapes in `policy status` or the log).
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Judges `folder` as signatures over `bytes` by `authority`'s signers: each signer's
/// `<user>.sig`; any other file is listed as counting for nothing.
pub fn tally(authority: &Authority, bytes: &[u8], folder: &Folder) -> Tally {
    let mut out = Tally::default();
    let mut keys_seen = BTreeSet::new();
    for (user, read) in &folder.signatures {
        let file = format!("{user}.sig");
        let judged = read
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|text| judge(authority, user, bytes, text));
        match judged {
            Ok((valid, material)) if !keys_seen.insert(material.clone()) => {
                out.rejected.push(Rejected {
                    file,
                    why: format!(
                        "key {} (or the same key in another form) signed for another signer \
                         already",
                        valid.key
                    ),
                });
            }
            Ok((valid, _)) => out.valid.push(valid),
            Err(why) => out.rejected.push(Rejected { file, why }),
        }
    }
    for (name, why) in &folder.others {
        out.rejected.push(Rejected {
            file: name.clone(),
            why: why.clone(),
        });
    }
    out
}

/// `user`'s signature file: a signature that counts, or why not.
fn judge(
    authority: &Authority,
    user: &UserName,
    bytes: &[u8],
    text: &[u8],
) -> Result<(Valid, Vec<u8>), String> {
    let Some(keys) = authority.keys.get(user) else {
        return Err(not_a_signer(authority, user));
    };
    if authority.disabled.contains(user) {
        return Err(format!("{user} is disabled"));
    }
    let sig = SshSig::from_pem(text).map_err(|e| format!("not an SSH signature: {e}"))?;
    // RSA with SHA-1 (`ssh-rsa`), which `ssh-keygen -Y verify` refuses too.
    if sig.signature().algorithm() == (ssh_key::Algorithm::Rsa { hash: None }) {
        return Err("an RSA signature with SHA-1 (ssh-rsa): sign with rsa-sha2-512".into());
    }
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "signed in namespace {:?}, not {NAMESPACE:?}",
            sig.namespace()
        ));
    }
    let public = PublicKey::new(sig.public_key().clone(), "");
    let key = public.fingerprint(HashAlg::Sha256).to_string();
    if !keys.contains(&key) {
        return Err(format!("key {key} is not one of {user}'s keys"));
    }
    public
        .verify(NAMESPACE, bytes, &sig)
        .map_err(|e| format!("key {key}: the signature is not over this file's bytes ({e})"))?;
    if !crate::pubkey::signature_fits_key(&sig) || !crate::pubkey::user_was_present(&sig) {
        return Err(format!(
            "key {key}: a signature not of the key's algorithm, or a security key's made \
             without a touch (\"user present\" off)"
        ));
    }
    let material = crate::pubkey::material_of(sig.public_key());
    let valid = Valid {
        user: user.to_string(),
        key,
    };
    Ok((valid, material))
}

/// Why `user`'s signature does not count: whose signers decide.
fn not_a_signer(authority: &Authority, user: &UserName) -> String {
    match authority.basis {
        Basis::Running => format!(
            "{user} is not a signer of the policy in force (version {}): a file cannot \
             appoint its own signers",
            authority.signing.version
        ),
        Basis::Bootstrap => format!("{user} is not a signer of this policy"),
    }
}

/// A signature file's bytes, if it is a regular file of a plausible size.
/// A symbolic link is not followed and a FIFO does not block the reader.
fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read (a regular file, not a link, is needed): {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut out = Vec::new();
    file.take(MAX_SIGNATURE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot read: {e}"))?;
    if out.len() as u64 > MAX_SIGNATURE_BYTES {
        return Err("too large for a signature".into());
    }
    Ok(out)
}
