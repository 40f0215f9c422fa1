//! A role's own keys: principals, durations, source addresses, extensions and
//! force_command.

use super::*;

#[test]
fn bad_principals_are_errors() {
    for bad in [
        "[]",
        "[\"*\"]",
        "[\"a,b\"]",
        "[\"a b\"]",
        "[\"-x\"]",
        "[\"\"]",
        "[\"ok\", \"r\u{43e}ot\"]",
        "[\"{role}\"]",
        "[\"{user}-{host}\"]",
        "[\"{user\"]",
        "[\"-{user}\"]",
    ] {
        let msg = err(&with_principals(bad));
        assert!(msg.contains("roles.x.principals"), "{bad}: {msg}");
    }
}

#[test]
fn user_template_too_long_for_a_user_is_an_error() {
    let long = "l".repeat(60);
    let text = format!(
        "{}\n[users.{long}]\ngroups = [\"dev\"]\n",
        with_principals("[\"admin-{user}\"]")
    );
    let msg = err(&text);
    assert!(msg.contains("roles.x.principals"), "{msg}");
    assert!(msg.contains(&long), "the message names the user: {msg}");
    // The same template is fine with short names only.
    ok(&with_principals("[\"admin-{user}\"]"));
    // And for the long name when the result fits (60 + 4 = 64).
    ok(&format!(
        "{}\n[users.{long}]\ngroups = [\"dev\"]\n",
        with_principals("[\"a-{user}-\"]")
    ));
}

#[test]
fn user_template_expands_per_user() {
    let c = ok(&with_principals(
        "[\"{user}\", \"{user}-ro\", \"shared\", \"alice\"]",
    ));
    let x = &c.policy.roles[&r("x")];
    let names = |user: &str| -> Vec<String> {
        x.principals_for(&u(user))
            .unwrap()
            .iter()
            .map(|p: &Principal| p.as_str().to_owned())
            .collect()
    };
    // Duplicates collapse, order is kept.
    assert_eq!(names("alice"), ["alice", "alice-ro", "shared"]);
    assert_eq!(names("bob"), ["bob", "bob-ro", "shared", "alice"]);
}

#[test]
fn bad_durations_are_errors() {
    for bad in ["0s", "-1m", "abc", "1500ms", "400days", ""] {
        refused_all(&[
            (
                with_role_line(&format!("max_ttl = \"{bad}\"")),
                &["roles.x.max_ttl"],
            ),
            (
                with_role_line(&format!("default_ttl = \"{bad}\"")),
                &["roles.x.default_ttl"],
            ),
            (
                format!("[requests]\npending_ttl = \"{bad}\"\n"),
                &["requests.pending_ttl"],
            ),
        ]);
    }
}

#[test]
fn default_ttl_over_max_ttl_is_an_error() {
    refused(
        &with_role_line("default_ttl = \"3h\"\nmax_ttl = \"2h\""),
        &["roles.x.default_ttl", "max_ttl"],
    );
    // Equal is fine.
    let c = ok(&with_role_line("default_ttl = \"2h\"\nmax_ttl = \"2h\""));
    assert_eq!(
        c.policy.roles[&r("x")].default_ttl,
        Duration::from_secs(7200)
    );
    // Over the implicit 2h max_ttl, too.
    refused(
        &with_role_line("default_ttl = \"3h\""),
        &["roles.x.default_ttl"],
    );
}

#[test]
fn invalid_cidrs_are_errors() {
    for bad in [
        "10.0.0.1/8",
        "10.0.0.0/33",
        "10.0.0",
        "any",
        "fd00::1/8",
        "",
    ] {
        refused(
            &with_role_line(&format!("source_address = [\"{bad}\"]")),
            &["roles.x.source_address"],
        );
    }
    refused_all(&[
        (
            with_role_line("source_address = [\"10.0.0.1/8\"]"),
            &["host bits", "10.0.0.0/8"],
        ),
        (
            with_role_line("source_address = []"),
            &["roles.x.source_address"],
        ),
    ]);
    let c = ok(&with_role_line(
        "source_address = [\"10.0.0.0/8\", \" 192.0.2.7 \", \"2001:db8::/32\"]",
    ));
    let nets: Vec<String> = c.policy.roles[&r("x")]
        .source_address
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
}

#[test]
fn non_standard_extension_is_an_error() {
    for bad in [
        "permit-everything",
        "Permit-pty",
        "permit-pty ",
        "force-command",
    ] {
        refused(
            &with_role_line(&format!("extensions = [\"{bad}\"]")),
            &["roles.x.extensions"],
        );
    }
    let c = ok(&with_role_line("extensions = []"));
    assert!(c.policy.roles[&r("x")].extensions.is_empty());
}

#[test]
fn bad_force_command_is_an_error() {
    let too_long = "x".repeat(1025);
    for bad in ["", "   ", "ls\\nrm -rf /", too_long.as_str()] {
        refused(
            &with_role_line(&format!("force_command = \"{bad}\"")),
            &["roles.x.force_command"],
        );
    }
}
