//! The whole flow over HTTP: request -> someone else approves -> certificate.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn request_approved_by_someone_else_yields_a_certificate_ssh_keygen_reads() {
    let app = TestApp::spawn().await;
    let key = new_key();
    let (status, created) = app
        .create_with_key("alice", "prod-db", Some("45m"), &public_line(&key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["requester"], "alice");
    assert_eq!(created["principals"], json!(["postgres", "alice"]));
    assert_eq!(created["ttl_seconds"], 2700);
    assert_eq!(created["approvals_needed"], 1);
    assert_eq!(created["waiting_for"][0]["approvers"], json!(["group:dba"]));
    assert!(
        created["public_key_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    let id = created["id"].as_str().unwrap();

    let (status, approved) = app.approve("bob", id).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "issued");
    assert_eq!(approved["approvals"][0]["approver"], "bob");
    assert_eq!(approved["approvals"][0]["comment"], "ok from bob");
    let serial = approved["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(serial, "0");

    let (status, cert) = app.certificate("alice", id).await;
    assert_eq!(status, StatusCode::OK);
    let listed = ssh_keygen_list(app.dir.path(), &cert);
    assert!(listed.contains("user certificate"), "{listed}");
    assert!(listed.contains(&format!("Serial: {serial}")), "{listed}");
    assert!(
        listed.contains(&format!("Key ID: \"countersign:{id}:alice:prod-db\"")),
        "{listed}"
    );
    let principals: Vec<&str> = listed
        .split("Principals:")
        .nth(1)
        .unwrap()
        .split("Critical Options:")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(principals, ["postgres", "alice"]);
    assert!(listed.contains("permit-pty"), "{listed}");
    assert!(!listed.contains("permit-port-forwarding"), "{listed}");

    // The certificate is for the very key that was submitted, signed by the served CA key.
    let parsed = ssh_key::Certificate::from_openssh(cert.trim()).unwrap();
    assert_eq!(parsed.public_key(), key.public_key().key_data());
    let ca_pub = reqwest::get(format!("{}/v1/ca.pub", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ca_key = ssh_key::PublicKey::from_openssh(ca_pub.trim()).unwrap();
    parsed
        .validate([&ca_key.fingerprint(Default::default())])
        .unwrap();
    let window = parsed.valid_before() - parsed.valid_after();
    assert_eq!(window, 2700 + 60, "ttl 45m plus the default 1m backdate");

    // And the serial alone tells the whole story, in order.
    let events = app.audit(&format!("serial={serial}")).await;
    let story: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        story,
        ["request.created", "request.approved", "certificate.issued"]
    );
    assert!(events.iter().all(|e| e["request_id"] == id));
    let issued = &events[2];
    assert_eq!(issued["serial"], serial.as_str());
    assert_eq!(issued["detail"]["requester"], "alice");
    assert_eq!(issued["detail"]["approvals"][0]["approver"], "bob");
    assert_eq!(events[0]["detail"]["reason"], "INC-4211: prod-db for alice");
    assert_eq!(events[1]["detail"]["comment"], "ok from bob");
}

/// Create and approve answer with the request as they wrote it, built without reading it
/// back: the answer must be exactly what a read of the request shows afterwards.
#[tokio::test]
async fn each_change_answers_with_the_request_exactly_as_stored() {
    let app = TestApp::spawn().await;
    let read_back = |id: String| {
        let app = &app;
        async move {
            let (status, body) = app.request("alice", &id).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let (status, created) = app.create("alice", "deploy-audit", None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created, read_back(id.clone()).await);

    // First of two steps, with no comment: still pending, one step left.
    let (status, first) = app
        .post("bob", &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["approvals"][0]["comment"], serde_json::Value::Null);
    assert_eq!(first, read_back(id.clone()).await);

    // The second step issues the certificate.
    let (status, issued) = app.approve("erin", &id).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["approvals"].as_array().map(Vec::len), Some(2));
    assert!(issued["certificate"]["serial"].is_string(), "{issued}");
    assert_eq!(issued, read_back(id.clone()).await);

    // A one-step role issues on its only approval.
    let id = app.create_ok("frank", "prod-db").await;
    let (status, issued) = app.approve("carol", &id).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["status"], "issued");
    let (_, stored) = app.request("frank", &id).await;
    assert_eq!(issued, stored);
}

#[tokio::test]
async fn critical_options_and_extensions_come_from_the_role_only() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "deploy-audit").await;
    assert_eq!(app.approve("carol", &id).await.1["status"], "pending");
    let (status, body) = app.approve("erin", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    let (_, cert) = app.certificate("alice", &id).await;
    let listed = ssh_keygen_list(app.dir.path(), &cert);
    assert!(listed.contains("force-command /usr/bin/true"), "{listed}");
    assert!(
        listed.contains("source-address 127.0.0.0/8,::1/128"),
        "{listed}"
    );
    assert!(listed.contains("permit-pty"), "{listed}");
}

#[tokio::test]
async fn health_and_ca_key_need_no_token_everything_else_does() {
    let app = TestApp::spawn().await;
    let health = reqwest::get(format!("{}/v1/health", app.url))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ca = reqwest::get(format!("{}/v1/ca.pub", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ca.starts_with("ssh-ed25519 "), "{ca}");
    assert_eq!(ca.trim(), app.service.ca().public_key_line());
    for path in [
        "/v1/whoami",
        "/v1/requests",
        "/v1/audit",
        "/v1/audit/verify",
    ] {
        let resp = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "unauthenticated");
    }
    let resp = app
        .http
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth("cs_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whoami_tells_roles_the_caller_may_request_and_approve() {
    let app = TestApp::spawn().await;
    let (status, me) = app.get("carol", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"], "carol");
    assert_eq!(me["admin"], false);
    assert_eq!(me["can_request"], json!(["deploy-audit", "ops"]));
    assert_eq!(
        me["can_approve"],
        json!(["deploy-audit", "ops", "prod-db", "two-person"])
    );
}

#[tokio::test]
async fn list_shows_own_requests_and_those_the_caller_may_approve() {
    let app = TestApp::spawn().await;
    let db = app.create_ok("alice", "prod-db").await;
    let deploy = app.create_ok("frank", "deploy").await;
    let ids = |body: serde_json::Value| listed_ids(&body);
    assert_eq!(
        ids(app.get("alice", "/v1/requests").await.1),
        std::slice::from_ref(&db)
    );
    assert_eq!(
        ids(app.get("dave", "/v1/requests?status=pending").await.1),
        std::slice::from_ref(&deploy)
    );
    assert_eq!(
        ids(app.get("carol", "/v1/requests").await.1),
        std::slice::from_ref(&db)
    );
    let mut all = ids(app.get("bob", "/v1/requests").await.1);
    all.sort();
    let mut expected = vec![db.clone(), deploy.clone()];
    expected.sort();
    assert_eq!(all, expected, "admins see everything");
    assert!(ids(app.get("mallory", "/v1/requests").await.1).is_empty());
    assert!(ids(app.get("bob", "/v1/requests?status=issued").await.1).is_empty());
    // Someone who may neither see nor approve gets 404, not a confirmation that it exists.
    let (status, body) = app.request("mallory", &db).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

/// The list's limit (10,000) counts only what the caller may see: many newer requests of
/// others must not push a user's own request out of their list.
#[tokio::test]
async fn many_newer_requests_of_others_do_not_hide_ones_own() {
    let app = TestApp::spawn().await;
    let mine = app.create_ok("alice", "prod-db").await;
    // 10,000 newer pending `deploy` requests by frank, written straight into the database
    // (alice may neither approve nor see them).
    let now = chrono::Utc::now().timestamp();
    insert_requests(
        &app.db_path(),
        "frank",
        "deploy",
        "pending",
        std::iter::repeat_n(now + 1, 10_000),
    );
    let listed = |user: &'static str, path: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app.get(user, path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            listed_ids(&body)
        }
    };
    let only_mine = std::slice::from_ref(&mine);
    assert_eq!(listed("alice", "/v1/requests").await, only_mine);
    assert_eq!(
        listed("alice", "/v1/requests?status=pending").await,
        only_mine
    );
    // An approver of prod-db (not of deploy) sees it too, through the role's side.
    assert_eq!(listed("carol", "/v1/requests").await, only_mine);
    // dave approves deploy: he sees the newest 10,000 of frank's, and not alice's.
    let (_, body) = app.get("dave", "/v1/requests").await;
    let listed = body["requests"].as_array().unwrap();
    assert_eq!(listed.len(), 10_000);
    assert!(listed.iter().all(|r| r["requester"] == "frank"));
}

#[tokio::test]
async fn lists_page_through_every_request_once_newest_first() {
    let app = TestApp::spawn().await;
    // Seven of alice's requests straight into the database, several made in the same
    // second (a page boundary then falls between requests of one second), and one of
    // frank's that alice may not see.
    let base = chrono::Utc::now().timestamp() - 100;
    let seconds = [0, 0, 0, 1, 1, 2, 3].map(|s| base + s);
    let ids = insert_requests(&app.db_path(), "alice", "prod-db", "denied", seconds);
    let franks = insert_requests(&app.db_path(), "frank", "deploy", "denied", [base + 1]).remove(0);
    let mut expected: Vec<(i64, String)> = seconds.into_iter().zip(ids).collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let ids = listed_ids;

    let (status, whole) = app.get("alice", "/v1/requests").await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(ids(&whole), expected);
    assert!(whole.get("next").is_none(), "{whole}");
    // An empty `after` is no cursor, as an empty `status` is no filter.
    let (status, same) = app.get("alice", "/v1/requests?after=&status=").await;
    assert_eq!((status, ids(&same)), (StatusCode::OK, expected.clone()));

    // alice (her own side) and bob (admin: every request, frank's too) page by three.
    for (user, query) in [("alice", ""), ("alice", "status=denied&"), ("bob", "")] {
        let (mut seen, mut after, mut sizes) = (Vec::new(), None::<String>, Vec::new());
        loop {
            let path = match &after {
                Some(id) => format!("/v1/requests?{query}limit=3&after={id}"),
                None => format!("/v1/requests?{query}limit=3"),
            };
            let (status, page) = app.get(user, &path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let got = ids(&page);
            sizes.push(got.len());
            seen.extend(got);
            match page["next"].as_str() {
                Some(next) => {
                    assert_eq!(Some(next), seen.last().map(String::as_str));
                    after = Some(next.to_owned());
                }
                None => break,
            }
        }
        if user == "alice" {
            assert_eq!(seen, expected, "{user} {query}");
            assert_eq!(sizes, [3, 3, 1]);
        } else {
            // The admin sees frank's among alice's, each once, newest first.
            assert_eq!(seen.len(), 8);
            assert!(seen.contains(&franks));
            let without: Vec<_> = seen.iter().filter(|id| **id != franks).cloned().collect();
            assert_eq!(without, expected);
            assert_eq!(sizes, [3, 3, 2]);
        }
    }

    // Bad pages are refused and name what is wrong.
    for (path, want) in [
        (
            "/v1/requests?limit=0",
            (StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        (
            "/v1/requests?limit=10001",
            (StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        (
            "/v1/requests?after=nonsense",
            (StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        (
            "/v1/requests?after=r-aaaaaaaaaaaa",
            (StatusCode::NOT_FOUND, "not_found"),
        ),
    ] {
        let (status, body) = app.get("alice", path).await;
        assert_eq!((status, code(&body)), want, "{path}: {body}");
    }
    // A request alice may not see is no cursor for her, and answers as if it did not exist.
    let (status, body) = app
        .get("alice", &format!("/v1/requests?after={franks}"))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
}

#[tokio::test]
async fn an_approver_who_also_requests_pages_through_all_sources_each_request_once() {
    let app = TestApp::spawn().await;
    let db = app.db_path();
    let base = chrono::Utc::now().timestamp() - 100;
    // carol (dba, security) requests ops and deploy-audit and approves prod-db, ops,
    // two-person and deploy-audit: her own ops and deploy-audit requests come from two
    // sources at once. frank's deploy request is not hers to see. Denied ones walk each
    // source's history; pending ones come from the pending index.
    for status in ["denied", "pending"] {
        let mut visible: Vec<(i64, String)> = Vec::new();
        for (requester, role, seconds) in [
            ("carol", "ops", vec![0, 2]),
            ("carol", "deploy-audit", vec![1]),
            ("alice", "prod-db", vec![0, 1, 3]),
            ("alice", "two-person", vec![2]),
        ] {
            let at: Vec<i64> = seconds.iter().map(|s| base + s).collect();
            let ids = insert_requests(&db, requester, role, status, at.clone());
            visible.extend(at.into_iter().zip(ids));
        }
        insert_requests(&db, "frank", "deploy", status, [base + 1]);
        visible.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let expected: Vec<String> = visible.into_iter().map(|(_, id)| id).collect();

        let (mut seen, mut after) = (Vec::new(), String::new());
        loop {
            let path = format!("/v1/requests?status={status}&limit=2&after={after}");
            let (code, page) = app.get("carol", &path).await;
            assert_eq!(code, StatusCode::OK, "{page}");
            seen.extend(listed_ids(&page));
            match page["next"].as_str() {
                Some(next) => after = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{status}: each request once, newest first");
    }
}

#[tokio::test]
async fn deny_and_cancel_end_requests_for_good() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.deny("carol", &id, "not during the freeze").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "denied");
    assert_eq!(body["decided_by"], "carol");
    assert_eq!(body["decision_note"], "not during the freeze");
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_decided")
    );

    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.cancel("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "only the requester cancels"
    );
    let (status, body) = app.cancel("alice", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_decided")
    );
    let (status, body) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
}

#[tokio::test]
async fn only_the_requester_fetches_the_certificate() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, _) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "not issued yet");
    app.approve("bob", &id).await;
    let (status, body) = app.certificate("bob", &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, cert) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
}

#[tokio::test]
async fn state_and_audit_survive_a_restart() {
    let app = TestApp::spawn().await;
    let pending = app.create_ok("alice", "prod-db").await;
    let issued = app.create_ok("frank", "prod-db").await;
    app.approve("bob", &issued).await;
    let before = app.audit("").await;

    let app = app.restart().await;
    assert_eq!(app.request("alice", &pending).await.1["status"], "pending");
    let (_, body) = app.request("frank", &issued).await;
    assert_eq!(body["status"], "issued");
    assert_eq!(
        app.audit("").await,
        before,
        "every event survives, unchanged"
    );
    let (status, body) = app.approve("carol", &pending).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    let (status, v) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["events"], before.len() as i64 + 2);
}

/// `waiting_for` names who may still approve: a `user:` member who already approved is
/// not awaited (nor is the requester), groups stay, and each open step lists the
/// approvals counted toward it in `approved_by`.
#[tokio::test]
async fn waiting_for_leaves_out_named_approvers_who_already_approved() {
    let app = TestApp::spawn_with(&POLICY.replace(
        "[[conflicts]]",
        r#"[roles.named]
principals = ["named"]
requesters = ["group:dev"]
approvers = ["user:carol", "user:bob", "user:alice", "group:sre"]
approvals = 2

[[conflicts]]"#,
    ))
    .await;
    let id = app.create_ok("alice", "named").await;
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(
        body["waiting_for"],
        json!([{"approvers": ["user:carol", "user:bob", "group:sre"], "approvals": 2,
                "remaining": 2, "approved_by": []}]),
        "the requester is never awaited: {body}"
    );
    let (status, body) = app.approve("carol", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["waiting_for"],
        json!([{"approvers": ["user:bob", "group:sre"], "approvals": 2,
                "remaining": 1, "approved_by": ["carol"]}]),
        "{body}"
    );
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(
        body["waiting_for"][0]["approvers"],
        json!(["user:bob", "group:sre"])
    );
    let (_, body) = app.approve("dave", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    assert_eq!(body["waiting_for"], json!([]));
}
