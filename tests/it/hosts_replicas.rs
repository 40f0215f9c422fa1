//! Host certificates on replicas of one PostgreSQL database: a replica gets the host CA
//! key like the user CA key; a challenge one replica made is answered on another; a host
//! revocation on one is in the host KRL of every one at once; one audit chain.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::hosts_helper::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_host_ca_its_challenges_and_its_krl() {
    let first = TestApp::spawn_on_backend(&host_policy(), Backend::Postgres).await;
    let key = new_key();
    let view = enroll_ok(&first, &key, &["db1.example.com"]).await;
    let second = TestApp::spawn_replica_of(&first, &host_policy()).await;
    assert_eq!(
        served_key(&first, "/v1/host_ca.pub").await.key_data(),
        served_key(&second, "/v1/host_ca.pub").await.key_data()
    );
    // Asked on the first, answered on the second: the challenge is stateless.
    let (text, sig) = proof(&first, &key).await;
    let (status, renewed) =
        renew(&second, view["certificate"].as_str().unwrap(), &text, &sig).await;
    assert_eq!(status, StatusCode::CREATED, "{renewed}");
    // ... and once only, on either.
    let (status, body) = renew(&first, view["certificate"].as_str().unwrap(), &text, &sig).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let serial = renewed["serial"].as_str().unwrap();
    let path = format!("/v1/hosts/certificates/{serial}/revoke");
    let (status, body) = second
        .post("bob", &path, json!({ "reason": "retired" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (a_status, a_version, a_bytes) = anon_get(&first, "/v1/krl/host").await;
    let (b_status, b_version, b_bytes) = anon_get(&second, "/v1/krl/host").await;
    assert_eq!((a_status, b_status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(a_version, b_version, "one KRL version for the deployment");
    assert_eq!(a_bytes, b_bytes, "the same host KRL from every replica");
    for app in [&first, &second] {
        let (status, body) = app.get("bob", "/v1/audit/verify").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_the_host_ca_key_refuses_to_start() {
    let first = TestApp::spawn_on_backend(&host_policy(), Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
    std::fs::set_permissions(&data, mode).unwrap();
    let ca_key = first.service.config().ca.key_file.clone();
    std::fs::copy(&ca_key, data.join("ca_key")).unwrap();
    write_config(dir.path(), &host_policy(), first.pg.as_ref());
    let config = countersign::config::Config::load(&dir.path().join("countersign.toml")).unwrap();
    let access = countersign::state::Access::Serve {
        accept_rollback: None,
        new_replica: true,
    };
    let err = countersign::service::Service::open(config, access, "operator:test")
        .expect_err("no second, unknown host CA")
        .to_string();
    assert!(err.contains("host_ca_key"), "{err}");
    assert!(
        !data.join("host_ca_key").exists(),
        "no host CA key was made"
    );
}
