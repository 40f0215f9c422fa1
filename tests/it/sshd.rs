//! End to end with a real OpenSSH sshd that trusts only the CA key: the issued
//! certificate logs in as its principal, not as anyone else, and not once expired.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::sshd_helper::{Sshd, current_user};

pub(crate) fn policy(login: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
admin = true
[roles.shell]
principals = ["{login}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
max_ttl = "1h"
"#
    )
}

/// `countersign audit explain LINE` as bob (an admin) against `app`.
fn explain_as_bob(app: &TestApp, line: &str) -> std::process::Output {
    tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["audit", "explain", line])
            .env("COUNTERSIGN_URL", &app.url)
            .env("COUNTERSIGN_TOKEN", app.token("bob"))
            .output()
            .unwrap()
    })
}

/// A throw-away sshd trusting `app`'s CA.
fn sshd_trusting(app: &TestApp) -> Sshd {
    Sshd::start(
        &app.dir.path().join("sshd"),
        &app.service.ca().public_key_line(),
    )
}

/// Whether `login` logs in to `sshd` with `key` and its certificate `cert`.
pub(crate) fn logs_in(
    sshd: &Sshd,
    login: &str,
    key: &std::path::Path,
    cert: &std::path::Path,
) -> bool {
    tokio::task::block_in_place(|| sshd.login(login, key, cert))
}

/// Requests `shell` for alice with `ttl`, has bob approve, writes key and certificate.
pub(crate) async fn issue(
    app: &TestApp,
    name: &str,
    ttl: &str,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let key = new_key();
    let key_path = write_key(app.dir.path(), name, &key);
    let (status, body) = app
        .create_with_key("alice", "shell", Some(ttl), &public_line(&key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, body) = app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let (_, cert) = app.certificate("alice", &id).await;
    let cert_path = app.dir.path().join(format!("{name}-cert.pub"));
    std::fs::write(&cert_path, cert).unwrap();
    (
        key_path,
        cert_path,
        body["certificate"]["serial"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn issued_certificate_logs_in_as_its_principal_and_only_as_it() {
    let login = current_user();
    let app = TestApp::spawn_with(&policy(&login)).await;
    let sshd = sshd_trusting(&app);
    let (key, cert, serial) = issue(&app, "alice_key", "30m").await;

    let ok = logs_in(&sshd, &login, &key, &cert);
    assert!(
        ok,
        "login with the issued certificate failed: {}",
        sshd.log()
    );

    // The sshd log line leads back to the audit log.
    let log = sshd.log();
    let line = log
        .lines()
        .find(|l| l.contains("Accepted publickey"))
        .expect("accepted line");
    assert!(line.contains(&format!("(serial {serial})")), "{line}");
    assert!(line.contains("ID countersign:r-"), "{line}");
    let events = app.audit(&format!("serial={serial}")).await;
    let issued = events
        .iter()
        .find(|e| e["action"] == "certificate.issued")
        .unwrap();
    assert_eq!(issued["detail"]["requester"], "alice");

    // Another account is not among the principals.
    let other = if login == "nobody" {
        "daemon"
    } else {
        "nobody"
    };
    let refused = !logs_in(&sshd, other, &key, &cert);
    assert!(refused, "login as {other} must fail");

    // The key alone, without the certificate, is nothing.
    let bare = app.dir.path().join("missing-cert.pub");
    assert!(!tokio::task::block_in_place(
        || sshd.login(&login, &key, &bare)
    ));
}

/// sshd holds a certificate to the `valid_before` the CA's clock gave it: a 30m
/// certificate signed with the CA's clock an hour back ended half an hour ago by sshd's
/// clock, and is refused as expired; the same one signed now logs in.
#[tokio::test(flavor = "multi_thread")]
async fn certificate_stops_working_once_expired() {
    let login = current_user();
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(&policy(&login), &clock).await;
    let sshd = sshd_trusting(&app);
    let (key, cert, _) = issue(&app, "fresh_key", "30m").await;
    assert!(logs_in(&sshd, &login, &key, &cert), "{}", sshd.log());
    clock.set(clock.now() - chrono::Duration::hours(1));
    let (key, cert, _) = issue(&app, "expired_key", "30m").await;
    let parsed = ssh_key::Certificate::read_file(&cert).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(parsed.valid_before() < now, "not expired yet: {parsed:?}");
    assert!(
        !logs_in(&sshd, &login, &key, &cert),
        "expired certificate accepted"
    );
    assert!(sshd.log().contains("expired"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_another_ca_is_refused() {
    let login = current_user();
    let app = TestApp::spawn_with(&policy(&login)).await;
    let other = TestApp::spawn_with(&policy(&login)).await;
    let sshd = sshd_trusting(&app);
    // The same sshd accepts this CA's certificate, so a refusal below is about the CA.
    let (own_key, own_cert, _) = issue(&app, "own_key", "30m").await;
    assert!(
        logs_in(&sshd, &login, &own_key, &own_cert),
        "{}",
        sshd.log()
    );
    let (key, cert, _) = issue(&other, "foreign_key", "30m").await;
    assert!(!tokio::task::block_in_place(
        || sshd.login(&login, &key, &cert)
    ));
    assert_eq!(
        sshd.log().matches("Accepted publickey").count(),
        1,
        "{}",
        sshd.log()
    );
}

/// `countersign krl --out FILE` against the test server (no token needed).
pub(crate) fn refresh_krl(app: &TestApp, path: &std::path::Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["krl", "--out"])
        .arg(path)
        .env("COUNTERSIGN_URL", &app.url)
        .env_remove("COUNTERSIGN_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sshd_enforces_the_krl_per_certificate() {
    let login = current_user();
    let app = TestApp::spawn_with(&policy(&login)).await;
    let krl = app.dir.path().join("revoked.krl");
    tokio::task::block_in_place(|| refresh_krl(&app, &krl));
    let sshd = Sshd::start_with(
        &app.dir.path().join("sshd"),
        &app.service.ca().public_key_line(),
        &format!("RevokedKeys {}\n", krl.display()),
    );
    // Two certificates for the same user and the same key.
    let (key, cert_a, serial_a) = issue(&app, "same_key", "30m").await;
    let (status, body) = app
        .create_with_key(
            "alice",
            "shell",
            None,
            &std::fs::read_to_string(key.with_extension("pub")).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id_b = body["id"].as_str().unwrap().to_owned();
    let (_, body) = app.approve("bob", &id_b).await;
    let serial_b = body["certificate"]["serial"].as_str().unwrap().to_owned();
    let cert_b = app.dir.path().join("same_key-b-cert.pub");
    std::fs::write(&cert_b, app.certificate("alice", &id_b).await.1).unwrap();

    let login_with = |cert: &std::path::Path| logs_in(&sshd, &login, &key, cert);
    assert!(login_with(&cert_a), "{}", sshd.log());

    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial_a}/revoke"),
            serde_json::json!({"reason": "incident over"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::task::block_in_place(|| refresh_krl(&app, &krl));
    assert!(!login_with(&cert_a), "revoked certificate still logs in");
    assert!(sshd.log().contains("revoked"), "{}", sshd.log());
    assert!(
        login_with(&cert_b),
        "the other certificate of the same key must still work: {}",
        sshd.log()
    );

    // An investigator takes sshd's line for certificate B to the audit log.
    let line = sshd
        .log()
        .lines()
        .rfind(|l| l.contains(&format!("(serial {serial_b})")))
        .unwrap()
        .to_owned();
    let explain = explain_as_bob(&app, &line);
    let story = String::from_utf8_lossy(&explain.stdout);
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    assert!(story.contains("alice requested shell"), "{story}");
    assert!(story.contains("bob approved"), "{story}");
    assert!(
        story.contains(&format!("certificate serial {serial_b}")),
        "{story}"
    );

    let (status, _) = app
        .post(
            "alice",
            &format!("/v1/requests/{id_b}/done"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::task::block_in_place(|| refresh_krl(&app, &krl));
    assert!(
        !login_with(&cert_b),
        "certificate ended with done still logs in"
    );
}

/// `countersign krl --out FILE` against `url`; the command's output.
pub(crate) fn krl_from(url: &str, path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["--url", url, "krl", "--out"])
        .arg(path)
        .env_remove("COUNTERSIGN_TOKEN")
        .output()
        .unwrap()
}

/// A CA on SQLite (a test then reaches into its files) serving `policy(login)`, a KRL
/// file fetched from it, and an sshd that trusts the CA and enforces that file.
pub(crate) async fn ca_and_enforcing_sshd(login: &str) -> (TestApp, std::path::PathBuf, Sshd) {
    let app = TestApp::spawn_on_backend(&policy(login), Backend::Sqlite).await;
    let krl = app.dir.path().join("revoked.krl");
    tokio::task::block_in_place(|| refresh_krl(&app, &krl));
    let sshd = Sshd::start_with(
        &app.dir.path().join("sshd"),
        &app.service.ca().public_key_line(),
        &format!("RevokedKeys {}\n", krl.display()),
    );
    (app, krl, sshd)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_certificate_stays_refused_when_the_ca_loses_or_rolls_back_its_state() {
    let login = current_user();
    let (mut app, krl, sshd) = ca_and_enforcing_sshd(&login).await;
    let (key, cert, serial) = issue(&app, "laptop", "30m").await;
    let login_ok = || logs_in(&sshd, &login, &key, &cert);
    assert!(login_ok(), "{}", sshd.log());
    let backup = app.dir.path().join("before-revocation.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("--config")
        .arg(app.config_path())
        .args(["backup", "--out"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial}/revoke"),
            serde_json::json!({"reason": "laptop stolen"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::task::block_in_place(|| refresh_krl(&app, &krl));
    assert!(!login_ok(), "revoked certificate still logs in");
    let enforced = std::fs::read(&krl).unwrap();

    // A fresh CA answers at the same address (its data folder was lost and someone ran
    // it anew): its empty KRL is not signed by the key this server pinned.
    let stranger = TestApp::spawn_with(&policy(&login)).await;
    let out = tokio::task::block_in_place(|| krl_from(&stranger.url, &krl));
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&krl).unwrap(), enforced);
    assert!(!login_ok(), "the revoked certificate logs in again");

    // The CA's database is restored from the copy taken before the revocation: the CA
    // refuses to start on it, so no KRL without the revocation is ever served.
    app.stop().await;
    let db = app.db_path();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(&backup, &db).unwrap();
    let log = match crate::process::ServerProcess::start_with(
        crate::process::operator(&app.config_path()).arg("serve"),
    ) {
        Ok(_) => panic!("serve started on the rolled-back database"),
        Err(log) => log,
    };
    assert!(log.contains("--accept-rollback"), "{log}");
    assert!(!login_ok(), "the revoked certificate logs in again");
}

/// Regression: sshd (LogLevel VERBOSE) writes two lines for one certificate login,
/// `Accepted certificate ID "KEY ID" (serial N) signed by ED25519 CA ... via FILE` and
/// `Accepted publickey for U ... ID KEY ID (serial N) CA ...`; `audit explain` took the
/// quotes of the first as part of the key ID and warned of a mismatch (a false sign of
/// tampering). Both real lines now tell the same story without a warning.
#[tokio::test(flavor = "multi_thread")]
async fn audit_explain_takes_either_line_sshd_writes_for_a_certificate_login() {
    let login = current_user();
    let app = TestApp::spawn_with(&policy(&login)).await;
    let sshd = sshd_trusting(&app);
    let (key, cert, serial) = issue(&app, "explain_key", "30m").await;
    assert!(logs_in(&sshd, &login, &key, &cert), "{}", sshd.log());
    let log = sshd.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Accepted") && l.contains(&format!("(serial {serial})")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Accepted certificate ID \"countersign:")),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Accepted publickey for")),
        "{log}"
    );
    for line in lines {
        let explain = explain_as_bob(&app, line);
        let story = String::from_utf8_lossy(&explain.stdout);
        assert!(
            explain.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&explain.stderr)
        );
        assert!(!story.contains("WARNING"), "{line}\n{story}");
        assert!(story.contains("alice requested shell"), "{line}\n{story}");
        assert!(story.contains("bob approved"), "{line}\n{story}");
    }
}
