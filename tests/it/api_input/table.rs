//! One table of hostile input through the real HTTP API: content types, JSON shapes,
//! control characters and Unicode tricks in reasons, odd public keys, odd TTLs, path
//! traversal and injection strings in ids. Every row must get its 4xx and code, and the
//! database and audit log must not change at all.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Rows, audit events and the audit head: any write shows up here.
fn fingerprint(app: &TestApp) -> (i64, i64, i64, i64, String) {
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let n = |t: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    let head: String = conn
        .query_row(
            "SELECT coalesce(max(hash), '') FROM audit WHERE seq = (SELECT max(seq) FROM audit)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (
        n("requests"),
        n("approvals"),
        n("certificates"),
        n("audit"),
        head,
    )
}

/// One hostile request and the answer it must get.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn create(name: &str, body: Value) -> Case {
    json_case(name, "/v1/requests", body)
}

fn json_case(name: &str, path: &str, body: Value) -> Case {
    Case {
        name: name.to_owned(),
        method: "POST",
        path: path.to_owned(),
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
    }
}

fn raw(
    name: &str,
    content_type: Option<&'static str>,
    body: &[u8],
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name: name.to_owned(),
        method: "POST",
        path: "/v1/requests".to_owned(),
        content_type,
        body: body.to_vec(),
        status: StatusCode::from_u16(status).unwrap(),
        code,
    }
}

fn with_key(key: &str) -> Value {
    json!({"role": "prod-db", "public_key": key, "reason": "INC-1"})
}

fn content_type_cases(good: &str) -> Vec<Case> {
    let b = good.as_bytes();
    vec![
        raw("no content type", None, b, 415, "unsupported_media_type"),
        raw(
            "form encoded",
            Some("application/x-www-form-urlencoded"),
            b,
            415,
            "unsupported_media_type",
        ),
        raw(
            "text/json",
            Some("text/json"),
            b,
            415,
            "unsupported_media_type",
        ),
        raw(
            "json look-alike",
            Some("application/jsonx"),
            b,
            415,
            "unsupported_media_type",
        ),
        raw(
            "multipart",
            Some("multipart/form-data; boundary=x"),
            b,
            415,
            "unsupported_media_type",
        ),
        raw(
            "empty body",
            Some("application/json"),
            b"",
            400,
            "invalid_request",
        ),
        raw(
            "null",
            Some("application/json"),
            b"null",
            400,
            "invalid_request",
        ),
        raw(
            "a string",
            Some("application/json"),
            b"\"prod-db\"",
            400,
            "invalid_request",
        ),
        raw(
            "trailing garbage",
            Some("application/json"),
            format!("{good} x").as_bytes(),
            400,
            "invalid_request",
        ),
        raw(
            "byte order mark",
            Some("application/json"),
            format!("\u{feff}{good}").as_bytes(),
            400,
            "invalid_request",
        ),
        raw(
            "not UTF-8",
            Some("application/json"),
            b"{\"role\":\"\xff\"}",
            400,
            "invalid_request",
        ),
        raw(
            "deep nesting",
            Some("application/json"),
            "[".repeat(5000).as_bytes(),
            400,
            "invalid_request",
        ),
        raw(
            "1 MiB",
            Some("application/json"),
            &vec![b' '; 1 << 20],
            413,
            "payload_too_large",
        ),
    ]
}

fn reason_cases(key: &str) -> Vec<Case> {
    let tricks = [
        ("NUL", "a\u{0}b"),
        ("CR LF log forging", "ok\r\n2026-01-01 INFO approved by bob"),
        ("escape sequence", "\u{1b}[2J\u{1b}[Hhidden"),
        ("DEL", "a\u{7f}b"),
        ("C1 control", "a\u{85}b"),
        ("right-to-left override", "fix \u{202e}gpj.exe"),
        ("right-to-left isolate", "a\u{2067}b"),
        ("zero-width space", "IN\u{200b}C-1"),
        ("byte order mark inside", "a\u{feff}b"),
        ("line separator", "a\u{2028}b"),
        ("tag characters", "ok\u{e0041}\u{e0042}"),
        ("paragraph separator", "a\u{2029}b"),
        ("arabic letter mark", "a\u{61c}b"),
        ("word joiner", "a\u{2060}b"),
        ("soft hyphen", "a\u{ad}b"),
        ("variation selector", "ok\u{fe0f}"),
        ("variation selector supplement", "ok\u{e0100}"),
        ("combining grapheme joiner", "a\u{34f}b"),
        ("hangul filler", "INC-1 \u{3164}\u{3164}"),
        ("halfwidth hangul filler", "a\u{ffa0}b"),
        ("hangul choseong filler", "a\u{115f}b"),
        ("braille blank", "ok\u{2800}\u{2800}"),
        ("mongolian free variation selector", "a\u{180b}b"),
        ("only spaces", "   "),
    ];
    tricks
        .into_iter()
        .map(|(name, reason)| {
            create(
                &format!("reason: {name}"),
                json!({"role": "prod-db", "public_key": key, "reason": reason}),
            )
        })
        .collect()
}

fn ttl_cases(key: &str) -> Vec<Case> {
    let ttls = [
        json!("0s"),
        json!("0"),
        json!("-1h"),
        json!("1ms"),
        json!("1.0000001s"),
        json!("1e9s"),
        json!("99999999999h"),
        json!("3h"),
        json!(" "),
        json!("45"),
        json!("P1D"),
        json!("1h; DROP TABLE requests"),
        json!(3600),
        json!(null),
        json!(["1h"]),
    ];
    ttls.into_iter()
        .map(|ttl| {
            let mut body = with_key(key);
            body["ttl"] = ttl.clone();
            // `null` is "no ttl" to serde; it must then be the role's default, so it is
            // not a bad input: test it as a role-name trick instead.
            if ttl.is_null() {
                body["role"] = json!("prod\u{2011}db");
            }
            create(&format!("ttl {ttl}"), body)
        })
        .collect()
}

fn role_cases(key: &str) -> Vec<Case> {
    [
        "pr\u{43e}d-db",
        "ｐｒｏｄ-ｄｂ",
        "prod-db\u{0}",
        "../prod-db",
        "prod-db ",
        "",
        "PROD-DB",
    ]
    .into_iter()
    .map(|role| {
        create(
            &format!("role {role:?}"),
            json!({"role": role, "public_key": key, "reason": "INC-1"}),
        )
    })
    .collect()
}

/// Keys made by the real ssh-keygen, plus hand-built lines it cannot make.
fn key_cases(app: &TestApp) -> Vec<Case> {
    let dir = app.dir.path();
    let keygen = |args: &[&str], name: &str| -> String {
        let path = dir.join(name);
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", "", "-f"])
            .arg(&path)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ssh-keygen {args:?}");
        std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap()
    };
    let good = public_line(&new_key());
    let sk = ssh_key::PublicKey::new(
        ssh_key::public::KeyData::SkEd25519(ssh_key::public::SkEd25519::new(
            ssh_key::public::Ed25519PublicKey([7; 32]),
            "ssh:",
        )),
        "",
    )
    .to_openssh()
    .unwrap();
    let ca = app.service.ca().public_key_line();
    let keys: Vec<(&str, String)> = vec![
        ("DSA", keygen(&["-t", "dsa"], "dsa")),
        ("RSA 1024", keygen(&["-t", "rsa", "-b", "1024"], "rsa1024")),
        ("RSA 2048", keygen(&["-t", "rsa", "-b", "2048"], "rsa2048")),
        ("security key", sk),
        ("the CA's own key", ca),
        ("two keys", format!("{good}\n{good}")),
        (
            "options prefix",
            format!("no-pty,command=\"/bin/sh\" {good}"),
        ),
        ("from= prefix", format!("from=\"*\" {good}")),
        ("comment with control chars", format!("{good} me\u{1b}[31m")),
        ("NUL inside", format!("{good}\u{0}")),
        ("type only", "ssh-ed25519".into()),
        ("empty", String::new()),
        (
            "wrong type for blob",
            good.replacen("ssh-ed25519", "ecdsa-sha2-nistp256", 1),
        ),
        ("not base64", "ssh-ed25519 !!!!".into()),
        ("private key", "-----BEGIN OPENSSH PRIVATE KEY-----".into()),
        ("huge line", format!("ssh-rsa {}", "A".repeat(20_000))),
    ];
    keys.into_iter()
        .map(|(name, key)| create(&format!("key: {name}"), with_key(&key)))
        .collect()
}

fn id_cases() -> Vec<Case> {
    let ids = [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "r-aaaaaaaaaaaa%00",
        "r-aaaaaaaaaaaa'",
        "r-'%20OR%20'1'='1",
        "%3BDROP%20TABLE%20requests%3B--",
        "r-%D0%B0aaaaaaaaaaa",
        "r-AAAAAAAAAAAA",
        &"r-a".repeat(200),
    ];
    let mut cases = Vec::new();
    for id in ids {
        let mut these = Vec::new();
        for action in ["approve", "deny", "cancel", "done"] {
            these.push(json_case(
                &format!("{action} {id}"),
                &format!("/v1/requests/{id}/{action}"),
                json!({"reason": "x"}),
            ));
        }
        let mut get = json_case(
            &format!("get {id}"),
            &format!("/v1/requests/{id}"),
            json!({}),
        );
        get.method = "GET";
        these.push(get);
        if id == "%2e%2e" {
            // The client resolves the dot segment before sending: no such endpoint.
            for c in &mut these {
                (c.status, c.code) = (StatusCode::NOT_FOUND, "not_found");
            }
        }
        cases.extend(these);
    }
    for serial in [
        "0",
        "-1",
        "18446744073709551616",
        "1e3",
        "0x10",
        "1%20OR%201=1",
    ] {
        cases.push(json_case(
            &format!("revoke serial {serial}"),
            &format!("/v1/certificates/{serial}/revoke"),
            json!({"reason": "x"}),
        ));
    }
    for name in ["..%2Fbob", "Bob", "bob%00", "b%C3%B6b"] {
        cases.push(json_case(
            &format!("revoke user {name}"),
            &format!("/v1/users/{name}/revoke"),
            json!({"reason": "x"}),
        ));
    }
    cases
}

async fn send(app: &TestApp, case: &Case) -> (StatusCode, Value) {
    // Admin bob sends the id cases (so a refusal is never just "not an admin"); alice the rest.
    let user = if case.path == "/v1/requests" || case.method == "GET" {
        "alice"
    } else {
        "bob"
    };
    let url = format!("{}{}", app.url, case.path);
    let mut req = match case.method {
        "GET" => app.http.get(url),
        _ => app.http.post(url).body(case.body.clone()),
    };
    req = req.bearer_auth(app.token(user));
    if let Some(ct) = case.content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("answered");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_hostile_input_gets_a_clear_4xx_and_changes_nothing() {
    // SQLite only: the test reaches into the database file itself.
    let app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    // One real request, so that ids of the right shape exist next to the bad ones.
    let real = app.create_ok("alice", "two-person").await;
    let key = public_line(&new_key());
    let good = with_key(&key).to_string();
    let mut cases = content_type_cases(&good);
    cases.extend(reason_cases(&key));
    cases.extend(ttl_cases(&key));
    cases.extend(role_cases(&key));
    cases.extend(key_cases(&app));
    cases.extend(id_cases());
    // docs/SECURITY.md promises a table of 120+ hostile inputs; keep it from shrinking.
    assert!(cases.len() >= 120, "only {} cases", cases.len());
    let before = fingerprint(&app);
    let mut wrong = Vec::new();
    for case in &cases {
        let (status, body) = send(&app, case).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if (status, code(&body)) != (case.status, case.code) || message.is_empty() {
            wrong.push(format!("{}: got {status} {body}", case.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(
        fingerprint(&app),
        before,
        "the database or audit log changed"
    );
    let (status, body) = app.request("alice", &real).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
}
