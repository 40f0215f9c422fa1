//! Approving is a step-up action: a session whose sign-in at the provider is older
//! than `[oidc] approval_max_auth_age` gets `reauth_required`, and a fresh sign-in
//! (`step_up=1`: `max_age` and `prompt=login` at the provider) approves.

use reqwest::StatusCode;

use super::*;

/// A server whose provider says bob signed in half an hour ago (the default
/// `approval_max_auth_age` allows 15m): the provider, its state, the server, its secrets
/// dir, and bob's session from that sign-in.
async fn old_sign_in() -> (Idp, IdpState, TestApp, tempfile::TempDir, String) {
    let (idp, mut state) = provider();
    state.auth_time_offset = 1800;
    idp.set_state(&state);
    let (app, secrets) = spawn(&idp, "").await;
    let old = sign_in_as(&app, "bob").await;
    (idp, state, app, secrets, old)
}

#[tokio::test]
async fn an_old_sign_in_cannot_approve_until_the_person_signs_in_again() {
    let (idp, mut state, app, _secrets, old) = old_sign_in().await;
    // Requesting and reading are not step-up actions.
    assert_eq!(whoami(&app, &old).await.0, StatusCode::OK);
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = approve_with(&app, &old, &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "reauth_required"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM approvals"), 0);
    // A step-up sign-in asks the provider for a fresh authentication.
    let http = browser();
    let (verifier, challenge) = pkce();
    let r = http
        .get(format!("{}/v1/oidc/login", app.url))
        .query(&[
            ("redirect_uri", CLI_REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("step_up", "1"),
        ])
        .send()
        .await
        .unwrap();
    let authorize = location(&r);
    assert!(authorize.contains("max_age=900"), "{authorize}");
    assert!(authorize.contains("prompt=login"), "{authorize}");
    state.auth_time_offset = 0;
    idp.set_state(&state);
    let back = sign_in(&http, &authorize, "bob", "any", CALLBACK).await;
    let r = callback(&app, &http, &back).await;
    let (status, body) = trade(&app, &cli_code(r).await, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["session"].as_str().unwrap().to_owned();
    let (status, body) = approve_with(&app, &fresh, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    // Hand-made tokens are not sessions: they approve as before (`human_tokens`).
    let id = app.create_ok("alice", "prod-db").await;
    let (status, _) = app.approve("carol", &id).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_cli_signs_in_again_when_approving_needs_it_and_retries_once() {
    let (idp, mut state, app, _secrets, old) = old_sign_in().await;
    let id = app.create_ok("alice", "prod-db").await;
    // bob's CLI holds that old session.
    let home = cli_home(&app, &old);
    // --json: the address to open goes to stderr, stdout stays the JSON answer.
    let (approve, start_url) = start_cli_stderr(cli(
        home.path(),
        &["approve", &id, "--json", "--url", &app.url],
    ))
    .await;
    assert!(start_url.contains("step_up=1"), "{start_url}");
    // bob signs in again at the provider, now.
    state.auth_time_offset = 0;
    idp.set_state(&state);
    sign_in_for_the_cli(&app, &start_url, "bob").await;
    let status = tokio::task::spawn_blocking(move || approve.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(status.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&status.stdout));
    });
    assert_eq!(answer["status"], "issued");
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["status"], "issued");
}

/// With the old session in `COUNTERSIGN_TOKEN`, `approve` does not sign in again (its
/// retry would send the same token): it fails at once, saying what to do, and nothing
/// is approved.
#[tokio::test]
async fn the_cli_does_not_sign_in_again_for_a_session_in_the_environment() {
    let (_idp, _, app, _secrets, old) = old_sign_in().await;
    let id = app.create_ok("alice", "prod-db").await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = cli(home.path(), &["approve", &id, "--url", &app.url]);
    cmd.env("COUNTERSIGN_TOKEN", &old);
    let out = run_cli(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("COUNTERSIGN_TOKEN holds a session"),
        "{stderr}"
    );
    assert!(stderr.contains("reauth_required"), "{stderr}");
    assert!(
        !stderr.contains("step_up=1"),
        "no sign-in was started: {stderr}"
    );
    assert_eq!(app.count("SELECT count(*) FROM approvals"), 0);
}

/// A registered key approves at the SSH front door, so registering one asks for the
/// sign-in approving does: else an old session would approve there without it.
#[tokio::test]
async fn an_old_sign_in_cannot_register_a_key_that_would_approve_at_the_front_door() {
    let (idp, mut state, app, _secrets, old) = old_sign_in().await;
    let (path, line) = crate::keys::key_file(&app, "bob_key");
    let (status, body) = post_as(
        &app,
        &old,
        "/v1/keys/challenge",
        json!({ "public_key": line }),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "reauth_required"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SSH front door"),
        "{body}"
    );
    // A challenge got with bob's hand-made token and signed: the old session still
    // cannot register the key with it, and the challenge stays good.
    let text = crate::keys::challenge_ok(&app, "bob", &line).await;
    let signature = crate::keys::sign(&path, "countersign-key", &text);
    let proof = json!({ "public_key": line, "challenge": text, "signature": signature });
    let (status, body) = post_as(&app, &old, "/v1/keys", proof.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "reauth_required"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM registered_keys"), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM audit WHERE action = 'key.registered'"),
        0
    );
    // Signed in again just now, bob registers it.
    state.auth_time_offset = 0;
    idp.set_state(&state);
    let fresh = sign_in_as(&app, "bob").await;
    let (status, body) = post_as(&app, &fresh, "/v1/keys", proof).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["key"]["user"], "bob");
    assert_eq!(app.count("SELECT count(*) FROM registered_keys"), 1);
}

/// `keys add` with an old session signs in again (step-up) before signing the
/// challenge, and registers the key.
#[tokio::test]
async fn the_cli_signs_in_again_to_register_a_key() {
    let (idp, mut state, app, _secrets, old) = old_sign_in().await;
    let (path, _) = crate::keys::key_file(&app, "bob_key");
    let home = cli_home(&app, &old);
    let public = format!("{}.pub", path.display());
    let (add, start_url) = start_cli_stderr(cli(
        home.path(),
        &["keys", "add", &public, "--url", &app.url],
    ))
    .await;
    assert!(start_url.contains("step_up=1"), "{start_url}");
    state.auth_time_offset = 0;
    idp.set_state(&state);
    sign_in_for_the_cli(&app, &start_url, "bob").await;
    let out = tokio::task::spawn_blocking(move || add.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("registered SHA256:"));
    assert_eq!(
        app.count("SELECT count(*) FROM registered_keys WHERE \"user\" = 'bob'"),
        1
    );
}

/// An admin's acts that give access (enabling an offboarded user, allowing one more
/// break-glass use, making a host join token) ask for the step-up approving does: a
/// phished device-flow session of an admin, or an old one, must not re-enable an
/// approver whose key would then approve at the SSH front door again. Taking access
/// away (revoking) is never held up.
#[tokio::test]
async fn an_admins_acts_that_give_access_need_a_recent_sign_in() {
    let (idp, mut state) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let (status, body) = app
        .post("bob", "/v1/users/carol/revoke", json!({ "reason": "left" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Someone started a device login and got bob, an admin, to confirm it.
    let grant = super::device::device_start(&app).await;
    let url = grant["verification_uri_complete"].as_str().unwrap();
    super::device::confirm_and_sign_in(&app, url, grant["user_code"].as_str().unwrap(), "bob")
        .await;
    let (status, body) = super::device::poll(&app, grant["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let phished = body["session"].as_str().unwrap().to_owned();
    state.auth_time_offset = 1800;
    idp.set_state(&state);
    let old = sign_in_as(&app, "bob").await;
    let acts = [
        ("/v1/users/carol/enable", json!({})),
        ("/v1/breakglass/allow", json!({ "user": "alice" })),
        (
            "/v1/hosts/tokens",
            json!({ "principals": ["db1.example.com"] }),
        ),
    ];
    for (session, hint) in [(&phished, "--loopback"), (&old, "--step-up")] {
        for (path, body) in &acts {
            let (status, answer) = post_as(&app, session, path, body.clone()).await;
            assert_eq!(
                (status, code(&answer)),
                (StatusCode::UNAUTHORIZED, "reauth_required"),
                "{path}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(hint) && message.contains("gives access"),
                "{message}"
            );
        }
    }
    let disabled = || app.count("SELECT count(*) FROM disabled_users WHERE \"user\" = 'carol'");
    assert_eq!(disabled(), 1);
    assert_eq!(app.count("SELECT count(*) FROM breakglass_allowances"), 0);
    assert_eq!(app.count("SELECT count(*) FROM host_tokens"), 0);
    // Signed in just now, bob enables carol; the old session still revokes.
    state.auth_time_offset = 0;
    idp.set_state(&state);
    let fresh = sign_in_as(&app, "bob").await;
    let (status, body) = post_as(&app, &fresh, "/v1/users/carol/enable", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(disabled(), 0);
    let (status, body) = post_as(
        &app,
        &old,
        "/v1/users/carol/revoke",
        json!({ "reason": "x" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(disabled(), 1);
}

/// Breaking the glass issues without any approval, and a verdict may revoke: like
/// approving, both need a recent sign-in (a session of the device flow, or an old one, is
/// refused `reauth_required`).
#[tokio::test]
async fn an_old_sign_in_neither_breaks_the_glass_nor_reviews() {
    let (idp, mut state) = provider();
    state.auth_time_offset = 1800;
    idp.set_state(&state);
    // bob (signed in through the provider) reviews prod-db's uses here.
    let table = "[roles.prod-db.break_glass]\ninvokers = [\"group:dev\"]\n\
                 reviewers = [\"user:bob\"]\n";
    let (app, _s) = spawn(&idp, table).await;
    let old = sign_in_as(&app, "alice").await;
    let key = crate::helpers::public_line(&crate::helpers::new_key());
    let body = json!({ "role": "prod-db", "public_key": key, "reason": "INC-1 down" });
    let (status, body) = post_as(&app, &old, "/v1/breakglass", body).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "reauth_required"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
    // A hand-made token of the same person still breaks the glass (`human_tokens`).
    let (status, body) =
        crate::breakglass::break_glass(&app, "alice", "prod-db", "INC-1", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let bob = sign_in_as(&app, "bob").await;
    let body = json!({ "verdict": "unjustified", "comment": "no incident" });
    let (status, body) = post_as(&app, &bob, &format!("/v1/requests/{id}/review"), body).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "reauth_required"),
        "{body}"
    );
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["breakglass"]["verdicts"], json!([]), "{view}");
}

/// A home for the CLI whose saved session is `session`, for `app`.
fn cli_home(app: &TestApp, session: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/countersign");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("session"), format!("{session}\n")).unwrap();
    std::fs::write(dir.join("session.url"), format!("{}\n", app.url)).unwrap();
    home
}

/// `login` signs in at the provider in a browser as the CLI asked (`start_url`), and the
/// browser hands the sign-in to the CLI's listener.
async fn sign_in_for_the_cli(app: &TestApp, start_url: &str, login: &str) {
    let http = browser();
    let r = http.get(start_url).send().await.unwrap();
    let back = sign_in(&http, &location(&r), login, "any", CALLBACK).await;
    let r = callback(app, &http, &back).await;
    let (_, to_cli) = confirm_page(r).await;
    assert_eq!(
        http.get(&to_cli).send().await.unwrap().status(),
        StatusCode::OK
    );
}

/// POST `body` to `path` with the bearer `token` (a session): status and JSON answer.
pub(super) async fn post_as(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", app.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}
