//! The real binary: operator commands on a temp data dir (`check-config`, `init`,
//! `serve`), and the helpers that run it. Client commands are in `cli_client.rs` and
//! `cli_request.rs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

pub(crate) fn countersign(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.arg("--config")
        .arg(config)
        .env_remove("COUNTERSIGN_TOKEN")
        .env_remove("COUNTERSIGN_URL");
    cmd
}

pub(crate) fn client(app: &TestApp, user: &str) -> Command {
    let mut cmd = countersign(&app.config_path());
    cmd.env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", app.token(user));
    cmd
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

#[test]
fn check_config_summarises_a_good_file_and_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, POLICY).unwrap();
    let out = countersign(&path).arg("check-config").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("role         deploy-audit"), "{stdout}");
    assert!(stdout.contains("policy       unsigned"), "{stdout}");
    assert!(
        text(&out.stderr).contains("warning: the policy is unsigned"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("conflict     deploy <-> deploy-audit"),
        "{stdout}"
    );

    std::fs::write(
        &path,
        POLICY.replace("max_ttl = \"2h\"", "max_ttl = \"2h\"\nmax_tll = \"1h\""),
    )
    .unwrap();
    let out = countersign(&path).arg("check-config").output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("max_tll"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(
        &path,
        POLICY.replace("principals = [\"ops\"]", "principals = [\"*\"]"),
    )
    .unwrap();
    let out = countersign(&path).arg("check-config").output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("roles.ops.principals"),
        "{}",
        text(&out.stderr)
    );

    // No file there: the message says how to name one.
    let out = countersign(&dir.path().join("missing.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--config FILE or COUNTERSIGN_CONFIG"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn init_creates_the_ca_key_once_and_prints_its_public_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, POLICY).unwrap();
    let first = countersign(&path).arg("init").output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).starts_with("ssh-ed25519 "));
    let second = countersign(&path).arg("init").output().unwrap();
    assert!(second.status.success());
    assert_eq!(
        text(&first.stdout),
        text(&second.stdout),
        "never overwritten"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data/ca_key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let db_mode = std::fs::metadata(dir.path().join("data/countersign.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(db_mode & 0o077, 0);

    std::fs::set_permissions(
        dir.path().join("data/ca_key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = countersign(&path).arg("serve").output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn serve_runs_until_sigterm() {
    countersign::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        POLICY.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let mut child = countersign(&path)
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "server never became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ca = reqwest::get(format!("http://127.0.0.1:{port}/v1/ca.pub"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ca.starts_with("ssh-ed25519"));
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "graceful shutdown exits 0");
}

/// A port nothing listens on now, chosen below the kernel's ephemeral range: `bind(0)`
/// and every client's source port come from that range, so a port found there could be
/// taken by another test's connection before the process it is for binds it ("Address
/// already in use" from the webhook receiver, seen once in 29 sessions).
pub(crate) fn free_port() -> u16 {
    use std::io::Read;
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (from, to) = (10000u16, low.max(12000));
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    loop {
        let mut r = [0u8; 2];
        urandom.read_exact(&mut r).unwrap();
        let port = from + u16::from_le_bytes(r) % (to - from);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test]
async fn serve_with_ssh_shows_its_host_key_and_stops_on_ctrl_c() {
    countersign::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (http, ssh) = (free_port(), free_port());
    let path = dir.path().join("c.toml");
    let config = POLICY.replace("127.0.0.1:0", &format!("127.0.0.1:{http}"))
        + &format!("\n[ssh]\nlisten = \"127.0.0.1:{ssh}\"\n");
    std::fs::write(&path, config).unwrap();

    let out = countersign(&path).arg("init").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let fingerprint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("SSH host key fingerprint "))
        .unwrap_or_else(|| panic!("no host key fingerprint: {stderr}"))
        .to_owned();
    let out = countersign(&path).arg("check-config").output().unwrap();
    let summary = text(&out.stdout);
    assert!(
        summary.contains(&format!("ssh          127.0.0.1:{ssh}, host key "))
            && summary.contains(&fingerprint),
        "{summary}"
    );

    let mut child = countersign(&path)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{http}/v1/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&url).await.is_err() {
        assert!(Instant::now() < deadline, "server never became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The SSH listener serves the host key from data_dir.
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &ssh.to_string(), "127.0.0.1"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let line = text(&scan.stdout);
    let key = line
        .split_once(' ')
        .map(|(_, k)| k.trim())
        .unwrap_or_default();
    let served = ssh_key::PublicKey::from_openssh(key)
        .unwrap_or_else(|e| panic!("{e}: {line:?}"))
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    assert_eq!(served, fingerprint);

    // Ctrl-C in the operator's terminal: SIGINT, handled like SIGTERM.
    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "graceful shutdown on SIGINT exits 0: {status:?}"
    );
}

/// `check-config` refuses a user whom `{user}` would give another role's fixed principal
/// (user `ops` requesting prod-db, whose principals include `{user}`, would log in as
/// `ops`: the ops role without its approvers), warns when `{user}` yields root, and
/// refuses an SSH front door on the HTTP port.
#[test]
fn check_config_refuses_principal_clashes_and_a_shared_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let check = |config: String| {
        std::fs::write(&path, config).unwrap();
        countersign(&path).arg("check-config").output().unwrap()
    };
    let out = check(format!("{POLICY}\n[users.ops]\ngroups = [\"dev\"]\n"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for needle in ["roles.prod-db.principals", "user ops", "role ops"] {
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }

    let out = check(format!("{POLICY}\n[users.root]\ngroups = [\"dev\"]\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: roles.prod-db.principals") && err.contains("principal root"),
        "{err}"
    );

    let out = check(
        POLICY.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:7070\"")
            + "\n[ssh]\nlisten = \"127.0.0.1:7070\"\n",
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("ssh.listen") && err.contains("[server] listen"),
        "{err}"
    );
}
