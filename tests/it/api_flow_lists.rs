//! Lists over HTTP: what each caller sees, and paging through every request once.

use reqwest::StatusCode;

use crate::helpers::*;

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
        &app,
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
    let ids = insert_requests(&app, "alice", "prod-db", "denied", seconds);
    let franks = insert_requests(&app, "frank", "deploy", "denied", [base + 1]).remove(0);
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
            let ids = insert_requests(&app, requester, role, status, at.clone());
            visible.extend(at.into_iter().zip(ids));
        }
        insert_requests(&app, "frank", "deploy", status, [base + 1]);
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
