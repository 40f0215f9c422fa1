//! Shared by the host certificate tests (`hosts*.rs`): a server with `[host_ca]`, one
//! helper per host endpoint, renewal proofs signed by the real `ssh-keygen -Y sign`, and
//! certificate readers (`ssh-keygen -L`, ssh-key, and Python's `cryptography`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use ssh_key::{Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};

use crate::helpers::*;

/// `[host_ca]` as the host tests run it: certificates of 1h by default, at most 2h.
pub const HOST_CA: &str = r#"
[host_ca]
cert_ttl = "1h"
max_ttl = "2h"
allowed_principals = ["*.example.com", "127.0.0.1", "localhost", "10.0.0.0/8"]
"#;

/// [`POLICY`] with [`HOST_CA`] (bob is an admin, alice is not).
pub fn host_policy() -> String {
    format!("{POLICY}\n{HOST_CA}")
}

/// A server with host certificates on, its time on `clock`.
pub async fn spawn_hosts(clock: &Arc<ManualClock>) -> TestApp {
    TestApp::spawn_with_clock(&host_policy(), clock).await
}

/// `POST /v1/hosts/tokens` as `user`.
pub async fn make_token(app: &TestApp, user: &str, principals: &[&str]) -> (StatusCode, Value) {
    let body = json!({ "principals": principals, "ttl": "15m" });
    app.post(user, "/v1/hosts/tokens", body).await
}

/// A join token bob made for `principals`.
pub async fn token_for(app: &TestApp, principals: &[&str]) -> String {
    let (status, body) = make_token(app, "bob", principals).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// `POST` without a bearer token, as a host does.
pub async fn anon_post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(format!("{}{path}", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET` without a bearer token: status, `X-KRL-Version` (if any) and the body bytes.
pub async fn anon_get(app: &TestApp, path: &str) -> (StatusCode, Option<u64>, Vec<u8>) {
    let resp = app
        .http
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    let version = resp
        .headers()
        .get("x-krl-version")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (resp.status(), version, resp.bytes().await.unwrap().to_vec())
}

/// `POST /v1/hosts/enroll` with `token` for the key `public_key`.
pub async fn enroll(app: &TestApp, token: &str, public_key: &str) -> (StatusCode, Value) {
    let body = json!({ "token": token, "public_key": public_key });
    anon_post(app, "/v1/hosts/enroll", body).await
}

/// Enrolls `key` for `principals` (a fresh token); the certificate view.
pub async fn enroll_ok(app: &TestApp, key: &PrivateKey, principals: &[&str]) -> Value {
    let token = token_for(app, principals).await;
    let (status, body) = enroll(app, &token, &public_line(key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The challenge `POST /v1/hosts/renew/challenge` gives for `public_key`.
pub async fn challenge(app: &TestApp, public_key: &str) -> String {
    let body = json!({ "public_key": public_key });
    let (status, body) = anon_post(app, "/v1/hosts/renew/challenge", body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["namespace"], "countersign-host-renew");
    body["challenge"].as_str().unwrap().to_owned()
}

/// `POST /v1/hosts/renew`.
pub async fn renew(app: &TestApp, cert: &str, challenge: &str, sig: &str) -> (StatusCode, Value) {
    let body = json!({ "certificate": cert, "challenge": challenge, "signature": sig });
    anon_post(app, "/v1/hosts/renew", body).await
}

/// An armored SSHSIG by `key` over `msg` in `namespace` (the ssh-key crate).
pub fn sign(key: &PrivateKey, namespace: &str, msg: &str) -> String {
    key.sign(namespace, HashAlg::Sha512, msg.as_bytes())
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY` over `msg`: the real tool's signature.
pub fn ssh_keygen_sign(key_file: &Path, namespace: &str, msg: &str) -> String {
    let file = key_file.with_extension(format!("msg{}", rand::random::<u32>()));
    std::fs::write(&file, msg).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(key_file)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read_to_string(format!("{}.sig", file.display())).unwrap()
}

/// A challenge for `key`, answered by `key` (ssh-key): (challenge, signature).
pub async fn proof(app: &TestApp, key: &PrivateKey) -> (String, String) {
    let text = challenge(app, &public_line(key)).await;
    let sig = sign(key, "countersign-host-renew", &text);
    (text, sig)
}

/// The serials of a `GET /v1/hosts/certificates` answer.
pub async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = app
        .get("bob", &format!("/v1/hosts/certificates{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_owned())
        .collect()
}

/// A certificate view's `certificate` parsed by ssh-key.
pub fn parsed(view: &Value) -> Certificate {
    Certificate::from_openssh(view["certificate"].as_str().unwrap().trim()).unwrap()
}

/// The public key `GET path` serves (`/v1/host_ca.pub` or `/v1/ca.pub`).
pub async fn served_key(app: &TestApp, path: &str) -> PublicKey {
    let (status, _, bytes) = anon_get(app, path).await;
    assert_eq!(status, StatusCode::OK);
    PublicKey::from_openssh(String::from_utf8(bytes).unwrap().trim()).unwrap()
}

/// Writes `text` to `dir/name` through a temp file and a rename, as a host must do
/// with files sshd or ssh may be reading.
pub fn write_atomically(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// `cmd`'s stderr as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ssh-keygen ARGS` with `stdin`, its output.
pub fn ssh_keygen(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("ssh-keygen")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}
