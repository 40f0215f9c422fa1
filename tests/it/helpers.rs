//! `TestApp`: a fresh countersign (temp dir, CA key, database) served on 127.0.0.1:0,
//! with one helper per endpoint; plus key and ssh-keygen helpers. What touches the
//! database itself (the backend, rows written straight into it) is in `helpers/db.rs`.

mod db;
mod fetch;
mod keys;

pub use db::{Backend, insert_requests, write_config};
pub use keys::{Agent, new_key, public_line, ssh_keygen_list, write_key};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use countersign::clock::SystemClock;
pub use countersign::clock::{Clock, ManualClock};
use countersign::config::Config;
use countersign::names::UserName;
use countersign::service::{self, Service};
use countersign::state::Access;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How test servers open their state: as `countersign serve` does, no rollback accepted.
const SERVE: Access = Access::Serve {
    accept_rollback: None,
    new_replica: false,
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

/// A running server and what the test needs to talk to it.
pub struct TestApp {
    pub url: String,
    /// `GET /metrics` of this server.
    pub metrics_url: String,
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
        let pg = (backend == Backend::Postgres).then(crate::pg::fresh_database);
        Self::spawn_with_pg(policy, clock, pg).await
    }

    /// Serves [`POLICY`] on a fresh database of `cluster` (a private cluster the test
    /// stops and starts).
    pub async fn spawn_on_cluster(cluster: &crate::pg::Cluster) -> TestApp {
        Self::spawn_with_pg(
            POLICY,
            Arc::new(SystemClock),
            Some(cluster.fresh_database()),
        )
        .await
    }

    /// Serves `policy` on `pg` (a database of a private cluster, say), or on SQLite.
    pub async fn spawn_with_pg(
        policy: &str,
        clock: Arc<dyn Clock>,
        pg: Option<crate::pg::PgDatabase>,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
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
        Self::start_as(dir, pg, tokens, clock, &SERVE).await
    }

    pub(super) async fn start_as(
        dir: TempDir,
        pg: Option<crate::pg::PgDatabase>,
        tokens: HashMap<String, String>,
        clock: Arc<dyn Clock>,
        access: &Access,
    ) -> TestApp {
        countersign::tls::install_crypto_provider();
        let config = Config::load(&dir.path().join("countersign.toml")).expect("config loads");
        let service =
            Service::open_with_clock(config, access.clone(), "operator:test", clock.clone());
        let service = Arc::new(service.expect("service opens"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        // Every test server serves its metrics too (`[metrics]`), on a port of its own.
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let metrics_url = format!("http://{}/metrics", metrics.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = service.clone();
        let handle = tokio::spawn(async move {
            countersign::daemon::run(state, listener, None, Some(metrics), async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestApp {
            url,
            metrics_url,
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

    /// Stops the server and waits until it has closed the database.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task");
        }
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("countersign.toml")
    }

    /// A new token for `user`, created the way `countersign token create` does.
    pub fn create_token(&self, user: &str) -> String {
        let (user, config) = (UserName::parse(user).expect("name"), self.service.config());
        // A service account (bot = true) gets a bot token with every scope.
        let bot = config.policy.users.get(&user).is_some_and(|u| u.bot);
        let scopes = bot.then(|| service::Scope::ALL.into_iter().collect());
        let spec = service::TokenSpec {
            ttl: None,
            bot_scopes: scopes,
        };
        let made = service::create_token(self.service.store(), &config, &user, "operator", &spec);
        made.expect("token").0
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
