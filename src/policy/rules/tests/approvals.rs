//! Who may request and approve, and how approvals are tallied against the steps:
//! separation of duties between requester and approvers, distinct people, and steps
//! that can never be met.

use super::*;
use crate::policy::People;

#[test]
fn requester_cannot_approve_own_request() {
    let p = standard();
    // alice is in group:dev, which both requests and approves self-serve.
    let role = role_of(&p, "self-serve");
    assert!(requester_must_be_listed(&People::of_policy(&p), role, &u("alice")).is_ok());
    let err = approver_may_approve(&People::of_policy(&p), role, &u("alice"), &u("alice"), &[])
        .unwrap_err();
    assert_eq!(err, Refusal::SelfApproval);
    assert_eq!(err.code(), "self_approval");
    // Not even after someone else approved.
    let err = approver_may_approve(
        &People::of_policy(&p),
        role,
        &u("alice"),
        &u("alice"),
        &users(&["bob"]),
    )
    .unwrap_err();
    assert_eq!(err.code(), "self_approval");
}

#[test]
fn admin_cannot_approve_own_request() {
    let p = standard();
    assert!(p.is_admin(&u("bob")));
    let role = role_of(&p, "self-serve");
    assert!(requester_must_be_listed(&People::of_policy(&p), role, &u("bob")).is_ok());
    let err =
        approver_may_approve(&People::of_policy(&p), role, &u("bob"), &u("bob"), &[]).unwrap_err();
    assert_eq!(err.code(), "self_approval");
    // And an admin's own approval, had it been stored, does not count for their request.
    let t = tally(&People::of_policy(&p), role, &u("bob"), &users(&["bob"]));
    assert!(!t.is_complete());
    assert!(t.counted.is_empty());
}

#[test]
fn non_requester_is_refused_with_not_a_requester() {
    let p = standard();
    let role = role_of(&p, "prod-db");
    assert_eq!(
        requester_must_be_listed(&People::of_policy(&p), role, &u("alice")),
        Ok(())
    );
    for who in ["bob", "carol", "erin", "frank", "nobody"] {
        let err = requester_must_be_listed(&People::of_policy(&p), role, &u(who)).unwrap_err();
        assert_eq!(err.code(), "not_a_requester", "{who}");
        assert_eq!(
            err,
            Refusal::NotARequester {
                user: u(who),
                role: r("prod-db")
            }
        );
    }
    // Admins get no bypass either.
    assert!(p.is_admin(&u("bob")));
}

#[test]
fn approver_outside_role_is_refused_with_not_an_approver() {
    let p = standard();
    let role = role_of(&p, "prod-db");
    for who in ["erin", "frank", "nobody"] {
        let err = approver_may_approve(&People::of_policy(&p), role, &u("alice"), &u(who), &[])
            .unwrap_err();
        assert_eq!(err.code(), "not_an_approver", "{who}");
        assert_eq!(
            err,
            Refusal::NotAnApprover {
                user: u(who),
                role: r("prod-db")
            }
        );
    }
    for who in ["bob", "carol", "dave"] {
        assert_eq!(
            approver_may_approve(&People::of_policy(&p), role, &u("alice"), &u(who), &[]),
            Ok(()),
            "{who}"
        );
    }
}

#[test]
fn same_person_twice_is_already_approved() {
    let p = standard();
    let role = role_of(&p, "prod-db-pair");
    let err = approver_may_approve(
        &People::of_policy(&p),
        role,
        &u("alice"),
        &u("bob"),
        &users(&["bob"]),
    )
    .unwrap_err();
    assert_eq!(err.code(), "already_approved");
    assert_eq!(err, Refusal::AlreadyApproved { user: u("bob") });
}

#[test]
fn two_of_three_needs_two_distinct_people() {
    let p = standard();
    let role = role_of(&p, "prod-db-pair");
    assert_eq!(role.approvals_needed(), 2);
    let alice = u("alice");

    let (approved, results) = approve_all(&p, role, &alice, &users(&["bob", "bob"]));
    assert_eq!(approved, users(&["bob"]));
    assert_eq!(results[1].as_ref().unwrap_err().code(), "already_approved");
    let t = tally(&People::of_policy(&p), role, &alice, &approved);
    assert!(!t.is_complete());
    assert_eq!(t.still_needed(), 1);

    let (approved, _) = approve_all(&p, role, &alice, &users(&["bob", "carol"]));
    let t = tally(&People::of_policy(&p), role, &alice, &approved);
    assert!(t.is_complete());
    assert_eq!(t.still_needed(), 0);
    assert_eq!(t.counted, vec![(u("bob"), 0), (u("carol"), 0)]);
}

#[test]
fn approval_steps_each_must_be_met() {
    let p = standard();
    let role = role_of(&p, "deploy-audit");
    let alice = u("alice");
    assert_eq!(role.approvals_needed(), 2);

    let t = tally(&People::of_policy(&p), role, &alice, &users(&["bob"]));
    assert!(!t.is_complete());
    assert_eq!(t.missing, vec![0, 1]);

    let t = tally(
        &People::of_policy(&p),
        role,
        &alice,
        &users(&["bob", "dave"]),
    );
    assert!(!t.is_complete(), "two DBAs do not meet the security step");
    assert_eq!(t.missing, vec![0, 1]);

    let t = tally(&People::of_policy(&p), role, &alice, &users(&["erin"]));
    assert_eq!(t.missing, vec![1, 0]);

    let t = tally(
        &People::of_policy(&p),
        role,
        &alice,
        &users(&["bob", "erin"]),
    );
    assert!(t.is_complete());
    assert_eq!(t.counted, vec![(u("bob"), 0), (u("erin"), 1)]);
}

#[test]
fn one_person_counts_toward_one_step_only() {
    let p = standard();
    let role = role_of(&p, "deploy-audit");
    // carol is in both dba and security.
    let t = tally(
        &People::of_policy(&p),
        role,
        &u("alice"),
        &users(&["carol"]),
    );
    assert!(!t.is_complete());
    assert_eq!(t.still_needed(), 1);
    assert_eq!(t.counted.len(), 1);
    assert_eq!(t.counted[0].0, u("carol"));
}

#[test]
fn matching_reassigns_a_flexible_approver() {
    let p = standard();
    let role = role_of(&p, "deploy-audit");
    let alice = u("alice");
    // carol (dba + security) approves first, then dave (dba only).
    let (approved, results) = approve_all(&p, role, &alice, &users(&["carol", "dave"]));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let t = tally(&People::of_policy(&p), role, &alice, &approved);
    assert!(t.is_complete(), "{t:?}");
    assert_eq!(t.counted, vec![(u("carol"), 1), (u("dave"), 0)]);
}

#[test]
fn requester_approval_never_counts_in_tally() {
    let p = standard();
    // carol requests deploy-audit and is eligible for both steps herself.
    let role = role_of(&p, "deploy-audit");
    let carol = u("carol");
    let t = tally(
        &People::of_policy(&p),
        role,
        &carol,
        &users(&["carol", "bob"]),
    );
    assert!(!t.is_complete());
    assert_eq!(t.counted, vec![(u("bob"), 0)]);
    assert_eq!(t.missing, vec![0, 1]);
    let t = tally(
        &People::of_policy(&p),
        role,
        &carol,
        &users(&["carol", "bob", "erin"]),
    );
    assert!(t.is_complete());
    assert!(t.counted.iter().all(|(who, _)| who != &carol));
}

#[test]
fn removed_user_no_longer_counts() {
    let p = standard();
    let alice = u("alice");
    let approved = users(&["bob"]);
    assert!(
        tally(
            &People::of_policy(&p),
            role_of(&p, "prod-db"),
            &alice,
            &approved
        )
        .is_complete()
    );

    // bob leaves the company: his stored approval stops counting.
    let mut gone = p.clone();
    gone.users.remove(&u("bob"));
    let role = role_of(&gone, "prod-db");
    let t = tally(&People::of_policy(&gone), role, &alice, &approved);
    assert!(!t.is_complete());
    assert!(t.counted.is_empty());
    // And he cannot approve again.
    assert_eq!(
        approver_may_approve(&People::of_policy(&gone), role, &alice, &u("bob"), &[])
            .unwrap_err()
            .code(),
        "not_an_approver"
    );

    // bob moves to another group: the same.
    let moved = policy(&format!("{USERS}{ROLES}").replace(
        "groups = [\"dba\"]\nadmin = true",
        "groups = [\"sre\"]\nadmin = true",
    ));
    assert!(
        !moved.users[&u("bob")]
            .groups
            .contains(&GroupName::parse("dba").unwrap())
    );
    let t = tally(
        &People::of_policy(&moved),
        role_of(&moved, "prod-db"),
        &alice,
        &approved,
    );
    assert!(!t.is_complete());
}

#[test]
fn satisfiable_reports_the_unmeetable_step() {
    let p = standard();
    // audit-two: 1 from dba, then 2 from security (carol, erin).
    let role = role_of(&p, "audit-two");
    assert_eq!(satisfiable(&p, role, &u("alice")), Ok(()));
    // erin requesting leaves only carol for security's two approvals.
    assert_eq!(satisfiable(&p, role, &u("erin")), Err(1));
    // carol requesting leaves only erin.
    assert_eq!(satisfiable(&p, role, &u("carol")), Err(1));
    // deploy-audit is satisfiable for everyone who may request it.
    for who in ["alice", "carol", "erin"] {
        assert_eq!(
            satisfiable(&p, role_of(&p, "deploy-audit"), &u(who)),
            Ok(()),
            "{who}"
        );
    }
    // The first step unmeetable is the one reported.
    let lone = policy(
        r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
[roles.x]
principals = ["x"]
requesters = ["group:dev"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 2 },
  { approvers = ["group:dba"], approvals = 1 },
]
"#,
    );
    assert_eq!(satisfiable(&lone, role_of(&lone, "x"), &u("alice")), Err(0));
}

#[test]
fn a_service_account_never_approves_and_its_approval_never_counts() {
    let p = policy(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n\
         [users.alice]\ngroups = [\"dev\"]\n[users.ci]\nbot = true\ngroups = [\"dba\"]\n\
         [users.carol]\ngroups = [\"dba\"]\n\
         [roles.db]\nprincipals = [\"db\"]\nrequesters = [\"group:dev\"]\n\
         approvers = [\"group:dba\"]\n",
    );
    let role = role_of(&p, "db");
    let people = People::of_policy(&p);
    assert!(!people.may_decide(&u("ci"), role));
    let err = approver_may_approve(&people, role, &u("alice"), &u("ci"), &[]).unwrap_err();
    assert_eq!(err.code(), "not_an_approver");
    // An approval it made before it was marked a bot does not count at signing.
    assert!(!tally(&people, role, &u("alice"), &users(&["ci"])).is_complete());
    assert!(tally(&people, role, &u("alice"), &users(&["carol"])).is_complete());
}

#[test]
fn an_approval_counts_only_toward_a_step_still_open() {
    let p = standard();
    let people = People::of_policy(&p);
    // deploy-audit: 1 of dba, then 1 of security.
    let role = role_of(&p, "deploy-audit");
    let alice = u("alice");
    assert!(approval_would_count(&people, role, &alice, &[], &u("bob")));
    // bob (dba) met the dba step: dave (dba only) adds nothing; erin (security) does.
    let after_bob = users(&["bob"]);
    assert!(!approval_would_count(
        &people,
        role,
        &alice,
        &after_bob,
        &u("dave")
    ));
    assert!(approval_would_count(
        &people,
        role,
        &alice,
        &after_bob,
        &u("erin")
    ));
    // carol (dba and security) still counts: for the security step.
    assert!(approval_would_count(
        &people,
        role,
        &alice,
        &after_bob,
        &u("carol")
    ));
    // Nobody counts twice, nor the requester.
    assert!(!approval_would_count(
        &people,
        role,
        &alice,
        &after_bob,
        &u("bob")
    ));
    assert!(!approval_would_count(&people, role, &alice, &[], &alice));
}
