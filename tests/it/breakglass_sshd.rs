//! Break-glass with real components (issue 20): the identity provider stopped, alice
//! breaks the glass over the SSH front door (known by her registered key), a real sshd
//! lets the certificate in and logs its break-glass key ID; the webhook receiver hears of
//! it within 5 s; a second use is refused; her own review is refused; an `unjustified`
//! verdict puts the serial in the KRL and the real sshd refuses the login; a second
//! reviewer closes the review; `audit verify` passes. And the CLI binary end to end.

use serde_json::json;
use std::os::unix::fs::PermissionsExt;

use crate::cli::{client, run, text};
use crate::front_door_helper::{FrontDoor, KeyRing, SshOutput, policy};
use crate::helpers::*;
use crate::idp::{Account, Client, Idp, IdpState};
use crate::notify::{Receiver, of_type};
use crate::sshd_helper::{Sshd, current_user};

/// Role `shell`'s break-glass: alice (dev) invokes, bob and carol (dba) review, both.
const SHELL_BREAK_GLASS: &str = r#"
[roles.shell.break_glass]
invokers = ["group:dev"]
max_ttl = "30m"
reason_pattern = "^INC-[0-9]+"
reviewers = ["group:dba"]
reviews = 2
review_within = "24h"
"#;

/// `[oidc]` for `idp`, its client secret written in `dir`.
fn oidc(idp: &Idp, dir: &std::path::Path) -> String {
    let secret = dir.join("oidc-secret");
    std::fs::write(&secret, "countersign-client-secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "\n[oidc]\nissuer = \"{}\"\nclient_id = \"countersign\"\nclient_secret_file = \"{}\"\n\
         public_url = \"http://127.0.0.1:9\"\nallow_insecure_loopback_issuer = true\n",
        idp.issuer,
        secret.display()
    )
}

/// `ssh ca@door ARGS` as `user`, with their key.
async fn ssh(door: &FrontDoor, keys: &KeyRing, user: &str, args: &[&str]) -> SshOutput {
    door.ssh(keys.path(user), "ca", args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_idp_down_break_glass_over_ssh_logs_in_and_an_unjustified_verdict_locks_out() {
    let state = IdpState::new(Client::new(
        "countersign",
        "countersign-client-secret",
        "http://127.0.0.1:9/v1/oidc/callback",
    ))
    .account("alice", Account::new("alice", &[]));
    let mut idp = Idp::start(&state);
    let mut hook = Receiver::new(true);
    hook.start();
    let keys = KeyRing::new();
    let secrets = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{SHELL_BREAK_GLASS}{}{}",
        policy(&keys, "", "1h"),
        oidc(&idp, secrets.path()),
        hook.sink("hook", r#"["request.created"]"#, "")
    );
    let app = TestApp::spawn_with(&config).await;
    let door = FrontDoor::start(&app).await;
    // The provider goes down: the front door still knows alice by her key.
    idp.stop();
    let out = ssh(
        &door,
        &keys,
        "alice",
        &[
            "breakglass",
            "shell",
            "--ttl",
            "2h",
            "--reason",
            "INC-77 db down",
        ],
    )
    .await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stderr.contains("BREAK-GLASS"), "{}", out.stderr);
    assert!(
        out.stderr.contains("cut to"),
        "2h asked, 30m max: {}",
        out.stderr
    );
    let line = out.stdout.trim().to_owned();
    assert!(
        line.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{line}"
    );
    let cert = ssh_key::Certificate::from_openssh(&line).unwrap();
    let life = cert.valid_before() - cert.valid_after();
    assert!((1800..=1800 + 600).contains(&life), "lifetime {life}s");
    let id = cert.key_id().split(':').nth(2).unwrap().to_owned();
    assert_eq!(cert.key_id(), format!("countersign:breakglass:{id}:alice"));

    // A real sshd trusting the CA, reading the KRL served now at every login.
    let dir = tempfile::tempdir().unwrap();
    let krl_path = dir.path().join("revoked.krl");
    let krl = || async { std::fs::write(&krl_path, app.krl().await).unwrap() };
    krl().await;
    let ca = app.service.ca().public_key_line();
    let sshd = Sshd::start_with(
        &dir.path().join("sshd"),
        &ca,
        &format!("RevokedKeys {}\n", krl_path.display()),
    );
    let cert_path = dir.path().join("alice-cert.pub");
    std::fs::write(&cert_path, format!("{line}\n")).unwrap();
    let login = current_user();
    let key = keys.path("alice").to_owned();
    let ok = tokio::task::block_in_place(|| sshd.login(&login, &key, &cert_path));
    assert!(ok, "login with the certificate failed: {}", sshd.log());
    assert!(
        sshd.log()
            .contains(&format!("countersign:breakglass:{id}:alice")),
        "sshd's log line names the break-glass: {}",
        sshd.log()
    );

    // Every sink, within 5 s.
    let events = hook
        .wait_for(5, |e| of_type(e, "breakglass.used").len() == 1)
        .await;
    assert_eq!(
        of_type(&events, "breakglass.used")[0]["data"]["request"]["id"],
        id.as_str()
    );

    // A second use waits for the review; nobody reviews their own.
    let again = ssh(
        &door,
        &keys,
        "alice",
        &["breakglass", "shell", "--reason", "INC-78 still down"],
    )
    .await;
    assert_eq!(again.status, 1, "{again:?}");
    assert!(
        again.stderr.contains("unreviewed_breakglass"),
        "{}",
        again.stderr
    );
    let own = ssh(
        &door,
        &keys,
        "alice",
        &["review", &id, "--justified", "--comment", "mine"],
    )
    .await;
    assert_eq!(own.status, 1, "{own:?}");
    assert!(own.stderr.contains("self_review"), "{}", own.stderr);
    // An unjustified verdict revokes at once: the KRL lists it and sshd refuses.
    let verdict = ssh(
        &door,
        &keys,
        "carol",
        &["review", &id, "--unjustified", "--comment", "no incident"],
    )
    .await;
    assert_eq!(verdict.status, 0, "{verdict:?}");
    krl().await;
    let ok = tokio::task::block_in_place(|| sshd.login(&login, &key, &cert_path));
    assert!(!ok, "a revoked certificate logged in: {}", sshd.log());
    let closed = ssh(
        &door,
        &keys,
        "bob",
        &["review", &id, "--justified", "--comment", "it was real"],
    )
    .await;
    assert_eq!(closed.status, 0, "{closed:?}");
    assert!(
        closed.stdout.contains("closed: unjustified"),
        "{}",
        closed.stdout
    );
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    // Judged unjustified: alice breaks the glass again only once an admin allows it.
    let args = ["breakglass", "shell", "--reason", "INC-79 new outage"];
    let refused = ssh(&door, &keys, "alice", &args).await;
    assert_eq!(refused.status, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("unjustified_breakglass"),
        "{refused:?}"
    );
    let allow = serde_json::json!({ "user": "alice" });
    let (status, body) = app.post("bob", "/v1/breakglass/allow", allow).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let third = ssh(&door, &keys, "alice", &args).await;
    assert_eq!(third.status, 0, "{third:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_breaks_the_glass_writes_the_certificate_and_reviews() {
    let app = TestApp::spawn_with(&crate::breakglass::breakglass_policy()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = new_key();
    write_key(dir.path(), "id_ed25519", &key);
    let key_pub = dir.path().join("id_ed25519.pub");
    let mut cmd = client(&app, "alice");
    cmd.args([
        "breakglass",
        "prod-db",
        "--reason",
        "INC-9 disk full",
        "--ttl",
        "5h",
        "--key",
    ])
    .arg(&key_pub);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    assert!(id.starts_with("r-"), "{id}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cut to"), "{stderr}");
    let written = std::fs::read_to_string(dir.path().join("id_ed25519-cert.pub")).unwrap();
    let cert = ssh_key::Certificate::from_openssh(written.trim()).unwrap();
    assert_eq!(cert.key_id(), format!("countersign:breakglass:{id}:alice"));
    // A pattern mismatch is refused with its code, and nothing is written.
    let mut cmd = client(&app, "frank");
    cmd.args(["breakglass", "prod-db", "--reason", "no ticket", "--key"])
        .arg(&key_pub);
    let out = run(cmd).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("reason_mismatch"),
        "{}",
        text(&out.stderr)
    );
    // `breakglass allow` from the CLI, while alice's use waits.
    let mut cmd = client(&app, "bob");
    cmd.args(["breakglass", "allow", "alice", "--json"]);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let allowed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        allowed,
        json!({ "user": "alice", "allowed_by": "bob", "unreviewed": id, "unjustified": null })
    );
    // Reviews from the CLI; `show` and `report --breakglass` tell the story.
    for (who, verdict) in [("erin", "--justified"), ("carol", "--justified")] {
        let mut cmd = client(&app, who);
        cmd.args(["review", &id, verdict, "--comment", "INC-9 was real"]);
        let out = run(cmd).await;
        assert!(out.status.success(), "{who}: {}", text(&out.stderr));
    }
    let mut cmd = client(&app, "bob");
    cmd.args(["show", &id]);
    let shown = text(&run(cmd).await.stdout);
    assert!(
        shown.contains("break-glass") && shown.contains("reviewed by  erin"),
        "{shown}"
    );
    let mut cmd = client(&app, "bob");
    cmd.args(["report", "--breakglass"]);
    let out = run(cmd).await;
    let report = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        report.contains(&id) && report.contains("INC-9 disk full"),
        "{report}"
    );
    assert!(report.contains("justified, closed after"), "{report}");
    let mut cmd = client(&app, "bob");
    cmd.args(["report", "--breakglass", "--json"]);
    let uses: serde_json::Value = serde_json::from_slice(&run(cmd).await.stdout).unwrap();
    assert_eq!(uses[0]["verdicts"].as_array().unwrap().len(), 2, "{uses}");
    assert_eq!(uses[0]["outcome"], "justified");
}
