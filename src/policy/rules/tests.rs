use super::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;

use crate::names::GroupName;
use crate::policy::{Conflict, PrincipalTemplate, Step, User};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The policy of a TOML config; panics with the loader's message if it does not load.
fn policy(text: &str) -> Policy {
    match crate::config::Config::from_toml_str(text, Path::new("test.toml"), Path::new("/tmp")) {
        Ok(c) => c.policy,
        Err(e) => panic!("test policy does not load: {e}"),
    }
}

fn u(s: &str) -> UserName {
    UserName::parse(s).unwrap()
}

fn r(s: &str) -> RoleName {
    RoleName::parse(s).unwrap()
}

fn users(names: &[&str]) -> Vec<UserName> {
    names.iter().map(|n| u(n)).collect()
}

fn role_of<'p>(p: &'p Policy, name: &str) -> &'p Role {
    p.roles
        .get(&r(name))
        .unwrap_or_else(|| panic!("no role {name}"))
}

/// The users in the groups their names suggest:
/// alice dev; bob dba (admin); carol dba+security; dave dba; erin security; frank sre.
const USERS: &str = r#"
[users.alice]
groups = ["dev"]

[users.bob]
groups = ["dba"]
admin = true

[users.carol]
groups = ["dba", "security"]

[users.dave]
groups = ["dba"]

[users.erin]
groups = ["security"]

[users.frank]
groups = ["sre"]
"#;

const ROLES: &str = r#"
[roles.prod-db]
principals = ["dba", "{user}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
approvals = 1
default_ttl = "30m"
max_ttl = "2h"

[roles.prod-db-pair]
principals = ["dba"]
requesters = ["group:dev"]
approvers = ["group:dba"]
approvals = 2

[roles.self-serve]
principals = ["ops"]
requesters = ["group:dev", "group:dba"]
approvers = ["group:dev", "group:dba"]

[roles.deploy]
principals = ["deploy"]
requesters = ["group:dev", "group:sre"]
approvers = ["group:sre", "group:dba"]
default_ttl = "15m"
max_ttl = "1h"

[roles.deploy-audit]
principals = ["deploy-audit"]
requesters = ["group:dev", "group:security"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 1 },
]

[roles.audit-two]
principals = ["audit"]
requesters = ["group:dev", "group:security"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 2 },
]

[[conflicts]]
roles = ["deploy", "deploy-audit"]
reason = "whoever deploys must not also rewrite the deploy audit trail"
"#;

fn standard() -> Policy {
    policy(&format!("{USERS}{ROLES}"))
}

/// Simulates the service's approve loop with the pure functions only: each approver in
/// turn, accepted ones appended. Returns the accepted approvers and every result.
fn approve_all(
    p: &Policy,
    role: &Role,
    requester: &UserName,
    sequence: &[UserName],
) -> (Vec<UserName>, Vec<Result<(), Refusal>>) {
    let mut approved = Vec::new();
    let mut results = Vec::new();
    for a in sequence {
        let res = approver_may_approve(p, role, requester, a, &approved);
        if res.is_ok() {
            approved.push(a.clone());
        }
        results.push(res);
    }
    (approved, results)
}

// ---------------------------------------------------------------------------------------
// One example per rule
// ---------------------------------------------------------------------------------------

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
fn requester_cannot_approve_own_request() {
    let p = standard();
    // alice is in group:dev, which both requests and approves self-serve.
    let role = role_of(&p, "self-serve");
    assert!(requester_must_be_listed(&p, role, &u("alice")).is_ok());
    let err = approver_may_approve(&p, role, &u("alice"), &u("alice"), &[]).unwrap_err();
    assert_eq!(err, Refusal::SelfApproval);
    assert_eq!(err.code(), "self_approval");
    // Not even after someone else approved.
    let err =
        approver_may_approve(&p, role, &u("alice"), &u("alice"), &users(&["bob"])).unwrap_err();
    assert_eq!(err.code(), "self_approval");
}

#[test]
fn admin_cannot_approve_own_request() {
    let p = standard();
    assert!(p.is_admin(&u("bob")));
    let role = role_of(&p, "self-serve");
    assert!(requester_must_be_listed(&p, role, &u("bob")).is_ok());
    let err = approver_may_approve(&p, role, &u("bob"), &u("bob"), &[]).unwrap_err();
    assert_eq!(err.code(), "self_approval");
    // And an admin's own approval, had it been stored, does not count for their request.
    let t = tally(&p, role, &u("bob"), &users(&["bob"]));
    assert!(!t.is_complete());
    assert!(t.counted.is_empty());
}

#[test]
fn non_requester_is_refused_with_not_a_requester() {
    let p = standard();
    let role = role_of(&p, "prod-db");
    assert_eq!(requester_must_be_listed(&p, role, &u("alice")), Ok(()));
    for who in ["bob", "carol", "erin", "frank", "nobody"] {
        let err = requester_must_be_listed(&p, role, &u(who)).unwrap_err();
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
        let err = approver_may_approve(&p, role, &u("alice"), &u(who), &[]).unwrap_err();
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
            approver_may_approve(&p, role, &u("alice"), &u(who), &[]),
            Ok(()),
            "{who}"
        );
    }
}

#[test]
fn same_person_twice_is_already_approved() {
    let p = standard();
    let role = role_of(&p, "prod-db-pair");
    let err = approver_may_approve(&p, role, &u("alice"), &u("bob"), &users(&["bob"])).unwrap_err();
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
    let t = tally(&p, role, &alice, &approved);
    assert!(!t.is_complete());
    assert_eq!(t.still_needed(), 1);

    let (approved, _) = approve_all(&p, role, &alice, &users(&["bob", "carol"]));
    let t = tally(&p, role, &alice, &approved);
    assert!(t.is_complete());
    assert_eq!(t.still_needed(), 0);
    assert_eq!(t.counted, vec![(u("bob"), 0), (u("carol"), 0)]);
}

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
        "{USERS}{ROLES}\n[[conflicts]]\nroles = [\"prod-db\", \"self-serve\", \"audit-two\"]\nreason = \"three\"\n"
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
fn approval_steps_each_must_be_met() {
    let p = standard();
    let role = role_of(&p, "deploy-audit");
    let alice = u("alice");
    assert_eq!(role.approvals_needed(), 2);

    let t = tally(&p, role, &alice, &users(&["bob"]));
    assert!(!t.is_complete());
    assert_eq!(t.missing, vec![0, 1]);

    let t = tally(&p, role, &alice, &users(&["bob", "dave"]));
    assert!(!t.is_complete(), "two DBAs do not meet the security step");
    assert_eq!(t.missing, vec![0, 1]);

    let t = tally(&p, role, &alice, &users(&["erin"]));
    assert_eq!(t.missing, vec![1, 0]);

    let t = tally(&p, role, &alice, &users(&["bob", "erin"]));
    assert!(t.is_complete());
    assert_eq!(t.counted, vec![(u("bob"), 0), (u("erin"), 1)]);
}

#[test]
fn one_person_counts_toward_one_step_only() {
    let p = standard();
    let role = role_of(&p, "deploy-audit");
    // carol is in both dba and security.
    let t = tally(&p, role, &u("alice"), &users(&["carol"]));
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
    let t = tally(&p, role, &alice, &approved);
    assert!(t.is_complete(), "{t:?}");
    assert_eq!(t.counted, vec![(u("carol"), 1), (u("dave"), 0)]);
}

#[test]
fn requester_approval_never_counts_in_tally() {
    let p = standard();
    // carol requests deploy-audit and is eligible for both steps herself.
    let role = role_of(&p, "deploy-audit");
    let carol = u("carol");
    let t = tally(&p, role, &carol, &users(&["carol", "bob"]));
    assert!(!t.is_complete());
    assert_eq!(t.counted, vec![(u("bob"), 0)]);
    assert_eq!(t.missing, vec![0, 1]);
    let t = tally(&p, role, &carol, &users(&["carol", "bob", "erin"]));
    assert!(t.is_complete());
    assert!(t.counted.iter().all(|(who, _)| who != &carol));
}

#[test]
fn removed_user_no_longer_counts() {
    let p = standard();
    let alice = u("alice");
    let approved = users(&["bob"]);
    assert!(tally(&p, role_of(&p, "prod-db"), &alice, &approved).is_complete());

    // bob leaves the company: his stored approval stops counting.
    let mut gone = p.clone();
    gone.users.remove(&u("bob"));
    let role = role_of(&gone, "prod-db");
    let t = tally(&gone, role, &alice, &approved);
    assert!(!t.is_complete());
    assert!(t.counted.is_empty());
    // And he cannot approve again.
    assert_eq!(
        approver_may_approve(&gone, role, &alice, &u("bob"), &[])
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
    let t = tally(&moved, role_of(&moved, "prod-db"), &alice, &approved);
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
fn may_view_requester_approver_admin_only() {
    let p = standard();
    let role = Some(role_of(&p, "prod-db"));
    let alice = u("alice");
    assert!(may_view(&p, role, &alice, &alice), "requester");
    assert!(may_view(&p, role, &alice, &u("bob")), "admin and approver");
    assert!(may_view(&p, role, &alice, &u("carol")), "approver");
    assert!(may_view(&p, role, &alice, &u("dave")), "approver");
    assert!(!may_view(&p, role, &alice, &u("erin")), "unrelated");
    assert!(!may_view(&p, role, &alice, &u("frank")), "unrelated");
    assert!(!may_view(&p, role, &alice, &u("nobody")), "unknown");

    // The role was removed: only the requester and admins still see the request.
    assert!(may_view(&p, None, &alice, &alice));
    assert!(may_view(&p, None, &alice, &u("bob")));
    assert!(!may_view(&p, None, &alice, &u("carol")));
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

const GROUPS: usize = 4;
const MAX_USERS: usize = 8;

/// A generated member: a group `g0..g3` or a user `u0..u7` (reduced modulo the number of
/// users, so it always names a defined user).
#[derive(Debug, Clone, Copy)]
enum GenMember {
    Group(usize),
    User(usize),
}

#[derive(Debug, Clone)]
struct GenStep {
    members: Vec<GenMember>,
    approvals: u32,
}

#[derive(Debug, Clone)]
struct Scenario {
    /// For each user `u{i}`, a bitmask of its groups.
    user_groups: Vec<u8>,
    requesters: Vec<GenMember>,
    steps: Vec<GenStep>,
    /// Index of the requesting user.
    requester: usize,
    /// Approvers in order; index `user_groups.len()` stands for an unknown user.
    sequence: Vec<usize>,
}

fn gen_member() -> impl Strategy<Value = GenMember> {
    prop_oneof![
        3 => (0..GROUPS).prop_map(GenMember::Group),
        1 => (0..MAX_USERS).prop_map(GenMember::User),
    ]
}

fn gen_step() -> impl Strategy<Value = GenStep> {
    (proptest::collection::vec(gen_member(), 1..=2), 1u32..=3)
        .prop_map(|(members, approvals)| GenStep { members, approvals })
}

fn gen_scenario() -> impl Strategy<Value = Scenario> {
    (2..=MAX_USERS)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(0u8..(1 << GROUPS), n),
                proptest::collection::vec(gen_member(), 1..=2),
                proptest::collection::vec(gen_step(), 1..=3),
                0..n,
                // Users, possibly repeated, possibly the requester, possibly unknown (n).
                proptest::collection::vec(0..=n, 0..=14),
            )
        })
        .prop_map(
            |(user_groups, requesters, steps, requester, sequence)| Scenario {
                user_groups,
                requesters,
                steps,
                requester,
                sequence,
            },
        )
}

fn uname(i: usize) -> UserName {
    u(&format!("u{i}"))
}

fn gname(i: usize) -> GroupName {
    GroupName::parse(&format!("g{i}")).unwrap()
}

fn member(m: GenMember, n_users: usize) -> Member {
    match m {
        GenMember::Group(g) => Member::Group(gname(g)),
        GenMember::User(i) => Member::User(uname(i % n_users)),
    }
}

fn plain_role(name: &str, requesters: Vec<Member>, steps: Vec<Step>) -> Role {
    Role {
        name: r(name),
        principals: vec![PrincipalTemplate("p".into())],
        requesters,
        steps,
        default_ttl: Duration::from_secs(1800),
        max_ttl: Duration::from_secs(7200),
        extensions: BTreeSet::new(),
        force_command: None,
        source_address: Vec::new(),
        cached_digest: Default::default(),
    }
}

/// The scenario as a policy with one role `r0`.
fn build(s: &Scenario) -> Policy {
    let n = s.user_groups.len();
    let mut users = BTreeMap::new();
    for (i, mask) in s.user_groups.iter().enumerate() {
        let groups = (0..GROUPS)
            .filter(|g| mask & (1 << g) != 0)
            .map(gname)
            .collect();
        users.insert(
            uname(i),
            User {
                name: uname(i),
                groups,
                admin: i == 0,
                ssh_keys: Vec::new(),
            },
        );
    }
    let dedup = |ms: &[GenMember]| {
        let mut out: Vec<Member> = Vec::new();
        for m in ms {
            let m = member(*m, n);
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    };
    let steps = s
        .steps
        .iter()
        .map(|st| Step {
            approvers: dedup(&st.members),
            approvals: st.approvals,
        })
        .collect();
    let role = plain_role("r0", dedup(&s.requesters), steps);
    let mut roles = BTreeMap::new();
    roles.insert(role.name.clone(), role);
    Policy {
        users,
        roles,
        conflicts: Vec::new(),
    }
}

/// Independent oracle for the tally: by the deficiency version of Hall's theorem, the
/// largest assignment of distinct eligible approvers to step slots leaves
/// `max(0, max over step subsets S of (sum of approvals in S - |people eligible for S|))`
/// slots empty.
fn hall_still_needed(p: &Policy, role: &Role, people: &[UserName]) -> u32 {
    let k = role.steps.len();
    let mut worst = 0i64;
    for subset in 1u32..(1 << k) {
        let demand: i64 = (0..k)
            .filter(|i| subset & (1 << i) != 0)
            .map(|i| i64::from(role.steps[i].approvals))
            .sum();
        let supply = people
            .iter()
            .filter(|who| {
                (0..k)
                    .filter(|i| subset & (1 << i) != 0)
                    .any(|i| p.is_any_member(who, &role.steps[i].approvers))
            })
            .count() as i64;
        worst = worst.max(demand - supply);
    }
    worst as u32
}

/// The refusal `approver_may_approve` must give, worked out from the rules' text.
fn expected_code(
    p: &Policy,
    role: &Role,
    requester: &UserName,
    approver: &UserName,
    approved: &[UserName],
) -> Option<&'static str> {
    if approver == requester {
        Some("self_approval")
    } else if approved.contains(approver) {
        Some("already_approved")
    } else if !p.users.contains_key(approver)
        || !role
            .steps
            .iter()
            .any(|s| p.is_any_member(approver, &s.approvers))
    {
        Some("not_an_approver")
    } else {
        None
    }
}

fn check_tally(
    p: &Policy,
    role: &Role,
    requester: &UserName,
    approved: &[UserName],
) -> Result<Tally, TestCaseError> {
    let t = tally(p, role, requester, approved);
    prop_assert_eq!(t.missing.len(), role.steps.len());
    for (step, missing) in role.steps.iter().zip(&t.missing) {
        prop_assert!(*missing <= step.approvals);
    }
    // Every counted pair is an eligible approver, not the requester, counted once, and
    // the counts add up.
    let mut seen = BTreeSet::new();
    for (who, step) in &t.counted {
        prop_assert!(who != requester, "requester counted: {:?}", t);
        prop_assert!(approved.contains(who), "{} counted but never approved", who);
        prop_assert!(p.users.contains_key(who));
        prop_assert!(*step < role.steps.len());
        prop_assert!(
            p.is_any_member(who, &role.steps[*step].approvers),
            "{} counted toward step {} without being eligible",
            who,
            step
        );
        prop_assert!(seen.insert(who.clone()), "{} counted twice: {:?}", who, t);
    }
    prop_assert_eq!(
        t.counted.len() as u32 + t.still_needed(),
        role.approvals_needed()
    );
    // Maximal: exactly what Hall's theorem says the best assignment leaves missing.
    let people: Vec<UserName> = approved
        .iter()
        .filter(|w| *w != requester && p.users.contains_key(*w))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    prop_assert_eq!(
        t.still_needed(),
        hall_still_needed(p, role, &people),
        "tally {:?} for {:?}",
        &t,
        approved
    );
    if t.is_complete() {
        let distinct: BTreeSet<&UserName> = approved.iter().collect();
        prop_assert!(distinct.len() as u32 >= role.approvals_needed());
        prop_assert!(!distinct.contains(requester));
        prop_assert_eq!(t.counted.len() as u32, role.approvals_needed());
    }
    Ok(t)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn approve_loop_keeps_separation_of_duties(s in gen_scenario()) {
        let p = build(&s);
        let role = &p.roles[&r("r0")];
        let requester = uname(s.requester);
        let n = s.user_groups.len();
        let mut approved: Vec<UserName> = Vec::new();
        let mut previous_needed = role.approvals_needed();
        for &i in &s.sequence {
            let approver = if i == n { u("ghost") } else { uname(i) };
            let result = approver_may_approve(&p, role, &requester, &approver, &approved);
            let expected = expected_code(&p, role, &requester, &approver, &approved);
            prop_assert_eq!(result.as_ref().err().map(Refusal::code), expected);
            if approver == requester {
                // (b) the requester is never accepted.
                prop_assert!(result.is_err());
            }
            if result.is_ok() {
                approved.push(approver);
            }
            // (a) checked after every step of the loop, as the service tallies each time.
            let t = check_tally(&p, role, &requester, &approved)?;
            // Another approval never makes things worse.
            prop_assert!(t.still_needed() <= previous_needed);
            previous_needed = t.still_needed();
        }
        prop_assert!(!approved.contains(&requester));
        let distinct: BTreeSet<&UserName> = approved.iter().collect();
        prop_assert_eq!(distinct.len(), approved.len(), "accepted someone twice");

        // The tally does not depend on the order of approvals.
        let mut reversed = approved.clone();
        reversed.reverse();
        let forward = tally(&p, role, &requester, &approved);
        let backward = tally(&p, role, &requester, &reversed);
        prop_assert_eq!(forward.is_complete(), backward.is_complete());
        prop_assert_eq!(forward.still_needed(), backward.still_needed());
    }

    #[test]
    fn satisfiable_agrees_with_everyone_approving(s in gen_scenario()) {
        let p = build(&s);
        let role = &p.roles[&r("r0")];
        let requester = uname(s.requester);
        let everyone: Vec<UserName> = p.users.keys().cloned().collect();
        let (approved, _) = approve_all(&p, role, &requester, &everyone);
        let t = tally(&p, role, &requester, &approved);
        match satisfiable(&p, role, &requester) {
            Ok(()) => prop_assert!(t.is_complete()),
            Err(step) => {
                prop_assert!(!t.is_complete());
                prop_assert!(step < role.steps.len());
                prop_assert!(t.missing[step] > 0);
                prop_assert!(t.missing[..step].iter().all(|&m| m == 0));
            }
        }
    }

    #[test]
    fn conflicting_holding_refuses_iff_declared(
        n_roles in 2usize..=5,
        conflict_masks in proptest::collection::vec(0u8..32, 0..=3),
        requested in 0usize..5,
        holdings in proptest::collection::vec(0usize..5, 0..=5),
    ) {
        let names: Vec<RoleName> = (0..n_roles).map(|i| r(&format!("r{i}"))).collect();
        let conflicts: Vec<Conflict> = conflict_masks
            .iter()
            .enumerate()
            .map(|(ci, mask)| Conflict {
                roles: (0..n_roles)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| names[i].clone())
                    .collect(),
                reason: format!("c{ci}"),
            })
            .filter(|c| c.roles.len() >= 2)
            .collect();
        let mut roles = BTreeMap::new();
        for name in &names {
            roles.insert(name.clone(), plain_role(name.as_str(), vec![Member::User(u("a"))], vec![Step {
                approvers: vec![Member::User(u("a"))],
                approvals: 1,
            }]));
        }
        let p = Policy { users: BTreeMap::new(), roles, conflicts: conflicts.clone() };
        let user = u("a");
        let requested = &names[requested % n_roles];
        let held: Vec<&RoleName> = holdings.iter().map(|h| &names[h % n_roles]).collect();

        let declared = |a: &RoleName, b: &RoleName| {
            a != b && conflicts.iter().any(|c| c.roles.contains(a) && c.roles.contains(b))
        };
        let expect_refusal = held.iter().any(|h| declared(requested, h));
        let result = no_conflicting_holding(&p, requested, &user, held.iter().copied());
        prop_assert_eq!(result.is_err(), expect_refusal, "{:?}", result);
        if let Err(refusal) = result {
            prop_assert_eq!(refusal.code(), "sod_conflict");
            match refusal {
                Refusal::SodConflict { held: h, role, .. } => {
                    prop_assert_eq!(&role, requested);
                    prop_assert!(held.contains(&&h));
                    prop_assert!(declared(requested, &h));
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        // Symmetric for every pair of roles.
        for a in &names {
            for b in &names {
                prop_assert_eq!(
                    p.conflict_between(a, b).is_some(),
                    p.conflict_between(b, a).is_some()
                );
                prop_assert_eq!(p.conflict_between(a, b).is_some(), declared(a, b));
                prop_assert_eq!(
                    no_conflicting_holding(&p, a, &user, [b]).is_err(),
                    no_conflicting_holding(&p, b, &user, [a]).is_err()
                );
            }
        }
    }
}
