//! The events of the CA's state: the keys the database is bound to and the high-water
//! mark.

use serde::{Deserialize, Serialize};

/// `ca.recorded`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaRecorded {
    /// SHA-256 fingerprint of the CA key.
    pub fingerprint: String,
    /// The CA's public key, OpenSSH format.
    pub public_key: String,
    /// The database's id.
    pub database: String,
}

/// `state.mark_started`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateMarkStarted {
    /// Path of the mark file.
    pub mark: String,
    /// The database's id.
    pub database: String,
    /// The KRL version the database was at.
    pub krl_version: u64,
    /// The effective uid of the process that started it.
    pub uid: u32,
    /// The host it started on (added field; events written before it lack it).
    pub host: String,
}

/// What a high-water mark said, as recorded by `state.rollback_accepted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarkSeen {
    /// Fingerprint of the CA key.
    pub ca: String,
    /// The database's id.
    pub database: String,
    /// The highest KRL version published.
    pub krl_version: u64,
    /// The newest audit event's sequence number when the mark was written.
    pub audit_seq: i64,
    /// That event's hash.
    pub audit_hash: String,
    /// When the mark was written (RFC 3339).
    pub updated: String,
}

/// `state.rollback_accepted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateRollbackAccepted {
    /// The operator's `--reason`.
    pub reason: String,
    /// What was found: why the database was behind.
    pub found: String,
    /// The effective uid of the process that accepted it.
    pub uid: u32,
    /// The mark, `null` if there was none.
    pub mark: Option<MarkSeen>,
    /// The database's KRL version before the floor was raised.
    pub krl_version_before: u64,
    /// The KRL version after it: the floor raised to (above it when host certificates
    /// the older copy held were revoked again).
    pub krl_version: u64,
    /// Serials whose revocation was carried over from the mark.
    pub carried_revocations: Vec<String>,
    /// Host join tokens left unused by the older copy, voided (added field).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub host_tokens_voided: u64,
}

/// `revocation.carried`: a serial the KRL lists although the CA has no certificate of it
/// (`POST /v1/krl/forgotten`: a revocation a restored copy forgot, named by a server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RevocationCarried {
    /// The serial, decimal.
    pub serial: String,
    /// Its certificate's end as given (RFC 3339): listed until then.
    pub valid_before: String,
    /// The host KRL's (a host certificate), not the user KRL's.
    pub host: bool,
    /// Why, as the admin gave it.
    pub reason: String,
    /// The KRL version that first lists it.
    pub krl_version: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
