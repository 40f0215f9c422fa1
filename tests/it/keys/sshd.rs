//! Registered keys in use: `countersign keys add` (the real binary and `ssh-keygen`, from
//! a key file and from the ssh-agent), the SSH front door, and a real OpenSSH sshd.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

use super::{fingerprint, key_file, registered};
use crate::cli::{client, run, text};
use crate::front_door_helper::Door;
use crate::helpers::{Agent, TestApp, code};
use crate::sshd_helper::{Sshd, current_user};

/// `countersign keys ARGS...` as `user`.
async fn keys(
    app: &TestApp,
    user: &str,
    args: &[&str],
    agent: Option<&Path>,
) -> std::process::Output {
    let mut cmd = client(app, user);
    cmd.arg("keys").args(args);
    match agent {
        Some(socket) => cmd.env("SSH_AUTH_SOCK", socket),
        None => cmd.env_remove("SSH_AUTH_SOCK"),
    };
    run(cmd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_add_proves_with_the_key_file_or_the_agent_and_the_key_logs_in_on_sshd() {
    let login = current_user();
    // The end-to-end test's policy (role `shell` logs in as this account), with only
    // registered keys certified.
    let policy = crate::sshd::policy(&login).replace(
        "[users.alice]",
        "[requests]\nrequire_registered_keys = true\n[users.alice]",
    );
    let app = TestApp::spawn_with(&policy).await;
    // From the key file next to the .pub.
    let (path, line) = key_file(&app, "alice_file");
    let out = keys(
        &app,
        "alice",
        &["add", &format!("{}.pub", path.display())],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("registered {} for alice", fingerprint(&line))));
    // From the agent: no private key file, the agent holds it.
    let (agent_path, agent_line) = key_file(&app, "alice_agent");
    let agent = Agent::start(app.dir.path());
    agent.ssh_add(&[agent_path.to_str().unwrap()]);
    let hidden = app.dir.path().join("elsewhere");
    std::fs::rename(&agent_path, &hidden).unwrap();
    let pub_file = format!("{}.pub", agent_path.display());
    let out = keys(&app, "alice", &["add", &pub_file], None).await;
    assert!(!out.status.success(), "signed without the agent");
    assert!(
        text(&out.stderr).contains("ssh-agent"),
        "{}",
        text(&out.stderr)
    );
    let out = keys(&app, "alice", &["add", &pub_file], Some(&agent.socket)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = keys(&app, "alice", &["list"], None).await;
    let listing = text(&out.stdout);
    for l in [&line, &agent_line] {
        assert!(listing.contains(&fingerprint(l)), "{listing}");
    }

    // Unregistered: refused. Registered: certified, and it logs in on a real sshd.
    let stranger = crate::helpers::public_line(&crate::helpers::new_key());
    let (status, body) = app.create_with_key("alice", "shell", None, &stranger).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    let (status, body) = app.create_with_key("alice", "shell", None, &line).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, body) = app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let (_, cert) = app.certificate("alice", &id).await;
    let cert_path = app.dir.path().join("alice_file-cert.pub");
    std::fs::write(&cert_path, cert).unwrap();
    let sshd = Sshd::start(
        &app.dir.path().join("sshd"),
        &app.service.ca().public_key_line(),
    );
    assert!(
        tokio::task::block_in_place(|| sshd.login(&login, &path, &cert_path)),
        "login with the registered key's certificate failed: {}",
        sshd.log()
    );

    // keys remove by file, then by fingerprint.
    let out = keys(
        &app,
        "alice",
        &["remove", &format!("{}.pub", path.display())],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = keys(&app, "alice", &["remove", &fingerprint(&agent_line)], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, body) = app.get("alice", "/v1/keys").await;
    assert_eq!(body["keys"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_key_logs_in_at_the_front_door_until_it_is_removed() {
    let d = Door::spawn("").await;
    let (path, line) = registered(&d.app, "alice", "alice_second").await;
    let out = d.door.ssh(&path, "ca", &["whoami"]).await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("alice"), "{out:?}");
    // Under her own login name too.
    let out = d.door.ssh(&path, "alice", &["whoami"]).await;
    assert_eq!(out.status, 0, "{out:?}");
    let (status, _) = d
        .app
        .post(
            "alice",
            "/v1/keys/remove",
            json!({ "fingerprint": fingerprint(&line) }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let out = d.door.ssh(&path, "ca", &["whoami"]).await;
    assert_eq!(out.status, 255, "a removed key still logs in: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_taken_out_of_the_config_no_longer_logs_in_with_its_registered_keys() {
    let d = Door::spawn("").await;
    let (path, _) = registered(&d.app, "dave", "dave_second").await;
    let out = d.door.ssh(&path, "ca", &["whoami"]).await;
    assert_eq!(out.status, 0, "{out:?}");
    let config = crate::front_door_helper::policy(&d.keys, "", "1h");
    let start = config.find("[users.dave]").unwrap();
    let end = config[start..].find("[roles.").unwrap() + start;
    let without = format!("{}{}", &config[..start], &config[end..]);
    d.app
        .service
        .reload(d.app.config_of(&without), "operator")
        .expect("reload");
    let out = d.door.ssh(&path, "ca", &["whoami"]).await;
    assert_eq!(
        out.status, 255,
        "a name out of the config still logs in: {out:?}"
    );
}
