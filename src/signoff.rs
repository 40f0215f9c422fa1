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

use crate::names::UserName;

/// The SSHSIG namespace of policy signatures (`ssh-keygen -Y sign -n countersign-policy`).
pub const NAMESPACE: &str = "countersign-policy";

/// Largest signature file read (an SSHSIG of any key type is a few KiB).
const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// Most entries of the signatures folder looked at.
const MAX_FILES: usize = 256;

/// `[policy]`: who must sign the configuration file, how many of them, and its version.
/// Without signers (only a `version`) signing is retired from that version on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signing {
    /// The people whose keys may sign (`user:NAME` in the file), sorted, distinct.
    pub signers: Vec<UserName>,
    /// Distinct signers needed (1..=signers; 0 without signers).
    pub signatures_required: u32,
    /// Grows with every signed change.
    pub version: u64,
    /// The user CA's key fingerprint this file is for (`SHA256:...`), if it names one:
    /// a file signed for another CA (staging) is refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
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
    /// The very file in force: accepted as judged when it was loaded, no signature read.
    pub in_force: bool,
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

/// The `[policy]` a policy summary (`policy/summary.rs`) records, if any, holding to
/// the rules a loaded file's section holds to (a damaged or edited record must not
/// decide with, say, zero signatures required).
pub fn recorded_signing(summary: &Value) -> Result<Option<Signing>, String> {
    let signing: Signing = match summary.get("policy") {
        None | Some(Value::Null) => return Ok(None),
        Some(section) => serde_json::from_value(section.clone())
            .map_err(|e| format!("the recorded [policy] section: {e}"))?,
    };
    let distinct = signing.signers.windows(2).all(|w| w[0] < w[1]);
    let required = signing.signatures_required as usize;
    let sound = signing.version >= 1
        && distinct
        && if signing.signers.is_empty() {
            required == 0
        } else {
            (1..=signing.signers.len()).contains(&required)
        };
    if !sound {
        return Err(format!(
            "the recorded [policy] section breaks its rules (version {}, {} of {} signers, \
             sorted and distinct: {distinct})",
            signing.version,
            required,
            signing.signers.len()
        ));
    }
    Ok(Some(signing))
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

/// What a file needs before it may replace the policy in force.
#[derive(Debug)]
pub enum Plan {
    /// Nothing signed is in force and the file asks for no signatures.
    Unsigned,
    /// The very file in force (its summary names the file's SHA-256): it was judged when
    /// it was loaded, and a signer disabled since does not stop a restart.
    InForce(Authority),
    /// These signers' signatures.
    Judge(Authority),
    /// Refused before any signature is looked at.
    Refuse(Option<Authority>, String),
}

impl Signing {
    /// Whether this `[policy]` names signers (rather than only a `version`: signing
    /// retired, see [`plan`]).
    pub fn is_signed(&self) -> bool {
        !self.signers.is_empty()
    }
}

/// What `new` (a policy summary) needs to replace `running` (the summary in force,
/// `None` if nothing is recorded). A signed policy in force decides every change, and
/// `version` must grow (by at most [`MAX_VERSION_STEP`]); leaving signed mode takes a
/// `[policy]` that keeps a greater `version` without signers (a file without the section
/// has no version, so the running signers' signature on it could be replayed forever),
/// and the section stays from then on (the version floor with it). With nothing signed in
/// force, a file with signers is the first signed policy, judged by its own signers, at a
/// version above any a retired one had. The very file in force (same SHA-256) is
/// accepted as it was judged when it was loaded.
pub fn plan(running: Option<&Value>, new: &Value) -> Result<Plan, String> {
    let next = recorded_signing(new)?;
    let now = match running {
        Some(r) => recorded_signing(r)?.map(|s| (r, s)),
        None => None,
    };
    let same_file = running
        .and_then(file_sha256)
        .is_some_and(|f| Some(f) == file_sha256(new));
    Ok(match (now, next) {
        (Some((running, current)), next) if current.is_signed() => {
            let version = current.version;
            let auth = authority(running, current, Basis::Running);
            if same_file {
                return Ok(Plan::InForce(auth));
            }
            match next.map(|n| step_refusal(version, n.version)) {
                None => Plan::Refuse(
                    Some(auth),
                    format!(
                        "a signed policy is in force: to stop signing, keep [policy] with a \
                         greater version and no signers (version = {}), signed by the \
                         running policy's signers",
                        version.saturating_add(1)
                    ),
                ),
                Some(Some(why)) => Plan::Refuse(Some(auth), why),
                Some(None) => Plan::Judge(auth),
            }
        }
        (Some((_, retired)), None) => Plan::Refuse(
            None,
            format!(
                "signing was retired at [policy] version {}: keep [policy] with that \
                 version or a greater one (the version floor stays)",
                retired.version
            ),
        ),
        (retired, Some(next)) => {
            let floor = retired.map_or(0, |(_, r)| r.version);
            if !next.is_signed() && next.version < floor {
                Plan::Refuse(None, version_refusal(floor, next.version))
            } else if !next.is_signed() {
                // The same retired version again, or a greater one within the step.
                match step_refusal(floor, next.version.max(floor + 1)) {
                    Some(why) => Plan::Refuse(None, why),
                    None => Plan::Unsigned,
                }
            } else if let Some(why) = step_refusal(floor, next.version) {
                Plan::Refuse(None, why)
            } else {
                Plan::Judge(authority(new, next, Basis::Bootstrap))
            }
        }
        (None, None) => Plan::Unsigned,
    })
}

/// Most a signed `version` may grow in one change: a version near the top of the range
/// could never be followed, freezing the policy for good.
pub const MAX_VERSION_STEP: u64 = 1000;

/// Why `next` may not follow `current`: not greater, or too far above it.
fn step_refusal(current: u64, next: u64) -> Option<String> {
    if next <= current {
        return Some(version_refusal(current, next));
    }
    (next - current > MAX_VERSION_STEP).then(|| {
        format!(
            "[policy] version {next} is more than {MAX_VERSION_STEP} above version {current} \
             of the policy in force: raise it by a little (a version that high could leave \
             no room to follow it)"
        )
    })
}

/// The SHA-256 of the file a summary's `[policy]` was read from.
fn file_sha256(summary: &Value) -> Option<&str> {
    summary["policy"]["file_sha256"].as_str()
}

/// Why a version that does not exceed the one in force is refused.
fn version_refusal(current: u64, next: u64) -> String {
    let what = if next == current {
        "the file differs from the one in force with that version"
    } else {
        "an older signed file is not loaded again"
    };
    format!(
        "[policy] version {next} is not greater than version {current} of the policy in \
         force: {what} (raise version, and have it signed)"
    )
}

/// The decision about a file whose policy summary is `new` and whose bytes are
/// `bytes`, replacing `running`, with the signatures of `folder`; `facts` adds a
/// signer's registered key fingerprints and whether they are disabled (from the
/// database).
pub fn check<E>(
    running: Option<&Value>,
    new: &Value,
    bytes: &[u8],
    folder: &Folder,
    mut facts: impl FnMut(&UserName) -> Result<(Vec<String>, bool), E>,
) -> Result<Outcome, CheckError<E>> {
    let signing = recorded_signing(new).map_err(CheckError::Recorded)?;
    let outcome = |authority, refusal, in_force| Outcome {
        authority,
        tally: Tally::default(),
        refusal,
        signing: signing.clone(),
        in_force,
    };
    let mut authority = match plan(running, new).map_err(CheckError::Recorded)? {
        Plan::Unsigned => return Ok(outcome(None, None, false)),
        Plan::InForce(a) => return Ok(outcome(Some(a), None, true)),
        Plan::Refuse(a, why) => return Ok(outcome(a, Some(why), false)),
        Plan::Judge(a) => a,
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
    let tally = tally(&authority, bytes, folder);
    let need = authority.signing.signatures_required as usize;
    let refusal = (tally.valid.len() < need).then(|| {
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
    });
    Ok(Outcome {
        authority: Some(authority),
        tally,
        refusal,
        signing,
        in_force: false,
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

mod folder;
#[cfg(test)]
mod tests;

pub use folder::{Folder, tally};
