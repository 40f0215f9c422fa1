//! CA key protection with the real binary: unsafe key files refused at start, a
//! passphrase-encrypted key from a systemd-style credentials folder, and signing through
//! a real `ssh-agent` with the private key nowhere on disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;
use crate::process::{Api, ServerProcess, create_token, operator};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `dir/NAME.toml`: [`POLICY`] plus `ca_lines` under `[ca]` (data in `dir/data`).
fn config_named(dir: &Path, name: &str, ca_lines: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("[ca]\n{ca_lines}\n{POLICY}")).unwrap();
    path
}

fn config_with_ca(dir: &Path, ca_lines: &str) -> PathBuf {
    config_named(dir, "countersign", ca_lines)
}

/// `countersign serve` that must refuse to start; returns its stderr.
fn serve_refused(cmd: &mut Command) -> String {
    match ServerProcess::start_with(cmd) {
        Ok(_) => panic!("serve started but should have refused"),
        Err(log) => log,
    }
}

#[test]
fn serve_refuses_unsafe_ca_key_files_saying_which_and_how_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_ca(dir.path(), "key_file = \"link_key\"");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let real = data.join("real_key");
    let key = new_key();
    key.write_openssh_file(&real, ssh_key::LineEnding::LF)
        .unwrap();
    std::os::unix::fs::symlink(&real, data.join("link_key")).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(
        log.contains("is a symlink; point key_file at the real file"),
        "{log}"
    );

    let config = config_with_ca(dir.path(), "key_file = \"real_key\"");
    if std::os::unix::fs::chown(&real, Some(65534), None).is_ok() {
        let log = serve_refused(operator(&config).arg("serve"));
        assert!(log.contains("owned by uid 65534"), "{log}");
        assert!(log.contains("run: chown"), "{log}");
    } else {
        eprintln!("owner check skipped: not allowed to chown (not root)");
    }
}

#[tokio::test]
async fn init_encrypt_takes_the_passphrase_from_the_credentials_folder() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let secret = "tr0ub4dor&3-countersign";
    let pass = creds.join("ca-passphrase");
    std::fs::write(&pass, format!("{secret}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o400)).unwrap();

    let plain = config_named(dir.path(), "plain", "");
    let out = operator(&plain)
        .args(["init", "--encrypt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("passphrase_file"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("data/ca_key").exists());

    let config = config_with_ca(
        dir.path(),
        "passphrase_file = \"${CREDENTIALS_DIRECTORY}/ca-passphrase\"",
    );
    let out = operator(&config)
        .args(["init", "--encrypt"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no CREDENTIALS_DIRECTORY, no key");
    assert!(text(&out.stderr).contains("CREDENTIALS_DIRECTORY is not set"));

    let out = operator(&config)
        .args(["init", "--encrypt"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ca_line = text(&out.stdout);
    let key_text = std::fs::read_to_string(dir.path().join("data/ca_key")).unwrap();
    let on_disk = ssh_key::PrivateKey::from_openssh(&key_text).unwrap();
    assert!(on_disk.is_encrypted());
    let refused = serve_refused(operator(&plain).arg("serve"));
    assert!(
        refused.contains("is encrypted; set [ca] passphrase_file"),
        "{refused}"
    );

    let alice = create_token(&config, "alice");
    let bob = create_token(&config, "bob");
    let server = ServerProcess::start_with(
        operator(&config)
            .arg("serve")
            .env("CREDENTIALS_DIRECTORY", &creds),
    )
    .expect("serves with the credential");
    let cert = Api::new(&server.url).issue(&alice, &bob).await;
    let listed = ssh_keygen_list(dir.path(), &cert);
    let ca = ssh_key::PublicKey::from_openssh(ca_line.trim()).unwrap();
    assert!(
        listed.contains(&ca.fingerprint(ssh_key::HashAlg::Sha256).to_string()),
        "{listed}"
    );
    let log = server.log();
    assert!(!log.contains(secret), "the passphrase is never logged");
}

#[tokio::test]
async fn signs_through_a_real_ssh_agent_with_no_key_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path());
    let key = dir.path().join("ca");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hw-ca", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    agent.ssh_add(&[key.to_str().unwrap()]);
    std::fs::remove_file(&key).unwrap();
    let public = dir.path().join("ca.pub");
    let config = config_with_ca(
        dir.path(),
        &format!(
            "agent = true\nagent_public_key = {:?}",
            public.display().to_string()
        ),
    );
    let out = operator(&config)
        .arg("init")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("SSH_AUTH_SOCK is not set"));
    let out = operator(&config)
        .arg("init")
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = serve_refused(operator(&config).arg("serve").env_remove("SSH_AUTH_SOCK"));
    assert!(log.contains("SSH_AUTH_SOCK is not set"), "{log}");

    let alice = create_token(&config, "alice");
    let bob = create_token(&config, "bob");
    let server = ServerProcess::start_with(
        operator(&config)
            .arg("serve")
            .env("SSH_AUTH_SOCK", &agent.socket),
    )
    .expect("serves through the agent");
    let api = Api::new(&server.url);
    let ca_pub = std::fs::read_to_string(&public).unwrap();
    let served = api
        .http
        .get(format!("{}/v1/ca.pub", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        served.split_whitespace().nth(1),
        ca_pub.split_whitespace().nth(1),
        "the CA key is the agent's"
    );
    let cert = api.issue(&alice, &bob).await;
    let listed = ssh_keygen_list(dir.path(), &cert);
    let fp = ssh_key::PublicKey::from_openssh(ca_pub.trim())
        .unwrap()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    assert!(
        listed.contains(&format!("Signing CA: ED25519 {fp}")),
        "{listed}"
    );
    drop(server);

    // Audit checkpoints are signed by the agent too, and OpenSSH accepts them.
    let cp = dir.path().join("cp");
    let out = operator(&config)
        .args(["audit", "checkpoint", "--out"])
        .arg(&cp)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let signers = dir.path().join("allowed_signers");
    std::fs::write(
        &signers,
        format!("countersign-ca namespaces=\"countersign-audit\" {ca_pub}"),
    )
    .unwrap();
    let verify = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-I",
            "countersign-ca",
            "-n",
            "countersign-audit",
            "-f",
        ])
        .arg(&signers)
        .arg("-s")
        .arg(dir.path().join("cp.sig"))
        .stdin(std::fs::File::open(&cp).unwrap())
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stderr));

    agent.ssh_add(&["-D"]);
    let log = serve_refused(
        operator(&config)
            .arg("serve")
            .env("SSH_AUTH_SOCK", &agent.socket),
    );
    assert!(log.contains("does not hold the CA key"), "{log}");
}
