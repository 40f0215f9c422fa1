//! Offboarding is one operation: `revoke --user` also disables the user (tokens revoked
//! for good, every credential refused, over HTTP and SSH, across restarts) until an admin
//! enables them; unknown names are `not_found`.

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::front_door_helper::*;
use crate::helpers::*;
use crate::revocation::issued;

/// [`POLICY`] with alice also in `sre`, so she approves `deploy` requests.
fn policy_alice_approves() -> String {
    POLICY.replacen(
        "[users.alice]\ngroups = [\"dev\"]",
        "[users.alice]\ngroups = [\"dev\", \"sre\"]",
        1,
    )
}

async fn revoke_user(app: &TestApp, admin: &str, user: &str) -> (StatusCode, Value) {
    app.post(
        admin,
        &format!("/v1/users/{user}/revoke"),
        json!({ "reason": "left the company" }),
    )
    .await
}

async fn enable_user(app: &TestApp, admin: &str, user: &str) -> (StatusCode, Value) {
    app.post(admin, &format!("/v1/users/{user}/enable"), json!({}))
        .await
}

/// Audit rows with `action` about `user` (detail.user).
async fn audited(app: &TestApp, action: &str, user: &str) -> Vec<Value> {
    app.audit("")
        .await
        .into_iter()
        .filter(|e| e["action"] == action && e["detail"]["user"] == user)
        .collect()
}

#[tokio::test]
async fn a_revoked_user_is_refused_every_token_and_approval_until_enabled_even_after_a_restart() {
    let app = TestApp::spawn_with(&policy_alice_approves()).await;
    let (alices, serial, _) = issued(&app, "alice", "prod-db", None).await;
    let franks = app.create_ok("frank", "deploy").await;
    let alice_before = app.token("alice").to_owned();

    let (status, body) = revoke_user(&app, "bob", "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], json!([serial]));
    assert_eq!(body["cancelled"], json!([]));
    assert_eq!(body["disabled"], true);
    assert_eq!(body["tokens_revoked"], 1);
    assert_eq!(body["already_disabled"], false);

    // Her token: refused, saying why.
    let (status, body) = app.get("alice", "/v1/whoami").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "user_disabled")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user alice is disabled"),
        "{body}"
    );
    // Nothing she does is accepted: not an approval (she approves deploy), not a request.
    let (status, body) = app.approve("alice", &franks).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "user_disabled")
    );
    let (status, body) = app.create("alice", "prod-db", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "user_disabled")
    );
    let (_, view) = app.request("bob", &franks).await;
    assert_eq!(
        (view["status"].as_str(), view["approvals"].clone()),
        (Some("pending"), json!([]))
    );
    // No operator can hand her a token meanwhile.
    let alice = countersign::names::UserName::parse("alice").unwrap();
    let err = countersign::service::create_token(
        app.service.store(),
        &app.service.config(),
        &alice,
        "operator",
        &countersign::service::TokenSpec::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("alice is disabled"), "{err}");

    // Others see it: the request views, and her own whoami would say so.
    let (_, list) = app.get("bob", "/v1/requests").await;
    let rows = list["requests"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["requester"] == "alice"), "{list}");
    assert!(rows.iter().any(|r| r["requester"] != "alice"), "{list}");
    for r in rows {
        assert_eq!(r["requester_disabled"], r["requester"] == "alice", "{r}");
    }
    let (_, view) = app.request("bob", &alices).await;
    assert_eq!(view["requester_disabled"], true);
    let (_, me) = app.get("bob", "/v1/whoami").await;
    assert_eq!(me["disabled"], false, "{me}");

    // One audit row: who, why, how many tokens. Revoking again ends what is left (nothing)
    // and writes no second one.
    let rows = audited(&app, "user.disabled", "alice").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor"], "bob");
    assert_eq!(rows[0]["detail"]["reason"], "left the company");
    assert_eq!(rows[0]["detail"]["tokens_revoked"], 1);
    let (status, body) = revoke_user(&app, "bob", "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            &body["disabled"],
            &body["already_disabled"],
            &body["tokens_revoked"]
        ),
        (&json!(true), &json!(true), &json!(0))
    );
    assert_eq!(audited(&app, "user.disabled", "alice").await.len(), 1);

    // The mark is in the database: a restart keeps it, whatever the config says.
    let mut app = app.restart().await;
    let (status, body) = app.get("alice", "/v1/whoami").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "user_disabled")
    );

    let (status, body) = enable_user(&app, "carol", "alice").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = enable_user(&app, "bob", "frank").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "not_disabled")
    );
    let (status, body) = enable_user(&app, "bob", "alcie").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = enable_user(&app, "bob", "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "user": "alice", "disabled": false }));
    let enabled = audited(&app, "user.enabled", "alice").await;
    assert_eq!(enabled.len(), 1, "{enabled:?}");
    assert_eq!(enabled[0]["actor"], "bob");

    // The old token stays dead; a new one works, and so does her approval.
    let (status, body) = app.get("alice", "/v1/whoami").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert_eq!(app.token("alice"), alice_before);
    let fresh = app.create_token("alice");
    app.tokens.insert("alice".into(), fresh);
    let (status, me) = app.get("alice", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["disabled"], false);
    let (status, body) = app.approve("alice", &franks).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued");
    let (_, view) = app.request("bob", &alices).await;
    assert_eq!(view["requester_disabled"], false);
}

#[tokio::test]
async fn an_unknown_name_is_not_found_but_a_user_removed_from_the_config_is_still_revocable() {
    let app = TestApp::spawn().await;
    let (status, body) = revoke_user(&app, "bob", "alcie").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    assert!(audited(&app, "user.disabled", "alcie").await.is_empty());
    assert_eq!(app.count("SELECT count(*) FROM disabled_users"), 0);
    // A non-admin learns nothing of which names exist.
    let (status, _) = revoke_user(&app, "carol", "alcie").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nobody disables themselves: no admin might be left to enable them.
    let (status, body) = revoke_user(&app, "bob", "bob").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );

    let (_, serial, _) = issued(&app, "frank", "prod-db", None).await;
    let without_frank = POLICY.replacen("[users.frank]\ngroups = [\"dev\"]\n", "", 1);
    assert_ne!(without_frank, POLICY);
    let app = app.restart_with(&without_frank).await;
    let (status, body) = revoke_user(&app, "bob", "frank").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], json!([serial]));
    assert_eq!(body["disabled"], true);
}

fn countersign(app: &TestApp, user: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("--config")
        .arg(app.config_path())
        .args(args)
        .env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", app.token(user))
        .output();
    out.expect("countersign runs")
}

async fn cli(app: &TestApp, user: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::task::block_in_place(|| countersign(app, user, args));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_user_and_user_enable_from_the_command_line() {
    let app = TestApp::spawn().await;
    let (id, serial, _) = issued(&app, "alice", "prod-db", None).await;

    let (ok, _, err) = cli(
        &app,
        "bob",
        &["revoke", "--user", "alcie", "--reason", "typo"],
    )
    .await;
    assert!(
        !ok && err.contains("not_found"),
        "a misspelled name fails: {err}"
    );

    let (ok, out, err) = cli(
        &app,
        "bob",
        &["revoke", "--user", "alice", "--reason", "left"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("revoked certificate serial {serial}"));
    assert!(
        err.contains("user alice is disabled (1 token(s) revoked)"),
        "{err}"
    );

    let (ok, _, err) = cli(&app, "alice", &["whoami"]).await;
    assert!(!ok && err.contains("user_disabled"), "{err}");
    let (_, listed, _) = cli(&app, "bob", &["list"]).await;
    let row = listed.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("alice (disabled)"), "{listed}");
    let (_, shown, _) = cli(&app, "bob", &["show", &id]).await;
    assert!(shown.contains("requester    alice (disabled)"), "{shown}");

    let (ok, out, err) = cli(
        &app,
        "bob",
        &["user", "enable", "alice", "--reason", "rehired"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "enabled user alice");
    assert!(err.contains("countersign token create alice"), "{err}");
    let (ok, _, err) = cli(&app, "bob", &["user", "enable", "alice"]).await;
    assert!(!ok && err.contains("not_disabled"), "{err}");
    let (ok, _, err) = cli(&app, "bob", &["user", "enable", "nobody"]).await;
    assert!(!ok && err.contains("not_found"), "{err}");
    let (_, shown, _) = cli(&app, "bob", &["show", &id]).await;
    assert!(shown.contains("requester    alice\n"), "{shown}");
}

/// `ssh -M`: a master connection of `user` in the background, for later commands
/// (`ssh -S`) to run over the same, already authenticated, connection.
struct Master {
    socket: std::path::PathBuf,
    port: u16,
    key: std::path::PathBuf,
}

impl Master {
    async fn open(d: &Door, user: &str) -> Master {
        let socket = d.keys.dir.path().join(format!("{user}.sock"));
        let s = socket.to_str().unwrap().to_owned();
        let opts = ["-M", "-S", &s, "-f", "-N", "-o", "ControlPersist=no"];
        let mut cmd = d.door.command_with(&opts, d.keys.path(user), "ca", &[]);
        let status = tokio::task::spawn_blocking(move || cmd.status().expect("ssh -M runs"))
            .await
            .unwrap();
        assert!(status.success(), "master connection of {user}");
        Master {
            socket,
            port: d.door.port,
            key: d.keys.path(user).to_owned(),
        }
    }

    /// Runs `args` over the master connection.
    async fn run(&self, args: &[&str]) -> SshOutput {
        let s = self.socket.to_str().unwrap().to_owned();
        let mut cmd = crate::sshd_helper::ssh_command(&["-S", &s], &self.key, self.port, "ca");
        cmd.args(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("ssh -S runs"))
            .await
            .unwrap()
            .into()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = crate::sshd_helper::ssh_command(
            &["-S", self.socket.to_str().unwrap(), "-O", "exit"],
            &self.key,
            self.port,
            "ca",
        )
        .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_users_ssh_key_is_refused_and_an_open_connection_acts_no_more() {
    let d = Door::spawn("").await;
    // carol (an approver) keeps a connection open across her offboarding.
    let carols = Master::open(&d, "carol").await;
    assert_eq!(carols.run(&["whoami"]).await.status, 0);
    // alice waits for a decision when she is offboarded.
    let waiting = d.ssh("alice", &["request", "shell", "--reason", "INC-1"]);
    let offboard = async {
        let id = d.pending_id("bob").await;
        let (status, body) = revoke_user(&d.app, "bob", "alice").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["cancelled"], json!([id.as_str()]));
        id
    };
    let (out, _) = tokio::join!(waiting, offboard);
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stdout.is_empty() && out.stderr.contains("cancelled"),
        "{out:?}"
    );
    let out = d.ssh("alice", &["whoami"]).await;
    assert_eq!(out.status, 255, "{out:?}");
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{out:?}"
    );

    // Enabled again, her key works.
    let (status, body) = enable_user(&d.app, "bob", "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = d
        .ssh(
            "alice",
            &["request", "shell", "--reason", "INC-2", "--no-wait"],
        )
        .await;
    assert_eq!(out.status, 0, "{out:?}");
    let id = out.stdout.trim().to_owned();

    let (status, body) = revoke_user(&d.app, "bob", "carol").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = carols.run(&["approve", &id]).await;
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("countersign: user_disabled: user carol is disabled"),
        "{out:?}"
    );
    let (_, view) = d.app.request("bob", &id).await;
    assert_eq!(
        (view["status"].as_str(), view["approvals"].clone()),
        (Some("pending"), json!([]))
    );
    let out = d.ssh("carol", &["whoami"]).await;
    assert_eq!(out.status, 255, "a new connection is refused: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_connection_acts_no_more_once_its_key_leaves_the_config() {
    let d = Door::spawn("").await;
    let alices = Master::open(&d, "alice").await;
    assert_eq!(alices.run(&["whoami"]).await.status, 0);
    // The operator takes alice's (lost) key out of the config and reloads.
    let path = d.app.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let alice_key = format!("ssh_keys = [\"{}\"]", d.keys.public("alice"));
    std::fs::write(&path, text.replacen(&alice_key, "", 1)).unwrap();
    let config = countersign::config::Config::load(&path).unwrap();
    d.app.service.reload(config, "operator:test").unwrap();
    let out = alices
        .run(&[
            "request",
            "shell",
            "--reason",
            "lost laptop key",
            "--no-wait",
        ])
        .await;
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr.contains(
            "countersign: unauthenticated: \
             the key this connection logged in with is no longer registered"
        ),
        "{out:?}"
    );
    let (_, list) = d.app.get("bob", "/v1/requests").await;
    assert_eq!(
        list["requests"],
        json!([]),
        "a request was made with the removed key"
    );
}
