//! Attacks on the PostgreSQL backend (issue 14), through the real binary and server:
//! the `[storage] url` checks, a database that never answers, and the rollback guard
//! when a replica has no mark or the database is restored under a running replica.
//! Each test states the promise of the docs it holds the code to.

use std::io::Read;
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;
use crate::process::operator;

/// The first message of a libpq-protocol connection that asks for TLS (`SSLRequest`:
/// length 8, code 80877103). A plaintext start (`StartupMessage`) sends protocol 3.0
/// and then the user and database names in the clear.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// An address of this machine that is not loopback (the one its default route uses).
fn non_loopback_address() -> IpAddr {
    for target in [
        "203.0.113.1:9",
        "198.51.100.1:9",
        "192.0.2.1:9",
        "10.255.255.1:9",
    ] {
        if let Ok(s) = UdpSocket::bind("0.0.0.0:0")
            && s.connect(target).is_ok()
            && let Ok(addr) = s.local_addr()
            && !addr.ip().is_loopback()
            && !addr.ip().is_unspecified()
        {
            return addr.ip();
        }
    }
    panic!("this machine has no non-loopback IPv4 address to test with");
}

/// A config folder whose `[storage] url` is `url` (with a password file beside it).
fn config_with_url(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::pg::fresh_database();
    write_config(dir.path(), POLICY, Some(&db));
    let config = dir.path().join("countersign.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&db.url, url)).unwrap();
    dir
}

/// `countersign init` on `config`, its output captured.
fn spawn_init(config: &Path) -> Child {
    operator(config)
        .arg("init")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first connection to `listener` within `wait`, or `None` if `child` ended first.
fn accept_or_exit(listener: &TcpListener, child: &mut Child, wait: Duration) -> Option<TcpStream> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok((stream, _)) = listener.accept() {
            stream.set_nonblocking(false).unwrap();
            return Some(stream);
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn output_of(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    format!(
        "status {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// configuration.md: "without TLS (`sslmode=disable` or none) only a loopback address or
/// a Unix socket is accepted". A loopback `host` with a `hostaddr=` of another machine
/// passes the check (only the hosts are looked at), and the driver dials the `hostaddr`:
/// the connection to a remote address starts in plaintext (user and database names in
/// the clear, then the password exchange and every query, open to anyone on the path).
#[test]
fn a_remote_hostaddr_behind_a_loopback_host_is_never_dialled_without_tls() {
    let remote = non_loopback_address();
    let listener = TcpListener::bind((remote, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut in_the_clear = Vec::new();
    for url in [
        format!("postgres://countersign@localhost:{port}/countersign?hostaddr={remote}"),
        format!("postgres://countersign@127.0.0.1:{port}/countersign?hostaddr={remote}"),
        // A Unix-socket host counts as "on this machine" too; the hostaddr is dialled.
        format!("postgres://countersign@%2Ftmp:{port}/countersign?hostaddr={remote}"),
    ] {
        let dir = config_with_url(&url);
        let mut child = spawn_init(&dir.path().join("countersign.toml"));
        let stream = accept_or_exit(&listener, &mut child, Duration::from_secs(20));
        let Some(mut stream) = stream else {
            // Refused before dialling: what the docs promise.
            let out = output_of(child);
            assert!(out.contains("storage.url"), "{url}: {out}");
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut first = [0u8; 8];
        stream.read_exact(&mut first).unwrap();
        let mut rest = vec![0u8; 256];
        let n = stream.read(&mut rest).unwrap_or(0);
        drop(stream);
        drop(output_of(child));
        if first != SSL_REQUEST {
            in_the_clear.push(format!(
                "{url}: sent {:?}",
                String::from_utf8_lossy(&rest[..n])
            ));
        }
    }
    assert!(
        in_the_clear.is_empty(),
        "countersign dialled {remote} (not loopback) without TLS:\n{}",
        in_the_clear.join("\n")
    );
}

/// operations.md: "While PostgreSQL is down or restarting, calls that need it answer 503
/// `unavailable` within seconds (connect timeout 5 s, pool wait 10 s)". A database that
/// accepts the TCP connection but never answers (a hung server, a stalled disk, a
/// half-open middlebox) is waited on forever: the connect timeout covers only the TCP
/// handshake, and keepalives and `tcp_user_timeout` never fire while the peer's kernel
/// acknowledges. Here `countersign init`; the same wait holds every pooled connect and
/// every query of a running replica.
#[test]
fn a_database_that_accepts_but_never_answers_is_given_up_on_within_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let held = std::thread::spawn(move || {
        // Accept and keep every connection open, answering nothing.
        let mut open = Vec::new();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((s, _)) = listener.accept() {
                open.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        open.len()
    });
    let dir = config_with_url(&format!(
        "postgres://countersign@127.0.0.1:{port}/countersign"
    ));
    let mut child = spawn_init(&dir.path().join("countersign.toml"));
    // Far above the documented 5 s connect timeout (and 10 s pool wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ended = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            ended = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = output_of(child);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let connections = held.join().unwrap();
    let status = ended.unwrap_or_else(|| {
        panic!(
            "countersign init still waits on a database that never answers after 60 s \
             ({connections} connection(s) open); the docs promise an error within seconds\n{out}"
        )
    });
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("unavailable") || out.contains("database"),
        "{out}"
    );
}

/// Issues a certificate on `app` and returns its serial.
async fn issued_serial(app: &TestApp) -> String {
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["certificate"]["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

/// SECURITY.md (T14): "a database this CA already used is refused without its mark (a
/// restore onto a new host, a deleted mark) until `--accept-rollback`", and a mark deleted
/// to get an older database past the guard shows on the record. On PostgreSQL a replica
/// without a mark joined whatever the database held, silently: whoever could restore an
/// old dump and delete one replica's mark got a KRL without the revocations made since.
/// Now such a start is refused unless the operator says the replica is new
/// (`--new-replica`, on the record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_old_database_is_refused_by_a_replica_whose_mark_was_deleted() {
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let pg = app.pg.clone().unwrap();
    let serial = issued_serial(&app).await;
    let dump = app.dir.path().join("before.dump");
    pg.dump(&dump);
    let (status, body) = crate::revocation::revoke_serial(&app, "bob", &serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;

    pg.restore(&dump);
    let mark = app.dir.path().join("data/countersign.mark");
    assert!(mark.exists(), "the replica kept a mark");
    std::fs::remove_file(&mark).unwrap();

    let config = app.config_path();
    let server = match crate::process::ServerProcess::start_with(operator(&config).arg("serve")) {
        Err(log) => {
            assert!(
                log.contains("no state mark") && log.contains("--new-replica"),
                "{log}"
            );
            return;
        }
        Ok(server) => server,
    };
    let krl = reqwest::get(format!("{}/v1/krl", server.url))
        .await
        .unwrap();
    let bytes = krl.bytes().await.unwrap();
    let version = countersign::krl::read(&bytes).unwrap().version;
    let listing = crate::revocation_krl::ssh_keygen_list_krl(app.dir.path(), &bytes);
    let recorded = pg.psql("SELECT count(*) FROM audit WHERE action = 'state.mark_started'");
    panic!(
        "serve took a database restored to before revocation of serial {serial} with the mark \
         deleted: its KRL (version {version}) does not list it ({} state.mark_started events \
         on record):\n{listing}",
        recorded.trim()
    );
}

/// operations.md: the KRL's "version never goes down", and "a database restored to a
/// point before what a replica has seen is refused by that replica". A replica that is
/// running while the database is restored under it (by an attacker, or an operator who
/// did not stop every replica first) goes on serving: the restored KRL, without the
/// revocation it served a minute ago, under a lower version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_replica_never_serves_a_krl_older_than_it_served() {
    let app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let pg = app.pg.clone().unwrap();
    let serial = issued_serial(&app).await;
    let dump = app.dir.path().join("before.dump");
    pg.dump(&dump);
    let (status, body) = crate::revocation::revoke_serial(&app, "bob", &serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = app
        .http
        .get(format!("{}/v1/krl", app.url))
        .send()
        .await
        .unwrap();
    let before = countersign::krl::read(&before.bytes().await.unwrap())
        .unwrap()
        .version;
    assert!(before >= 1);

    pg.restore(&dump);

    let after = app
        .http
        .get(format!("{}/v1/krl", app.url))
        .send()
        .await
        .unwrap();
    let status = after.status();
    let bytes = after.bytes().await.unwrap();
    if status != StatusCode::OK {
        // Refusing to serve, as the docs say: 503 not_ready, nothing else.
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (status, code(&body)),
            (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            "{body}"
        );
        return;
    }
    let version = countersign::krl::read(&bytes).unwrap().version;
    let listing = crate::revocation_krl::ssh_keygen_list_krl(app.dir.path(), &bytes);
    assert!(
        version >= before && listing.contains(&format!("serial: {serial}")),
        "after a restore under it, the replica served KRL version {version} (it served \
         {before} before) without serial {serial}:\n{listing}"
    );
}

/// The advisory lock every write takes (`src/store/pg.rs`, `WRITE_LOCK`: "cs-write").
const WRITE_LOCK: i64 = 0x6373_2d77_7269_7465;

/// operations.md: "When the CA must survive the loss of a machine, run several active
/// replicas", and calls that cannot reach the database "answer 503 `unavailable` within
/// seconds". A replica frozen in the middle of a write (a paused VM, SIGSTOP, a network
/// partition the server has not noticed: PostgreSQL keeps the session until its TCP
/// keepalive, two hours by default) keeps the one write lock, idle in its transaction.
/// Here a client holds it as such a replica would. Every write of every other replica
/// then waits on `pg_advisory_xact_lock` with no lock, statement or client timeout:
/// the request never gets an answer, and `/v1/ready` still says ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_frozen_holding_the_write_lock_does_not_stop_every_read() {
    let app = std::sync::Arc::new(TestApp::spawn_on_backend(POLICY, Backend::Postgres).await);
    let pg = app.pg.clone().unwrap();
    let mut frozen = hold_write_lock(&pg);

    // More writes than the pool has connections (16 by default), at once: each answers
    // 503 `timeout` after `request_timeout`, but its thread goes on waiting for the lock,
    // holding a pooled connection.
    let writes: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_secs(60),
                    app.create("alice", "prod-db", None),
                )
                .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for w in writes {
        match w.await.unwrap() {
            Ok((status, _)) => statuses.push(status),
            Err(_) => panic!("POST /v1/requests got no answer in 60 s"),
        }
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "writes answered while another session held the write lock: {statuses:?}"
    );
    // Reads take no lock: the KRL must still be served while writes cannot run.
    let krl = tokio::time::timeout(
        Duration::from_secs(60),
        app.http.get(format!("{}/v1/krl", app.url)).send(),
    )
    .await;
    let holders = pg.psql(&format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND objid = {}",
        WRITE_LOCK & 0xffff_ffff
    ));
    let _ = frozen.kill();
    let _ = frozen.wait();
    let krl = krl.ok().and_then(Result::ok).map(|r| r.status());
    assert_eq!(
        krl,
        Some(StatusCode::OK),
        "GET /v1/krl (a read) failed while one frozen session held the write lock: the \
         {} writes that timed out still wait for the lock, each holding a pooled \
         connection, so reads find none (writes: {statuses:?})",
        holders.trim()
    );
}

/// A psql session that holds the write lock, idle in its transaction, once it says so;
/// the lock goes when the session ends (killed, or its stdin closed).
fn hold_write_lock(pg: &crate::pg::PgDatabase) -> Child {
    let mut session = pg
        .tool("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = session.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}); \\echo locked"
        )
        .unwrap();
        stdin.flush().unwrap();
    }
    let mut stdout = std::io::BufReader::new(session.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim() != "locked" {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "psql ended before taking the lock");
    }
    session
}

mod more;
