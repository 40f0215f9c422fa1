//! Conflicting roles: nobody holds or requests two roles of one `[[conflicts]]` entry.

use super::*;

#[test]
fn conflicts_are_symmetric() {
    let p = standard();
    let (a, b) = (r("deploy"), r("deploy-audit"));
    assert!(p.conflict_between(&a, &b).is_some());
    assert!(p.conflict_between(&b, &a).is_some());
    assert!(p.conflict_between(&a, &a).is_none());
    assert!(p.conflict_between(&a, &r("prod-db")).is_none());
    let user = u("alice");
    assert_eq!(
        no_conflicting_holding(&p, &a, &user, [&b])
            .unwrap_err()
            .code(),
        "sod_conflict"
    );
    assert_eq!(
        no_conflicting_holding(&p, &b, &user, [&a])
            .unwrap_err()
            .code(),
        "sod_conflict"
    );

    // A conflict of three roles makes every pair of them conflict, both ways.
    let p3 = policy(&format!(
        "{USERS}{ROLES}\n[[conflicts]]\n\
         roles = [\"prod-db\", \"self-serve\", \"audit-two\"]\nreason = \"three\"\n"
    ));
    let three = [r("prod-db"), r("self-serve"), r("audit-two")];
    for x in &three {
        for y in &three {
            assert_eq!(p3.conflict_between(x, y).is_some(), x != y, "{x} {y}");
        }
    }
}

#[test]
fn conflict_with_open_request_or_active_certificate_refuses() {
    let p = standard();
    let user = u("alice");
    // The holdings are the roles of open requests and active certificates alike.
    let err = no_conflicting_holding(&p, &r("deploy-audit"), &user, [&r("prod-db"), &r("deploy")])
        .unwrap_err();
    assert_eq!(err.code(), "sod_conflict");
    match err {
        Refusal::SodConflict {
            user: who,
            role,
            held,
            reason,
            lifts_at: None,
        } => {
            assert_eq!(who, user);
            assert_eq!(role, r("deploy-audit"));
            assert_eq!(held, r("deploy"));
            assert!(reason.contains("audit trail"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // No holdings, unrelated holdings, or the same role again: no conflict.
    assert_eq!(
        no_conflicting_holding(&p, &r("deploy-audit"), &user, []),
        Ok(())
    );
    assert_eq!(
        no_conflicting_holding(&p, &r("deploy-audit"), &user, [&r("prod-db")]),
        Ok(())
    );
    assert_eq!(
        no_conflicting_holding(&p, &r("deploy"), &user, [&r("deploy")]),
        Ok(())
    );
}
