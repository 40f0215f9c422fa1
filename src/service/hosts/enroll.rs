//! Join tokens and enrollment: an admin makes a single-use token for exactly a host's
//! principals; the host presents it with its public key and gets its first certificate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::{
    HOST_TOKEN_DEFAULT_TTL, HOST_TOKEN_MAX_TTL, HOST_TOKEN_PREFIX, HostCertView, NewHostToken,
    check_allowed, digest, host_settings, lifetime,
};
use crate::audit::{self, HostEnrolled, HostTokenCreated, NewEvent};
use crate::ca::{HostAuthority, HostGrant};
use crate::error_code::ErrorCode;
use crate::names::HostPrincipal;
use crate::pubkey::SubjectKey;
use crate::service::{Service, ServiceError, SteppedUp, unix, view::rfc3339};
use crate::store::Tx;
use crate::store::hosts::{self, HostCertRow, HostToken};

impl Service {
    /// Makes a single-use join token for exactly `principals` (admins, and service
    /// accounts whose token has the `host-token` scope).
    pub fn create_host_token(
        &self,
        who: &SteppedUp,
        principals: Vec<HostPrincipal>,
        ttl: Option<Duration>,
    ) -> Result<NewHostToken, ServiceError> {
        let actor = who.user_for(crate::service::StepUp::HostToken)?;
        let credential = who.credential();
        // A provisioning pipeline's service account (`bot = true`) with the `host-token`
        // scope, or an admin.
        let scoped = matches!(credential, Some(crate::service::Credential::Bot(scopes))
            if scopes.contains(crate::service::Scope::HostToken));
        let bot = self.config().policy.users.get(actor).is_some_and(|u| u.bot);
        if !(scoped && bot) {
            self.require_admin(actor, "make host join tokens")?;
        }
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
            used_serial: None,
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
                let serial = token.used_serial.map_or("?".to_owned(), |s| s.to_string());
                return Err(invalid(format!(
                    "join token {} was used already, at {}, for host certificate {serial}: \
                     ask an admin for a new one (and if that was not you, revoke {serial})",
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
        if ca.is_own_key(key) || self.is_ca_key(key) {
            return Err(ServiceError::Invalid(
                "a CA key is never certified as a host key".into(),
            ));
        }
        Ok(())
    }

    /// Signs a host certificate (a fresh serial, valid from the backdate before `now`)
    /// and returns its row, not yet stored.
    pub(super) fn sign_host_cert(
        &self,
        tx: &Tx<'_>,
        ca: &HostAuthority,
        key: &SubjectKey,
        principals: &[HostPrincipal],
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<HostCertRow, ServiceError> {
        let serial = super::super::issue::unused_serial(tx, now, &mut rand::rng())?;
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
            superseded_by: None,
        })
    }
}
