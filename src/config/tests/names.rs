//! Users, groups, role names and role members: what names are accepted, which members
//! must exist, and users' SSH keys.

use super::*;

#[test]
fn bad_user_names_are_errors_naming_the_key() {
    // Upper case, a Cyrillic 'а' that looks like a Latin 'a', a leading '-'.
    for bad in ["Alice", "\u{430}lice", "-alice", "al ice", ""] {
        let text = format!("[users.\"{bad}\"]\ngroups = [\"dev\"]\n");
        let msg = err(&text);
        assert!(msg.contains(&format!("users.{bad}")), "{bad:?}: {msg}");
    }
}

#[test]
fn bad_group_names_are_errors_naming_the_key() {
    for bad in ["Dev", "d\u{435}v", "-dev"] {
        refused_all(&[
            (
                format!("[users.alice]\ngroups = [\"{bad}\"]\n"),
                &["users.alice.groups"],
            ),
            (
                with_role_edit(
                    "requesters = [\"group:dev\"]",
                    &format!("requesters = [\"group:{bad}\"]"),
                ),
                &["roles.x.requesters"],
            ),
            (
                with_role_edit(
                    "approvers = [\"group:dba\"]",
                    &format!("approvers = [\"group:{bad}\"]"),
                ),
                &["roles.x.approvers"],
            ),
            (
                with_role_edit(
                    "approvers = [\"group:dba\"]",
                    &format!("approval_steps = [{{ approvers = [\"group:{bad}\"] }}]"),
                ),
                &["roles.x.approval_steps[0]"],
            ),
        ]);
    }
}

#[test]
fn bad_role_names_are_errors_naming_the_key() {
    for bad in ["Prod", "pr\u{43e}d", "-prod"] {
        let text = with_role_edit("[roles.x]", &format!("[roles.\"{bad}\"]"));
        refused(&text, &[&format!("roles.{bad}")]);
    }
}

#[test]
fn members_must_be_group_or_user_prefixed() {
    for bad in ["dev", "team:dev", "group:", "user:", ":dev"] {
        refused(
            &with_role_edit(
                "requesters = [\"group:dev\"]",
                &format!("requesters = [\"{bad}\"]"),
            ),
            &["roles.x.requesters"],
        );
    }
    refused(
        &with_role_edit("requesters = [\"group:dev\"]", "requesters = []"),
        &["roles.x.requesters", "at least one"],
    );
}

#[test]
fn undefined_user_member_is_an_error() {
    refused_all(&[
        (
            with_role_edit(
                "approvers = [\"group:dba\"]",
                "approvers = [\"user:mallory\"]",
            ),
            &["roles.x.approvers", "mallory", "not defined"],
        ),
        (
            with_role_edit(
                "requesters = [\"group:dev\"]",
                "requesters = [\"user:mallory\"]",
            ),
            &["roles.x.requesters", "mallory"],
        ),
    ]);
    // A defined user is fine.
    let c = ok(&with_role_edit(
        "approvers = [\"group:dba\"]",
        "approvers = [\"user:bob\"]",
    ));
    assert_eq!(
        c.policy.roles[&r("x")].steps[0].approvers,
        vec![Member::User(u("bob"))]
    );
}

#[test]
fn group_without_members_is_a_warning() {
    let c = ok(&with_role_edit(
        "approvers = [\"group:dba\"]",
        "approvers = [\"group:dba\", \"group:ghosts\"]",
    ));
    assert!(
        warned(&c, &["roles.x.approvers", "ghosts"]),
        "{:?}",
        c.warnings
    );
}

#[test]
fn same_ssh_key_under_two_users_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = ssh_keygen(dir.path(), "one");
    let k2 = ssh_keygen(dir.path(), "two");
    // The comment differs; the key is the same.
    let k1_other_comment = format!("{} laptop", k1.rsplit_once(' ').unwrap().0);

    let c = ok(&format!(
        "[users.alice]\nssh_keys = [\"{k1}\"]\n[users.bob]\nssh_keys = [\"{k2}\"]\n"
    ));
    let alice_key = &c.policy.users[&u("alice")].ssh_keys[0];
    assert_eq!(
        c.policy.user_by_key(alice_key).map(|x| x.name.clone()),
        Some(u("alice"))
    );

    let msg = err(&format!(
        "[users.alice]\nssh_keys = [\"{k1}\"]\n\
         [users.bob]\nssh_keys = [\"{k2}\", \"{k1_other_comment}\"]\n"
    ));
    assert!(msg.contains("users.bob.ssh_keys[1]"), "{msg}");
    assert!(msg.contains("alice"), "{msg}");

    // The same private key written as a security key's (sk-ssh-ed25519, its point and
    // an application) is still alice's key.
    let signing = ed25519_dalek::SigningKey::from_bytes(&[13; 32]);
    let point = ssh_key::public::Ed25519PublicKey(signing.verifying_key().to_bytes());
    let plain = ssh_key::PublicKey::new(ssh_key::public::KeyData::Ed25519(point), "");
    let sk = ssh_key::public::SkEd25519::new(point, "ssh:other");
    let sk = ssh_key::PublicKey::new(ssh_key::public::KeyData::SkEd25519(sk), "");
    let (plain, sk) = (plain.to_openssh().unwrap(), sk.to_openssh().unwrap());
    let msg = err(&format!(
        "[users.alice]\nssh_keys = [\"{plain}\"]\n[users.bob]\nssh_keys = [\"{sk}\"]\n"
    ));
    assert!(msg.contains("users.bob.ssh_keys[0]"), "{msg}");
    let c = ok(&format!("[users.alice]\nssh_keys = [\"{plain}\"]\n"));
    let sk = crate::pubkey::SubjectKey::parse(&sk).unwrap();
    assert_eq!(
        c.policy.user_by_key(&sk).map(|x| x.name.clone()),
        Some(u("alice"))
    );
}

#[test]
fn bad_ssh_key_is_an_error_naming_the_key() {
    refused(
        "[users.alice]\nssh_keys = [\"ssh-ed25519 AAAA-not-base64\"]\n",
        &["users.alice.ssh_keys[0]"],
    );
}

/// A fresh Ed25519 public key line, from ssh-keygen.
fn ssh_keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_service_account_is_never_an_admin_nor_a_person_of_the_provider() {
    let msg = err("[users.ci]\nbot = true\nadmin = true\n");
    assert!(
        msg.contains("users.ci.bot") && msg.contains("never an admin"),
        "{msg}"
    );
    let msg = err("[users.ci]\nbot = true\noidc_subject = \"123\"\n");
    assert!(msg.contains("users.ci.bot"), "{msg}");
}
