//! Properties of the approval rules over generated policies, checked against independent
//! oracles (Hall's theorem for the tally, the rules' text for refusals).

use super::*;
use crate::policy::People;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::policy::{Conflict, PrincipalTemplate, Step, User};

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
        break_glass: None,
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
                key_comments: BTreeMap::new(),
                oidc_subject: None,
                bot: false,
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
        key_owners: Default::default(),
        signing: None,
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
                    .any(|i| People::of_policy(p).is_any_member(who, &role.steps[i].approvers))
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
            .any(|s| People::of_policy(p).is_any_member(approver, &s.approvers))
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
    let t = tally(&People::of_policy(p), role, requester, approved);
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
            People::of_policy(p).is_any_member(who, &role.steps[*step].approvers),
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
        approve_loop_keeps_separation_of_duties_in(&s)?;
    }

    #[test]
    fn satisfiable_agrees_with_everyone_approving(s in gen_scenario()) {
        satisfiable_agrees_with_everyone_approving_in(&s)?;
    }

    #[test]
    fn conflicting_holding_refuses_iff_declared(
        n_roles in 2usize..=5,
        conflict_masks in proptest::collection::vec(0u8..32, 0..=3),
        requested in 0usize..5,
        holdings in proptest::collection::vec(0usize..5, 0..=5),
    ) {
        conflicting_holding_refuses_iff_declared_in(
            n_roles,
            &conflict_masks,
            requested,
            &holdings,
        )?;
    }
}

// The properties' bodies, outside the macro so that rustfmt formats them.

/// Every step of the approve loop agrees with the rules' text and the tally's oracle.
fn approve_loop_keeps_separation_of_duties_in(s: &Scenario) -> Result<(), TestCaseError> {
    let p = build(s);
    let role = &p.roles[&r("r0")];
    let requester = uname(s.requester);
    let n = s.user_groups.len();
    let mut approved: Vec<UserName> = Vec::new();
    let mut previous_needed = role.approvals_needed();
    for &i in &s.sequence {
        let approver = if i == n { u("ghost") } else { uname(i) };
        let result = approver_may_approve(
            &People::of_policy(&p),
            role,
            &requester,
            &approver,
            &approved,
        );
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
    let forward = tally(&People::of_policy(&p), role, &requester, &approved);
    let backward = tally(&People::of_policy(&p), role, &requester, &reversed);
    prop_assert_eq!(forward.is_complete(), backward.is_complete());
    prop_assert_eq!(forward.still_needed(), backward.still_needed());
    Ok(())
}

/// A role is satisfiable for a requester exactly when everyone else approving meets it.
fn satisfiable_agrees_with_everyone_approving_in(s: &Scenario) -> Result<(), TestCaseError> {
    let p = build(s);
    let role = &p.roles[&r("r0")];
    let requester = uname(s.requester);
    let everyone: Vec<UserName> = p.users.keys().cloned().collect();
    let (approved, _) = approve_all(&p, role, &requester, &everyone);
    let t = tally(&People::of_policy(&p), role, &requester, &approved);
    match satisfiable(&p, role, &requester) {
        Ok(()) => prop_assert!(t.is_complete()),
        Err(step) => {
            prop_assert!(!t.is_complete());
            prop_assert!(step < role.steps.len());
            prop_assert!(t.missing[step] > 0);
            prop_assert!(t.missing[..step].iter().all(|&m| m == 0));
        }
    }
    Ok(())
}

/// Holding a role refuses another exactly when a declared conflict names both.
fn conflicting_holding_refuses_iff_declared_in(
    n_roles: usize,
    conflict_masks: &[u8],
    requested: usize,
    holdings: &[usize],
) -> Result<(), TestCaseError> {
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
        roles.insert(
            name.clone(),
            plain_role(
                name.as_str(),
                vec![Member::User(u("a"))],
                vec![Step {
                    approvers: vec![Member::User(u("a"))],
                    approvals: 1,
                }],
            ),
        );
    }
    let p = Policy {
        users: BTreeMap::new(),
        roles,
        conflicts: conflicts.clone(),
        key_owners: Default::default(),
        signing: None,
    };
    let user = u("a");
    let requested = &names[requested % n_roles];
    let held: Vec<&RoleName> = holdings.iter().map(|h| &names[h % n_roles]).collect();

    let declared = |a: &RoleName, b: &RoleName| {
        a != b
            && conflicts
                .iter()
                .any(|c| c.roles.contains(a) && c.roles.contains(b))
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
    Ok(())
}
