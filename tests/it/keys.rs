//! SSH keys proven by their owners (`/v1/keys`): a challenge signed with the real
//! `ssh-keygen -Y sign`, checked by the server; a registered key is its owner's alone.

mod proof;
mod sk;
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, new_key, public_line, write_key};

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY` over `text`: the armored signature.
pub fn sign(key: &Path, namespace: &str, text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh-keygen runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -Y sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh key written to `app`'s dir as `name` (and `name.pub`): its path and line.
pub fn key_file(app: &TestApp, name: &str) -> (PathBuf, String) {
    let key = new_key();
    (write_key(app.dir.path(), name, &key), public_line(&key))
}

/// `POST /v1/keys/challenge` as `user` for `line`.
pub async fn challenge(app: &TestApp, user: &str, line: &str) -> (StatusCode, Value) {
    app.post(user, "/v1/keys/challenge", json!({ "public_key": line }))
        .await
}

/// The challenge text, asserting 200.
pub async fn challenge_ok(app: &TestApp, user: &str, line: &str) -> String {
    let (status, body) = challenge(app, user, line).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["challenge"].as_str().unwrap().to_owned()
}

/// `POST /v1/keys` as `user`.
pub async fn register(
    app: &TestApp,
    user: &str,
    line: &str,
    challenge: &str,
    signature: &str,
) -> (StatusCode, Value) {
    let body = json!({ "public_key": line, "challenge": challenge, "signature": signature });
    app.post(user, "/v1/keys", body).await
}

/// Registers a fresh key `name` for `user` with a proof; its path and line.
pub async fn registered(app: &TestApp, user: &str, name: &str) -> (PathBuf, String) {
    let (path, line) = key_file(app, name);
    let text = challenge_ok(app, user, &line).await;
    let (status, body) = register(
        app,
        user,
        &line,
        &text,
        &sign(&path, "countersign-key", &text),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (path, line)
}

/// The fingerprints `GET /v1/keys` lists for `user` (their own).
async fn listed(app: &TestApp, user: &str) -> Vec<(String, String)> {
    let (status, body) = app.get(user, "/v1/keys").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["fingerprint"].as_str().unwrap().to_owned(),
                k["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The audit events of `action`, oldest first.
pub async fn events(app: &TestApp, action: &str) -> Vec<Value> {
    let all = app.audit("").await;
    all.into_iter().filter(|e| e["action"] == action).collect()
}

pub fn fingerprint(line: &str) -> String {
    countersign::pubkey::SubjectKey::parse(line)
        .unwrap()
        .fingerprint()
}

#[tokio::test]
async fn a_key_proven_by_its_owner_is_registered_listed_audited_and_removed() {
    let app = TestApp::spawn().await;
    let (path, line) = key_file(&app, "alice_laptop");
    let line = format!("{line} alice@laptop");
    let (status, body) = challenge(&app, "alice", &line).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["namespace"], "countersign-key");
    let text = body["challenge"].as_str().unwrap();
    assert!(text.contains("user: alice\n"), "{text}");
    assert!(
        text.contains(&format!("key: {}\n", fingerprint(&line))),
        "{text}"
    );
    let signature = sign(&path, "countersign-key", text);
    let (status, body) = register(&app, "alice", &line, text, &signature).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["registered"], true);
    assert_eq!(body["key"]["user"], "alice");
    assert_eq!(body["key"]["source"], "registered");
    assert!(
        body["key"]["public_key"]
            .as_str()
            .unwrap()
            .ends_with(" alice@laptop")
    );
    assert_eq!(
        listed(&app, "alice").await,
        vec![(fingerprint(&line), "registered".into())]
    );
    // Another person sees none of it; an admin asks by name.
    assert!(listed(&app, "frank").await.is_empty());
    let (status, body) = app.get("frank", "/v1/keys?user=alice").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = app.get("bob", "/v1/keys?user=alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["keys"][0]["fingerprint"], fingerprint(&line).as_str());
    let registrations = events(&app, "key.registered").await;
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0]["actor"], "alice");
    assert_eq!(
        registrations[0]["detail"]["fingerprint"],
        fingerprint(&line).as_str()
    );
    assert_eq!(registrations[0]["detail"]["key_type"], "ssh-ed25519");

    // Proving it again changes nothing (200, registered false, no new event).
    let again = challenge_ok(&app, "alice", &line).await;
    let (status, body) = register(
        &app,
        "alice",
        &line,
        &again,
        &sign(&path, "countersign-key", &again),
    )
    .await;
    assert_eq!(
        (status, &body["registered"]),
        (StatusCode::OK, &json!(false)),
        "{body}"
    );
    assert_eq!(events(&app, "key.registered").await.len(), 1);

    // Someone else cannot remove it (nor learn it exists); its owner can.
    let fp = fingerprint(&line);
    let (status, body) = app
        .post("frank", "/v1/keys/remove", json!({ "fingerprint": fp }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app
        .post("alice", "/v1/keys/remove", json!({ "fingerprint": fp }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["removed"]["fingerprint"], fp.as_str());
    assert!(listed(&app, "alice").await.is_empty());
    let removed = events(&app, "key.removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["detail"]["user"], "alice");
    let (status, body) = app
        .post("alice", "/v1/keys/remove", json!({ "fingerprint": fp }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn an_admin_removes_anyones_registered_key_and_the_config_keeps_its_own() {
    let app = TestApp::spawn().await;
    let (_, line) = registered(&app, "alice", "alice_k").await;
    let fp = fingerprint(&line);
    let (status, body) = app
        .post("bob", "/v1/keys/remove", json!({ "fingerprint": fp }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["removed"]["user"], "alice");
    let removals = events(&app, "key.removed").await;
    assert_eq!(removals[0]["actor"], "bob");
    assert!(listed(&app, "alice").await.is_empty());
    let (status, body) = app
        .post(
            "bob",
            "/v1/keys/remove",
            json!({ "fingerprint": "not a fingerprint" }),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[tokio::test]
async fn a_registered_key_is_certified_for_its_owner_only() {
    let app = TestApp::spawn().await;
    let (_, k1) = registered(&app, "alice", "alice_k1").await;
    // frank (a requester of prod-db too) cannot have alice's key certified.
    let (status, body) = app.create_with_key("frank", "prod-db", None, &k1).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("registered to another user")
    );
    // alice registered keys: only those are certified for her now.
    let other = public_line(&new_key());
    let (status, body) = app.create_with_key("alice", "prod-db", None, &other).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    let (status, body) = app.create_with_key("alice", "prod-db", None, &k1).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, body) = app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued", "{body}");

    // A key asked for before someone else registered it is refused at signing.
    let k3 = key_file(&app, "k3");
    let (status, body) = app.create_with_key("frank", "prod-db", None, &k3.1).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let franks = body["id"].as_str().unwrap().to_owned();
    let text = challenge_ok(&app, "alice", &k3.1).await;
    let (status, _) = register(
        &app,
        "alice",
        &k3.1,
        &text,
        &sign(&k3.0, "countersign-key", &text),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.approve("bob", &franks).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    let (_, body) = app.request("frank", &franks).await;
    assert_eq!(body["status"], "refused");
}

#[tokio::test]
async fn with_require_registered_keys_only_registered_keys_are_certified() {
    let required = crate::helpers::POLICY.replace(
        "pending_ttl = \"1h\"",
        "pending_ttl = \"1h\"\nrequire_registered_keys = true",
    );
    let app = TestApp::spawn_with(crate::helpers::POLICY).await;
    // Asked for before the setting was on: refused at signing once it is.
    let before = public_line(&new_key());
    let (status, body) = app.create_with_key("alice", "prod-db", None, &before).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let early = body["id"].as_str().unwrap().to_owned();
    app.service
        .reload(app.config_of(&required), "operator")
        .expect("reload");
    let (status, body) = app.approve("bob", &early).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    let unregistered = public_line(&new_key());
    let (status, body) = app
        .create_with_key("alice", "prod-db", None, &unregistered)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("countersign keys add")
    );
    let refused = events(&app, "attempt.refused").await;
    assert_eq!(refused.last().unwrap()["detail"]["code"], "key_not_allowed");
    let (_, line) = registered(&app, "alice", "alice_k").await;
    let (status, body) = app.create_with_key("alice", "prod-db", None, &line).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, body) = app.approve("bob", body["id"].as_str().unwrap()).await;
    assert_eq!(body["status"], "issued", "{body}");
    assert_eq!(events(&app, "certificate.issued").await.len(), 1);
}

#[tokio::test]
async fn removing_a_key_cancels_the_pending_requests_for_it() {
    let app = TestApp::spawn().await;
    // Once the laptop's key is gone, a request for it must not be signed (a lost
    // laptop; and had it been her only key, nothing at signing would refuse it).
    let (_, line) = registered(&app, "alice", "alice_laptop").await;
    let (status, body) = app.create_with_key("alice", "prod-db", None, &line).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, desk) = registered(&app, "alice", "alice_desk").await;
    let (_, body) = app.create_with_key("alice", "prod-db", None, &desk).await;
    let other = body["id"].as_str().unwrap().to_owned();
    let fp = fingerprint(&line);
    let (status, body) = app
        .post("bob", "/v1/keys/remove", json!({ "fingerprint": fp }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancelled"], json!([id]));
    let (_, request) = app.request("alice", &id).await;
    assert_eq!(request["status"], "cancelled");
    assert!(
        request["decision_note"].as_str().unwrap().contains(&fp),
        "{request}"
    );
    let (status, body) = app.approve("carol", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_decided"),
        "{body}"
    );
    // A request for another key is left alone.
    let (_, request) = app.request("alice", &other).await;
    assert_eq!(request["status"], "pending");
}

#[tokio::test]
async fn a_key_comment_that_could_mislead_is_dropped() {
    let app = TestApp::spawn().await;
    let (path, line) = key_file(&app, "k");
    let spoof = format!("{line} evil\u{202e}gpj.exe\u{2028}ssh-ed25519 AAAAFAKE root@prod");
    let text = challenge_ok(&app, "alice", &spoof).await;
    let (status, body) = register(
        &app,
        "alice",
        &spoof,
        &text,
        &sign(&path, "countersign-key", &text),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["key"]["public_key"], line.as_str());
}

/// `keys list` shows a config key with the comment of its line, as it shows a registered
/// one, and drops a comment that could mislead there too (the policy's digest is the
/// keys alone).
#[tokio::test]
async fn a_config_key_is_listed_with_its_comment_when_it_is_plain_text() {
    let (laptop, spoofed) = (public_line(&new_key()), public_line(&new_key()));
    let policy = crate::helpers::POLICY.replace(
        "[users.alice]\ngroups = [\"dev\"]",
        &format!(
            "[users.alice]\ngroups = [\"dev\"]\nssh_keys = [\"{laptop} alice@laptop\", \
             \"{spoofed} evil\\u202egpj.exe\"]"
        ),
    );
    let app = TestApp::spawn_with(&policy).await;
    let (status, body) = app.get("alice", "/v1/keys").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lines: Vec<&str> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["public_key"].as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&format!("{laptop} alice@laptop").as_str()),
        "{body}"
    );
    assert!(lines.contains(&spoofed.as_str()), "{body}");
}
