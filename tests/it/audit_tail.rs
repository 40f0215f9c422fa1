//! `countersign audit tail [--follow] [--after-seq N]`: the audit log as checked JSON
//! lines for a log shipper, new events as they are committed, resumable, and refusing
//! to pass on a chain that does not hold.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{client, run, text};
use crate::helpers::*;

/// The events of `stdout`, one JSON object per line.
fn lines(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect()
}

#[tokio::test]
async fn tail_prints_the_whole_log_and_resumes_after_a_sequence_number() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    let out = run({
        let mut c = client(&app, "bob");
        c.args(["audit", "tail"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = lines(&out.stdout);
    let n = all.len() as i64;
    assert!(n >= 3, "{all:?}");
    assert_eq!(seqs(&all), (1..=n).collect::<Vec<_>>());
    assert!(all.iter().any(|e| e["action"] == "certificate.issued"));
    // What the API lists, event for event.
    assert_eq!(all, app.audit("").await);

    let out = run({
        let mut c = client(&app, "bob");
        c.args(["audit", "tail", "--after-seq", &(n - 2).to_string()]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(seqs(&lines(&out.stdout)), vec![n - 1, n]);

    // With the hash the previous run printed for event n-2, it resumes; with another
    // (the log was rewritten since), it prints nothing and says so.
    let hash = all[(n - 3) as usize]["hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    for (given, ok) in [(hash.as_str(), true), (&"0".repeat(64)[..], false)] {
        let out = run({
            let mut c = client(&app, "bob");
            let after = (n - 2).to_string();
            c.args([
                "audit",
                "tail",
                "--after-seq",
                &after,
                "--after-hash",
                given,
            ]);
            c
        })
        .await;
        assert_eq!(out.status.success(), ok, "{}", text(&out.stderr));
        if !ok {
            assert!(out.stdout.is_empty());
            assert!(text(&out.stderr).contains("not the one printed before"));
        }
    }
    // Resuming after an event the log does not have (it went back) is refused.
    let out = run({
        let mut c = client(&app, "bob");
        c.args(["audit", "tail", "--after-seq", &(n + 5).to_string()]);
        c
    })
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no event"),
        "{}",
        text(&out.stderr)
    );
    // Only admins read the audit log.
    let out = run({
        let mut c = client(&app, "alice");
        c.args(["audit", "tail"]);
        c
    })
    .await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_new_events_as_they_are_committed() {
    let app = TestApp::spawn().await;
    let mut cmd = client(&app, "bob");
    cmd.args(["audit", "tail", "--follow", "--interval", "200ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("tail runs");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("JSON line"));
        }
    });
    let id = app.create_ok("alice", "prod-db").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let created = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = rx.recv_timeout(left).expect("the new event is printed");
        if event["action"] == "request.created" {
            break event;
        }
    };
    assert_eq!(created["request_id"], id.as_str());
    let _ = child.kill();
    let _ = child.wait();
}

/// A changed event (its detail edited in the database) stops the tail with an error
/// before it is printed; the events before it are passed on.
#[tokio::test]
async fn a_changed_event_is_not_passed_on() {
    // SQLite only: the test edits the database file itself.
    let app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    let events = app.audit("").await;
    let created = events
        .iter()
        .find(|e| e["action"] == "request.created")
        .and_then(|e| e["seq"].as_i64())
        .expect("request.created");
    app.sql(&format!(
        "DROP TRIGGER IF EXISTS audit_no_update; \
         UPDATE audit SET detail = replace(detail, 'prod-db', 'prod-dc') WHERE seq = {created}"
    ));
    let out = run({
        let mut c = client(&app, "bob");
        c.args(["audit", "tail"]);
        c
    })
    .await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("event {created} does not match")),
        "{stderr}"
    );
    assert_eq!(seqs(&lines(&out.stdout)), (1..created).collect::<Vec<_>>());
}

/// `--follow` waits out a server that stops and starts again (a restart, a crash): the
/// stream goes on from where it was, nothing skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_waits_out_a_restart_of_the_server() {
    use crate::process::{Api, ServerProcess, create_token, init};
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::cli::free_port();
    let config = dir.path().join("countersign.toml");
    let policy = POLICY.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&config, policy).expect("config");
    init(&config);
    let (alice, bob) = (create_token(&config, "alice"), create_token(&config, "bob"));
    let server = ServerProcess::start(&config);
    let mut tail = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "--url",
            &server.url,
            "audit",
            "tail",
            "--follow",
            "--interval",
            "200ms",
        ])
        .env("COUNTERSIGN_TOKEN", &bob)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail runs");
    let stdout = tail.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("JSON line"));
        }
    });
    let next = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what}"));
            if e["action"] == what {
                return e;
            }
        }
    };
    let api = Api::new(&server.url);
    api.issue(&alice, &bob).await;
    next("certificate.issued");
    assert!(server.terminate(), "the server stops");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    api.issue(&alice, &bob).await;
    let issued = next("certificate.issued");
    assert!(issued["seq"].as_i64().is_some());
    assert!(
        tail.try_wait().expect("status").is_none(),
        "tail still runs"
    );
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(server.terminate());
}

/// A service account (`bot = true`) with a `read-audit` token streams the log: the SIEM
/// hangs on no person's account. Its token with other scopes does not.
#[tokio::test]
async fn a_service_account_with_read_audit_streams_the_log() {
    let policy = format!("{POLICY}\n[users.siem]\nbot = true\n");
    let app = TestApp::spawn_with(&policy).await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    let token = |scope: &str| {
        let out = crate::process::operator(&app.config_path())
            .args(["token", "create", "siem", "--bot", "--scope", scope])
            .output()
            .expect("token create");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("warning"),
            "{}",
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_owned()
    };
    let (reader, requester) = (token("read-audit"), token("request"));
    for (t, ok) in [(reader, true), (requester, false)] {
        let out = run({
            let mut c = crate::process::operator(&app.config_path());
            c.env("COUNTERSIGN_URL", &app.url)
                .env("COUNTERSIGN_TOKEN", t)
                .args(["audit", "tail"]);
            c
        })
        .await;
        assert_eq!(out.status.success(), ok, "{}", text(&out.stderr));
        if ok {
            let events = lines(&out.stdout);
            assert!(events.iter().any(|e| e["action"] == "certificate.issued"));
        } else {
            assert!(
                text(&out.stderr).contains("scope_not_allowed"),
                "{}",
                text(&out.stderr)
            );
        }
    }
}

/// `audit` (the table) says on stderr what an empty or full page means: a serial no
/// certificate has, or more events after the last one shown; a serial that is no number
/// is a usage error (exit 2) before any call.
#[tokio::test]
async fn the_audit_table_says_when_a_serial_is_unknown_and_when_more_follow() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    let audit = |args: &[&str]| {
        let mut c = client(&app, "bob");
        c.arg("audit").args(args);
        run(c)
    };
    let out = audit(&["--serial", "999"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no certificate of this CA has it"),
        "{out:?}"
    );
    let out = audit(&["--limit", "2"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--after-seq 2"), "{out:?}");
    let out = audit(&["--limit", "1000"]).await;
    assert_eq!(text(&out.stderr), "", "the whole log fits");
    let out = audit(&["--serial", "abc"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
