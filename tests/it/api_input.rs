//! Bad input through the real API: a clear 4xx, and nothing changes. The big table of
//! hostile inputs is in `api_input/table.rs`.

mod table;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn snapshot(app: &TestApp) -> (i64, i64, i64) {
    (
        app.count("SELECT count(*) FROM requests"),
        app.count("SELECT count(*) FROM approvals"),
        app.count("SELECT count(*) FROM audit"),
    )
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(format!("{}{path}", app.url))
        .bearer_auth(app.token("alice"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_create_bodies_get_invalid_request_and_change_nothing() {
    let app = TestApp::spawn().await;
    let key = public_line(&new_key());
    let before = snapshot(&app);
    let cases: Vec<(&str, Value)> = vec![
        (
            "unknown field",
            json!({"role": "prod-db", "public_key": key, "reason": "x", "requester": "bob"}),
        ),
        (
            "missing reason",
            json!({"role": "prod-db", "public_key": key}),
        ),
        (
            "empty reason",
            json!({"role": "prod-db", "public_key": key, "reason": ""}),
        ),
        (
            "control char",
            json!({"role": "prod-db", "public_key": key, "reason": "a\u{1b}[31mred"}),
        ),
        (
            "bidi override",
            json!({"role": "prod-db", "public_key": key, "reason": "fix \u{202e}txt.exe"}),
        ),
        (
            "long reason",
            json!({"role": "prod-db", "public_key": key, "reason": "x".repeat(1025)}),
        ),
        (
            "zero ttl",
            json!({"role": "prod-db", "public_key": key, "reason": "x", "ttl": "0s"}),
        ),
        (
            "negative ttl",
            json!({"role": "prod-db", "public_key": key, "reason": "x", "ttl": "-5m"}),
        ),
        (
            "huge ttl",
            json!({"role": "prod-db", "public_key": key, "reason": "x", "ttl": "99999999999999999h"}),
        ),
        (
            "numeric ttl",
            json!({"role": "prod-db", "public_key": key, "reason": "x", "ttl": 60}),
        ),
        (
            "unknown role",
            json!({"role": "nope", "public_key": key, "reason": "x"}),
        ),
        (
            "role case alias",
            json!({"role": "Prod-DB", "public_key": key, "reason": "x"}),
        ),
        (
            "two keys",
            json!({"role": "prod-db", "public_key": format!("{key}\n{key}"), "reason": "x"}),
        ),
        (
            "options prefix",
            json!({"role": "prod-db", "public_key": format!("command=\"sh\" {key}"), "reason": "x"}),
        ),
        (
            "garbage key",
            json!({"role": "prod-db", "public_key": "ssh-ed25519 AAAA", "reason": "x"}),
        ),
        ("not an object", json!(["prod-db"])),
    ];
    for (name, body) in cases {
        let (status, resp) = app.post("alice", "/v1/requests", body).await;
        assert_eq!(
            (status, code(&resp)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{name}: {resp}"
        );
        assert!(
            !resp["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{name}"
        );
    }
    assert_eq!(snapshot(&app), before);
}

#[tokio::test]
async fn duplicate_keys_wrong_content_type_and_oversized_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let key = public_line(&new_key());
    let before = snapshot(&app);
    let dup = format!(r#"{{"role":"prod-db","role":"ops","public_key":"{key}","reason":"x"}}"#);
    let (status, body) = post_raw(&app, "/v1/requests", "application/json", dup.into_bytes()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );

    let ok = format!(r#"{{"role":"prod-db","public_key":"{key}","reason":"x"}}"#);
    let (status, body) =
        post_raw(&app, "/v1/requests", "text/plain", ok.clone().into_bytes()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    let (status, body) = post_raw(
        &app,
        "/v1/requests",
        "application/json",
        b"{\"role\":".to_vec(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    // The fields in order, as an array: serde would take it for the struct.
    let array = format!(r#" ["prod-db","{key}","x",null]"#);
    let (status, body) =
        post_raw(&app, "/v1/requests", "application/json", array.into_bytes()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON object")
    );

    let big = format!(
        r#"{{"role":"prod-db","public_key":"{key}","reason":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, body) = post_raw(&app, "/v1/requests", "application/json", big.into_bytes()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{body}"
    );
    assert_eq!(snapshot(&app), before);

    // JSON whitespace before the object is still an object.
    let spaced = format!(" \r\n\t{ok}");
    let (status, body) = post_raw(
        &app,
        "/v1/requests",
        "application/json",
        spaced.into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn odd_public_keys_are_refused_with_a_reason() {
    let app = TestApp::spawn().await;
    let dir = app.dir.path();
    let keygen = |args: &[&str], name: &str| -> String {
        let path = dir.join(name);
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", "", "-f"])
            .arg(&path)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap()
    };
    let short_rsa = keygen(&["-t", "rsa", "-b", "2048"], "rsa2048");
    let (status, body) = app
        .create_with_key("alice", "prod-db", None, &short_rsa)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("2048"),
        "{body}"
    );

    let ecdsa = keygen(&["-t", "ecdsa", "-b", "384"], "ecdsa384");
    let (status, body) = app.create_with_key("alice", "prod-db", None, &ecdsa).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A certificate is not a key.
    let id = body["id"].as_str().unwrap();
    app.approve("bob", id).await;
    let (_, cert) = app.certificate("alice", id).await;
    let (status, body) = app.create_with_key("alice", "prod-db", None, &cert).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{body}"
    );
}

#[tokio::test]
async fn odd_ids_and_query_strings_get_clear_errors() {
    let app = TestApp::spawn().await;
    for id in [
        "..%2F..%2Fetc%2Fpasswd",
        "r-'%20OR%201=1--",
        "R-AAAAAAAAAAAA",
        "r-aaaaaaaaaaaa1",
    ] {
        let (status, body) = app.get("alice", &format!("/v1/requests/{id}")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{id}: {body}"
        );
    }
    let (status, body) = app.get("alice", "/v1/requests/r-aaaaaaaaaaaa").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app.get("alice", "/v1/requests?status=bogus").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (status, body) = app.get("alice", "/v1/requests?requester=bob").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "unknown parameters are errors"
    );
    for q in [
        "serial=0",
        "serial=-1",
        "serial=abc",
        "limit=0",
        "limit=10001",
        "after_seq=-1",
        "request=x",
    ] {
        let (status, body) = app.get("bob", &format!("/v1/audit?{q}")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{q}"
        );
    }
    let (status, body) = app.get("alice", "/v1/nope").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    // A method the endpoint does not take: JSON like every error, and what it does take.
    for (method, path, allowed) in [
        (reqwest::Method::DELETE, "/v1/health", "GET,HEAD"),
        (reqwest::Method::POST, "/v1/krl", "GET,HEAD"),
        (reqwest::Method::PUT, "/v1/requests", "GET,HEAD,POST"),
    ] {
        let resp = app
            .http
            .request(method.clone(), format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().replace(' ', ""));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "method_not_allowed", "{method} {path}: {body}");
        let mut allow: Vec<String> = allow
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        allow.sort();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
    }
}

#[tokio::test]
async fn approve_takes_an_empty_body_but_not_unknown_fields() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "two-person").await;
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/requests/{id}/approve"),
            json!({"comment": "x", "approver": "carol"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let resp = app
        .http
        .post(format!("{}/v1/requests/{id}/approve", app.url))
        .bearer_auth(app.token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["approvals"][0]["approver"], "bob",
        "the actor comes from the token only"
    );
    assert_eq!(body["approvals"][0]["comment"], Value::Null);
}

/// The `Authorization` scheme is case-insensitive (RFC 9110): `bearer` and `BEARER` are
/// `Bearer`, and only a token that is right authenticates, however the scheme is spelled.
#[tokio::test]
async fn authorization_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let whoami = |value: String| {
        let app = &app;
        async move {
            let resp = app
                .http
                .get(format!("{}/v1/whoami", app.url))
                .header("authorization", value)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, body) = whoami(format!("{scheme} {}", app.token("alice"))).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
        assert_eq!(body["user"], "alice", "{scheme}");
    }
    for wrong in [
        format!("Basic {}", app.token("alice")),
        format!("Bearerx {}", app.token("alice")),
        "bearer cs_0000".to_owned(),
    ] {
        let (status, body) = whoami(wrong.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{wrong}"
        );
    }
}

/// Two `Authorization` headers (say a proxy's beside the client's) are no credential: the
/// server does not pick one (an attacker trial saw the first one win, whoever's it was).
#[tokio::test]
async fn two_authorization_headers_authenticate_nobody() {
    let app = TestApp::spawn().await;
    for (first, second) in [("bob", "alice"), ("alice", "alice")] {
        let resp = app
            .http
            .get(format!("{}/v1/whoami", app.url))
            .header("authorization", format!("Bearer {}", app.token(first)))
            .header("authorization", format!("Bearer {}", app.token(second)))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{first} then {second}: {body}"
        );
    }
}
