//! A real OpenID provider for the OIDC sign-in tests: `node tests/oidc/provider.mjs` (the
//! `oidc-provider` package, installed by `npm ci --prefix tests/oidc`, which
//! scripts/test.sh runs) on 127.0.0.1, with its clients and accounts in a state file that
//! a test may rewrite while it runs ([`Idp::set_state`]: accounts, key rotation, ID token
//! lifetime). [`sign_in`] plays the browser: the provider's sign-in and consent pages over
//! plain HTTP, up to the redirect back to the client.
//!
//! What the provider does (see the top of provider.mjs): PKCE with S256 required, auth_time
//! in every ID token, and the claims of the scopes `profile` (preferred_username, ...),
//! `email` and `groups` in the ID token itself; an unknown login or a wrong password (for
//! an account with one) ends the sign-in with `error=access_denied` at the redirect_uri.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tempfile::TempDir;

mod browser;
mod chromium;
mod harness;

pub use browser::{browser, jwt_parts, pkce, query_param, sign_in};
pub use chromium::{Front, chromium_sign_in};

/// The provider's state file (tests/oidc/provider.mjs reads it again on every use).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdpState {
    /// A change takes effect on the next request, as for every field.
    pub clients: Vec<Client>,
    /// By the login typed in the sign-in form; read on every look-up.
    pub accounts: BTreeMap<String, Account>,
    /// Changing it rotates the signing key at once (no restart): a new RS256 key and kid.
    pub keys_generation: u32,
    /// The JWKS lists the keys of the earlier generations too (after the current one).
    #[serde(default)]
    pub keys_keep_previous: bool,
    /// ID token lifetime in seconds, read at each issue.
    pub id_token_ttl: u64,
    /// Seconds subtracted from a sign-in's time: its auth_time lies that far back.
    #[serde(default)]
    pub auth_time_offset: u64,
    /// Claims merged into every ID token of the token endpoint, signed again with the
    /// current key (a wrong `aud`, a replayed `nonce`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_claims: Option<Value>,
    /// The JWKS lists only this generation's key: tokens are signed by a key it lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_generation: Option<u32>,
}

/// An OAuth client, as oidc-provider's client metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: String,
    /// Any other client metadata (the provider adds grant_types authorization_code and
    /// refresh_token, response_types code and require_auth_time true unless given here).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// An account: its claims (`sub` is the subject).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub sub: String,
    pub preferred_username: String,
    pub email: String,
    pub groups: Vec<String>,
    /// The one password accepted; `None`: any password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Any other claims (name, email_verified, ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Client {
    /// A confidential client with `client_secret_basic` and one redirect URI.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Client {
        Client {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            extra: serde_json::Map::new(),
        }
    }
}

impl Account {
    /// An account whose `sub` is `sub-LOGIN`, with `LOGIN@example.com`; any password.
    pub fn new(login: &str, groups: &[&str]) -> Account {
        Account {
            sub: format!("sub-{login}"),
            preferred_username: login.to_owned(),
            email: format!("{login}@example.com"),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            password: None,
            extra: serde_json::Map::new(),
        }
    }
}

impl IdpState {
    /// One client, no accounts, key generation 1, ID tokens for an hour.
    pub fn new(client: Client) -> IdpState {
        IdpState {
            clients: vec![client],
            accounts: BTreeMap::new(),
            keys_generation: 1,
            keys_keep_previous: false,
            id_token_ttl: 3600,
            auth_time_offset: 0,
            id_token_claims: None,
            jwks_generation: None,
        }
    }

    /// Adds (or replaces) the account that signs in as `login`.
    pub fn account(mut self, login: &str, account: Account) -> IdpState {
        self.accounts.insert(login.to_owned(), account);
        self
    }
}

/// A running provider; dropping it kills the process.
pub struct Idp {
    /// `http://127.0.0.1:PORT` (no trailing slash), as in its ID tokens' `iss`.
    pub issuer: String,
    pub port: u16,
    child: Child,
    log: Arc<Mutex<String>>,
    dir: TempDir,
}

impl Idp {
    /// Starts the provider on a free port with `state`, and waits for it to listen.
    pub fn start(state: &IdpState) -> Idp {
        let dir = tempfile::tempdir().expect("temp dir");
        write_state(dir.path(), state);
        let (child, issuer, log) = spawn(dir.path(), 0);
        let port = Url::parse(&issuer)
            .expect("issuer is a URL")
            .port()
            .expect("issuer has a port");
        Idp {
            issuer,
            port,
            child,
            log,
            dir,
        }
    }

    /// Replaces the state file (whole, by a rename): the provider sees it on its next
    /// request.
    pub fn set_state(&self, state: &IdpState) {
        write_state(self.dir.path(), state);
    }

    /// Kills the provider (until [`Idp::restart`]).
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Kills the provider and starts it again on the same port and state file: every
    /// session, code and refresh token is forgotten, and keys are made anew.
    pub fn restart(&mut self) {
        kill(&mut self.child);
        let (child, issuer, log) = spawn(self.dir.path(), self.port);
        assert_eq!(issuer, self.issuer, "restarted on the same port");
        self.child = child;
        self.log = log;
    }

    /// What the provider wrote to stderr so far (since its last start).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The `kid`s the provider's JWKS lists now, in its order (the signing key first).
    pub async fn kids(&self, http: &reqwest::Client) -> Vec<String> {
        let jwks: Value = http
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .expect("JWKS answered")
            .json()
            .await
            .expect("JWKS is JSON");
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    /// Redeems `code` at the token endpoint as `client` (client_secret_basic) with the PKCE
    /// `verifier`; returns the token response (id_token, access_token, ...), panicking with
    /// the answer if it is not a success.
    pub async fn redeem(
        &self,
        http: &reqwest::Client,
        client: &Client,
        code: &str,
        verifier: &str,
    ) -> Value {
        let resp = http
            .post(format!("{}/token", self.issuer))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &client.redirect_uris[0]),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .expect("token endpoint answered");
        let status = resp.status();
        let body = resp.text().await.expect("token response body");
        assert!(
            status.is_success(),
            "token endpoint: {status}: {body}\n--- the provider's log:\n{}",
            self.log()
        );
        serde_json::from_str(&body).expect("token response is JSON")
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

fn write_state(dir: &Path, state: &IdpState) {
    let tmp = dir.join("state.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(state).expect("state serializes"),
    )
    .expect("state written");
    std::fs::rename(&tmp, dir.join("state.json")).expect("state renamed");
}

/// Spawns provider.mjs and waits for its `ready URL` line; a provider that did not start
/// within the bound is killed and started once more (on two cores loaded by Chromium and
/// a PostgreSQL cluster, a Node start once took over a minute).
fn spawn(dir: &Path, port: u16) -> (Child, String, Arc<Mutex<String>>) {
    match try_spawn(dir, port) {
        Ok(started) => started,
        Err(first) => {
            eprintln!("the OpenID provider did not start; trying once more. Its stderr:\n{first}");
            try_spawn(dir, port).unwrap_or_else(|log| {
                panic!("the OpenID provider did not start within 60 s, twice; its stderr:\n{log}")
            })
        }
    }
}

/// One start of provider.mjs: waits up to 60 s for its `ready URL` line; `Err(stderr)`
/// (the process killed) if it does not come.
fn try_spawn(dir: &Path, port: u16) -> Result<(Child, String, Arc<Mutex<String>>), String> {
    let oidc = oidc_dir();
    assert!(
        oidc.join("node_modules/oidc-provider").is_dir(),
        "{}/node_modules is missing: run `npm ci --prefix tests/oidc` (scripts/test.sh does)",
        oidc.display()
    );
    let mut child = Command::new("node")
        .arg(oidc.join("provider.mjs"))
        .env("IDP_PORT", port.to_string())
        .env("IDP_STATE", dir.join("state.json"))
        // The child exits when this pipe closes: with the test process, even on a panic.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node spawns (is Node.js installed? scripts/install-node.sh)");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
            log.push_str(&line);
            log.push('\n');
        }
    });
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("ready ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    // A liveness bound, not a speed check: Node starts in about a second, but on two
    // loaded cores (a Chromium test, a PostgreSQL cluster beside it) it once took over 15 s.
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(issuer) => Ok((child, issuer, log)),
        Err(_) => {
            kill(&mut child);
            std::thread::sleep(Duration::from_millis(100));
            Err(log.lock().unwrap_or_else(|p| p.into_inner()).clone())
        }
    }
}
