//! Break-glass uses told from the audit log, for `countersign report --breakglass` (SOC 2
//! evidence): each use with its reason, how long the access lasted, who reviewed it,
//! their verdicts and how long the review took.

use std::collections::HashMap;

use chrono::DateTime;
use serde::Serialize;

use super::{AuditEvent, Event};

/// One verdict on a use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UseVerdict {
    /// Who reviewed.
    pub reviewer: String,
    /// `justified` or `unjustified`.
    pub verdict: String,
    /// Their comment.
    pub comment: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One break-glass use and its review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakglassUse {
    /// The request it issued.
    pub request_id: String,
    /// Who broke the glass.
    pub user: String,
    /// The role taken.
    pub role: String,
    /// Their reason.
    pub reason: String,
    /// When (RFC 3339).
    pub used_at: String,
    /// The certificate's serial.
    pub serial: Option<String>,
    /// The lifetime granted, in seconds.
    pub ttl_seconds: i64,
    /// Whether the lifetime asked was cut to the table's `max_ttl`.
    pub ttl_cut: bool,
    /// How long the access lasted: to the certificate's end, or its revocation.
    pub held_seconds: i64,
    /// When, by whom and why it was ended early, if it was.
    pub revoked: Option<String>,
    /// Who was to review it.
    pub reviewers: Vec<String>,
    /// Verdicts that close the review.
    pub reviews_required: u32,
    /// When the review was due (RFC 3339).
    pub review_due: String,
    /// The verdicts, in order.
    pub verdicts: Vec<UseVerdict>,
    /// `justified` or `unjustified` once closed; `None` while open.
    pub outcome: Option<String>,
    /// From the use to the close of its review, in seconds.
    pub time_to_review_seconds: Option<i64>,
    /// Whether the review went past its due time unclosed (an overdue notice was sent).
    pub overdue: bool,
    /// The admin whose allowance it spent, if it needed one.
    pub allowed_by: Option<String>,
}

fn seconds(t: &str) -> i64 {
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// Folds `events` (oldest first) into the break-glass uses they show, oldest first.
pub fn uses(events: &[Event]) -> Vec<BreakglassUse> {
    let mut out: Vec<BreakglassUse> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut by_serial: HashMap<String, usize> = HashMap::new();
    for e in events {
        let Some(parsed) = e.parsed() else { continue };
        let request = e.request_id.clone().unwrap_or_default();
        if let AuditEvent::BreakglassUsed(d) = parsed {
            index.insert(request.clone(), out.len());
            out.push(BreakglassUse {
                request_id: request,
                user: e.actor.clone(),
                role: d.role,
                reason: d.reason,
                used_at: e.at.clone(),
                serial: None,
                ttl_seconds: d.ttl_seconds,
                ttl_cut: d.cut,
                held_seconds: 0,
                revoked: None,
                reviewers: d.reviewers,
                reviews_required: d.reviews_required,
                review_due: d.review_due,
                verdicts: Vec::new(),
                outcome: None,
                time_to_review_seconds: None,
                overdue: false,
                allowed_by: d.allowed_by,
            });
            continue;
        }
        if let AuditEvent::CertificateRevoked(d) = &parsed
            && let Some(&i) = e.serial.as_ref().and_then(|s| by_serial.get(s))
        {
            let u = &mut out[i];
            u.held_seconds = (seconds(&e.at) - seconds(&u.used_at)).clamp(0, u.held_seconds);
            u.revoked = Some(format!("{} by {}: {}", e.at, e.actor, d.reason));
            continue;
        }
        let Some(&i) = index.get(&request) else {
            continue;
        };
        let u = &mut out[i];
        match parsed {
            AuditEvent::CertificateIssued(d) => {
                u.serial = e.serial.clone();
                u.held_seconds = (seconds(&d.valid_before) - seconds(&u.used_at)).max(0);
                if let Some(s) = &e.serial {
                    by_serial.insert(s.clone(), i);
                }
            }
            AuditEvent::BreakglassReviewed(d) => u.verdicts.push(UseVerdict {
                reviewer: e.actor.clone(),
                verdict: d.verdict,
                comment: d.comment,
                at: e.at.clone(),
            }),
            AuditEvent::BreakglassReviewClosed(d) => {
                u.outcome = Some(d.outcome);
                u.time_to_review_seconds = Some(d.time_to_review_seconds);
            }
            AuditEvent::BreakglassOverdue(_) => u.overdue = true,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(seq: i64, at: &str, actor: &str, action: &str, detail: serde_json::Value) -> Event {
        Event {
            seq,
            at: at.into(),
            actor: actor.into(),
            action: action.into(),
            request_id: Some("r-aaaaaaaaaaaa".into()),
            serial: matches!(action, "certificate.issued" | "certificate.revoked")
                .then(|| "77".into()),
            detail,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_use_is_told_with_its_access_its_verdicts_and_its_time_to_review() {
        let events = [
            ev(
                1,
                "2026-12-01T03:00:00Z",
                "alice",
                "breakglass.used",
                json!({
                    "role": "prod-db", "reason": "INC-1 db down", "ttl_seconds": 3600,
                    "cut": true, "reviewers": ["group:security"], "reviews_required": 2,
                    "review_due": "2026-12-02T03:00:00Z",
                }),
            ),
            ev(
                2,
                "2026-12-01T03:00:00Z",
                "alice",
                "certificate.issued",
                json!({
                    "valid_before": "2026-12-01T04:00:00Z", "breakglass": true,
                }),
            ),
            ev(
                3,
                "2026-12-01T09:00:00Z",
                "erin",
                "breakglass.reviewed",
                json!({
                    "verdict": "unjustified", "comment": "no incident",
                }),
            ),
            ev(
                4,
                "2026-12-01T03:20:00Z",
                "erin",
                "certificate.revoked",
                json!({
                    "reason": "break-glass review: unjustified",
                }),
            ),
            ev(
                5,
                "2026-12-02T05:00:00Z",
                "carol",
                "breakglass.overdue",
                json!({}),
            ),
            ev(
                6,
                "2026-12-02T06:00:00Z",
                "carol",
                "breakglass.reviewed",
                json!({
                    "verdict": "justified", "comment": "it was real",
                }),
            ),
            ev(
                7,
                "2026-12-02T06:00:00Z",
                "carol",
                "breakglass.review_closed",
                json!({
                    "outcome": "unjustified", "time_to_review_seconds": 97200,
                }),
            ),
        ];
        let uses = uses(&events);
        assert_eq!(uses.len(), 1);
        let u = &uses[0];
        assert_eq!((u.user.as_str(), u.role.as_str()), ("alice", "prod-db"));
        assert_eq!(u.serial.as_deref(), Some("77"));
        assert_eq!(u.held_seconds, 1200, "revoked 20 minutes in");
        assert!(u.revoked.as_deref().unwrap().contains("erin"));
        assert_eq!(u.verdicts.len(), 2);
        assert_eq!(u.verdicts[0].verdict, "unjustified");
        assert_eq!(u.outcome.as_deref(), Some("unjustified"));
        assert_eq!(u.time_to_review_seconds, Some(97200));
        assert!(u.overdue && u.ttl_cut);
    }
}
