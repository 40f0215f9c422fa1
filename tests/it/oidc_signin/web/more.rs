//! The rest of what the web UI promises: signing out, cancelling, who may download a
//! certificate, the filters chosen in the store, the audit page by log line and by
//! request, and the flags that depend on the requester's holdings and the time zone.

use super::*;

/// `who` signed in to the web UI in a fresh browser, on `path`: the browser and the page.
async fn signed_in(app: &TestApp, who: &str, path: &str) -> (reqwest::Client, String) {
    let http = browser();
    assert_eq!(
        web_sign_in(app, &http, who, path).await.status(),
        StatusCode::OK
    );
    let (status, page) = get_page(app, &http, path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    (http, page)
}

#[tokio::test]
async fn signing_out_ends_the_session_and_forgets_the_cookie() {
    let (_idp, app, _s) = spawn_web("").await;
    let (http, page) = signed_in(&app, "bob", "/").await;
    let csrf = field(&page, "/logout", "csrf");
    // Without the token: refused, still signed in.
    let (status, _, _) = post_form(&app, &http, "/logout", &[], &OURS).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = http
        .post(format!("{}/logout", app.url))
        .form(&[("csrf", csrf.as_str())])
        .header("origin", PUBLIC_URL)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cleared = r.headers().get_all(SET_COOKIE).iter().any(|c| {
        c.to_str()
            .is_ok_and(|c| c.starts_with("cs_session=;") && c.contains("Max-Age=0"))
    });
    assert!(cleared, "{r:?}");
    assert!(r.text().await.unwrap().contains("may still remember you"));
    let (_, sessions) = app.get("bob", "/v1/sessions?user=bob").await;
    assert_eq!(sessions["sessions"], json!([]), "{sessions}");
    let r = http.get(format!("{}/", app.url)).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "signed out: to the sign-in again"
    );
}

#[tokio::test]
async fn the_requester_cancels_from_the_page_and_only_they_download_the_certificate() {
    let (_idp, app, _s) = spawn_web("").await;
    let pending = app.create_ok("alice", "prod-db").await;
    let path = format!("/requests/{pending}");
    let (alice, page) = signed_in(&app, "alice", &path).await;
    let cancel = format!("/requests/{pending}/cancel");
    let fields = [("csrf", field(&page, &cancel, "csrf"))];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, text, to) = post_form(&app, &alice, &cancel, &fields, &OURS).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    let (_, page) = get_page(&app, &alice, &to.unwrap()).await;
    assert!(page.contains("You cancelled it."), "{page}");
    assert_eq!(
        app.request("alice", &pending).await.1["status"],
        "cancelled"
    );
    // An issued one: bob (the approver, an admin) may see it, not download it.
    let issued = app.create_ok("alice", "prod-db").await;
    assert_eq!(app.approve("carol", &issued).await.0, StatusCode::OK);
    let (bob, _) = signed_in(&app, "bob", &format!("/requests/{issued}")).await;
    let r = bob
        .get(format!("{}/requests/{issued}/certificate", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!r.text().await.unwrap().contains("-cert-v01@openssh.com"));
}

#[tokio::test]
async fn filters_choose_in_the_store_and_each_list_keeps_to_its_kind() {
    let (_idp, app, _s) = spawn_web("").await;
    let ops = app.create_ok("bob", "ops").await;
    let db = app.create_ok("alice", "prod-db").await;
    let (bob, _) = signed_in(&app, "bob", "/").await;
    let (_, page) = get_page(&app, &bob, "/?role=ops").await;
    let (before, recent) = page.split_once("id=\"recent\"").unwrap();
    let mine = before.split_once("id=\"mine\"").unwrap().1;
    assert!(recent.contains(&ops) && !recent.contains(&db), "{recent}");
    assert!(mine.contains(&ops), "bob's own ops request: {mine}");
    // The inbox is not filtered: alice's prod-db request waits for bob.
    let waiting = before.split_once("id=\"mine\"").unwrap().0;
    assert!(
        waiting.contains(&db) && !waiting.contains(&ops),
        "{waiting}"
    );
    let (_, page) = get_page(&app, &bob, "/?status=denied").await;
    let recent = page.split_once("id=\"recent\"").unwrap().1;
    assert!(recent.contains("No requests."), "{recent}");
    let (status, _) = get_page(&app, &bob, "/?status=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_audit_page_explains_an_sshd_line_and_tells_a_requests_history() {
    let (_idp, app, _s) = spawn_web("").await;
    let id = app.create_ok("alice", "prod-db").await;
    let (_, view) = app.approve("bob", &id).await;
    let cert = &view["certificate"];
    let ca = app.service.ca().fingerprint();
    let line = format!(
        "sshd[7]: Accepted publickey for postgres from 10.1.2.3 port 5122 ssh2: ED25519-CERT \
         SHA256:abc ID {} (serial {}) CA ED25519 {ca}",
        cert["key_id"].as_str().unwrap(),
        cert["serial"].as_str().unwrap()
    );
    let (bob, _) = signed_in(&app, "bob", "/audit").await;
    let query = serde_urlencoded::to_string([("q", line.as_str())]).unwrap();
    let (status, page) = get_page(&app, &bob, &format!("/audit?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("issued to alice"), "{page}");
    assert!(page.contains(&format!("href=\"/requests/{id}\"")), "{page}");
    // A line from another CA is not ours to explain.
    let other = line.replace(&ca, "SHA256:someoneelse");
    let query = serde_urlencoded::to_string([("q", other.as_str())]).unwrap();
    let (status, page) = get_page(&app, &bob, &format!("/audit?{query}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not by this countersign"), "{page}");
    let (_, page) = get_page(&app, &bob, &format!("/audit?request={id}")).await;
    assert!(page.contains("alice requested prod-db for 30m"), "{page}");
    assert!(page.contains("bob approved"), "{page}");
}

#[tokio::test]
async fn a_second_request_of_a_held_role_and_the_time_zone_are_shown() {
    let (idp, _) = provider();
    let secrets = tempfile::tempdir().unwrap();
    let text = config(&idp, secrets.path(), "").replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\ntimezone = \"Europe/Berlin\"\nworking_hours = \"00:00-24:00\"",
    );
    let app = TestApp::spawn_with(&text).await;
    app.create_ok("alice", "prod-db").await;
    let second = app.create_ok("alice", "prod-db").await;
    let (_, page) = signed_in(&app, "bob", &format!("/requests/{second}")).await;
    assert!(
        page.contains("holds this role already, or asked for it"),
        "{page}"
    );
    assert!(page.contains("Europe/Berlin)"), "the local time: {page}");
    // Around the clock on weekdays: flagged only when made on a Berlin weekend.
    let (_, view) = app.request("alice", &second).await;
    let made = chrono::DateTime::parse_from_rfc3339(view["created_at"].as_str().unwrap()).unwrap();
    let weekend = matches!(
        chrono::Datelike::weekday(&made.with_timezone(&chrono_tz::Europe::Berlin)),
        chrono::Weekday::Sat | chrono::Weekday::Sun
    );
    assert_eq!(
        page.contains("asked outside working hours"),
        weekend,
        "{page}"
    );
}
