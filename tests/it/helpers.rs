//! `TestApp`: a fresh countersign (temp dir, CA key, database) served on 127.0.0.1:0,
//! with one helper per endpoint; plus key and ssh-keygen helpers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use countersign::clock::SystemClock;
pub use countersign::clock::{Clock, ManualClock};
use countersign::config::Config;
use countersign::names::UserName;
use countersign::service::{self, Service};
use countersign::state::Access;
use reqwest::StatusCode;
use serde_json::{Value, json};
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How test servers open their state: as `countersign serve` does, no rollback accepted.
const SERVE: Access = Access::Serve {
    accept_rollback: None,
};

/// The policy most tests run against.
pub const POLICY: &str = r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"

[requests]
pending_ttl = "1h"

[users.alice]
groups = ["dev"]
[users.frank]
groups = ["dev"]
[users.bob]
groups = ["dba"]
admin = true
[users.carol]
groups = ["dba", "security"]
[users.dave]
groups = ["sre"]
[users.erin]
groups = ["security"]
[users.mallory]

[roles.prod-db]
principals = ["postgres", "{user}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
default_ttl = "30m"
max_ttl = "2h"

[roles.ops]
principals = ["ops"]
requesters = ["group:dba"]
approvers = ["group:dba"]

[roles.two-person]
principals = ["breakglass"]
requesters = ["group:dev"]
approvers = ["group:dba", "group:sre"]
approvals = 2

[roles.deploy]
principals = ["deploy"]
requesters = ["group:dev", "group:sre"]
approvers = ["group:sre"]
extensions = ["permit-pty", "permit-port-forwarding"]

[roles.deploy-audit]
principals = ["deploy-audit"]
requesters = ["group:dev", "group:security"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 1 },
]
force_command = "/usr/bin/true"
source_address = ["127.0.0.0/8", "::1/128"]

[[conflicts]]
roles = ["deploy", "deploy-audit"]
reason = "whoever deploys must not also rewrite the deploy audit trail"
"#;

/// [`POLICY`] without the per-user cap of pending requests in effect (1000), for tests
/// that queue many requests of one user on purpose.
pub fn policy_with_many_pending() -> String {
    POLICY.replace(
        "pending_ttl = \"1h\"",
        "pending_ttl = \"1h\"\nmax_pending_per_user = 1000",
    )
}

/// A clock for [`TestApp::spawn_with_clock`], standing at the system's time (whole
/// seconds) until the test moves it.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::starting_now())
}

/// Where a test server keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file in the data folder.
    Sqlite,
    /// A fresh database on the test PostgreSQL cluster (`tests/it/pg.rs`).
    Postgres,
}

impl Backend {
    /// The backend tests run on unless they name one: `COUNTERSIGN_TEST_BACKEND`
    /// (`sqlite`, the default, or `postgres`), so that the whole suite can run on either.
    pub fn from_env() -> Backend {
        match std::env::var("COUNTERSIGN_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            Ok("sqlite") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("COUNTERSIGN_TEST_BACKEND={other}: sqlite or postgres"),
        }
    }
}

/// A running server and what the test needs to talk to it.
pub struct TestApp {
    pub url: String,
    pub dir: TempDir,
    /// The PostgreSQL database, when the state is kept there.
    pub pg: Option<crate::pg::PgDatabase>,
    pub service: Arc<Service>,
    pub http: reqwest::Client,
    pub tokens: HashMap<String, String>,
    /// The service's clock, kept across restarts.
    clock: Arc<dyn Clock>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestApp {
    /// Serves [`POLICY`].
    pub async fn spawn() -> TestApp {
        Self::spawn_with(POLICY).await
    }

    /// Serves `policy` from a fresh temp dir, with a token for every user.
    pub async fn spawn_with(policy: &str) -> TestApp {
        Self::spawn_on(policy, Arc::new(SystemClock)).await
    }

    /// Serves `policy` with the CA's time read from `clock`, which the test moves instead
    /// of sleeping (restarts keep it).
    pub async fn spawn_with_clock(policy: &str, clock: &Arc<ManualClock>) -> TestApp {
        Self::spawn_on(policy, clock.clone()).await
    }

    /// [`TestApp::spawn_with_clock`] with its state on `backend`.
    pub async fn spawn_with_clock_on(
        policy: &str,
        clock: &Arc<ManualClock>,
        backend: Backend,
    ) -> TestApp {
        Self::spawn_full(policy, clock.clone(), backend).await
    }

    /// Serves `policy` with its state on `backend`.
    pub async fn spawn_on_backend(policy: &str, backend: Backend) -> TestApp {
        Self::spawn_full(policy, Arc::new(SystemClock), backend).await
    }

    async fn spawn_on(policy: &str, clock: Arc<dyn Clock>) -> TestApp {
        Self::spawn_full(policy, clock, Backend::from_env()).await
    }

    async fn spawn_full(policy: &str, clock: Arc<dyn Clock>, backend: Backend) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = (backend == Backend::Postgres).then(crate::pg::fresh_database);
        write_config(dir.path(), policy, pg.as_ref());
        let mut app = Self::start(dir, pg, HashMap::new(), clock).await;
        let users: Vec<String> = app
            .service
            .config()
            .policy
            .users
            .keys()
            .map(|u| u.to_string())
            .collect();
        for u in users {
            let t = app.create_token(&u);
            app.tokens.insert(u, t);
        }
        app
    }

    async fn start(
        dir: TempDir,
        pg: Option<crate::pg::PgDatabase>,
        tokens: HashMap<String, String>,
        clock: Arc<dyn Clock>,
    ) -> TestApp {
        countersign::tls::install_crypto_provider();
        let config = Config::load(&dir.path().join("countersign.toml")).expect("config loads");
        let service = Service::open_with_clock(config, SERVE, "operator:test", clock.clone());
        let service = Arc::new(service.expect("service opens"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = service.clone();
        let handle = tokio::spawn(async move {
            countersign::daemon::run(state, listener, None, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestApp {
            url,
            dir,
            pg,
            service,
            http: reqwest::Client::new(),
            tokens,
            clock,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server and starts a new one on the same data dir (new port).
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let tokens = std::mem::take(&mut self.tokens);
        let clock = self.clock.clone();
        let pg = self.pg.take();
        drop(self);
        Self::start(dir, pg, tokens, clock).await
    }

    /// Restarts on the same data dir with `config` as the config file (on the same
    /// backend: a PostgreSQL test server keeps its `[storage]`).
    pub async fn restart_with(self, config: &str) -> TestApp {
        write_config(self.dir.path(), config, self.pg.as_ref());
        self.restart().await
    }

    /// Runs SQL straight on the database, as a second process would.
    pub fn sql(&self, sql: &str) {
        if let Some(pg) = &self.pg {
            pg.psql(sql);
            return;
        }
        let conn = rusqlite::Connection::open(self.db_path()).expect("open db");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute_batch(sql).expect("sql");
    }

    /// Stops the server and waits until it has closed the database.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task");
        }
    }

    /// `policy` loaded as this server's config file would be (on this server's backend).
    pub fn config_of(&self, policy: &str) -> Config {
        let text = match &self.pg {
            Some(pg) => format!("{policy}\n{}", pg.storage_toml()),
            None => policy.to_owned(),
        };
        Config::from_toml_str(&text, &self.config_path(), self.dir.path()).expect("config")
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("countersign.toml")
    }

    /// Path of the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.service.config().database_path()
    }

    /// A new token for `user`, created the way `countersign token create` does.
    pub fn create_token(&self, user: &str) -> String {
        let policy = &self.service.config().policy;
        let user = UserName::parse(user).expect("user name");
        service::create_token(self.service.store(), policy, &user, "operator").expect("token")
    }

    pub fn token(&self, user: &str) -> &str {
        self.tokens
            .get(user)
            .map(String::as_str)
            .unwrap_or("cs_unknown")
    }

    pub async fn get(&self, user: &str, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(self.token(user))
            .send()
            .await
            .expect("GET");
        split(resp).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(self.token(user))
            .json(&body)
            .send()
            .await
            .expect("POST");
        split(resp).await
    }

    /// `POST /v1/requests` with a fresh Ed25519 key.
    pub async fn create(&self, user: &str, role: &str, ttl: Option<&str>) -> (StatusCode, Value) {
        let key = new_key();
        self.create_with_key(user, role, ttl, &public_line(&key))
            .await
    }

    pub async fn create_with_key(
        &self,
        user: &str,
        role: &str,
        ttl: Option<&str>,
        public_key: &str,
    ) -> (StatusCode, Value) {
        let mut body = json!({
            "role": role,
            "public_key": public_key,
            "reason": format!("INC-4211: {role} for {user}"),
        });
        if let Some(t) = ttl {
            body["ttl"] = json!(t);
        }
        self.post(user, "/v1/requests", body).await
    }

    /// Creates a request and returns its id, asserting 201.
    pub async fn create_ok(&self, user: &str, role: &str) -> String {
        let (status, body) = self.create(user, role, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn approve(&self, user: &str, id: &str) -> (StatusCode, Value) {
        self.post(
            user,
            &format!("/v1/requests/{id}/approve"),
            json!({ "comment": format!("ok from {user}") }),
        )
        .await
    }

    pub async fn deny(&self, user: &str, id: &str, reason: &str) -> (StatusCode, Value) {
        self.post(
            user,
            &format!("/v1/requests/{id}/deny"),
            json!({ "reason": reason }),
        )
        .await
    }

    pub async fn cancel(&self, user: &str, id: &str) -> (StatusCode, Value) {
        self.post(user, &format!("/v1/requests/{id}/cancel"), json!({}))
            .await
    }

    pub async fn request(&self, user: &str, id: &str) -> (StatusCode, Value) {
        self.get(user, &format!("/v1/requests/{id}")).await
    }

    /// `GET /v1/requests/{id}/certificate` as text.
    pub async fn certificate(&self, user: &str, id: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(format!("{}/v1/requests/{id}/certificate", self.url))
            .bearer_auth(self.token(user))
            .send()
            .await
            .expect("GET certificate");
        (resp.status(), resp.text().await.expect("body"))
    }

    /// Every audit event, via the API as admin bob.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .get("bob", &format!("/v1/audit?limit=10000&{query}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().expect("events").clone()
    }

    /// Number of rows in a table, read straight from the database.
    pub fn count(&self, sql: &str) -> i64 {
        if let Some(pg) = &self.pg {
            let out = pg.psql(sql);
            return out
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{sql}: {out:?}"));
        }
        let conn = rusqlite::Connection::open(self.db_path()).expect("open db");
        conn.query_row(sql, [], |r| r.get(0)).expect("count")
    }
}

/// Writes `config` as the config file in `dir`, with the `[storage]` section and the
/// password file of `pg` when the state is in PostgreSQL.
pub fn write_config(dir: &Path, config: &str, pg: Option<&crate::pg::PgDatabase>) {
    let text = match pg {
        Some(pg) => {
            pg.write_password_file(dir);
            format!("{config}\n{}", pg.storage_toml())
        }
        None => config.to_owned(),
    };
    std::fs::write(dir.join("countersign.toml"), text).expect("write config");
}

async fn split(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// The `error.code` of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// The ids of a `GET /v1/requests` answer, in order.
pub fn listed_ids(body: &Value) -> Vec<String> {
    body["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Writes requests of `requester` for `role` with `status` straight into the database,
/// one per creation time (unix seconds; each expires an hour after), in one transaction;
/// returns their ids in that order. For lists longer than a test could create through
/// the API in good time.
pub fn insert_requests(
    db: &Path,
    requester: &str,
    role: &str,
    status: &str,
    created: impl IntoIterator<Item = i64>,
) -> Vec<String> {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let tx = conn.transaction().unwrap();
    let mut ids = Vec::new();
    for at in created {
        let id = countersign::names::RequestId::random(&mut rand::rng());
        tx.execute(
            "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, \
             key_fingerprint, principals, role_digest, status, created_at, expires_at) \
             VALUES (?1, ?2, ?3, 'bulk', 1800, 'ssh-ed25519 AAAA', 'SHA256:x', '[]', 'x', \
             ?4, ?5, ?6)",
            rusqlite::params![id.as_str(), role, requester, status, at, at + 3600],
        )
        .unwrap();
        ids.push(id.as_str().to_owned());
    }
    tx.commit().unwrap();
    ids
}

/// A fresh Ed25519 key pair.
pub fn new_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key")
}

/// `ssh-ed25519 AAAA...` of a key.
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().expect("public line")
}

/// Writes `key` as an OpenSSH private key file (0600) and `.pub` next to it.
pub fn write_key(dir: &Path, name: &str, key: &PrivateKey) -> PathBuf {
    let path = dir.join(name);
    key.write_openssh_file(&path, LineEnding::LF)
        .expect("write key");
    std::fs::write(
        dir.join(format!("{name}.pub")),
        format!("{}\n", public_line(key)),
    )
    .expect("write pub");
    path
}

/// `ssh-keygen -L -f FILE` output for a certificate text.
pub fn ssh_keygen_list(dir: &Path, cert: &str) -> String {
    let path = dir.join(format!("listed-{}-cert.pub", rand::random::<u32>()));
    std::fs::write(&path, cert).expect("write cert");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen -L failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
