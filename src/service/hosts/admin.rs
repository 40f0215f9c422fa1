//! What admins do with host certificates (list, read, revoke), and the host KRL.

use std::sync::Arc;
use std::time::Duration;

use super::{HOST_KRL_NAMESPACE, HOST_LIST_LIMIT, HostCertView, host_settings};
use crate::audit::{self, HostRevoked, NewEvent};
use crate::error_code::ErrorCode;

use crate::names::{Serial, Text, UserName};
use crate::service::revoke::{Krl, KrlKind};
use crate::service::{Service, ServiceError, unix};
use crate::store::hosts;

impl Service {
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

    /// Revokes a host certificate (admins), and with it every other unexpired,
    /// unrevoked certificate of the same host key (its renewals and the certificates they
    /// came from: whoever holds the key could renew from any of them). Each is listed in
    /// the host KRL until it expires, with a `host.revoked` event of its own.
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
                ServiceError::NotFound(format!(
                    "no host certificate with serial {serial} (one a client's `krl sync \
                     --host` named as forgotten by this CA is listed again with `countersign \
                     krl forgotten --host`)"
                ))
            })?;
            if !self.revoke_host_one(tx, now, actor, &row, reason.as_str())? {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::AlreadyRevoked,
                    message: format!("host certificate {serial} is already revoked"),
                });
            }
            let same_key = format!("{} (same host key as {serial})", reason.as_str());
            let mut also = Vec::new();
            for other in hosts::live_of_key(tx, &row.key_fingerprint, unix(now) - self.skew())? {
                if self.revoke_host_one(tx, now, actor, &other, &same_key)? {
                    also.push(other.serial.to_string());
                }
            }
            tracing::info!(%serial, %actor, also = also.len(), "host certificate revoked");
            let row = hosts::cert_by_serial(tx, serial)?
                .ok_or_else(|| ServiceError::NotFound(format!("no host certificate {serial}")))?;
            Ok(HostCertView {
                also_revoked: also,
                ..HostCertView::of(&row, unix(now))
            })
        })
    }

    /// Revokes one host certificate with its audit event; `false` if it already was.
    pub(in crate::service) fn revoke_host_one(
        &self,
        tx: &crate::store::Tx<'_>,
        now: chrono::DateTime<chrono::Utc>,
        actor: &UserName,
        row: &hosts::HostCertRow,
        reason: &str,
    ) -> Result<bool, ServiceError> {
        let Some(version) = hosts::revoke(tx, row.serial, unix(now), actor.as_str(), reason)?
        else {
            return Ok(false);
        };
        // The answer must not leave before the high-water mark holds this version.
        self.guard.note_revocation(version);
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: actor.as_str(),
                request_id: None,
                serial: Some(row.serial),
                event: HostRevoked::of(row, reason, version).into(),
            },
        )?;
        Ok(true)
    }

    /// The host KRL: every revoked host certificate until the backdate after its end,
    /// for the host CA, at the KRL version shared with the user KRL; signed by the host
    /// CA (namespace [`HOST_KRL_NAMESPACE`]).
    pub fn host_krl(&self) -> Result<Arc<Krl>, ServiceError> {
        self.clock_agrees()?;
        let ca = self.host_ca()?;
        let kind = KrlKind {
            etag_prefix: "h",
            comment: "countersign host certificates",
            ca: ca.public_key_data(),
        };
        self.cached_krl(
            &self.host_krl,
            unix(self.now()),
            &kind,
            hosts::revoked_unexpired,
            |b| ca.sign_message(HOST_KRL_NAMESPACE, b),
        )
    }
}
