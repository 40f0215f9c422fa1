//! Host certificates through the real binary: `host token create`, `host enroll`, `host
//! renew`, `host revoke`, `host list`, `krl sync --host`, `known-hosts` and `ssh-config`,
//! checked with `ssh-keygen -L`, `ssh-keygen -Q` and `ssh -G`. A real sshd serving the
//! certificates is in `host_cli_sshd.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::{client, countersign, run, text};
use crate::helpers::{POLICY, TestApp, new_key, write_key};

/// [`POLICY`] with host certificates on.
pub fn host_policy() -> String {
    format!(
        "{POLICY}\n[host_ca]\nallowed_principals = [\"*.example.com\", \"web1\", \
         \"127.0.0.1\", \"localhost\", \"10.0.0.0/8\"]\n"
    )
}

/// `countersign ARGS...` as a host would run it: the server's URL, no API token.
pub fn host_cmd(app: &TestApp, args: &[&str]) -> Command {
    let mut cmd = countersign(&app.config_path());
    cmd.env("COUNTERSIGN_URL", &app.url)
        .env_remove("COUNTERSIGN_HOST_TOKEN")
        .args(args);
    cmd
}

/// Runs `cmd` and asserts it succeeded.
pub async fn ok(cmd: Command) -> Output {
    // Its arguments only: the environment holds the API token.
    let shown: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{shown:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// `host token create` as admin bob: the token printed alone on stdout.
pub async fn join_token(app: &TestApp, principals: &str) -> String {
    let mut cmd = client(app, "bob");
    cmd.args(["host", "token", "create", "--principals", principals]);
    let out = ok(cmd).await;
    let token = text(&out.stdout).trim().to_owned();
    assert!(
        token.starts_with("csh_") && !token.contains('\n'),
        "{token}"
    );
    assert!(
        text(&out.stderr).contains("expires"),
        "{}",
        text(&out.stderr)
    );
    token
}

/// A fresh host key `ssh_host_ed25519_key` (and `.pub`) in `dir`; returns the `.pub`.
pub fn host_key(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = write_key(dir, "ssh_host_ed25519_key", &new_key());
    key.with_extension("pub")
}

/// `token` in a file only its owner reads.
pub fn token_file(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("join-token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `host enroll --token-file F --key PUB`; asserts success, returns its stdout.
pub async fn enroll(app: &TestApp, token: &str, public: &Path) -> String {
    let dir = public.parent().unwrap();
    let file = token_file(dir, token);
    let mut cmd = host_cmd(app, &["host", "enroll", "--token-file"]);
    cmd.arg(&file).arg("--key").arg(public);
    text(&ok(cmd).await.stdout)
}

/// `ssh-keygen -L -f FILE`.
pub fn listed(cert: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The `Serial:` of `ssh-keygen -L` output.
pub fn serial(listing: &str) -> String {
    listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serial: "))
        .unwrap_or_else(|| panic!("no serial in {listing}"))
        .to_owned()
}

/// The `Principals:` of `ssh-keygen -L` output, in order.
fn principals(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip_while(|l| !l.trim().starts_with("Principals:"))
        .skip(1)
        .take_while(|l| !l.trim().starts_with("Critical Options:"))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn enroll_renew_revoke_and_the_host_krl_through_the_binary() {
    let app = TestApp::spawn_with(&host_policy()).await;
    let dir = app.dir.path().join("etc-ssh");
    let public = host_key(&dir);
    let token = join_token(&app, "web1,web1.example.com,10.0.0.5").await;
    let said = enroll(&app, &token, &public).await;
    let cert = dir.join("ssh_host_ed25519_key-cert.pub");
    let canonical = std::fs::canonicalize(&cert).unwrap();
    assert_eq!(said, format!("HostCertificate {}\n", canonical.display()));
    let mode = std::fs::metadata(&cert).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o644,
        "the certificate file is readable by all, like the .pub"
    );
    let first = listed(&cert);
    assert!(
        first.contains("ssh-ed25519-cert-v01@openssh.com host certificate"),
        "{first}"
    );
    assert_eq!(principals(&first), ["web1", "web1.example.com", "10.0.0.5"]);

    let mut renew = host_cmd(&app, &["host", "renew", "--key"]);
    renew.arg(&public);
    let out = ok(renew).await;
    let second = listed(&cert);
    let (old, new) = (serial(&first), serial(&second));
    assert_ne!(old, new, "a renewal has a new serial");
    assert_eq!(principals(&second), principals(&first));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("(was {old})")), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");

    let mut revoke = client(&app, "bob");
    revoke.args([
        "host",
        "revoke",
        "--serial",
        &new,
        "--reason",
        "host retired",
    ]);
    let out = ok(revoke).await;
    // The certificate it was renewed from has the same key: revoked with it.
    assert_eq!(
        text(&out.stdout),
        format!(
            "revoked host certificate serial {new}\nrevoked host certificate serial {old} \
             (same host key)\n"
        )
    );

    let krl = app.dir.path().join("countersign_host.krl");
    let mut sync = host_cmd(&app, &["krl", "sync", "--host", "--once", "--out"]);
    sync.arg(&krl);
    ok(sync).await;
    let q = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl)
        .arg(&cert)
        .output()
        .unwrap();
    assert!(text(&q.stdout).contains("REVOKED"), "{}", text(&q.stdout));
    // Pinned on first use: the host CA's key, not the user CA's.
    let pinned = std::fs::read_to_string(app.dir.path().join("countersign_host.krl.ca.pub"));
    let host_ca = app.service.host_ca_public().unwrap();
    let key_of = |l: &str| l.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(key_of(pinned.unwrap().trim()), key_of(&host_ca));

    // The user CA's key never verifies the host KRL.
    let user_ca = app.dir.path().join("user_ca.pub");
    std::fs::write(&user_ca, app.service.ca().public_key_line()).unwrap();
    let mut wrong = host_cmd(&app, &["krl", "--host", "--ca-key"]);
    wrong
        .arg(&user_ca)
        .arg("--out")
        .arg(app.dir.path().join("other.krl"));
    let out = run(wrong).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not verify"),
        "{}",
        text(&out.stderr)
    );

    let mut list = client(&app, "bob");
    list.args(["host", "list", "--all"]);
    let table = text(&ok(list).await.stdout);
    assert!(table.starts_with("SERIAL"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&new)).expect("row");
    assert!(row.contains("revoked") && row.contains("web1,web1.example.com,10.0.0.5"));
    let mut list = client(&app, "bob");
    list.args(["host", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&ok(list).await.stdout).unwrap();
    let serials: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    // Both certificates of the key were revoked: none is valid, and --all shows them.
    assert!(
        serials.is_empty(),
        "only valid ones, unless --all: {serials:?}"
    );
}

#[tokio::test]
async fn a_used_join_token_is_refused_and_the_certificate_file_is_left_as_it_was() {
    let app = TestApp::spawn_with(&host_policy()).await;
    let dir = app.dir.path().join("etc-ssh");
    let public = host_key(&dir);
    let token = join_token(&app, "web2.example.com").await;
    enroll(&app, &token, &public).await;
    let cert = dir.join("ssh_host_ed25519_key-cert.pub");
    let before = std::fs::read(&cert).unwrap();
    let mut again = host_cmd(&app, &["host", "enroll", "--key"]);
    again.arg(&public).env("COUNTERSIGN_HOST_TOKEN", &token);
    let out = run(again).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("used already"), "{stderr}");
    assert!(stderr.contains("was left as it is"), "{stderr}");
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "no temp file is left behind");

    // Without any token: told where to put one, nothing sent.
    let mut none = host_cmd(&app, &["host", "enroll", "--key"]);
    none.arg(&public);
    let out = run(none).await;
    assert!(
        text(&out.stderr).contains("--token-file"),
        "{}",
        text(&out.stderr)
    );
    // A principal outside allowed_principals is named before anything is made.
    let mut outside = client(&app, "bob");
    outside.args(["host", "token", "create", "--principals", "db.other.org"]);
    let out = run(outside).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("principal_not_allowed"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn renewal_with_another_key_or_a_revoked_certificate_is_refused() {
    let app = TestApp::spawn_with(&host_policy()).await;
    let dir = app.dir.path().join("etc-ssh");
    let public = host_key(&dir);
    enroll(&app, &join_token(&app, "web3.example.com").await, &public).await;
    let cert = dir.join("ssh_host_ed25519_key-cert.pub");
    let before = std::fs::read(&cert).unwrap();

    // Another host's key, presenting this host's certificate.
    let other = host_key(&app.dir.path().join("other"));
    let mut cmd = host_cmd(&app, &["host", "renew", "--key"]);
    cmd.arg(&other).arg("--cert").arg(&cert);
    let out = run(cmd).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("another key"), "{stderr}");
    assert_eq!(std::fs::read(&cert).unwrap(), before);

    // The server refuses a revoked certificate, and says what to do.
    let number = serial(&listed(&cert));
    let mut revoke = client(&app, "bob");
    revoke.args([
        "host",
        "revoke",
        "--serial",
        &number,
        "--reason",
        "key leaked",
    ]);
    ok(revoke).await;
    let mut cmd = host_cmd(&app, &["host", "renew", "--key"]);
    cmd.arg(&public);
    let out = run(cmd).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("revoked") && stderr.contains("enroll again"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&cert).unwrap(), before);

    // An encrypted host key is refused before anything is sent.
    let locked = app.dir.path().join("locked");
    let public = host_key(&locked);
    let key = public.with_extension("");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "secret", "-P", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(&cert, locked.join("ssh_host_ed25519_key-cert.pub")).unwrap();
    let mut cmd = host_cmd(&app, &["host", "renew", "--key"]);
    cmd.arg(&public);
    let out = run(cmd).await;
    assert!(
        text(&out.stderr).contains("is encrypted"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn known_hosts_and_ssh_config_print_what_ssh_accepts() {
    let app = TestApp::spawn_with(&host_policy()).await;
    let host_ca = app.service.host_ca_public().unwrap();
    let key_of = |l: &str| l.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let out = ok(host_cmd(&app, &["known-hosts", "--domain", "example.com"])).await;
    let line = text(&out.stdout);
    let rest = line
        .strip_prefix("@cert-authority *.example.com ")
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(key_of(rest.trim()), key_of(&host_ca));
    assert!(
        text(&out.stderr).contains("SHA256:"),
        "the fingerprint to check"
    );

    let ca_file = app.dir.path().join("host_ca.pub");
    std::fs::write(&ca_file, &host_ca).unwrap();
    let mut cmd = host_cmd(
        &app,
        &["known-hosts", "--domain", "a.com", "--domain", "b.com"],
    );
    cmd.arg("--ca-key")
        .arg(&ca_file)
        .env("COUNTERSIGN_URL", "http://127.0.0.1:9");
    let line = text(&ok(cmd).await.stdout);
    assert!(
        line.starts_with("@cert-authority *.a.com,*.b.com ssh-ed25519 "),
        "{line}"
    );
    let line = text(&ok(host_cmd(&app, &["known-hosts"])).await.stdout);
    assert!(line.starts_with("@cert-authority * ssh-ed25519 "), "{line}");
    let out = run(host_cmd(&app, &["known-hosts", "--domain", "Example.COM"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("lower case"),
        "{}",
        text(&out.stderr)
    );

    let (kh, krl) = (app.dir.path().join("kh"), app.dir.path().join("host.krl"));
    let mut cmd = host_cmd(
        &app,
        &["ssh-config", "--domain", "example.com", "--known-hosts"],
    );
    cmd.arg(&kh).arg("--krl").arg(&krl);
    let snippet = text(&ok(cmd).await.stdout);
    assert!(snippet.contains("krl sync --host --out"), "{snippet}");
    assert!(
        snippet.contains("known-hosts --domain example.com >"),
        "{snippet}"
    );
    let cfg = app.dir.path().join("ssh_config");
    std::fs::write(&cfg, &snippet).unwrap();
    let g = |host: &str| {
        let out = Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&cfg)
            .arg(host)
            .output();
        let out = out.unwrap();
        assert!(out.status.success(), "ssh -G: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let ours = g("web1.example.com");
    for want in [
        "stricthostkeychecking true".to_owned(),
        format!("userknownhostsfile {}", kh.display()),
        "globalknownhostsfile /dev/null".to_owned(),
        format!("revokedhostkeys {}", krl.display()),
        "updatehostkeys false".to_owned(),
    ] {
        assert!(ours.lines().any(|l| l == want), "{want} not in:\n{ours}");
    }
    let other = g("github.com");
    assert!(!other.contains("revokedhostkeys"), "{other}");
}
