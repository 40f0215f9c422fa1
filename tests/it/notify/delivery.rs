//! What sinks are sent, signed and formatted, and that delivering never slows deciding.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{Receiver, of_type, policy_with};
use crate::helpers::{TestApp, code};

const ALL: &str = r#"["request.created", "request.decided", "certificate.revoked", "notify.dead"]"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_told_to_a_webhook_signed_from_creation_to_revocation() {
    let mut hook = Receiver::new(true);
    hook.start();
    let app = TestApp::spawn_with(&policy_with(&hook.sink("hook", ALL, ""))).await;
    let id = app.create_ok("alice", "prod-db").await;
    let events = hook
        .wait_for(10, |e| of_type(e, "request.created").len() == 1)
        .await;
    let created = of_type(&events, "request.created")[0];
    let r = &created["data"]["request"];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(
        (&r["requester"], &r["role"]),
        (&json!("alice"), &json!("prod-db"))
    );
    assert_eq!(r["status"], "pending");
    assert_eq!(
        (&r["approvals_required"], &r["approvals_needed"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(created["version"], 1);
    assert_eq!(created["_headers"]["webhook-id"], created["id"]);
    let (_, body) = app.approve("bob", &id).await;
    let serial = body["certificate"]["serial"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial}/revoke"),
            json!({ "reason": "laptop lost" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Deliveries run side by side (docs/operations.md): the revocation may arrive first.
    let events = hook
        .wait_for(10, |e| {
            of_type(e, "certificate.revoked").len() == 1
                && !of_type(e, "request.decided").is_empty()
        })
        .await;
    let decided = of_type(&events, "request.decided");
    assert_eq!(decided.len(), 1, "{events:?}");
    let issued = &decided[0]["data"]["request"];
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["serial"], serial.as_str());
    assert_eq!(issued["approvals"][0]["approver"], "bob");
    let revoked = &of_type(&events, "certificate.revoked")[0]["data"]["request"];
    assert_eq!(revoked["revoked"]["reason"], "laptop lost");
    // Every event its own id; never a key, a token or the URL.
    let ids: std::collections::BTreeSet<String> =
        events.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), events.len());
    for record in hook.records() {
        let body = record["body"].as_str().unwrap();
        assert!(
            !body.contains("ssh-ed25519") && !body.contains("cs_"),
            "{body}"
        );
        assert!(!body.contains("/hook"), "{body}");
    }
    // A denial and a cancellation are decisions too.
    let denied = app.create_ok("alice", "prod-db").await;
    app.deny("carol", &denied, "not now").await;
    let cancelled = app.create_ok("frank", "prod-db").await;
    app.cancel("frank", &cancelled).await;
    let events = hook
        .wait_for(10, |e| of_type(e, "request.decided").len() == 3)
        .await;
    // Deliveries run side by side: they may arrive in any order.
    let statuses: std::collections::BTreeSet<_> = of_type(&events, "request.decided")
        .iter()
        .map(|e| e["data"]["request"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["cancelled", "denied", "issued"].map(str::to_owned).into()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_for_some_roles_hears_only_of_them() {
    let mut hook = Receiver::new(true);
    hook.start();
    let sink = hook.sink("ops-only", ALL, "roles = [\"ops\"]");
    let app = TestApp::spawn_with(&policy_with(&sink)).await;
    app.create_ok("alice", "prod-db").await;
    let ops = app.create_ok("bob", "ops").await;
    let events = hook.wait_for(10, |e| !e.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = if hook.events().len() > events.len() {
        hook.events()
    } else {
        events
    };
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["request"]["id"], ops.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_sink_gets_a_message_whose_user_text_cannot_mention_or_link() {
    let mut slack = Receiver::new(false);
    slack.start();
    let app = TestApp::spawn_with(&policy_with(&slack.sink("chat", ALL, ""))).await;
    let key = crate::helpers::public_line(&crate::helpers::new_key());
    let reason = "<!channel> urgent, see <https://evil.example|the runbook> *now*";
    let (status, body) = app
        .post(
            "alice",
            "/v1/requests",
            json!({ "role": "prod-db", "public_key": key, "reason": reason }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let records = slack.wait_for(10, |e| !e.is_empty()).await;
    let message = &records[0];
    let text = message.to_string();
    assert!(
        message["text"].as_str().unwrap().contains("alice"),
        "{text}"
    );
    assert!(message["blocks"].is_array(), "{text}");
    assert!(
        !text.contains("<!channel>") && !text.contains("<https://"),
        "{text}"
    );
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(text.contains("postgres"), "the principals: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receivers_library_refuses_a_tampered_body_and_an_old_timestamp() {
    let mut hook = Receiver::new(true);
    hook.start();
    let app = TestApp::spawn_with(&policy_with(&hook.sink("hook", ALL, ""))).await;
    app.create_ok("alice", "prod-db").await;
    let genuine = hook.wait_for(10, |e| !e.is_empty()).await.remove(0);
    let headers = &genuine["_headers"];
    let body = hook.records()[0]["body"].as_str().unwrap().to_owned();
    let post = |body: String, timestamp: String, signature: String| {
        let url = format!("http://127.0.0.1:{}/hook", hook.port);
        let id = headers["webhook-id"].as_str().unwrap().to_owned();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp)
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let (ts, sig) = (
        headers["webhook-timestamp"].as_str().unwrap().to_owned(),
        headers["webhook-signature"].as_str().unwrap().to_owned(),
    );
    // The genuine delivery again is accepted (the library checks, it does not dedupe).
    assert_eq!(
        post(body.clone(), ts.clone(), sig.clone()).await,
        StatusCode::NO_CONTENT
    );
    let tampered = body.replace("alice", "mallory");
    assert_eq!(post(tampered, ts, sig).await, StatusCode::BAD_REQUEST);
    // Correctly signed, but ten minutes old: refused as a replay.
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        hook.secret.trim_start_matches("whsec_"),
    )
    .unwrap();
    let old = chrono::Utc::now().timestamp() - 600;
    let id = headers["webhook-id"].as_str().unwrap();
    let resigned = countersign::notify::sign(&key, id, old, &body);
    assert_eq!(
        post(body, old.to_string(), resigned).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_is_tried_again_no_sooner_than_its_retry_after() {
    let mut hook = Receiver::new(true);
    hook.set_mode("429 8");
    hook.start();
    let app = TestApp::spawn_with(&policy_with(&hook.sink("hook", ALL, ""))).await;
    app.create_ok("alice", "prod-db").await;
    let events = hook.wait_for(30, |e| e.len() == 2).await;
    assert_eq!(
        events[0]["id"], events[1]["id"],
        "the same event, tried again"
    );
    let waited = events[1]["_at"].as_f64().unwrap() - events[0]["_at"].as_f64().unwrap();
    // Without Retry-After the first retry comes after 2.5 to 5 s.
    assert!(waited >= 8.0, "tried again after {waited:.1} s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_hangs_does_not_slow_approvals() {
    let mut hook = Receiver::new(true);
    hook.set_mode("hang");
    hook.start();
    let app = TestApp::spawn_with(&policy_with(&hook.sink("hook", ALL, ""))).await;
    // A first delivery is in flight, hanging, before the approvals start.
    app.create_ok("frank", "prod-db").await;
    hook.wait_for_records(10).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let id = app.create_ok("alice", "prod-db").await;
        let started = Instant::now();
        let (status, body) = app.approve("bob", &id).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(code(&body), "<no error code>");
    }
    println!("slowest approval while the receiver hangs: {slowest:?}");
    // A delivery holding an approval would take its whole 5 s timeout.
    assert!(slowest < Duration::from_secs(4), "{slowest:?}");
}
