//! High availability: three real `countersign serve` replicas, each with its own data
//! folder holding a copy of the CA key (never a copy of another's database), on one
//! PostgreSQL database. Races between replicas (`ha/races.rs`), `kill -9` of replicas and
//! PostgreSQL restarts under load checked by a history checker (`ha/chaos.rs`,
//! `ha/history.rs`), a connection cut right after COMMIT (`ha/proxy.rs`), the KRL and
//! waiters across replicas (`ha/spread.rs`).
//!
//! Timings are printed, not asserted (a slow machine is not a defect).

mod chaos;
mod history;
mod proxy;
mod races;
mod spread;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::write_config;
use crate::pg::PgDatabase;
use crate::process::{ServerProcess, create_token, init, operator};

/// Users given a token in every replica set.
const USERS: [&str; 7] = ["alice", "frank", "bob", "carol", "dave", "erin", "mallory"];

/// Replicas of one countersign on one database; killed when dropped.
pub struct Replicas {
    /// One folder per replica: `countersign.toml`, `pg-password`, `data/ca_key`.
    pub dirs: Vec<TempDir>,
    servers: Vec<Option<ServerProcess>>,
    /// Bearer token per user (tokens live in the shared database).
    pub tokens: Arc<BTreeMap<String, String>>,
}

impl Replicas {
    /// `n` replicas serving `policy` on `db`, each straight at the database.
    pub fn start(db: &PgDatabase, policy: &str, n: usize) -> Replicas {
        Self::start_with_urls(db, policy, &vec![db.url.clone(); n])
    }

    /// One replica per entry of `urls` (the database, or a proxy in front of it). The
    /// first is set up with `countersign init` (database and CA key); the others get a
    /// copy of the CA key only, as an operator adds a replica.
    pub fn start_with_urls(db: &PgDatabase, policy: &str, urls: &[String]) -> Replicas {
        let dirs: Vec<TempDir> = urls
            .iter()
            .map(|url| {
                let dir = tempfile::tempdir().unwrap();
                write_config(dir.path(), policy, Some(db));
                let config = dir.path().join("countersign.toml");
                let text = std::fs::read_to_string(&config).unwrap();
                std::fs::write(&config, text.replace(&db.url, url)).unwrap();
                dir
            })
            .collect();
        init(&dirs[0].path().join("countersign.toml"));
        let key = dirs[0].path().join("data/ca_key");
        for dir in &dirs[1..] {
            copy_ca_key(&key, &dir.path().join("data"));
        }
        let config0 = dirs[0].path().join("countersign.toml");
        let policy_users: Vec<&str> = USERS
            .into_iter()
            .filter(|u| policy.contains(&format!("[users.{u}]")))
            .collect();
        let tokens = policy_users
            .into_iter()
            .map(|u| (u.to_string(), create_token(&config0, u)))
            .collect();
        let mut replicas = Replicas {
            dirs,
            servers: Vec::new(),
            tokens: Arc::new(tokens),
        };
        replicas.servers = (0..urls.len()).map(|_| None).collect();
        for i in 0..urls.len() {
            replicas.restart(i);
        }
        replicas
    }

    /// The config file of replica `i`.
    pub fn config(&self, i: usize) -> PathBuf {
        self.dirs[i].path().join("countersign.toml")
    }

    /// `http://127.0.0.1:PORT` of replica `i` (a new port after each restart).
    pub fn url(&self, i: usize) -> String {
        self.server(i).url.clone()
    }

    /// The running server of replica `i`.
    pub fn server(&self, i: usize) -> &ServerProcess {
        self.servers[i].as_ref().expect("replica is running")
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// SIGKILL to replica `i`.
    pub fn kill_9(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.kill_9();
        }
    }

    /// Starts replica `i` (killing it first if it runs) and waits for it to listen.
    pub fn restart(&mut self, i: usize) {
        self.kill_9(i);
        let mut cmd = operator(&self.config(i));
        cmd.arg("serve");
        // A replica's first start joins the database without a mark of its own (the
        // flag is refused once there is one).
        if !self.dirs[i].path().join("data/countersign.mark").exists() {
            cmd.arg("--new-replica");
        }
        match ServerProcess::start_with(&mut cmd) {
            Ok(s) => self.servers[i] = Some(s),
            Err(log) => panic!("replica {i} did not start:\n{log}"),
        }
    }

    pub fn token(&self, user: &str) -> &str {
        &self.tokens[user]
    }

    /// `countersign audit verify` on replica `i`'s config: the chain of the database.
    pub fn audit_verify(&self, i: usize) {
        let out = operator(&self.config(i))
            .args(["audit", "verify"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Copies the CA key into `data` (created 0700) with mode 0600, as an operator would.
fn copy_ca_key(key: &Path, data: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data).unwrap();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let to = data.join("ca_key");
    std::fs::copy(key, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// An HTTP client for replicas; `Err` is "no answer" (refused, reset, timed out).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

/// An answer: status, JSON body (or the text as a string).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        crate::helpers::code(&self.body)
    }
}

impl Http {
    pub fn new() -> Http {
        countersign::tls::install_crypto_provider();
        Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str, token: &str, path: &str) -> Result<Answer, reqwest::Error> {
        let resp = self
            .client
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        answer(resp).await
    }

    /// POST `body`, with `Idempotency-Key: key` when given.
    pub async fn post(
        &self,
        url: &str,
        token: &str,
        path: &str,
        body: Value,
        key: Option<&str>,
    ) -> Result<Answer, reqwest::Error> {
        let mut req = self
            .client
            .post(format!("{url}{path}"))
            .bearer_auth(token)
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        answer(req.send().await?).await
    }

    /// `GET /v1/krl`: (version, ETag, bytes).
    pub async fn krl(&self, url: &str) -> (u64, String, Vec<u8>) {
        let resp = self
            .client
            .get(format!("{url}/v1/krl"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let version = header("x-krl-version").parse().unwrap();
        let etag = header("etag");
        let bytes = resp.bytes().await.unwrap().to_vec();
        assert_eq!(countersign::krl::read(&bytes).unwrap().version, version);
        (version, etag, bytes)
    }
}

async fn answer(resp: reqwest::Response) -> Result<Answer, reqwest::Error> {
    let status = resp.status();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer { status, body })
}

/// A fresh `public_key` line.
pub fn fresh_key() -> String {
    crate::helpers::public_line(&crate::helpers::new_key())
}

/// A request body for `role`.
pub fn request_body(role: &str) -> Value {
    serde_json::json!({"role": role, "public_key": fresh_key(), "reason": "INC-14 ha"})
}

/// The serials an OpenSSH KRL (the form countersign writes) lists.
pub fn krl_serials(bytes: &[u8]) -> std::collections::BTreeSet<u64> {
    fn take<'a>(r: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, tail) = r.split_at(n);
        *r = tail;
        head
    }
    fn string<'a>(r: &mut &'a [u8]) -> &'a [u8] {
        let n = u32::from_be_bytes(take(r, 4).try_into().unwrap());
        take(r, n as usize)
    }
    let mut r = bytes;
    take(&mut r, 36); // magic, format version, KRL version, generated date, flags
    string(&mut r); // reserved
    string(&mut r); // comment
    let mut serials = std::collections::BTreeSet::new();
    while !r.is_empty() {
        let kind = take(&mut r, 1)[0];
        let mut section = string(&mut r);
        if kind != 1 {
            continue;
        }
        string(&mut section); // CA key
        string(&mut section); // reserved
        while !section.is_empty() {
            let sub = take(&mut section, 1)[0];
            let list = string(&mut section);
            if sub == 0x20 {
                serials.extend(
                    list.chunks(8)
                        .map(|c| u64::from_be_bytes(c.try_into().unwrap())),
                );
            }
        }
    }
    serials
}

impl Drop for Replicas {
    /// A failed test shows what the replicas logged beyond info.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (i, s) in self.servers.iter().enumerate() {
            if let Some(s) = s {
                let log = s.log();
                let bad: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                    .take(40)
                    .collect();
                eprintln!("replica {i} log (warnings and errors):\n{}", bad.join("\n"));
            }
        }
    }
}
