//! Sessions for admins: listed (never their tokens) and revoked, over the API and with
//! `countersign session`.

use reqwest::StatusCode;
use serde_json::Value;

use super::*;

#[tokio::test]
async fn admins_list_and_revoke_sessions_and_nobody_else_does() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let first = sign_in_as(&app, "alice").await;
    let second = sign_in_as(&app, "alice").await;
    sign_in_as(&app, "bob").await;
    let (status, body) = app.get("bob", "/v1/sessions?user=alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body["sessions"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{body}");
    for s in &listed {
        assert_eq!(s["user"], "alice");
        assert_eq!(s["via"], "oidc");
        for key in ["id", "created_at", "expires_at"] {
            assert!(s[key].is_string(), "{s}");
        }
    }
    assert!(
        !body.to_string().contains("css_"),
        "a token was listed: {body}"
    );
    let (_, all) = app.get("bob", "/v1/sessions").await;
    assert_eq!(all["sessions"].as_array().unwrap().len(), 3);
    // Not an admin: refused.
    let (status, _) = app.get("alice", "/v1/sessions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An API token is not a session: `logout` cannot end it (an operator revokes it).
    let (status, body) = app
        .post("alice", "/v1/oidc/logout", serde_json::json!({}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // One of alice's two goes (both were made in the same second: either may be listed
    // first); the other stays.
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/sessions/{id}/revoke"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "alice");
    let (a, b) = (whoami(&app, &first).await.0, whoami(&app, &second).await.0);
    let mut answers = [a, b];
    answers.sort();
    assert_eq!(answers, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    let second = if a == StatusCode::OK { first } else { second };
    let (status, _) = app
        .post(
            "bob",
            &format!("/v1/sessions/{id}/revoke"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events = app.audit("").await;
    let revoked: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "session.revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{events:?}");
    assert_eq!(revoked[0]["actor"], "bob");
    assert_eq!(revoked[0]["detail"]["session"], id.as_str());
    // The CLI ends the rest of alice's.
    let home = tempfile::tempdir().unwrap();
    let mut revoke = cli(
        home.path(),
        &["session", "revoke", "--user", "alice", "--url", &app.url],
    );
    revoke.env("COUNTERSIGN_TOKEN", app.token("bob"));
    let out = run_cli(revoke).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(whoami(&app, &second).await.0, StatusCode::UNAUTHORIZED);
    let (_, left) = app.get("bob", "/v1/sessions").await;
    let left: Vec<Value> = left["sessions"].as_array().unwrap().clone();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["user"], "bob");
}

#[tokio::test]
async fn a_reload_that_changes_oidc_says_it_needs_a_restart_and_keeps_the_running_one() {
    let (idp, _) = provider();
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(&config(&idp, secrets.path(), "")).await;
    // Tokens off, by reload: not applied (the provider client is made at start).
    let changed = app.config_of(&config(&idp, secrets.path(), "human_tokens = false"));
    let reloaded = app.service.reload(changed, "operator:test").unwrap();
    assert!(
        reloaded.needs_restart.contains(&"[oidc]"),
        "{:?}",
        reloaded.needs_restart
    );
    let (status, _) = app.get("alice", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK, "the running settings changed");
}

#[tokio::test]
async fn an_operator_unbinds_a_name_whose_person_was_recreated_at_the_provider() {
    let (idp, state) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let old = sign_in_as(&app, "alice").await;
    // The provider re-creates alice's account: same name, new subject.
    let mut again = crate::idp::Account::new("alice", &["okta-dba"]);
    again.sub = "sub-alice-new".into();
    idp.set_state(&state.account("alice", again));
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "alice", "any", CALLBACK).await;
    assert_eq!(
        cli_error(&callback(&app, &http, &back).await).0,
        "identity_conflict"
    );
    // The operator, on the CA host, looks and unbinds.
    let config = app.config_path();
    let listed = run_cli({
        let mut c = crate::cli::countersign(&config);
        c.args(["identity", "list", "--json"]);
        c
    })
    .await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let list: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list["identities"][0]["subject"], "sub-alice", "{list}");
    let out = run_cli({
        let mut c = crate::cli::countersign(&config);
        c.args([
            "identity",
            "unbind",
            "alice",
            "--reason",
            "account re-created, INC-77",
        ]);
        c
    })
    .await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 live session(s) ended"), "{said}");
    // The old session is over; the next sign-in binds the new person.
    assert_eq!(whoami(&app, &old).await.0, StatusCode::UNAUTHORIZED);
    let new = sign_in_as(&app, "alice").await;
    assert_eq!(whoami(&app, &new).await.1["user"], "alice");
    let events = app.audit("").await;
    let unbound: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "identity.unbound")
        .collect();
    assert_eq!(unbound.len(), 1);
    assert_eq!(unbound[0]["detail"]["subject"], "sub-alice");
    assert_eq!(unbound[0]["detail"]["reason"], "account re-created, INC-77");
    assert!(
        unbound[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("operator")
    );
    // A name bound to nobody: said so, nothing recorded.
    let out = run_cli({
        let mut c = crate::cli::countersign(&config);
        c.args(["identity", "unbind", "carol", "--reason", "typo"]);
        c
    })
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not bound"));
}

#[tokio::test]
async fn check_config_shows_what_to_register_and_checks_the_client_secret() {
    let (idp, _) = provider();
    let typo = "[[oidc.group_map]]\nclaim = \"okta-ops\"\ngroups = [\"dbaa\"]\n";
    let (app, secrets) = spawn(&idp, typo).await;
    let check = || {
        let mut c = crate::cli::countersign(&app.config_path());
        c.arg("check-config");
        run_cli(c)
    };
    let out = check().await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "redirect     {CALLBACK} (register it at the provider)"
        )),
        "{said}"
    );
    assert!(said.contains("okta-dba -> dba"), "{said}");
    assert!(said.contains("no offline_access"), "{said}");
    let secret_line = format!(
        "secret       {} (ok)",
        secrets.path().join("oidc-secret").display()
    );
    assert!(said.contains(&secret_line), "{said}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("group dbaa is named by no role"),
        "{warned}"
    );
    // The secret readable by others: refused as `serve` would.
    let secret = secrets.path().join("oidc-secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check().await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("secret       UNUSABLE"));
}

#[tokio::test]
async fn a_name_reserved_for_a_person_cannot_be_claimed_by_another() {
    // bob is an admin in the TOML, reserved for sub-bob; someone whose provider account
    // says preferred_username = bob signs in first.
    let (idp, state) = provider();
    let mut claimer = crate::idp::Account::new("claimer", &[]);
    claimer.preferred_username = "bob".into();
    idp.set_state(&state.account("claimer", claimer));
    let secrets = tempfile::tempdir().unwrap();
    let text = config(&idp, secrets.path(), "").replace(
        "[users.bob]\ngroups = [\"dba\"]\nadmin = true\n",
        "[users.bob]\ngroups = [\"dba\"]\nadmin = true\noidc_subject = \"sub-bob\"\n",
    );
    assert!(text.contains("oidc_subject"), "the test policy changed");
    let app = TestApp::spawn_with(&text).await;
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "claimer", "any", CALLBACK).await;
    let (code, why) = cli_error(&callback(&app, &http, &back).await);
    assert_eq!(code, "identity_conflict", "{why}");
    assert_eq!(app.count("SELECT count(*) FROM identities"), 0);
    // The real bob signs in.
    let session = sign_in_as(&app, "bob").await;
    assert_eq!(whoami(&app, &session).await.1["admin"], true);
}
