//! `GET /v1/ready`: readiness for a load balancer (database reachable, the policy in
//! force the newest the database records); `/v1/health` stays liveness.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// `GET /v1/ready` without a token.
async fn ready(app: &TestApp) -> (StatusCode, Value) {
    let resp = app
        .http
        .get(format!("{}/v1/ready", app.url))
        .send()
        .await
        .expect("GET");
    let status = resp.status();
    (status, resp.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_replica_on_the_newest_policy_is_ready_and_one_left_behind_is_not() {
    let app = TestApp::spawn().await;
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready")),
        "{body}"
    );
    assert!(
        body.get("policy").is_none(),
        "no policy digest without a token: {body}"
    );

    // Another replica recorded a newer policy (one more role than this one runs).
    app.sql(
        "UPDATE meta SET policy = \
         json_set(policy, '$.roles.newer', json('{\"principals\":[\"x\"]}'))",
    );
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("countersign reload"), "{message}");
    // Liveness is another question: the process is fine.
    let (status, _) = app.get("alice", "/v1/health").await;
    assert_eq!(status, StatusCode::OK);

    // Reloading records the policy it runs: ready again.
    let config = countersign::config::Config::load(&app.config_path()).expect("config");
    app.service.reload(config, "operator").expect("reload");
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_replica_whose_database_does_not_answer_is_not_ready() {
    let app = TestApp::spawn().await;
    app.sql("ALTER TABLE meta RENAME TO meta_gone;");
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
}

/// A database that records no policy at all (none was ever recorded, or it was wiped)
/// cannot say this server's policy is the newest: not ready, saying so.
#[tokio::test]
async fn a_database_without_a_recorded_policy_is_not_ready() {
    let app = TestApp::spawn().await;
    app.sql("UPDATE meta SET policy = NULL;");
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no policy"),
        "{body}"
    );
}
