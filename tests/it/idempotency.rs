//! `Idempotency-Key` on `POST /v1/requests`: a client retrying through a load balancer
//! after a timeout or a dead replica creates one request, not two.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A create body for `user` with a fresh key.
fn body(user: &str) -> Value {
    json!({
        "role": "prod-db",
        "public_key": public_line(&new_key()),
        "reason": format!("INC-4211: replica lag, {user}"),
        "ttl": "30m",
    })
}

/// `POST /v1/requests` with `Idempotency-Key: key`: status, whether it says it replayed,
/// and the body.
async fn create_keyed(
    app: &TestApp,
    user: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, bool, Value) {
    post_keyed(
        app.http.clone(),
        app.url.clone(),
        app.token(user).to_owned(),
        key,
        body,
    )
    .await
}

async fn post_keyed(
    http: reqwest::Client,
    url: String,
    token: String,
    key: &str,
    body: &Value,
) -> (StatusCode, bool, Value) {
    let resp = http
        .post(format!("{url}/v1/requests"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("POST");
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let status = resp.status();
    (status, replayed, resp.json().await.expect("JSON"))
}

/// The `request.created` events of request `id`.
async fn created_events(app: &TestApp, id: &str) -> usize {
    app.audit(&format!("request={id}"))
        .await
        .iter()
        .filter(|e| e["action"] == "request.created")
        .count()
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_same_request_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let asked = body("alice");
    let (status, replayed, first) = create_keyed(&app, "alice", "k-1", &asked).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    let (status, replayed, again) = create_keyed(&app, "alice", "k-1", &asked).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again["id"], id.as_str());
    assert_eq!(created_events(&app, &id).await, 1);
    let (_, list) = app.get("alice", "/v1/requests").await;
    assert_eq!(list["requests"].as_array().unwrap().len(), 1, "{list}");

    // The answer is the request as it is now: approved since, it shows issued.
    app.approve("bob", &id).await;
    let (_, _, later) = create_keyed(&app, "alice", "k-1", &asked).await;
    assert_eq!(
        (later["id"].as_str(), later["status"].as_str()),
        (Some(id.as_str()), Some("issued"))
    );

    // Without a key, the same body is a new request.
    let (status, plain) = app.post("alice", "/v1/requests", asked).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(plain["id"], id.as_str());
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let asked = body("alice");
    let (_, _, first) = create_keyed(&app, "alice", "k-2", &asked).await;
    let mut other = asked.clone();
    other["reason"] = json!("INC-9999: something else");
    let (status, _, refused) = create_keyed(&app, "alice", "k-2", &other).await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch"),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains(first["id"].as_str().unwrap()), "{message}");
    let (_, list) = app.get("alice", "/v1/requests").await;
    assert_eq!(list["requests"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn keys_are_per_user() {
    let app = TestApp::spawn().await;
    let (_, _, alices) = create_keyed(&app, "alice", "shared", &body("alice")).await;
    let (status, replayed, franks) = create_keyed(&app, "frank", "shared", &body("frank")).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{franks}");
    assert_ne!(alices["id"], franks["id"]);
    assert_eq!(franks["requester"], "frank");
}

#[tokio::test]
async fn a_key_is_remembered_for_a_day_and_across_restarts() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let asked = body("alice");
    let (_, _, first) = create_keyed(&app, "alice", "k-3", &asked).await;
    let id = first["id"].as_str().unwrap().to_owned();

    // Past its pending_ttl (1h) it is expired, and a retry still gets it, as it is.
    clock.advance(Duration::from_secs(23 * 3600));
    let app = app.restart().await;
    let (_, replayed, again) = create_keyed(&app, "alice", "k-3", &asked).await;
    assert!(replayed, "{again}");
    assert_eq!(
        (again["id"].as_str(), again["status"].as_str()),
        (Some(id.as_str()), Some("expired"))
    );

    // The last second of its day, it is remembered still.
    clock.advance(Duration::from_secs(3600 - 1));
    let (_, replayed, again) = create_keyed(&app, "alice", "k-3", &asked).await;
    assert!(replayed, "{again}");
    assert_eq!(again["id"], id.as_str());
    // A day after it was made, the key is forgotten: the same key makes a new request.
    clock.advance(Duration::from_secs(2));
    let (status, replayed, fresh) = create_keyed(&app, "alice", "k-3", &asked).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{fresh}");
    assert_ne!(fresh["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_racing_with_one_key_create_one_request() {
    let app = TestApp::spawn().await;
    let asked = body("alice");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, token) = (
                app.http.clone(),
                app.url.clone(),
                app.token("alice").to_owned(),
            );
            let asked = asked.clone();
            tokio::spawn(async move { post_keyed(http, url, token, "k-race", &asked).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, _, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    let id = ids.into_iter().next().unwrap();
    assert_eq!(created_events(&app, &id).await, 1);
}

#[tokio::test]
async fn a_malformed_key_is_refused_before_anything_is_created() {
    let app = TestApp::spawn().await;
    for key in ["has space", &"k".repeat(256)] {
        let (status, _, answer) = create_keyed(&app, "alice", key, &body("alice")).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{answer}"
        );
    }
    let resp = app
        .http
        .post(format!("{}/v1/requests", app.url))
        .bearer_auth(app.token("alice"))
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&body("alice"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, list) = app.get("alice", "/v1/requests").await;
    assert_eq!(list["requests"].as_array().unwrap().len(), 0, "{list}");
}

/// The role changed since the first attempt (a reload lowered its `max_ttl` under the ttl
/// asked for): the request the first attempt made still stands, and a retry gets it
/// rather than a refusal that would lead the client to ask again.
#[tokio::test]
async fn a_retry_after_the_policy_changed_still_gets_the_request_made() {
    let app = TestApp::spawn().await;
    let mut asked = body("alice");
    asked["ttl"] = json!("2h");
    let (_, _, first) = create_keyed(&app, "alice", "k-4", &asked).await;
    let id = first["id"].as_str().unwrap().to_owned();
    let tighter = POLICY.replace("max_ttl = \"2h\"", "max_ttl = \"1h\"");
    assert_ne!(tighter, POLICY);
    let config = app.config_of(&tighter);
    app.service.reload(config, "operator").expect("reload");
    let (status, replayed, again) = create_keyed(&app, "alice", "k-4", &asked).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again["id"], id.as_str());
    // A new key is judged by the policy now in force.
    let (status, _, fresh) = create_keyed(&app, "alice", "k-5", &asked).await;
    assert_eq!(
        (status, code(&fresh)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}
