//! State that must never be forgotten: a lost or rolled-back database, a lost CA key, a
//! database of another CA, files others could replace, and the KRL servers fetch — all
//! through the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Api, ServerProcess, create_token, init, operator};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config with the usual policy in a fresh folder, initialised.
fn setup(dir: &Path) -> PathBuf {
    let config = dir.join("countersign.toml");
    std::fs::write(&config, POLICY).unwrap();
    init(&config);
    let mode = std::fs::metadata(data(dir)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "data_dir created {mode:o}");
    config
}

fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

fn remove_database(dir: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data(dir).join(format!("countersign.db{suffix}")));
    }
}

/// `serve` must refuse; returns its log.
fn serve_refused(cmd: &mut Command) -> String {
    match ServerProcess::start_with(cmd) {
        Ok(_) => panic!("serve started but should have refused"),
        Err(log) => log,
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("countersign runs")
}

/// The command failed, saying `why` on stderr.
fn assert_refused(out: &Output, why: &str) {
    assert!(!out.status.success(), "succeeded: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
}

fn serial_of(cert: &str) -> u64 {
    ssh_key::Certificate::from_openssh(cert.trim())
        .expect("certificate parses")
        .serial()
}

/// Revokes `serial` as bob (an admin in [`POLICY`]).
async fn revoke(api: &Api, bob: &str, serial: u64) {
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
fn krl_out(config: &Path, url: &str, out: &Path, args: &[&str]) -> Output {
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

fn ca_pub(dir: &Path, config: &Path) -> PathBuf {
    let out = run(operator(config).arg("init"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = dir.join("ca.pub");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn mark(dir: &Path) -> Value {
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
    // The copy forgot both revocations; the mark did not: the new KRL (a higher version,
    // so servers take it) still revokes both certificates.
    let out = krl_out(&config, &server.url, &krl, &ca_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("KRL version 3") || said.contains("is current"),
        "{said}"
    );
    assert!(revoked_by(dir.path(), &krl, &before));
    assert!(revoked_by(dir.path(), &krl, &after));
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
    assert_eq!(resp.headers()["x-krl-version"], "3");

    let out = run(operator(&config).args(["backup", "--out"]).arg(&backup));
    assert_refused(&out, "never overwrites");
}

#[tokio::test]
async fn the_mark_holds_a_revocation_before_its_answer_leaves() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial = body["certificate"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(mark(app.dir.path())["krl_version"], 0);
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial}/revoke"),
            json!({"reason": "gone"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No sleep: the answer leaves only once the mark holds the new KRL version.
    let m = mark(app.dir.path());
    assert_eq!(m["krl_version"], 1, "{m}");
    let head: i64 = app.count("SELECT max(seq) FROM audit");
    assert_eq!(m["audit_seq"], head, "{m}");
}

#[tokio::test]
async fn no_krl_version_is_served_before_the_mark_holds_it() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial: u64 = body["certificate"]["serial"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // A revocation made outside the HTTP path (as another replica, or a later front end,
    // might): nothing has moved the mark yet.
    let bob = countersign::names::UserName::parse("bob").unwrap();
    let reason = countersign::names::Text::parse("gone", "reason").unwrap();
    app.service.revoke_serial(&bob, serial, reason).unwrap();
    assert_eq!(mark(app.dir.path())["krl_version"], 0);
    let resp = reqwest::get(format!("{}/v1/krl", app.url)).await.unwrap();
    assert_eq!(resp.headers()["x-krl-version"], "1");
    assert_eq!(mark(app.dir.path())["krl_version"], 1);
}

#[tokio::test]
async fn the_krl_is_signed_by_the_ca_and_names_it_even_when_empty() {
    let app = TestApp::spawn().await;
    let krl = reqwest::get(format!("{}/v1/krl", app.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let resp = reqwest::get(format!("{}/v1/krl.sig", app.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-krl-version"], "0");
    let sig = resp.text().await.unwrap();
    let dir = app.dir.path();
    std::fs::write(dir.join("k.krl"), &krl).unwrap();
    std::fs::write(dir.join("k.krl.sig"), &sig).unwrap();
    let ca = reqwest::get(format!("{}/v1/ca.pub", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(
        dir.join("allowed"),
        format!(
            "countersign-ca namespaces=\"countersign-krl\" {}",
            ca.trim()
        ),
    )
    .unwrap();
    let verify = |namespace: &str| {
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(dir.join("allowed"))
            .args(["-I", "countersign-ca", "-n", namespace, "-s"])
            .arg(dir.join("k.krl.sig"))
            .stdin(std::fs::File::open(dir.join("k.krl")).unwrap())
            .output()
            .unwrap()
    };
    let ok = verify("countersign-krl");
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(!verify("countersign-audit").status.success());
    // ssh-keygen reads the empty KRL, and it names our CA.
    let listed = run(Command::new("ssh-keygen")
        .args(["-Q", "-l", "-f"])
        .arg(dir.join("k.krl")));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let summary = countersign::krl::read(&krl).unwrap();
    let ca = ssh_key::PublicKey::from_openssh(ca.trim()).unwrap();
    assert_eq!(summary.cas, vec![ca.key_data().clone()]);
}

#[tokio::test]
async fn krl_out_refuses_unsigned_foreign_and_older_krls_unless_forced() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = setup(one.path());
    let config_two = setup(two.path());
    let ca_two = ca_pub(two.path(), &config_two);
    let server = ServerProcess::start(&config);
    let other = ServerProcess::start(&config_two);
    let out_file = one.path().join("countersign.krl");

    // A first fetch that is refused pins nothing.
    let pin = one.path().join("countersign.krl.ca.pub");
    std::fs::write(&out_file, b"not a KRL").unwrap();
    let out = krl_out(&config, &other.url, &out_file, &[]);
    assert_refused(&out, "not an OpenSSH KRL");
    assert!(!pin.exists(), "a refused fetch pinned a key");
    std::fs::remove_file(&out_file).unwrap();

    // First fetch: the CA key is pinned from /v1/ca.pub beside the file.
    let out = krl_out(&config, &server.url, &out_file, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("pinned CA key"),
        "{}",
        text(&out.stderr)
    );
    assert!(pin.exists());
    let ours = std::fs::read(&out_file).unwrap();

    // Another CA's server (a wrong URL, or someone in the middle): its signature does
    // not verify with the pinned key, and --force does not change that.
    for force in [&[][..], &["--force"]] {
        let out = krl_out(&config, &other.url, &out_file, force);
        assert_refused(&out, "signature does not verify");
        assert_eq!(std::fs::read(&out_file).unwrap(), ours, "file replaced");
    }
    // Named explicitly, its KRL verifies, but it would replace a KRL of another CA.
    let two_key = ["--ca-key", ca_two.to_str().unwrap()];
    let out = krl_out(&config, &other.url, &out_file, &two_key);
    assert_refused(&out, "a KRL of another CA");
    assert_eq!(std::fs::read(&out_file).unwrap(), ours);
    let out = krl_out(
        &config,
        &other.url,
        &out_file,
        &[two_key[0], two_key[1], "--force"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&out_file).unwrap(), ours);

    // A newer KRL of our CA (version 5, made by ssh-keygen) is not replaced by the
    // server's version 0.
    let spec = one.path().join("spec");
    std::fs::write(&spec, "serial: 7\n").unwrap();
    let newer = one.path().join("newer.krl");
    let made = run(Command::new("ssh-keygen")
        .args(["-k", "-z", "5", "-s"])
        .arg(&pin)
        .arg("-f")
        .arg(&newer)
        .arg(&spec));
    assert!(made.status.success(), "{}", text(&made.stderr));
    let before = std::fs::read(&newer).unwrap();
    let out = krl_out(
        &config,
        &server.url,
        &newer,
        &["--ca-key", pin.to_str().unwrap()],
    );
    assert_refused(&out, "is older than");
    assert_eq!(std::fs::read(&newer).unwrap(), before);
    let out = krl_out(
        &config,
        &server.url,
        &newer,
        &["--ca-key", pin.to_str().unwrap(), "--force"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn files_other_users_could_replace_are_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let data = data(dir.path());
    let db = data.join("countersign.db");
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };

    chmod(&data, 0o770);
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("writable by group or others"), "{log}");
    assert!(log.contains("chmod 700"), "{log}");
    chmod(&data, 0o700);

    chmod(&db, 0o644);
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("chmod 600"), "{log}");
    let out = run(operator(&config).args(["audit", "verify"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("accessible by group or others"));
    chmod(&db, 0o600);

    let moved = dir.path().join("elsewhere.db");
    std::fs::rename(&db, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &db).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("is a symlink"), "{log}");
    std::fs::remove_file(&db).unwrap();
    std::fs::rename(&moved, &db).unwrap();

    let mark = data.join("countersign.mark");
    chmod(&mark, 0o666);
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(
        log.contains("countersign.mark: is writable by group or others"),
        "{log}"
    );
    chmod(&mark, 0o600);

    if std::os::unix::fs::chown(&db, Some(65534), None).is_ok() {
        let log = serve_refused(operator(&config).arg("serve"));
        assert!(log.contains("owned by uid 65534"), "{log}");
        std::os::unix::fs::chown(&db, Some(unsafe_euid()), None).unwrap();
    } else {
        eprintln!("owner check skipped: not allowed to chown (not root)");
    }
    let out = run(operator(&config).args(["audit", "verify"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn unsafe_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
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

#[tokio::test(flavor = "multi_thread")]
async fn a_krl_replayed_from_the_past_is_refused_not_kept() {
    let app = TestApp::spawn().await;
    let dir = app.dir.path();
    let ca = dir.join("ca.pub");
    std::fs::write(&ca, app.service.ca().public_key_line()).unwrap();
    // What the CA really served two hours ago, signature and all, replayed by someone
    // between the servers and the CA.
    let old = app
        .service
        .krl_at(chrono::Utc::now() - chrono::Duration::hours(2))
        .unwrap();
    let url = replay(&old).await;
    let out_file = dir.join("countersign.krl");
    let ca_key = ["--ca-key", ca.to_str().unwrap()];
    let config = app.config_path();
    let out = tokio::task::block_in_place(|| krl_out(&config, &url, &out_file, &ca_key));
    assert_refused(&out, "the KRL was made 2h");
    assert!(!out_file.exists());
    let out = tokio::task::block_in_place(|| {
        krl_out(
            &config,
            &url,
            &out_file,
            &[ca_key[0], ca_key[1], "--max-age", "3h"],
        )
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A KRL dated ahead (a CA clock far ahead) cannot be replayed forever either.
    let ahead = app
        .service
        .krl_at(chrono::Utc::now() + chrono::Duration::hours(2))
        .unwrap();
    let url = replay(&ahead).await;
    let out = tokio::task::block_in_place(|| krl_out(&config, &url, &out_file, &ca_key));
    assert_refused(&out, "from now");
    // The CA's own answer is fresh.
    let out = tokio::task::block_in_place(|| krl_out(&config, &app.url, &out_file, &ca_key));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Serves `krl` and its signature, as someone replaying a captured answer would.
async fn replay(krl: &countersign::service::Krl) -> String {
    let (bytes, sig) = (krl.bytes.clone(), krl.signature.clone());
    let routes = axum::Router::new()
        .route("/v1/krl", axum::routing::get(move || async move { bytes }))
        .route(
            "/v1/krl.sig",
            axum::routing::get(move || async move { sig }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, routes).await });
    url
}

#[test]
fn a_backup_whose_audit_chain_does_not_verify_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    create_token(&config, "alice");
    // Someone edits history in place (the triggers dropped first).
    let conn = rusqlite::Connection::open(data(dir.path()).join("countersign.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 1;",
    )
    .unwrap();
    drop(conn);
    let copy = dir.path().join("copy.db");
    let out = run(operator(&config).args(["backup", "--out"]).arg(&copy));
    assert_refused(&out, "the copy's audit chain does not verify");
    assert!(!copy.exists(), "a copy that does not verify was kept");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("copy.db"))
        .collect();
    assert!(left.is_empty(), "a temporary copy was left: {left:?}");
}
