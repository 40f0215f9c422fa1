//! The SSH front door's gate and limits, with the real OpenSSH client: who may log in,
//! the host key, commands per user, connection time limit, expiry while waiting, idle
//! timeout, lockout after refused authentications, shutdown.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::front_door_helper::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_unregistered_key_is_refused_at_authentication() {
    let d = Door::spawn("").await;
    let out = d.ssh("mallory", &["whoami"]).await;
    assert_eq!(out.status, 255, "{out:?}");
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{out:?}"
    );
    assert_eq!(out.stdout, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_login_name_must_be_ca_or_the_users_own() {
    let d = Door::spawn("").await;
    let key = d.keys.path("alice");
    for login in ["ca", "alice"] {
        let out = d.door.ssh(key, login, &["whoami"]).await;
        assert_eq!(out.status, 0, "{login}: {out:?}");
        assert!(out.stdout.starts_with("user         alice\n"), "{out:?}");
        assert!(out.stdout.contains("may request  shell"), "{out:?}");
    }
    for login in ["root", "bob", "CA"] {
        let out = d.door.ssh(key, login, &["whoami"]).await;
        assert_eq!(out.status, 255, "{login} accepted: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_key_is_the_one_in_data_dir() {
    let d = Door::spawn("").await;
    let known = d.keys.dir.path().join("known_hosts");
    std::fs::write(&known, format!("{}\n", d.door.known_hosts_line)).unwrap();
    let known_opt = format!("UserKnownHostsFile={}", known.display());
    let opts = ["-o", "StrictHostKeyChecking=yes", "-o", &known_opt];
    let mut cmd = d
        .door
        .command_with(&opts, d.keys.path("alice"), "ca", &["whoami"]);
    let out: SshOutput = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
        .into();
    assert_eq!(out.status, 0, "host key not the one in data_dir: {out:?}");
    let settings = d.app.service.config().ssh.clone().unwrap();
    let key = countersign::host_key::load(&settings.host_key_file).unwrap();
    assert_eq!(
        countersign::host_key::fingerprint(&key),
        d.door.host_fingerprint
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_runs_at_most_max_sessions_per_user_commands_at_once() {
    let d = Door::spawn("max_sessions_per_user = 1").await;
    let waiting = d.ssh("alice", &["request", "shell", "--reason", "x"]);
    let second = async {
        let id = d.pending_id("alice").await;
        let out = d.ssh("alice", &["whoami"]).await;
        assert_eq!(out.status, 1, "{out:?}");
        assert!(
            out.stderr.starts_with("countersign: too_many_sessions: "),
            "{out:?}"
        );
        // Others are not affected.
        let out = d.ssh("bob", &["approve", &id]).await;
        assert_eq!(out.status, 0, "{out:?}");
    };
    let (out, ()) = tokio::join!(waiting, second);
    assert_eq!(out.status, 0, "{out:?}");
    // The slot is free again.
    let out = d.ssh("alice", &["whoami"]).await;
    assert_eq!(out.status, 0, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_request_gives_up_before_the_connection_time_limit() {
    let d = Door::spawn("connection_timeout = \"3s\"").await;
    let started = Instant::now();
    let out = d.ssh("alice", &["request", "shell", "--reason", "x"]).await;
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr.contains("countersign: still_pending: "),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let id = d.pending_id("alice").await;
    assert!(out.stderr.contains(&format!("cert {id}")), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_request_that_expires_ends_with_expired() {
    let d = Door::spawn_with("", "2s").await;
    let out = d.ssh("alice", &["request", "shell", "--reason", "x"]).await;
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr.contains("countersign: expired: request r-"),
        "{out:?}"
    );
    assert_eq!(out.stdout, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed() {
    let d = Door::spawn("idle_timeout = \"1s\"").await;
    let started = Instant::now();
    let mut child = d
        .door
        .command(d.keys.path("alice"), "ca", &["-N"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("idle connection was not closed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Closed for being idle, not refused at login (which would also end `ssh -N`).
    let lasted = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("Permission denied"), "{stderr}");
    assert!(
        lasted >= Duration::from_millis(900),
        "closed after {lasted:?}: {stderr}"
    );
    // A command that waits longer than the idle timeout is not idle, even while commits
    // elsewhere keep waking it (they must not keep postponing its heartbeat).
    let waiting = d.ssh("alice", &["request", "shell", "--reason", "x"]);
    let approve = async {
        let id = d.pending_id("bob").await;
        let busy_until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < busy_until {
            // Any commit wakes every waiter; a new token is one.
            d.app.create_token("dave");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d.app.approve("bob", &id).await
    };
    let (out, _) = tokio::join!(waiting, approve);
    assert_eq!(out.status, 0, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_authentication_failures_lock_the_address_out() {
    let d = Door::spawn("auth_failures_per_minute = 2").await;
    // The same key logs in before the lockout: what follows is the lockout, not the key.
    let out = d.ssh("alice", &["whoami"]).await;
    assert_eq!(out.status, 0, "{out:?}");
    for _ in 0..2 {
        assert_eq!(d.ssh("mallory", &["whoami"]).await.status, 255);
    }
    let out = d.ssh("alice", &["whoami"]).await;
    assert_eq!(
        out.status, 255,
        "a good key from a locked-out address: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_disconnects_waiting_clients_and_their_requests_stay_pending() {
    let mut d = Door::spawn("").await;
    let mut cmd = d.door.command(
        d.keys.path("alice"),
        "ca",
        &["request", "shell", "--reason", "x"],
    );
    let waiting = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let id = d.pending_id("alice").await;
    d.door.stop().await;
    let out: SshOutput = waiting.await.unwrap().into();
    assert_eq!(out.status, 255, "{out:?}");
    assert_eq!(out.stdout, "");
    let (_, body) = d.app.request("alice", &id).await;
    assert_eq!(body["status"], "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn trying_an_unregistered_key_first_does_not_lock_a_user_out() {
    let d = Door::spawn("auth_failures_per_minute = 1").await;
    for _ in 0..3 {
        let opts = ["-i", d.keys.path("mallory").to_str().unwrap()];
        let mut cmd = d
            .door
            .command_with(&opts, d.keys.path("alice"), "ca", &["whoami"]);
        let out: SshOutput = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
            .into();
        assert_eq!(out.status, 0, "{out:?}");
        assert!(out.stdout.starts_with("user         alice"), "{out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_is_not_accepted_as_the_client_key() {
    let d = Door::spawn("").await;
    let out = d
        .ssh("alice", &["request", "shell", "--reason", "x", "--no-wait"])
        .await;
    let id = out.stdout.trim().to_owned();
    let (_, body) = d.app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued");
    let (_, cert) = d.app.certificate("alice", &id).await;
    // ssh pairs KEY-cert.pub with KEY by itself; offer only that certificate (signed by
    // our own CA, for alice's registered key).
    let cert_path = d.keys.dir.path().join("alice_key-cert.pub");
    std::fs::write(&cert_path, cert).unwrap();
    let opts = [
        "-o",
        "PubkeyAcceptedAlgorithms=ssh-ed25519-cert-v01@openssh.com",
    ];
    let mut cmd = d
        .door
        .command_with(&opts, d.keys.path("alice"), "ca", &["whoami"]);
    let out: SshOutput = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
        .into();
    assert_eq!(out.status, 255, "certificate accepted: {out:?}");
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{out:?}"
    );
    // The same key without the certificate works.
    std::fs::remove_file(&cert_path).unwrap();
    assert_eq!(d.ssh("alice", &["whoami"]).await.status, 0);
}
