//! Who approves a role: approvers or approval steps, how many approvals, and the warnings
//! for a role nobody can request or get approved.

use super::*;

#[test]
fn approval_steps_with_approvers_is_an_error() {
    refused_all(&[
        (
            with_role_line("approval_steps = [{ approvers = [\"group:dba\"], approvals = 1 }]"),
            &["roles.x", "exclusive"],
        ),
        (
            with_role_edit(
                "approvers = [\"group:dba\"]",
                "approvals = 1\napproval_steps = [{ approvers = [\"group:dba\"] }]",
            ),
            &["roles.x", "exclusive"],
        ),
        (
            with_role_edit("approvers = [\"group:dba\"]", "approval_steps = []"),
            &["roles.x.approval_steps"],
        ),
    ]);
}

#[test]
fn approvals_zero_is_an_error() {
    refused_all(&[
        (
            with_role_line("approvals = 0"),
            &["roles.x.approvals: must be between 1 and 100"],
        ),
        (with_role_line("approvals = 101"), &["roles.x.approvals:"]),
        (
            with_role_edit(
                "approvers = [\"group:dba\"]",
                "approval_steps = [{ approvers = [\"group:dba\"] }, \
                 { approvers = [\"group:dba\"], approvals = 0 }]",
            ),
            &["roles.x.approval_steps[1].approvals: must be"],
        ),
        (with_role_line("approvals = -1"), &["approvals"]),
    ]);
}

#[test]
fn missing_approvers_is_an_error() {
    refused_all(&[
        (
            with_role_edit("approvers = [\"group:dba\"]", ""),
            &["roles.x.approvers"],
        ),
        (
            with_role_edit("approvers = [\"group:dba\"]", "approvals = 1"),
            &["roles.x.approvers"],
        ),
    ]);
}

#[test]
fn satisfiability_is_judged_per_requester_not_per_kind_of_requester() {
    // Two approvals from group:dba = {carol, zed}. dave and erin (not in it) are checked
    // first and are fine; zed, checked last, is in it himself, which leaves only carol:
    // he must be the one named.
    let c = ok(r#"
[users.carol]
groups = ["dba"]
[users.dave]
groups = ["dev"]
[users.erin]
groups = ["dev"]
[users.zed]
groups = ["dba", "dev"]
[roles.pair]
principals = ["x"]
requesters = ["group:dev"]
approvers = ["group:dba"]
approvals = 2
"#);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("a request by zed"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn unsatisfiable_role_loads_with_a_warning() {
    // Two approvals needed; besides the requester alice, only bob may approve.
    let c = ok(&pair_role("", "[\"user:alice\", \"user:bob\"]"));
    assert!(c.policy.roles.contains_key(&r("pair")));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = &c.warnings[0];
    assert!(w.contains("roles.pair"), "{w}");
    assert!(w.contains("alice"), "{w}");
    assert!(w.contains("never be approved"), "{w}");

    // The same role with a third eligible person is fine.
    let c = ok(&pair_role(
        "[users.carol]\ngroups = [\"dba\"]\n",
        "[\"user:alice\", \"group:dba\"]",
    ));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

/// alice and bob, `more` users, and a role `pair` alice may request that needs two
/// approvals from `approvers`.
fn pair_role(more: &str, approvers: &str) -> String {
    format!(
        r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
{more}[roles.pair]
principals = ["x"]
requesters = ["user:alice"]
approvers = {approvers}
approvals = 2
"#
    )
}

#[test]
fn role_nobody_can_request_is_a_warning() {
    let c = ok(&with_role_edit("group:dev", "group:interns"));
    assert!(
        warned(&c, &["roles.x", "nobody can request"]),
        "{:?}",
        c.warnings
    );
}
