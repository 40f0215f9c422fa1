//! Sign-in with a real OpenID provider (`oidc-provider` from npm, `tests/oidc/`): the
//! browser leg driven over plain HTTP (`idp::sign_in`), countersign's endpoints called
//! as the CLI calls them, and the real `countersign login` binary end to end.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::helpers::{POLICY, TestApp, code, manual_clock};
use crate::idp::{Account, Client, Idp, IdpState, sign_in};

mod admin;
mod chromium;
mod cli_support;
mod device;
mod groups;
mod more;
mod operators;
mod recheck;
mod step_up;
mod tokens;
mod web;

use cli_support::{cli, run_cli, start_cli, start_cli_stderr};

/// Where the provider sends browsers back: countersign's callback. The test servers
/// listen on a random port, so the provider is told this placeholder and the test
/// carries the browser from it to the real server.
pub const PUBLIC_URL: &str = "http://127.0.0.1:9";
const CALLBACK: &str = "http://127.0.0.1:9/v1/oidc/callback";
/// Where the CLI would listen: the test stops the browser there.
const CLI_REDIRECT: &str = "http://127.0.0.1:1/callback";
pub const SECRET: &str = "countersign-client-secret";

/// A provider with alice (in `okta-dba`) and bob, and countersign as its client.
pub fn provider() -> (Idp, IdpState) {
    let state = IdpState::new(Client::new("countersign", SECRET, CALLBACK))
        .account(
            "alice",
            Account::new("alice", &["okta-dba", "okta-unmapped"]),
        )
        .account("bob", Account::new("bob", &[]));
    (Idp::start(&state), state)
}

/// The test policy with `[oidc]` for `idp`; the secret file is written beside it.
fn config(idp: &Idp, dir: &Path, extra: &str) -> String {
    let secret = dir.join("oidc-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "{POLICY}\n[oidc]\nissuer = \"{}\"\nclient_id = \"countersign\"\n\
         client_secret_file = \"{}\"\npublic_url = \"{PUBLIC_URL}\"\n\
         allow_insecure_loopback_issuer = true\n{extra}\n\
         [[oidc.group_map]]\nclaim = \"okta-dba\"\ngroups = [\"dba\"]\n",
        idp.issuer,
        secret.display()
    )
}

/// A browser: cookies kept, redirects not followed (each hop is looked at).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The CLI's verifier and challenge.
fn pkce() -> (String, String) {
    let verifier = countersign::oidc::random_token();
    let challenge = countersign::oidc::s256(&verifier);
    (verifier, challenge)
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in {r:?}"))
        .to_owned()
}

/// Starts a sign-in at countersign; returns the provider's authorization URL.
async fn start(app: &TestApp, http: &reqwest::Client, challenge: &str) -> String {
    let r = http
        .get(format!("{}/v1/oidc/login", app.url))
        .query(&[
            ("redirect_uri", CLI_REDIRECT),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    location(&r)
}

/// Brings the provider's redirect (`CALLBACK?code&state`) to the real server.
async fn callback(app: &TestApp, http: &reqwest::Client, back: &str) -> reqwest::Response {
    let query = back
        .strip_prefix(CALLBACK)
        .unwrap_or_else(|| panic!("the provider sent the browser to {back}"));
    http.get(format!("{}/v1/oidc/callback{query}", app.url))
        .send()
        .await
        .unwrap()
}

/// The error code and description in a redirect to the CLI's listener.
fn cli_error(r: &reqwest::Response) -> (String, String) {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    let to = location(r);
    let query = to
        .strip_prefix(&format!("{CLI_REDIRECT}?"))
        .unwrap_or_else(|| panic!("countersign sent the browser to {to}"));
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    (get("error"), get("error_description"))
}

/// The page that asks before sending the browser on to the CLI: the user it names
/// and where its "Continue" link goes (the CLI's listener, with the one-time code).
async fn confirm_page(r: reqwest::Response) -> (String, String) {
    assert_eq!(r.status(), StatusCode::OK, "{r:?}");
    let html = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|t| t.to_str().unwrap_or("").starts_with("text/html"));
    assert!(html, "not a page: {r:?}");
    let csp = r.headers().get("content-security-policy").cloned();
    assert!(
        csp.is_some_and(|c| c.to_str().unwrap_or("").contains("default-src 'none'")),
        "{r:?}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("If you did not just run"), "{page}");
    let link = page
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no link in {page}"))
        .replace("&amp;", "&");
    (page, link)
}

/// The one-time code behind the confirmation page's link to the CLI's listener.
async fn cli_code(r: reqwest::Response) -> String {
    let (_, to) = confirm_page(r).await;
    let code = to
        .strip_prefix(&format!("{CLI_REDIRECT}?code="))
        .unwrap_or_else(|| panic!("the page links to {to}"));
    code.to_owned()
}

async fn trade(app: &TestApp, code: &str, verifier: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/oidc/token", app.url))
        .json(&json!({ "code": code, "code_verifier": verifier }))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// A whole sign-in of `login` at the provider; the session token.
pub async fn sign_in_as(app: &TestApp, login: &str) -> String {
    let http = browser();
    let (verifier, challenge) = pkce();
    let authorize = start(app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, login, "any", CALLBACK).await;
    let r = callback(app, &http, &back).await;
    let (status, body) = trade(app, &cli_code(r).await, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session"].as_str().unwrap().to_owned()
}

/// `POST /v1/requests` for `role` and `public_key` with `token` (a session).
async fn ask_with(app: &TestApp, token: &str, role: &str, public_key: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/requests", app.url))
        .bearer_auth(token)
        .json(&json!({
            "role": role,
            "public_key": public_key,
            "reason": "INC-1: signed in through the identity provider",
        }))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// `POST /v1/requests/{id}/approve` with `token` (a session).
async fn approve_with(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/requests/{id}/approve", app.url))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn whoami(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn spawn(idp: &Idp, extra: &str) -> (TestApp, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(&config(idp, secrets.path(), extra)).await;
    (app, secrets)
}

#[tokio::test]
async fn a_person_signs_in_and_the_session_is_their_credential() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let session = sign_in_as(&app, "alice").await;
    assert!(session.starts_with("css_"), "{session}");
    let (status, me) = whoami(&app, &session).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"], "alice");
    // The session works for the whole flow: alice asks, bob approves, alice fetches.
    let key = crate::helpers::public_line(&crate::helpers::new_key());
    let (status, body) = ask_with(&app, &session, "prod-db", &key).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (status, _) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK);
    let cert = reqwest::Client::new()
        .get(format!("{}/v1/requests/{id}/certificate", app.url))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(cert.status(), StatusCode::OK);
    assert!(
        cert.text()
            .await
            .unwrap()
            .starts_with("ssh-ed25519-cert-v01@openssh.com ")
    );
    // Bound once, recorded with the groups the provider gave (mapped ones only).
    let events = app.audit("").await;
    let bound: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "identity.bound")
        .collect();
    assert_eq!(bound.len(), 1, "{events:?}");
    assert_eq!(bound[0]["detail"]["subject"], "sub-alice");
    let created: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "session.created")
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["detail"]["groups"], json!(["dba"]));
    assert_eq!(created[0]["actor"], "alice");
    // A second sign-in of the same person makes a second session, no second binding.
    let again = sign_in_as(&app, "alice").await;
    assert_ne!(again, session);
    let events = app.audit("").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "identity.bound")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_sign_in_and_its_code_are_spent_once_and_the_code_needs_the_verifier() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let http = browser();
    let (verifier, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "alice", "any", CALLBACK).await;
    let r = callback(&app, &http, &back).await;
    let one_time = cli_code(r).await;
    // The provider's redirect replayed: the sign-in is spent.
    let again = callback(&app, &http, &back).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&again.json::<Value>().await.unwrap()), "signin_failed");
    // A state countersign never issued.
    let forged = back.replace("state=", "state=x");
    let r = callback(&app, &http, &forged).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The code with another verifier: refused, and spent.
    let (other, _) = pkce();
    let (status, body) = trade(&app, &one_time, &other).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "signin_failed")
    );
    let (status, body) = trade(&app, &one_time, &verifier).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "signin_failed"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn a_second_person_with_the_same_user_name_is_refused_and_audited() {
    let (idp, state) = provider();
    let (app, _s) = spawn(&idp, "").await;
    sign_in_as(&app, "alice").await;
    // The provider gives "alice" to another account (a reused name).
    let mut impostor = Account::new("alice2", &["okta-dba"]);
    impostor.preferred_username = "alice".into();
    idp.set_state(&state.account("alice2", impostor));
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "alice2", "any", CALLBACK).await;
    let r = callback(&app, &http, &back).await;
    // The browser goes on to the CLI, which hears why.
    assert_eq!(cli_error(&r).0, "identity_conflict");
    let events = app.audit("").await;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "signin.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0]["detail"]["subject"], "sub-alice2");
    assert_eq!(refused[0]["detail"]["code"], "identity_conflict");
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 1);
}

#[tokio::test]
async fn an_id_token_past_its_expiry_by_the_cas_clock_is_refused() {
    let (idp, mut state) = provider();
    // ID tokens for one minute; the CA's clock moves five minutes on before the
    // browser comes back (the sign-in itself is good for ten).
    state.id_token_ttl = 60;
    idp.set_state(&state);
    let clock = manual_clock();
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with_clock(&config(&idp, secrets.path(), ""), &clock).await;
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "alice", "any", CALLBACK).await;
    clock.advance(std::time::Duration::from_secs(300));
    let r = callback(&app, &http, &back).await;
    let (error, why) = cli_error(&r);
    assert_eq!(error, "signin_failed");
    assert!(why.contains("ID token"), "{why}");
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_and_a_stopped_provider_leaves_sessions_working() {
    let (idp, state) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let session = sign_in_as(&app, "alice").await;
    // New keys at the provider, listed without the old one (countersign cached the old
    // one at the first sign-in): the next sign-in's token is signed with a key
    // countersign has not seen, and it looks again.
    let kids = idp.kids(&reqwest::Client::new()).await;
    let mut rotated = state.clone();
    rotated.keys_generation += 1;
    idp.set_state(&rotated);
    sign_in_as(&app, "bob").await;
    assert_ne!(
        idp.kids(&reqwest::Client::new()).await,
        kids,
        "the keys did not change"
    );
    // The provider goes away while a sign-in is between its two legs: the code cannot be
    // exchanged, the CLI hears a clear code, no session is made; sessions work on.
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(&app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "alice", "any", CALLBACK).await;
    drop(idp);
    let sessions = app.count("SELECT count(*) FROM sessions");
    let r = callback(&app, &http, &back).await;
    assert_eq!(cli_error(&r).0, "idp_unavailable");
    assert_eq!(app.count("SELECT count(*) FROM login_codes"), 0);
    assert_eq!(app.count("SELECT count(*) FROM sessions"), sessions);
    let (status, me) = whoami(&app, &session).await;
    assert_eq!(
        (status, me["user"].as_str()),
        (StatusCode::OK, Some("alice"))
    );
}

#[tokio::test]
async fn offboarding_ends_sessions_for_good_and_tokens_can_be_turned_off() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "human_tokens = false").await;
    // Hand-made tokens are refused once people sign in through the provider.
    let (status, _) = app.get("alice", "/v1/whoami").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let session = sign_in_as(&app, "alice").await;
    assert_eq!(whoami(&app, &session).await.0, StatusCode::OK);
    let admin = sign_in_as(&app, "bob").await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/users/alice/revoke", app.url))
        .bearer_auth(&admin)
        .json(&json!({ "reason": "left the company" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    let (status, body) = whoami(&app, &session).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "user_disabled")
    );
    let r = reqwest::Client::new()
        .post(format!("{}/v1/users/alice/enable", app.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Enabled again: the old session stays ended; a new sign-in works.
    let (status, body) = whoami(&app, &session).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    sign_in_as(&app, "alice").await;
}
