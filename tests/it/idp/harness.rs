//! The tests of the harness itself: a sign-in with PKCE, key rotation, the state file
//! read while the provider runs, refresh tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde_json::Value;

use super::{Account, Client, Idp, IdpState, browser, jwt_parts, pkce, query_param, sign_in};

const REDIRECT: &str = "http://127.0.0.1:1234/v1/oidc/callback";

fn fixture() -> IdpState {
    IdpState::new(Client::new("countersign", "s3cret", REDIRECT))
        .account("alice", Account::new("alice", &["okta-dba"]))
}

/// An authorize URL as a client builds it: (url, state, nonce, code_verifier).
fn authorize(idp: &Idp, scope: &str) -> (String, String, String, String) {
    let (verifier, challenge) = pkce();
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let url = Url::parse_with_params(
        &format!("{}/auth", idp.issuer),
        [
            ("response_type", "code"),
            ("client_id", "countersign"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .expect("authorize URL");
    (url.into(), state, nonce, verifier)
}

/// Signs `login` in (a fresh cookie jar) and redeems the code: the ID token's header and payload.
async fn id_token_of(idp: &Idp, login: &str, password: &str) -> (Value, Value) {
    let http = browser();
    let (url, state, nonce, verifier) = authorize(idp, "openid profile email groups");
    let back = sign_in(&http, &url, login, password, REDIRECT).await;
    assert_eq!(query_param(&back, "state"), Some(state), "{back}");
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
    let client = &fixture().clients[0];
    let tokens = idp.redeem(&http, client, &code, &verifier).await;
    let (header, payload) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(payload["nonce"], nonce.as_str());
    (header, payload)
}

#[tokio::test]
async fn the_provider_signs_in_a_fixture_account_with_pkce() {
    let idp = Idp::start(&fixture());
    let http = browser();
    let discovery: Value = http
        .get(idp.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], idp.issuer.as_str());
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    let (url, state, nonce, verifier) = authorize(&idp, "openid profile email groups");
    let back = sign_in(&http, &url, "alice", "any password", REDIRECT).await;
    assert!(back.starts_with(&format!("{REDIRECT}?")), "{back}");
    assert_eq!(query_param(&back, "state"), Some(state), "{back}");
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(idp.issuer.as_str())
    );
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));

    let client = &fixture().clients[0];
    let before = chrono::Utc::now().timestamp();
    let tokens = idp.redeem(&http, client, &code, &verifier).await;
    let (header, claims) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(
        header["kid"].as_str(),
        idp.kids(&http).await.first().map(|k| k.as_str())
    );
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["aud"], "countersign");
    assert_eq!(claims["sub"], "sub-alice");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], serde_json::json!(["okta-dba"]));
    assert_eq!(claims["nonce"], nonce.as_str());
    let auth_time = claims["auth_time"].as_i64().expect("auth_time");
    assert!((before - 10..=before + 1).contains(&auth_time), "{claims}");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    // A code is good once, and only with its verifier.
    let reuse = http
        .post(format!("{}/token", idp.issuer))
        .basic_auth("countersign", Some("s3cret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), reqwest::StatusCode::BAD_REQUEST);

    // Without PKCE the provider refuses the request (back at the redirect_uri).
    let mut plain = Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> = plain
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    plain.query_pairs_mut().clear().extend_pairs(pairs);
    let refused = sign_in(&browser(), plain.as_str(), "alice", "x", REDIRECT).await;
    assert_eq!(
        query_param(&refused, "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn the_signing_key_rotates_when_the_state_says_so() {
    let mut state = fixture();
    let idp = Idp::start(&state);
    let http = browser();
    let first = idp.kids(&http).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let (header, _) = id_token_of(&idp, "alice", "x").await;
    assert_eq!(header["kid"].as_str(), Some(first[0].as_str()));

    // A code issued before the rotation is redeemed after it, with the new key.
    let browser_ = browser();
    let (url, _, _, verifier) = authorize(&idp, "openid");
    let back = sign_in(&browser_, &url, "alice", "x", REDIRECT).await;
    state.keys_generation = 2;
    idp.set_state(&state);
    let second = idp.kids(&http).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "{}", idp.log());
    let code = query_param(&back, "code").unwrap();
    let tokens = idp.redeem(&http, &state.clients[0], &code, &verifier).await;
    let (header, _) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(header["kid"].as_str(), Some(second[0].as_str()));

    // During a rollover the JWKS also lists the earlier keys, the signing one first.
    state.keys_generation = 3;
    state.keys_keep_previous = true;
    idp.set_state(&state);
    let third = idp.kids(&http).await;
    assert_eq!(third.len(), 3, "{third:?}");
    assert!(
        third.contains(&first[0]) && third.contains(&second[0]),
        "{third:?}"
    );
    let (header, _) = id_token_of(&idp, "alice", "x").await;
    assert_eq!(header["kid"].as_str(), Some(third[0].as_str()));

    // Back to a generation already seen: its key again.
    state.keys_generation = 1;
    state.keys_keep_previous = false;
    idp.set_state(&state);
    assert_eq!(idp.kids(&http).await, first);
}

#[tokio::test]
async fn the_state_file_is_read_while_the_provider_runs() {
    let mut state = fixture();
    let mut idp = Idp::start(&state);

    // An unknown login, then a wrong password: access_denied at the redirect_uri.
    let (url, sent_state, _, _) = authorize(&idp, "openid");
    let back = sign_in(&browser(), &url, "mallory", "x", REDIRECT).await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state"), Some(sent_state));
    let mut bob = Account::new("bob", &["ops", "dba"]);
    bob.password = Some("hunter2".to_owned());
    state = state.account("bob", bob);
    idp.set_state(&state);
    let (url, _, _, _) = authorize(&idp, "openid");
    let back = sign_in(&browser(), &url, "bob", "wrong", REDIRECT).await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    let (url, _, _, _) = authorize(&idp, "openid");
    let back = sign_in(&browser(), &url, "bob", "hunter2", REDIRECT).await;
    assert!(query_param(&back, "code").is_some(), "{back}");

    // Claims, ID token lifetime and auth_time follow the file.
    state.accounts.get_mut("alice").unwrap().groups = vec!["okta-ops".to_owned()];
    state.id_token_ttl = 2;
    state.auth_time_offset = 600;
    idp.set_state(&state);
    let now = chrono::Utc::now().timestamp();
    let (_, claims) = id_token_of(&idp, "alice", "x").await;
    assert_eq!(claims["groups"], serde_json::json!(["okta-ops"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        2
    );
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!((now - 610..=now - 599).contains(&auth_time), "{claims}");

    // A restart keeps the issuer (same port) and makes new keys.
    let http = browser();
    let before = idp.kids(&http).await;
    let issuer = idp.issuer.clone();
    idp.restart();
    assert_eq!(idp.issuer, issuer);
    // (A new client: the old one's pooled connection died with the old process.)
    let http = browser();
    assert_ne!(idp.kids(&http).await, before);
    let (_, claims) = id_token_of(&idp, "bob", "hunter2").await;
    assert_eq!(claims["groups"], serde_json::json!(["ops", "dba"]));
}

#[tokio::test]
async fn offline_access_brings_a_refresh_token() {
    let idp = Idp::start(&fixture());
    let http = browser();
    // (oidc-provider drops offline_access unless the request says prompt=consent.)
    let (url, _, _, verifier) = authorize(&idp, "openid groups offline_access");
    let back = sign_in(
        &http,
        &format!("{url}&prompt=consent"),
        "alice",
        "x",
        REDIRECT,
    )
    .await;
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
    let tokens = idp
        .redeem(&http, &fixture().clients[0], &code, &verifier)
        .await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let resp = http
        .post(format!("{}/token", idp.issuer))
        .basic_auth("countersign", Some("s3cret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", idp.log());
    let refreshed: Value = resp.json().await.unwrap();
    let (_, claims) = jwt_parts(refreshed["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["groups"], serde_json::json!(["okta-dba"]));
    assert!(claims["auth_time"].is_i64(), "{claims}");
}
