//! Unit tests of the events: the stored shape of their details, and parsing them back.

use serde_json::json;

use super::*;

/// The detail each event serialises to is what the hand-built `json!` of earlier
/// versions wrote, key for key.
#[test]
fn details_keep_their_stored_shape() {
    let cancelled = AuditEvent::from(RequestCancelled {
        role: "ops".into(),
        ..Default::default()
    });
    assert_eq!(cancelled.detail().unwrap(), json!({"role": "ops"}));
    let approved = AuditEvent::from(RequestApproved {
        role: "ops".into(),
        requester: "alice".into(),
        comment: None,
    });
    assert_eq!(
        approved.detail().unwrap(),
        json!({"role": "ops", "requester": "alice", "comment": null})
    );
    let revoked = AuditEvent::from(TokenRevoked {
        user: "alice".into(),
        tokens: 2,
        reason: None,
    });
    assert_eq!(
        revoked.detail().unwrap(),
        json!({"user": "alice", "tokens": 2})
    );
    let issued = AuditEvent::from(CertificateIssued {
        serial: "5".into(),
        approvals: vec![CountedApproval {
            approver: "bob".into(),
            step: 1,
        }],
        ..Default::default()
    });
    let detail = issued.detail().unwrap();
    assert_eq!(detail["approvals"], json!([{"approver": "bob", "step": 1}]));
    assert_eq!(
        AuditEvent::parse("certificate.issued", &detail),
        Some(issued)
    );
}

#[test]
fn older_details_parse_with_defaults_and_unknown_actions_do_not() {
    let old = json!({"serial": "5", "requester": "alice", "approvals": []});
    match AuditEvent::parse("certificate.issued", &old) {
        Some(AuditEvent::CertificateIssued(i)) => {
            assert!(i.approvals_required.is_empty());
            assert_eq!(i.requester, "alice");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(AuditEvent::parse("no.such", &json!({})), None);
    assert_eq!(
        AuditEvent::parse("request.created", &json!({"ttl_seconds": "x"})),
        None
    );
    let unique: std::collections::BTreeSet<_> = AuditEvent::ACTIONS.iter().collect();
    assert_eq!(unique.len(), AuditEvent::ACTIONS.len());
}
