//! The real binary's client commands against a running server: tokens, lists, the
//! messages of errors and mistakes, output that cannot be written.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::cli::{client, countersign, free_port, run, text};
use crate::helpers::*;

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

/// The mistakes a new user makes first get a message that says what to do: `--help`
/// names the variables (never their values: a URL may carry a password), a URL without
/// its scheme says which to write, `https://` to a plain-HTTP server says to use
/// `http://`, and a token the server refuses says where a good one comes from.
#[tokio::test]
async fn client_mistakes_get_messages_that_say_what_to_do() {
    let app = TestApp::spawn().await;
    let help = run({
        let mut c = countersign(&app.config_path());
        c.arg("--help")
            .env("COUNTERSIGN_URL", "http://ops:hunter2@ca.example:7070")
            .env("COUNTERSIGN_TOKEN", "cs_hunter3");
        c
    })
    .await;
    let help = text(&help.stdout);
    for name in ["COUNTERSIGN_URL", "COUNTERSIGN_TOKEN", "token create"] {
        assert!(help.contains(name), "--help lacks {name}: {help}");
    }
    for secret in ["hunter2", "hunter3"] {
        assert!(!help.contains(secret), "--help shows {secret}: {help}");
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
