//! Break-glass through the API (issue 20): a use issues at once with its own key ID and a
//! cut lifetime; who may, with what reason, how often, and what `[[conflicts]]` still
//! forbid; the audit trail and the metrics. Reviews are in `breakglass_review.rs`, the
//! SSH front door, the CLI and a real sshd in `breakglass_sshd.rs`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// `[roles.prod-db.break_glass]` as the tests run it: alice and frank (group dev) and
/// carol may break the glass for 1h at most with an incident id; carol and erin
/// (group security) review, two verdicts needed.
pub const TABLE: &str = r#"
[roles.prod-db.break_glass]
invokers = ["group:dev", "user:carol"]
max_ttl = "1h"
reason_pattern = "^INC-[0-9]+"
reviewers = ["group:security"]
reviews = 2
review_within = "24h"

[roles.deploy-audit.break_glass]
invokers = ["group:dev"]
reviewers = ["group:security"]
"#;

/// [`POLICY`] with [`TABLE`].
pub fn breakglass_policy() -> String {
    format!("{POLICY}{TABLE}")
}

/// `POST /v1/breakglass` as `user` for a new key.
pub async fn break_glass(
    app: &TestApp,
    user: &str,
    role: &str,
    reason: &str,
    ttl: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({
        "role": role, "public_key": public_line(&new_key()), "reason": reason,
    });
    if let Some(t) = ttl {
        body["ttl"] = json!(t);
    }
    app.post(user, "/v1/breakglass", body).await
}

/// A use by `user` of prod-db that must succeed: its request.
pub async fn break_ok(app: &TestApp, user: &str) -> Value {
    let (status, body) = break_glass(app, user, "prod-db", "INC-4211 db down", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The audit events of `action`.
pub async fn events_of(app: &TestApp, action: &str) -> Vec<Value> {
    app.audit("")
        .await
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaking_the_glass_issues_at_once_cut_to_max_ttl_with_a_breakglass_key_id() {
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    let (status, body) =
        break_glass(&app, "alice", "prod-db", "INC-4211 db down", Some("3h")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "pending_review", "{body}");
    assert_eq!(body["ttl_seconds"], 3600, "3h asked, cut to max_ttl 1h");
    let bg = &body["breakglass"];
    assert_eq!(
        (&bg["ttl_cut"], &bg["ttl_asked_seconds"]),
        (&json!(true), &json!(3 * 3600))
    );
    assert_eq!(bg["reviews_required"], 2);
    assert_eq!(bg["reviewers"], json!(["group:security"]));
    assert_eq!(bg["verdicts"], json!([]));
    assert_eq!(body["approvals"], json!([]));
    assert_eq!(body["decided_by"], "alice");
    let key_id = format!("countersign:breakglass:{id}:alice");
    assert_eq!(body["certificate"]["key_id"], key_id.as_str());
    // The certificate itself: the key ID, the role's principals, an hour.
    let (status, line) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::OK, "{line}");
    let cert = ssh_key::Certificate::from_openssh(line.trim()).unwrap();
    assert_eq!(cert.key_id(), key_id);
    assert_eq!(cert.valid_principals(), ["postgres", "alice"]);
    let life = cert.valid_before() - cert.valid_after();
    assert!((3600..=3600 + 600).contains(&life), "lifetime {life}s");
    // Within max_ttl nothing is cut; the role's default_ttl (30m) without a ttl.
    let (_, body) = break_glass(&app, "carol", "prod-db", "INC-7 x", Some("20m")).await;
    assert_eq!(body["ttl_seconds"], 1200, "{body}");
    assert_eq!(body["breakglass"]["ttl_cut"], false);
    let (_, body) = break_glass(&app, "frank", "prod-db", "INC-8 y", None).await;
    assert_eq!(body["ttl_seconds"], 1800, "{body}");
    assert_eq!(body["breakglass"]["ttl_asked_seconds"], Value::Null);

    // The trail: breakglass.used by the invoker, then certificate.issued saying so.
    let used = events_of(&app, "breakglass.used").await;
    let first = used
        .iter()
        .find(|e| e["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(first["actor"], "alice");
    assert_eq!(first["detail"]["reason"], "INC-4211 db down");
    assert_eq!(first["detail"]["cut"], true);
    let issued = events_of(&app, "certificate.issued").await;
    let issued = issued
        .iter()
        .find(|e| e["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(issued["detail"]["breakglass"], true);
    assert_eq!(issued["detail"]["approvals"], json!([]));
    assert!(issued["seq"].as_i64() > first["seq"].as_i64());
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_invokers_of_a_breakable_role_with_a_matching_reason_break_the_glass() {
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    let cases = [
        ("alice", "deploy", "INC-1 x", "not_breakable"),
        ("dave", "prod-db", "INC-1 x", "not_an_invoker"),
        ("erin", "prod-db", "INC-1 x", "not_an_invoker"),
        (
            "alice",
            "prod-db",
            "db down, no incident",
            "reason_mismatch",
        ),
        ("alice", "prod-db", "see INC-1", "reason_mismatch"),
    ];
    for (user, role, reason, expected) in cases {
        let (status, body) = break_glass(&app, user, role, reason, None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, expected),
            "{user} {role} {reason:?}: {body}"
        );
    }
    // Who may, said before the emergency: whoami.
    let (_, me) = app.get("alice", "/v1/whoami").await;
    assert_eq!(
        me["can_break_glass"],
        json!(["deploy-audit", "prod-db"]),
        "{me}"
    );
    let (_, me) = app.get("erin", "/v1/whoami").await;
    assert_eq!(me["can_review"], json!(["deploy-audit", "prod-db"]), "{me}");
    assert_eq!(me["can_break_glass"], json!([]), "{me}");
    let (status, body) = break_glass(&app, "alice", "no-such-role", "INC-1", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Each refusal is in the audit log; nothing was issued.
    let refused = events_of(&app, "attempt.refused").await;
    let codes: Vec<&str> = refused
        .iter()
        .filter(|e| e["detail"]["attempt"] == "breakglass.use")
        .map(|e| e["detail"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), cases.len(), "{refused:?}");
    assert!(events_of(&app, "certificate.issued").await.is_empty());
    assert!(events_of(&app, "breakglass.used").await.is_empty());
    // A service account never breaks the glass, even when its group is listed.
    let policy = breakglass_policy().replace(
        "[users.mallory]",
        "[users.mallory]\n[users.robot]\ngroups = [\"dev\"]\nbot = true",
    );
    let app = TestApp::spawn_with(&policy).await;
    let (status, body) = break_glass(&app, "robot", "prod-db", "INC-1 x", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_use_waits_for_the_first_review_unless_another_admin_allows_one_more() {
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    let first = break_ok(&app, "alice").await;
    let (status, body) = break_glass(&app, "alice", "prod-db", "INC-5 again", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "unreviewed_breakglass"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(first["id"].as_str().unwrap()), "{message}");
    // Others are not held back by alice's use.
    break_ok(&app, "frank").await;
    // Only an admin allows, never for themselves, only for a user whose use waits (never
    // a standing pass); the allowance is audited.
    let allow = |who: &'static str| json!({ "user": who });
    let (status, body) = app.post("bob", "/v1/breakglass/allow", allow("dave")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "nothing_to_allow"),
        "{body}"
    );
    let (status, body) = app
        .post("carol", "/v1/breakglass/allow", allow("alice"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app.post("bob", "/v1/breakglass/allow", allow("bob")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .post("bob", "/v1/breakglass/allow", allow("nobody"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .post("bob", "/v1/breakglass/allow", allow("alice"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unreviewed"], first["id"]);
    let allowed = events_of(&app, "breakglass.allowed").await;
    assert_eq!(allowed.len(), 1);
    assert_eq!(
        (&allowed[0]["actor"], &allowed[0]["detail"]["user"]),
        (&json!("bob"), &json!("alice"))
    );
    // One more, once: the second use spends it and says whose it was.
    let second = break_ok(&app, "alice").await;
    assert_eq!(second["breakglass"]["allowed_by"], "bob");
    let (status, body) = break_glass(&app, "alice", "prod-db", "INC-6 third", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "unreviewed_breakglass")
    );
    // An allowance unspent when the last waiting use is reviewed is forgotten: frank's.
    let frank = app.get("bob", "/v1/requests?status=pending_review").await.1;
    let frank_use = frank["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["requester"] == "frank")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .post("bob", "/v1/breakglass/allow", allow("frank"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for reviewer in ["carol", "erin"] {
        let verdict = json!({ "verdict": "justified", "comment": "ok" });
        let path = format!("/v1/requests/{frank_use}/review");
        let (status, body) = app.post(reviewer, &path, verdict).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let used = break_ok(&app, "frank").await;
    assert!(used["breakglass"]["allowed_by"].is_null(), "{used}");
    let (status, body) = break_glass(&app, "frank", "prod-db", "INC-7 again", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "unreviewed_breakglass"),
        "the forgotten allowance is no standing pass: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_among_the_reviewers_neither_sees_nor_reviews_a_use() {
    let policy = breakglass_policy().replace(
        "[users.mallory]",
        "[users.mallory]\n[users.robot]\ngroups = [\"security\"]\nbot = true",
    );
    let app = TestApp::spawn_with(&policy).await;
    let used = break_ok(&app, "alice").await;
    let id = used["id"].as_str().unwrap();
    let (status, body) = app.request("robot", id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, body) = app.get("robot", "/v1/requests?status=pending_review").await;
    assert!(listed_ids(&body).is_empty(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_still_hold_for_break_glass() {
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    // alice holds deploy (approved by dave); deploy conflicts with deploy-audit.
    let id = app.create_ok("alice", "deploy").await;
    let (status, body) = app.approve("dave", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = break_glass(&app, "alice", "deploy-audit", "INC-9 audit", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
    // frank holds nothing: the same use goes through, and then frank cannot ask for
    // deploy (the conflict holds from the other side too).
    let (status, body) = break_glass(&app, "frank", "deploy-audit", "INC-9 audit", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.create("frank", "deploy", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_is_counted_and_its_open_reviews_are_gauges() {
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    let metrics = || app.metrics();
    let text = metrics().await;
    assert!(
        text.contains("countersign_breakglass_total{role=\"prod-db\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("countersign_breakglass_unreviewed 0"),
        "{text}"
    );
    break_ok(&app, "alice").await;
    break_ok(&app, "frank").await;
    let text = metrics().await;
    assert!(
        text.contains("countersign_breakglass_total{role=\"prod-db\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("countersign_breakglass_unreviewed 2"),
        "{text}"
    );
    assert!(text.contains("countersign_breakglass_overdue 0"), "{text}");
}
