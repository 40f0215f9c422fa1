//! Host certificate revocation, the host KRL (read by the real `ssh-keygen`), its
//! signature, the KRL version shared with the user KRL, and the admin listing.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::hosts_helper::*;

/// `POST /v1/hosts/certificates/{serial}/revoke` as `user`.
async fn revoke(app: &TestApp, user: &str, serial: &Value) -> (StatusCode, Value) {
    let serial = serial.as_str().unwrap();
    let path = format!("/v1/hosts/certificates/{serial}/revoke");
    app.post(user, &path, json!({ "reason": "host retired" }))
        .await
}

/// `ssh-keygen -Q -f KRL CERT`: its stdout (`... REVOKED` or `... ok`).
fn krl_query(dir: &Path, krl: &[u8], view: &Value) -> String {
    let krl_file = write_atomically(dir, "query.krl", krl);
    let cert = write_atomically(
        dir,
        "query-cert.pub",
        view["certificate"].as_str().unwrap().as_bytes(),
    );
    let out = std::process::Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl_file)
        .arg(&cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `X-KRL-Version` of the user KRL and of the host KRL.
async fn versions(app: &TestApp) -> (u64, u64) {
    let (status, user, _) = anon_get(app, "/v1/krl").await;
    assert_eq!(status, StatusCode::OK);
    let (status, host, _) = anon_get(app, "/v1/krl/host").await;
    assert_eq!(status, StatusCode::OK);
    (user.unwrap(), host.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_revoke_a_host_certificate_once_and_the_host_krl_lists_it() {
    let app = spawn_hosts(&manual_clock()).await;
    let dir = app.dir.path();
    let gone = enroll_ok(&app, &new_key(), &["web1.example.com"]).await;
    let kept = enroll_ok(&app, &new_key(), &["web2.example.com"]).await;
    let (status, body) = revoke(&app, "alice", &gone["serial"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = revoke(&app, "bob", &gone["serial"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["revoked_by"], "bob");
    assert_eq!(body["revoke_reason"], "host retired");
    let (status, body) = revoke(&app, "bob", &gone["serial"]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_revoked")
    );
    let (status, body) = revoke(&app, "bob", &json!("12345")).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    let (status, _, krl) = anon_get(&app, "/v1/krl/host").await;
    assert_eq!(status, StatusCode::OK);
    let answer = krl_query(dir, &krl, &gone);
    assert!(answer.contains("REVOKED"), "{answer}");
    let answer = krl_query(dir, &krl, &kept);
    assert!(answer.trim_end().ends_with(": ok"), "{answer}");
    // The user KRL is the user CA's: it does not revoke host certificates.
    let (_, _, user_krl) = anon_get(&app, "/v1/krl").await;
    let answer = krl_query(dir, &user_krl, &gone);
    assert!(answer.trim_end().ends_with(": ok"), "{answer}");

    // The signature verifies under the host CA key, in the host KRL namespace only.
    let (status, _, sig) = anon_get(&app, "/v1/krl/host.sig").await;
    assert_eq!(status, StatusCode::OK);
    let sig_file = write_atomically(dir, "host.krl.sig", &sig);
    let sig_file = sig_file.to_str().unwrap();
    for (ca, namespace, good) in [
        ("/v1/host_ca.pub", "countersign-host-krl", true),
        ("/v1/ca.pub", "countersign-host-krl", false),
        ("/v1/host_ca.pub", "countersign-krl", false),
    ] {
        let ca = served_key(&app, ca).await.to_openssh().unwrap();
        let line = format!("host-ca namespaces=\"{namespace}\" {ca}\n");
        let allowed = write_atomically(dir, "allowed_signers", line.as_bytes());
        let args = [
            "-Y",
            "verify",
            "-f",
            allowed.to_str().unwrap(),
            "-I",
            "host-ca",
        ];
        let out = ssh_keygen(
            &[&args[..], &["-n", namespace, "-s", sig_file]].concat(),
            &krl,
        );
        assert_eq!(
            out.status.success(),
            good,
            "{ca} {namespace}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_host_revocations_share_one_krl_version_that_grows() {
    let app = spawn_hosts(&manual_clock()).await;
    let (user, host) = versions(&app).await;
    assert_eq!(user, host);
    let view = enroll_ok(&app, &new_key(), &["web1.example.com"]).await;
    let (status, body) = revoke(&app, "bob", &view["serial"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        versions(&app).await,
        (user + 1, user + 1),
        "after a host revocation"
    );

    let id = app.create_ok("alice", "prod-db").await;
    let (_, body) = app.approve("bob", &id).await;
    let serial = body["certificate"]["serial"].as_str().unwrap();
    let path = format!("/v1/certificates/{serial}/revoke");
    let (status, body) = app.post("bob", &path, json!({ "reason": "x" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        versions(&app).await,
        (user + 2, user + 2),
        "after a user revocation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_shows_valid_certificates_and_on_request_the_expiring_or_all() {
    let clock = manual_clock();
    let app = spawn_hosts(&clock).await;
    let mut serials = Vec::new();
    for (name, ttl) in [("short", "30m"), ("long", "2h"), ("revoked", "1h")] {
        let token = token_for(&app, &[&format!("{name}.example.com")]).await;
        let body = json!({ "token": token, "public_key": public_line(&new_key()), "ttl": ttl });
        let (status, view) = anon_post(&app, "/v1/hosts/enroll", body).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        serials.push(view["serial"].as_str().unwrap().to_owned());
    }
    let [short, long, revoked] = [&serials[0], &serials[1], &serials[2]];
    let (status, _) = revoke(&app, "bob", &json!(revoked)).await;
    assert_eq!(status, StatusCode::OK);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let expect = |v: &[&String]| sorted(v.iter().map(|s| s.to_string()).collect());

    assert_eq!(sorted(listed(&app, "").await), expect(&[short, long]));
    assert_eq!(listed(&app, "?expiring=45m").await, expect(&[short]));
    assert_eq!(
        sorted(listed(&app, "?expiring=3h").await),
        expect(&[short, long])
    );
    assert_eq!(
        sorted(listed(&app, "?all=true").await),
        expect(&[short, long, revoked])
    );
    // Both: every certificate, whatever its status, ending within the window.
    assert_eq!(
        sorted(listed(&app, "?all=true&expiring=90m").await),
        expect(&[short, revoked])
    );
    let (status, _) = app.get("alice", "/v1/hosts/certificates").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(listed(&app, "").await, expect(&[long]));
    assert!(listed(&app, "?expiring=45m").await.is_empty());
    let (_, body) = app.get("bob", "/v1/hosts/certificates?all=true").await;
    let status_of = |serial: &String| {
        body["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| &c["serial"].as_str().unwrap().to_owned() == serial)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status_of(short), Some(json!("expired")), "{body}");
    assert_eq!(status_of(long), Some(json!("active")), "{body}");
    assert_eq!(status_of(revoked), Some(json!("revoked")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_one_certificate_of_a_host_key_revokes_its_renewals_and_predecessors() {
    let app = spawn_hosts(&manual_clock()).await;
    let key = new_key();
    let first = enroll_ok(&app, &key, &["web1.example.com"]).await;
    let cert = first["certificate"].as_str().unwrap();
    let (text, sig) = proof(&app, &key).await;
    let (status, second) = renew(&app, cert, &text, &sig).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let other = enroll_ok(&app, &new_key(), &["web2.example.com"]).await;
    // The newest is revoked (the serial an operator sees in `ssh -v`): the one it was
    // renewed from goes too, or whoever holds the key would renew from that one.
    let (status, body) = revoke(&app, "bob", &second["serial"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["also_revoked"], json!([first["serial"]]));
    let (text, sig) = proof(&app, &key).await;
    let (status, body) = renew(&app, cert, &text, &sig).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "host_certificate_refused"),
        "{body}"
    );
    // Both are in the host KRL, each with its own audit event; another host is untouched.
    let (_, _, krl) = anon_get(&app, "/v1/krl/host").await;
    for view in [&first, &second] {
        let answer = krl_query(app.dir.path(), &krl, view);
        assert!(answer.contains("REVOKED"), "{answer}");
    }
    let answer = krl_query(app.dir.path(), &krl, &other);
    assert!(answer.trim_end().ends_with(": ok"), "{answer}");
    let events = app.audit("").await;
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "host.revoked")
        .collect();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.iter().any(|e| {
        e["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("same host key")
    }));
    // The chain, host events and their order included, verifies.
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A renewal supersedes the certificate it came from: the listing (and so `--expiring`,
/// what monitoring asks) shows each host key's newest certificate only, the older one
/// with `all`, as `superseded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_shows_each_host_key_s_newest_certificate_only() {
    let app = spawn_hosts(&manual_clock()).await;
    let key = new_key();
    let token = token_for(&app, &["web1.example.com"]).await;
    let body = json!({ "token": token, "public_key": public_line(&key), "ttl": "30m" });
    let (status, first) = anon_post(&app, "/v1/hosts/enroll", body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (text, sig) = proof(&app, &key).await;
    let cert = first["certificate"].as_str().unwrap();
    let (status, second) = renew(&app, cert, &text, &sig).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (old, new) = (
        first["serial"].as_str().unwrap(),
        second["serial"].as_str().unwrap(),
    );
    assert_eq!(listed(&app, "").await, [new]);
    // The old one ends within 45 minutes, but the host renewed: nothing to warn about.
    assert!(listed(&app, "?expiring=45m").await.is_empty());
    let (_, body) = app
        .get("bob", &format!("/v1/hosts/certificates/{old}"))
        .await;
    assert_eq!(body["status"], "superseded", "{body}");
    assert_eq!(body["superseded_by"], new);
    assert_eq!(listed(&app, "?all=true").await.len(), 2);
}

/// The host KRL is built once and reused while it is exact: the same one on the next
/// poll, a new one at a revocation, and a revoked certificate drops out once expired by
/// more than the backdate (1m), whatever was built before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_krl_is_reused_while_exact_and_rebuilt_when_it_is_not() {
    let clock = manual_clock();
    let app = spawn_hosts(&clock).await;
    let dir = app.dir.path();
    let gone = enroll_ok(&app, &new_key(), &["web1.example.com"]).await;
    let next = enroll_ok(&app, &new_key(), &["web2.example.com"]).await;
    let revoked = |krl: &[u8], view: &Value| krl_query(dir, krl, view).contains("REVOKED");
    assert_eq!(revoke(&app, "bob", &gone["serial"]).await.0, StatusCode::OK);
    let first = app.service.host_krl().unwrap();
    assert!(revoked(&first.bytes, &gone));
    let again = app.service.host_krl().unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "reused while exact");

    assert_eq!(revoke(&app, "bob", &next["serial"]).await.0, StatusCode::OK);
    let second = app.service.host_krl().unwrap();
    assert!(
        second.version > first.version,
        "a revocation makes a new one"
    );
    assert!(revoked(&second.bytes, &gone) && revoked(&second.bytes, &next));
    let (_, version, served) = anon_get(&app, "/v1/krl/host").await;
    assert_eq!(
        (version, served),
        (Some(second.version), second.bytes.to_vec())
    );

    // Both expire together: just inside the backdate they are listed, then not.
    let expires = parsed(&gone).valid_before() as i64;
    let at = |unix: i64| chrono::DateTime::from_timestamp(unix, 0).unwrap();
    clock.set(at(expires + 30));
    let inside = app.service.host_krl().unwrap();
    assert!(revoked(&inside.bytes, &gone), "listed within the backdate");
    clock.set(at(expires + 61));
    let after = app.service.host_krl().unwrap();
    assert!(!revoked(&after.bytes, &gone) && !revoked(&after.bytes, &next));
    assert_eq!(after.version, second.version, "no revocation in between");
}

/// `POST /v1/krl/forgotten` as bob: `serial` listed again until two hours from `now`.
async fn relist(
    app: &TestApp,
    serial: &str,
    host: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let end = (now + chrono::Duration::hours(2)).to_rfc3339();
    let body = json!({ "serial": serial, "valid_before": end, "reason": "x", "host": host });
    app.post("bob", "/v1/krl/forgotten", body).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_serial_goes_to_its_own_krl_and_the_wrong_kind_is_refused() {
    use countersign::clock::Clock;
    let clock = manual_clock();
    let app = spawn_hosts(&clock).await;
    let now = clock.now();
    let host_cert = enroll_ok(&app, &new_key(), &["web1.example.com"]).await;
    let host_serial = host_cert["serial"].as_str().unwrap().to_owned();
    let id = app.create_ok("alice", "prod-db").await;
    let (_, body) = app.approve("bob", &id).await;
    let user_serial = body["certificate"]["serial"].as_str().unwrap().to_owned();
    // `--host` missing or extra (an operator's trial): refused, naming the right flag.
    let body = relist(&app, &host_serial, false, now).await;
    assert!(
        body.to_string()
            .contains("is a host certificate of this CA"),
        "{body}"
    );
    let body = relist(&app, &user_serial, true, now).await;
    assert!(
        body.to_string()
            .contains("is a user certificate of this CA"),
        "{body}"
    );
    // A serial the CA never saw, for the host KRL: listed there, not in the user KRL.
    let unknown = "4242424242";
    let body = relist(&app, unknown, true, now).await;
    assert_eq!(
        (body["known"].as_bool(), body["host"].as_bool()),
        (Some(false), Some(true))
    );
    let serials = |bytes: Vec<u8>| countersign::krl::read(&bytes).unwrap().serials.unwrap();
    let (_, _, host_krl) = anon_get(&app, "/v1/krl/host").await;
    let (_, _, user_krl) = anon_get(&app, "/v1/krl").await;
    assert!(serials(host_krl).contains(&4_242_424_242));
    assert!(!serials(user_krl).contains(&4_242_424_242));
    // A host certificate the CA has: revoked as usual, in the host KRL ssh reads.
    let body = relist(&app, &host_serial, true, now).await;
    assert_eq!(body["known"], true, "{body}");
    let (_, _, host_krl) = anon_get(&app, "/v1/krl/host").await;
    assert!(krl_query(app.dir.path(), &host_krl, &host_cert).contains("REVOKED"));
}
