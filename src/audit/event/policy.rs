//! The events of a policy's signatures (`signoff.rs`): what let a signed policy take
//! effect (in `policy.loaded`), and a file refused for want of them.

use serde::{Deserialize, Serialize};

use crate::signoff::{Rejected, Valid};

/// The signatures a policy was judged by (`policy.loaded`, `policy.refused`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Signoff {
    /// `running` (the signers of the policy in force decided) or `bootstrap` (the first
    /// signed policy, signed by its own signers).
    pub basis: String,
    /// The signers whose signatures counted.
    pub signers: Vec<String>,
    /// How many distinct signers were needed.
    pub signatures_required: u32,
    /// The valid signatures: who, and with which key (SHA-256 fingerprint).
    pub signed_by: Vec<Valid>,
    /// The new file's `[policy] version` (`null` for a file without `[policy]`).
    pub version: Option<u64>,
}

/// `policy.refused`: a configuration file that did not take effect (at start the server
/// stopped; on reload the running policy stayed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyRefused {
    /// `start` or `reload`.
    pub cause: String,
    /// Digest of the refused policy (as `policy.loaded` would have recorded it).
    pub digest: String,
    /// Why.
    pub reason: String,
    /// The signatures found.
    pub signoff: Option<Signoff>,
    /// Signature files that counted for nothing, and why.
    pub rejected: Vec<Rejected>,
}
