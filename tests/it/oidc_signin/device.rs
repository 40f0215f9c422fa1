//! The device flow (`countersign login --device`, RFC 8628): the real binary end to end,
//! and the protocol's answers (pending, slow_down, expired, used, refused) by a manual
//! clock.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

/// The confirm page at `url` (a link the CLI printed, on the placeholder public URL):
/// the page, and its form's hidden `csrf`.
async fn open_confirm_page(app: &TestApp, http: &reqwest::Client, url: &str) -> (String, String) {
    let url = url.replace(PUBLIC_URL, &app.url);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    let page = r.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf in {page}"))
        .to_owned();
    (page, csrf)
}

/// Posts the confirm form (`action` confirm or refuse).
async fn post_confirm(
    app: &TestApp,
    http: &reqwest::Client,
    user_code: &str,
    csrf: &str,
    action: &str,
) -> reqwest::Response {
    http.post(format!("{}/v1/oidc/device/confirm", app.url))
        .form(&[("user_code", user_code), ("csrf", csrf), ("action", action)])
        .send()
        .await
        .unwrap()
}

/// Confirms the device login of `url` in a fresh browser and signs in as `login` at the
/// provider; the page countersign ends on.
pub(super) async fn confirm_and_sign_in(
    app: &TestApp,
    url: &str,
    user_code: &str,
    login: &str,
) -> String {
    let http = browser();
    let (_, csrf) = open_confirm_page(app, &http, url).await;
    let r = post_confirm(app, &http, user_code, &csrf, "confirm").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = sign_in(&http, &location(&r), login, "any", CALLBACK).await;
    let r = callback(app, &http, &back).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

pub(super) async fn device_start(app: &TestApp) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/oidc/device", app.url))
        .json(&json!({ "host": "build-7<b>" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

pub(super) async fn poll(app: &TestApp, device_code: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/oidc/token", app.url))
        .json(&json!({
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": device_code,
        }))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

fn rfc_error(answer: &(StatusCode, Value)) -> (StatusCode, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or("<none>"))
}

#[tokio::test]
async fn inside_an_ssh_session_login_uses_the_device_flow_end_to_end() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let home = tempfile::tempdir().unwrap();
    // As in an SSH session: no --device, the CLI chooses it.
    let mut cmd = cli(home.path(), &["login", "--url", &app.url]);
    cmd.env("SSH_CONNECTION", "192.0.2.1 50000 192.0.2.2 22");
    let (login, url, _) = start_cli(cmd).await;
    let prefix = format!("{PUBLIC_URL}/v1/oidc/device?user_code=");
    let user_code = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("the CLI printed {url}"))
        .to_owned();
    assert_eq!(user_code.len(), 9, "{user_code}");
    // The page shows the code, the address the CLI came from, and the warning.
    let http = browser();
    let (page, _) = open_confirm_page(&app, &http, &url).await;
    assert!(page.contains(&user_code), "{page}");
    assert!(page.contains("127.0.0.1"), "{page}");
    assert!(page.contains("Never confirm a login"), "{page}");
    let done = confirm_and_sign_in(&app, &url, &user_code, "alice").await;
    assert!(
        done.contains("You signed in as <strong>alice</strong>"),
        "{done}"
    );
    let out = tokio::task::spawn_blocking(move || login.wait_with_output().unwrap())
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("code {user_code}")), "{said}");
    // Later commands find the server from the saved session: no --url needed.
    let who = run_cli(cli(home.path(), &["whoami", "--json"])).await;
    let me: Value = serde_json::from_slice(&who.stdout).unwrap_or_else(|_| {
        panic!("{}", String::from_utf8_lossy(&who.stderr));
    });
    assert_eq!(me["user"], "alice");
    // The session says how it was made.
    let (_, sessions) = app.get("bob", "/v1/sessions").await;
    assert_eq!(sessions["sessions"][0]["via"], "oidc-device", "{sessions}");
    // Signing in again ends the session saved before (it would stay a live token).
    let file = home.path().join(".config/countersign/session");
    let first = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let (again, url, _) = start_cli(cli(home.path(), &["login", "--device"])).await;
    let code = url.rsplit('=').next().unwrap().to_owned();
    confirm_and_sign_in(&app, &url, &code, "alice").await;
    let out = tokio::task::spawn_blocking(move || again.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(whoami(&app, &first).await.0, StatusCode::UNAUTHORIZED);
    let second = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(whoami(&app, &second).await.0, StatusCode::OK);
}

#[tokio::test]
async fn device_polls_answer_as_rfc_8628_says() {
    let (idp, _) = provider();
    let clock = manual_clock();
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with_clock(&config(&idp, secrets.path(), ""), &clock).await;
    let grant = device_start(&app).await;
    assert_eq!(grant["interval"], 5);
    assert_eq!(grant["expires_in"], 600);
    assert_eq!(
        grant["verification_uri"],
        format!("{PUBLIC_URL}/v1/oidc/device")
    );
    let device_code = grant["device_code"].as_str().unwrap().to_owned();
    let user_code = grant["user_code"].as_str().unwrap().to_owned();
    let first = poll(&app, &device_code).await;
    assert_eq!(
        rfc_error(&first),
        (StatusCode::BAD_REQUEST, "authorization_pending")
    );
    // Again at once: too fast.
    let again = poll(&app, &device_code).await;
    assert_eq!(rfc_error(&again), (StatusCode::BAD_REQUEST, "slow_down"));
    // The interval is now 10 s (then 15 s after the second slow_down): 6 s later is
    // still too fast, 16 s more is not.
    clock.advance(std::time::Duration::from_secs(6));
    assert_eq!(rfc_error(&poll(&app, &device_code).await).1, "slow_down");
    clock.advance(std::time::Duration::from_secs(16));
    assert_eq!(
        rfc_error(&poll(&app, &device_code).await).1,
        "authorization_pending"
    );
    // The host the CLI gave is shown only in safe characters.
    let url = grant["verification_uri_complete"].as_str().unwrap();
    let (page, _) = open_confirm_page(&app, &browser(), url).await;
    assert!(page.contains("build-7b") && !page.contains("<b>"), "{page}");
    confirm_and_sign_in(&app, url, &user_code, "alice").await;
    clock.advance(std::time::Duration::from_secs(20));
    let (status, body) = poll(&app, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = body["session"].as_str().unwrap();
    assert_eq!(whoami(&app, session).await.1["user"], "alice");
    // The device code is spent; the page no longer knows the user code.
    clock.advance(std::time::Duration::from_secs(20));
    assert_eq!(
        rfc_error(&poll(&app, &device_code).await),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let r = browser()
        .get(url.replace(PUBLIC_URL, &app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A login nobody finishes is over after ten minutes.
    let late = device_start(&app).await;
    clock.advance(std::time::Duration::from_secs(601));
    let code = late["device_code"].as_str().unwrap();
    assert_eq!(
        rfc_error(&poll(&app, code).await),
        (StatusCode::BAD_REQUEST, "expired_token")
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 1);
}

#[tokio::test]
async fn a_device_login_is_refused_from_its_page_and_never_confirmed_from_elsewhere() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let grant = device_start(&app).await;
    let url = grant["verification_uri_complete"].as_str().unwrap();
    let user_code = grant["user_code"].as_str().unwrap();
    let device_code = grant["device_code"].as_str().unwrap();
    // A form posted from another site (no cookie of the page) confirms nothing, even with
    // a csrf value read from someone else's page.
    let attacker = browser();
    let (_, their_csrf) = open_confirm_page(&app, &attacker, url).await;
    let victim = browser();
    let r = post_confirm(&app, &victim, user_code, &their_csrf, "confirm").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT count(*) FROM oidc_logins"), 0);
    // A cookie planted in the victim's browser (cookie tossing from a sibling subdomain)
    // with a matching form from another site: the browser says where the form came from.
    let (_, csrf) = open_confirm_page(&app, &attacker, url).await;
    for (name, value) in [
        ("origin", "https://evil.example.com"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = attacker
            .post(format!("{}/v1/oidc/device/confirm", app.url))
            .header(name, value)
            .form(&[
                ("user_code", user_code),
                ("csrf", &csrf),
                ("action", "confirm"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    assert_eq!(app.count("SELECT count(*) FROM oidc_logins"), 0);
    // The person refuses: the CLI hears access_denied, once.
    let (_, csrf) = open_confirm_page(&app, &victim, url).await;
    let r = post_confirm(&app, &victim, user_code, &csrf, "refuse").await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer = poll(&app, device_code).await;
    assert_eq!(
        rfc_error(&answer),
        (StatusCode::BAD_REQUEST, "access_denied")
    );
    assert_eq!(rfc_error(&poll(&app, device_code).await).1, "invalid_grant");
    // A typed code that matches nothing: the page says so.
    let r = browser()
        .get(format!("{}/v1/oidc/device?user_code=BCDF-GHJK", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("No login waits"));
}

#[tokio::test]
async fn one_address_gets_sixty_sign_in_requests_a_minute() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let http = reqwest::Client::new();
    for _ in 0..60 {
        let r = http
            .post(format!("{}/v1/oidc/device", app.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = http
        .get(format!("{}/v1/oidc/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(code(&r.json::<Value>().await.unwrap()), "rate_limited");
    // The rest of the API is not held back.
    assert_eq!(app.get("bob", "/v1/whoami").await.0, StatusCode::OK);
}

/// The session of a device login started here and confirmed by `login` at the provider.
async fn device_session(app: &TestApp, login: &str) -> String {
    let grant = device_start(app).await;
    let url = grant["verification_uri_complete"].as_str().unwrap();
    let user_code = grant["user_code"].as_str().unwrap();
    confirm_and_sign_in(app, url, user_code, login).await;
    let (status, body) = poll(app, grant["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_session_from_a_device_login_asks_only_for_keys_registered_to_its_user() {
    // frank holds alice's session from a device login she confirmed (as below). alice has
    // registered no key: without this rule, he would get her access for his own key.
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let phished = device_session(&app, "alice").await;
    // The session says what it is (and the CLI's whoami what it cannot do).
    assert_eq!(whoami(&app, &phished).await.1["session"], "oidc-device");
    let ask = |line: &str| json!({ "role": "prod-db", "public_key": line, "reason": "INC-1" });
    let (_, franks) = crate::keys::key_file(&app, "frank_key");
    let (status, body) =
        super::step_up::post_as(&app, &phished, "/v1/requests", ask(&franks)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    let said = body["error"]["message"].as_str().unwrap();
    assert!(said.contains("device flow"), "{said}");
    assert_eq!(app.count("SELECT count(*) FROM requests"), 0);
    // A key alice registered (from a sign-in that may) is asked for from the same session.
    let (_, alices) = crate::keys::registered(&app, "alice", "alice_key").await;
    let (status, body) =
        super::step_up::post_as(&app, &phished, "/v1/requests", ask(&alices)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Now that she has keys, another key is refused the same way: the message says that
    // the device session is why, and what to do.
    let (status, body) =
        super::step_up::post_as(&app, &phished, "/v1/requests", ask(&franks)).await;
    assert_eq!(code(&body), "key_not_allowed", "{status} {body}");
    let said = body["error"]["message"].as_str().unwrap();
    assert!(
        said.contains("device flow") && said.contains("--loopback"),
        "{said}"
    );
}

#[tokio::test]
async fn a_session_from_a_device_login_never_approves() {
    // Anyone can start a device login and send its link to someone to confirm: frank
    // (a requester) starts one, alice (who can approve prod-db by her provider group)
    // confirms it. Frank now holds alice's session, and it must not approve his request.
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    let phished = device_session(&app, "alice").await;
    let id = app.create_ok("frank", "prod-db").await;
    refused_for_loopback(approve_with(&app, &phished, &id).await);
    let (_, request) = app.request("frank", &id).await;
    assert_eq!(request["status"], "pending");
    assert_eq!(request["approvals"], json!([]));
    // Nor can it register frank's key as alice's, to approve with at the SSH front door.
    let (_, line) = crate::keys::key_file(&app, "frank_key");
    let challenge = json!({ "public_key": line });
    refused_for_loopback(
        super::step_up::post_as(&app, &phished, "/v1/keys/challenge", challenge).await,
    );
    // The same person signed in by the loopback flow approves.
    let session = sign_in_as(&app, "alice").await;
    assert_eq!(approve_with(&app, &session, &id).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_device_flow_can_be_turned_off() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "device_flow = false").await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/oidc/device", app.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "signin_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("device_flow = false")
    );
}

#[tokio::test]
async fn a_flood_of_device_logins_costs_the_oldest_not_the_next_one() {
    let (idp, _) = provider();
    let (app, _s) = spawn(&idp, "").await;
    // Ten thousand waiting device logins from many addresses, a minute old.
    let now = chrono::Utc::now().timestamp();
    app.sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
         INSERT INTO device_logins (device_hash, user_code_hash, client_host, client_address, \
         step_up, interval_secs, created_at, expires_at, status) \
         SELECT 'flood-' || i, 'flood-code-' || i, 'flood', '192.0.2.1', 0, 5, {} - i, {}, \
         'pending' FROM n",
        now - 60,
        now + 500
    ));
    assert_eq!(app.count("SELECT count(*) FROM device_logins"), 10_000);
    // A person's login still starts, and can be confirmed; the oldest flood entry went
    // (the one made longest ago), and only it.
    let grant = device_start(&app).await;
    assert_eq!(app.count("SELECT count(*) FROM device_logins"), 10_000);
    let left = |hash: &str| {
        app.count(&format!(
            "SELECT count(*) FROM device_logins WHERE device_hash = '{hash}'"
        ))
    };
    assert_eq!(left("flood-10000"), 0, "the oldest went");
    assert_eq!(left("flood-1"), 1);
    assert_eq!(left("flood-9999"), 1);
    let url = grant["verification_uri_complete"].as_str().unwrap();
    let (page, _) = open_confirm_page(&app, &browser(), url).await;
    assert!(page.contains(grant["user_code"].as_str().unwrap()));
}

/// 401 `reauth_required`, the message naming the loopback sign-in that would do.
fn refused_for_loopback((status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "reauth_required", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--loopback"), "{message}");
}
