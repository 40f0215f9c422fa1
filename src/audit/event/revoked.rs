//! The revocation events built from the rows they revoke: the same fields whoever
//! revokes (an admin, a verdict, an accepted rollback).

use chrono::{DateTime, SecondsFormat, Utc};

use super::{CertificateRevoked, HostRevoked};
use crate::store::certificates::Holding;
use crate::store::hosts::HostCertRow;

/// RFC 3339 of a Unix time, to the second.
fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl CertificateRevoked {
    /// `cert` revoked for `reason`, first listed at KRL `version`.
    pub fn of(cert: &Holding, reason: &str, version: u64) -> Self {
        CertificateRevoked {
            serial: cert.serial.to_string(),
            requester: cert.requester.to_string(),
            role: cert.role.to_string(),
            reason: reason.to_owned(),
            krl_version: version,
            valid_before: rfc3339(cert.valid_before),
        }
    }
}

impl HostRevoked {
    /// The host certificate `row` revoked for `reason`, first listed at KRL `version`.
    pub fn of(row: &HostCertRow, reason: &str, version: u64) -> Self {
        HostRevoked {
            serial: row.serial.to_string(),
            principals: row.principals.iter().map(ToString::to_string).collect(),
            key_fingerprint: row.key_fingerprint.clone(),
            reason: reason.to_owned(),
            krl_version: version,
            valid_before: rfc3339(row.valid_before),
        }
    }
}
