//! The rules around a request: stable refusal codes, a role changed under a request,
//! expiry, the certificate's lifetime, and who may view a request.

use super::*;
use crate::policy::People;

#[test]
fn refusal_codes_are_stable() {
    let user = u("alice");
    let role = r("prod-db");
    let cases: [(Refusal, &str); 8] = [
        (
            Refusal::NotARequester {
                user: user.clone(),
                role: role.clone(),
            },
            "not_a_requester",
        ),
        (
            Refusal::NotAnApprover {
                user: user.clone(),
                role: role.clone(),
            },
            "not_an_approver",
        ),
        (Refusal::SelfApproval, "self_approval"),
        (
            Refusal::AlreadyApproved { user: user.clone() },
            "already_approved",
        ),
        (
            Refusal::SodConflict {
                user: user.clone(),
                role: role.clone(),
                held: r("deploy"),
                reason: "x".into(),
                lifts_at: None,
            },
            "sod_conflict",
        ),
        (Refusal::PolicyChanged { role }, "policy_changed"),
        (Refusal::Expired, "expired"),
        (
            Refusal::AlreadyDecided { status: "approved" },
            "already_decided",
        ),
    ];
    for (refusal, code) in cases {
        assert_eq!(refusal.code(), code, "{refusal:?}");
    }
}

#[test]
fn changed_role_is_policy_changed() {
    let p = standard();
    let digest = role_of(&p, "prod-db").digest();
    let same = role_unchanged(&p, &r("prod-db"), &digest).unwrap();
    assert_eq!(same.name, r("prod-db"));

    // A digest from a different role definition.
    let other = role_of(&p, "deploy").digest();
    let err = role_unchanged(&p, &r("prod-db"), &other).unwrap_err();
    assert_eq!(err.code(), "policy_changed");
    assert_eq!(err, Refusal::PolicyChanged { role: r("prod-db") });

    // The same role, edited after the request was made.
    let edited = policy(&format!("{USERS}{ROLES}").replace("max_ttl = \"2h\"", "max_ttl = \"3h\""));
    assert_ne!(role_of(&edited, "prod-db").digest(), digest);
    let err = role_unchanged(&edited, &r("prod-db"), &digest).unwrap_err();
    assert_eq!(err.code(), "policy_changed");

    // The role removed altogether.
    let mut removed = p.clone();
    removed.roles.remove(&r("prod-db"));
    let err = role_unchanged(&removed, &r("prod-db"), &digest).unwrap_err();
    assert_eq!(err.code(), "policy_changed");
}

#[test]
fn expired_at_deadline() {
    assert!(!is_expired(99, 100));
    assert!(is_expired(100, 100));
    assert!(is_expired(101, 100));
    assert!(!is_expired(i64::MIN, i64::MAX));
}

#[test]
fn ttl_over_max_is_an_error_not_clamped() {
    let p = standard();
    let role = role_of(&p, "prod-db");
    assert_eq!(role.max_ttl, Duration::from_secs(7200));
    assert_eq!(
        certificate_ttl(role, Some(Duration::from_secs(7200))),
        Ok(Duration::from_secs(7200))
    );
    assert_eq!(
        certificate_ttl(role, Some(Duration::from_secs(60))),
        Ok(Duration::from_secs(60))
    );
    let err = certificate_ttl(role, Some(Duration::from_secs(7201))).unwrap_err();
    assert!(err.contains("max_ttl"), "{err}");
    assert!(err.contains("prod-db"), "{err}");
}

#[test]
fn default_ttl_used_when_none_requested() {
    let p = standard();
    assert_eq!(
        certificate_ttl(role_of(&p, "prod-db"), None),
        Ok(Duration::from_secs(30 * 60))
    );
    assert_eq!(
        certificate_ttl(role_of(&p, "deploy"), None),
        Ok(Duration::from_secs(15 * 60))
    );
}

#[test]
fn may_view_requester_approver_admin_only() {
    let p = standard();
    let role = Some(role_of(&p, "prod-db"));
    let alice = u("alice");
    assert!(
        may_view(&People::of_policy(&p), role, &alice, &alice),
        "requester"
    );
    assert!(
        may_view(&People::of_policy(&p), role, &alice, &u("bob")),
        "admin and approver"
    );
    assert!(
        may_view(&People::of_policy(&p), role, &alice, &u("carol")),
        "approver"
    );
    assert!(
        may_view(&People::of_policy(&p), role, &alice, &u("dave")),
        "approver"
    );
    assert!(
        !may_view(&People::of_policy(&p), role, &alice, &u("erin")),
        "unrelated"
    );
    assert!(
        !may_view(&People::of_policy(&p), role, &alice, &u("frank")),
        "unrelated"
    );
    assert!(
        !may_view(&People::of_policy(&p), role, &alice, &u("nobody")),
        "unknown"
    );

    // The role was removed: only the requester and admins still see the request.
    assert!(may_view(&People::of_policy(&p), None, &alice, &alice));
    assert!(may_view(&People::of_policy(&p), None, &alice, &u("bob")));
    assert!(!may_view(&People::of_policy(&p), None, &alice, &u("carol")));
}
