//! A real sshd serving the host certificate `host enroll` wrote, and a real `ssh` whose
//! only trust is what `known-hosts`, `ssh-config` and `krl sync --host` made: it gets
//! past host key checking without a prompt and writes no known_hosts line; a renewal is
//! served at the next connection without restarting sshd; a revoked certificate fails.

use std::path::Path;
use std::process::Command;

use crate::cli::text;
use crate::helpers::TestApp;
use crate::host_cli::{enroll, host_cmd, host_policy, join_token, listed, ok, serial};
use crate::sshd_helper::Sshd;

/// `ssh -v -F cfg web1.example.com true` with no user key: host key checking happens
/// first, then authentication fails. Returns its stderr.
fn connect(cfg: &Path) -> String {
    tokio::task::block_in_place(|| connect_now(cfg))
}

fn connect_now(cfg: &Path) -> String {
    let out = Command::new("ssh")
        .args(["-v", "-F"])
        .arg(cfg)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "ConnectTimeout=10",
            "web1.example.com",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "no user key: never logged in");
    text(&out.stderr)
}

/// Whether `ssh -v` got past host key checking (to authentication).
fn host_accepted(log: &str) -> bool {
    log.contains("Permission denied") && !log.contains("Host key verification failed")
}

/// The serial of the host certificate `ssh -v` was shown.
fn served_serial(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find(|l| l.contains("Server host certificate:"))?;
    let (_, rest) = line.split_once(", serial ")?;
    Some(rest.split(' ').next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_trusts_only_the_host_ca_and_follows_renewal_and_revocation() {
    let app = TestApp::spawn_with(&host_policy()).await;
    let base = app.dir.path();
    let sshd_dir = base.join("sshd");
    let host_pub = sshd_dir.join("host_ed25519.pub");
    let cert = sshd_dir.join("host_ed25519-cert.pub");
    let hostcert = format!("HostCertificate {}\n", cert.display());
    let user_ca = app.service.ca().public_key_line();
    // The certificate does not exist yet: sshd loads it at each connection.
    let sshd = Sshd::start_with(&sshd_dir, &user_ca, &hostcert);
    let said = enroll(&app, &join_token(&app, "web1.example.com").await, &host_pub).await;
    assert!(said.starts_with("HostCertificate "), "{said}");

    // The client's files, as the ssh-config comments say to make them.
    let (kh, krl) = (base.join("countersign_known_hosts"), base.join("host.krl"));
    let line = ok(host_cmd(&app, &["known-hosts", "--domain", "example.com"])).await;
    std::fs::write(&kh, &line.stdout).unwrap();
    let mut sync = host_cmd(&app, &["krl", "sync", "--host", "--once", "--out"]);
    sync.arg(&krl);
    ok(sync).await;
    let mut cmd = host_cmd(&app, &["ssh-config", "--domain", "example.com"]);
    cmd.arg("--known-hosts").arg(&kh).arg("--krl").arg(&krl);
    let snippet = text(&ok(cmd).await.stdout);
    let cfg = base.join("ssh_config");
    let route = format!(
        "Host web1.example.com\n    Hostname 127.0.0.1\n    Port {}\n    \
         HostKeyAlias web1.example.com\n",
        sshd.port
    );
    std::fs::write(&cfg, format!("{snippet}{route}")).unwrap();

    let known = std::fs::read(&kh).unwrap();
    let log = connect(&cfg);
    assert!(host_accepted(&log), "{log}\n{}", sshd.log());
    let first = serial(&listed(&cert));
    assert_eq!(
        served_serial(&log).as_deref(),
        Some(first.as_str()),
        "{log}"
    );
    assert_eq!(std::fs::read(&kh).unwrap(), known, "nothing was learned");

    // Renewed: the next connection gets the new certificate, sshd untouched.
    let mut renew = host_cmd(&app, &["host", "renew", "--key"]);
    renew.arg(&host_pub);
    ok(renew).await;
    let second = serial(&listed(&cert));
    assert_ne!(first, second);
    let log = connect(&cfg);
    assert!(host_accepted(&log), "{log}");
    assert_eq!(
        served_serial(&log).as_deref(),
        Some(second.as_str()),
        "{log}"
    );

    // Revoked, and the client's KRL synced: a hard failure, no prompt.
    let mut revoke = crate::cli::client(&app, "bob");
    revoke.args([
        "host",
        "revoke",
        "--serial",
        &second,
        "--reason",
        "compromised",
    ]);
    ok(revoke).await;
    let mut sync = host_cmd(&app, &["krl", "sync", "--host", "--once", "--out"]);
    sync.arg(&krl);
    ok(sync).await;
    let log = connect(&cfg);
    assert!(log.contains("Host key verification failed"), "{log}");
    assert!(log.contains("revoked"), "{log}");
    assert_eq!(std::fs::read(&kh).unwrap(), known);
    drop(sshd);
}
