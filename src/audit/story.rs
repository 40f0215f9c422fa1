//! The audit log told as a story: an sshd log line traced to its certificate, events as
//! sentences, and the certificates of an access review. The CLI (`audit explain`,
//! `report`) and the web UI's audit page tell it the same way.

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use serde::Serialize;

use super::{AuditEvent, Event};
use crate::names::Serial;

/// The serial, key ID and CA fingerprint in one of the lines sshd (LogLevel VERBOSE)
/// writes for a certificate login.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The certificate's serial.
    pub serial: Serial,
    /// The key ID the line names.
    pub key_id: Option<String>,
    /// The fingerprint of the CA the line names.
    pub ca_fingerprint: Option<String>,
}

/// Parses either line OpenSSH writes for one certificate login:
/// - `Accepted publickey for U from A port P ssh2: ED25519-CERT SHA256:... ID <key id>
///   (serial N) CA ED25519 SHA256:...` (auth2.c), and
/// - `Accepted certificate ID "<key id>" (serial N) signed by ED25519 CA SHA256:... via
///   /path` (auth2-pubkey.c, `TrustedUserCAKeys`), or `... signed by CA ED25519
///   SHA256:... found at FILE:LINE` (a `cert-authority` line), where the key ID is quoted.
pub fn parse_log_line(line: &str) -> Result<LogLine, String> {
    let start = line.rfind("(serial ").ok_or_else(|| {
        "no \"(serial N)\" in the line: is it an sshd certificate login?".to_owned()
    })?;
    let rest = &line[start + "(serial ".len()..];
    let digits = rest.split(')').next().unwrap_or_default();
    let serial =
        Serial::parse(digits).map_err(|e| format!("serial {digits:?} in the line: {e}"))?;
    let key_id = line[..start].rfind(" ID ").map(|i| {
        let id = line[i + 4..start].trim();
        // The quoted form: countersign's key IDs never contain a quote themselves.
        id.strip_prefix('"')
            .and_then(|id| id.strip_suffix('"'))
            .unwrap_or(id)
            .to_owned()
    });
    let ca_fingerprint = rest
        .split_once(" CA ")
        .and_then(|(_, ca)| ca.split_whitespace().find(|w| w.starts_with("SHA256:")))
        .map(str::to_owned);
    Ok(LogLine {
        serial,
        key_id,
        ca_fingerprint,
    })
}

/// One event as a sentence.
pub fn story_line(e: &Event) -> String {
    let what = match e.parsed() {
        Some(AuditEvent::RequestCreated(d)) => format!(
            "{} requested {} for {}, reason: {:?}",
            e.actor,
            d.role,
            humantime::format_duration(std::time::Duration::from_secs(
                u64::try_from(d.ttl_seconds).unwrap_or(0)
            )),
            d.reason
        ),
        Some(AuditEvent::RequestDenied(d)) => format!("{} denied: {:?}", e.actor, d.reason),
        Some(AuditEvent::RequestCancelled(d)) => match d.reason {
            Some(why) => format!("{} cancelled: {why:?}", e.actor),
            None => format!("{} cancelled", e.actor),
        },
        Some(AuditEvent::RequestApproved(d)) => match d.comment.unwrap_or_default() {
            c if c.is_empty() => format!("{} approved", e.actor),
            c => format!("{} approved: {c:?}", e.actor),
        },
        Some(AuditEvent::CertificateIssued(d)) => format!(
            "issued to {} as {}, valid {} to {}",
            d.requester,
            serde_json::Value::from(d.principals),
            d.valid_after,
            d.valid_before
        ),
        Some(AuditEvent::CertificateRevoked(d)) => {
            format!("revoked by {}: {:?}", e.actor, d.reason)
        }
        Some(AuditEvent::BreakglassUsed(d)) => format!(
            "{} BROKE THE GLASS for {} ({}{}), reason: {:?}",
            e.actor,
            d.role,
            crate::render::seconds(d.ttl_seconds),
            if d.cut { ", cut to max_ttl" } else { "" },
            d.reason
        ),
        Some(AuditEvent::BreakglassReviewed(d)) => {
            format!(
                "{} reviewed the break-glass: {}: {:?}",
                e.actor, d.verdict, d.comment
            )
        }
        Some(AuditEvent::BreakglassReviewClosed(d)) => format!(
            "break-glass review closed: {} (after {})",
            d.outcome,
            crate::render::seconds(d.time_to_review_seconds)
        ),
        Some(AuditEvent::BreakglassAllowed(d)) => {
            format!("{} allowed {} one more break-glass use", e.actor, d.user)
        }
        Some(AuditEvent::AttemptRefused(d)) => {
            format!("{} was refused ({}): {}", e.actor, d.code, d.message)
        }
        Some(AuditEvent::HostEnrolled(d)) => format!(
            "host certificate {} for {} (key {}) by join token {}, valid to {}",
            d.serial,
            d.principals.join(","),
            d.key_fingerprint,
            d.token_id,
            d.valid_before
        ),
        Some(AuditEvent::HostRenewed(d)) => format!(
            "host certificate {} renewed as {} for {}, valid to {}",
            d.renewed_from,
            d.serial,
            d.principals.join(","),
            d.valid_before
        ),
        Some(AuditEvent::HostRevoked(d)) => format!(
            "host certificate {} ({}) revoked by {}: {:?}",
            d.serial,
            d.principals.join(","),
            e.actor,
            d.reason
        ),
        _ => format!("{} by {}", e.action, e.actor),
    };
    format!("  {}  #{:<6} {what}", e.at, e.seq)
}

/// One certificate in the review.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// The role.
    pub role: String,
    /// Who held it.
    pub user: String,
    /// The certificate's serial.
    pub serial: String,
    /// Its request.
    pub request_id: String,
    /// When it was issued (its `valid_after` is earlier by the configured backdate).
    pub from: String,
    /// `valid_before`, or the revocation time if it was ended early.
    pub until: String,
    /// How long it was held.
    pub seconds: i64,
    /// The requester's reason.
    pub reason: String,
    /// Who approved.
    pub approved_by: Vec<String>,
    /// When, by whom and why it was ended early, if it was.
    pub revoked: Option<String>,
}

/// Folds issued and revoked events into grants grouped by role.
pub fn grants(events: &[Event]) -> BTreeMap<String, Vec<Grant>> {
    let revoked: HashMap<&str, (&str, String)> = events
        .iter()
        .filter_map(|e| {
            let Some(AuditEvent::CertificateRevoked(d)) = e.parsed() else {
                return None;
            };
            let serial = e.serial.as_deref()?;
            let why = format!("{} by {}: {}", e.at, e.actor, d.reason);
            Some((serial, (e.at.as_str(), why)))
        })
        .collect();
    let mut by_role: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    for e in events {
        let Some(AuditEvent::CertificateIssued(d)) = e.parsed() else {
            continue;
        };
        let serial = e.serial.clone().unwrap_or_default();
        // Held from the moment of issue (`valid_after` is backdated for clock skew; the
        // certificate did not exist before), to expiry or revocation; whole seconds.
        let from = to_seconds(&e.at);
        let (until, revocation) = match revoked.get(serial.as_str()) {
            Some((at, why)) => (to_seconds(at), Some(why.clone())),
            None => (to_seconds(&d.valid_before), None),
        };
        let secs = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp())
                .unwrap_or(0)
        };
        let approved_by = d.approvals.into_iter().map(|a| a.approver).collect();
        by_role.entry(d.role.clone()).or_default().push(Grant {
            role: d.role,
            user: d.requester,
            serial,
            request_id: e.request_id.clone().unwrap_or_default(),
            seconds: (secs(&until) - secs(&from)).max(0),
            from,
            until,
            reason: d.reason,
            approved_by,
            revoked: revocation,
        });
    }
    by_role
}

/// An RFC 3339 time in whole seconds (`...T10:01:10Z`); text that is not one, unchanged.
fn to_seconds(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_sshd_accepted_line() {
        let line = "Nov 28 00:20:09 vm sshd[1]: \
                    Accepted publickey for postgres from 10.1.2.3 port 5122 ssh2: \
                    ED25519-CERT SHA256:abc ID countersign:r-35zfai5c7oyr:alice:prod-db \
                    (serial 8142207957869255637) CA ED25519 SHA256:01O1niTG";
        let p = parse_log_line(line).unwrap();
        assert_eq!(p.serial.get(), 8142207957869255637);
        assert_eq!(
            p.key_id.as_deref(),
            Some("countersign:r-35zfai5c7oyr:alice:prod-db")
        );
        assert_eq!(p.ca_fingerprint.as_deref(), Some("SHA256:01O1niTG"));
        assert!(parse_log_line("Accepted publickey for x").is_err());
    }

    #[test]
    fn parses_sshd_accepted_certificate_lines_with_a_quoted_key_id() {
        let id = "countersign:r-35zfai5c7oyr:alice:prod-db";
        for line in [
            // TrustedUserCAKeys (auth2-pubkey.c, OpenSSH 9.2)
            format!(
                "sshd[7]: Accepted certificate ID \"{id}\" (serial 8142207957869255637) signed by \
                 ED25519 CA SHA256:01O1niTG via /etc/ssh/countersign_ca.pub"
            ),
            // a cert-authority line in authorized_keys (auth2-pubkeyfile.c)
            format!(
                "sshd[7]: Accepted certificate ID \"{id}\" (serial 8142207957869255637) signed by \
                 CA ED25519 SHA256:01O1niTG found at /home/a/.ssh/authorized_keys:3"
            ),
        ] {
            let p = parse_log_line(&line).unwrap();
            assert_eq!(p.serial.get(), 8142207957869255637, "{line}");
            assert_eq!(p.key_id.as_deref(), Some(id), "{line}");
            assert_eq!(
                p.ca_fingerprint.as_deref(),
                Some("SHA256:01O1niTG"),
                "{line}"
            );
        }
    }
}
