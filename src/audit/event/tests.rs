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
    let unique: std::collections::BTreeSet<_> = AuditEvent::ACTIONS.iter().collect();
    assert_eq!(unique.len(), AuditEvent::ACTIONS.len());
}

/// An early version wrote `valid_after`/`valid_before` of `certificate.issued` as
/// numbers: the event is still read, those fields as text, and a field that cannot be
/// read at all is left at its default rather than losing the event.
#[test]
fn fields_of_another_type_are_read_as_well_as_they_can_be() {
    let early = json!({
        "serial": "5", "requester": "alice", "role": "ops", "key_id": "k",
        "valid_after": 1764000000, "valid_before": 1764001800,
        "approvals": [{"approver": "bob", "step": "one"}],
    });
    match AuditEvent::parse("certificate.issued", &early) {
        Some(AuditEvent::CertificateIssued(i)) => {
            assert_eq!(
                (i.valid_after.as_str(), i.valid_before.as_str()),
                ("1764000000", "1764001800")
            );
            assert_eq!((i.requester.as_str(), i.key_id.as_str()), ("alice", "k"));
            assert!(i.approvals.is_empty(), "unreadable approvals default");
        }
        other => panic!("{other:?}"),
    }
    match AuditEvent::parse(
        "request.created",
        &json!({"role": "ops", "ttl_seconds": "x"}),
    ) {
        Some(AuditEvent::RequestCreated(c)) => {
            assert_eq!((c.role.as_str(), c.ttl_seconds), ("ops", 0))
        }
        other => panic!("{other:?}"),
    }
}
