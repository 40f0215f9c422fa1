//! A role's digest: approvals are bound to it, so it must change with every field of the
//! role that matters and with nothing else.

use super::*;

const DIGEST_BASE: &str = r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
[users.carol]
groups = ["dba", "security"]

[roles.x]
principals = ["x", "{user}"]
requesters = ["group:dev"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 1 },
]
default_ttl = "20m"
max_ttl = "1h"
extensions = ["permit-pty"]
force_command = "/bin/true"
source_address = ["10.0.0.0/8"]

[roles.y]
principals = ["y"]
requesters = ["group:dev"]
approvers = ["group:dba"]
"#;

fn digest_of(text: &str, role: &str) -> String {
    ok(text).policy.roles[&r(role)].digest()
}

#[test]
fn role_digest_changes_when_any_field_changes() {
    let base = digest_of(DIGEST_BASE, "x");
    assert_eq!(base.len(), 64);
    let edits: [(&str, &str); 12] = [
        ("principals = [\"x\", \"{user}\"]", "principals = [\"x\"]"),
        (
            "principals = [\"x\", \"{user}\"]",
            "principals = [\"{user}\", \"x\"]",
        ),
        (
            "requesters = [\"group:dev\"]\napproval_steps",
            "requesters = [\"group:dev\", \"user:bob\"]\napproval_steps",
        ),
        (
            "{ approvers = [\"group:dba\"], approvals = 1 },",
            "{ approvers = [\"group:dba\", \"user:alice\"], approvals = 1 },",
        ),
        (
            "{ approvers = [\"group:security\"], approvals = 1 },",
            "{ approvers = [\"group:security\"], approvals = 2 },",
        ),
        ("{ approvers = [\"group:security\"], approvals = 1 },", ""),
        ("default_ttl = \"20m\"", "default_ttl = \"21m\""),
        ("max_ttl = \"1h\"", "max_ttl = \"61m\""),
        (
            "extensions = [\"permit-pty\"]",
            "extensions = [\"permit-pty\", \"permit-agent-forwarding\"]",
        ),
        (
            "force_command = \"/bin/true\"",
            "force_command = \"/bin/false\"",
        ),
        ("force_command = \"/bin/true\"", ""),
        (
            "source_address = [\"10.0.0.0/8\"]",
            "source_address = [\"10.0.0.0/16\"]",
        ),
    ];
    let mut seen = vec![base.clone()];
    for (from, to) in edits {
        assert!(DIGEST_BASE.contains(from), "{from}");
        let edited = DIGEST_BASE.replacen(from, to, 1);
        let d = digest_of(&edited, "x");
        assert!(
            !seen.contains(&d),
            "digest unchanged or repeated after {from:?} -> {to:?}"
        );
        seen.push(d);
    }
    // Renaming the role is a change too.
    let renamed = digest_of(&DIGEST_BASE.replace("[roles.x]", "[roles.z]"), "z");
    assert!(!seen.contains(&renamed));
    // Removing source_address altogether.
    let open = digest_of(
        &DIGEST_BASE.replace("source_address = [\"10.0.0.0/8\"]", ""),
        "x",
    );
    assert!(!seen.contains(&open));
}

#[test]
fn role_digest_is_stable_otherwise() {
    let base = digest_of(DIGEST_BASE, "x");
    assert_eq!(digest_of(DIGEST_BASE, "x"), base);
    // Edits elsewhere in the file, in another role, or in users, leave it alone.
    let unrelated = [
        format!("[server]\nlisten = \"127.0.0.1:9999\"\n{DIGEST_BASE}"),
        format!("[requests]\npending_ttl = \"2h\"\n{DIGEST_BASE}"),
        DIGEST_BASE.replace("principals = [\"y\"]", "principals = [\"yy\"]"),
        format!("{DIGEST_BASE}\n[users.dave]\ngroups = [\"dba\"]\n"),
        format!("{DIGEST_BASE}\n[[conflicts]]\nroles = [\"x\", \"y\"]\nreason = \"no\"\n"),
        // Key order inside the role, and writing a default explicitly.
        DIGEST_BASE.replace(
            "default_ttl = \"20m\"\nmax_ttl = \"1h\"",
            "max_ttl = \"1h\"\ndefault_ttl = \"20m\"",
        ),
        DIGEST_BASE.replace("max_ttl = \"1h\"", "max_ttl = \"60m\""),
        DIGEST_BASE.replace(
            "{ approvers = [\"group:dba\"], approvals = 1 },",
            "{ approvers = [\"group:dba\"] },",
        ),
    ];
    for text in &unrelated {
        assert_eq!(digest_of(text, "x"), base, "changed by:\n{text}");
    }
}
