//! ID tokens that must not sign anyone in, from a real provider made to send them: for
//! another audience, with the nonce of another sign-in, signed by a key its JWKS lacks.
//! Each ends at the CLI's listener as `signin_failed`, and no session is made.

use serde_json::json;

use super::*;
use crate::idp::query_param;

/// A sign-in of alice through `app` at `idp`, brought back to the server: the outcome the
/// CLI's listener would hear, and the provider's authorization URL.
async fn attempt(app: &TestApp) -> (reqwest::Response, String) {
    let http = browser();
    let (_, challenge) = pkce();
    let authorize = start(app, &http, &challenge).await;
    let back = sign_in(&http, &authorize, "alice", "any", CALLBACK).await;
    (callback(app, &http, &back).await, authorize)
}

fn refused(r: &reqwest::Response) {
    let (code, why) = cli_error(r);
    assert_eq!(code, "signin_failed", "{why}");
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    let (idp, state) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let mut other = state;
    other.id_token_claims = Some(json!({ "aud": "another-app" }));
    idp.set_state(&other);
    refused(&attempt(&app).await.0);
    // Issued to us and to someone else too, without saying who asked (no azp).
    other.id_token_claims = Some(json!({ "aud": ["countersign", "another-app"], "azp": null }));
    idp.set_state(&other);
    refused(&attempt(&app).await.0);
    // Signed again the same way, but for us: the same sign-in works (so what was refused
    // above was the audience, not the re-signing).
    other.id_token_claims = Some(json!({ "aud": "countersign" }));
    idp.set_state(&other);
    let (r, _) = attempt(&app).await;
    cli_code(r).await;
    assert_eq!(app.count("SELECT count(*) FROM login_codes"), 1);
}

#[tokio::test]
async fn an_id_token_with_the_nonce_of_another_sign_in_is_refused() {
    let (idp, state) = provider();
    let (app, _s) = spawn(&idp, "").await;
    // An earlier sign-in's nonce (as one captured from it would carry).
    let (r, first) = attempt(&app).await;
    cli_code(r).await;
    let old_nonce = query_param(&first, "nonce").expect("the authorization URL has a nonce");
    let mut replay = state.clone();
    replay.id_token_claims = Some(json!({ "nonce": old_nonce }));
    idp.set_state(&replay);
    refused(&attempt(&app).await.0);
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn an_id_token_signed_by_a_key_not_in_the_providers_jwks_is_refused() {
    let (idp, mut state) = provider();
    // Tokens signed with generation 1's key; the JWKS lists only generation 7's.
    state.jwks_generation = Some(7);
    idp.set_state(&state);
    let (app, _s) = spawn(&idp, "").await;
    refused(&attempt(&app).await.0);
    assert_eq!(app.count("SELECT count(*) FROM login_codes"), 0);
}

#[tokio::test]
async fn after_a_failed_discovery_sign_ins_fail_fast_for_a_while() {
    let (mut idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let http = browser();
    let (_, challenge) = pkce();
    let login = |http: reqwest::Client, challenge: String| {
        let url = format!("{}/v1/oidc/login", app.url);
        async move {
            http.get(url)
                .query(&[
                    ("redirect_uri", CLI_REDIRECT),
                    ("code_challenge", challenge.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    idp.stop();
    let r = login(http.clone(), challenge.clone()).await;
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&r.json().await.unwrap()), "idp_unavailable");
    // Back at once: countersign does not ask again yet (a provider that is down must not
    // be hammered, nor tie up the API waiting for it), and says it is unavailable.
    idp.restart();
    let r = login(http.clone(), challenge.clone()).await;
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.count("SELECT count(*) FROM oidc_logins"), 0);
}

#[tokio::test]
async fn client_auth_post_signs_in_at_a_provider_that_wants_the_secret_in_the_body() {
    let mut client = Client::new("countersign", SECRET, CALLBACK);
    client.token_endpoint_auth_method = "client_secret_post".into();
    let state = IdpState::new(client).account("alice", Account::new("alice", &["okta-dba"]));
    let idp = Idp::start(&state);
    let (app, _s) = spawn(&idp, "client_auth = \"post\"").await;
    let session = sign_in_as(&app, "alice").await;
    let (status, me) = whoami(&app, &session).await;
    assert_eq!((status, &me["user"]), (StatusCode::OK, &json!("alice")));
}
