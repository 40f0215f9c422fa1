//! People signed in through the identity provider: their groups count like TOML groups,
//! and the names they bring are checked against the roles' principals.

use std::collections::BTreeSet;

use super::*;
use crate::policy::IdpGroups;

fn g(s: &str) -> GroupName {
    GroupName::parse(s).unwrap()
}

/// `who` has a live session giving `groups`.
fn signed_in(who: &[(&str, &[&str])]) -> IdpGroups {
    let mut idp = IdpGroups::default();
    for (user, groups) in who {
        idp.insert(
            u(user),
            groups.iter().map(|x| g(x)).collect::<BTreeSet<_>>(),
        );
    }
    idp
}

#[test]
fn a_person_only_the_provider_knows_requests_through_a_mapped_group() {
    let p = standard();
    let role = role_of(&p, "prod-db");
    let idp = signed_in(&[("zoe", &["dev"])]);
    assert_eq!(
        requester_must_be_listed(&People::new(&p, &idp), role, &u("zoe")),
        Ok(())
    );
    // Without the session (or its group), nothing.
    let err = requester_must_be_listed(&People::of_policy(&p), role, &u("zoe")).unwrap_err();
    assert_eq!(err.code(), "not_a_requester");
    let idp = signed_in(&[("zoe", &[])]);
    let err = requester_must_be_listed(&People::new(&p, &idp), role, &u("zoe")).unwrap_err();
    assert_eq!(err.code(), "not_a_requester");
}

#[test]
fn provider_groups_add_to_toml_groups_and_never_make_an_admin() {
    let p = standard();
    // alice is dev in the TOML; the provider adds dba.
    let idp = signed_in(&[("alice", &["dba"])]);
    let people = People::new(&p, &idp);
    let groups: Vec<String> = people
        .groups_of(&u("alice"))
        .iter()
        .map(|x| x.to_string())
        .collect();
    assert_eq!(groups, ["dba", "dev"]);
    let role = role_of(&p, "prod-db");
    assert!(people.may_decide(&u("alice"), role));
    assert!(!People::of_policy(&p).may_decide(&u("alice"), role));
    let idp = signed_in(&[("zoe", &["admin", "dba"])]);
    assert!(!People::new(&p, &idp).is_admin(&u("zoe")));
}

#[test]
fn an_approval_by_a_provider_group_counts_only_while_it_holds() {
    let p = standard();
    let role = role_of(&p, "prod-db-pair");
    let idp = signed_in(&[("zoe", &["dba"])]);
    let with = tally(
        &People::new(&p, &idp),
        role,
        &u("alice"),
        &users(&["bob", "zoe"]),
    );
    assert!(with.is_complete());
    // Zoe's session ended (or the provider took dba away): her approval no longer counts.
    let without = tally(
        &People::of_policy(&p),
        role,
        &u("alice"),
        &users(&["bob", "zoe"]),
    );
    assert_eq!(without.still_needed(), 1);
    assert_eq!(
        approver_may_approve(&People::of_policy(&p), role, &u("alice"), &u("zoe"), &[])
            .unwrap_err()
            .code(),
        "not_an_approver"
    );
}

#[test]
fn a_provider_name_that_is_another_roles_principal_is_refused() {
    // prod-db gives "dba" as a fixed principal and "{user}": a person named dba would
    // log in as dba through `{user}` of a role that does not give it.
    let p = policy(&format!(
        "{USERS}{ROLES}{}",
        r#"
[roles.own-login]
principals = ["{user}"]
requesters = ["group:dev"]
approvers = ["group:dba"]

[roles.admin-login]
principals = ["{user}-admin"]
requesters = ["group:sre"]
approvers = ["group:dba"]
"#
    ));
    let role = role_of(&p, "own-login");
    let idp = signed_in(&[
        ("dba", &["dev"]),
        ("frank-admin", &["dev"]),
        ("root", &["dev"]),
        ("ubuntu", &["dev"]),
        ("zoe", &["dev"]),
    ]);
    let people = People::new(&p, &idp);
    let refused = |who: &str| {
        principals_must_be_own(&people, role, &u(who))
            .unwrap_err()
            .to_string()
    };
    assert!(refused("dba").contains("a fixed principal of role prod-db"));
    assert!(refused("frank-admin").contains("gives user frank"));
    assert!(refused("root").contains("system account"));
    assert!(refused("ubuntu").contains("system account"));
    assert_eq!(
        principals_must_be_own(&people, role, &u("zoe")),
        Ok(()),
        "an ordinary name is its own"
    );
    // The config loader checked `[users]` names that request by the TOML already.
    assert_eq!(principals_must_be_own(&people, role, &u("alice")), Ok(()));
}

#[test]
fn a_configured_name_that_requests_through_the_provider_is_checked_too() {
    // `ops` and `ubuntu` are `[users]` entries with no TOML group (names reserved for
    // the provider's people): the loader saw them request nothing. Through the
    // provider's dev they request own-login, whose "{user}" would give ops the fixed
    // principal of self-serve, without its approvers and around its conflicts.
    let p = policy(&format!(
        "{USERS}{ROLES}{}",
        r#"
[users.ops]
[users.ubuntu]
groups = ["security"]

[roles.own-login]
principals = ["{user}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
"#
    ));
    let role = role_of(&p, "own-login");
    let idp = signed_in(&[("ops", &["dev"]), ("ubuntu", &["dev"])]);
    let people = People::new(&p, &idp);
    let refused = principals_must_be_own(&people, role, &u("ops")).unwrap_err();
    assert_eq!(refused.code(), "principal_taken");
    assert!(
        refused
            .to_string()
            .contains("a fixed principal of role self-serve")
    );
    // Nor a system account's name (the loader only warns of one the TOML gives).
    let refused = principals_must_be_own(&people, role, &u("ubuntu")).unwrap_err();
    assert!(refused.to_string().contains("system account"), "{refused}");
}

#[test]
fn user_giving_inverts_a_template() {
    let t = crate::policy::PrincipalTemplate("{user}-admin".into());
    assert_eq!(t.user_giving("bob-admin"), Some(u("bob")));
    assert_eq!(t.user_giving("bob"), None);
    assert_eq!(t.user_giving("-admin"), None);
    let t = crate::policy::PrincipalTemplate("{user}.{user}".into());
    assert_eq!(t.user_giving("ab.ab"), Some(u("ab")));
    assert_eq!(t.user_giving("ab.ac"), None);
    let fixed = crate::policy::PrincipalTemplate("dba".into());
    assert_eq!(fixed.user_giving("dba"), None);
}
