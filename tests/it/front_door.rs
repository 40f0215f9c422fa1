//! The SSH front door with the real OpenSSH client: request over ssh, decide over HTTP or
//! ssh, the certificate on stdout logs into a real sshd; the same refusal codes as the
//! API. Paging, injection attempts, disconnects and help are in `front_door_commands.rs`,
//! authentication and limits in `front_door_limits.rs`.

use reqwest::StatusCode;

use crate::front_door_helper::*;
use crate::helpers::*;
use crate::sshd_helper::{Sshd, current_user};

pub(crate) const CERT_PREFIX: &str = "ssh-ed25519-cert-v01@openssh.com ";

#[tokio::test(flavor = "multi_thread")]
async fn request_over_ssh_approved_over_http_prints_a_certificate_that_logs_into_sshd() {
    let d = Door::spawn("").await;
    let waiting = d.ssh(
        "alice",
        &[
            "request",
            "shell",
            "--ttl",
            "10m",
            "--reason",
            "INC-4211 replica lag",
        ],
    );
    let approve = async {
        let id = d.pending_id("bob").await;
        let (status, body) = d.app.approve("bob", &id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "issued");
        body
    };
    let (out, body) = tokio::join!(waiting, approve);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "stdout is the certificate alone: {out:?}"
    );
    assert!(out.stdout.starts_with(CERT_PREFIX), "{out:?}");
    let id = body["id"].as_str().unwrap();
    let serial = body["certificate"]["serial"].as_str().unwrap();
    assert!(
        out.stderr.contains(&format!(
            "request {id} for shell is pending; waiting for 1 approval from group:dba ..."
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "approved by bob; certificate serial {serial} valid until "
        )),
        "{}",
        out.stderr
    );
    assert_eq!(body["reason"], "INC-4211 replica lag");

    // The certificate is for the very key alice logged in with.
    let listed = ssh_keygen_list(d.app.dir.path(), &out.stdout);
    let alice_fp = ssh_key::PublicKey::from_openssh(d.keys.public("alice"))
        .unwrap()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    assert!(listed.contains(&alice_fp), "{listed}");
    assert!(listed.contains(&format!("Serial: {serial}")), "{listed}");
    assert!(
        listed.contains(&format!("countersign:{id}:alice:shell")),
        "{listed}"
    );

    // And it logs into a real sshd that trusts the CA.
    let sshd = Sshd::start(
        &d.app.dir.path().join("sshd"),
        &d.app.service.ca().public_key_line(),
    );
    let cert = d.keys.dir.path().join("alice_key-cert.pub");
    std::fs::write(&cert, &out.stdout).unwrap();
    let key = d.keys.path("alice").to_owned();
    let login = current_user();
    let ok = tokio::task::block_in_place(|| sshd.login(&login, &key, &cert));
    assert!(ok, "login with the certificate failed: {}", sshd.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_and_deny_over_ssh() {
    let d = Door::spawn("").await;
    let out = d
        .ssh(
            "alice",
            &["request", "shell", "--reason", "deploy", "--no-wait"],
        )
        .await;
    assert_eq!(out.status, 0, "{out:?}");
    let id = out.stdout.trim().to_owned();
    assert!(id.starts_with("r-"), "{out:?}");
    assert!(out.stderr.contains(&format!("cert {id}")), "{out:?}");

    let out = d
        .ssh(
            "bob",
            &["approve", &id, "--comment", "replica", "lag", "confirmed"],
        )
        .await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with(&format!("{id} issued: certificate serial ")),
        "{out:?}"
    );
    let (_, body) = d.app.request("alice", &id).await;
    assert_eq!(body["approvals"][0]["comment"], "replica lag confirmed");
    let out = d.ssh("alice", &["cert", &id]).await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.starts_with(CERT_PREFIX), "{out:?}");

    // A waiting request learns that carol denied it.
    let waiting = d.ssh("alice", &["request", "shell", "--reason", "again"]);
    let deny = async {
        let id = d.pending_id("carol").await;
        let out = d
            .ssh("carol", &["deny", &id, "--reason", "not during the freeze"])
            .await;
        assert_eq!(out.status, 0, "{out:?}");
        assert_eq!(out.stdout, format!("{id} denied\n"));
        id
    };
    let (out, id) = tokio::join!(waiting, deny);
    assert_eq!(out.status, 1, "{out:?}");
    assert_eq!(out.stdout, "", "no certificate on stdout");
    assert!(
        out.stderr.ends_with(&format!(
            "countersign: denied: request {id} was denied by carol: not during the freeze\n"
        )),
        "{}",
        out.stderr
    );
    let out = d.ssh("alice", &["status", &id]).await;
    assert!(out.stdout.contains("status       denied"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approving_ones_own_request_over_ssh_is_refused_like_over_http() {
    let d = Door::spawn("").await;
    let out = d
        .ssh("alice", &["request", "shell", "--reason", "x", "--no-wait"])
        .await;
    let id = out.stdout.trim().to_owned();
    let out = d.ssh("alice", &["approve", &id]).await;
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr,
        "countersign: self_approval: you cannot approve your own request\n"
    );
    assert_eq!(out.stdout, "");
    // The same code over HTTP, and the attempt is in the audit log.
    let (status, body) = d.app.approve("alice", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "self_approval")
    );
    let refused = d.app.audit(&format!("request={id}")).await;
    let attempts = refused
        .iter()
        .filter(|e| e["action"] == "attempt.refused" && e["detail"]["code"] == "self_approval")
        .count();
    assert_eq!(attempts, 2, "both attempts audited");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_the_api_codes_and_bad_command_lines_exit_2() {
    let d = Door::spawn("").await;
    let cases: [(&str, &[&str], i32, &str); 7] = [
        (
            "alice",
            &["status", "r-aaaaaaaaaaaa"],
            1,
            "countersign: not_found: no request r-aaaaaaaaaaaa",
        ),
        (
            "alice",
            &["status", "../etc"],
            1,
            "countersign: invalid_request: invalid request id",
        ),
        (
            "alice",
            &["request", "nope", "--reason", "x"],
            1,
            "countersign: invalid_request: unknown role nope",
        ),
        (
            "bob",
            &["request", "shell", "--reason", "x"],
            1,
            "countersign: not_a_requester: bob may not request role shell",
        ),
        (
            "alice",
            &["request", "shell", "--reason", "x", "--ttl", "3h"],
            1,
            "countersign: invalid_request:",
        ),
        (
            "alice",
            &["list", "--status", "bogus"],
            1,
            "countersign: invalid_request: status must be one of",
        ),
        (
            "alice",
            &["frobnicate"],
            2,
            "unrecognized subcommand 'frobnicate'",
        ),
    ];
    for (user, args, status, needle) in cases {
        let out = d.ssh(user, args).await;
        assert_eq!(out.status, status, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
    }
    let long = "x".repeat(5000);
    let out = d
        .ssh("alice", &["request", "shell", "--reason", &long])
        .await;
    assert_eq!(out.status, 2, "{out:?}");
    assert!(out.stderr.contains("at most 4096"), "{}", out.stderr);

    let out = d
        .ssh("alice", &["request", "shell", "--reason", "x", "--no-wait"])
        .await;
    let id = out.stdout.trim();
    let out = d.ssh("alice", &["cert", id]).await;
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.starts_with("countersign: not_issued: "),
        "{}",
        out.stderr
    );
    let out = d.ssh("bob", &["list", "--status", "pending"]).await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.starts_with("ID "), "{}", out.stdout);
    assert!(out.stdout.contains(id), "{}", out.stdout);
}

/// Over the SSH front door, a request past `max_pending_per_user` prints the same code
/// as the API and exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_max_pending_per_user_is_refused_over_ssh_with_its_code() {
    let keys = KeyRing::new();
    let config = policy(&keys, "", "1h").replace(
        "pending_ttl = \"1h\"",
        "pending_ttl = \"1h\"\nmax_pending_per_user = 1",
    );
    let app = TestApp::spawn_with(&config).await;
    let door = FrontDoor::start(&app).await;
    let d = Door { app, door, keys };
    let out = d
        .ssh("alice", &["request", "shell", "--reason", "x", "--no-wait"])
        .await;
    assert_eq!(out.status, 0, "{out:?}");
    let out = d
        .ssh("alice", &["request", "shell", "--reason", "y", "--no-wait"])
        .await;
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("countersign: too_many_pending: you already have 1 pending"),
        "{}",
        out.stderr
    );
    assert_eq!(d.app.count("SELECT count(*) FROM requests"), 1);
}
