//! State that must never be forgotten: a lost or rolled-back database, a lost CA key, a
//! database of another CA — all through the real binary; and the helpers for that. The
//! KRL servers fetch is in `state_krl.rs`, files others could replace and backups in
//! `state_files.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Api, ServerProcess, create_token, init, operator};

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config with the usual policy in a fresh folder, initialised.
pub(crate) fn setup(dir: &Path) -> PathBuf {
    let config = dir.join("countersign.toml");
    std::fs::write(&config, POLICY).unwrap();
    init(&config);
    let mode = std::fs::metadata(data(dir)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "data_dir created {mode:o}");
    config
}

pub(crate) fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

fn remove_database(dir: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data(dir).join(format!("countersign.db{suffix}")));
    }
}

/// `serve` must refuse; returns its log.
pub(crate) fn serve_refused(cmd: &mut Command) -> String {
    match ServerProcess::start_with(cmd) {
        Ok(_) => panic!("serve started but should have refused"),
        Err(log) => log,
    }
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("countersign runs")
}

/// The command failed, saying `why` on stderr.
pub(crate) fn assert_refused(out: &Output, why: &str) {
    assert!(!out.status.success(), "succeeded: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
}

fn serial_of(cert: &str) -> u64 {
    ssh_key::Certificate::from_openssh(cert.trim())
        .expect("certificate parses")
        .serial()
}

/// Revokes `serial` as bob (an admin in [`POLICY`]).
pub(crate) async fn revoke(api: &Api, bob: &str, serial: u64) {
    let (status, body) = api
        .post(
            bob,
            &format!("/v1/certificates/{serial}/revoke"),
            json!({"reason": "laptop lost"}),
        )
        .await
        .expect("revoke answered");
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `countersign --url URL krl --out OUT ARGS...`.
pub(crate) fn krl_out(config: &Path, url: &str, out: &Path, args: &[&str]) -> Output {
    run(operator(config)
        .args(["--url", url, "krl", "--out"])
        .arg(out)
        .args(args))
}

/// `ssh-keygen -Q -f KRL CERT`: whether the KRL file revokes the certificate.
fn revoked_by(dir: &Path, krl: &Path, cert: &str) -> bool {
    let cert_path = dir.join("probe-cert.pub");
    std::fs::write(&cert_path, cert).unwrap();
    let out = run(Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(krl)
        .arg(&cert_path));
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "ssh-keygen cannot read {}: {}",
        krl.display(),
        text(&out.stderr)
    );
    !out.status.success()
}

pub(crate) fn ca_pub(dir: &Path, config: &Path) -> PathBuf {
    let out = run(operator(config).arg("init"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = dir.join("ca.pub");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

pub(crate) fn mark(dir: &Path) -> Value {
    let text = std::fs::read_to_string(data(dir).join("countersign.mark")).expect("mark exists");
    serde_json::from_str(&text).expect("mark is JSON")
}

#[tokio::test]
async fn a_lost_database_is_refused_and_never_replaced_by_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let (alice, bob) = (create_token(&config, "alice"), create_token(&config, "bob"));
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    let cert = api.issue(&alice, &bob).await;
    revoke(&api, &bob, serial_of(&cert)).await;
    assert!(server.terminate());

    remove_database(dir.path());
    // An empty file in its place (a failed copy, a `touch`) is no database either.
    std::fs::write(data(dir.path()).join("countersign.db"), b"").unwrap();
    let empty = data(dir.path()).join("countersign.db");
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("is empty: restore it from a backup"), "{log}");
    std::fs::remove_file(&empty).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("restore the database from a backup"), "{log}");
    assert!(log.contains("un-revoke"), "{log}");
    assert!(!data(dir.path()).join("countersign.db").exists());
    for cmd in [
        &["init"][..],
        &["token", "create", "alice"],
        &["audit", "verify"],
    ] {
        let out = run(operator(&config).args(cmd));
        assert!(!out.status.success(), "{cmd:?} should refuse");
        assert!(
            text(&out.stderr).contains("the database"),
            "{cmd:?}: {}",
            text(&out.stderr)
        );
        assert!(!data(dir.path()).join("countersign.db").exists(), "{cmd:?}");
    }

    // The mark gone too: the key was made by countersign, so it had a database.
    std::fs::remove_file(data(dir.path()).join("countersign.mark")).unwrap();
    let out = run(operator(&config).arg("init"));
    assert_refused(&out, "was made by countersign");
    assert!(!data(dir.path()).join("countersign.db").exists());
    let out = run(operator(&config).args(["init", "--new-database"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(data(dir.path()).join("countersign.db").exists());
}

#[test]
fn a_lost_ca_key_is_refused_and_never_replaced_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let key = data(dir.path()).join("ca_key");
    std::fs::remove_file(&key).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("restore the CA key"), "{log}");
    assert!(
        log.contains("SHA256:"),
        "the key wanted is not named: {log}"
    );
    assert!(!key.exists(), "serve made a new key next to the database");
    let out = run(operator(&config).arg("init"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("restore the CA key"));
    assert!(!key.exists(), "init made a new key next to the database");
}

#[test]
fn a_database_and_a_ca_key_that_do_not_belong_together_are_refused() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = setup(one.path());
    setup(two.path());
    let theirs = data(two.path()).join("ca_key");
    std::fs::copy(&theirs, data(one.path()).join("ca_key")).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(
        log.contains("the database belongs to CA key SHA256:"),
        "{log}"
    );
    assert!(
        log.contains("use the key the database was made with"),
        "{log}"
    );
    let out = run(operator(&config).args(["audit", "verify"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("the database belongs to CA key"));
    let out = run(operator(&config).args(["token", "create", "alice"]));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "a token was printed");
}

#[tokio::test]
async fn an_older_copy_of_the_database_is_refused_until_an_operator_accepts_it_on_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let ca = ca_pub(dir.path(), &config);
    let (alice, bob) = (create_token(&config, "alice"), create_token(&config, "bob"));
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    let before = api.issue(&alice, &bob).await;
    let backup = dir.path().join("backup.db");
    let out = run(operator(&config).args(["backup", "--out"]).arg(&backup));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("audit chain verified"));
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "backup readable by others: {mode:o}");

    // After the copy: one certificate issued before it is revoked, one issued after it
    // (the copy has no row of it) too.
    let after = api.issue(&alice, &bob).await;
    revoke(&api, &bob, serial_of(&before)).await;
    revoke(&api, &bob, serial_of(&after)).await;
    let krl = dir.path().join("revoked.krl");
    let ca_key = ["--ca-key", ca.to_str().unwrap()];
    let out = krl_out(&config, &server.url, &krl, &ca_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(revoked_by(dir.path(), &krl, &before));
    assert!(revoked_by(dir.path(), &krl, &after));
    assert!(server.terminate());

    // Restore the copy taken before both revocations.
    remove_database(dir.path());
    std::fs::copy(&backup, data(dir.path()).join("countersign.db")).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("--accept-rollback"), "{log}");
    assert!(log.contains("KRL version 2 was already published"), "{log}");
    let out = run(operator(&config).args(["audit", "verify"]));
    assert_refused(&out, "rolled back");
    let log = serve_refused(operator(&config).args(["serve", "--accept-rollback"]));
    assert!(log.contains("--reason"), "{log}");

    let server = ServerProcess::start_with(operator(&config).args([
        "serve",
        "--accept-rollback",
        "--reason",
        "disk lost; restored last night's copy (OPS-12)",
    ]))
    .expect("serve --accept-rollback starts");
    let accepted = Api::new(&server.url)
        .events(&bob, "state.rollback_accepted")
        .await;
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    let detail = &accepted[0]["detail"];
    assert!(
        accepted[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("operator")
    );
    assert_eq!(
        detail["reason"],
        "disk lost; restored last night's copy (OPS-12)"
    );
    assert_eq!(detail["mark"]["krl_version"], 2);
    let mut carried: Vec<String> = detail["carried_revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    carried.sort();
    let mut expected = vec![
        serial_of(&before).to_string(),
        serial_of(&after).to_string(),
    ];
    expected.sort();
    assert_eq!(carried, expected);
    // The certificate the copy holds is revoked in its row, on the record, as the copy
    // shows it to anyone who looks (and a second revocation finds it revoked); the
    // other is unknown to the copy, listed in the KRL only.
    let again = Api::new(&server.url)
        .events(&bob, "certificate.revoked")
        .await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["serial"], serial_of(&before).to_string());
    assert_eq!(again[0]["actor"], accepted[0]["actor"]);
    assert!(
        again[0]["seq"].as_i64() > accepted[0]["seq"].as_i64(),
        "{again:?}"
    );
    let why = again[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        why.starts_with("carried over by an accepted rollback (disk lost"),
        "{why}"
    );
    let (status, body) = Api::new(&server.url)
        .post(
            &bob,
            &format!("/v1/certificates/{}/revoke", serial_of(&before)),
            json!({"reason": "again"}),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "already_revoked", "{body}");
    // The copy forgot both revocations; the mark did not: the new KRL (a higher version,
    // so servers take it) still revokes both certificates.
    // Kept apart from the file fetched before the restore, which revokes both already.
    let out = krl_out(&config, &server.url, &krl, &ca_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("KRL version 4"), "{said}");
    let fresh = dir.path().join("fresh.krl");
    let out = krl_out(&config, &server.url, &fresh, &ca_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(revoked_by(dir.path(), &fresh, &before));
    assert!(revoked_by(dir.path(), &fresh, &after));
    assert!(server.terminate());

    // Accepted once: the next start needs no flag (and refuses it: left in a unit file
    // it would accept the next rollback unseen), and the KRL version stays.
    let log =
        serve_refused(operator(&config).args(["serve", "--accept-rollback", "--reason", "again"]));
    assert!(log.contains("nothing to accept"), "{log}");
    let server = ServerProcess::start(&config);
    let resp = reqwest::get(format!("{}/v1/krl", server.url))
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-krl-version"], "4");

    let out = run(operator(&config).args(["backup", "--out"]).arg(&backup));
    assert_refused(&out, "never overwrites");
}

#[tokio::test]
async fn a_database_without_its_mark_is_refused_until_accepted_and_typos_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let bob = create_token(&config, "bob");
    // A restore onto a new host brings the key and a backup, not the mark.
    std::fs::remove_file(data(dir.path()).join("countersign.mark")).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("there is no state mark"), "{log}");
    assert!(log.contains("--accept-rollback"), "{log}");
    // It promises no carrying over from a mark that is not there.
    assert!(
        log.contains("has no mark to carry revocations from"),
        "{log}"
    );
    assert!(
        !log.contains("keeps every revocation the mark lists"),
        "{log}"
    );
    assert_refused(
        &run(operator(&config).args(["audit", "verify"])),
        "no state mark",
    );
    let server = ServerProcess::start_with(operator(&config).args([
        "serve",
        "--accept-rollback",
        "--reason",
        "moved to a new host",
    ]))
    .expect("accepted");
    let accepted = Api::new(&server.url)
        .events(&bob, "state.rollback_accepted")
        .await;
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert!(accepted[0]["detail"]["mark"].is_null());
    // Nothing says which KRL versions were published: the next is above the clock's
    // seconds, so every server takes it.
    let resp = reqwest::get(format!("{}/v1/krl", server.url))
        .await
        .unwrap();
    let version: u64 = resp.headers()["x-krl-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(version > 1_700_000_000, "{version}");
    assert!(server.terminate());

    let out = run(operator(&config).args(["token", "revoke", "bobb"]));
    assert_refused(&out, "no user bobb");
    let out = run(operator(&config)
        .args(["backup", "--out"])
        .arg(dir.path().join("missing/b.db")));
    assert_refused(&out, "is not a folder");
}
