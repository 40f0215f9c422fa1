//! `countersign krl sync`: a real sshd's `RevokedKeys` file kept current by the sync
//! loop; a revocation reaches it within an interval and sshd refuses the certificate;
//! the CA stopped, or serving an older KRL, leaves the last good file in place.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;
use crate::sshd::{issue, logs_in, policy};
use crate::sshd_helper::{Sshd, current_user};

/// `countersign krl sync ARGS...` against `url`; its stderr collected.
pub(crate) struct Sync {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Sync {
    pub(crate) fn start(url: &str, out: &Path, interval: &str) -> Sync {
        let mut child = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["--url", url, "krl", "sync", "--interval", interval, "--out"])
            .arg(out)
            .env_remove("COUNTERSIGN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("krl sync runs");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        Sync { child, log }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits up to `within` for `done`; false if it never held.
    pub(crate) fn wait_for(&self, within: Duration, mut done: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        done()
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The KRL version in `path`, if it holds a KRL.
fn version(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    countersign::krl::read(&bytes).ok().map(|k| k.version)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_reaches_sshd_within_an_interval_and_a_stopped_ca_keeps_the_file() {
    let login = current_user();
    let mut app = TestApp::spawn_with(&policy(&login)).await;
    let krl = app.dir.path().join("revoked.krl");
    let sync = Sync::start(&app.url, &krl, "1s");
    assert!(
        tokio::task::block_in_place(|| sync.wait_for(Duration::from_secs(15), || krl.exists())),
        "the first KRL was written: {}",
        sync.log()
    );
    let sshd = Sshd::start_with(
        &app.dir.path().join("sshd"),
        &app.service.ca().public_key_line(),
        &format!("RevokedKeys {}\n", krl.display()),
    );
    let (key, cert, serial) = issue(&app, "synced", "30m").await;
    assert!(logs_in(&sshd, &login, &key, &cert), "{}", sshd.log());

    let before = version(&krl).expect("a KRL");
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial}/revoke"),
            serde_json::json!({"reason": "laptop lost"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked_at = Instant::now();
    // One interval (1 s) plus a round's time: well within 5 s.
    let reached = tokio::task::block_in_place(|| {
        sync.wait_for(Duration::from_secs(5), || {
            version(&krl).is_some_and(|v| v > before)
        })
    });
    assert!(
        reached,
        "the revocation did not reach the file: {}",
        sync.log()
    );
    eprintln!(
        "revocation reached the file after {:?}",
        revoked_at.elapsed()
    );
    assert!(
        !logs_in(&sshd, &login, &key, &cert),
        "a revoked certificate logs in"
    );
    assert!(sshd.log().contains("revoked"), "{}", sshd.log());

    // The CA goes away: the file stays as it was, the loop says so and goes on.
    let enforced = std::fs::read(&krl).expect("KRL");
    app.stop().await;
    let complained = tokio::task::block_in_place(|| {
        sync.wait_for(Duration::from_secs(10), || {
            sync.log().contains("keeps its last good KRL")
        })
    });
    assert!(complained, "{}", sync.log());
    assert_eq!(std::fs::read(&krl).expect("KRL"), enforced);
    assert!(
        !logs_in(&sshd, &login, &key, &cert),
        "still refused with the kept file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn once_fails_loudly_and_an_older_krl_never_replaces_the_file() {
    let app = TestApp::spawn().await;
    let krl = app.dir.path().join("revoked.krl");
    let once = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["--url", url, "krl", "sync", "--once", "--out"])
            .arg(&krl)
            .env_remove("COUNTERSIGN_TOKEN")
            .output()
            .expect("krl sync --once runs")
    };
    let out = tokio::task::block_in_place(|| once(&app.url));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = version(&krl).expect("a KRL");

    // A file newer than anything the CA serves (the CA's database went back): refused,
    // the file kept, a non-zero exit saying why.
    let newer = countersign::krl::encode(&countersign::krl::KrlContents {
        version: served + 100,
        generated_date: 0,
        comment: "countersign",
        ca: app.service.ca().key().key_data(),
        serials: &[7],
        expires: &[],
    })
    .expect("KRL");
    std::fs::write(&krl, &newer).expect("write");
    let out = tokio::task::block_in_place(|| once(&app.url));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("older than"), "{stderr}");
    assert_eq!(std::fs::read(&krl).expect("KRL"), newer);
    // The long-running loop refuses it too, round after round.
    let sync = Sync::start(&app.url, &krl, "1s");
    let refused = tokio::task::block_in_place(|| {
        sync.wait_for(Duration::from_secs(10), || {
            sync.log().matches("older than").count() >= 2
        })
    });
    assert!(refused, "{}", sync.log());
    assert_eq!(std::fs::read(&krl).expect("KRL"), newer);
    drop(sync);

    // Nobody answers: non-zero, the file untouched.
    let port = crate::cli::free_port();
    let out = tokio::task::block_in_place(|| once(&format!("http://127.0.0.1:{port}")));
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&krl).expect("KRL"), newer);
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "--url",
            &app.url,
            "krl",
            "sync",
            "--interval",
            "10ms",
            "--out",
        ])
        .arg(&krl)
        .output()
        .expect("runs");
    assert!(!out.status.success(), "an interval under 1s is refused");
}

/// A server on loopback that answers every request with `response` (raw HTTP/1.1).
fn fake_server(response: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match std::io::Read::read(&mut stream, &mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = std::io::Write::write_all(&mut stream, response.as_bytes());
        }
    });
    url
}

/// "Not modified" is signed by nobody: to a request that named no ETag it is refused,
/// and a server's error text reaches the terminal without its control characters.
#[test]
fn a_304_to_an_unconditional_fetch_fails_and_server_text_is_defused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pub");
    std::fs::write(&ca, public_line(&new_key())).expect("write");
    let out = dir.path().join("revoked.krl");
    let sync = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["--url", url, "krl", "sync", "--once", "--ca-key"])
            .arg(&ca)
            .arg("--out")
            .arg(&out)
            .env_remove("COUNTERSIGN_TOKEN")
            .output()
            .expect("runs")
    };
    let not_modified = fake_server("HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n");
    let done = sync(&not_modified);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success(), "{stderr}");
    assert!(stderr.contains("304"), "{stderr}");
    assert!(!out.exists());

    let body = "{\"error\":{\"code\":\"forbidden\\u001b[2J\",\"message\":\"all good\\r\\nwrote \
                /etc/ssh/revoked.krl\\u0007 \\u202egnp.lrk\"}}";
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let done = sync(&fake_server(response));
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success());
    assert!(stderr.contains("forbidden"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}')
            && !stderr.contains('\u{7}')
            && !stderr.contains('\u{202e}')
            && stderr.lines().count() == 1,
        "{stderr:?}"
    );

    // A redirect is not followed (it would carry the request elsewhere).
    let elsewhere =
        fake_server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let redirect: &'static str = Box::leak(
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {elsewhere}/v1/krl\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .into_boxed_str(),
    );
    let done = sync(&fake_server(redirect));
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success());
    assert!(stderr.contains("HTTP 302"), "{stderr}");
}
