//! Separation of duties for the policy itself: a configuration file with a `[policy]`
//! section takes effect only with enough valid OpenSSH signatures (SSHSIG, namespace
//! [`NAMESPACE`]) over its exact bytes, by the signers of the policy in force.
//!
//! Whose signatures count is decided by the *running* policy (the one the last
//! `policy.loaded` recorded), so a new file cannot appoint its own signers; only the
//! first signed policy — no policy recorded, or a running one without `[policy]` — is
//! signed by its own signers (bootstrap). `version` must grow with every change, so an
//! older file with its once-valid signatures is refused. Signatures live beside the file,
//! one per signer: `<config file>.sig.d/<user>.sig`. Nothing here touches the database:
//! the caller adds the signers' registered keys and disabled marks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ssh_key::{HashAlg, PublicKey, SshSig};

use crate::names::UserName;

/// The SSHSIG namespace of policy signatures (`ssh-keygen -Y sign -n countersign-policy`).
pub const NAMESPACE: &str = "countersign-policy";

/// Largest signature file read (an SSHSIG of any key type is a few KiB).
const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// Most other files of the signatures folder listed as counting for nothing.
const MAX_FILES: usize = 256;

/// `[policy]`: who must sign the configuration file, how many of them, and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signing {
    /// The people whose keys may sign (`user:NAME` in the file), sorted, distinct.
    pub signers: Vec<UserName>,
    /// Distinct signers needed (1..=signers).
    pub signatures_required: u32,
    /// Grows with every signed change.
    pub version: u64,
}

/// The folder of a configuration file's signatures: `<config file>.sig.d`.
pub fn signatures_dir(config: &Path) -> PathBuf {
    let mut dir = config.as_os_str().to_owned();
    dir.push(".sig.d");
    PathBuf::from(dir)
}

/// Why these signers decide: the policy in force, or (first signed policy) the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The signers of the policy in force.
    Running,
    /// No signed policy is in force: the new one's own signers (audited as such).
    Bootstrap,
}

/// The signers whose signatures count, with the keys each may sign with.
#[derive(Debug, Clone)]
pub struct Authority {
    /// The rule they come from.
    pub signing: Signing,
    /// Why these.
    pub basis: Basis,
    /// Each signer's key fingerprints: `ssh_keys` of the policy the rule comes from,
    /// and keys registered with proof of possession (added by the caller).
    pub keys: BTreeMap<UserName, BTreeSet<String>>,
    /// Signers disabled in the database: their signatures count for nothing.
    pub disabled: BTreeSet<UserName>,
}

/// A signature that counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Valid {
    /// Who signed.
    pub user: String,
    /// The key's SHA-256 fingerprint.
    pub key: String,
}

/// A signature file that counts for nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The file's name in the signatures folder.
    pub file: String,
    /// Why it does not count.
    pub why: String,
}

/// What the signatures folder holds, judged against an authority.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Signatures that count, one per signer.
    pub valid: Vec<Valid>,
    /// Files that do not.
    pub rejected: Vec<Rejected>,
}

/// The decision about a configuration file.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Whose signatures count; `None` for an unsigned policy replacing an unsigned one.
    pub authority: Option<Authority>,
    /// The signatures found.
    pub tally: Tally,
    /// Why the file must not take effect; `None` if it may.
    pub refusal: Option<String>,
    /// The new file's `[policy]`, if it has one.
    pub signing: Option<Signing>,
}

impl Outcome {
    /// The signers of the authority with no valid signature.
    pub fn missing(&self) -> Vec<UserName> {
        let Some(a) = &self.authority else {
            return Vec::new();
        };
        a.signing
            .signers
            .iter()
            .filter(|s| !self.tally.valid.iter().any(|v| v.user == s.as_str()))
            .cloned()
            .collect()
    }
}

/// The `[policy]` a policy summary (`policy/summary.rs`) records, if any.
pub fn recorded_signing(summary: &Value) -> Result<Option<Signing>, String> {
    match summary.get("policy") {
        None | Some(Value::Null) => Ok(None),
        Some(section) => serde_json::from_value(section.clone())
            .map(Some)
            .map_err(|e| format!("the recorded [policy] section: {e}")),
    }
}

/// The signers of `signing`, with their `ssh_keys` as `summary` (the policy the rule
/// comes from) records them.
fn authority(summary: &Value, signing: Signing, basis: Basis) -> Authority {
    let keys = signing
        .signers
        .iter()
        .map(|s| {
            let listed = summary["users"][s.as_str()]["ssh_keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            (s.clone(), listed)
        })
        .collect();
    Authority {
        signing,
        basis,
        keys,
        disabled: BTreeSet::new(),
    }
}

/// Whose signatures decide whether `new` (a policy summary) may replace `running` (the
/// summary in force, `None` if nothing is recorded), and whether its version may: the
/// authority (`None` when neither is signed) or why the file is refused before any
/// signature is looked at.
pub fn authority_for(
    running: Option<&Value>,
    new: &Value,
) -> Result<(Option<Authority>, Option<String>), String> {
    let next = recorded_signing(new)?;
    let now = match running {
        Some(r) => recorded_signing(r)?.map(|s| (r, s)),
        None => None,
    };
    Ok(match (now, next) {
        (Some((running, current)), next) => {
            let refusal = next.and_then(|n| version_refusal(&current, &n, running == new));
            (Some(authority(running, current, Basis::Running)), refusal)
        }
        (None, Some(next)) => (Some(authority(new, next, Basis::Bootstrap)), None),
        (None, None) => (None, None),
    })
}

/// Why `next` may not follow `current`: its version must be greater, or equal for the
/// very file in force (a restart: the summaries name the file's SHA-256).
fn version_refusal(current: &Signing, next: &Signing, same_policy: bool) -> Option<String> {
    if next.version > current.version || (next.version == current.version && same_policy) {
        return None;
    }
    let what = if next.version == current.version {
        "the file differs from the one in force with that version"
    } else {
        "an older signed file is not loaded again"
    };
    Some(format!(
        "[policy] version {} is not greater than version {} of the policy in force: {what} \
         (raise version, and have it signed)",
        next.version, current.version
    ))
}

/// Judges the files of `dir` as signatures over `bytes` by `authority`'s signers: each
/// signer's `<user>.sig`; any other file is listed as counting for nothing.
pub fn tally(authority: &Authority, bytes: &[u8], dir: &Path) -> Tally {
    let mut out = Tally::default();
    let mut keys_seen = BTreeSet::new();
    for user in &authority.signing.signers {
        let name = format!("{user}.sig");
        let path = dir.join(&name);
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        match judge(authority, user, bytes, &path) {
            Ok(valid) if !keys_seen.insert(valid.key.clone()) => out.rejected.push(Rejected {
                file: name,
                why: format!("key {} signed for another signer already", valid.key),
            }),
            Ok(valid) => out.valid.push(valid),
            Err(why) => out.rejected.push(Rejected { file: name, why }),
        }
    }
    let mut others: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.strip_suffix(".sig")
                    .and_then(|u| UserName::parse(u).ok())
                    .is_none_or(|u| !authority.keys.contains_key(&u))
            })
            .collect(),
        // No folder: no signatures.
        Err(_) => Vec::new(),
    };
    others.sort();
    for name in others.into_iter().take(MAX_FILES) {
        let why = match name.strip_suffix(".sig").map(UserName::parse) {
            Some(Ok(user)) => not_a_signer(authority, &user),
            _ => "not named <user>.sig after a signer".to_owned(),
        };
        out.rejected.push(Rejected { file: name, why });
    }
    out
}

/// `user`'s signature file: a signature that counts, or why not.
fn judge(
    authority: &Authority,
    user: &UserName,
    bytes: &[u8],
    path: &Path,
) -> Result<Valid, String> {
    let Some(keys) = authority.keys.get(user) else {
        return Err(not_a_signer(authority, user));
    };
    if authority.disabled.contains(user) {
        return Err(format!("{user} is disabled"));
    }
    let text = read_small(path)?;
    let sig = SshSig::from_pem(&text).map_err(|e| format!("not an SSH signature: {e}"))?;
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
        .map_err(|_| format!("key {key}: the signature is not over this file's bytes"))?;
    Ok(Valid {
        user: user.to_string(),
        key,
    })
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

/// The decision about a file whose policy summary is `new` and whose bytes are
/// `bytes`, replacing `running`; `facts` adds a signer's registered key fingerprints
/// and whether they are disabled (from the database).
pub fn check<E>(
    running: Option<&Value>,
    new: &Value,
    bytes: &[u8],
    dir: &Path,
    mut facts: impl FnMut(&UserName) -> Result<(Vec<String>, bool), E>,
) -> Result<Outcome, CheckError<E>> {
    let signing = recorded_signing(new).map_err(CheckError::Recorded)?;
    let (authority, early) = authority_for(running, new).map_err(CheckError::Recorded)?;
    let Some(mut authority) = authority else {
        return Ok(Outcome {
            authority: None,
            tally: Tally::default(),
            refusal: None,
            signing,
        });
    };
    for signer in authority.signing.signers.clone() {
        let (registered, disabled) = facts(&signer).map_err(CheckError::Facts)?;
        authority
            .keys
            .entry(signer.clone())
            .or_default()
            .extend(registered);
        if disabled {
            authority.disabled.insert(signer);
        }
    }
    let tally = tally(&authority, bytes, dir);
    let need = authority.signing.signatures_required as usize;
    let refusal = early.or_else(|| {
        (tally.valid.len() < need).then(|| {
            format!(
                "{} of the {need} signatures required by {} signers ({}) are valid",
                tally.valid.len(),
                match authority.basis {
                    Basis::Running => "the running policy's",
                    Basis::Bootstrap => "the first signed policy's own",
                },
                authority
                    .signing
                    .signers
                    .iter()
                    .map(UserName::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
    });
    Ok(Outcome {
        authority: Some(authority),
        tally,
        refusal,
        signing,
    })
}

/// Why the decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError<E> {
    /// A recorded policy summary is not what this version writes.
    #[error("{0}")]
    Recorded(String),
    /// Reading a signer's facts failed.
    #[error(transparent)]
    Facts(E),
}

#[cfg(test)]
mod tests;
