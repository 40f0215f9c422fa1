//! Host certificates (`[host_ca]`): join tokens, enrollment, listing, revocation and the
//! host KRL; renewal is in `hosts/renew.rs`.
//!
//! A host has no user and no API token: it proves itself with a single-use join token an
//! admin made for exactly its principals (enrollment), and later with its host key and a
//! current certificate of ours (renewal). Every step is one transaction with its audit
//! event (`host.token_created`, `host.enrolled`, `host.renewed`, `host.revoked`).
//! Principals are checked against `allowed_principals` when the token is made and again
//! at every signing, so narrowing the list stops renewals outside it.

mod renew;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::revoke::Krl;
use super::{Service, ServiceError, unix, view::rfc3339};
use crate::audit::{self, HostCaRecorded, HostEnrolled, HostRevoked, HostTokenCreated, NewEvent};
use crate::ca::{HostAuthority, HostGrant};
use crate::config::{Config, HostCaSettings};
use crate::error_code::ErrorCode;
use crate::krl::{self, KrlContents};
use crate::names::{HostPrincipal, Serial, Text, UserName};
use crate::pubkey::SubjectKey;
use crate::store::hosts::{self, HostCertRow, HostToken};
use crate::store::{Store, Tx};

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
    /// `active`, `expired` or `revoked`.
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
}

impl HostCertView {
    fn of(row: &HostCertRow, now: i64) -> HostCertView {
        let status = match (&row.revocation, row.valid_before > now) {
            (Some(_), _) => "revoked",
            (None, true) => "active",
            (None, false) => "expired",
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
            revoked_at: row.revocation.as_ref().map(|r| rfc3339(r.at)),
            revoked_by: row.revocation.as_ref().map(|r| r.by.clone()),
            revoke_reason: row.revocation.as_ref().map(|r| r.reason.clone()),
            certificate: row.certificate.clone(),
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

    /// The host CA public key line (`GET /v1/host_ca.pub`).
    pub fn host_ca_public(&self) -> Result<String, ServiceError> {
        Ok(self.host_ca()?.public_key_line())
    }

    /// Makes a single-use join token for exactly `principals` (admins).
    pub fn create_host_token(
        &self,
        actor: &UserName,
        principals: Vec<HostPrincipal>,
        ttl: Option<Duration>,
    ) -> Result<NewHostToken, ServiceError> {
        self.require_admin(actor, "make host join tokens")?;
        let config = self.config();
        let settings = host_settings(&config)?;
        self.host_ca()?;
        check_allowed(settings, &principals)?;
        let ttl = ttl.unwrap_or(HOST_TOKEN_DEFAULT_TTL);
        if ttl > HOST_TOKEN_MAX_TTL {
            return Err(ServiceError::Invalid(format!(
                "a join token lives at most {}",
                humantime::format_duration(HOST_TOKEN_MAX_TTL)
            )));
        }
        let now = self.now();
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{HOST_TOKEN_PREFIX}{}", hex::encode(bytes));
        let id = format!("ht-{}", &digest(&secret)[..16]);
        let token = HostToken {
            id: id.clone(),
            principals: principals.clone(),
            created_by: actor.to_string(),
            created_at: unix(now),
            expires_at: unix(now) + ttl.as_secs() as i64,
            used_at: None,
        };
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            hosts::insert_token(tx, &digest(&secret), &token)?;
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    actor.as_str(),
                    HostTokenCreated {
                        token_id: id.clone(),
                        principals: principals.iter().map(ToString::to_string).collect(),
                        expires_at: rfc3339(token.expires_at),
                    },
                ),
            )?;
            Ok::<_, ServiceError>(())
        })?;
        Ok(NewHostToken {
            token: secret,
            id,
            principals,
            expires_at: rfc3339(token.expires_at),
        })
    }

    /// Enrolls a host: uses up the join token `secret` and signs a host certificate for
    /// `key` and exactly the token's principals.
    pub fn enroll_host(
        &self,
        secret: &str,
        key: &SubjectKey,
        ttl: Option<Duration>,
    ) -> Result<HostCertView, ServiceError> {
        let config = self.config();
        let settings = host_settings(&config)?;
        let ca = self.host_ca()?;
        let ttl = lifetime(settings, ttl)?;
        self.refuse_ca_keys(ca, key)?;
        let invalid = |message: String| ServiceError::Host {
            code: ErrorCode::HostTokenInvalid,
            message,
        };
        if !secret.starts_with(HOST_TOKEN_PREFIX) {
            return Err(invalid(format!(
                "not a join token (they start with {HOST_TOKEN_PREFIX}): an admin makes one \
                 with `countersign host token create`"
            )));
        }
        let hash = digest(secret);
        let now = self.now();
        self.store.write(|tx| {
            let token = hosts::token_by_hash(tx, &hash)?
                .ok_or_else(|| invalid("unknown join token".into()))?;
            if let Some(at) = token.used_at {
                return Err(invalid(format!(
                    "join token {} was used already, at {}: ask an admin for a new one (and \
                     if that was not you, revoke the certificate it made)",
                    token.id,
                    rfc3339(at)
                )));
            }
            if token.expires_at <= unix(now) {
                return Err(invalid(format!(
                    "join token {} expired at {}: ask an admin for a new one",
                    token.id,
                    rfc3339(token.expires_at)
                )));
            }
            check_allowed(settings, &token.principals)?;
            let row = self.sign_host_cert(tx, ca, key, &token.principals, ttl, now)?;
            let row = HostCertRow {
                token_id: Some(token.id.clone()),
                ..row
            };
            hosts::insert_cert(tx, &row, None)?;
            if !hosts::use_token(tx, &hash, unix(now), row.serial)? {
                return Err(invalid(format!("join token {} was used already", token.id)));
            }
            audit::append(
                tx,
                now,
                &NewEvent {
                    actor: &format!("host:{}", token.id),
                    request_id: None,
                    serial: Some(row.serial),
                    event: HostEnrolled {
                        serial: row.serial.to_string(),
                        principals: row.principals.iter().map(ToString::to_string).collect(),
                        key_fingerprint: row.key_fingerprint.clone(),
                        token_id: token.id.clone(),
                        valid_before: rfc3339(row.valid_before),
                    }
                    .into(),
                },
            )?;
            tracing::info!(serial = %row.serial, token = %token.id, "host enrolled");
            Ok(HostCertView::of(&row, unix(now)))
        })
    }

    /// Neither CA's own key is ever certified as a host key.
    fn refuse_ca_keys(&self, ca: &HostAuthority, key: &SubjectKey) -> Result<(), ServiceError> {
        if ca.is_own_key(key) || self.ca.is_ca_key(key) {
            return Err(ServiceError::Invalid(
                "a CA key is never certified as a host key".into(),
            ));
        }
        Ok(())
    }

    /// Signs a host certificate (a fresh serial, valid from the backdate before `now`)
    /// and returns its row, not yet stored.
    fn sign_host_cert(
        &self,
        tx: &Tx<'_>,
        ca: &HostAuthority,
        key: &SubjectKey,
        principals: &[HostPrincipal],
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<HostCertRow, ServiceError> {
        let serial = loop {
            let s = Serial::random(&mut rand::rng());
            if !hosts::serial_taken(tx, s)? {
                break s;
            }
        };
        let valid_after = unix(now) - self.skew();
        let valid_before = unix(now) + ttl.as_secs() as i64;
        let key_id = format!("countersign:host:{}", principals[0]);
        let cert = ca.sign_host(&HostGrant {
            serial,
            key_id: key_id.clone(),
            subject: key,
            principals,
            valid_after: u64::try_from(valid_after).unwrap_or(0),
            valid_before: u64::try_from(valid_before).unwrap_or(0),
        })?;
        let certificate = cert
            .to_openssh()
            .map_err(|e| ServiceError::Ca(crate::ca::CaError::Sign(e)))?;
        Ok(HostCertRow {
            serial,
            key_fingerprint: key.fingerprint(),
            public_key: key.to_openssh(),
            principals: principals.to_vec(),
            key_id,
            valid_after,
            valid_before,
            certificate,
            issued_at: unix(now),
            token_id: None,
            renewed_from: None,
            revocation: None,
        })
    }

    /// Host certificates (admins), newest first: those still valid, every one (`all`),
    /// or those still valid that end within `expiring`.
    pub fn list_host_certs(
        &self,
        actor: &UserName,
        all: bool,
        expiring: Option<Duration>,
    ) -> Result<Vec<HostCertView>, ServiceError> {
        self.require_admin(actor, "list host certificates")?;
        host_settings(&self.config())?;
        let now = unix(self.now());
        let before = expiring.map(|d| now.saturating_add(d.as_secs() as i64));
        let rows = self.store.read(|tx| {
            self.require_enabled(tx, actor)?;
            Ok::<_, ServiceError>(hosts::list_certs(tx, now, all, before, HOST_LIST_LIMIT)?)
        })?;
        Ok(rows.iter().map(|r| HostCertView::of(r, now)).collect())
    }

    /// One host certificate (admins).
    pub fn host_cert(
        &self,
        actor: &UserName,
        serial: Serial,
    ) -> Result<HostCertView, ServiceError> {
        self.require_admin(actor, "read host certificates")?;
        let now = unix(self.now());
        let row = self.store.read(|tx| {
            self.require_enabled(tx, actor)?;
            Ok::<_, ServiceError>(hosts::cert_by_serial(tx, serial)?)
        })?;
        let row =
            row.ok_or_else(|| ServiceError::NotFound(format!("no host certificate {serial}")))?;
        Ok(HostCertView::of(&row, now))
    }

    /// Revokes a host certificate (admins): listed in the host KRL until it expires.
    pub fn revoke_host(
        &self,
        actor: &UserName,
        serial: Serial,
        reason: Text,
    ) -> Result<HostCertView, ServiceError> {
        self.require_admin(actor, "revoke host certificates")?;
        let now = self.now();
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let row = hosts::cert_by_serial(tx, serial)?.ok_or_else(|| {
                ServiceError::NotFound(format!("no host certificate with serial {serial}"))
            })?;
            let Some(version) =
                hosts::revoke(tx, serial, unix(now), actor.as_str(), reason.as_str())?
            else {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::AlreadyRevoked,
                    message: format!("host certificate {serial} is already revoked"),
                });
            };
            // The answer must not leave before the high-water mark holds this version.
            self.guard.note_revocation(version);
            audit::append(
                tx,
                now,
                &NewEvent {
                    actor: actor.as_str(),
                    request_id: None,
                    serial: Some(serial),
                    event: HostRevoked {
                        serial: serial.to_string(),
                        principals: row.principals.iter().map(ToString::to_string).collect(),
                        key_fingerprint: row.key_fingerprint.clone(),
                        reason: reason.as_str().to_owned(),
                        krl_version: version,
                        valid_before: rfc3339(row.valid_before),
                    }
                    .into(),
                },
            )?;
            tracing::info!(%serial, %actor, "host certificate revoked");
            let row = hosts::cert_by_serial(tx, serial)?
                .ok_or_else(|| ServiceError::NotFound(format!("no host certificate {serial}")))?;
            Ok(HostCertView::of(&row, unix(now)))
        })
    }

    /// The host KRL: every revoked host certificate until the backdate after its end,
    /// for the host CA, at the KRL version shared with the user KRL; signed by the host
    /// CA (namespace [`HOST_KRL_NAMESPACE`]).
    pub fn host_krl(&self) -> Result<Arc<Krl>, ServiceError> {
        self.clock_agrees()?;
        let ca = self.host_ca()?;
        let now = unix(self.now());
        let period = now - now.rem_euclid(60);
        let (version, revoked) = self.store.read(|tx| {
            Ok::<_, ServiceError>((
                crate::store::certificates::krl_version(tx)?,
                hosts::revoked_unexpired(tx, now - self.skew())?,
            ))
        })?;
        self.not_behind(version)?;
        let serials: Vec<u64> = revoked.serials.iter().map(|s| s.get()).collect();
        let bytes = krl::encode(&KrlContents {
            version,
            generated_date: u64::try_from(period).unwrap_or(0),
            comment: "countersign host certificates",
            ca: ca.public_key_data(),
            serials: &serials,
        })?;
        let etag = format!(
            "\"h{version}-{}\"",
            &hex::encode(Sha256::digest(&bytes))[..32]
        );
        let signature = ca
            .sign_message(HOST_KRL_NAMESPACE, &bytes)?
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| ServiceError::Ca(crate::ca::CaError::Sign(e)))?;
        if !self.guard.holds_krl(version) {
            self.publish_state()?;
        }
        Ok(Arc::new(Krl {
            bytes: bytes.into(),
            version,
            etag,
            signature,
            entries: serials.len(),
        }))
    }
}
