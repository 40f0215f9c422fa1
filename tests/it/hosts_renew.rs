//! Host certificate renewal (`POST /v1/hosts/renew`): proof of the host key over a
//! challenge of this server's, plus a current, unrevoked host certificate of ours for
//! that key. Every forged, replayed or stale part is refused and makes no certificate.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use ssh_key::certificate::{Builder, CertType};

use crate::helpers::*;
use crate::hosts_helper::*;

/// Asserts a refusal with `status` and `code`, for the reason `why`.
fn refused(got: (StatusCode, serde_json::Value), status: StatusCode, code_: &str, why: &str) {
    assert_eq!((got.0, code(&got.1)), (status, code_), "{why}: {}", got.1);
}

/// Anonymous `POST path` of each of `bodies`, all sent at once.
async fn at_once(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<(StatusCode, Value)> {
    let mut set = tokio::task::JoinSet::new();
    for body in bodies {
        let request = app.http.post(format!("{}{path}", app.url)).json(&body);
        set.spawn(async move {
            let resp = request.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        });
    }
    set.join_all().await
}

const PROOF: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "host_proof_failed");
const CERT: (StatusCode, &str) = (StatusCode::FORBIDDEN, "host_certificate_refused");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_signed_by_ssh_keygen_gives_a_new_serial_for_the_same_principals_once() {
    let app = spawn_hosts(&manual_clock()).await;
    let key = new_key();
    let key_file = write_key(app.dir.path(), "host1", &key);
    let first = enroll_ok(&app, &key, &["web1.example.com", "10.0.0.5"]).await;
    let cert = first["certificate"].as_str().unwrap();
    let text = challenge(&app, &public_line(&key)).await;
    let sig = ssh_keygen_sign(&key_file, "countersign-host-renew", &text);
    assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"), "{sig}");

    let (status, second) = renew(&app, cert, &text, &sig).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_ne!(second["serial"], first["serial"]);
    assert_eq!(second["renewed_from"], first["serial"]);
    assert_eq!(second["principals"], first["principals"]);
    assert_eq!(second["key_fingerprint"], first["key_fingerprint"]);
    assert_eq!(second["status"], "active");
    let renewed = parsed(&second);
    assert_eq!(renewed.cert_type(), CertType::Host);
    assert_eq!(renewed.public_key(), key.public_key().key_data());
    assert_eq!(renewed.signature_key(), parsed(&first).signature_key());
    assert_eq!(renewed.valid_principals(), ["web1.example.com", "10.0.0.5"]);

    let replay = renew(&app, cert, &text, &sig).await;
    refused(replay, PROOF.0, PROOF.1, "the same answer twice");
    let replay = renew(&app, second["certificate"].as_str().unwrap(), &text, &sig).await;
    refused(
        replay,
        PROOF.0,
        PROOF.1,
        "the same answer with the new certificate",
    );
    assert_eq!(listed(&app, "?all=true").await.len(), 2);

    // The new certificate renews in turn; a lifetime past max_ttl (2h) is refused.
    let (text, sig) = proof(&app, &key).await;
    let body = json!({ "certificate": second["certificate"], "challenge": text,
                       "signature": sig, "ttl": "3h" });
    let (status, answer) = anon_post(&app, "/v1/hosts/renew", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "ttl 3h: {answer}");
    let (text, sig) = proof(&app, &key).await;
    let (status, third) = renew(&app, second["certificate"].as_str().unwrap(), &text, &sig).await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    assert_eq!(third["renewed_from"], second["serial"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_renewal_proof_is_refused() {
    let app = spawn_hosts(&manual_clock()).await;
    let (key, other) = (new_key(), new_key());
    let view = enroll_ok(&app, &key, &["web1.example.com"]).await;
    let cert = view["certificate"].as_str().unwrap();
    let ns = "countersign-host-renew";
    let text = challenge(&app, &public_line(&key)).await;

    let by_other = sign(&other, ns, &text);
    let got = renew(&app, cert, &text, &by_other).await;
    refused(got, PROOF.0, PROOF.1, "signed by another key");
    let wrong_ns = sign(&key, "countersign-host-krl", &text);
    let got = renew(&app, cert, &text, &wrong_ns).await;
    refused(got, PROOF.0, PROOF.1, "signed in another namespace");
    let got = renew(&app, cert, &text, "-----BEGIN SSH SIGNATURE-----\nAAAA\n").await;
    refused(got, PROOF.0, PROOF.1, "not a signature");

    // The host signs a challenge it edited to live longer: the server's tag breaks.
    let later: String = text
        .lines()
        .map(|l| match l.starts_with("expires: ") {
            true => "expires: 2099-01-01T00:00:00Z\n".to_owned(),
            false => format!("{l}\n"),
        })
        .collect();
    assert_ne!(later, text, "the challenge has an expires line: {text}");
    let got = renew(&app, cert, &later, &sign(&key, ns, &later)).await;
    refused(got, PROOF.0, PROOF.1, "a tampered challenge");
    let made_up = "countersign host renewal\nkey: x\nexpires: 2099-01-01T00:00:00Z\ntag: 00\n";
    let got = renew(&app, cert, made_up, &sign(&key, ns, made_up)).await;
    refused(got, PROOF.0, PROOF.1, "a challenge the server never made");

    // A challenge made for another key, though signed by the certificate's key.
    let for_other = challenge(&app, &public_line(&other)).await;
    let got = renew(&app, cert, &for_other, &sign(&key, ns, &for_other)).await;
    refused(got, PROOF.0, PROOF.1, "a challenge for another key");
    assert_eq!(listed(&app, "?all=true").await.len(), 1, "nothing signed");

    let got = renew(&app, cert, &text, &sign(&key, ns, &text)).await;
    assert_eq!(got.0, StatusCode::CREATED, "the honest proof: {}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_is_good_for_five_minutes() {
    let clock = manual_clock();
    let app = spawn_hosts(&clock).await;
    let key = new_key();
    let view = enroll_ok(&app, &key, &["web1.example.com"]).await;
    let cert = view["certificate"].as_str().unwrap();
    let (text, sig) = proof(&app, &key).await;
    clock.advance(Duration::from_secs(301));
    let got = renew(&app, cert, &text, &sig).await;
    refused(got, PROOF.0, PROOF.1, "a challenge of 301s ago");
    let (text, sig) = proof(&app, &key).await;
    clock.advance(Duration::from_secs(299));
    let (status, body) = renew(&app, cert, &text, &sig).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a challenge of 299s ago: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_needs_a_current_unrevoked_host_certificate_of_ours_for_that_key() {
    let clock = manual_clock();
    let app = spawn_hosts(&clock).await;

    // Revoked.
    let revoked_key = new_key();
    let view = enroll_ok(&app, &revoked_key, &["web1.example.com"]).await;
    let serial = view["serial"].as_str().unwrap();
    let path = format!("/v1/hosts/certificates/{serial}/revoke");
    let (status, body) = app.post("bob", &path, json!({ "reason": "stolen" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (text, sig) = proof(&app, &revoked_key).await;
    let got = renew(&app, view["certificate"].as_str().unwrap(), &text, &sig).await;
    refused(got, CERT.0, CERT.1, "a revoked certificate");

    // A user certificate from the request/approve flow, with a proof of its key.
    let user_key = new_key();
    let (status, body) = app
        .create_with_key("alice", "prod-db", None, &public_line(&user_key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap();
    let (_, body) = app.approve("bob", id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let (_, user_cert) = app.certificate("alice", id).await;
    let (text, sig) = proof(&app, &user_key).await;
    let got = renew(&app, &user_cert, &text, &sig).await;
    refused(got, CERT.0, CERT.1, "a user certificate");

    // A host certificate of another CA, for the key that signs the proof.
    let stranger = new_key();
    let now = clock.now().timestamp() as u64;
    let mut b = Builder::new_with_random_nonce(
        &mut rand::rng(),
        stranger.public_key().key_data().clone(),
        now - 60,
        now + 3600,
    )
    .unwrap();
    b.serial(42).unwrap().cert_type(CertType::Host).unwrap();
    b.key_id("web1").unwrap();
    b.valid_principal("web1.example.com").unwrap();
    let foreign = b.sign(&new_key()).unwrap().to_openssh().unwrap();
    let (text, sig) = proof(&app, &stranger).await;
    let got = renew(&app, &foreign, &text, &sig).await;
    refused(got, CERT.0, CERT.1, "a host certificate of another CA");

    // Our certificate of another host, with a proof of this host's key.
    let other_host = enroll_ok(&app, &new_key(), &["web2.example.com"]).await;
    let theirs = other_host["certificate"].as_str().unwrap();
    let got = renew(&app, theirs, &text, &sig).await;
    assert!(
        got.0.is_client_error()
            && ["host_proof_failed", "host_certificate_refused"].contains(&code(&got.1)),
        "another host's certificate: {}",
        got.1
    );

    // Expired: the certificate lives 1h.
    let key = new_key();
    let view = enroll_ok(&app, &key, &["web3.example.com"]).await;
    clock.advance(Duration::from_secs(3601));
    let (text, sig) = proof(&app, &key).await;
    let got = renew(&app, view["certificate"].as_str().unwrap(), &text, &sig).await;
    refused(got, CERT.0, CERT.1, "an expired certificate");
    assert_eq!(
        listed(&app, "?all=true").await.len(),
        3,
        "no refused renewal made a certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_or_one_proof_sent_many_times_at_once_makes_one_certificate() {
    let app = spawn_hosts(&manual_clock()).await;
    let token = token_for(&app, &["web1.example.com"]).await;
    let keys: Vec<String> = (0..6).map(|_| public_line(&new_key())).collect();
    let bodies = keys
        .iter()
        .map(|k| json!({ "token": token, "public_key": k }));
    let answers = at_once(&app, "/v1/hosts/enroll", bodies.collect()).await;
    let made: Vec<_> = answers
        .iter()
        .filter(|a| a.0 == StatusCode::CREATED)
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED || code(body) == "host_token_invalid",
            "{status}: {body}"
        );
    }

    let key = new_key();
    let view = enroll_ok(&app, &key, &["web2.example.com"]).await;
    let cert = view["certificate"].as_str().unwrap();
    let (text, sig) = proof(&app, &key).await;
    let body = json!({ "certificate": cert, "challenge": text, "signature": sig });
    let answers = at_once(&app, "/v1/hosts/renew", vec![body; 6]).await;
    let made: Vec<_> = answers
        .iter()
        .filter(|a| a.0 == StatusCode::CREATED)
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED || code(body) == "host_proof_failed",
            "{status}: {body}"
        );
    }
    assert_eq!(listed(&app, "?all=true").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_allowed_principals_stops_enrollment_and_renewal_outside_them() {
    let app = spawn_hosts(&manual_clock()).await;
    let key = new_key();
    let view = enroll_ok(&app, &key, &["web1.example.com"]).await;
    let token = token_for(&app, &["web2.example.com"]).await;
    let narrow = host_policy().replace(
        r#"allowed_principals = ["*.example.com", "127.0.0.1", "localhost", "10.0.0.0/8"]"#,
        r#"allowed_principals = ["127.0.0.1"]"#,
    );
    assert_ne!(narrow, host_policy());
    let app = app.restart_with(&narrow).await;
    let got = enroll(&app, &token, &public_line(&new_key())).await;
    refused(
        got,
        StatusCode::FORBIDDEN,
        "principal_not_allowed",
        "enroll",
    );
    let (text, sig) = proof(&app, &key).await;
    let got = renew(&app, view["certificate"].as_str().unwrap(), &text, &sig).await;
    refused(got, StatusCode::FORBIDDEN, "principal_not_allowed", "renew");
    assert_eq!(listed(&app, "?all=true").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_sshd_host_key_enrolls_and_renews_with_ssh_keygen_signatures() {
    let app = spawn_hosts(&manual_clock()).await;
    for (kind, bits) in [("ecdsa", "256"), ("rsa", "3072"), ("ed25519", "256")] {
        let key_file = app.dir.path().join(format!("ssh_host_{kind}_key"));
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-t", kind, "-b", bits, "-f"])
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let public = std::fs::read_to_string(key_file.with_extension("pub")).unwrap();
        let token = token_for(&app, &["web1.example.com"]).await;
        let (status, first) = enroll(&app, &token, public.trim()).await;
        assert_eq!(status, StatusCode::CREATED, "{kind}: {first}");
        let text = challenge(&app, public.trim()).await;
        let sig = ssh_keygen_sign(&key_file, "countersign-host-renew", &text);
        let (status, second) =
            renew(&app, first["certificate"].as_str().unwrap(), &text, &sig).await;
        assert_eq!(status, StatusCode::CREATED, "{kind}: {second}");
        assert_eq!(parsed(&second).cert_type(), CertType::Host, "{kind}");
    }
}
