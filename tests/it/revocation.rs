//! Revocation over the API: by an admin, by offboarding, by the requester (`done`), and
//! the conflict that lasts for the revocation grace. The KRL is in `revocation_krl.rs`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Creates and approves a request; returns (id, serial, certificate text).
pub async fn issued(
    app: &TestApp,
    user: &str,
    role: &str,
    ttl: Option<&str>,
) -> (String, String, String) {
    let (status, body) = app.create(user, role, ttl).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let approver = if role == "deploy" { "dave" } else { "bob" };
    let (_, body) = app.approve(approver, &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let (_, cert) = app.certificate(user, &id).await;
    (
        id,
        body["certificate"]["serial"].as_str().unwrap().to_owned(),
        cert,
    )
}

pub async fn revoke_serial(
    app: &TestApp,
    admin: &str,
    serial: &str,
) -> (StatusCode, serde_json::Value) {
    app.post(
        admin,
        &format!("/v1/certificates/{serial}/revoke"),
        json!({ "reason": "laptop stolen" }),
    )
    .await
}

#[tokio::test]
async fn admin_revokes_by_serial_and_the_request_shows_who_and_why() {
    let app = TestApp::spawn().await;
    let (id, serial, _) = issued(&app, "alice", "prod-db", None).await;
    let (status, body) = revoke_serial(&app, "carol", &serial).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "approvers are not admins"
    );
    let (status, body) = revoke_serial(&app, "bob", &serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], json!([serial]));
    let (_, req) = app.request("alice", &id).await;
    assert_eq!(req["certificate"]["revoked"]["by"], "bob");
    assert_eq!(req["certificate"]["revoked"]["reason"], "laptop stolen");
    let (status, body) = revoke_serial(&app, "bob", &serial).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_revoked")
    );
    let (status, _) = revoke_serial(&app, "bob", "12345").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["0", "abc", "-1", "18446744073709551616"] {
        let (status, body) = revoke_serial(&app, "bob", bad).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}"
        );
    }
    let story: Vec<String> = app
        .audit(&format!("serial={serial}"))
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(story.last().unwrap(), "certificate.revoked");
    let revoked = app.audit(&format!("serial={serial}")).await.pop().unwrap();
    assert_eq!(revoked["actor"], "bob");
    assert_eq!(revoked["detail"]["reason"], "laptop stolen");
}

#[tokio::test]
async fn offboarding_ends_every_live_certificate_and_pending_request_of_that_user_only() {
    // No backdate: the 1s certificate below is past any server's acceptance once expired.
    let clock = manual_clock();
    let policy = format!("{POLICY}\n[ca]\nbackdate = \"0s\"\n");
    let app = TestApp::spawn_with_clock(&policy, &clock).await;
    // An overdue one ended by itself: the expiry sweep records it, not the offboarding.
    // Made an hour (its pending_ttl) and a second before the rest.
    let overdue = app.create_ok("alice", "prod-db").await;
    clock.advance(std::time::Duration::from_secs(3601));
    let (_, short, _) = issued(&app, "alice", "prod-db", Some("1s")).await;
    let (_, a1, _) = issued(&app, "alice", "prod-db", None).await;
    let (_, a2, _) = issued(&app, "alice", "prod-db", Some("1h")).await;
    let (_, f1, _) = issued(&app, "frank", "prod-db", None).await;
    let pending = app.create_ok("alice", "prod-db").await;
    let franks_pending = app.create_ok("frank", "prod-db").await;
    clock.advance(std::time::Duration::from_secs(2));

    let (status, body) = app
        .post(
            "bob",
            "/v1/users/alice/revoke",
            json!({ "reason": "left the company" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut got: Vec<String> = body["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(
        got, want,
        "both active certificates, not the expired one ({short})"
    );
    let revoked_of = |serial: &str| {
        app.count(&format!(
            "SELECT count(*) FROM certificates WHERE serial = {serial} AND revoked_at IS NOT NULL"
        ))
    };
    assert_eq!(
        revoked_of(&f1),
        0,
        "another user's certificate is untouched"
    );
    assert_eq!(
        revoked_of(&short),
        0,
        "an expired certificate needs no revocation"
    );
    // A request made for the lost laptop's key must not be approved later.
    assert_eq!(
        body["cancelled"],
        json!([pending.as_str()]),
        "not the overdue one"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM requests WHERE id = '{overdue}' AND status = 'cancelled'"
        )),
        0
    );
    // alice is disabled now (offboarding.rs): an admin reads it.
    let (_, view) = app.request("bob", &pending).await;
    assert_eq!(view["status"], "cancelled", "{view}");
    assert_eq!(view["decided_by"], "bob");
    assert_eq!(view["decision_note"], "left the company");
    let (status, body) = app.approve("carol", &pending).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_decided")
    );
    assert_eq!(
        app.request("frank", &franks_pending).await.1["status"],
        "pending",
        "another user's request is untouched"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM audit WHERE action = 'request.cancelled' AND actor = 'bob' \
             AND request_id = '{pending}'"
        )),
        1
    );
    let (_, body) = app
        .post(
            "bob",
            "/v1/users/alice/revoke",
            json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(body["revoked"], json!([]));
    assert_eq!(body["cancelled"], json!([]));
    let (status, _) = app
        .post("carol", "/v1/users/frank/revoke", json!({ "reason": "x" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn requester_ends_own_certificate_and_the_conflict_goes_after_the_revocation_grace() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let (id, serial, _) = issued(&app, "alice", "deploy", None).await;
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict")
    );
    let (status, body) = app
        .post("mallory", &format!("/v1/requests/{id}/done"), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "mallory cannot even see it: {body}"
    );
    let (status, body) = app
        .post("bob", &format!("/v1/requests/{id}/done"), json!({}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "admins revoke, they do not 'done'"
    );
    let (status, body) = app
        .post("dave", &format!("/v1/requests/{id}/done"), json!({}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let resp = app
        .http
        .post(format!("{}/v1/requests/{id}/done", app.url))
        .bearer_auth(app.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["certificate"]["revoked"]["by"], "alice");
    assert_eq!(body["certificate"]["serial"], serial.as_str());
    // Servers accept it until their next KRL fetch: it still counts as held for the
    // revocation grace (2m by default). The clock moves on until the revocation is 119 s
    // old, then 121 s.
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
    clock.advance(std::time::Duration::from_secs(119));
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
    clock.advance(std::time::Duration::from_secs(2));
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "past the grace, a revoked certificate is no longer held: {body}"
    );
    let pending = body["id"].as_str().unwrap();
    let (status, body) = app
        .post("alice", &format!("/v1/requests/{pending}/done"), json!({}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "not_issued"));
}

/// After `done` (or a revocation) the conflicting role stays refused for
/// `revocation_grace`; the `sod_conflict` message says so and when it lifts (RFC 3339),
/// so the requester knows it is not a mistake and how long to wait.
#[tokio::test]
async fn sod_conflict_after_done_names_revocation_grace_and_when_it_lifts() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let (id, _, _) = issued(&app, "alice", "deploy", None).await;
    let (_, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(code(&body), "sod_conflict");
    let live = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(!live.contains("revocation_grace"), "{live}");

    let (status, _) = app
        .post("alice", &format!("/v1/requests/{id}/done"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Revoked 100 s ago with the default grace of 2m: it lifts 20 s from now.
    let revoked_at = clock.now().timestamp();
    clock.advance(std::time::Duration::from_secs(100));
    let lifts = chrono::DateTime::from_timestamp(revoked_at + 120, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("revocation_grace"), "{message}");
    assert!(
        message.contains(&format!("lifts at {lifts}")),
        "{message} lacks {lifts}"
    );
    // The audit row of the refused attempt carries the same message.
    let events = app.audit("").await;
    let refused = events
        .iter()
        .rfind(|e| e["action"] == "attempt.refused")
        .unwrap();
    assert!(
        refused["detail"]["message"]
            .as_str()
            .unwrap()
            .contains(&lifts),
        "{refused}"
    );
}

/// Offboarding leaves a request that is already overdue to the expiry sweep. Should the
/// CA's clock then be set back before the sweep records it (so that it reads as pending
/// again), an approval must still not sign for the disabled requester: the check at
/// signing ends it as `refused` (`not_a_requester`), on the record.
#[tokio::test]
async fn a_disabled_requesters_request_is_never_signed_even_by_a_clock_set_back() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let id = app.create_ok("alice", "prod-db").await;
    let made = clock.now();
    clock.advance(std::time::Duration::from_secs(3601)); // past pending_ttl (1h)
    let (status, body) = app
        .post("bob", "/v1/users/alice/revoke", json!({ "reason": "left" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancelled"], json!([]), "overdue: left to the sweep");
    clock.set(made);
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_a_requester"),
        "{body}"
    );
    let (_, view) = app.request("bob", &id).await;
    assert_eq!(view["status"], "refused", "{view}");
    assert!(view["certificate"].is_null(), "{view}");
    let refused = app
        .audit(&format!("request={id}"))
        .await
        .iter()
        .filter(|e| e["action"] == "request.refused")
        .count();
    assert_eq!(refused, 1);
}
