//! A revocation the CA forgot, told back to it (`POST /v1/krl/forgotten`, admins).
//!
//! A data folder restored whole from an older copy has forgotten the revocations made
//! since, and the servers' `krl sync` keep them and name them (`cli/krl/carry.rs`) until
//! the CA lists them again. One whose certificate the copy holds is revoked again as
//! usual; one it never saw (issued after the copy) has no row to revoke, so its serial is
//! listed in the KRL until the end the server reported, as an accepted rollback lists what
//! the mark carried (found missing by a penetration test, 2026-12-07: the documented
//! remedy, `revoke --serial`, answered `not_found` for those, and the servers' rounds
//! failed until the certificate expired).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Service, ServiceError, unix};
use crate::audit::{self, NewEvent, RevocationCarried};
use crate::error_code::ErrorCode;
use crate::names::{Serial, Text, UserName};
use crate::store::certificates as certs;
use crate::store::{hosts, meta};

/// Longest ahead a forgotten revocation's end may be: the longest lifetime any
/// certificate may be given (a role's `max_ttl` is at most 366 days,
/// [`crate::names::MAX_DURATION`]; hosts' 30), and a day for clocks and the backdate.
/// (Found by a review: 31 days refused the end of a 60-day certificate.)
const LONGEST_AHEAD: i64 = 367 * 24 * 3600;

/// What telling the CA of a forgotten revocation did (the answer's JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Relisted {
    /// The serial, decimal.
    pub serial: String,
    /// The host KRL's.
    pub host: bool,
    /// `true`: the CA had the certificate and revoked it again as usual; `false`: it had
    /// none, and lists the serial until `valid_before`.
    pub known: bool,
    /// Listed until then (RFC 3339): the end given, or the known certificate's.
    pub valid_before: String,
    /// The KRL version that lists it.
    pub krl_version: u64,
}

impl Service {
    /// Lists `serial` in the KRL (the host KRL with `host`) again until `valid_before`
    /// (admins): revoking its certificate when the CA has it, else carrying the serial.
    pub fn relist_forgotten(
        &self,
        actor: &UserName,
        serial: Serial,
        valid_before: DateTime<Utc>,
        reason: Text,
        host: bool,
    ) -> Result<Relisted, ServiceError> {
        self.require_admin(actor, "list revocations in the KRL (krl forgotten)")?;
        let now = self.now();
        let end = valid_before.timestamp();
        if end <= unix(now) {
            return Err(ServiceError::Invalid(format!(
                "valid_before {valid_before} is past: a certificate that ended needs no \
                 revocation (sshd refuses it)"
            )));
        }
        if end > unix(now) + LONGEST_AHEAD {
            return Err(ServiceError::Invalid(format!(
                "valid_before {valid_before} is more than 367 days ahead: no certificate of \
                 this CA lasts that long"
            )));
        }
        // Serials are stored as signed 64-bit numbers: a larger one is no certificate's.
        if i64::try_from(serial.get()).is_err() {
            return Err(ServiceError::Invalid(format!(
                "serial {serial} is larger than any this CA gives (2^63 - 1)"
            )));
        }
        if host && self.host_ca.is_none() {
            return Err(ServiceError::NotFound(
                "this CA has no [host_ca]: there is no host KRL".into(),
            ));
        }
        let already = || ServiceError::Conflict {
            code: ErrorCode::AlreadyRevoked,
            message: format!("serial {serial} is already listed in the KRL until then or later"),
        };
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            // A serial of the other kind of certificate is a mistake (`--host` missing or
            // extra: found by an operator's trial), not one to carry into the wrong KRL.
            let other = if host {
                certs::by_serial(tx, serial)?.is_some()
            } else {
                hosts::cert_by_serial(tx, serial)?.is_some()
            };
            if other {
                let (is, flag) = if host {
                    ("a user certificate", "without --host (\"host\": false)")
                } else {
                    ("a host certificate", "with --host (\"host\": true)")
                };
                return Err(ServiceError::Invalid(format!(
                    "serial {serial} is {is} of this CA: list it {flag}"
                )));
            }
            let known = if host {
                match hosts::cert_by_serial(tx, serial)? {
                    Some(row) => {
                        if !self.revoke_host_one(tx, now, actor, &row, reason.as_str())? {
                            return Err(already());
                        }
                        Some(row.valid_before)
                    }
                    None => None,
                }
            } else {
                match certs::by_serial(tx, serial)? {
                    Some(cert) => {
                        if !self.revoke_one(tx, now, actor, &cert, &reason)? {
                            return Err(already());
                        }
                        Some(cert.valid_before)
                    }
                    None => None,
                }
            };
            if let Some(valid_before) = known {
                return Ok(Relisted {
                    serial: serial.to_string(),
                    host,
                    known: true,
                    valid_before: rfc3339(valid_before),
                    krl_version: certs::krl_version(tx)?,
                });
            }
            // A new row, or a lapsed or shorter one's end moved later.
            if !certs::relist_into(tx, host, serial, end, unix(now))? {
                return Err(already());
            }
            let version = certs::krl_version(tx)? + 1;
            meta::raise_krl_floor(tx, version)?;
            // The answer must not leave before the high-water mark holds this version.
            self.guard.note_revocation(version);
            audit::append(
                tx,
                now,
                // With its serial: `audit --serial N` finds it.
                &NewEvent {
                    actor: actor.as_str(),
                    request_id: None,
                    serial: Some(serial),
                    event: RevocationCarried {
                        serial: serial.to_string(),
                        valid_before: rfc3339(end),
                        host,
                        reason: reason.as_str().to_owned(),
                        krl_version: version,
                    }
                    .into(),
                },
            )?;
            self.count(tx, |m| m.revoked());
            tracing::warn!(%serial, host, %actor, "a revocation the CA forgot is listed again");
            Ok(Relisted {
                serial: serial.to_string(),
                host,
                known: false,
                valid_before: rfc3339(end),
                krl_version: version,
            })
        })
    }
}

fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}
