//! Sign-in: the CLI end to end, and the attacks on the flow (tests split from
//! `oidc_signin.rs`, whose helpers they use).

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn the_cli_logs_in_through_the_browser_and_later_commands_use_the_session() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let home = tempfile::tempdir().unwrap();
    let (login, start_url, _) = start_cli(cli(home.path(), &["login", "--url", &app.url])).await;
    assert!(
        start_url.starts_with(&format!("{}/v1/oidc/login?", app.url)),
        "{start_url}"
    );
    // The browser: countersign, the provider, back to countersign, on to the CLI.
    let http = browser();
    let r = http.get(&start_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = sign_in(&http, &location(&r), "alice", "any", CALLBACK).await;
    let r = callback(&app, &http, &back).await;
    // The page names who signs in and asks first; its link goes on to the CLI.
    let (page, to_cli) = confirm_page(r).await;
    assert!(page.contains("as alice?"), "{page}");
    assert!(to_cli.starts_with("http://127.0.0.1:"), "{to_cli}");
    let page = http.get(&to_cli).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let out = tokio::task::spawn_blocking(move || login.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = home.path().join(".config/countersign/session");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A later command, with no token in the environment, is alice.
    let who = run_cli(cli(home.path(), &["whoami", "--json", "--url", &app.url])).await;
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let me: Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(me["user"], "alice");
    // The session goes only to the server it came from: another URL is refused
    // before anything is sent.
    let out = run_cli(cli(home.path(), &["whoami", "--url", "http://127.0.0.1:9"])).await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("is for {}", app.url)), "{said}");
    // `logout` ends it at the server and forgets it.
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(whoami(&app, &token).await.0, StatusCode::OK);
    let out = run_cli(cli(home.path(), &["logout"])).await;
    assert_eq!(whoami(&app, &token).await.0, StatusCode::UNAUTHORIZED);
    assert!(out.status.success());
    assert!(!file.exists());
    assert!(!file.with_file_name("session.url").exists());
}

#[tokio::test]
async fn a_sign_in_started_in_one_browser_cannot_finish_in_another() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    // Someone starts a sign-in (their own listener and challenge) and gets another
    // person to finish it at the provider: that person's browser lacks the cookie.
    let starter = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &starter, &challenge).await;
    let victim = browser();
    let back = sign_in(&victim, &authorize, "alice", "any", CALLBACK).await;
    let r = callback(&app, &victim, &back).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = r.json::<Value>().await.unwrap();
    assert_eq!(code(&body), "signin_failed", "{body}");
    // No code went anywhere, and the sign-in is spent: the starter cannot finish it.
    let r = callback(&app, &starter, &back).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("SELECT count(*) FROM login_codes"), 0);
    assert_eq!(app.count("SELECT count(*) FROM identities"), 0);
}

#[tokio::test]
async fn a_refusal_at_the_provider_reaches_the_cli_without_the_providers_text() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    // An account the provider does not know: it sends the browser back with an error.
    let back = sign_in(&http, &authorize, "nobody", "any", CALLBACK).await;
    assert!(back.contains("error=access_denied"), "{back}");
    let r = callback(&app, &http, &back).await;
    let (error, why) = cli_error(&r);
    assert_eq!(error, "signin_failed");
    assert!(why.contains("access_denied"), "{why}");
    // Text the provider (or anyone crafting the link) puts in the redirect is not
    // repeated: start again and add some.
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let state = reqwest::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let crafted = format!(
        "{CALLBACK}?{}",
        serde_urlencoded::to_string([
            ("error", "call +1-555-0100 now"),
            (
                "error_description",
                "Your account is locked, call +1-555-0100"
            ),
            ("state", state.as_str()),
        ])
        .unwrap()
    );
    let r = callback(&app, &http, &crafted).await;
    let (error, why) = cli_error(&r);
    assert_eq!(error, "signin_failed");
    assert!(!why.contains("555"), "{why}");
}

#[tokio::test]
async fn a_person_known_only_through_sign_in_can_be_offboarded() {
    let (idp, state) = provider();
    // zoe exists at the provider only, not in the config.
    idp.set_state(&state.account("zoe", Account::new("zoe", &[])));
    let (app, _s) = spawn(&idp, "").await;
    let session = sign_in_as(&app, "zoe").await;
    assert_eq!(whoami(&app, &session).await.0, StatusCode::OK);
    let (status, body) = app
        .post("bob", "/v1/users/zoe/revoke", json!({ "reason": "left" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = whoami(&app, &session).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "user_disabled")
    );
}

#[tokio::test]
async fn an_id_token_signed_with_the_client_secret_is_refused() {
    // The provider signs this client's ID tokens with HS256, keyed with the client
    // secret, and says so in discovery: countersign accepts only its published keys.
    let mut client = Client::new("countersign", SECRET, CALLBACK);
    client
        .extra
        .insert("id_token_signed_response_alg".into(), json!("HS256"));
    let state = IdpState::new(client).account("alice", Account::new("alice", &[]));
    let idp = Idp::start(&state);
    let (app, _s) = spawn(&idp, "").await;
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "alice", "any", CALLBACK).await;
    let r = callback(&app, &http, &back).await;
    let (error, why) = cli_error(&r);
    assert_eq!(error, "signin_failed", "{why}");
    assert!(why.contains("ID token"), "{why}");
    assert_eq!(app.count("SELECT count(*) FROM login_codes"), 0);
}

#[tokio::test]
async fn login_against_a_server_that_cannot_sign_in_fails_at_once() {
    // No [oidc] on this server: the CLI says so before anyone opens a browser.
    let app = TestApp::spawn().await;
    let home = tempfile::tempdir().unwrap();
    let out = run_cli(cli(
        home.path(),
        &["login", "--loopback", "--url", &app.url],
    ))
    .await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not configured"), "{said}");
    assert!(
        out.stdout.is_empty(),
        "no address to open: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
