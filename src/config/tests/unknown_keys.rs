//! Unknown keys are errors in every section: a typo must not silently drop a setting or a
//! restriction.

use super::*;

#[test]
fn unknown_top_level_key_is_an_error() {
    refused_all(&[
        (
            format!("{FULL}\n[servers]\nlisten = \"x\"\n"),
            &["servers", "unknown field"],
        ),
        (
            format!("colour = \"blue\"\n{FULL}"),
            &["colour", "unknown field"],
        ),
    ]);
}

#[test]
fn unknown_server_key_is_an_error() {
    refused(
        &full_edit("data_dir = \"data\"", "data_dir = \"data\"\nport = 7070"),
        &["port", "unknown field"],
    );
}

#[test]
fn unknown_ca_and_requests_keys_are_errors() {
    refused_all(&[
        (
            full_edit("backdate = \"1m\"", "backdate = \"1m\"\nalgo = \"rsa\""),
            &["algo", "unknown field"],
        ),
        (
            full_edit("pending_ttl = \"1h\"", "pending_ttl = \"1h\"\nmax = 3"),
            &["max", "unknown field"],
        ),
    ]);
}

#[test]
fn unknown_role_key_is_an_error() {
    // A plausible typo must not silently drop a restriction.
    refused_all(&[
        (
            with_role_line("source_addresses = [\"10.0.0.0/8\"]"),
            &["source_addresses", "unknown field"],
        ),
        (
            with_role_line("approval = 2"),
            &["approval", "unknown field"],
        ),
        (
            with_role_edit(
                "approvers = [\"group:dba\"]",
                "approval_steps = [{ approvers = [\"group:dba\"], needs = 2 }]",
            ),
            &["needs", "unknown field"],
        ),
    ]);
}

#[test]
fn unknown_user_key_is_an_error() {
    refused_all(&[
        (
            full_edit("admin = true", "admin = true\nsuperuser = true"),
            &["superuser", "unknown field"],
        ),
        (
            full_edit("[users.alice]\ngroups", "[users.alice]\ngroup"),
            &["group", "unknown field"],
        ),
    ]);
}

#[test]
fn unknown_conflict_key_is_an_error() {
    refused(
        &full_edit("[[conflicts]]\n", "[[conflicts]]\nseverity = \"high\"\n"),
        &["severity", "unknown field"],
    );
}
