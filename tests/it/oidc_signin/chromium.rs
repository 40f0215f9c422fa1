//! Both login modes in a real browser (headless Chromium through Playwright), with the
//! real `countersign login` binary, ending with a certificate that logs in to a real sshd.

use std::path::PathBuf;

use reqwest::StatusCode;

use super::*;
use crate::idp::{Account, Client, Front, Idp, IdpState, chromium_sign_in};
use crate::sshd_helper::{Sshd, current_user};

/// A role whose principal is the user running the tests (so sshd can log in as it).
fn shell_role() -> String {
    format!(
        "[roles.shell]\nprincipals = [\"{}\"]\nrequesters = [\"group:dev\"]\n\
         approvers = [\"group:dba\"]\nmax_ttl = \"1h\"\n",
        current_user()
    )
}

/// A provider (alice in okta-dba, a dev in the TOML) and a server whose public URL is a
/// [`Front`] forwarding to it, so that the provider's redirects reach it as they would
/// in production; the roles include `shell`.
async fn spawn_public() -> (Idp, TestApp, tempfile::TempDir) {
    let front = Front::bind();
    let callback = format!("{}/v1/oidc/callback", front.url);
    let state = IdpState::new(Client::new("countersign", SECRET, &callback))
        .account("alice", Account::new("alice", &["okta-dba"]));
    let idp = Idp::start(&state);
    let secrets = tempfile::tempdir().unwrap();
    let text = config(&idp, secrets.path(), &shell_role()).replace(PUBLIC_URL, &front.url);
    let app = TestApp::spawn_with(&text).await;
    front.forward_to(&app.url);
    (idp, app, secrets)
}

/// Signs in with `args` (`login ...`) through Chromium as alice; the session token.
async fn login_in_chromium(app: &TestApp, home: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["login", "--url", &app.url];
    all.extend_from_slice(args);
    let (login, url, _) = start_cli(cli(home, &all)).await;
    let ended = tokio::task::spawn_blocking(move || chromium_sign_in(&url, "alice", "any"))
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || login.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nthe browser ended at {} with: {}",
        String::from_utf8_lossy(&out.stderr),
        ended.url,
        ended.text
    );
    let file = home.join(".config/countersign/session");
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

/// alice (with `session`) asks for `shell` for the key at `key_path` (public `line`),
/// bob approves: the certificate logs in to a real sshd trusting only the CA.
async fn certificate_logs_in(app: &TestApp, session: &str, name: &str, key: (PathBuf, String)) {
    let (key_path, line) = key;
    let http = reqwest::Client::new();
    let (status, body) = ask_with(app, session, "shell", &line).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, body) = app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let cert = http
        .get(format!("{}/v1/requests/{id}/certificate", app.url))
        .bearer_auth(session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cert_path = app.dir.path().join(format!("{name}-cert.pub"));
    std::fs::write(&cert_path, cert).unwrap();
    let sshd = Sshd::start(
        &app.dir.path().join(format!("sshd-{name}")),
        &app.service.ca().public_key_line(),
    );
    let user = current_user();
    let ok = tokio::task::spawn_blocking(move || sshd.login(&user, &key_path, &cert_path))
        .await
        .unwrap();
    assert!(ok, "the certificate did not log in");
}

#[tokio::test]
async fn the_loopback_login_in_a_real_browser_ends_in_an_sshd_login() {
    let (_idp, app, _s) = spawn_public().await;
    let home = tempfile::tempdir().unwrap();
    let session = login_in_chromium(&app, home.path(), &["--loopback"]).await;
    assert_eq!(whoami(&app, &session).await.1["user"], "alice");
    let key = crate::keys::key_file(&app, "loopback");
    certificate_logs_in(&app, &session, "loopback", key).await;
}

#[tokio::test]
async fn the_device_login_in_a_real_browser_ends_in_an_sshd_login() {
    let (_idp, app, _s) = spawn_public().await;
    let home = tempfile::tempdir().unwrap();
    let session = login_in_chromium(&app, home.path(), &["--device"]).await;
    let (_, sessions) = app.get("bob", "/v1/sessions").await;
    assert_eq!(sessions["sessions"][0]["via"], "oidc-device", "{sessions}");
    // A device-flow session asks only for a key registered to its user, registered from
    // where she signs in with a browser (here: with her token).
    let key = crate::keys::registered(&app, "alice", "device").await;
    certificate_logs_in(&app, &session, "device", key).await;
}
