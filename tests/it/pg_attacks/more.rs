//! More of the attacker review's cases: a refused URL, and a replica whose clock runs ahead.

#[allow(unused_imports)]
use super::*;

/// configuration.md: the url holds no password ("refused: use `password_file`"), and
/// secrets are never logged. The refusal of an unknown `sslmode` echoes the value, and
/// the value runs to the end of the URL when a `#` follows it: whatever was pasted after
/// it (here a password) goes to stderr and the journal.
#[test]
fn a_refused_url_is_not_echoed_with_what_follows_it() {
    let dir = config_with_url(
        "postgres://countersign@db.internal/countersign?sslmode=verify-full#password=S3cretPw",
    );
    let out = operator(&dir.path().join("countersign.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("S3cretPw"), "the secret is echoed: {text}");
}

/// operations.md: "above 5 s it refuses to sign (503 `not_ready`) and `/v1/ready` is
/// 503"; SECURITY.md: a revoked certificate stays in the KRL until its expiry plus the
/// backdate. A replica whose clock ran ahead builds its KRL by its own clock, so it
/// drops revoked certificates that are still valid in real time, and `/v1/krl` serves
/// that KRL even once the skew is measured and the replica reports itself not ready
/// (only signing checks the skew). `krl --out` takes it: it is signed, of the same
/// version, and dated within `--max-age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_runs_ahead_never_serves_a_krl_without_live_revocations() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock_on(POLICY, &clock, Backend::Postgres).await;
    let (status, body) = app.create("alice", "prod-db", Some("5m")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial = body["certificate"]["serial"].as_str().unwrap().to_owned();
    let (status, body) = crate::revocation::revoke_serial(&app, "bob", &serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The replica's clock jumps 10 minutes ahead (a bad NTP source, a VM resumed): the
    // certificate is still valid for about 5 minutes in real time.
    clock.advance(Duration::from_secs(10 * 60));
    let skew = app.service.check_clock().unwrap().unwrap();
    assert!(skew < -5_000, "the skew is known: {skew} ms");
    let ready = app
        .http
        .get(format!("{}/v1/ready", app.url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);

    let answer = app
        .http
        .get(format!("{}/v1/krl", app.url))
        .send()
        .await
        .unwrap();
    // The docs: a replica whose clock is off serves no KRL (503 not_ready).
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
}

/// pg/migrations.rs: on PostgreSQL approvals and certificates keep no foreign key to their
/// request (the decision writes them with it, under the write lock), and what the keys
/// guarded is refused instead: by hand, as the database's owner, a request is neither
/// deleted, truncated away nor renamed from under its approvals and its certificate, so
/// the story of a serial stays whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_request_is_never_deleted_or_renamed_from_under_its_certificate() {
    let app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pg = app.pg.as_ref().expect("on PostgreSQL");
    for edit in [
        format!("DELETE FROM requests WHERE id = '{id}'"),
        "TRUNCATE requests CASCADE".to_owned(),
        format!("UPDATE requests SET id = 'r-elsewhere' WHERE id = '{id}'"),
    ] {
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pg.psql(&edit)));
        assert!(refused.is_err(), "{edit} was allowed");
    }
    let whole = format!(
        "SELECT count(*) FROM requests r JOIN approvals a ON a.request_id = r.id \
         JOIN certificates c ON c.request_id = r.id WHERE r.id = '{id}'"
    );
    assert_eq!(app.count(&whole), 1);
    let (status, body) = app.get("alice", &format!("/v1/requests/{id}")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("issued")),
        "{body}"
    );
}

/// operations.md, "Upgrading one replica at a time": the other replicas keep serving while
/// one migrates. A migration first waits for the write lock, so it never locks tables in
/// the middle of a write of a replica still on the previous release (a decision locks
/// `requests`, then `approvals`: schema version 16 locks them too, and the two would
/// deadlock).
#[test]
fn a_migration_waits_until_no_write_holds_the_write_lock() {
    let db = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), POLICY, Some(&db));
    let mut writer = super::hold_write_lock(&db);
    let mut init = operator(&dir.path().join("countersign.toml"))
        .arg("init")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let ran = init.try_wait().unwrap();
    let schema = db.psql("SELECT to_regclass('requests') IS NOT NULL");
    // The write ends (its session with it): the migration goes on.
    drop(writer.stdin.take());
    let _ = writer.wait();
    let done = init.wait().unwrap();
    assert_eq!(
        ran, None,
        "the migration ran while a write held the write lock"
    );
    assert_eq!(
        schema.trim(),
        "f",
        "tables were made while a write held the lock"
    );
    assert!(
        done.success(),
        "init failed once the write lock was free: {done}"
    );
}
