//! `countersign policy sign`: with the ssh-agent, the signer found from the key or named,
//! a public file, and nothing signed for a file that does not load.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{Signers, sig_dir, text, write_unsigned};
use crate::helpers::{new_key, write_key};
use crate::process::operator;

/// `policy sign` with the ssh-agent (a `.pub` file whose private half is elsewhere), the
/// signer found from the key or named with `--as`, and nothing signed for a broken file;
/// the signature checks with `ssh-keygen -Y verify` alone.
#[test]
fn policy_sign_uses_the_agent_and_signs_only_a_file_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let people = Signers::new(dir.path());
    let config = dir.path().join("countersign.toml");
    let body = people.policy(3, &["bob", "carol"], false);
    write_unsigned(&config, &body);
    let agent = crate::helpers::Agent::start(dir.path());
    let bob_key = people.key("bob");
    agent.ssh_add(&[bob_key.to_str().unwrap()]);
    std::fs::remove_file(&bob_key).unwrap();
    let sign = |key: &Path, extra: &[&str]| {
        operator(&config)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .args(["policy", "sign", "--key"])
            .arg(key)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = sign(&dir.path().join("bob_key.pub"), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let allowed = dir.path().join("allowed_signers");
    let (_, bob_line) = &people.lines[0];
    std::fs::write(
        &allowed,
        format!("bob namespaces=\"countersign-policy\" {bob_line}\n"),
    )
    .unwrap();
    let verify = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "countersign-policy",
            "-I",
            "bob",
            "-f",
        ])
        .arg(&allowed)
        .arg("-s")
        .arg(sig_dir(&config).join("bob.sig"))
        .stdin(Stdio::from(std::fs::File::open(&config).unwrap()))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stderr));

    // A key in nobody's ssh_keys needs --as (a key registered with `keys add`).
    let stray = write_key(dir.path(), "stray", &new_key());
    let out = sign(&stray, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--as USER"),
        "{}",
        text(&out.stderr)
    );
    let out = sign(&stray, &["--as", "carol"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not in carol's ssh_keys"),
        "{}",
        text(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sig_dir(&config).join("carol.sig"))
        .unwrap()
        .permissions();
    assert_eq!(mode.mode() & 0o777, 0o644, "a signature is public");
    assert!(sig_dir(&config).join("carol.sig").exists());

    // A file that does not load is signed by nobody.
    write_unsigned(&config, &format!("{body}\n[policy.oops]\n"));
    let out = sign(&people.key("carol"), &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing was signed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!sig_dir(&config).exists());
}
