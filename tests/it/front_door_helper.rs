//! The SSH front door served in-process on 127.0.0.1:0 next to a [`TestApp`], users with
//! registered keys, and the real OpenSSH client to talk to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use countersign::host_key;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::*;
use crate::sshd_helper::current_user;

/// Users with a registered key; `mallory` has a key nobody registered.
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Key files per user, in their own temp dir (the policy needs the keys before the app
/// exists).
pub struct KeyRing {
    pub dir: TempDir,
    keys: HashMap<String, (PathBuf, String)>,
}

impl KeyRing {
    /// A fresh Ed25519 key for every one of [`USERS`] and for `mallory`.
    pub fn new() -> KeyRing {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = USERS
            .iter()
            .chain(&["mallory"])
            .map(|u| {
                let key = new_key();
                let path = write_key(dir.path(), &format!("{u}_key"), &key);
                (u.to_string(), (path, public_line(&key)))
            })
            .collect();
        KeyRing { dir, keys }
    }

    /// The private key file of `user`.
    pub fn path(&self, user: &str) -> &Path {
        &self.keys[user].0
    }

    /// The public key line of `user`.
    pub fn public(&self, user: &str) -> &str {
        &self.keys[user].1
    }
}

/// A policy with `[ssh]` (plus `ssh_extra` lines), each of [`USERS`] owning their key,
/// and role `shell` whose certificates log in as the account the tests run as.
pub fn policy(keys: &KeyRing, ssh_extra: &str, pending_ttl: &str) -> String {
    let login = current_user();
    let key = |u: &str| keys.public(u).to_owned();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"
[requests]
pending_ttl = "{pending_ttl}"
[ssh]
listen = "127.0.0.1:0"
{ssh_extra}
[users.alice]
groups = ["dev"]
ssh_keys = ["{alice}"]
[users.bob]
groups = ["dba"]
admin = true
ssh_keys = ["{bob}"]
[users.carol]
groups = ["dba"]
ssh_keys = ["{carol}"]
[users.dave]
groups = ["sre"]
ssh_keys = ["{dave}"]
[roles.shell]
principals = ["{login}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
max_ttl = "1h"
"#,
        alice = key("alice"),
        bob = key("bob"),
        carol = key("carol"),
        dave = key("dave"),
    )
}

/// What one `ssh` run produced.
#[derive(Debug)]
pub struct SshOutput {
    /// The exit status `ssh` returned (255: ssh itself failed, e.g. refused).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for SshOutput {
    fn from(o: Output) -> Self {
        SshOutput {
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A running front door; stopped on drop.
pub struct FrontDoor {
    pub port: u16,
    /// `SHA256:...` of the host key in the app's data dir.
    pub host_fingerprint: String,
    /// `[127.0.0.1]:PORT ssh-ed25519 ...`, a `known_hosts` line.
    pub known_hosts_line: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl FrontDoor {
    /// Serves the front door for `app`'s service with the host key from its config.
    pub async fn start(app: &TestApp) -> FrontDoor {
        let settings = app.service.config().ssh.clone().expect("[ssh] configured");
        let (key, _) = host_key::load_or_create(&settings.host_key_file).expect("host key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let host_fingerprint = host_key::fingerprint(&key);
        let public = key.public_key().to_openssh().expect("public key");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = rx.await;
        };
        let handle = tokio::spawn(countersign::ssh::serve(
            listener,
            app.service.clone(),
            key,
            shutdown,
        ));
        FrontDoor {
            port,
            host_fingerprint,
            known_hosts_line: format!("[127.0.0.1]:{port} {public}"),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the listener and waits for it to end.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("ssh task").expect("ssh serve");
        }
    }

    /// `ssh ... LOGIN@127.0.0.1 ARGS...` with exactly `key`, stdin closed.
    pub fn command(&self, key: &Path, login: &str, args: &[&str]) -> Command {
        self.command_with(&[], key, login, args)
    }

    /// [`FrontDoor::command`] with ssh options `opts` first (for ssh, the first value
    /// given for an option wins).
    pub fn command_with(&self, opts: &[&str], key: &Path, login: &str, args: &[&str]) -> Command {
        let mut cmd = crate::sshd_helper::ssh_command(opts, key, self.port, login);
        cmd.args(args);
        cmd
    }

    /// Runs `ssh` (see [`FrontDoor::command`]) to completion on a blocking thread.
    pub async fn ssh(&self, key: &Path, login: &str, args: &[&str]) -> SshOutput {
        let mut cmd = self.command(key, login, args);
        tokio::task::spawn_blocking(move || cmd.output().expect("ssh runs"))
            .await
            .expect("ssh thread")
            .into()
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An app with `[ssh]` (plus `ssh_extra`), its front door, and the users' keys.
pub struct Door {
    pub app: TestApp,
    pub door: FrontDoor,
    pub keys: KeyRing,
}

impl Door {
    /// Serves [`policy`] with `pending_ttl` 1h.
    pub async fn spawn(ssh_extra: &str) -> Door {
        Self::spawn_with(ssh_extra, "1h").await
    }

    /// Serves [`policy`] with the given `[ssh]` lines and `pending_ttl`.
    pub async fn spawn_with(ssh_extra: &str, pending_ttl: &str) -> Door {
        let keys = KeyRing::new();
        let app = TestApp::spawn_with(&policy(&keys, ssh_extra, pending_ttl)).await;
        let door = FrontDoor::start(&app).await;
        Door { app, door, keys }
    }

    /// `user` runs `ssh ca@127.0.0.1 ARGS...` with their own key.
    pub async fn ssh(&self, user: &str, args: &[&str]) -> SshOutput {
        self.door.ssh(self.keys.path(user), "ca", args).await
    }

    /// Waits until `user` sees exactly one pending request, and returns its id.
    pub async fn pending_id(&self, user: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.app.get(user, "/v1/requests?status=pending").await;
            if let Some(id) = body["requests"][0]["id"].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no pending request appeared");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
