//! `[[conflicts]]`: the roles it names and its reason.

use super::*;

/// The conflict's roles in [`FULL`].
const ROLES: &str = "roles = [\"deploy\", \"deploy-audit\"]";

#[test]
fn conflict_naming_an_unknown_role_is_an_error() {
    refused_all(&[
        (
            full_edit(ROLES, "roles = [\"deploy\", \"deploy-audti\"]"),
            &["conflicts[0].roles", "deploy-audti", "not defined"],
        ),
        (
            full_edit(ROLES, "roles = [\"deploy\", \"Deploy-Audit\"]"),
            &["conflicts[0].roles"],
        ),
    ]);
}

#[test]
fn conflict_with_only_one_role_is_an_error() {
    refused_all(&[
        (
            full_edit(ROLES, "roles = [\"deploy\"]"),
            &["conflicts[0].roles", "at least two"],
        ),
        (
            full_edit(ROLES, "roles = [\"deploy\", \"deploy\"]"),
            &["conflicts[0].roles", "at least two"],
        ),
        (full_edit(ROLES, "roles = []"), &["conflicts[0].roles"]),
    ]);
}

#[test]
fn conflict_reason_is_required_text() {
    let reason =
        "reason = \"whoever deploys must not also be able to rewrite the deploy audit trail\"";
    refused_all(&[
        (full_edit(reason, "reason = \"\""), &["conflicts[0].reason"]),
        (
            full_edit(reason, "reason = \"a\\u202eb\""),
            &["conflicts[0].reason"],
        ),
        (full_edit(reason, ""), &["reason"]),
    ]);
}
