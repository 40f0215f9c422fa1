//! What admins and operators do about sign-ins, through the real binary: `session list`
//! and `session revoke ID`, `identity list`, and `check-config`'s warning about admins
//! nobody reserved; and the one-time code's sixty seconds.

use super::*;

/// The binary as admin bob (his API token) against `app`.
fn as_bob(app: &TestApp, home: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = cli(home, args);
    cmd.env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", app.token("bob"));
    cmd
}

#[tokio::test]
async fn an_admin_lists_sessions_without_their_tokens_and_revokes_one_by_id() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let session = sign_in_as(&app, "alice").await;
    let home = tempfile::tempdir().unwrap();
    let out = run_cli(as_bob(
        &app,
        home.path(),
        &["session", "list", "--user", "alice"],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.contains("alice") && table.contains("oidc"), "{table}");
    assert!(
        !table.contains(&session) && !table.contains("css_"),
        "{table}"
    );
    let out = run_cli(as_bob(&app, home.path(), &["session", "list", "--json"])).await;
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let out = run_cli(as_bob(&app, home.path(), &["session", "revoke", &id])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let (status, _) = whoami(&app, &session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let revoked: Vec<Value> = app
        .audit("")
        .await
        .into_iter()
        .filter(|e| e["action"] == "session.revoked")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["actor"], "bob");
    assert_eq!(revoked[0]["detail"]["session"], id.as_str());
    // A non-admin may not list them.
    let mut cmd = cli(home.path(), &["session", "list"]);
    cmd.env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", app.token("alice"));
    let out = run_cli(cmd).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
}

#[tokio::test]
async fn identity_list_shows_who_is_bound_and_check_config_warns_of_unreserved_admins() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    sign_in_as(&app, "alice").await;
    let home = tempfile::tempdir().unwrap();
    let config = app.config_path();
    let config = config.to_str().unwrap();
    let out = run_cli(cli(home.path(), &["--config", config, "identity", "list"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.contains("alice") && table.contains(&idp.issuer),
        "{table}"
    );
    let out = run_cli(cli(home.path(), &["--config", config, "check-config"])).await;
    let warned = String::from_utf8_lossy(&out.stderr).into_owned();
    // bob is an admin in the policy, with no oidc_subject reserving his name.
    assert!(
        warned.contains("users.bob: an admin without oidc_subject"),
        "{warned}"
    );
}

#[tokio::test]
async fn the_one_time_code_for_the_cli_is_good_for_sixty_seconds() {
    let (idp, _) = provider();
    let clock = manual_clock();
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with_clock(&config(&idp, secrets.path(), ""), &clock).await;
    let mut codes = Vec::new();
    for _ in 0..2 {
        let http = browser();
        let (verifier, challenge) = pkce();
        let authorize = start(&app, &http, &challenge).await;
        let back = sign_in(&http, &authorize, "alice", "any", CALLBACK).await;
        let code = cli_code(callback(&app, &http, &back).await).await;
        codes.push((code, verifier));
    }
    // The first is traded just in time; the second a second too late.
    clock.advance(std::time::Duration::from_secs(59));
    let (status, body) = trade(&app, &codes[0].0, &codes[0].1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    clock.advance(std::time::Duration::from_secs(2));
    let (status, body) = trade(&app, &codes[1].0, &codes[1].1).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "signin_failed"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 1);
}
