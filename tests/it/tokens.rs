//! API tokens: every token ends (`[tokens]`), and a service account's token (`--bot`)
//! does only what its scopes allow, never a decision.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{POLICY, TestApp, code, manual_clock, new_key, public_line};
use countersign::names::UserName;
use countersign::service::{self, Scope, TokenSpec};

/// A bot token for `user` with `scopes`.
fn bot_token(app: &TestApp, user: &str, scopes: &[Scope]) -> String {
    let spec = TokenSpec {
        ttl: None,
        bot_scopes: Some(scopes.iter().copied().collect::<BTreeSet<_>>()),
    };
    service::create_token(
        app.service.store(),
        &app.service.config(),
        &UserName::parse(user).unwrap(),
        "operator",
        &spec,
    )
    .expect("bot token")
    .0
}

async fn call(app: &TestApp, token: &str, method: &str, path: &str) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", app.url);
    let req = match method {
        "POST" => http.post(url).json(&json!({ "reason": "bot at work" })),
        _ => http.get(url),
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_bot_requests_and_fetches_but_never_decides_even_as_a_listed_approver() {
    let app = TestApp::spawn().await;
    // carol is in dba: a listed approver of prod-db. Her bot token may not approve.
    let carol_bot = bot_token(&app, "carol", &[Scope::Request, Scope::Fetch]);
    let id = app.create_ok("alice", "prod-db").await;
    for action in ["approve", "deny"] {
        let (status, body) = call(
            &app,
            &carol_bot,
            "POST",
            &format!("/v1/requests/{id}/{action}"),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "scope_not_allowed"),
            "{action}"
        );
    }
    let (_, request) = app.request("alice", &id).await;
    assert_eq!(request["status"], "pending");
    // alice's bot asks for prod-db, carol approves by hand, the bot fetches.
    let alice_bot = bot_token(&app, "alice", &[Scope::Request, Scope::Fetch]);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/requests", app.url))
        .bearer_auth(&alice_bot)
        .json(&json!({
            "role": "prod-db",
            "public_key": public_line(&new_key()),
            "reason": "deploy pipeline 7",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mine = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = app.approve("carol", &mine).await;
    assert_eq!(body["status"], "issued", "{body}");
    let r = reqwest::Client::new()
        .get(format!("{}/v1/requests/{mine}/certificate", app.url))
        .bearer_auth(&alice_bot)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Outside its scopes: the audit log, revoking, admin reads.
    let (status, body) = call(&app, &alice_bot, "GET", "/v1/audit").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "scope_not_allowed")
    );
    // A fetch-only bot cannot create.
    let fetcher = bot_token(&app, "alice", &[Scope::Fetch]);
    let (status, body) = call(&app, &fetcher, "POST", "/v1/requests").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "scope_not_allowed")
    );
    let (status, _) = call(&app, &fetcher, "GET", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_token_expires() {
    let clock = manual_clock();
    let policy = format!("{POLICY}\n[tokens]\ndefault_ttl = \"1h\"\nmax_ttl = \"2h\"\n");
    let app = TestApp::spawn_with_clock(&policy, &clock).await;
    let fresh = app.create_token("alice");
    let (status, _) = call(&app, &fresh, "GET", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(std::time::Duration::from_secs(3601));
    let (status, body) = call(&app, &fresh, "GET", "/v1/whoami").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );
    // A ttl longer than max_ttl is refused, not clamped.
    let spec = TokenSpec {
        ttl: Some(std::time::Duration::from_secs(3 * 3600)),
        bot_scopes: None,
    };
    let err = service::create_token(
        app.service.store(),
        &app.service.config(),
        &UserName::parse("alice").unwrap(),
        "operator",
        &spec,
    )
    .unwrap_err();
    assert!(err.to_string().contains("max_ttl"), "{err}");
}

#[tokio::test]
async fn token_list_shows_kinds_and_use_but_never_a_token() {
    let app = TestApp::spawn().await;
    let bot = bot_token(&app, "alice", &[Scope::Request]);
    let (status, _) = call(&app, &bot, "GET", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    // The use is recorded with the writer's next group commit, not before the answer.
    let bot_used = |out: &std::process::Output| {
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        list["tokens"].as_array().is_some_and(|tokens| {
            tokens
                .iter()
                .any(|t| t["kind"] == "bot" && !t["last_used_at"].is_null())
        })
    };
    let mut out;
    let mut tries = 0;
    loop {
        out = tokio::task::spawn_blocking({
            let config = app.config_path();
            move || {
                crate::cli::countersign(&config)
                    .args(["token", "list", "--json"])
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        tries += 1;
        if bot_used(&out) || tries == 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&bot) && !text.contains("cs_"), "{text}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bots: Vec<&Value> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "bot")
        .collect();
    assert_eq!(bots.len(), 1, "{list}");
    assert_eq!(bots[0]["scopes"], "request");
    assert_eq!(bots[0]["revoked"], false);
    let time = |field: &str| {
        let text = bots[0][field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {list}"));
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
    };
    assert!(
        time("last_used_at") >= time("created_at"),
        "its use was recorded: {list}"
    );
    assert!(time("expires_at") > time("created_at"));
    // The people's tokens the test server made are listed as people's.
    assert!(
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "human")
    );
}

#[tokio::test]
async fn with_human_tokens_off_a_bots_token_still_works_and_a_persons_does_not() {
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("oidc-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The provider is never asked: nothing here signs in.
    let policy = format!(
        "{POLICY}\n[users.ci]\nbot = true\n\n[oidc]\nissuer = \"http://127.0.0.1:9\"\n\
         client_id = \"countersign\"\nclient_secret_file = \"{}\"\n\
         public_url = \"http://127.0.0.1:9\"\nallow_insecure_loopback_issuer = true\n\
         human_tokens = false\n",
        secret.display()
    );
    let app = TestApp::spawn_with(&policy).await;
    let person = app.create_token("alice");
    // A person's token, plain or scoped (`--bot` for someone who is no service account),
    // is refused: people sign in.
    for token in [person, bot_token(&app, "alice", &[Scope::Request])] {
        let (status, body) = call(&app, &token, "GET", "/v1/whoami").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthenticated")
        );
    }
    let bot = bot_token(&app, "ci", &[Scope::Request]);
    let (status, me) = call(&app, &bot, "GET", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK, "{me}");
}

/// A provisioning pipeline's service account with the `host-token` scope makes host join
/// tokens and nothing else; the scope on a person who is no admin gives nothing.
#[tokio::test]
async fn a_service_account_with_host_token_makes_join_tokens_only() {
    let policy = format!(
        "{POLICY}\n[users.provisioner]\nbot = true\n\n{}",
        crate::hosts_helper::HOST_CA
    );
    let app = TestApp::spawn_with(&policy).await;
    let body = json!({ "principals": ["web7.example.com"], "ttl": "10m" });
    let post = |token: String, path: &'static str, body: Value| {
        let http = app.http.clone();
        let url = format!("{}{path}", app.url);
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let pipeline = bot_token(&app, "provisioner", &[Scope::HostToken]);
    let (status, made) = post(pipeline.clone(), "/v1/hosts/tokens", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert!(made["token"].as_str().unwrap().starts_with("csh_"));
    // Nothing else: not revoking, not reading host certificates, not requesting.
    let (status, answer) = post(
        pipeline.clone(),
        "/v1/hosts/certificates/1/revoke",
        json!({ "reason": "x" }),
    )
    .await;
    assert_eq!(code(&answer), "scope_not_allowed", "{status} {answer}");
    let (status, answer) = call(&app, &pipeline, "GET", "/v1/hosts/certificates").await;
    assert_eq!(code(&answer), "scope_not_allowed", "{status} {answer}");
    // Another scope does not make join tokens; nor does the scope on a person.
    let fetcher = bot_token(&app, "provisioner", &[Scope::Fetch]);
    let (_, answer) = post(fetcher, "/v1/hosts/tokens", body.clone()).await;
    assert_eq!(code(&answer), "scope_not_allowed", "{answer}");
    let alice = bot_token(&app, "alice", &[Scope::HostToken]);
    let (status, answer) = post(alice, "/v1/hosts/tokens", body.clone()).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // An admin's own token still does.
    let (status, _) = app.post("bob", "/v1/hosts/tokens", body).await;
    assert_eq!(status, StatusCode::CREATED);
}

/// The service itself, not only the API's scope check, keeps a service account's token
/// from stepping up for anything but a join token, and only with `host-token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_accounts_token_steps_up_only_for_a_join_token() {
    use countersign::service::StepUp;
    let app = TestApp::spawn_with(&format!("{POLICY}\n[users.provisioner]\nbot = true\n")).await;
    let service = app.service.clone();
    let pipeline = bot_token(&app, "provisioner", &[Scope::HostToken, Scope::Request]);
    let caller = service.authenticate_credential(&pipeline).unwrap();
    assert!(service.step_up(&caller, StepUp::HostToken).is_ok());
    for action in [
        StepUp::Approve,
        StepUp::RegisterKey,
        StepUp::Grant("enabling a user"),
    ] {
        let refused = service.step_up(&caller, action).unwrap_err();
        assert!(refused.to_string().contains("service account"), "{refused}");
    }
    let fetcher = bot_token(&app, "provisioner", &[Scope::Fetch]);
    let caller = service.authenticate_credential(&fetcher).unwrap();
    assert!(service.step_up(&caller, StepUp::HostToken).is_err());
}
