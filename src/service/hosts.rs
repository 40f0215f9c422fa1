//! Host certificates (`[host_ca]`): join tokens, enrollment, listing, revocation and the
//! host KRL; renewal is in `hosts/renew.rs`.
//!
//! A host has no user and no API token: it proves itself with a single-use join token an
//! admin made for exactly its principals (enrollment), and later with its host key and a
//! current certificate of ours (renewal). Every step is one transaction with its audit
//! event (`host.token_created`, `host.enrolled`, `host.renewed`, `host.revoked`).
//! Principals are checked against `allowed_principals` when the token is made and again
//! at every signing, so narrowing the list stops renewals outside it.

mod admin;
mod enroll;
mod renew;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Service, ServiceError, view::rfc3339};
use crate::audit::{self, HostCaRecorded, NewEvent};
use crate::ca::HostAuthority;
use crate::config::{Config, HostCaSettings};
use crate::error_code::ErrorCode;
use crate::names::HostPrincipal;
use crate::store::Store;
use crate::store::hosts::{self, HostCertRow};

pub use renew::{HOST_CHALLENGE_LIFETIME, HOST_RENEW_NAMESPACE, HostRenewal};

/// SSHSIG namespace of the host KRL's signature (`GET /v1/krl/host.sig`).
pub const HOST_KRL_NAMESPACE: &str = "countersign-host-krl";

/// What every join token starts with (the rest: 32 random bytes, hex).
pub const HOST_TOKEN_PREFIX: &str = "csh_";

/// A join token's lifetime when none is asked for.
pub const HOST_TOKEN_DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest a join token may live: it is a credential that makes a certificate.
pub const HOST_TOKEN_MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most host certificates one listing returns.
pub const HOST_LIST_LIMIT: i64 = 1000;

/// A join token just made: the secret is shown once, here, and never stored.
#[derive(Debug, Clone, Serialize)]
pub struct NewHostToken {
    /// The secret (`csh_...`), for `host enroll --token`.
    pub token: String,
    /// Its public id (`ht-...`), in the audit log.
    pub id: String,
    /// The principals an enrollment with it gets.
    pub principals: Vec<HostPrincipal>,
    /// When it expires unused (RFC 3339).
    pub expires_at: String,
}

/// A host certificate as front ends show it.
#[derive(Debug, Clone, Serialize)]
pub struct HostCertView {
    /// Its serial (decimal string: JSON numbers cannot hold 64 bits).
    pub serial: String,
    /// `active`, `superseded` (still valid, but a renewal replaced it), `expired` or
    /// `revoked`.
    pub status: &'static str,
    /// The names and addresses it is valid for.
    pub principals: Vec<HostPrincipal>,
    /// `SHA256:...` of the host key.
    pub key_fingerprint: String,
    /// Its key ID.
    pub key_id: String,
    /// RFC 3339.
    pub valid_after: String,
    /// RFC 3339.
    pub valid_before: String,
    /// When it was signed (RFC 3339).
    pub issued_at: String,
    /// The join token of an enrollment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The certificate a renewal replaced (decimal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewed_from: Option<String>,
    /// The newest certificate renewed from this one (decimal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// When it was revoked (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Who revoked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    /// The certificate (OpenSSH format): what goes into `HostCertificate`'s file.
    pub certificate: String,
    /// Revoking: the other certificates of the same host key revoked with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_revoked: Vec<String>,
}

impl HostCertView {
    fn of(row: &HostCertRow, now: i64) -> HostCertView {
        let status = match (&row.revocation, row.valid_before > now, row.superseded_by) {
            (Some(_), _, _) => "revoked",
            (None, false, _) => "expired",
            (None, true, Some(_)) => "superseded",
            (None, true, None) => "active",
        };
        HostCertView {
            serial: row.serial.to_string(),
            status,
            principals: row.principals.clone(),
            key_fingerprint: row.key_fingerprint.clone(),
            key_id: row.key_id.clone(),
            valid_after: rfc3339(row.valid_after),
            valid_before: rfc3339(row.valid_before),
            issued_at: rfc3339(row.issued_at),
            token_id: row.token_id.clone(),
            renewed_from: row.renewed_from.map(|s| s.to_string()),
            superseded_by: row.superseded_by.map(|s| s.to_string()),
            revoked_at: row.revocation.as_ref().map(|r| rfc3339(r.at)),
            revoked_by: row.revocation.as_ref().map(|r| r.by.clone()),
            revoke_reason: row.revocation.as_ref().map(|r| r.reason.clone()),
            certificate: row.certificate.clone(),
            also_revoked: Vec::new(),
        }
    }
}

/// Opens the host CA of `config` (if `[host_ca]` is set) and binds the database to its
/// key: the first start records it (creating the key file if it is missing too); later
/// starts refuse another key, as they refuse another user CA key. A recorded key whose
/// file is gone is refused, never replaced.
pub(super) fn open_host_ca(
    config: &Config,
    store: &Store,
    user_ca: &ssh_key::public::KeyData,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<Option<Arc<HostAuthority>>, ServiceError> {
    let Some(settings) = &config.host_ca else {
        return Ok(None);
    };
    let recorded = store.read(|tx| Ok::<_, ServiceError>(hosts::host_ca_key(tx)?))?;
    if let Some(r) = &recorded
        && !settings.agent
        && std::fs::symlink_metadata(&settings.key_file).is_err()
    {
        return Err(ServiceError::Invalid(format!(
            "[host_ca] key_file {} is missing, but the database belongs to the host CA {}: \
             copy that key file here (every replica uses the same host CA key); a new one \
             is never made for a database that has one",
            settings.key_file.display(),
            r.split(' ').take(2).collect::<Vec<_>>().join(" ")
        )));
    }
    let (ca, created) = HostAuthority::open(settings, user_ca, recorded.is_none())?;
    let line = ca.public_key_line();
    match recorded {
        Some(r) if same_key(&r, &line) => {}
        Some(r) => {
            return Err(ServiceError::Invalid(format!(
                "[host_ca] key_file {} is not the host CA key this database belongs to ({}); \
                 every replica uses the same host CA key: restore that key file",
                settings.key_file.display(),
                r.split(' ').take(2).collect::<Vec<_>>().join(" ")
            )));
        }
        None => store.write(|tx| {
            if hosts::record_host_ca_key(tx, &line)? {
                audit::append(
                    tx,
                    now,
                    &NewEvent::general(
                        operator,
                        HostCaRecorded {
                            fingerprint: ca.fingerprint(),
                            created,
                        },
                    ),
                )?;
            }
            Ok::<_, ServiceError>(())
        })?,
    }
    Ok(Some(Arc::new(ca)))
}

/// Whether two OpenSSH public key lines are the same key (comments aside).
fn same_key(a: &str, b: &str) -> bool {
    let key = |l: &str| l.split(' ').take(2).collect::<Vec<_>>().join(" ");
    key(a) == key(b)
}

/// `not_found` when the server has no `[host_ca]`.
fn host_settings(config: &Config) -> Result<&HostCaSettings, ServiceError> {
    config.host_ca.as_ref().ok_or_else(off)
}

fn off() -> ServiceError {
    ServiceError::NotFound(
        "host certificates are off: the server's config has no [host_ca] (or it was added \
         by a reload: restart the server to open the host CA key)"
            .into(),
    )
}

/// `principal_not_allowed` for the first principal outside `allowed_principals`.
fn check_allowed(
    settings: &HostCaSettings,
    principals: &[HostPrincipal],
) -> Result<(), ServiceError> {
    match principals.iter().find(|p| !settings.allows(p)) {
        Some(p) => Err(ServiceError::Host {
            code: ErrorCode::PrincipalNotAllowed,
            message: format!(
                "host principal {p} is outside [host_ca] allowed_principals ({})",
                settings
                    .allowed_principals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        None => Ok(()),
    }
}

/// The lifetime asked for, or `cert_ttl`; more than `max_ttl` is refused.
fn lifetime(settings: &HostCaSettings, ttl: Option<Duration>) -> Result<Duration, ServiceError> {
    let ttl = ttl.unwrap_or(settings.cert_ttl);
    if ttl > settings.max_ttl {
        return Err(ServiceError::Invalid(format!(
            "ttl {} is longer than [host_ca] max_ttl ({})",
            humantime::format_duration(ttl),
            humantime::format_duration(settings.max_ttl)
        )));
    }
    Ok(ttl)
}

/// The SHA-256 of a secret, as stored.
fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Service {
    /// The host CA, or `not_found` when host certificates are off.
    fn host_ca(&self) -> Result<&HostAuthority, ServiceError> {
        self.host_ca.as_deref().ok_or_else(off)
    }

    /// Whether `key` is the user CA's or the host CA's own key: neither is ever
    /// certified, as a user's key or a host's.
    pub(super) fn is_ca_key(&self, key: &crate::pubkey::SubjectKey) -> bool {
        self.ca.is_ca_key(key) || self.host_ca.as_ref().is_some_and(|h| h.is_own_key(key))
    }

    /// The host CA public key line (`GET /v1/host_ca.pub`).
    pub fn host_ca_public(&self) -> Result<String, ServiceError> {
        Ok(self.host_ca()?.public_key_line())
    }
}
