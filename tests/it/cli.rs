//! The real binary: operator commands on a temp data dir, client commands against a
//! running server.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

fn countersign(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.arg("--config")
        .arg(config)
        .env_remove("COUNTERSIGN_TOKEN")
        .env_remove("COUNTERSIGN_URL");
    cmd
}

fn client(app: &TestApp, user: &str) -> Command {
    let mut cmd = countersign(&app.config_path());
    cmd.env("COUNTERSIGN_URL", &app.url)
        .env("COUNTERSIGN_TOKEN", app.token(user));
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn run(mut cmd: Command) -> Output {
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
async fn token_create_prints_only_the_token_and_revoke_ends_it() {
    let app = TestApp::spawn().await;
    let out = run({
        let mut c = countersign(&app.config_path());
        c.args(["token", "create", "dave"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout);
    assert_eq!(token.lines().count(), 1);
    let token = token.trim();
    assert!(token.starts_with("cs_") && token.len() == 67, "{token}");
    let stored = app.count(&format!(
        "SELECT count(*) FROM tokens WHERE hash = '{}'",
        countersign::store::tokens::hash(token)
    ));
    assert_eq!(stored, 1, "only the hash is stored");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM tokens WHERE hash = '{token}'"
        )),
        0
    );
    let who = app
        .http
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);

    let out = run({
        let mut c = countersign(&app.config_path());
        c.args(["token", "revoke", "dave"]);
        c
    })
    .await;
    assert!(out.status.success());
    let who = app
        .http
        .get(format!("{}/v1/whoami", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 401);

    let out = run({
        let mut c = countersign(&app.config_path());
        c.args(["token", "create", "nobody"]);
        c
    })
    .await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

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

#[tokio::test]
async fn list_pages_with_limit_and_after() {
    let app = TestApp::spawn().await;
    let first = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.cancel("alice", &first).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let second = app.create_ok("alice", "prod-db").await;
    let list = |args: &'static [&'static str], after: Option<String>| {
        let mut c = client(&app, "alice");
        c.arg("list").args(args);
        if let Some(id) = after {
            c.args(["--after", &id]);
        }
        run(c)
    };
    let page = list(&["--limit", "1"], None).await;
    assert!(page.status.success(), "{}", text(&page.stderr));
    let (out, err) = (text(&page.stdout), text(&page.stderr));
    let shown = [&first, &second]
        .into_iter()
        .find(|id| out.contains(id.as_str()))
        .unwrap_or_else(|| panic!("neither request listed: {out}"))
        .clone();
    let other = if shown == first { &second } else { &first };
    assert!(!out.contains(other.as_str()), "{out}");
    assert!(
        // The hint repeats the options given, so following it keeps the same view.
        err.contains(&format!("countersign list --limit 1 --after {shown}")),
        "{err}"
    );
    let page = list(&["--limit", "1"], Some(shown)).await;
    assert!(page.status.success(), "{}", text(&page.stderr));
    assert!(text(&page.stdout).contains(other.as_str()));
    assert!(!text(&page.stderr).contains("more requests"), "last page");
}

#[tokio::test]
async fn client_errors_are_one_line_with_the_code() {
    let app = TestApp::spawn().await;
    let out = run({
        let mut c = client(&app, "dave");
        c.args(["request", "prod-db", "--reason", "x", "--key"])
            .arg(write_key(app.dir.path(), "k", &new_key()).with_extension("pub"));
        c
    })
    .await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not_a_requester"), "{err}");

    let mut c = client(&app, "dave");
    c.env_remove("COUNTERSIGN_TOKEN").arg("whoami");
    let out = run(c).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("COUNTERSIGN_TOKEN"));
}

/// `request --key` given the private key by mistake refuses it before sending anything:
/// pointed at a port nobody listens on, the answer is about the key, not the connection.
#[tokio::test]
async fn request_refuses_a_private_key_file_before_sending_anything() {
    let app = TestApp::spawn().await;
    let private = write_key(app.dir.path(), "id_ed25519", &new_key());
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let attempt = |key: &Path| {
        let mut c = client(&app, "alice");
        c.env("COUNTERSIGN_URL", &nobody)
            .args(["request", "prod-db", "--reason", "x", "--key"])
            .arg(key);
        c
    };
    let out = run(attempt(&private)).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("is a private key"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(
        !err.contains("BEGIN"),
        "the key's text is not echoed: {err}"
    );
    // Not a key at all: the same, with the parser's reason.
    let junk = app.dir.path().join("notes.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    let err = text(&run(attempt(&junk)).await.stderr);
    assert!(err.contains("not an OpenSSH public key line"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    // The public half gets as far as the (absent) server: the error is the connection.
    let err = text(&run(attempt(&private.with_extension("pub"))).await.stderr);
    assert!(!err.contains("nothing was sent"), "{err}");
    assert!(err.contains(&nobody), "{err}");
}

/// Output that cannot be written is an error message, not a panic: a full disk says so
/// (exit 1), a reader that went away (`| head`) stops the command quietly (exit 141, as
/// SIGPIPE would).
#[tokio::test]
async fn unwritable_stdout_is_a_one_line_error_and_a_closed_pipe_a_quiet_stop() {
    let app = TestApp::spawn().await;
    app.create_ok("alice", "prod-db").await;
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut commands = vec![countersign(&app.config_path())];
    commands[0].arg("check-config");
    let mut list = client(&app, "bob");
    list.arg("list");
    commands.push(list);
    let mut export = client(&app, "bob");
    export.args(["audit", "export", "--since", "1d", "--format", "csv"]);
    commands.push(export);
    for mut cmd in commands {
        let shown = format!("{cmd:?}");
        let out = run({
            cmd.stdout(full()).stderr(Stdio::piped());
            cmd
        })
        .await;
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{shown}: {err}");
        assert!(
            err.starts_with("countersign: writing to standard output: No space left on device"),
            "{shown}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{shown}: {err}");
    }
    // A pipe whose reading end is closed before the command starts.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = countersign(&app.config_path());
    cmd.arg("check-config")
        .stdout(writer)
        .stderr(Stdio::piped());
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(141), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no message, no panic");
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Starts `request prod-db --wait` for alice's key `pub_path` and returns the child and
/// the id of the request once it is pending.
async fn request_waiting(app: &TestApp, pub_path: &Path) -> (std::process::Child, String) {
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

/// The mistakes a new user makes first get a message that says what to do: `--help`
/// names the variables, a URL without its scheme says which to write, `https://` to a
/// plain-HTTP server says to use `http://`, and a token the server refuses says where a
/// good one comes from.
#[tokio::test]
async fn client_mistakes_get_messages_that_say_what_to_do() {
    let app = TestApp::spawn().await;
    let help = run({
        let mut c = countersign(&app.config_path());
        c.arg("--help");
        c
    })
    .await;
    let help = text(&help.stdout);
    for name in ["COUNTERSIGN_URL", "COUNTERSIGN_TOKEN", "token create"] {
        assert!(help.contains(name), "--help lacks {name}: {help}");
    }

    let hostport = app.url.trim_start_matches("http://").to_owned();
    let whoami = |url: &str, token: &str| {
        let mut c = countersign(&app.config_path());
        c.env("COUNTERSIGN_URL", url)
            .env("COUNTERSIGN_TOKEN", token)
            .arg("whoami");
        c
    };
    let fails_saying = |out: Output, needles: &[&str]| {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "{err:?} lacks {n:?}");
        }
    };
    for schemeless in [hostport.clone(), "ca.example.com:7070".to_owned()] {
        let out = run(whoami(&schemeless, app.token("alice"))).await;
        fails_saying(
            out,
            &[
                "not an http:// or https:// URL",
                &format!("https://{schemeless}"),
            ],
        );
    }
    let out = run(whoami(&format!("https://{hostport}"), app.token("alice"))).await;
    fails_saying(out, &["does not answer TLS", "plain HTTP", &app.url]);
    let out = run(whoami(&app.url, "cs_0123456789abcdef")).await;
    fails_saying(
        out,
        &[
            "unauthenticated",
            "HTTP 401",
            "COUNTERSIGN_TOKEN",
            "countersign token create USER",
        ],
    );
    // Nothing of this changes a right call.
    let out = run(whoami(&format!("{}/", app.url), app.token("alice"))).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
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
