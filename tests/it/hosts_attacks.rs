//! What an attacker review of host certificates found, each held by a test: a rolled-back
//! database must not let a revoked host certificate renew; `host enroll --out` must not
//! replace what is not a certificate; refused join tokens and proofs are logged and count
//! as failed authentications; neither CA key is ever certified, by either CA.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::cli::{run, text};
use crate::helpers::*;
use crate::host_cli::{host_cmd, host_key, host_policy, join_token, token_file};
use crate::hosts_helper::*;

/// SQLite only: the database is restored by copying its file.
fn on_sqlite() -> bool {
    Backend::from_env() == Backend::Sqlite
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_host_certificate_stays_revoked_after_an_accepted_rollback() {
    if !on_sqlite() {
        return;
    }
    let clock = manual_clock();
    let mut app = spawn_hosts(&clock).await;
    let key = new_key();
    let view = enroll_ok(&app, &key, &["db1.example.com"]).await;
    let serial = view["serial"].as_str().unwrap().to_owned();
    // A join token unused in the backup, used after it.
    let spent = token_for(&app, &["db2.example.com"]).await;
    // A backup from before the revocation.
    app.stop().await;
    let data = app.dir.path().join("data");
    let backup = app.dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let files = ["countersign.db", "countersign.db-wal", "countersign.db-shm"];
    for f in files {
        let _ = std::fs::copy(data.join(f), backup.join(f));
    }
    let app = app.restart().await;
    let (status, _) = enroll(&app, &spent, &public_line(&new_key())).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/v1/hosts/certificates/{serial}/revoke");
    let (status, body) = app
        .post("bob", &path, json!({ "reason": "key stolen" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The disk dies; the backup comes back; the operator accepts the older copy.
    let mut app = app;
    app.stop().await;
    for f in files {
        let _ = std::fs::remove_file(data.join(f));
        let _ = std::fs::copy(backup.join(f), data.join(f));
    }
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let tokens = std::mem::take(&mut app.tokens);
    drop(app);
    let access = countersign::state::Access::Serve {
        accept_rollback: Some("disk died".into()),
        new_replica: false,
    };
    let app = TestApp::start_as(dir, None, tokens, clock.clone() as Arc<dyn Clock>, &access).await;
    let (_, body) = app
        .get("bob", &format!("/v1/hosts/certificates/{serial}"))
        .await;
    assert_eq!(body["status"], "revoked", "{body}");
    // On the record, after the event that explains it.
    let events = app.audit("").await;
    let accepted = events
        .iter()
        .position(|e| e["action"] == "state.rollback_accepted")
        .expect("state.rollback_accepted");
    let again = events
        .iter()
        .position(|e| e["action"] == "host.revoked" && e["serial"] == serial.as_str())
        .expect("host.revoked again");
    assert!(again > accepted, "{events:?}");
    let why = events[again]["detail"]["reason"].as_str().unwrap();
    assert!(why.contains("accepted rollback (disk died)"), "{why}");
    // Whoever holds the stolen key cannot renew it into a certificate the KRL lacks.
    let (text, sig) = proof(&app, &key).await;
    let (status, body) = renew(&app, view["certificate"].as_str().unwrap(), &text, &sig).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "host_certificate_refused"),
        "{body}"
    );
    // The token the lost history used does not work a second time.
    let (status, body) = enroll(&app, &spent, &public_line(&new_key())).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "host_token_invalid"),
        "{body}"
    );
}

#[tokio::test]
async fn host_enroll_never_replaces_the_host_key_or_a_file_that_is_no_certificate() {
    let app = TestApp::spawn_with(&host_policy()).await;
    let dir = app.dir.path().join("etc-ssh");
    let public = host_key(&dir);
    let private = public.with_extension("");
    let config = dir.join("sshd_config");
    std::fs::write(&config, "Port 22\n").unwrap();
    for out in [&private, &public, &config] {
        let before = std::fs::read(out).unwrap();
        let token = join_token(&app, "web3.example.com").await;
        let file = token_file(&dir, &token);
        let mut cmd = host_cmd(&app, &["host", "enroll", "--token-file"]);
        cmd.arg(&file)
            .arg("--key")
            .arg(&public)
            .arg("--out")
            .arg(out);
        let result = run(cmd).await;
        assert!(!result.status.success(), "{}", out.display());
        let stderr = text(&result.stderr);
        assert!(stderr.contains("the join token was not used"), "{stderr}");
        assert_eq!(std::fs::read(out).unwrap(), before, "{}", out.display());
        // The token is still good: the refusal came before anything was sent.
        let (status, body) = enroll(&app, &token, &public_line(&new_key())).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

#[tokio::test]
async fn refused_join_tokens_are_logged_and_limited_per_address() {
    let policy = format!(
        "{}\n",
        host_policy().replace(
            "[server]\n",
            "[server]\nauth_failures_per_address = 3\nauth_failure_window = \"1h\"\n"
        )
    );
    let app = TestApp::spawn_with(&policy).await;
    let key = public_line(&new_key());
    // Made first: once the address is limited, an admin from it is refused too.
    let token = token_for(&app, &["web4.example.com"]).await;
    let host = new_key();
    let view = enroll_ok(&app, &host, &["web5.example.com"]).await;
    let serial = view["serial"].as_str().unwrap();
    let path = format!("/v1/hosts/certificates/{serial}/revoke");
    let (status, _) = app.post("bob", &path, json!({ "reason": "retired" })).await;
    assert_eq!(status, StatusCode::OK);
    // A certificate refused after the host proved its key is logged, not counted: a batch
    // revocation does not lock out the other hosts behind one address.
    for _ in 0..3 {
        let (text, sig) = proof(&app, &host).await;
        let cert = view["certificate"].as_str().unwrap();
        let (status, body) = renew(&app, cert, &text, &sig).await;
        assert_eq!(code(&body), "host_certificate_refused", "{status} {body}");
    }
    // Three wrong join tokens reach the limit.
    for _ in 0..3 {
        let (status, body) = enroll(&app, "csh_0000", &key).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "host_token_invalid")
        );
    }
    // The fourth try is refused before the token is even looked at, good or not.
    let (status, body) = enroll(&app, &token, &key).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{body}"
    );
}

#[tokio::test]
async fn neither_ca_key_is_certified_by_the_other_ca() {
    let app = spawn_hosts(&manual_clock()).await;
    let host_ca = served_key(&app, "/v1/host_ca.pub").await;
    let line = host_ca.to_openssh().unwrap();
    // As a person's key: not registrable, not requestable.
    let (status, body) = app
        .post("alice", "/v1/keys/challenge", json!({ "public_key": line }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app.create_with_key("alice", "prod-db", None, &line).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// A security key (FIDO) is a person's: never enrolled as a host's key, and the join
/// token stays good for the real one.
#[tokio::test]
async fn a_security_key_is_never_a_hosts_key() {
    let app = spawn_hosts(&manual_clock()).await;
    let token = token_for(&app, &["db3.example.com"]).await;
    let ed = ssh_key::public::Ed25519PublicKey(
        ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .to_bytes(),
    );
    let sk = ssh_key::public::KeyData::SkEd25519(ssh_key::public::SkEd25519::new(ed, "ssh:"));
    let line = ssh_key::PublicKey::new(sk, "").to_openssh().unwrap();
    let (status, body) = enroll(&app, &token, &line).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    assert!(body.to_string().contains("security key"), "{body}");
    let (status, body) = enroll(&app, &token, &public_line(&new_key())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The host CA key can live in an SSH agent (a hardware token behind one), like the CA
/// key: certificates are signed there, and no key file is ever made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_ca_signs_through_a_real_ssh_agent_with_no_key_on_disk() {
    use crate::process::{Api, ServerProcess, create_token, operator};
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path());
    let key = dir.path().join("host_ca");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    agent.ssh_add(&[key.to_str().unwrap()]);
    std::fs::remove_file(&key).unwrap();
    let public = dir.path().join("host_ca.pub");
    let config = dir.path().join("countersign.toml");
    let text = format!(
        "{POLICY}\n[host_ca]\nagent = true\nagent_public_key = {:?}\n\
         allowed_principals = [\"*.example.com\"]\n",
        public.display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    let out = operator(&config)
        .arg("init")
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = create_token(&config, "bob");
    let server = ServerProcess::start_with(
        operator(&config)
            .arg("serve")
            .env("SSH_AUTH_SOCK", &agent.socket),
    )
    .expect("serves with the host CA in the agent");
    let api = Api::new(&server.url);
    let body = json!({ "principals": ["web9.example.com"] });
    let (status, made) = api.post(&bob, "/v1/hosts/tokens", body).await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let body = json!({ "token": made["token"], "public_key": public_line(&new_key()) });
    let (status, view) = api.post("none", "/v1/hosts/enroll", body).await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let expected = ssh_key::PublicKey::read_openssh_file(&public).unwrap();
    assert_eq!(
        parsed(&view).signature_key(),
        expected.key_data(),
        "signed by the agent's key"
    );
    assert!(
        !dir.path().join("data/host_ca_key").exists(),
        "no key file was made"
    );
}
