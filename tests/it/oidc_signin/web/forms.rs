//! The web UI's forms: approve and deny through the same rules as the API, and each
//! way a form is refused (no token, another site, a stale version, one's own request).

use super::*;

/// Form fields or headers.
type Fields<'a> = [(&'a str, &'a str)];

/// bob, signed in to the web UI in `http`, on the review page of `id`: its text.
async fn bob_reviews(app: &TestApp, http: &reqwest::Client, id: &str) -> String {
    let path = format!("/requests/{id}");
    let r = web_sign_in(app, http, "bob", &path).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (status, page) = get_page(app, http, &path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

#[tokio::test]
async fn an_approver_sees_the_request_waiting_and_approves_it_from_the_browser() {
    let (_idp, app, _s) = spawn_web("").await;
    let id = app.create_ok("alice", "prod-db").await;
    let http = browser();
    let page = bob_reviews(&app, &http, &id).await;
    let (_, list) = get_page(&app, &http, "/").await;
    let waiting = list.split("id=\"mine\"").next().unwrap_or_default();
    assert!(waiting.contains(&id), "not waiting for bob: {list}");
    assert!(page.contains("INC-4211: prod-db for alice"), "{page}");
    assert!(
        page.contains("<code>postgres</code>, <code>alice</code>"),
        "{page}"
    );
    // A link that claims bob approved already says nothing of the kind.
    let (_, claimed) = get_page(&app, &http, &format!("/requests/{id}?done=approved")).await;
    assert!(!claimed.contains("You approved it"), "{claimed}");
    let action = format!("/requests/{id}/approve");
    let (csrf, version) = (
        field(&page, &action, "csrf"),
        field(&page, &action, "version"),
    );
    let fields = [
        ("csrf", csrf.as_str()),
        ("version", &version),
        ("comment", "looks right"),
    ];
    let (status, text, to) = post_form(&app, &http, &action, &fields, &OURS).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    let to = to.unwrap();
    assert_eq!(to, format!("/requests/{id}?done=approved"));
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    assert_eq!(body["approvals"][0]["approver"], "bob");
    assert_eq!(body["approvals"][0]["comment"], "looks right");
    let (_, page) = get_page(&app, &http, &to).await;
    assert!(
        page.contains("You approved it: the certificate is issued (serial "),
        "{page}"
    );
    assert!(page.contains("status-issued"), "{page}");
    assert!(
        page.contains("it is issued: there is nothing left to decide"),
        "{page}"
    );
}

#[tokio::test]
async fn forged_and_cross_site_forms_are_refused_and_change_nothing() {
    let (_idp, app, _s) = spawn_web("").await;
    let id = app.create_ok("alice", "prod-db").await;
    let http = browser();
    let page = bob_reviews(&app, &http, &id).await;
    let action = format!("/requests/{id}/approve");
    let (csrf, version) = (
        field(&page, &action, "csrf"),
        field(&page, &action, "version"),
    );
    let good = [("csrf", csrf.as_str()), ("version", version.as_str())];
    let no_token = [("version", version.as_str())];
    let wrong_token = [
        ("csrf", "0123456789abcdef0123456789abcdef"),
        ("version", &version),
    ];
    let cases: [(&str, &Fields, &Fields); 8] = [
        ("no token", &no_token, &OURS),
        ("another session's token", &wrong_token, &OURS),
        (
            "another origin",
            &good,
            &[
                ("origin", "http://127.0.0.1:1"),
                ("sec-fetch-site", "same-site"),
            ],
        ),
        (
            "a cross-site form",
            &good,
            &[("sec-fetch-site", "cross-site")],
        ),
        (
            "an opaque origin from elsewhere",
            &good,
            &[("origin", "null"), ("sec-fetch-site", "cross-site")],
        ),
        // With the right token, the browser's word alone refuses.
        (
            "another origin said same-origin",
            &good,
            &[
                ("origin", "http://127.0.0.1:1"),
                ("sec-fetch-site", "same-origin"),
            ],
        ),
        (
            "another origin, no Sec-Fetch-Site",
            &good,
            &[("origin", "http://127.0.0.1:1")],
        ),
        ("neither header", &good, &[]),
    ];
    for (what, fields, headers) in cases {
        let (status, text, to) = post_form(&app, &http, &action, fields, headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {text}");
        assert_eq!(to, None, "{what}: a refusal is no redirect");
        assert!(text.contains("Nothing was changed"), "{what}: {text}");
    }
    // Without the session cookie at all (a form from another site in a browser that
    // holds it: SameSite=Strict keeps it home).
    let (status, text, _) = post_form(&app, &browser(), &action, &good, &OURS).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(body["status"], "pending", "{body}");
    assert_eq!(body["approvals"], json!([]));
}

#[tokio::test]
async fn the_requester_sees_why_they_cannot_approve_and_the_rules_refuse_them_anyway() {
    let (_idp, app, _s) = spawn_web("").await;
    // alice is in dba through the provider, so an approver of prod-db, and its requester.
    let http = browser();
    let r = web_sign_in(&app, &http, "alice", "/requests/new").await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, form) = get_page(&app, &http, "/requests/new").await;
    let csrf = field(&form, "/requests", "csrf");
    let key = crate::helpers::public_line(&crate::helpers::new_key());
    let fields = [
        ("csrf", csrf.as_str()),
        ("role", "prod-db"),
        ("public_key", key.as_str()),
        ("ttl", "45m"),
        ("reason", "INC-77 <script>alert(1)</script>"),
    ];
    let (status, text, to) = post_form(&app, &http, "/requests", &fields, &OURS).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    let to = to.unwrap();
    let id = to.strip_prefix("/requests/").unwrap();
    let id = id.strip_suffix("?done=created").unwrap().to_owned();
    let (_, page) = get_page(&app, &http, &to).await;
    assert!(
        page.contains("You cannot approve this request: it is your own request"),
        "{page}"
    );
    assert!(
        !page.contains("/approve\""),
        "no approve form for the requester: {page}"
    );
    // The user's text is shown, never run.
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("INC-77 &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    // 45m is above prod-db's default of 30m; alice never asked for prod-db before.
    assert!(page.contains("above the role's default of 30m"), "{page}");
    assert!(
        page.contains("the first time this person asks for this role"),
        "{page}"
    );
    // A hand-made approve form with a good token and version: the SoD rule says no.
    let cancel_csrf = field(&page, &format!("/requests/{id}/cancel"), "csrf");
    assert_eq!(cancel_csrf, csrf, "one token per session");
    let (_, view) = app.request("alice", &id).await;
    let version = view["version"].as_str().unwrap().to_owned();
    let fields = [("csrf", csrf.as_str()), ("version", version.as_str())];
    let approve = format!("/requests/{id}/approve");
    let (status, text, _) = post_form(&app, &http, &approve, &fields, &OURS).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("self_approval"), "{text}");
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["status"], "pending");
    assert_eq!(view["approvals"], json!([]));
}

#[tokio::test]
async fn a_request_that_changed_since_the_page_was_shown_is_409_and_reviewed_again() {
    let (_idp, app, _s) = spawn_web("").await;
    // two-person: 2 of (group:dba, group:sre), in one step.
    let id = app.create_ok("alice", "two-person").await;
    let http = browser();
    let page = bob_reviews(&app, &http, &id).await;
    let action = format!("/requests/{id}/approve");
    let (csrf, stale) = (
        field(&page, &action, "csrf"),
        field(&page, &action, "version"),
    );
    let (status, body) = app.approve("dave", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fields = [("csrf", csrf.as_str()), ("version", stale.as_str())];
    let (status, text, _) = post_form(&app, &http, &action, &fields, &OURS).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("request_changed"), "{text}");
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["approvals"].as_array().unwrap().len(), 1, "{view}");
    // Reviewed again (dave's approval shown), the new version goes through.
    let (_, page) = get_page(&app, &http, &format!("/requests/{id}")).await;
    assert!(page.contains("<strong>dave</strong>"), "{page}");
    let fresh = field(&page, &action, "version");
    assert_ne!(fresh, stale);
    let fields = [("csrf", csrf.as_str()), ("version", fresh.as_str())];
    let (status, text, _) = post_form(&app, &http, &action, &fields, &OURS).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["status"], "issued", "{view}");
}

#[tokio::test]
async fn deny_needs_a_reason_and_the_api_takes_the_version_too() {
    let (_idp, app, _s) = spawn_web("").await;
    let id = app.create_ok("alice", "prod-db").await;
    let http = browser();
    let page = bob_reviews(&app, &http, &id).await;
    let action = format!("/requests/{id}/deny");
    let (csrf, version) = (
        field(&page, &action, "csrf"),
        field(&page, &action, "version"),
    );
    let fields = [
        ("csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("reason", " "),
    ];
    let (status, text, _) = post_form(&app, &http, &action, &fields, &OURS).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    // Over the API, a wrong version is refused the same way.
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/requests/{id}/deny"),
            json!({"reason": "no", "version": "0000000000000000"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "request_changed");
    let fields = [
        ("csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("reason", "not now"),
    ];
    let (status, text, _) = post_form(&app, &http, &action, &fields, &OURS).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["status"], "denied");
    assert_eq!(view["decision_note"], "not now");
    // The old page's approve form: the request is decided, and that is what it hears
    // (and what the audit log records), not merely that it changed.
    let approve = format!("/requests/{id}/approve");
    let fields = [("csrf", csrf.as_str()), ("version", version.as_str())];
    let (status, text, _) = post_form(&app, &http, &approve, &fields, &OURS).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("already_decided"), "{text}");
    let events = app.audit(&format!("request={id}")).await;
    let refused = events.iter().filter(|e| e["action"] == "attempt.refused");
    assert_eq!(refused.count(), 1, "{events:?}");
}

#[tokio::test]
async fn the_requester_downloads_the_certificate_and_an_admin_reads_its_story() {
    let (_idp, app, _s) = spawn_web("").await;
    let id = app.create_ok("alice", "prod-db").await;
    let (_, view) = app.approve("bob", &id).await;
    let serial = view["certificate"]["serial"].as_str().unwrap().to_owned();
    let alice = browser();
    let path = format!("/requests/{id}");
    web_sign_in(&app, &alice, "alice", &path).await;
    let (_, page) = get_page(&app, &alice, &path).await;
    assert!(page.contains("Your certificate"), "{page}");
    let (_, api_cert) = app.certificate("alice", &id).await;
    assert!(
        page.contains(api_cert.trim()),
        "the certificate to copy: {page}"
    );
    let r = alice
        .get(format!("{}/requests/{id}/certificate", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    assert_eq!(r.text().await.unwrap(), api_cert);
    // alice is no admin: no audit page.
    let (status, _) = get_page(&app, &alice, "/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bob = browser();
    web_sign_in(&app, &bob, "bob", "/audit").await;
    let (status, page) = get_page(&app, &bob, &format!("/audit?q={serial}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("alice requested prod-db"), "{page}");
    assert!(page.contains("bob approved"), "{page}");
    assert!(page.contains("issued to alice"), "{page}");
    let (_, page) = get_page(&app, &bob, "/audit?days=1").await;
    assert!(page.contains("Role prod-db: 1 certificate(s)"), "{page}");
}

#[tokio::test]
async fn an_old_sign_in_is_told_to_sign_in_again_before_approving() {
    let mut state = IdpState::new(Client::new("countersign", SECRET, CALLBACK))
        .account("bob", Account::new("bob", &[]));
    // bob authenticated at the provider half an hour ago (the default allows 15m).
    state.auth_time_offset = 1800;
    let idp = Idp::start(&state);
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(&config(&idp, secrets.path(), "")).await;
    let id = app.create_ok("alice", "prod-db").await;
    let http = browser();
    let page = bob_reviews(&app, &http, &id).await;
    let again = format!("/login?step_up=1&amp;next=/requests/{id}");
    assert!(page.contains("id=\"step-up-needed\""), "{page}");
    assert!(
        page.contains("within the last 15m, and yours is older"),
        "{page}"
    );
    assert!(page.contains(&again), "{page}");
    assert!(!page.contains("id=\"approve\""), "{page}");
    // A hand-made form is answered the same way, and records nothing.
    let deny = format!("/requests/{id}/deny");
    let (csrf, version) = (field(&page, &deny, "csrf"), field(&page, &deny, "version"));
    let fields = [("csrf", csrf.as_str()), ("version", version.as_str())];
    let approve = format!("/requests/{id}/approve");
    let (status, text, _) = post_form(&app, &http, &approve, &fields, &OURS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("Nothing was recorded"), "{text}");
    assert_eq!(app.count("SELECT count(*) FROM approvals"), 0);
    // Signing in again asks the provider for a fresh authentication, and comes back.
    state.auth_time_offset = 0;
    idp.set_state(&state);
    let r = http
        .get(format!("{}{}", app.url, again.replace("&amp;", "&")))
        .send()
        .await
        .unwrap();
    let authorize = location(&r);
    assert!(authorize.contains("prompt=login"), "{authorize}");
    let back = sign_in(&http, &authorize, "bob", "any", CALLBACK).await;
    let r = callback(&app, &http, &back).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The old session (the browser's before) ended with it: one live session, not two.
    let (_, sessions) = app.get("bob", "/v1/sessions?user=bob").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );
    let events = app.audit("").await;
    assert!(
        events.iter().any(|e| e["action"] == "session.revoked"),
        "{events:?}"
    );
    let (_, page) = get_page(&app, &http, &format!("/requests/{id}")).await;
    let version = field(&page, &approve, "version");
    let csrf = field(&page, &approve, "csrf");
    let fields = [("csrf", csrf.as_str()), ("version", version.as_str())];
    let (status, text, _) = post_form(&app, &http, &approve, &fields, &OURS).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["status"], "issued");
}

#[tokio::test]
async fn an_approver_whose_step_is_met_is_not_waited_for_and_is_told_why() {
    let (_idp, app, _s) = spawn_web("").await;
    // deploy-audit: 1 of dba, then 1 of security. bob (dba) gave the dba one.
    let id = app.create_ok("frank", "deploy-audit").await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // alice is in dba (through the provider): her approval would count for nothing.
    let http = browser();
    let path = format!("/requests/{id}");
    web_sign_in(&app, &http, "alice", &path).await;
    let (_, page) = get_page(&app, &http, &path).await;
    let why = "the approvals you may give are all given: it still needs 1 more of group:security";
    assert!(page.contains(why), "{page}");
    assert!(!page.contains("id=\"approve\""), "{page}");
    assert!(page.contains("Approvals (1 of 2)"), "{page}");
    let (_, list) = get_page(&app, &http, "/").await;
    assert!(list.contains("Waiting for me (0)"), "{list}");
}
