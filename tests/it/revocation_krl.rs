//! The KRL that ssh-keygen (and so sshd) reads: which serials it lists, for the time it
//! is asked at.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::revocation::{issued, revoke_serial};

/// The `valid_before` (unix seconds) of a certificate line.
fn valid_before(cert: &str) -> i64 {
    ssh_key::Certificate::from_openssh(cert.trim())
        .unwrap()
        .valid_before() as i64
}

/// `ssh-keygen -Q -f KRL CERT` says REVOKED (exit 1) or ok (exit 0).
pub fn ssh_keygen_query(dir: &Path, krl: &[u8], cert: &str) -> bool {
    let krl_path = dir.join(format!("q-{}.krl", rand::random::<u32>()));
    let cert_path = dir.join(format!("q-{}-cert.pub", rand::random::<u32>()));
    std::fs::write(&krl_path, krl).unwrap();
    std::fs::write(&cert_path, cert).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl_path)
        .arg(&cert_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let revoked = stdout.contains("REVOKED");
    assert_eq!(
        revoked,
        !out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    revoked
}

pub fn ssh_keygen_list_krl(dir: &Path, krl: &[u8]) -> String {
    let path = dir.join(format!("l-{}.krl", rand::random::<u32>()));
    std::fs::write(&path, krl).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-l")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen cannot read the KRL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn fetch_krl(app: &TestApp, etag: Option<&str>) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut req = app.http.get(format!("{}/v1/krl", app.url));
    if let Some(t) = etag {
        req = req.header("if-none-match", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let tag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, tag, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn krl_lists_revoked_unexpired_serials_and_ssh_keygen_reads_it() {
    let app = TestApp::spawn().await;
    let dir = app.dir.path();
    let (status, etag0, empty) = fetch_krl(&app, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ssh_keygen_list_krl(dir, &empty).contains("# KRL version 0"));

    let (_, s1, c1) = issued(&app, "alice", "prod-db", None).await;
    let (_, _s2, c2) = issued(&app, "frank", "prod-db", None).await;
    let (_, s3, c3) = issued(&app, "alice", "prod-db", Some("5m")).await;
    assert!(!ssh_keygen_query(dir, &empty, &c1));

    revoke_serial(&app, "bob", &s1).await;
    let (_, etag1, krl1) = fetch_krl(&app, None).await;
    assert_ne!(etag0, etag1);
    let listing = ssh_keygen_list_krl(dir, &krl1);
    assert!(listing.contains("# KRL version 1"), "{listing}");
    assert!(listing.contains(&format!("serial: {s1}")), "{listing}");
    assert!(
        listing.contains(&app.service.ca().fingerprint()),
        "{listing}"
    );
    assert!(
        ssh_keygen_query(dir, &krl1, &c1),
        "revoked certificate must be REVOKED"
    );
    assert!(
        !ssh_keygen_query(dir, &krl1, &c2),
        "other certificates stay ok"
    );

    let (status, _, body) = fetch_krl(&app, etag1.as_deref()).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    revoke_serial(&app, "bob", &s3).await;
    let (_, etag2, krl2) = fetch_krl(&app, etag1.as_deref()).await;
    assert_ne!(etag1, etag2);
    assert!(ssh_keygen_list_krl(dir, &krl2).contains("# KRL version 2"));
    assert!(ssh_keygen_query(dir, &krl2, &c3));

    // Once the short certificate has expired by more than the backdate (1m: a server
    // whose clock lags that much still accepts it until then) it drops out; the version
    // stays. Both KRLs below are built for their moment (krl_at), not waited for.
    let expires = valid_before(&c3);
    let at = |unix: i64| chrono::DateTime::from_timestamp(unix, 0).unwrap();
    // A KRL is dated the start of its minute (the same bytes on every replica), and
    // rebuilt when the next one begins: build this one in the minute of the last second.
    let last_second = expires + 59;
    let minute = last_second - last_second.rem_euclid(60);
    let within = app.service.krl_at(at(minute.max(expires + 1))).unwrap();
    let listing = ssh_keygen_list_krl(dir, &within.bytes);
    assert!(listing.contains(&format!("serial: {s3}")), "{listing}");
    // The last second it is listed: the KRL built earlier that minute is still exact,
    // and reused.
    let last = app.service.krl_at(at(last_second)).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&within, &last),
        "rebuilt inside its window"
    );
    let after = app.service.krl_at(at(expires + 60)).unwrap();
    let listing = ssh_keygen_list_krl(dir, &after.bytes);
    assert!(listing.contains("# KRL version 2"), "{listing}");
    assert!(!listing.contains(&format!("serial: {s3}")), "{listing}");
    assert!(listing.contains(&format!("serial: {s1}")), "{listing}");
}

/// The server reuses its last KRL while it stays exact. A clock stepped back behind the
/// moment that KRL was built must not get it: certificates it left out as expired are
/// unexpired again at the earlier time, and revoked ones must be listed.
#[tokio::test(flavor = "multi_thread")]
async fn a_clock_stepped_back_gets_a_krl_built_for_its_time() {
    let app = TestApp::spawn().await;
    let dir = app.dir.path();
    let (_, serial, cert) = issued(&app, "alice", "prod-db", Some("10m")).await;
    revoke_serial(&app, "bob", &serial).await;
    let expires = valid_before(&cert);
    let at = |unix: i64| chrono::DateTime::from_timestamp(unix, 0).unwrap();
    let listed = |krl: &[u8]| ssh_keygen_list_krl(dir, krl).contains(&format!("serial: {serial}"));

    let before = app.service.krl_at(at(expires - 60)).unwrap();
    assert!(listed(&before.bytes), "revoked and unexpired: listed");
    // An hour later the certificate has expired and drops out; this KRL is cached.
    let later = app.service.krl_at(at(expires + 3600)).unwrap();
    assert!(!listed(&later.bytes), "expired: no longer listed");
    assert_eq!(later.version, before.version, "no revocation in between");
    // The clock steps back to before the expiry: the cached KRL would let the revoked
    // certificate in again.
    let stepped_back = app.service.krl_at(at(expires - 60)).unwrap();
    assert!(
        listed(&stepped_back.bytes),
        "listed again at the earlier time"
    );
    // And over HTTP, at the real time, it is listed too.
    let (_, _, now) = fetch_krl(&app, None).await;
    assert!(listed(&now), "listed now");
}

/// A certificate counts as held until its expiry plus the backdate: a server whose clock
/// is behind by that much (what the backdate allows for) still accepts it, so a
/// conflicting certificate issued just after the expiry would overlap it there. For the
/// same reason `done` and offboarding still revoke it in that window, and not after.
#[tokio::test]
async fn an_expired_certificate_counts_as_live_for_the_backdate() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let at = |unix: i64| chrono::DateTime::from_timestamp(unix, 0).unwrap();
    // Issued together for the same time: they expire together.
    let (id, serial, cert) = issued(&app, "alice", "deploy", Some("30m")).await;
    let (_, other, _) = issued(&app, "alice", "prod-db", Some("30m")).await;
    // Expired 30 s ago by the CA's clock: inside the 1m backdate.
    clock.set(at(valid_before(&cert) + 30));
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "expired by the CA's clock, but within the 1m backdate: {body}"
    );
    let (status, body) = app
        .post("alice", &format!("/v1/requests/{id}/done"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "done still ends it: {body}");
    let (_, body) = app
        .post("bob", "/v1/users/alice/revoke", json!({ "reason": "left" }))
        .await;
    assert_eq!(
        body["revoked"],
        json!([other.as_str()]),
        "offboarding still ends it"
    );
    let (_, _, krl) = fetch_krl(&app, None).await;
    assert!(ssh_keygen_list_krl(app.dir.path(), &krl).contains(&format!("serial: {serial}")));
    // Past the backdate it is over: nothing to end, and no conflict (grace aside).
    let (id2, _, cert2) = issued(&app, "frank", "deploy", None).await;
    clock.set(at(valid_before(&cert2) + 90));
    let (status, body) = app
        .post("frank", &format!("/v1/requests/{id2}/done"), json!({}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "expired"),
        "{body}"
    );
    let (status, body) = app.create("frank", "deploy-audit", None).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "no backdate overlap left: {body}"
    );
}
