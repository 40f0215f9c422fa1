//! The provider's groups in decisions: people the TOML does not list request and
//! approve through `[[oidc.group_map]]`; a group the provider drops, or a session that
//! ends, stops counting.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{approve_with, provider, sign_in_as, spawn, whoami};
use crate::helpers::{TestApp, code, new_key, public_line};
use crate::idp::Account;

/// `[oidc]` lines mapping `okta-dev` to dev (the shared config maps `okta-dba` to dba).
const DEV_MAP: &str = "[[oidc.group_map]]\nclaim = \"okta-dev\"\ngroups = [\"dev\"]\n";

async fn call(app: &TestApp, token: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", app.url);
    let r = match body {
        Some(b) => http.post(url).bearer_auth(token).json(&b),
        None => http.get(url).bearer_auth(token),
    }
    .send()
    .await
    .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn ask(app: &TestApp, token: &str, role: &str) -> (StatusCode, Value) {
    super::ask_with(app, token, role, &public_line(&new_key())).await
}

#[tokio::test]
async fn people_only_the_provider_knows_request_and_approve_through_mapped_groups() {
    let (idp, state) = provider();
    idp.set_state(
        &state
            .account("zoe", Account::new("zoe", &["okta-dev"]))
            .account("yuri", Account::new("yuri", &["okta-dba", "okta-dev"]))
            .account("xena", Account::new("xena", &["okta-unmapped"])),
    );
    let (app, _s) = spawn(&idp, DEV_MAP).await;
    let zoe = sign_in_as(&app, "zoe").await;
    let (status, me) = whoami(&app, &zoe).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["groups"], json!(["dev"]));
    assert!(
        me["can_request"]
            .as_array()
            .unwrap()
            .contains(&json!("prod-db"))
    );
    // An unmapped group gives nothing: xena exists but may request nothing.
    let xena = sign_in_as(&app, "xena").await;
    let (_, me) = whoami(&app, &xena).await;
    assert_eq!(me["groups"], json!([]));
    assert_eq!(me["can_request"], json!([]));
    let (status, body) = ask(&app, &xena, "prod-db").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_a_requester")
    );
    // zoe asks, yuri (dba by the provider only) approves: the certificate is signed.
    let (status, body) = ask(&app, &zoe, "prod-db").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let yuri = sign_in_as(&app, "yuri").await;
    // yuri sees the request to decide (a role he approves for, by the provider's group).
    let (status, _) = call(&app, &yuri, &format!("/v1/requests/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = approve_with(&app, &yuri, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued", "{body}");
    let issued: Vec<Value> = app
        .audit(&format!("request={id}"))
        .await
        .into_iter()
        .filter(|e| e["action"] == "certificate.issued")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0]["detail"]["principals"],
        json!(["postgres", "zoe"])
    );
    assert_eq!(issued[0]["detail"]["approvals"][0]["approver"], "yuri");
    // zoe's provider groups give her dev only: ops (for dba) is not hers to ask for.
    let (_, body) = ask(&app, &zoe, "ops").await;
    assert_eq!(code(&body), "not_a_requester", "ops is for dba");
}

#[tokio::test]
async fn a_group_removed_at_the_provider_stops_counting_at_the_next_sign_in() {
    let (idp, state) = provider();
    let with_dba = state.account("yuri", Account::new("yuri", &["okta-dba"]));
    idp.set_state(&with_dba);
    let (app, _s) = spawn(&idp, "").await;
    let first = app.create_ok("alice", "prod-db").await;
    let second = app.create_ok("frank", "prod-db").await;
    let yuri = sign_in_as(&app, "yuri").await;
    let (status, body) = approve_with(&app, &yuri, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The provider takes dba away; yuri signs in again (say, on another laptop).
    idp.set_state(&with_dba.account("yuri", Account::new("yuri", &[])));
    let again = sign_in_as(&app, "yuri").await;
    // Neither session approves now: the latest sign-in says what yuri is.
    for token in [&again, &yuri] {
        let (status, body) = approve_with(&app, token, &second).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "yuri may not even see it now: {body}"
        );
    }
    let (_, me) = whoami(&app, &yuri).await;
    assert_eq!(me["groups"], json!([]));
    assert_eq!(me["can_approve"], json!([]));
}

#[tokio::test]
async fn provider_groups_add_to_toml_groups_only_while_a_session_lives() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    // alice is dev in the TOML; the provider puts her in okta-dba (dba).
    let session = sign_in_as(&app, "alice").await;
    let (_, me) = app.get("alice", "/v1/whoami").await;
    assert_eq!(
        me["groups"],
        json!(["dba", "dev"]),
        "her API token sees them too"
    );
    let id = app.create_ok("frank", "prod-db").await;
    let (status, body) = app.approve("alice", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    // She signs out: her only session ends, and with it what the provider said.
    let (status, _) = call(&app, &session, "/v1/oidc/logout", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, me) = app.get("alice", "/v1/whoami").await;
    assert_eq!(me["groups"], json!(["dev"]));
    let id = app.create_ok("frank", "prod-db").await;
    let (status, body) = app.approve("alice", &id).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn a_provider_name_that_is_another_principal_gets_no_certificate() {
    let (idp, state) = provider();
    // prod-db gives "{user}": a person the provider calls ops would get the login of role
    // ops (its fixed principal) through prod-db, without ops's approvers.
    idp.set_state(&state.account("pg", {
        let mut a = Account::new("pg", &["okta-dev"]);
        a.preferred_username = "ops".into();
        a
    }));
    let (app, _s) = spawn(&idp, DEV_MAP).await;
    let session = sign_in_as(&app, "pg").await;
    let (status, body) = ask(&app, &session, "prod-db").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "principal_taken"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("a fixed principal of role ops"),
        "{message}"
    );
    // The attempt is on the record; no request was made.
    let refused = app.audit("").await;
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["code"] == "principal_taken")
    );
    assert_eq!(app.count("SELECT count(*) FROM requests"), 0);
}

#[tokio::test]
async fn a_configured_name_with_only_provider_groups_gets_no_other_roles_principal() {
    // `[users.ops]` reserves the name for one person (oidc_subject) with no TOML group:
    // the loader saw ops request nothing. Through the provider's dev, ops asks for
    // prod-db, whose "{user}" would give ops the fixed principal of role ops.
    let (idp, state) = provider();
    idp.set_state(&state.account("pg", Account::new("ops", &["okta-dev"])));
    let extra = format!("{DEV_MAP}[users.ops]\noidc_subject = \"sub-ops\"\n");
    let (app, _s) = spawn(&idp, &extra).await;
    let session = sign_in_as(&app, "pg").await;
    let (status, me) = whoami(&app, &session).await;
    assert_eq!(
        (status, &me["user"]),
        (StatusCode::OK, &json!("ops")),
        "{me}"
    );
    let (status, body) = ask(&app, &session, "prod-db").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "principal_taken"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM requests"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_groups_apply_to_ssh_keys_at_the_front_door_while_a_session_lives() {
    use crate::front_door_helper::{FrontDoor, KeyRing, policy};
    let (idp, state) = super::provider();
    // dave is sre in the TOML (no approver of shell); the provider puts him in okta-dba.
    idp.set_state(&state.account("dave", Account::new("dave", &["okta-dba"])));
    let keys = KeyRing::new();
    let secrets = tempfile::tempdir().unwrap();
    // The front door's policy with the shared [oidc] section.
    let oidc = super::config(&idp, secrets.path(), "");
    let oidc = &oidc[oidc.find("[oidc]").unwrap()..];
    let app = TestApp::spawn_with(&format!("{}\n{oidc}", policy(&keys, "", "1h"))).await;
    let door = FrontDoor::start(&app).await;
    let ask = async || {
        let (status, body) = app
            .create_with_key("alice", "shell", None, keys.public("alice"))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    };
    let session = sign_in_as(&app, "dave").await;
    let first = ask().await;
    let out = door
        .ssh(keys.path("dave"), "ca", &["approve", &first])
        .await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("issued"), "{out:?}");
    // dave signs out: his key is back to what the TOML says.
    let (status, _) = call(&app, &session, "/v1/oidc/logout", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let second = ask().await;
    let out = door
        .ssh(keys.path("dave"), "ca", &["approve", &second])
        .await;
    assert_ne!(out.status, 0, "{out:?}");
    assert!(out.stderr.contains("not_found"), "{out:?}");
}
