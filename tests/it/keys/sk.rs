//! Security keys (FIDO, `sk-ssh-ed25519@openssh.com`): registered with a proof they were
//! touched for, and certified. No authenticator is on this machine: the key's signatures
//! are made here as PROTOCOL.u2f describes them, and OpenSSH's own `ssh-keygen -Y
//! check-novalidate` confirms first that they are what a security key makes.

use std::io::Write;
use std::process::{Command, Stdio};

use ed25519_dalek::Signer;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
use ssh_key::{Algorithm, HashAlg, LineEnding, PublicKey, SshSig};

use super::{challenge_ok, register};
use crate::helpers::{TestApp, code};

/// A security key's public line and its armored SSHSIG over `msg` in `namespace`, with
/// FIDO `flags` (0x01: touched).
fn sk_sign(
    signing: &ed25519_dalek::SigningKey,
    (namespace, msg): (&str, &[u8]),
    flags: u8,
) -> (String, String) {
    let public = Ed25519PublicKey(signing.verifying_key().to_bytes());
    let key = KeyData::SkEd25519(SkEd25519::new(public, "ssh:"));
    let line = PublicKey::new(key.clone(), "").to_openssh().unwrap();
    let data = SshSig::signed_data(namespace, HashAlg::Sha512, msg).unwrap();
    let counter = 42u32.to_be_bytes();
    let mut signed = Sha256::digest("ssh:").to_vec();
    signed.push(flags);
    signed.extend(counter);
    signed.extend(Sha256::digest(&data));
    let mut bytes = signing.sign(&signed).to_bytes().to_vec();
    bytes.push(flags);
    bytes.extend(counter);
    let signature = ssh_key::Signature::new(Algorithm::SkEd25519, bytes).unwrap();
    let sig = SshSig::new(key, namespace, HashAlg::Sha512, signature).unwrap();
    (line, sig.to_pem(LineEnding::LF).unwrap())
}

/// `ssh-keygen -Y check-novalidate` of `pem` over `msg`: whether OpenSSH takes it.
fn openssh_accepts(dir: &std::path::Path, namespace: &str, msg: &[u8], pem: &str) -> bool {
    let sig = dir.join("sk.sig");
    std::fs::write(&sig, pem).unwrap();
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", namespace, "-s"])
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    child.wait().unwrap().success()
}

#[tokio::test]
async fn a_security_key_is_registered_only_when_touched_and_is_certified() {
    let app = TestApp::spawn().await;
    let signing = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
    let (line, _) = sk_sign(&signing, ("x", b"x"), 1);
    let text = challenge_ok(&app, "alice", &line).await;
    let asked = ("countersign-key", text.as_bytes());
    let (_, touched) = sk_sign(&signing, asked, 0x01);
    let (_, untouched) = sk_sign(&signing, asked, 0x00);
    assert!(openssh_accepts(app.dir.path(), asked.0, asked.1, &touched));
    // (check-novalidate does not ask for the touch; `-Y verify` of an allowed signer
    // does, as countersign does.)
    assert!(openssh_accepts(
        app.dir.path(),
        asked.0,
        asked.1,
        &untouched
    ));

    // Without the touch: refused, nothing registered (the challenge stays good).
    let (status, body) = register(&app, "alice", &line, &text, &untouched).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "key_proof_failed"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("touch"),
        "{body}"
    );
    // Nor renamed: the same untouched bytes claiming to be an RSA signature (ssh-key
    // checks them by the key's type whatever name they carry).
    let sig = SshSig::from_pem(&untouched).unwrap();
    let rsa = Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    };
    let bytes = sig.signature().as_bytes().to_vec();
    let renamed = ssh_key::Signature::new(rsa, bytes).unwrap();
    let renamed = SshSig::new(sig.public_key().clone(), asked.0, HashAlg::Sha512, renamed)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    let (status, body) = register(&app, "alice", &line, &text, &renamed).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "key_proof_failed"),
        "{body}"
    );
    let (status, body) = register(&app, "alice", &line, &text, &touched).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["key"]["public_key"], line.as_str());

    // Certified: a certificate of the security key's own type, for it.
    let (status, body) = app.create_with_key("alice", "prod-db", None, &line).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.approve("bob", &id).await.1["status"], "issued");
    let (status, cert) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::OK, "{cert}");
    let path = app.dir.path().join("sk-cert.pub");
    std::fs::write(&path, &cert).unwrap();
    let shown = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("sk-ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{shown}"
    );
    let fingerprint = PublicKey::from_openssh(&line)
        .unwrap()
        .fingerprint(HashAlg::Sha256);
    assert!(shown.contains(&fingerprint.to_string()), "{shown}");
}

/// The CA's own key written as a security key's (its point, an `ssh:` application) is
/// still the CA key: never certified, never registered.
#[tokio::test]
async fn the_ca_key_as_a_security_key_is_still_the_ca_key() {
    let app = TestApp::spawn().await;
    let ca = PublicKey::from_openssh(&app.service.ca().public_key_line()).unwrap();
    let KeyData::Ed25519(point) = ca.key_data() else {
        panic!("an Ed25519 CA key")
    };
    let sk = KeyData::SkEd25519(SkEd25519::new(*point, "ssh:"));
    let line = PublicKey::new(sk, "").to_openssh().unwrap();
    let (status, body) = app.create_with_key("alice", "prod-db", None, &line).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    let (status, body) = super::challenge(&app, "alice", &line).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
