//! The real binary's `request --wait` and `cert --out`: the certificate file ssh finds,
//! replaced whole.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{client, run, text};
use crate::helpers::*;

#[tokio::test]
async fn request_wait_writes_the_certificate_where_ssh_finds_it() {
    let app = TestApp::spawn().await;
    let key = write_key(app.dir.path(), "id_ed25519", &new_key());
    let pub_path = key.with_extension("pub");
    let mut waiter = client(&app, "alice");
    waiter
        .args([
            "request",
            "prod-db",
            "--reason",
            "INC-4211: replica lag",
            "--ttl",
            "45m",
            "--wait",
            "--poll-seconds",
            "1",
            "--key",
        ])
        .arg(&pub_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = waiter.spawn().unwrap();

    // Wait for the request to appear, then approve it with the CLI as someone else.
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (_, body) = app.get("bob", "/v1/requests?status=pending").await;
        if let Some(id) = body["requests"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "request never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let own = run({
        let mut c = client(&app, "alice");
        c.args(["approve", &id]);
        c
    })
    .await;
    assert!(!own.status.success());
    assert!(
        text(&own.stderr).contains("self_approval"),
        "{}",
        text(&own.stderr)
    );

    let out = run({
        let mut c = client(&app, "bob");
        c.args(["approve", &id, "--comment", "go ahead"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(done.status.success(), "{}", text(&done.stderr));
    let cert_path = app.dir.path().join("id_ed25519-cert.pub");
    assert_eq!(text(&done.stdout).trim(), cert_path.display().to_string());
    let cert = std::fs::read_to_string(&cert_path).unwrap();
    assert!(
        ssh_keygen_list(app.dir.path(), &cert).contains(&format!("countersign:{id}:alice:prod-db"))
    );

    let show = run({
        let mut c = client(&app, "alice");
        c.args(["show", &id]);
        c
    })
    .await;
    let show = text(&show.stdout);
    assert!(
        show.contains("approved by  bob") && show.contains("go ahead"),
        "{show}"
    );

    let (_, body) = app.request("alice", &id).await;
    let serial = body["certificate"]["serial"].as_str().unwrap().to_owned();
    let audit = run({
        let mut c = client(&app, "bob");
        c.args(["audit", "--serial", &serial, "--json"]);
        c
    })
    .await;
    let events: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(events[0]["action"], "request.created");
    assert_eq!(events[0]["detail"]["reason"], "INC-4211: replica lag");
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "request.created",
            "attempt.refused",
            "request.approved",
            "certificate.issued"
        ]
    );
}

/// Starts `request prod-db --wait` for alice's key `pub_path` and returns the child and
/// the id of the request once it is pending.
pub async fn request_waiting(app: &TestApp, pub_path: &Path) -> (std::process::Child, String) {
    let before = listed_ids(&app.get("bob", "/v1/requests?status=pending").await.1);
    let mut waiter = client(app, "alice");
    waiter
        .args(["request", "prod-db", "--reason", "INC-1", "--wait"])
        .args(["--poll-seconds", "1", "--key"])
        .arg(pub_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = waiter.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (_, body) = app.get("bob", "/v1/requests?status=pending").await;
        if let Some(id) = listed_ids(&body).into_iter().find(|i| !before.contains(i)) {
            break Some(id);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (child, id.expect("request never appeared"))
}

/// Regression: `cert --out` and `request --wait` rewrote the certificate file in place,
/// so a reader (or a failure half-way) could find it empty. Now the file is replaced
/// whole by a rename (another name for the old file keeps the old content), nothing is
/// left behind, and a request that is denied leaves the current certificate alone.
#[tokio::test]
async fn cert_out_and_request_wait_replace_the_certificate_file_atomically() {
    let app = TestApp::spawn().await;
    let key = write_key(app.dir.path(), "id_ed25519", &new_key());
    let pub_path = key.with_extension("pub");
    let cert_path = app.dir.path().join("id_ed25519-cert.pub");
    std::fs::write(&cert_path, "the certificate in use\n").unwrap();
    let link = app.dir.path().join("old-cert-link");
    std::fs::hard_link(&cert_path, &link).unwrap();
    let temp_files = || {
        std::fs::read_dir(app.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .count()
    };

    // cert --out
    let (status, body) = app
        .create_with_key(
            "alice",
            "prod-db",
            None,
            &std::fs::read_to_string(&pub_path).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.approve("bob", &id).await.1["status"], "issued");
    let out = run({
        let mut c = client(&app, "alice");
        c.args(["cert", &id, "--out"]).arg(&cert_path);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = std::fs::read_to_string(&cert_path).unwrap();
    assert!(
        first.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{first}"
    );
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        "the certificate in use\n",
        "the file was rewritten in place, not replaced"
    );
    assert_eq!(temp_files(), 0);

    // request --wait, denied: the certificate in use stays as it is.
    std::fs::remove_file(&link).unwrap();
    std::fs::hard_link(&cert_path, &link).unwrap();
    let (child, id) = request_waiting(&app, &pub_path).await;
    assert_eq!(app.deny("bob", &id, "not now").await.0, 200);
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(!done.status.success());
    assert!(
        text(&done.stderr).contains("not now"),
        "{}",
        text(&done.stderr)
    );
    assert_eq!(std::fs::read_to_string(&cert_path).unwrap(), first);

    // request --wait, approved: replaced whole.
    let (child, id) = request_waiting(&app, &pub_path).await;
    assert_eq!(app.approve("bob", &id).await.1["status"], "issued");
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(done.status.success(), "{}", text(&done.stderr));
    let second = std::fs::read_to_string(&cert_path).unwrap();
    assert!(second.starts_with("ssh-ed25519-cert-v01@openssh.com ") && second != first);
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        first,
        "the file was rewritten in place, not replaced"
    );
    assert_eq!(temp_files(), 0);
}

/// `cert` of a certificate revoked since still prints it (it is the record), and says on
/// stderr that servers reading the KRL refuse it.
#[tokio::test]
async fn cert_of_a_revoked_certificate_says_it_is_revoked() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    assert_eq!(app.approve("bob", &id).await.1["status"], "issued");
    let cert = || {
        let mut c = client(&app, "alice");
        c.args(["cert", &id]);
        run(c)
    };
    let out = cert().await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let (status, body) = app
        .post("alice", &format!("/v1/requests/{id}/done"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let out = cert().await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ssh-ed25519-cert-v01@openssh.com "));
    let said = text(&out.stderr);
    assert!(
        said.contains("warning: this certificate was revoked"),
        "{said}"
    );
    assert!(said.contains("by alice"), "{said}");
}
