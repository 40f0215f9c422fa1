//! Crash safety of the real binary.
//!
//! `kill -9` under concurrent request/approve load, many times, then restart and check
//! the audit chain, that every certificate a client received was issued exactly once,
//! and that nothing acknowledged was lost. SIGKILL is a process crash: the kernel keeps
//! what was written, so this tests that answers go out only after COMMIT and that a
//! half-done transaction leaves no trace. (Power loss is covered by
//! `synchronous=FULL`, which a test on one machine cannot pull the plug on.)
//!
//! A full disk is simulated with `RLIMIT_FSIZE` on the server process (and SIGXFSZ
//! ignored, so writes past the limit fail with EFBIG as on a full disk). Unlike
//! `chmod`, which root ignores, or a tmpfs mount, which needs privileges, it behaves the
//! same whether the tests run as root or not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Api, ServerProcess, create_token, operator};

/// What the server acknowledged to clients.
#[derive(Debug, Default)]
struct Ledger {
    /// Request ids answered 201.
    created: BTreeSet<String>,
    /// (request id, approver) answered 200.
    approvals: BTreeSet<(String, String)>,
    /// Serial -> request id of every certificate a client received.
    issued: BTreeMap<u64, String>,
}

impl Ledger {
    fn received(&mut self, id: &str, serial: u64) {
        let previous = self.issued.insert(serial, id.to_owned());
        assert!(
            previous.is_none_or(|p| p == id),
            "serial {serial} received for two requests"
        );
    }
}

struct Client {
    api: Api,
    tokens: Arc<BTreeMap<&'static str, String>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Client {
    async fn post(&self, user: &str, path: &str, body: Value) -> Option<(StatusCode, Value)> {
        self.api.post(&self.tokens[user], path, body).await.ok()
    }

    /// One request through to its certificate; `None` as soon as the server is gone.
    async fn one_flow(&self, requester: &str, role: &str, approvers: &[&str]) -> Option<()> {
        let key = public_line(&new_key());
        let body = json!({"role": role, "public_key": key, "reason": "load"});
        let (status, body) = self.post(requester, "/v1/requests", body).await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str()?.to_owned();
        self.ledger.lock().unwrap().created.insert(id.clone());
        for approver in approvers {
            let path = format!("/v1/requests/{id}/approve");
            let (status, body) = self.post(approver, &path, json!({})).await?;
            assert_eq!(status, StatusCode::OK, "{body}");
            let mut ledger = self.ledger.lock().unwrap();
            ledger
                .approvals
                .insert((id.clone(), (*approver).to_owned()));
            if body["status"] == "issued" {
                let serial = body["certificate"]["serial"].as_str()?.parse().ok()?;
                ledger.received(&id, serial);
            }
        }
        self.fetch(requester, &id).await
    }

    async fn fetch(&self, requester: &str, id: &str) -> Option<()> {
        let resp = self
            .api
            .http
            .get(format!("{}/v1/requests/{id}/certificate", self.api.url))
            .bearer_auth(&self.tokens[requester])
            .send()
            .await
            .ok()?;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "an issued certificate can be fetched"
        );
        let cert = ssh_key::Certificate::from_openssh(resp.text().await.ok()?.trim()).ok()?;
        self.ledger.lock().unwrap().received(id, cert.serial());
        Some(())
    }

    /// Runs flows until the server dies or `stop` is set.
    async fn run(self, worker: usize, stop: Arc<AtomicBool>) {
        let (requester, role, approvers): (&str, &str, &[&str]) = match worker % 3 {
            0 => ("alice", "prod-db", &["bob"]),
            1 => ("frank", "prod-db", &["carol"]),
            _ => ("alice", "two-person", &["carol", "dave"]),
        };
        while !stop.load(Ordering::Relaxed) {
            if self.one_flow(requester, role, approvers).await.is_none() {
                break;
            }
        }
    }
}

fn setup(dir: &Path) -> (std::path::PathBuf, Arc<BTreeMap<&'static str, String>>) {
    let config = dir.join("countersign.toml");
    std::fs::write(&config, policy_with_many_pending()).unwrap();
    let init = operator(&config).arg("init").output().unwrap();
    assert!(init.status.success());
    let tokens = ["alice", "frank", "bob", "carol", "dave"]
        .into_iter()
        .map(|u| (u, create_token(&config, u)))
        .collect();
    (config, Arc::new(tokens))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_nothing_acknowledged_and_issues_nothing_twice() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (config, tokens) = setup(dir.path());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let seed: u64 = rand::random();
    eprintln!("crash test seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for _cycle in 0..15 {
        let server = ServerProcess::start(&config);
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let client = Client {
                    api: Api::new(&server.url),
                    tokens: tokens.clone(),
                    ledger: ledger.clone(),
                };
                tokio::spawn(client.run(w, stop.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
        server.kill_9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "crash test: {} created, {} approvals, {} certificates received",
        ledger.created.len(),
        ledger.approvals.len(),
        ledger.issued.len()
    );
    assert!(ledger.issued.len() >= 10, "too little load: {ledger:?}");
    check_after_restart(&config, &tokens, &ledger).await;
    check_database(&dir.path().join("data/countersign.db"), &ledger);
    // Printed, not asserted: a timed assertion would fail on a slow machine, not on a
    // defect (the suite's time is watched by CI's own limit).
    eprintln!("crash test took {:?}", started.elapsed());
}

/// The restarted server still hands out every certificate a client received.
async fn check_after_restart(
    config: &Path,
    tokens: &Arc<BTreeMap<&'static str, String>>,
    ledger: &Ledger,
) {
    let server = ServerProcess::start(config);
    let api = Api::new(&server.url);
    for (serial, id) in &ledger.issued {
        let (status, body) = {
            let resp = api
                .http
                .get(format!("{}/v1/requests/{id}", api.url))
                .bearer_auth(&tokens["bob"])
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        };
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "issued", "{body}");
        assert_eq!(body["certificate"]["serial"], serial.to_string(), "{body}");
    }
    assert!(server.terminate());
    let verify = operator(config).args(["audit", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

fn check_database(db: &Path, ledger: &Ledger) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let one = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> i64 {
        conn.query_row(sql, p, |r| r.get(0)).unwrap()
    };
    for id in &ledger.created {
        assert_eq!(
            one("SELECT count(*) FROM requests WHERE id = ?1", &[id]),
            1,
            "lost request {id}"
        );
    }
    for (id, approver) in &ledger.approvals {
        let n = one(
            "SELECT count(*) FROM approvals WHERE request_id = ?1 AND approver = ?2",
            &[id, approver],
        );
        assert_eq!(n, 1, "lost approval of {id} by {approver}");
    }
    for (serial, id) in &ledger.issued {
        let s = serial.to_string();
        let n = one(
            "SELECT count(*) FROM audit \
             WHERE action = 'certificate.issued' AND serial = ?1 AND request_id = ?2",
            &[&s, id],
        );
        assert_eq!(
            n, 1,
            "certificate {serial} of {id} has {n} certificate.issued events"
        );
    }
    let twice =
        "SELECT count(*) FROM (SELECT 1 FROM audit WHERE action = 'certificate.issued' GROUP BY";
    assert_eq!(
        one(&format!("{twice} request_id HAVING count(*) > 1)"), &[]),
        0,
        "a request issued twice"
    );
    assert_eq!(
        one(&format!("{twice} serial HAVING count(*) > 1)"), &[]),
        0,
        "a serial issued twice"
    );
    assert_eq!(
        one("SELECT count(*) FROM certificates", &[]),
        one(
            "SELECT count(*) FROM audit WHERE action = 'certificate.issued'",
            &[]
        ),
        "every certificate row has its event and no event lacks its row"
    );
    assert_eq!(
        one(
            "SELECT count(*) FROM certificates c JOIN requests r ON r.id = c.request_id \
             WHERE r.status = 'issued'",
            &[]
        ),
        one("SELECT count(*) FROM requests WHERE status = 'issued'", &[]),
    );
}

/// `countersign serve` whose files may not grow past `bytes` (RLIMIT_FSIZE), with
/// SIGXFSZ ignored so that such writes fail with EFBIG, as on a full disk.
fn serve_with_file_size_limit(config: &Path, bytes: u64) -> ServerProcess {
    use std::os::unix::process::CommandExt;
    let mut cmd = operator(config);
    cmd.arg("serve");
    // SAFETY: between fork and exec only async-signal-safe calls (signal, setrlimit) run.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    ServerProcess::start_with(&mut cmd).expect("serve starts with a nearly full disk")
}

async fn create(api: &Api, token: &str) -> (StatusCode, Value) {
    let key = public_line(&new_key());
    let body = json!({"role": "prod-db", "public_key": key, "reason": "disk"});
    api.post(token, "/v1/requests", body)
        .await
        .expect("answered")
}

#[tokio::test]
async fn a_full_disk_fails_writes_with_5xx_and_issues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (config, tokens) = setup(dir.path());
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    let mut pending = Vec::new();
    for _ in 0..4 {
        let (status, body) = create(&api, &tokens["alice"]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        pending.push(body["id"].as_str().unwrap().to_owned());
    }
    assert!(server.terminate());

    // Room for SQLite's 32 KiB shared-memory file and a few WAL frames, no more.
    let full = serve_with_file_size_limit(&config, 32 * 1024);
    let api = Api::new(&full.url);
    let mut approved = Vec::new();
    for id in &pending {
        let path = format!("/v1/requests/{id}/approve");
        let (status, body) = api.post(&tokens["bob"], &path, json!({})).await.unwrap();
        assert!(
            status == StatusCode::OK
                || (status == StatusCode::INTERNAL_SERVER_ERROR && code(&body) == "internal"),
            "{status} {body}"
        );
        approved.push((id.clone(), status));
    }
    // New requests: those that still fit are acknowledged (and must be kept), then
    // the disk refuses.
    let mut created = Vec::new();
    let mut refused = false;
    for _ in 0..20 {
        let (status, body) = create(&api, &tokens["alice"]).await;
        if status.is_server_error() {
            refused = true;
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{body}");
        created.push(body["id"].as_str().unwrap().to_owned());
    }
    assert!(refused, "20 new requests fit on a full disk");
    let health = api
        .http
        .get(format!("{}/v1/health", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "reads keep working");
    assert!(full.terminate());

    let failed: Vec<&String> = approved
        .iter()
        .filter(|(_, s)| s.is_server_error())
        .map(|(id, _)| id)
        .collect();
    eprintln!("approvals on a full disk: {approved:?}");
    assert!(!failed.is_empty(), "the disk never filled up: {approved:?}");
    let conn = rusqlite::Connection::open(dir.path().join("data/countersign.db")).unwrap();
    for id in &created {
        let kept: i64 = conn
            .query_row(
                "SELECT count(*) FROM requests WHERE id = ?1 AND status = 'pending'",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, 1, "acknowledged request {id} was lost");
    }
    for (id, status) in &approved {
        let issued: i64 = conn
            .query_row(
                "SELECT count(*) FROM audit \
                 WHERE action = 'certificate.issued' AND request_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let certs: i64 = conn
            .query_row(
                "SELECT count(*) FROM certificates WHERE request_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let expected = i64::from(*status == StatusCode::OK);
        assert_eq!(
            (issued, certs),
            (expected, expected),
            "{id} answered {status}"
        );
    }
    drop(conn);

    // With room again, the chain verifies and the failed approvals go through.
    let verify = operator(&config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    let path = format!("/v1/requests/{}/approve", failed[0]);
    let (status, body) = api.post(&tokens["bob"], &path, json!({})).await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("issued")),
        "{body}"
    );
}
