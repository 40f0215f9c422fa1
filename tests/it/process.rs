//! `ServerProcess`: the real `countersign serve` binary on a port it picks itself
//! (`listen = "127.0.0.1:0"`), found from its "listening" log line; its stderr is kept
//! for assertions.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// A running `countersign serve`.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` with TLS).
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `countersign --config CONFIG serve` and waits for it to listen.
    pub fn start(config: &Path) -> ServerProcess {
        Self::start_with(operator(config).arg("serve")).expect("server starts")
    }

    /// Spawns `cmd` (a `serve` command) and waits up to 30 s for its listening line;
    /// `Err(stderr)` if it exits first.
    pub fn start_with(cmd: &mut Command) -> Result<ServerProcess, String> {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("countersign serve spawns");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_address(&line) {
                    let _ = tx.send(addr);
                }
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok(ServerProcess { child, url, log }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(log.lock().unwrap_or_else(|p| p.into_inner()).clone())
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGKILL: no shutdown code runs, as in a power cut of the process.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM and wait for the graceful exit; returns whether it exited 0. When it did
    /// not, the exit status and the server's log go to the test's output.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait();
        let clean = matches!(&status, Ok(s) if s.success());
        if !clean {
            std::thread::sleep(Duration::from_millis(100));
            eprintln!("server exit: {status:?}\nserver log:\n{}", self.log());
        }
        clean
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `countersign --config CONFIG` with no client settings from the environment.
pub fn operator(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.arg("--config")
        .arg(config)
        .env_remove("COUNTERSIGN_TOKEN")
        .env_remove("COUNTERSIGN_URL");
    cmd
}

/// `countersign init`: creates the database (and the CA key unless one exists), as an
/// operator does before handing out tokens.
pub fn init(config: &Path) {
    let out = operator(config).arg("init").output().expect("init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `countersign token create USER`, returning the token.
pub fn create_token(config: &Path, user: &str) -> String {
    let out = operator(config)
        .args(["token", "create", user])
        .output()
        .expect("token create runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `http://ADDRESS`, or `https://localhost:PORT` (the name test certificates carry),
/// from the "countersign listening address=... scheme=..." log line.
fn listening_address(line: &str) -> Option<String> {
    if !line.contains("countersign listening") {
        return None;
    }
    // `[server] log_format = "json"`: the same fields, as JSON.
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        let address: std::net::SocketAddr = json["address"].as_str()?.parse().ok()?;
        return match json["scheme"].as_str()? {
            "https" => Some(format!("https://localhost:{}", address.port())),
            _ => Some(format!("http://{address}")),
        };
    }
    let field = |name: &str| -> Option<String> {
        let rest = line.split(&format!("{name}=")).nth(1)?;
        Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
    };
    let address: std::net::SocketAddr = field("address")?.parse().ok()?;
    match field("scheme")?.as_str() {
        "https" => Some(format!("https://localhost:{}", address.port())),
        _ => Some(format!("http://{address}")),
    }
}

/// A reqwest client with tokens for talking to a [`ServerProcess`].
pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
}

impl Api {
    pub fn new(url: &str) -> Api {
        countersign::tls::install_crypto_provider();
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            url: url.to_owned(),
        }
    }

    /// POST a JSON body; `Err` when no answer came (connection refused or reset).
    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(reqwest::StatusCode, serde_json::Value), reqwest::Error> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or_default()))
    }

    /// The audit events of `action`, read as the admin `admin`.
    pub async fn events(&self, admin: &str, action: &str) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self
            .http
            .get(format!("{}/v1/audit", self.url))
            .bearer_auth(admin)
            .send()
            .await
            .expect("audit answered")
            .json()
            .await
            .expect("audit is JSON");
        body["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }

    /// Creates a `prod-db` request with a fresh key and has `approver` approve it;
    /// returns the issued certificate line.
    pub async fn issue(&self, requester: &str, approver: &str) -> String {
        let key = crate::helpers::public_line(&crate::helpers::new_key());
        let (status, body) = self
            .post(
                requester,
                "/v1/requests",
                serde_json::json!({"role": "prod-db", "public_key": key, "reason": "INC-1"}),
            )
            .await
            .expect("create answered");
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().expect("id").to_owned();
        let (status, body) = self
            .post(
                approver,
                &format!("/v1/requests/{id}/approve"),
                serde_json::json!({}),
            )
            .await
            .expect("approve answered");
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        let resp = self
            .http
            .get(format!("{}/v1/requests/{id}/certificate", self.url))
            .bearer_auth(requester)
            .send()
            .await
            .expect("certificate answered");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        resp.text().await.expect("certificate text")
    }
}
