//! The web UI over HTTP, spoken as a browser speaks it (cookies kept, each redirect
//! looked at, `Origin` and `Sec-Fetch-Site` sent as Chromium sends them): sign-in
//! through the real provider, the pages, and every way a form is refused. The same
//! flows in a real headless Chromium are in `web/chromium.rs`.

use reqwest::header::{CONTENT_SECURITY_POLICY, SET_COOKIE};

use super::*;

mod breakglass;
mod chromium;
mod forms;
mod more;

/// What Chromium sends with a form of ours (`public_url`'s origin; our pages send no
/// Referer, so `Origin` would be `null`: the same-origin `Sec-Fetch-Site` speaks then).
const OURS: [(&str, &str); 2] = [("origin", PUBLIC_URL), ("sec-fetch-site", "same-origin")];

/// A server with sign-in, the test policy, and `extra` config.
async fn spawn_web(extra: &str) -> (Idp, TestApp, tempfile::TempDir) {
    let state = IdpState::new(Client::new("countersign", SECRET, CALLBACK))
        .account("alice", Account::new("alice", &["okta-dba"]))
        .account("bob", Account::new("bob", &[]))
        .account("frank", Account::new("frank", &[]));
    let idp = Idp::start(&state);
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(&config(&idp, secrets.path(), extra)).await;
    (idp, app, secrets)
}

/// Signs `login` in to the web UI the way a browser gets there: asks for `path`, is
/// sent to `/login` and on to the provider, signs in, and comes back to the callback,
/// whose answer (the page that goes on to `path`, with the session cookie) is returned.
async fn web_sign_in(
    app: &TestApp,
    http: &reqwest::Client,
    login: &str,
    path: &str,
) -> reqwest::Response {
    let r = http.get(format!("{}{path}", app.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}: {r:?}");
    let to_login = location(&r);
    let want = format!(
        "/login?{}",
        serde_urlencoded::to_string([("next", path)]).unwrap()
    );
    assert_eq!(
        to_login, want,
        "a page without a session goes to the sign-in"
    );
    let r = http
        .get(format!("{}{to_login}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    let back = sign_in(http, &location(&r), login, "any", CALLBACK).await;
    callback(app, http, &back).await
}

/// A page of ours as a browser gets it: (status, text).
async fn get_page(app: &TestApp, http: &reqwest::Client, path: &str) -> (StatusCode, String) {
    let r = http.get(format!("{}{path}", app.url)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The value of hidden field `name` in the form posting to `action` on `page`.
fn field(page: &str, action: &str, name: &str) -> String {
    let form = page
        .split(&format!("action=\"{action}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no form to {action} in {page}"));
    let form = form.split("</form>").next().unwrap_or_default();
    form.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in the form to {action}: {form}"))
        .to_owned()
}

/// Posts `fields` to `path` with `headers`: (status, page text).
async fn post_form(
    app: &TestApp,
    http: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, String, Option<String>) {
    let mut req = http.post(format!("{}{path}", app.url)).form(fields);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let to = r
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    (r.status(), r.text().await.unwrap(), to)
}

#[tokio::test]
async fn a_page_without_a_session_goes_to_the_provider_and_comes_back_signed_in() {
    let (_idp, app, _s) = spawn_web("").await;
    let id = app.create_ok("alice", "prod-db").await;
    let http = browser();
    let path = format!("/requests/{id}");
    let r = web_sign_in(&app, &http, "bob", &path).await;
    assert_eq!(r.status(), StatusCode::OK, "{r:?}");
    let cookie = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("cs_session="))
        .unwrap_or_else(|| panic!("no session cookie: {r:?}"))
        .to_owned();
    // Plain HTTP on loopback: no `__Host-` prefix, no `Secure`; the rest as over HTTPS.
    assert!(cookie.starts_with("cs_session=css_"), "{cookie}");
    for part in ["Path=/;", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{part} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    // The callback's page goes on to the page asked for by itself (no script).
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("content=\"0;url={path}\"")),
        "{page}"
    );
    let r = http.get(format!("{}{path}", app.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{part} missing: {csp}");
    }
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let page = r.text().await.unwrap();
    assert!(page.contains("Signed in as"), "{page}");
    assert!(page.contains(">bob<"), "{page}");
    assert!(page.contains("1 of group:dba"), "the rule in words: {page}");
    // The session is a person's, made by the web sign-in, listed as such.
    let (_, sessions) = app.get("bob", "/v1/sessions").await;
    assert_eq!(sessions["sessions"][0]["via"], "oidc-web", "{sessions}");
    assert_eq!(sessions["sessions"][0]["user"], "bob", "{sessions}");
    // Taken from the cookie and presented as a bearer token, it is refused.
    let token = cookie["cs_session=".len()..].split(';').next().unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_a_web_sessions_cookie_signs_a_browser_in_and_guessing_is_limited() {
    let (_idp, app, _s) = spawn_web("").await;
    // A session of the CLI (or an API token) planted as the cookie is no web session.
    let cli_session = sign_in_as(&app, "bob").await;
    let planted = [cli_session.as_str(), app.token("bob")];
    for token in planted {
        let r = browser()
            .get(format!("{}/", app.url))
            .header("cookie", format!("cs_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{token}");
        assert!(location(&r).starts_with("/login?"));
        // And the browser is told to drop it.
        let cleared = r.headers().get_all(SET_COOKIE).iter().any(|c| {
            c.to_str()
                .is_ok_and(|c| c.starts_with("cs_session=;") && c.contains("Max-Age=0"))
        });
        assert!(cleared, "{r:?}");
    }
    // Cookies that name nothing count as failed authentications, as bad tokens do.
    let mut statuses = Vec::new();
    for i in 0..25 {
        let r = browser()
            .get(format!("{}/", app.url))
            .header("cookie", format!("cs_session=css_guess{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_person_sees_only_the_roles_they_have_to_do_with() {
    let (_idp, app, _s) = spawn_web("").await;
    let http = browser();
    web_sign_in(&app, &http, "frank", "/").await;
    let (_, page) = get_page(&app, &http, "/").await;
    let filter = page.split("id=\"f-role\"").nth(1).unwrap_or_default();
    let filter = filter.split("</select>").next().unwrap_or_default();
    assert!(filter.contains("value=\"prod-db\""), "{filter}");
    assert!(
        !filter.contains("value=\"ops\""),
        "frank neither asks nor approves ops: {filter}"
    );
}

#[tokio::test]
async fn plain_http_off_loopback_gets_no_web_sign_in() {
    let (idp, _) = provider();
    let secrets = tempfile::tempdir().unwrap();
    let text = config(&idp, secrets.path(), "").replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"0.0.0.0:0\"\nallow_plain_http = true",
    );
    let app = TestApp::spawn_with(&text).await;
    let port = app.url.rsplit(':').next().unwrap().to_owned();
    for path in ["/", "/login?next=/"] {
        let r = browser()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(r.headers().get(SET_COOKIE).is_none(), "{path}");
    }
}

#[tokio::test]
async fn a_link_from_another_site_hops_once_so_the_strict_cookie_goes_with_it() {
    let (_idp, app, _s) = spawn_web("").await;
    let id = app.create_ok("alice", "prod-db").await;
    // A click in chat: Chromium sends no SameSite=Strict cookie on it.
    let r = browser()
        .get(format!("{}/requests/{id}", app.url))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("content=\"0;url=/requests/{id}\"")),
        "{page}"
    );
}

#[tokio::test]
async fn sign_in_comes_back_only_to_a_page_of_this_server() {
    let (_idp, app, _s) = spawn_web("").await;
    let http = browser();
    for next in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let r = http
            .get(format!("{}/login", app.url))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{next}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("next must be a path on this server"),
            "{page}"
        );
    }
}

#[tokio::test]
async fn without_sign_in_configured_the_web_ui_says_so() {
    let app = TestApp::spawn().await;
    let r = browser().get(format!("{}/", app.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("[oidc]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_link_to_the_review_page() {
    use crate::notify::Receiver;
    let (mut hook, mut slack) = (Receiver::new(true), Receiver::new(false));
    hook.start();
    slack.start();
    let events = "[\"request.created\"]";
    let sinks = format!(
        "{}{}",
        hook.sink("hook", events, ""),
        slack.sink("chat", events, "")
    );
    let (_idp, app, _s) = spawn_web(&sinks).await;
    let id = app.create_ok("alice", "prod-db").await;
    let link = format!("{PUBLIC_URL}/requests/{id}");
    let signed = hook.wait_for(10, |e| !e.is_empty()).await;
    assert_eq!(signed[0]["data"]["link"], link.as_str(), "{:?}", signed[0]);
    let message = slack.wait_for(10, |e| !e.is_empty()).await.remove(0);
    let buttons: Vec<&Value> = message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap())
        .collect();
    assert_eq!(buttons.len(), 1, "{message}");
    assert_eq!(buttons[0]["url"], link.as_str(), "{message}");
    assert_eq!(buttons[0]["text"]["text"], "Review");
}

#[tokio::test]
async fn an_unknown_address_is_a_page_for_a_browser_and_json_for_a_client() {
    let app = TestApp::spawn().await;
    let r = browser()
        .get(format!("{}/nope", app.url))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("there is no page at this address")
    );
    let r = browser()
        .get(format!("{}/nope", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&r.json::<Value>().await.unwrap()), "not_found");
}

#[tokio::test]
async fn signing_in_again_in_a_browser_ends_its_old_session_on_the_record() {
    let (_idp, app, _s) = spawn_web("").await;
    let http = browser();
    web_sign_in(&app, &http, "bob", "/").await;
    // Someone else signs in in the same browser (the provider asked to show its form).
    let r = http
        .get(format!("{}/login?step_up=1&next=/", app.url))
        .send()
        .await
        .unwrap();
    let back = sign_in(&http, &location(&r), "alice", "any", CALLBACK).await;
    assert_eq!(callback(&app, &http, &back).await.status(), StatusCode::OK);
    let (_, page) = get_page(&app, &http, "/").await;
    assert!(page.contains("id=\"me\">alice<"), "{page}");
    let (_, sessions) = app.get("bob", "/v1/sessions").await;
    let live: Vec<&Value> = sessions["sessions"].as_array().unwrap().iter().collect();
    assert_eq!(live.len(), 1, "bob's browser session ended: {sessions}");
    assert_eq!(live[0]["user"], "alice");
    let events = app.audit("").await;
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "session.revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{events:?}");
    // Recorded as alice's doing (she signed in), about bob's session.
    assert_eq!(revoked[0]["actor"], "alice", "{:?}", revoked[0]);
    assert_eq!(revoked[0]["detail"]["user"], "bob", "{:?}", revoked[0]);
}
