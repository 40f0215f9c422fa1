//! Faults under load, checked by the history checker: `kill -9` of a random replica
//! about every second, and PostgreSQL restarted ("fast" and "immediate"). Clients
//! create (with an `Idempotency-Key`), approve, fetch and sometimes revoke, spread over
//! the live replicas, retrying on another replica when no answer comes or on 503.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::history::History;
use super::{Answer, Http, Replicas, request_body};
use crate::helpers::policy_with_many_pending;

/// What one client task needs.
#[derive(Clone)]
struct Load {
    http: Http,
    /// The live replicas' URLs (`None` while one is down).
    urls: Arc<Mutex<Vec<Option<String>>>>,
    tokens: Arc<std::collections::BTreeMap<String, String>>,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
}

impl Load {
    fn new(replicas: &Replicas) -> Load {
        Load {
            http: Http::new(),
            urls: Arc::new(Mutex::new(
                (0..replicas.len()).map(|i| Some(replicas.url(i))).collect(),
            )),
            tokens: replicas.tokens.clone(),
            history: Arc::new(History::default()),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn set_url(&self, i: usize, url: Option<String>) {
        self.urls.lock().unwrap()[i] = url;
    }

    /// Sends until some replica answers other than 502/503 (at most 60 s).
    async fn send(&self, user: &str, path: &str, body: Option<Value>, key: Option<&str>) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(60);
        let token = &self.tokens[user];
        loop {
            let url = {
                let urls = self.urls.lock().unwrap();
                let live: Vec<&String> = urls.iter().flatten().collect();
                live[rand::rng().random_range(0..live.len())].clone()
            };
            let answer = match &body {
                Some(b) => self.http.post(&url, token, path, b.clone(), key).await,
                None => self.http.get(&url, token, path).await,
            };
            match answer {
                Ok(a) if a.status == StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(a.code(), "unavailable", "{}", a.body);
                }
                Ok(a) if a.status != StatusCode::BAD_GATEWAY => return a,
                _ => {}
            }
            assert!(Instant::now() < deadline, "{path}: no replica answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One request through to its certificate, perhaps revoked afterwards.
    async fn flow(&self, requester: &str, role: &str, approvers: &[&str], revoke: bool) {
        let key = format!("ha-{:016x}", rand::random::<u64>());
        let a = self
            .send(
                requester,
                "/v1/requests",
                Some(request_body(role)),
                Some(&key),
            )
            .await;
        assert!(
            a.status == StatusCode::CREATED || a.status == StatusCode::OK,
            "create: {} {}",
            a.status,
            a.body
        );
        let id = a.body["id"].as_str().unwrap().to_owned();
        self.history.created(&id);
        for approver in approvers {
            let path = format!("/v1/requests/{id}/approve");
            let a = self.send(approver, &path, Some(json!({})), None).await;
            match a.status {
                StatusCode::OK => {
                    if let Some(serial) = a.body["certificate"]["serial"].as_str() {
                        self.history.issued(&id, serial.parse().unwrap());
                    }
                }
                // A retry of an approval whose answer was lost.
                StatusCode::CONFLICT => {}
                s => panic!("approve {id}: {s} {}", a.body),
            }
        }
        let path = format!("/v1/requests/{id}/certificate");
        let a = self.send(requester, &path, None, None).await;
        assert_eq!(a.status, StatusCode::OK, "fetch {id}: {}", a.body);
        let text = a.body.as_str().unwrap().trim().to_owned();
        let serial = ssh_key::Certificate::from_openssh(&text).unwrap().serial();
        self.history.issued(&id, serial);
        if revoke {
            let path = format!("/v1/certificates/{serial}/revoke");
            let a = self
                .send("bob", &path, Some(json!({"reason": "ha"})), None)
                .await;
            let retried = a.status == StatusCode::CONFLICT && a.code() == "already_revoked";
            assert!(a.status == StatusCode::OK || retried, "revoke: {}", a.body);
            self.history.revoked(serial);
        }
    }

    /// Client task `worker`: flows until told to stop.
    async fn run(self, worker: usize) -> usize {
        let (requester, role, approvers): (&str, &str, &[&str]) = match worker % 4 {
            0 => ("alice", "prod-db", &["bob"]),
            1 => ("frank", "prod-db", &["carol"]),
            2 => ("alice", "two-person", &["carol", "dave"]),
            _ => ("frank", "prod-db", &["bob", "carol"]),
        };
        let mut flows = 0;
        while !self.stop.load(Ordering::Relaxed) {
            self.flow(requester, role, approvers, flows % 5 == 0).await;
            flows += 1;
        }
        flows
    }

    fn spawn(&self, workers: usize) -> Vec<tokio::task::JoinHandle<usize>> {
        (0..workers)
            .map(|w| tokio::spawn(self.clone().run(w)))
            .collect()
    }

    async fn finish(&self, tasks: Vec<tokio::task::JoinHandle<usize>>) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let mut flows = 0;
        for t in tasks {
            flows += t.await.unwrap();
        }
        flows
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_replicas_under_load_loses_nothing_acknowledged() {
    let started = Instant::now();
    let db = crate::pg::fresh_database();
    let mut replicas = Replicas::start(&db, &policy_with_many_pending(), 3);
    let load = Load::new(&replicas);
    let tasks = load.spawn(4);
    let seed: u64 = rand::random();
    eprintln!("ha kill -9 seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for _round in 0..30 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(400..900))).await;
        let i = rng.random_range(0..replicas.len());
        load.set_url(i, None);
        tokio::task::block_in_place(|| replicas.restart(i));
        load.set_url(i, Some(replicas.url(i)));
    }
    let flows = load.finish(tasks).await;
    eprintln!("ha kill -9: {flows} flows in {:?}", started.elapsed());
    assert!(flows >= 10, "too little load: {flows} flows");
    load.history.check(&replicas).await;
    eprintln!("ha kill -9 test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarts_answer_unavailable_and_lose_nothing() {
    let started = Instant::now();
    let cluster = crate::pg::Cluster::start_new();
    let db = cluster.fresh_database();
    let replicas = Replicas::start(&db, &policy_with_many_pending(), 3);
    let load = Load::new(&replicas);
    let tasks = load.spawn(3);
    let http = Http::new();
    for mode in ["fast", "immediate"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::block_in_place(|| cluster.stop(mode));
        // While it is down every replica answers, promptly, that it is unavailable.
        for i in 0..replicas.len() {
            let asked = Instant::now();
            let created = http
                .post(
                    &replicas.url(i),
                    replicas.token("alice"),
                    "/v1/requests",
                    request_body("prod-db"),
                    None,
                )
                .await
                .unwrap();
            let took = asked.elapsed();
            assert_eq!(
                (created.status, created.code()),
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                "replica {i} with PostgreSQL stopped ({mode}): {}",
                created.body
            );
            assert!(took < Duration::from_secs(12), "replica {i} took {took:?}");
            let ready = http.get(&replicas.url(i), "", "/v1/ready").await.unwrap();
            assert_eq!(
                ready.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                ready.body
            );
            eprintln!("ha pg {mode} stop: replica {i} answered 503 in {took:?}");
        }
        tokio::task::block_in_place(|| cluster.start());
        let back = Instant::now();
        // Each replica comes back by itself.
        for i in 0..replicas.len() {
            loop {
                let ready = http.get(&replicas.url(i), "", "/v1/ready").await.unwrap();
                if ready.status == StatusCode::OK {
                    break;
                }
                assert!(
                    back.elapsed() < Duration::from_secs(30),
                    "replica {i} stays down"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        eprintln!(
            "ha pg {mode}: all replicas ready {:?} after the start",
            back.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let flows = load.finish(tasks).await;
    assert!(flows >= 6, "too little load: {flows} flows");
    load.history.check(&replicas).await;
    eprintln!(
        "ha pg restarts: {flows} flows, took {:?}",
        started.elapsed()
    );
}
