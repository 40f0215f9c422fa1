//! The whole flow over HTTP: request -> someone else approves -> certificate. Lists are
//! in `api_flow_lists.rs`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn request_approved_by_someone_else_yields_a_certificate_ssh_keygen_reads() {
    let app = TestApp::spawn().await;
    let key = new_key();
    let (status, created) = app
        .create_with_key("alice", "prod-db", Some("45m"), &public_line(&key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["requester"], "alice");
    assert_eq!(created["principals"], json!(["postgres", "alice"]));
    assert_eq!(created["ttl_seconds"], 2700);
    assert_eq!(created["approvals_needed"], 1);
    assert_eq!(created["waiting_for"][0]["approvers"], json!(["group:dba"]));
    assert!(
        created["public_key_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    let id = created["id"].as_str().unwrap();

    let before = chrono::Utc::now().timestamp_millis();
    let (status, approved) = app.approve("bob", id).await;
    let after = chrono::Utc::now().timestamp_millis();
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "issued");
    assert_eq!(approved["approvals"][0]["approver"], "bob");
    assert_eq!(approved["approvals"][0]["comment"], "ok from bob");
    let serial = approved["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    // The serial starts with the millisecond of signing (then 21 random bits), so
    // serials sort by issue time.
    let signed_at = serial.parse::<i64>().unwrap() >> 21;
    assert!(
        (before..=after).contains(&signed_at),
        "{serial}: {before}..{after}"
    );

    let (status, cert) = app.certificate("alice", id).await;
    assert_eq!(status, StatusCode::OK);
    let listed = ssh_keygen_list(app.dir.path(), &cert);
    assert!(listed.contains("user certificate"), "{listed}");
    assert!(listed.contains(&format!("Serial: {serial}")), "{listed}");
    assert!(
        listed.contains(&format!("Key ID: \"countersign:{id}:alice:prod-db\"")),
        "{listed}"
    );
    let principals: Vec<&str> = listed
        .split("Principals:")
        .nth(1)
        .unwrap()
        .split("Critical Options:")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(principals, ["postgres", "alice"]);
    assert!(listed.contains("permit-pty"), "{listed}");
    assert!(!listed.contains("permit-port-forwarding"), "{listed}");

    // The certificate is for the very key that was submitted, signed by the served CA key.
    let parsed = ssh_key::Certificate::from_openssh(cert.trim()).unwrap();
    assert_eq!(parsed.public_key(), key.public_key().key_data());
    let ca_pub = reqwest::get(format!("{}/v1/ca.pub", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ca_key = ssh_key::PublicKey::from_openssh(ca_pub.trim()).unwrap();
    parsed
        .validate([&ca_key.fingerprint(Default::default())])
        .unwrap();
    let window = parsed.valid_before() - parsed.valid_after();
    assert_eq!(window, 2700 + 60, "ttl 45m plus the default 1m backdate");

    // And the serial alone tells the whole story, in order.
    let events = app.audit(&format!("serial={serial}")).await;
    let story: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        story,
        ["request.created", "request.approved", "certificate.issued"]
    );
    assert!(events.iter().all(|e| e["request_id"] == id));
    let issued = &events[2];
    assert_eq!(issued["serial"], serial.as_str());
    assert_eq!(issued["detail"]["requester"], "alice");
    assert_eq!(issued["detail"]["approvals"][0]["approver"], "bob");
    assert_eq!(events[0]["detail"]["reason"], "INC-4211: prod-db for alice");
    assert_eq!(events[1]["detail"]["comment"], "ok from bob");
}

/// Create and approve answer with the request as they wrote it, built without reading it
/// back: the answer must be exactly what a read of the request shows afterwards.
#[tokio::test]
async fn each_change_answers_with_the_request_exactly_as_stored() {
    let app = TestApp::spawn().await;
    let read_back = |id: String| {
        let app = &app;
        async move {
            let (status, body) = app.request("alice", &id).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let (status, created) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created, read_back(id.clone()).await);

    // First of two steps, with no comment: still pending, one step left.
    let (status, first) = app
        .post("bob", &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["approvals"][0]["comment"], serde_json::Value::Null);
    assert_eq!(first, read_back(id.clone()).await);

    // The second step issues the certificate.
    let (status, issued) = app.approve("erin", &id).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["approvals"].as_array().map(Vec::len), Some(2));
    assert!(issued["certificate"]["serial"].is_string(), "{issued}");
    assert_eq!(issued, read_back(id.clone()).await);

    // A one-step role issues on its only approval.
    let id = app.create_ok("frank", "prod-db").await;
    let (status, issued) = app.approve("carol", &id).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["status"], "issued");
    let (_, stored) = app.request("frank", &id).await;
    assert_eq!(issued, stored);
}

#[tokio::test]
async fn critical_options_and_extensions_come_from_the_role_only() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "deploy-audit").await;
    assert_eq!(app.approve("carol", &id).await.1["status"], "pending");
    let (status, body) = app.approve("erin", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    let (_, cert) = app.certificate("alice", &id).await;
    let listed = ssh_keygen_list(app.dir.path(), &cert);
    assert!(listed.contains("force-command /usr/bin/true"), "{listed}");
    assert!(
        listed.contains("source-address 127.0.0.0/8,::1/128"),
        "{listed}"
    );
    assert!(listed.contains("permit-pty"), "{listed}");
}

#[tokio::test]
async fn health_and_ca_key_need_no_token_everything_else_does() {
    let app = TestApp::spawn().await;
    let health = reqwest::get(format!("{}/v1/health", app.url))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ca = reqwest::get(format!("{}/v1/ca.pub", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ca.starts_with("ssh-ed25519 "), "{ca}");
    assert_eq!(ca.trim(), app.service.ca().public_key_line());
    for path in [
        "/v1/whoami",
        "/v1/requests",
        "/v1/audit",
        "/v1/audit/verify",
    ] {
        let resp = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "unauthenticated");
    }
    let resp = app
        .http
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth("cs_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whoami_tells_roles_the_caller_may_request_and_approve() {
    let app = TestApp::spawn().await;
    let (status, me) = app.get("carol", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"], "carol");
    assert_eq!(me["admin"], false);
    assert_eq!(me["can_request"], json!(["deploy-audit", "ops"]));
    assert_eq!(
        me["can_approve"],
        json!(["deploy-audit", "ops", "prod-db", "two-person"])
    );
}

#[tokio::test]
async fn deny_and_cancel_end_requests_for_good() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.deny("carol", &id, "not during the freeze").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "denied");
    assert_eq!(body["decided_by"], "carol");
    assert_eq!(body["decision_note"], "not during the freeze");
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_decided")
    );

    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.cancel("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "only the requester cancels"
    );
    let (status, body) = app.cancel("alice", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_decided")
    );
    let (status, body) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
}

#[tokio::test]
async fn only_the_requester_fetches_the_certificate() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, _) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "not issued yet");
    app.approve("bob", &id).await;
    let (status, body) = app.certificate("bob", &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, cert) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
}

#[tokio::test]
async fn state_and_audit_survive_a_restart() {
    let app = TestApp::spawn().await;
    let pending = app.create_ok("alice", "prod-db").await;
    let issued = app.create_ok("frank", "prod-db").await;
    app.approve("bob", &issued).await;
    let before = app.audit("").await;

    let app = app.restart().await;
    assert_eq!(app.request("alice", &pending).await.1["status"], "pending");
    let (_, body) = app.request("frank", &issued).await;
    assert_eq!(body["status"], "issued");
    assert_eq!(
        app.audit("").await,
        before,
        "every event survives, unchanged"
    );
    let (status, body) = app.approve("carol", &pending).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    let (status, v) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["events"], before.len() as i64 + 2);
}

/// `waiting_for` names who may still approve: a `user:` member who already approved is
/// not awaited (nor is the requester), groups stay, and each open step lists the
/// approvals counted toward it in `approved_by`.
#[tokio::test]
async fn waiting_for_leaves_out_named_approvers_who_already_approved() {
    let app = TestApp::spawn_with(&POLICY.replace(
        "[[conflicts]]",
        r#"[roles.named]
principals = ["named"]
requesters = ["group:dev"]
approvers = ["user:carol", "user:bob", "user:alice", "group:sre"]
approvals = 2

[[conflicts]]"#,
    ))
    .await;
    let id = app.create_ok("alice", "named").await;
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(
        body["waiting_for"],
        json!([{"approvers": ["user:carol", "user:bob", "group:sre"], "approvals": 2,
                "remaining": 2, "approved_by": []}]),
        "the requester is never awaited: {body}"
    );
    let (status, body) = app.approve("carol", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["waiting_for"],
        json!([{"approvers": ["user:bob", "group:sre"], "approvals": 2,
                "remaining": 1, "approved_by": ["carol"]}]),
        "{body}"
    );
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(
        body["waiting_for"][0]["approvers"],
        json!(["user:bob", "group:sre"])
    );
    let (_, body) = app.approve("dave", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    assert_eq!(body["waiting_for"], json!([]));
}
