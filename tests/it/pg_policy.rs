//! Replicas on one PostgreSQL database decide by one policy: once a replica records a new
//! one (a reload, a start with a changed file), a replica still on the older one refuses
//! every write (503 `not_ready`) until it is reloaded, so nobody gets approved, signed or
//! let in by rules the others no longer apply. Its reads go on.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// [`POLICY`] with bob taken out of the approvers of `prod-db` (group `dba`).
fn without_bob() -> String {
    POLICY.replacen(
        "[users.bob]\ngroups = [\"dba\"]",
        "[users.bob]\ngroups = []",
        1,
    )
}

/// Reloads `app` with `policy` written as its config file.
fn reload(app: &TestApp, policy: &str) {
    let path = app.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen(POLICY, policy, 1)).unwrap();
    let config = countersign::config::Config::load(&path).expect("config");
    app.service.reload(config, "operator").expect("reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_left_on_an_older_policy_refuses_to_write_until_reloaded() {
    assert_ne!(without_bob(), POLICY, "the policy changed");
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let second = TestApp::spawn_replica_of(&first, POLICY).await;
    // The digest every write checks is the one the migration's SQL computes for a
    // database recorded before the column (`policy_digest_pg.sql`).
    let pg = first.pg.as_ref().expect("PostgreSQL");
    let same = pg.psql(
        "SELECT (policy_digest = encode(sha256(convert_to(policy, 'UTF8')), 'hex'))::text \
         FROM meta",
    );
    assert_eq!(same.trim(), "true");
    let id = second.create_ok("alice", "prod-db").await;

    // The first replica takes bob out of the approvers.
    reload(&first, &without_bob());
    let (status, body) = first.approve("bob", &id).await;
    assert!(status.is_client_error(), "{status} {body}");

    // The second, still on the older policy, would let bob approve: it writes nothing.
    let (status, body) = second.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("countersign reload"), "{message}");
    let (status, body) = second.create("frank", "prod-db", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    );
    // The CLI tries again (a balancer may send it to a ready replica), then says that
    // nothing was made: not_ready is a refusal, not an unknown outcome.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id.pub");
    std::fs::write(&key, public_line(&new_key())).unwrap();
    let mut cli = crate::cli::client(&second, "frank");
    cli.args(["request", "prod-db", "--reason", "r", "--key"])
        .arg(&key);
    let out = crate::cli::run(cli).await;
    let said = crate::cli::text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("not_ready") && said.contains("nothing made"),
        "{said}"
    );
    assert!(!said.contains("may have made it"), "{said}");
    let (status, body) = second
        .post("bob", "/v1/users/dave/revoke", json!({ "reason": "left" }))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Reads still answer, and show nothing was decided.
    let (status, body) = second.request("alice", &id).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    let (status, list) = second.get("frank", "/v1/requests").await;
    assert_eq!(status, StatusCode::OK, "{list}");

    // Reloaded with the file the first runs: it writes again, by the new rules.
    reload(&second, &without_bob());
    let (status, body) = second.approve("bob", &id).await;
    assert!(
        status.is_client_error(),
        "bob is no approver now: {status} {body}"
    );
    let (status, body) = second.approve("carol", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued", "{body}");
    let audit = second.audit(&format!("request={id}")).await;
    assert!(
        !audit
            .iter()
            .any(|e| e["action"] == "request.approved" && e["actor"] == "bob"),
        "no approval by bob: {audit:?}"
    );
}

/// `GET /v1/ready`'s status.
async fn ready(app: &TestApp) -> StatusCode {
    let resp = app.http.get(format!("{}/v1/ready", app.url)).send().await;
    resp.expect("GET /v1/ready").status()
}

/// How many `policy.loaded` events the log holds.
async fn policies_recorded(app: &TestApp) -> usize {
    let events = app.audit("").await;
    events
        .iter()
        .filter(|e| e["action"] == "policy.loaded")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_with_an_out_of_date_file_does_not_take_the_policy_back() {
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let second = TestApp::spawn_replica_of(&first, POLICY).await;
    reload(&first, &without_bob());
    let recorded = policies_recorded(&first).await;
    // The second replica's file was never updated, and it restarts with it (a crash, a
    // deploy): its policy was in force before and was replaced since.
    let second = second.restart_with(POLICY).await;
    assert_eq!(
        policies_recorded(&first).await,
        recorded,
        "not recorded again"
    );
    assert_eq!(
        ready(&first).await,
        StatusCode::OK,
        "the newest stays in force"
    );
    assert_eq!(ready(&second).await, StatusCode::SERVICE_UNAVAILABLE);
    let id = first.create_ok("alice", "prod-db").await;
    let (status, body) = second.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );

    // Going back to it on purpose is a reload: recorded, and the first is left behind.
    reload(&second, POLICY);
    assert_eq!(policies_recorded(&first).await, recorded + 1);
    assert_eq!(ready(&second).await, StatusCode::OK);
    assert_eq!(ready(&first).await, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = second.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "bob approves again: {body}");

    // The server that made the newest change may take it back by restarting with the
    // file it had (same host and file: its operator going back, not a stale copy).
    let second = second.restart_with(&without_bob()).await;
    assert_eq!(policies_recorded(&first).await, recorded + 2);
    assert_eq!(ready(&second).await, StatusCode::OK);
    assert_eq!(
        ready(&first).await,
        StatusCode::OK,
        "the first runs that one"
    );
}

/// `[ca] backdate` is part of the recorded policy: a reload applies it as a restart does,
/// so a replica restarted with a new value and one reloaded with it agree (an attacker
/// trial saw them take turns being the only ready one when a reload kept the old value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdate_changed_by_a_restart_here_and_a_reload_there_agrees() {
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let second = TestApp::spawn_replica_of(&first, POLICY).await;
    let later = format!("{POLICY}\n[ca]\nbackdate = \"2m\"\n");
    let first = first.restart_with(&later).await;
    assert_eq!(ready(&first).await, StatusCode::OK);
    assert_eq!(ready(&second).await, StatusCode::SERVICE_UNAVAILABLE);
    reload(&second, &later);
    assert_eq!(second.service.config().ca.backdate.as_secs(), 120);
    assert_eq!(ready(&second).await, StatusCode::OK);
    assert_eq!(ready(&first).await, StatusCode::OK);
}
