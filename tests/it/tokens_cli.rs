//! Service accounts through the real binary: `token create --bot --scope --ttl`, what a
//! bot's token may do, an expired token's message, and tokens made before tokens ended.

use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::{countersign, run, text};
use crate::helpers::{Clock, POLICY, TestApp, code, manual_clock};

/// `countersign token ARGS...` on the CA host of `app`.
async fn token(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = countersign(&app.config_path());
    cmd.arg("token").args(args);
    run(cmd).await
}

async fn call(app: &TestApp, token: &str, post: bool, path: &str) -> (StatusCode, Value) {
    let url = format!("{}{path}", app.url);
    let req = if post {
        app.http
            .post(url)
            .json(&serde_json::json!({ "reason": "ci" }))
    } else {
        app.http.get(url)
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn token_create_bot_prints_a_token_that_only_does_its_scopes() {
    let app = TestApp::spawn().await;
    let out = token(
        &app,
        &[
            "create",
            "bob",
            "--bot",
            "--scope",
            "request,read-audit",
            "--ttl",
            "7d",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bot = text(&out.stdout).trim().to_owned();
    assert!(bot.starts_with("cs_"), "{bot}");
    // bob is an admin and an approver of prod-db: his bot reads the audit log (its
    // scope, and an admin's), and still never approves or revokes.
    let (status, _) = call(&app, &bot, false, "/v1/audit?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    let id = app.create_ok("alice", "prod-db").await;
    for path in [
        format!("/v1/requests/{id}/approve"),
        "/v1/users/alice/revoke".to_owned(),
    ] {
        let (status, body) = call(&app, &bot, true, &path).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "scope_not_allowed"),
            "{path}"
        );
    }
    let (status, _) = call(&app, &bot, false, &format!("/v1/requests/{id}/certificate")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "fetch is not among its scopes"
    );
    // read-audit on a user who is no admin gives nothing more than the user has.
    let out = token(&app, &["create", "alice", "--bot", "--scope", "read-audit"]).await;
    let alices = text(&out.stdout).trim().to_owned();
    let (status, body) = call(&app, &alices, false, "/v1/audit?limit=1").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
}

#[tokio::test]
async fn token_create_refuses_what_it_cannot_honour_and_says_why() {
    let app = TestApp::spawn().await;
    for (args, says) in [
        (&["create", "alice", "--ttl", "91d"][..], "max_ttl"),
        (&["create", "alice", "--bot"][..], "--scope"),
        (
            &["create", "alice", "--bot", "--scope", "approve"][..],
            "request",
        ),
        (&["create", "nobody-here"][..], "not defined"),
        (&["create", "alice", "--scope", "fetch"][..], "add --bot"),
        (&["create", "alice", "--ttl", "30s"][..], "at least 1m"),
    ] {
        let out = token(&app, args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?} printed a token");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_told_so_by_the_cli_and_old_tokens_end_at_max_ttl() {
    let clock = manual_clock();
    let policy = format!("{POLICY}\n[tokens]\ndefault_ttl = \"1h\"\nmax_ttl = \"2h\"\n");
    let app = TestApp::spawn_with_clock(&policy, &clock).await;
    let mine = app.create_token("alice");
    // A token from before tokens ended (no expiry recorded): it lives max_ttl from its
    // creation. Made 3 hours ago here, so it is over already.
    let legacy = countersign::store::tokens::generate();
    let made = clock.now().timestamp() - 3 * 3600;
    app.sql(&format!(
        "INSERT INTO tokens (hash, \"user\", created_at) VALUES ('{}', 'alice', {made})",
        legacy.hash
    ));
    let (status, body) = call(&app, &legacy.secret, false, "/v1/whoami").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );
    clock.advance(std::time::Duration::from_secs(3601));
    let mut cmd = countersign(&app.config_path());
    cmd.env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", &mine)
        .arg("whoami");
    let out = run(cmd).await;
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("token_expired"), "{said}");
    assert!(said.contains("countersign token create"), "{said}");
    assert!(
        !said.contains("whole cs_"),
        "not the hint for a mistyped token: {said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_never_approves_not_even_with_its_ssh_key_at_the_front_door() {
    use crate::front_door_helper::{FrontDoor, KeyRing, policy};
    let keys = KeyRing::new();
    // mallory is a bot in dba (approvers of `shell`), with an SSH key.
    let config = format!(
        "{}[users.mallory]\nbot = true\ngroups = [\"dba\"]\nssh_keys = [\"{}\"]\n",
        policy(&keys, "", "1h"),
        keys.public("mallory")
    );
    let app = TestApp::spawn_with(&config).await;
    let door = FrontDoor::start(&app).await;
    let (status, body) = app
        .create_with_key("alice", "shell", None, keys.public("alice"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let out = door
        .ssh(keys.path("mallory"), "ca", &["approve", &id])
        .await;
    assert_eq!(out.status, 1, "{out:?}");
    // Not an approver of anything, it does not even see the request.
    assert!(out.stderr.contains("not_found"), "{out:?}");
    let out = door.ssh(keys.path("mallory"), "ca", &["whoami"]).await;
    assert!(out.stdout.contains("may approve  \n"), "{out:?}");
    // A person's token is refused for it; its bot token says what it is.
    let refused = token(&app, &["create", "mallory"]).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--bot"),
        "{}",
        text(&refused.stderr)
    );
    let made = token(&app, &["create", "mallory", "--bot", "--scope", "request"]).await;
    let bot = text(&made.stdout).trim().to_owned();
    let (status, me) = call(&app, &bot, false, "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["scopes"], serde_json::json!(["request"]));
    assert_eq!(me["can_approve"], serde_json::json!([]));
    let (status, body) = call(&app, &bot, true, &format!("/v1/requests/{id}/approve")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "scope_not_allowed")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scopes request:"),
        "{body}"
    );
    let (_, request) = app.request("alice", &id).await;
    assert_eq!(request["status"], "pending");
}

#[tokio::test]
async fn token_list_says_which_tokens_are_live_expired_or_revoked() {
    let clock = manual_clock();
    let policy = format!("{POLICY}\n[tokens]\ndefault_ttl = \"1h\"\nmax_ttl = \"2h\"\n");
    let app = TestApp::spawn_with_clock(&policy, &clock).await;
    let _ = token(&app, &["create", "dave", "--ttl", "2h"]).await;
    let out = token(&app, &["list", "--json"]).await;
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let daves: Vec<&Value> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["user"] == "dave")
        .collect();
    assert_eq!(daves.len(), 2, "{list}");
    assert!(daves.iter().all(|t| t["last_used_at"].is_null()), "{list}");
    // The test server's token for dave (1h, by the CA's clock) and the new one (2h).
    let statuses: Vec<&str> = daves
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["live", "live"], "{list}");
    // A token from before tokens ended, made 3 hours ago: over (max_ttl 2h).
    let old = countersign::store::tokens::generate();
    let made = chrono::Utc::now().timestamp() - 3 * 3600;
    app.sql(&format!(
        "INSERT INTO tokens (hash, \"user\", created_at) VALUES ('{}', 'erin', {made})",
        old.hash
    ));
    let out = token(&app, &["list"]).await;
    let table = text(&out.stdout);
    assert!(table.contains("STATUS"), "{table}");
    let erins: Vec<&str> = table.lines().filter(|l| l.contains(" erin ")).collect();
    assert!(
        erins.iter().any(|l| l.trim_end().ends_with("expired")),
        "{table}"
    );
}
