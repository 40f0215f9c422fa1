//! Proofs that do not hold are refused and change nothing; keys that are someone
//! else's are refused before any proof.

use reqwest::StatusCode;
use serde_json::json;

use super::{challenge, challenge_ok, events, key_file, register, registered, sign};
use crate::helpers::{POLICY, TestApp, code, manual_clock, new_key, public_line, write_key};

fn refused(status: StatusCode, body: &serde_json::Value, what: &str) {
    assert_eq!(
        (status, code(body)),
        (StatusCode::BAD_REQUEST, "key_proof_failed"),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn signatures_that_do_not_prove_the_key_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (path, line) = key_file(&app, "alice_k");
    let text = challenge_ok(&app, "alice", &line).await;

    // Signed by another key.
    let (other, _) = key_file(&app, "other");
    let (s, b) = register(
        &app,
        "alice",
        &line,
        &text,
        &sign(&other, "countersign-key", &text),
    )
    .await;
    refused(s, &b, "another key's signature");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another key"),
        "{b}"
    );
    // In another namespace (a signature made for something else, e.g. git commits).
    let (s, b) = register(&app, "alice", &line, &text, &sign(&path, "git", &text)).await;
    refused(s, &b, "namespace git");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("namespace"),
        "{b}"
    );
    // Over other text than the challenge sent back.
    let edited = text.replace("user: alice", "user: alicf");
    let (s, b) = register(
        &app,
        "alice",
        &line,
        &text,
        &sign(&path, "countersign-key", &edited),
    )
    .await;
    refused(s, &b, "signature over other text");
    // A challenge made up by the client, correctly signed: no such challenge.
    let forged = format!("{text}extra\n");
    let (s, b) = register(
        &app,
        "alice",
        &line,
        &forged,
        &sign(&path, "countersign-key", &forged),
    )
    .await;
    refused(s, &b, "made-up challenge");
    // Not a signature at all.
    let (s, b) = register(
        &app,
        "alice",
        &line,
        &text,
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n",
    )
    .await;
    refused(s, &b, "garbage");
    // Nothing changed: no key, no event; the challenge still works once.
    assert!(events(&app, "key.registered").await.is_empty());
    let (_, body) = app.get("alice", "/v1/keys").await;
    assert_eq!(body["keys"], json!([]));
    let good = sign(&path, "countersign-key", &text);
    let (s, b) = register(&app, "alice", &line, &text, &good).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Replayed: the challenge is used up.
    let (s, b) = register(&app, "alice", &line, &text, &good).await;
    refused(s, &b, "replayed challenge");
}

#[tokio::test]
async fn a_challenge_is_for_one_person_and_one_key() {
    let app = TestApp::spawn().await;
    let (path, line) = key_file(&app, "k");
    // frank asked for it; alice answers it with the right key: refused.
    let text = challenge_ok(&app, "frank", &line).await;
    let signature = sign(&path, "countersign-key", &text);
    let (s, b) = register(&app, "alice", &line, &text, &signature).await;
    refused(s, &b, "someone else's challenge");
    // alice's challenge for key A used to register key B, signed by B.
    let (b_path, b_line) = key_file(&app, "b");
    let a_text = challenge_ok(&app, "alice", &line).await;
    let (s, b) = register(
        &app,
        "alice",
        &b_line,
        &a_text,
        &sign(&b_path, "countersign-key", &a_text),
    )
    .await;
    refused(s, &b, "challenge for another key");
    // frank's own challenge still works for frank.
    let (s, b) = register(&app, "frank", &line, &text, &signature).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test]
async fn a_challenge_expires_after_five_minutes() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let (path, line) = key_file(&app, "k");
    let text = challenge_ok(&app, "alice", &line).await;
    clock.advance(std::time::Duration::from_secs(301));
    let (s, b) = register(
        &app,
        "alice",
        &line,
        &text,
        &sign(&path, "countersign-key", &text),
    )
    .await;
    refused(s, &b, "expired challenge");
}

#[tokio::test]
async fn a_key_registered_to_someone_else_in_the_database_or_the_config_is_refused() {
    let keys_dir = tempfile::tempdir().unwrap();
    let carols = new_key();
    let carol_path = write_key(keys_dir.path(), "carol_k", &carols);
    let policy = POLICY.replace(
        "[users.carol]\n",
        &format!("[users.carol]\nssh_keys = [\"{}\"]\n", public_line(&carols)),
    );
    let app = TestApp::spawn_with(&policy).await;
    let (_, alices) = registered(&app, "alice", "alice_k").await;
    for (line, whose) in [
        (alices, "alice's registered key"),
        (public_line(&carols), "carol's config key"),
    ] {
        let (s, b) = challenge(&app, "frank", &line).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::CONFLICT, "key_taken"),
            "{whose}: {b}"
        );
    }
    // carol's own config key: already hers.
    let (s, b) = challenge(&app, "carol", &public_line(&carols)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let text = b["challenge"].as_str().unwrap();
    let (s, b) = register(
        &app,
        "carol",
        &public_line(&carols),
        text,
        &sign(&carol_path, "countersign-key", text),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "key_taken"), "{b}");
    let (_, listing) = app.get("carol", "/v1/keys").await;
    assert_eq!(listing["keys"][0]["source"], "config");
    // Whether a fingerprint is someone's config key is no stranger's business.
    let carols_fp = listing["keys"][0]["fingerprint"].clone();
    let (s, b) = app
        .post(
            "frank",
            "/v1/keys/remove",
            json!({ "fingerprint": carols_fp }),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"), "{b}");
    let (s, b) = app
        .post(
            "carol",
            "/v1/keys/remove",
            json!({ "fingerprint": carols_fp }),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{b}"
    );
    // The CA's own key is nobody's to register.
    let ca = app.service.ca().public_key_line();
    let (s, b) = challenge(&app, "alice", &ca).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{b}"
    );
}

#[tokio::test]
async fn a_bot_token_cannot_register_list_or_remove_keys() {
    let app = TestApp::spawn().await;
    let spec = countersign::service::TokenSpec {
        ttl: None,
        bot_scopes: Some([countersign::service::Scope::Request].into_iter().collect()),
    };
    let user = countersign::names::UserName::parse("alice").unwrap();
    let (bot, _) = countersign::service::create_token(
        app.service.store(),
        &app.service.config(),
        &user,
        "operator",
        &spec,
    )
    .unwrap();
    let http = reqwest::Client::new();
    let line = public_line(&new_key());
    for (path, body) in [
        ("/v1/keys/challenge", Some(json!({ "public_key": line }))),
        ("/v1/keys", None),
        (
            "/v1/keys/remove",
            Some(json!({ "fingerprint": "SHA256:x" })),
        ),
    ] {
        let url = format!("{}{path}", app.url);
        let req = match &body {
            Some(b) => http.post(url).json(b),
            None => http.get(url),
        };
        let r = req.bearer_auth(&bot).send().await.unwrap();
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (status, code(&v)),
            (StatusCode::FORBIDDEN, "scope_not_allowed"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn of_six_quick_challenges_the_oldest_is_forgotten() {
    let app = TestApp::spawn().await;
    let (path, line) = key_file(&app, "k");
    let mut texts = Vec::new();
    for _ in 0..6 {
        texts.push(challenge_ok(&app, "alice", &line).await);
    }
    let mut outcomes = Vec::new();
    for text in &texts {
        let (s, _) = register(
            &app,
            "alice",
            &line,
            text,
            &sign(&path, "countersign-key", text),
        )
        .await;
        outcomes.push(s.as_u16());
    }
    // The first is gone; the second registers; the rest find the key theirs already.
    assert_eq!(outcomes, [400, 201, 200, 200, 200, 200]);
}

#[tokio::test]
async fn listing_an_unknown_user_or_both_filters_is_an_error() {
    let app = TestApp::spawn().await;
    let (s, b) = app.get("bob", "/v1/keys?user=nobody").await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"), "{b}");
    let (s, b) = app.get("bob", "/v1/keys?user=alice&all=true").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{b}"
    );
    let (s, b) = app.get("bob", "/v1/keys?user=alice").await;
    assert_eq!((s, &b["keys"]), (StatusCode::OK, &json!([])), "{b}");
}

#[tokio::test]
async fn a_service_account_registers_no_key_whatever_its_credential() {
    let app = TestApp::spawn().await;
    // dave's person token was made before dave was marked a service account.
    let config = POLICY.replace("[users.dave]\n", "[users.dave]\nbot = true\n");
    app.service
        .reload(app.config_of(&config), "operator")
        .expect("reload");
    let (s, b) = challenge(&app, "dave", &public_line(&new_key())).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "forbidden"), "{b}");
}
