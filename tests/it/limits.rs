//! Abuse limits through the real HTTP server: failed-authentication rate limits, which
//! endpoints need no token, a database that fails. Header size, time per request,
//! requests in flight and connections per address are in `limits_connections.rs`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;
use crate::process::{ServerProcess, create_token, init};

/// [`POLICY`] with extra `[server]` lines.
pub(crate) fn with_server_lines(lines: &str) -> String {
    POLICY.replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"data\"\n{lines}"),
    )
}

async fn get_with_token(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

#[tokio::test]
async fn failed_authentications_from_one_address_get_429_with_retry_after() {
    let app = TestApp::spawn_with(&with_server_lines(
        "auth_failures_per_address = 3\nauth_failures_per_token = 100\n\
         auth_failure_window = \"10m\"",
    ))
    .await;
    for i in 0..3 {
        let resp = get_with_token(&app, "/v1/whoami", &format!("cs_guess{i}")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let resp = get_with_token(&app, "/v1/whoami", "cs_guess3").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");

    // A right token from the same address is refused too: the answer must not tell a
    // guesser that a guess was right.
    let (status, body) = app.get("alice", "/v1/whoami").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // Endpoints without a token stay open.
    for path in ["/v1/health", "/v1/ca.pub", "/v1/krl"] {
        let resp = app
            .http
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

async fn whoami_via_proxy(app: &TestApp, token: &str, forwarded_for: &str) -> StatusCode {
    app.http
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth(token)
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
}

/// Behind a reverse proxy every client shares the proxy's address: one guesser would
/// lock everyone out. With the proxy in `trusted_proxies` the count is per forwarded
/// client; without it, the header is ignored (a client cannot pick its own address).
#[tokio::test]
async fn behind_a_trusted_proxy_failures_count_per_forwarded_client() {
    let limits = "auth_failures_per_address = 2\nauth_failures_per_token = 100";
    let app = TestApp::spawn_with(&with_server_lines(&format!(
        "{limits}\ntrusted_proxies = [\"127.0.0.1\"]"
    )))
    .await;
    let alice = app.token("alice").to_owned();
    for i in 0..2 {
        let status = whoami_via_proxy(&app, &format!("cs_guess{i}"), "203.0.113.7").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The guesser is limited, even when it claims another address to the left of the one
    // the proxy appended...
    let status = whoami_via_proxy(&app, "cs_guess2", "198.51.100.1, 203.0.113.7").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...while another client behind the same proxy is not.
    assert_eq!(
        whoami_via_proxy(&app, &alice, "203.0.113.8").await,
        StatusCode::OK
    );

    // Not a trusted proxy: the header changes nothing, the peer address is counted.
    let app = TestApp::spawn_with(&with_server_lines(limits)).await;
    let alice = app.token("alice").to_owned();
    for i in 0..2 {
        let status =
            whoami_via_proxy(&app, &format!("cs_guess{i}"), &format!("203.0.113.{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    assert_eq!(
        whoami_via_proxy(&app, &alice, "203.0.113.8").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_token_that_keeps_failing_is_limited_but_other_tokens_are_not() {
    let app = TestApp::spawn_with(&with_server_lines(
        "auth_failures_per_address = 100\nauth_failures_per_token = 2",
    ))
    .await;
    let revoked = app.create_token("frank");
    countersign::service::revoke_tokens(
        app.service.store(),
        &app.service.config().policy,
        &countersign::names::UserName::parse("frank").unwrap(),
        "operator",
    )
    .unwrap();
    for _ in 0..2 {
        let resp = get_with_token(&app, "/v1/whoami", &revoked).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = get_with_token(&app, "/v1/whoami", &revoked).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let resp = get_with_token(&app, "/v1/whoami", "cs_another_guess").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("alice", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_endpoint_but_health_ca_key_and_krl_needs_a_token() {
    let app = TestApp::spawn().await;
    let id = "r-aaaaaaaaaaaa";
    let token_endpoints = [
        ("GET", "/v1/whoami".to_owned()),
        ("GET", "/v1/requests".to_owned()),
        ("POST", "/v1/requests".to_owned()),
        ("GET", format!("/v1/requests/{id}")),
        ("POST", format!("/v1/requests/{id}/approve")),
        ("POST", format!("/v1/requests/{id}/deny")),
        ("POST", format!("/v1/requests/{id}/cancel")),
        ("GET", format!("/v1/requests/{id}/certificate")),
        ("POST", format!("/v1/requests/{id}/done")),
        ("POST", "/v1/certificates/1/revoke".to_owned()),
        ("POST", "/v1/users/alice/revoke".to_owned()),
        ("POST", "/v1/users/alice/enable".to_owned()),
        ("GET", "/v1/audit".to_owned()),
        ("GET", "/v1/audit/verify".to_owned()),
    ];
    for (method, path) in &token_endpoints {
        let req = match *method {
            "GET" => app.http.get(format!("{}{path}", app.url)),
            _ => app
                .http
                .post(format!("{}{path}", app.url))
                .json(&serde_json::json!({})),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }
    for path in ["/v1/health", "/v1/ca.pub", "/v1/krl"] {
        let resp = app
            .http
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

/// A real `serve` of [`POLICY`] with a token for `user`: the server, and the token.
fn logged_server(user: &str) -> (tempfile::TempDir, ServerProcess, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, POLICY).unwrap();
    init(&config);
    let token = create_token(&config, user);
    let server = ServerProcess::start(&config);
    (dir, server, token)
}

/// `GET path` on `server` with `token`: the status.
fn get_status(server: &ServerProcess, path: &str, token: &str) -> StatusCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    countersign::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    rt.block_on(async {
        let resp = http.get(format!("{}{path}", server.url)).bearer_auth(token);
        resp.send().await.unwrap().status()
    })
}

/// `server`'s log, once it holds `needle` (10 s at most).
fn log_with(server: &ServerProcess, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains(needle) {
        assert!(Instant::now() < deadline, "no log line:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    server.log()
}

#[test]
fn failed_authentications_are_logged_without_the_token() {
    let (_dir, server, good) = logged_server("alice");
    let bad = "cs_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_eq!(
        get_status(&server, "/v1/whoami", bad),
        StatusCode::UNAUTHORIZED
    );
    let log = log_with(&server, "authentication failed");
    assert!(log.contains("client=127.0.0.1"), "{log}");
    assert!(!log.contains(bad) && !log.contains(&bad[3..20]), "{log}");
    assert!(!log.contains(&good), "{log}");
    assert!(server.terminate(), "graceful shutdown exits 0");
}

/// A refused attempt (a non-admin at an admin endpoint) is logged with who and where: an
/// operator watching the log sees it, though it changes nothing and writes no audit row.
#[test]
fn refusals_are_logged_with_the_user_and_route() {
    let (dir, server, alice) = logged_server("alice");
    assert_eq!(
        get_status(&server, "/v1/audit", &alice),
        StatusCode::FORBIDDEN
    );
    let log = log_with(&server, "refused");
    let line = log
        .lines()
        .find(|l| l.contains("refused"))
        .unwrap_or_default();
    for part in [
        "user=alice",
        "route=\"/v1/audit\"",
        "code=\"forbidden\"",
        "only admins",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(!log.contains(&alice), "{log}");

    // Approving a request one may not even see is answered "no such request", and said.
    let dave = create_token(&dir.path().join("c.toml"), "dave");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = crate::process::Api::new(&server.url);
    let (status, body) = rt.block_on(async {
        let key = crate::helpers::public_line(&crate::helpers::new_key());
        let body = serde_json::json!({"role": "prod-db", "public_key": key, "reason": "r"});
        let (_, made) = api.post(&alice, "/v1/requests", body).await.unwrap();
        let id = made["id"].as_str().unwrap_or_default().to_owned();
        let path = format!("/v1/requests/{id}/approve");
        api.post(&dave, &path, serde_json::json!({})).await.unwrap()
    });
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let log = log_with(&server, "a request this user may not see");
    let line = log
        .lines()
        .find(|l| l.contains("may not see"))
        .unwrap_or_default();
    assert!(line.contains("user=dave") && line.contains("r-"), "{line}");
    assert!(server.terminate(), "graceful shutdown exits 0");
}

/// A list works while writes cannot (disk full, another process's lock): expiring the
/// overdue requests first is best effort, and they show as expired anyway.
#[tokio::test]
async fn lists_answer_while_writes_fail() {
    let clock = manual_clock();
    // SQLite only: the test reaches into the database file itself.
    let app = TestApp::spawn_with_clock_on(POLICY, &clock, Backend::Sqlite).await;
    let ids = [app.create_ok("alice", "prod-db").await];
    app.sql(
        "CREATE TRIGGER no_writes BEFORE UPDATE ON requests \
         BEGIN SELECT RAISE(ABORT, 'writes fail (as on a full disk)'); END;",
    );
    // Past its pending_ttl (1h) by the CA's clock; expiring it cannot be written.
    clock.advance(std::time::Duration::from_secs(7200));
    let (status, body) = app.get("alice", "/v1/requests").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requests"][0]["id"], ids[0].as_str());
    assert_eq!(body["requests"][0]["status"], "expired");
}

/// `/v1/health` says whether the database answers a read, not just that the process
/// runs. (A database that hangs instead is cut off after 2 s; not tested.)
#[tokio::test]
async fn health_fails_when_a_database_read_fails() {
    // SQLite only: the test reaches into the database file itself.
    let app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    let health = || async {
        let resp = app
            .http
            .get(format!("{}/v1/health", app.url))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(
        health().await,
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
    app.sql("DROP TRIGGER IF EXISTS audit_no_update; ALTER TABLE audit RENAME TO audit_gone;");
    let (status, body) = health().await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
}

#[tokio::test]
async fn the_sign_in_cap_per_address_is_the_configured_one() {
    let app = TestApp::spawn_with(&with_server_lines("sign_in_requests_per_minute = 3")).await;
    let token = |app: &TestApp| {
        app.http
            .post(format!("{}/v1/oidc/token", app.url))
            .json(&serde_json::json!({}))
            .send()
    };
    for _ in 0..3 {
        let r = token(&app).await.unwrap();
        assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let r = token(&app).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"), "{r:?}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");
}
