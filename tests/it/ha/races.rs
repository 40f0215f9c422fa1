//! Races between replicas: the same decision sent to every replica at the same moment.
//! The database serialises writes from all replicas (one advisory lock), so each
//! read-then-write guarantee holds across processes as it does in one.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{Http, Replicas, request_body};
use crate::helpers::POLICY;

/// Approves `id` as `user` on replica `i` from a task of its own: (user, status, code).
fn approve(
    replicas: &Replicas,
    i: usize,
    user: &str,
    id: &str,
) -> tokio::task::JoinHandle<(String, StatusCode, String)> {
    let (http, url, token) = (
        Http::new(),
        replicas.url(i),
        replicas.token(user).to_owned(),
    );
    let (user, path) = (user.to_owned(), format!("/v1/requests/{id}/approve"));
    tokio::spawn(async move {
        let a = http
            .post(&url, &token, &path, json!({}), None)
            .await
            .unwrap();
        let code = a.code().to_owned();
        (user, a.status, code)
    })
}

/// Creates a `role` request as `user` on replica `i`; returns its id.
async fn create(replicas: &Replicas, i: usize, user: &str, role: &str) -> String {
    let a = Http::new()
        .post(
            &replicas.url(i),
            replicas.token(user),
            "/v1/requests",
            request_body(role),
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

/// The `certificate.issued` events of request `id`, read on replica `i`.
async fn issued_events(replicas: &Replicas, i: usize, id: &str) -> usize {
    let a = Http::new()
        .get(
            &replicas.url(i),
            replicas.token("bob"),
            &format!("/v1/audit?request={id}&limit=10000"),
        )
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "certificate.issued")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_raced_across_replicas_issue_exactly_one_certificate() {
    let started = Instant::now();
    let db = crate::pg::fresh_database();
    let replicas = Replicas::start(&db, POLICY, 3);
    let http = Http::new();
    for round in 0..4 {
        for (role, approvers, needed) in [
            ("prod-db", &["bob", "carol"][..], 1),
            ("two-person", &["bob", "carol", "dave"][..], 2),
        ] {
            let id = create(&replicas, round % 3, "alice", role).await;
            // Self-approval is refused on every replica, whichever saw the request made.
            for i in 0..3 {
                let a = http
                    .post(
                        &replicas.url(i),
                        replicas.token("alice"),
                        &format!("/v1/requests/{id}/approve"),
                        json!({}),
                        None,
                    )
                    .await
                    .unwrap();
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
                assert_eq!(a.code(), "self_approval");
            }
            // Every approver on every replica at once.
            let tasks: Vec<_> = approvers
                .iter()
                .flat_map(|u| (0..3).map(move |i| (u, i)))
                .map(|(u, i)| approve(&replicas, i, u, &id))
                .collect();
            let mut winners = Vec::new();
            for t in tasks {
                let (user, status, code) = t.await.unwrap();
                match status {
                    StatusCode::OK => winners.push(user),
                    StatusCode::CONFLICT => {}
                    other => panic!("round {round} {role}: {user} got {other} {code}"),
                }
            }
            winners.sort();
            let mut distinct = winners.clone();
            distinct.dedup();
            assert_eq!(
                (winners.len(), distinct.len()),
                (needed, needed),
                "round {round} {role}: approvals answered OK: {winners:?}"
            );
            for i in 0..3 {
                let a = http
                    .get(
                        &replicas.url(i),
                        replicas.token("bob"),
                        &format!("/v1/requests/{id}"),
                    )
                    .await
                    .unwrap();
                assert_eq!(a.body["status"], "issued", "{}", a.body);
                let mut counted: Vec<&str> = a.body["approvals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["approver"].as_str().unwrap())
                    .collect();
                counted.sort();
                assert_eq!(counted, distinct, "replica {i}: {}", a.body);
                assert_eq!(issued_events(&replicas, i, &id).await, 1, "{id}");
            }
        }
    }
    replicas.audit_verify(1);
    eprintln!("ha approval races took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_roles_across_replicas_are_never_both_held() {
    let started = Instant::now();
    let db = crate::pg::fresh_database();
    let conflicts = POLICY.find("[[conflicts]]").unwrap();
    let mut replicas = Replicas::start(&db, POLICY, 3);
    let http = Http::new();
    // With the conflict declared: the two requests made at once on two replicas, by a
    // user who holds and has asked for nothing, are never both accepted. Exactly one
    // is (then cancelled, so that the next round starts clean again).
    for round in 0..4 {
        let user = ["alice", "frank"][round % 2];
        let (a, b) = (replicas.url(round % 3), replicas.url((round + 1) % 3));
        let token = replicas.token(user).to_owned();
        let (h1, h2) = (http.clone(), http.clone());
        let (t1, t2) = (token.clone(), token.clone());
        let one = tokio::spawn(async move {
            h1.post(&a, &t1, "/v1/requests", request_body("deploy"), None)
                .await
                .unwrap()
        });
        let other = tokio::spawn(async move {
            h2.post(&b, &t2, "/v1/requests", request_body("deploy-audit"), None)
                .await
                .unwrap()
        });
        let answers = [one.await.unwrap(), other.await.unwrap()];
        let made: Vec<String> = answers
            .iter()
            .filter(|a| a.status == StatusCode::CREATED)
            .map(|a| a.body["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(made.len(), 1, "round {round}: {answers:?}");
        assert!(
            answers
                .iter()
                .any(|a| a.status == StatusCode::FORBIDDEN
                    && a.body["error"]["code"] == "sod_conflict"),
            "round {round}: {answers:?}"
        );
        let path = format!("/v1/requests/{}/cancel", made[0]);
        let cancelled = http
            .post(&replicas.url(2), &token, &path, serde_json::json!({}), None)
            .await
            .unwrap();
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    }
    // Two pending requests for conflicting roles can only exist if the conflict was
    // declared after they were made: lift it, make them, then declare it again on every
    // replica and approve both at once on different replicas.
    for i in 0..3 {
        replicas.reload(i, &POLICY[..conflicts]);
    }
    let mut pairs = Vec::new();
    for (n, user) in ["alice", "frank"].iter().enumerate() {
        let deploy = create(&replicas, n % 3, user, "deploy").await;
        let audit = create(&replicas, (n + 1) % 3, user, "deploy-audit").await;
        let a = approve(&replicas, (n + 2) % 3, "bob", &audit)
            .await
            .unwrap();
        assert_eq!(a.1, StatusCode::OK, "step 1 of 2");
        pairs.push((deploy, audit));
    }
    for i in 0..3 {
        replicas.reload(i, POLICY);
    }
    for (n, (deploy, audit)) in pairs.iter().enumerate() {
        let one = approve(&replicas, n % 3, "dave", deploy);
        let other = approve(&replicas, (n + 1) % 3, "erin", audit);
        let mut statuses = [one.await.unwrap().1, other.await.unwrap().1];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::FORBIDDEN],
            "{deploy} {audit}"
        );
    }
    // Nobody holds both roles: read the certificates of every request.
    let a = http
        .get(
            &replicas.url(2),
            replicas.token("bob"),
            "/v1/audit?limit=10000",
        )
        .await
        .unwrap();
    let mut held = std::collections::BTreeMap::<String, Vec<String>>::new();
    for e in a.body["events"].as_array().unwrap() {
        if e["action"] == "certificate.issued" {
            let id = e["request_id"].as_str().unwrap();
            let r = http
                .get(
                    &replicas.url(0),
                    replicas.token("bob"),
                    &format!("/v1/requests/{id}"),
                )
                .await
                .unwrap();
            let requester = r.body["requester"].as_str().unwrap().to_owned();
            held.entry(requester)
                .or_default()
                .push(r.body["role"].as_str().unwrap().to_owned());
        }
    }
    for (user, roles) in &held {
        let both = roles.iter().any(|r| r == "deploy") && roles.iter().any(|r| r == "deploy-audit");
        assert!(!both, "{user} holds {roles:?}");
    }
    replicas.audit_verify(0);
    eprintln!("ha conflict races took {:?}", started.elapsed());
}

impl Replicas {
    /// Writes `policy` as replica `i`'s config, sends SIGHUP, and waits for the reload.
    pub fn reload(&mut self, i: usize, policy: &str) {
        let config = self.config(i);
        let text = std::fs::read_to_string(&config).unwrap();
        let storage = &text[text.find("\n[storage]").unwrap()..];
        std::fs::write(&config, format!("{policy}{storage}")).unwrap();
        let before = self
            .server(i)
            .log()
            .matches("configuration reloaded")
            .count();
        let pid = self.server(i).pid().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .server(i)
            .log()
            .matches("configuration reloaded")
            .count()
            == before
        {
            assert!(Instant::now() < deadline, "{}", self.server(i).log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
