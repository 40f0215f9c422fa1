//! Races against the two guarantees that rest on the storage's isolation (see
//! docs/ARCHITECTURE.md, "Single-writer invariants"): the separation-of-duties re-check
//! at signing (read what the requester holds, then insert the certificate) and the
//! audit chain append (read the head, then write the next event). Plus the simplest
//! race of all: many approvals of one request produce exactly one certificate.
//!
//! Each race is written once, against the HTTP API only (no SQL: nothing here knows how
//! the data is stored), and run on every storage backend by [`on_every_backend!`]: a new
//! backend adds one line to that macro.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

impl Backend {
    /// A fresh server serving `policy` on this backend.
    async fn spawn(self, policy: &str) -> TestApp {
        TestApp::spawn_on_backend(policy, self).await
    }
}

/// One test per race and backend: `sqlite::racing_approvers_...` and so on.
macro_rules! on_every_backend {
    ($($race:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $race() {
                    super::$race(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $race() {
                    super::$race(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_every_backend!(
    racing_approvers_produce_exactly_one_certificate,
    concurrent_requests_and_approvals_keep_serials_unique_and_chain_intact,
    conflicting_roles_signed_at_once_are_never_both_held,
);

/// POSTs `path` as `user` from a task of its own; resolves to the status.
fn post(app: &TestApp, user: &str, path: String) -> tokio::task::JoinHandle<StatusCode> {
    let (http, url, token) = (
        app.http.clone(),
        app.url.clone(),
        app.token(user).to_owned(),
    );
    tokio::spawn(async move {
        http.post(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    })
}

/// The `certificate.issued` events of the whole log.
async fn issued_events(app: &TestApp) -> Vec<Value> {
    app.audit("")
        .await
        .into_iter()
        .filter(|e| e["action"] == "certificate.issued")
        .collect()
}

async fn racing_approvers_produce_exactly_one_certificate(backend: Backend) {
    let app = backend.spawn(POLICY).await;
    for round in 0..5 {
        let id = app.create_ok("alice", "prod-db").await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let approver = if i % 2 == 0 { "bob" } else { "carol" };
                post(&app, approver, format!("/v1/requests/{id}/approve"))
            })
            .collect();
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
        let issued = app
            .audit(&format!("request={id}"))
            .await
            .iter()
            .filter(|e| e["action"] == "certificate.issued")
            .count();
        assert_eq!(issued, 1);
        let (status, _) = app
            .get("alice", &format!("/v1/requests/{id}/certificate"))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, v) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(v["ok"], true);
}

async fn concurrent_requests_and_approvals_keep_serials_unique_and_chain_intact(backend: Backend) {
    let app = backend.spawn(&policy_with_many_pending()).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(app.create_ok("frank", "prod-db").await);
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| post(&app, "carol", format!("/v1/requests/{id}/approve")))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let issued = issued_events(&app).await;
    let serials: std::collections::BTreeSet<&str> =
        issued.iter().filter_map(|e| e["serial"].as_str()).collect();
    assert_eq!((issued.len(), serials.len()), (30, 30));
    let (_, v) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], app.audit("").await.len(), "{v}");
}

/// `deploy` and `deploy-audit` conflict. An open request for one refuses a request
/// for the other, so two conflicting requests can only both be pending if the conflict
/// was declared after they were made (a reload). Then both are approved at the same
/// moment: the check at signing must see the other certificate's insert, or the
/// requester ends up holding both. Exactly one is issued; the other ends `refused`.
async fn conflicting_roles_signed_at_once_are_never_both_held(backend: Backend) {
    let conflicts = POLICY
        .find("[[conflicts]]")
        .expect("the test policy declares a conflict");
    let app = backend.spawn(&POLICY[..conflicts]).await;
    let mut made = Vec::new();
    for user in ["alice", "frank"] {
        let deploy = app.create_ok(user, "deploy").await;
        let audit = app.create_ok(user, "deploy-audit").await;
        app.approve("bob", &audit).await; // step 1 of 2
        made.push((deploy, audit));
    }
    let with_conflict = app.config_of(POLICY);
    app.service
        .reload(with_conflict, "operator")
        .expect("reload");

    for (deploy, audit) in made {
        let one = post(&app, "dave", format!("/v1/requests/{deploy}/approve"));
        let other = post(&app, "erin", format!("/v1/requests/{audit}/approve"));
        let mut statuses = [one.await.unwrap(), other.await.unwrap()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::FORBIDDEN]);
        let mut ends = Vec::new();
        for id in [&deploy, &audit] {
            let (_, body) = app.get("bob", &format!("/v1/requests/{id}")).await;
            let code = body["decision_code"].as_str().unwrap_or("-");
            ends.push(format!(
                "{} {code}",
                body["status"].as_str().unwrap_or_default()
            ));
        }
        ends.sort();
        // Refused at signing for the conflict, not for anything else.
        assert_eq!(
            ends,
            ["issued -", "refused sod_conflict"],
            "{deploy} {audit}"
        );
    }
    let (_, v) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}
