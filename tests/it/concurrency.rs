//! Races: many approvals of one request at once produce exactly one certificate.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_approvers_produce_exactly_one_certificate() {
    let app = TestApp::spawn().await;
    for round in 0..5 {
        let id = app.create_ok("alice", "prod-db").await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let approver = if i % 2 == 0 { "bob" } else { "carol" };
            let (http, url, token, id) = (
                app.http.clone(),
                app.url.clone(),
                app.token(approver).to_owned(),
                id.clone(),
            );
            tasks.push(tokio::spawn(async move {
                http.post(format!("{url}/v1/requests/{id}/approve"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            let status = t.await.unwrap();
            if status == StatusCode::OK {
                ok += 1;
            } else {
                assert_eq!(status, StatusCode::CONFLICT, "losers see a state conflict");
            }
        }
        assert_eq!(ok, 1, "round {round}: exactly one approval wins");
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM certificates WHERE request_id = '{id}'"
            )),
            1
        );
        let issued = app
            .audit(&format!("request={id}"))
            .await
            .iter()
            .filter(|e| e["action"] == "certificate.issued")
            .count();
        assert_eq!(issued, 1);
    }
    let (_, v) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(v["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_and_approvals_keep_serials_unique_and_chain_intact() {
    let app = TestApp::spawn_with(&policy_with_many_pending()).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(app.create_ok("frank", "prod-db").await);
    }
    let mut tasks = Vec::new();
    for id in ids {
        let (http, url, token) = (
            app.http.clone(),
            app.url.clone(),
            app.token("carol").to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            http.post(format!("{url}/v1/requests/{id}/approve"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        app.count("SELECT count(DISTINCT serial) FROM certificates"),
        30
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit WHERE action = 'certificate.issued'"),
        30
    );
    let (_, v) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}
