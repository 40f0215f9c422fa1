//! Host certificates through the API (issue 19): join tokens, enrollment, the audit
//! trail, a server without `[host_ca]`, and the host CA key a database belongs to.
//! Renewal is in `hosts_renew.rs`, revocation and listing in `hosts_revoke.rs`, real
//! sshd and ssh in `hosts_sshd.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use ssh_key::HashAlg;
use ssh_key::certificate::CertType;

use crate::helpers::*;
use crate::hosts_helper::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_make_join_tokens_and_only_for_exact_allowed_principals() {
    let app = spawn_hosts(&manual_clock()).await;
    let (status, body) = make_token(&app, "alice", &["web1.example.com"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for outside in [
        &["evil.org"][..],
        &["web1.example.com", "11.0.0.1"],
        &["example.com"],
    ] {
        let (status, body) = make_token(&app, "bob", outside).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "principal_not_allowed"),
            "{outside:?}: {body}"
        );
    }
    for bad in [
        "*.example.com",
        "web?.example.com",
        "Web1.example.com",
        "web1.example.com;id",
        "web1 .example.com",
        "",
    ] {
        let (status, body) = make_token(&app, "bob", &[bad]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?} was taken: {body}");
    }
    let (status, body) = make_token(&app, "bob", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no principals: {body}");
    let long = json!({ "principals": ["web1.example.com"], "ttl": "8d" });
    let (status, body) = app.post("bob", "/v1/hosts/tokens", long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a token of 8 days: {body}");
    let week = json!({ "principals": ["web1.example.com"], "ttl": "7d" });
    let (status, body) = app.post("bob", "/v1/hosts/tokens", week).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = make_token(&app, "bob", &["web1.example.com", "10.1.2.3"]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["token"].as_str().unwrap().starts_with("csh_"),
        "{body}"
    );
    assert_eq!(body["principals"], json!(["web1.example.com", "10.1.2.3"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_gives_a_host_certificate_of_the_host_ca_for_exactly_the_token_principals() {
    let app = spawn_hosts(&manual_clock()).await;
    let key = new_key();
    let view = enroll_ok(&app, &key, &["web1.example.com", "10.0.0.5"]).await;
    assert_eq!(view["status"], "active");
    assert_eq!(view["principals"], json!(["web1.example.com", "10.0.0.5"]));
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
    assert_eq!(view["key_fingerprint"], fingerprint.as_str());

    let cert = parsed(&view);
    assert_eq!(cert.cert_type(), CertType::Host);
    assert_eq!(cert.valid_principals(), ["web1.example.com", "10.0.0.5"]);
    assert_eq!(cert.public_key(), key.public_key().key_data());
    assert_eq!(cert.serial().to_string(), view["serial"].as_str().unwrap());
    assert!(cert.extensions().is_empty() && cert.critical_options().is_empty());
    // The default lifetime: cert_ttl = 1h (plus the backdate before now).
    let life = cert.valid_before() - cert.valid_after();
    assert!((3600..=3600 + 600).contains(&life), "lifetime {life}s");

    let host_ca = served_key(&app, "/v1/host_ca.pub").await;
    let user_ca = served_key(&app, "/v1/ca.pub").await;
    assert_ne!(host_ca.key_data(), user_ca.key_data());
    assert_eq!(cert.signature_key(), host_ca.key_data());
    let fp = |k: &ssh_key::PublicKey| k.fingerprint(HashAlg::Sha256);
    let now = cert.valid_after() + 60;
    cert.validate_at(now, &[fp(&host_ca)])
        .expect("the host CA's signature verifies");
    assert!(cert.validate_at(now, &[fp(&user_ca)]).is_err());

    let listing = ssh_keygen_list(app.dir.path(), view["certificate"].as_str().unwrap());
    assert!(
        listing.contains("Type: ssh-ed25519-cert-v01@openssh.com host certificate"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Signing CA: ED25519 {}", fp(&host_ca))),
        "{listing}"
    );
    assert!(!listing.contains(&fp(&user_ca).to_string()), "{listing}");
    let principals = listing.split("Principals:").nth(1).unwrap();
    let principals: Vec<&str> = principals
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Critical Options"))
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(principals, ["web1.example.com", "10.0.0.5"], "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_token_makes_one_certificate_and_none_once_expired_or_unknown() {
    let clock = manual_clock();
    let app = spawn_hosts(&clock).await;
    let token = token_for(&app, &["web1.example.com"]).await;
    let (status, body) = enroll(&app, &token, &public_line(&new_key())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = enroll(&app, &token, &public_line(&new_key())).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "host_token_invalid"),
        "a reused token: {body}"
    );
    assert_eq!(listed(&app, "?all=true").await.len(), 1, "no second cert");

    let late = token_for(&app, &["web2.example.com"]).await;
    clock.advance(Duration::from_secs(15 * 60 + 1));
    let (status, body) = enroll(&app, &late, &public_line(&new_key())).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "host_token_invalid"),
        "an expired token: {body}"
    );
    let unknown = format!("csh_{}", "ab".repeat(32));
    for t in [unknown.as_str(), "not-a-token", ""] {
        let (status, body) = enroll(&app, t, &public_line(&new_key())).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "host_token_invalid"),
            "{t:?}: {body}"
        );
    }
    assert_eq!(listed(&app, "?all=true").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_ca_key_is_certified_as_a_host_key_and_the_refusal_spares_the_token() {
    let app = spawn_hosts(&manual_clock()).await;
    let token = token_for(&app, &["web1.example.com"]).await;
    for path in ["/v1/host_ca.pub", "/v1/ca.pub"] {
        let ca = served_key(&app, path).await.to_openssh().unwrap();
        let (status, body) = enroll(&app, &token, &ca).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    assert!(listed(&app, "?all=true").await.is_empty());
    let (status, body) = enroll(&app, &token, &public_line(&new_key())).await;
    assert_eq!(status, StatusCode::CREATED, "the token still works: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_tokens_enrollments_renewals_and_revocations_are_audited() {
    let app = spawn_hosts(&manual_clock()).await;
    let key = new_key();
    let first = enroll_ok(&app, &key, &["web1.example.com", "10.0.0.5"]).await;
    let (text, sig) = proof(&app, &key).await;
    let (status, second) = renew(&app, first["certificate"].as_str().unwrap(), &text, &sig).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let serial = second["serial"].as_str().unwrap();
    let revoke = json!({ "reason": "decommissioned" });
    let path = format!("/v1/hosts/certificates/{serial}/revoke");
    let (status, body) = app.post("bob", &path, revoke).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let events = app.audit("").await;
    let find = |action: &str| {
        events
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {events:?}"))
            .clone()
    };
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
    let principals = json!(["web1.example.com", "10.0.0.5"]);
    let made = find("host.token_created");
    assert_eq!(made["actor"], "bob");
    assert_eq!(made["detail"]["principals"], principals);
    assert!(
        !made.to_string().contains("csh_"),
        "the secret is never logged"
    );
    let enrolled = find("host.enrolled");
    assert_eq!(enrolled["detail"]["serial"], first["serial"]);
    assert_eq!(enrolled["detail"]["principals"], principals);
    assert_eq!(enrolled["detail"]["key_fingerprint"], fingerprint.as_str());
    assert_eq!(enrolled["detail"]["token_id"], made["detail"]["token_id"]);
    let renewed = find("host.renewed");
    assert_eq!(renewed["detail"]["serial"], serial);
    assert_eq!(renewed["detail"]["renewed_from"], first["serial"]);
    assert_eq!(renewed["detail"]["principals"], principals);
    assert_eq!(renewed["detail"]["key_fingerprint"], fingerprint.as_str());
    let revoked = find("host.revoked");
    assert_eq!(revoked["actor"], "bob");
    assert_eq!(revoked["detail"]["serial"], serial);
    assert_eq!(revoked["detail"]["principals"], principals);
    assert_eq!(revoked["detail"]["key_fingerprint"], fingerprint.as_str());
    assert_eq!(revoked["detail"]["reason"], "decommissioned");
    find("host_ca.recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_host_ca_every_host_endpoint_answers_not_found() {
    let app = TestApp::spawn().await;
    let key = public_line(&new_key());
    for path in ["/v1/host_ca.pub", "/v1/krl/host", "/v1/krl/host.sig"] {
        let (status, _, _) = anon_get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, body) = make_token(&app, "bob", &["web1.example.com"]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app.get("bob", "/v1/hosts/certificates").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let token = format!("csh_{}", "ab".repeat(32));
    let (status, body) = enroll(&app, &token, &key).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let challenge = json!({ "public_key": key });
    let (status, body) = anon_post(&app, "/v1/hosts/renew/challenge", challenge).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert!(!app.dir.path().join("data/host_ca_key").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_another_host_ca_key_is_refused_and_with_the_same_key_works() {
    let mut app = spawn_hosts(&manual_clock()).await;
    let view = enroll_ok(&app, &new_key(), &["web1.example.com"]).await;
    let before = served_key(&app, "/v1/host_ca.pub").await;
    app.stop().await;
    let key_file = app.dir.path().join("data/host_ca_key");
    let original = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    new_key()
        .write_openssh_file(&key_file, ssh_key::LineEnding::LF)
        .unwrap();
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&key_file, mode.clone()).unwrap();

    let config = countersign::config::Config::load(&app.config_path()).unwrap();
    let access = countersign::state::Access::Serve {
        accept_rollback: None,
        new_replica: false,
    };
    let err = countersign::service::Service::open(config, access, "operator:test")
        .expect_err("another host CA key is refused")
        .to_string();
    assert!(err.contains("host CA key"), "{err}");
    assert!(
        err.contains(before.to_openssh().unwrap().split(' ').nth(1).unwrap()),
        "names the recorded key: {err}"
    );

    std::fs::write(&key_file, original).unwrap();
    std::fs::set_permissions(&key_file, mode).unwrap();
    let app = app.restart().await;
    assert_eq!(
        served_key(&app, "/v1/host_ca.pub").await.key_data(),
        before.key_data()
    );
    let serial = view["serial"].as_str().unwrap();
    let (status, body) = app
        .get("bob", &format!("/v1/hosts/certificates/{serial}"))
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("active"))
    );
}

/// `tests/py/ssh_cert_type.py FILE` (Python's `cryptography`): its `key value` lines.
fn independent_reading(
    dir: &std::path::Path,
    cert: &str,
) -> std::collections::HashMap<String, String> {
    let file = write_atomically(
        dir,
        &format!("py-{}-cert.pub", rand::random::<u32>()),
        cert.as_bytes(),
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join("tests/py/.venv/bin/python"))
        .arg(root.join("tests/py/ssh_cert_type.py"))
        .arg(&file)
        .output()
        .expect("tests/py/.venv: run scripts/install-python.sh");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_parser_reads_host_certs_as_host_of_the_host_ca_and_user_certs_as_user() {
    let app = spawn_hosts(&manual_clock()).await;
    let dir = app.dir.path();
    let key_of = |k: ssh_key::PublicKey| k.to_openssh().unwrap();
    let host_ca = key_of(served_key(&app, "/v1/host_ca.pub").await);
    let user_ca = key_of(served_key(&app, "/v1/ca.pub").await);
    let base64 = |line: &str| line.split(' ').nth(1).unwrap().to_owned();

    let view = enroll_ok(&app, &new_key(), &["web1.example.com", "10.0.0.5"]).await;
    let host = independent_reading(dir, view["certificate"].as_str().unwrap());
    assert_eq!(host["type"], "HOST");
    assert_eq!(&host["serial"], view["serial"].as_str().unwrap());
    assert_eq!(host["principals"], "web1.example.com,10.0.0.5");
    assert_eq!(base64(&host["ca"]), base64(&host_ca));

    let id = app.create_ok("alice", "prod-db").await;
    let (_, body) = app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let (_, cert) = app.certificate("alice", &id).await;
    let user = independent_reading(dir, &cert);
    assert_eq!(user["type"], "USER");
    assert_eq!(user["principals"], "postgres,alice");
    assert_eq!(base64(&user["ca"]), base64(&user_ca));
    assert_ne!(base64(&user["ca"]), base64(&host_ca));
}
