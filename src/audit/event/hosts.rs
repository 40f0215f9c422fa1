//! The events of host certificates (`[host_ca]`).

use serde::{Deserialize, Serialize};

/// `host.token_created`: an admin made a join token (never the secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostTokenCreated {
    /// The token's public id (`ht-...`).
    pub token_id: String,
    /// The principals an enrollment with it gets.
    pub principals: Vec<String>,
    /// When it expires unused (RFC 3339).
    pub expires_at: String,
}

/// `host.enrolled`: a host presented a join token and got its first certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostEnrolled {
    /// The certificate's serial (decimal).
    pub serial: String,
    /// Its principals.
    pub principals: Vec<String>,
    /// `SHA256:...` of the host key.
    pub key_fingerprint: String,
    /// The join token used up.
    pub token_id: String,
    /// End of validity (RFC 3339).
    pub valid_before: String,
}

/// `host.renewed`: a host proved it holds its key and replaced its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostRenewed {
    /// The new certificate's serial (decimal).
    pub serial: String,
    /// The certificate it replaces (decimal).
    pub renewed_from: String,
    /// Its principals (the same as before).
    pub principals: Vec<String>,
    /// `SHA256:...` of the host key.
    pub key_fingerprint: String,
    /// End of validity (RFC 3339).
    pub valid_before: String,
}

/// `host.revoked`: a host certificate was revoked (in the host KRL from then on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostRevoked {
    /// Its serial (decimal).
    pub serial: String,
    /// Its principals.
    pub principals: Vec<String>,
    /// `SHA256:...` of the host key.
    pub key_fingerprint: String,
    /// The revoker's reason.
    pub reason: String,
    /// The KRL version that lists it (shared with the user KRL).
    pub krl_version: u64,
    /// End of validity (RFC 3339): listed until then.
    pub valid_before: String,
}

/// `host_ca.recorded`: the database was bound to a host CA key (at its first use).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostCaRecorded {
    /// `SHA256:...` of the host CA key.
    pub fingerprint: String,
    /// Whether countersign generated the key now.
    pub created: bool,
}
