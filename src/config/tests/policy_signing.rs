//! `[policy]`: signers, signatures_required, version.

use super::*;

/// [`BASE`] with a `[policy]` section.
fn with_policy(section: &str) -> String {
    format!("{BASE}\n[users.svc]\nbot = true\n\n[policy]\n{section}\n")
}

#[test]
fn signers_are_people_of_the_users_named_once_and_counted_within_bounds() {
    let c = ok(&with_policy(
        "signers = [\"user:bob\", \"user:alice\"]\nsignatures_required = 2\nversion = 7",
    ));
    let s = c.policy.signing.clone().expect("[policy]");
    assert_eq!(s.signers, [u("alice"), u("bob")]);
    assert_eq!((s.signatures_required, s.version), (2, 7));
    assert!(s.is_signed());
    assert!(warned(&c, &["user:alice has no ssh_keys"]));
    let one = ok(&with_policy(
        "signers = [\"user:bob\"]\nsignatures_required = 1\nversion = 1",
    ));
    assert!(warned(&one, &["signatures_required = 1"]));
    assert!(ok(BASE).policy.signing.is_none());
    refused_all(&[
        (
            with_policy("signers = [\"group:dba\"]\nsignatures_required = 1\nversion = 1"),
            &["policy.signers", "user:NAME"][..],
        ),
        (
            with_policy("signers = [\"user:carol\"]\nsignatures_required = 1\nversion = 1"),
            &["user:carol is not in [users]"],
        ),
        (
            with_policy("signers = [\"user:svc\"]\nsignatures_required = 1\nversion = 1"),
            &["service account"],
        ),
        (
            with_policy(
                "signers = [\"user:bob\", \"user:bob\"]\nsignatures_required = 1\nversion = 1",
            ),
            &["named twice"],
        ),
        (
            with_policy("signers = []\nsignatures_required = 1\nversion = 1"),
            &["at least one"],
        ),
        (
            with_policy("signers = [\"user:bob\"]\nsignatures_required = 2\nversion = 1"),
            &["policy.signatures_required", "between 1 and the 1"],
        ),
        (
            with_policy("signers = [\"user:bob\"]\nsignatures_required = 0\nversion = 1"),
            &["policy.signatures_required"],
        ),
        (
            with_policy("signers = [\"user:bob\"]\nversion = 1"),
            &["policy.signatures_required", "required"],
        ),
        (
            with_policy("signers = [\"user:bob\"]\nsignatures_required = 1"),
            &["policy.version", "required"],
        ),
        (
            with_policy("signers = [\"user:bob\"]\nsignatures_required = 1\nversion = 0"),
            &["policy.version", "1 or more"],
        ),
        (
            with_policy("signatures_required = 1\nversion = 3"),
            &["policy.signers", "with signatures_required"],
        ),
        (
            with_policy(
                "signers = [\"user:bob\"]\nsignatures_required = 1\nversion = 1\nsigner = 1",
            ),
            &["unknown field"],
        ),
    ]);
}

#[test]
fn ca_names_a_key_fingerprint_and_its_absence_is_warned_of() {
    let fp = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let c = ok(&with_policy(&format!(
        "signers = [\"user:bob\"]\nsignatures_required = 1\nversion = 1\nca = \"{fp}\""
    )));
    assert_eq!(
        c.policy.signing.clone().and_then(|s| s.ca).as_deref(),
        Some(fp)
    );
    assert!(!warned(&c, &["policy.ca is not set"]));
    let c = ok(&with_policy(
        "signers = [\"user:bob\"]\nsignatures_required = 1\nversion = 1",
    ));
    assert!(warned(&c, &["policy.ca is not set"]));
    refused(
        &with_policy("signers = [\"user:bob\"]\nsignatures_required = 1\nversion = 1\nca = \"x\""),
        &["policy.ca", "not a SHA-256 key fingerprint"],
    );
}

#[test]
fn a_section_with_only_a_version_retires_signing() {
    let c = ok(&with_policy("version = 9"));
    let s = c.policy.signing.clone().expect("[policy]");
    assert!(!s.is_signed());
    assert_eq!(s.version, 9);
}
