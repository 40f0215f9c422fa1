//! Every separation-of-duties refusal over the real API: right status and code, nothing
//! issued, and the attempt recorded in the audit log. Refusals of what is requested (TTL,
//! key, too many pending) are in `api_refusals_requests.rs`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// The last `attempt.refused` event, asserting its actor and code.
async fn assert_refusal_audited(app: &TestApp, actor: &str, code: &str) {
    let events = app.audit("").await;
    let last = events
        .iter()
        .rev()
        .find(|e| e["action"] == "attempt.refused")
        .expect("a refusal event");
    assert_eq!(last["actor"], actor, "{last}");
    assert_eq!(last["detail"]["code"], code, "{last}");
}

#[tokio::test]
async fn requester_outside_the_role_is_refused_not_a_requester() {
    let app = TestApp::spawn().await;
    let (status, body) = app.create("dave", "prod-db", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_a_requester"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM requests"), 0);
    assert_refusal_audited(&app, "dave", "not_a_requester").await;
}

#[tokio::test]
async fn requester_cannot_approve_own_request() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.approve("alice", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "self_approval"),
        "{body}"
    );
    assert_eq!(app.request("alice", &id).await.1["status"], "pending");
    assert_refusal_audited(&app, "alice", "self_approval").await;
}

#[tokio::test]
async fn admin_who_is_an_approver_still_cannot_approve_own_request() {
    let app = TestApp::spawn().await;
    // bob is admin and in group dba, which both requests and approves "ops".
    let id = app.create_ok("bob", "ops").await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "self_approval"),
        "{body}"
    );
    let (status, body) = app.deny("bob", &id, "no").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
    let (status, body) = app.approve("carol", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
}

#[tokio::test]
async fn strangers_approving_or_denying_get_not_found_and_leave_no_trace() {
    let app = TestApp::spawn().await;
    let events = || app.count("SELECT count(*) FROM audit");
    // Who may not even read the request (not its requester, approver or an admin) hears
    // there is none, as GET says, before and after it is decided, and leaves no trace.
    let id = app.create_ok("alice", "prod-db").await;
    let mut before = events();
    for round in ["pending", "decided"] {
        for user in ["dave", "frank", "mallory"] {
            for (status, body) in [
                app.approve(user, &id).await,
                app.deny(user, &id, "drive-by").await,
            ] {
                assert_eq!(
                    (status, code(&body)),
                    (StatusCode::NOT_FOUND, "not_found"),
                    "{round}, {user}: {body}"
                );
            }
            assert_eq!(app.request(user, &id).await.0, StatusCode::NOT_FOUND);
        }
        assert_eq!(events(), before, "{round}: nothing recorded");
        if round == "pending" {
            assert_eq!(app.request("alice", &id).await.1["status"], "pending");
            app.approve("bob", &id).await;
            assert_eq!(app.request("alice", &id).await.1["status"], "issued");
            before = events();
        }
    }
}

/// An admin may read every request, but approves or denies only where the role names
/// them: `not_an_approver`, audited, before anything about the request's state.
#[tokio::test]
async fn an_admin_outside_the_role_is_refused_not_an_approver_even_once_decided() {
    let app = TestApp::spawn().await;
    let deploy = app.create_ok("frank", "deploy").await;
    for (status, body) in [
        app.approve("bob", &deploy).await,
        app.deny("bob", &deploy, "not mine to judge").await,
    ] {
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "not_an_approver"),
            "{body}"
        );
    }
    assert_eq!(app.request("frank", &deploy).await.1["status"], "pending");
    assert_refusal_audited(&app, "bob", "not_an_approver").await;
    // Decided, it is still "not yours to approve" for them, not its state.
    app.approve("dave", &deploy).await;
    let (status, body) = app.approve("bob", &deploy).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_an_approver"),
        "{body}"
    );
}

#[tokio::test]
async fn two_approvals_need_two_distinct_people() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "two-person").await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "pending");
    assert_eq!(body["approvals_needed"], 1);
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_approved"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
    let (status, body) = app.approve("dave", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    assert_refusal_audited(&app, "bob", "already_approved").await;
}

#[tokio::test]
async fn every_approval_step_must_be_met_by_different_people() {
    let app = TestApp::spawn().await;
    // carol is in both dba and security; alone she meets one step only.
    let id = app.create_ok("alice", "deploy-audit").await;
    let (_, body) = app.approve("carol", &id).await;
    assert_eq!(body["status"], "pending");
    assert_eq!(body["approvals_needed"], 1);
    let (status, body) = app.approve("carol", &id).await;
    assert_eq!(code(&body), "already_approved", "{status}");
    // bob (dba) completes it: carol's approval moves to the security step.
    let (_, body) = app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let events = app.audit(&format!("request={id}")).await;
    let issued = events
        .iter()
        .find(|e| e["action"] == "certificate.issued")
        .unwrap();
    let counted = issued["detail"]["approvals"].as_array().unwrap();
    assert_eq!(counted.len(), 2);
}

#[tokio::test]
async fn conflicting_roles_are_refused_while_a_conflicting_request_is_open() {
    let app = TestApp::spawn().await;
    let deploy = app.create_ok("alice", "deploy").await;
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rewrite the deploy audit trail")
    );
    assert_refusal_audited(&app, "alice", "sod_conflict").await;
    // Someone else may hold the other role.
    let (status, _) = app.create("frank", "deploy-audit", None).await;
    assert_eq!(status, StatusCode::CREATED);
    // Once alice's request ends, the conflict is gone.
    app.cancel("alice", &deploy).await;
    let (status, body) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn conflicts_are_symmetric_and_count_active_certificates() {
    let app = TestApp::spawn().await;
    let audit_role = app.create_ok("alice", "deploy-audit").await;
    app.approve("bob", &audit_role).await;
    let (_, body) = app.approve("erin", &audit_role).await;
    assert_eq!(body["status"], "issued");
    let (status, body) = app.create("alice", "deploy", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
}

#[tokio::test]
async fn conflict_is_checked_again_at_signing_and_refuses_the_request() {
    // Two conflicting requests can only both be open if the conflict was declared after
    // they were made: restart with a policy that adds it.
    let policy_without_conflict = POLICY.split("[[conflicts]]").next().unwrap().to_owned();
    let app = TestApp::spawn_with(&policy_without_conflict).await;
    let deploy = app.create_ok("alice", "deploy").await;
    let audit_role = app.create_ok("alice", "deploy-audit").await;
    app.write_config(POLICY).unwrap();
    let app = app.restart().await;
    let (status, body) = app.approve("dave", &deploy).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "sod_conflict"),
        "{body}"
    );
    let (_, body) = app.request("alice", &deploy).await;
    assert_eq!(body["status"], "refused");
    assert_eq!(body["decision_code"], "sod_conflict");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
    // The refused one no longer blocks the other.
    app.approve("bob", &audit_role).await;
    let (_, body) = app.approve("erin", &audit_role).await;
    assert_eq!(body["status"], "issued", "{body}");
    let actions: Vec<String> = app
        .audit(&format!("request={deploy}"))
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        ["request.created", "request.approved", "request.refused"]
    );
}

/// The views say so first: a pending request of the changed role shows no approvals
/// still to come, and an issued one keeps the approvals its role needed when asked.
#[tokio::test]
async fn role_changed_after_the_request_refuses_it_policy_changed() {
    let app = TestApp::spawn().await;
    let issued = app.create_ok("alice", "prod-db").await;
    assert_eq!(app.approve("bob", &issued).await.0, StatusCode::OK);
    let id = app.create_ok("alice", "prod-db").await;
    let (_, before) = app.request("alice", &id).await;
    assert_eq!(
        (&before["role_changed"], &before["approvals_needed"]),
        (&json!(false), &json!(1)),
        "{before}"
    );
    app.write_config(POLICY.replace(r#"max_ttl = "2h""#, r#"max_ttl = "8h""#))
        .unwrap();
    let app = app.restart().await;
    let (_, pending) = app.request("alice", &id).await;
    let (_, done) = app.request("alice", &issued).await;
    for (view, needed) in [(&pending, 0), (&done, 0)] {
        assert_eq!(view["role_changed"], true, "{view}");
        assert_eq!(view["approvals_required"], 1, "as when asked: {view}");
        assert_eq!(view["approvals_needed"], needed, "{view}");
        assert_eq!(view["waiting_for"], json!([]), "{view}");
    }
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "policy_changed"),
        "{body}"
    );
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(body["status"], "refused");
    let (status, body) = app.approve("carol", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_decided")
    );
    // Only the one issued before the change.
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 1);
}

/// A role removed from the config: its requests can be ended only by someone who may
/// still see them (the requester, an admin), not by any token holder.
#[tokio::test]
async fn a_removed_roles_requests_are_not_strangers_business() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "two-person").await;
    let start = POLICY.find("[roles.two-person]").unwrap();
    let end = POLICY.find("[roles.deploy]").unwrap();
    app.write_config(format!("{}{}", &POLICY[..start], &POLICY[end..]))
        .unwrap();
    let app = app.restart().await;
    let (status, body) = app.approve("erin", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    assert_eq!(app.request("alice", &id).await.1["status"], "pending");
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "policy_changed"),
        "{body}"
    );
    assert_eq!(app.request("alice", &id).await.1["status"], "refused");
}

#[tokio::test]
async fn removed_user_can_no_longer_do_anything() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("frank", "prod-db").await;
    app.write_config(POLICY.replace("[users.frank]\ngroups = [\"dev\"]\n", ""))
        .unwrap();
    let app = app.restart().await;
    let (status, body) = app.get("frank", "/v1/whoami").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    // Their pending request can no longer be issued either.
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
}

#[tokio::test]
async fn pending_request_expires_and_can_never_be_approved() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let id = app.create_ok("alice", "prod-db").await;
    // Just past the hour of pending_ttl.
    clock.advance(std::time::Duration::from_secs(3601));
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        ["expired", "already_decided"].contains(&code(&body)),
        "{body}"
    );
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(body["status"], "expired");
    let actions: Vec<String> = app
        .audit(&format!("request={id}"))
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions[0], "request.created");
    assert_eq!(
        actions[1], "request.expired",
        "expiry is recorded once, by the CA"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "request.expired").count(),
        1
    );
}
