//! `countersign migrate-store --to postgres`: a SQLite state built by the real server is
//! copied by the real binary into a fresh PostgreSQL database, and a server started on
//! that database serves the same state (requests, certificates, KRL, tokens, audit
//! chain). Also `backup` on a PostgreSQL config.

use std::path::Path;
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{countersign, text};
use crate::helpers::*;
use crate::pg::PgDatabase;
use crate::revocation::{issued, revoke_serial};

/// Runs `countersign --config CONFIG ARGS...` off the async runtime.
async fn run(config: &Path, args: &[&str]) -> Output {
    let mut cmd = countersign(config);
    cmd.args(args);
    crate::cli::run(cmd).await
}

/// Every audit row, as psql prints them (`|` between columns, NULL as nothing).
const AUDIT_ROWS: &str = "SELECT seq, at, actor, action, request_id, serial, detail, prev_hash, \
                          hash FROM audit ORDER BY seq";

/// The SQLite database's audit rows in psql's unaligned format.
fn sqlite_audit_rows(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(AUDIT_ROWS).unwrap();
    let rows = stmt
        .query_map([], |r| {
            let seq: i64 = r.get(0)?;
            let mut cells = vec![seq.to_string()];
            for i in 1..9 {
                cells.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
            }
            Ok(cells.join("|"))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows.join("\n")
}

/// `ssh-keygen -Q -l` of the server's KRL: its version and the serials it lists.
async fn krl_listing(app: &TestApp) -> String {
    let resp = app
        .http
        .get(format!("{}/v1/krl", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let path = app
        .dir
        .path()
        .join(format!("{}.krl", rand::random::<u32>()));
    std::fs::write(&path, resp.bytes().await.unwrap()).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args(["-Q", "-l", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The generation date changes with every build of the KRL.
    text(&out.stdout)
        .lines()
        .filter(|l| !l.contains("Generated at"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `POST /v1/requests` as `user` with `Idempotency-Key: key`.
async fn post_keyed(app: &TestApp, user: &str, key: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/requests", app.url))
        .bearer_auth(app.token(user))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Points the test server's config at `pg` (the data folder, and so the SQLite file,
/// stays).
fn use_postgres(app: &mut TestApp, pg: PgDatabase) {
    write_config(app.dir.path(), POLICY, Some(&pg));
    app.pg = Some(pg);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_store_moves_the_sqlite_state_into_postgres_unchanged() {
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    // One of everything the database keeps.
    let (kept, kept_serial, kept_cert) = issued(&app, "alice", "prod-db", None).await;
    let (_, revoked_serial, revoked_cert) = issued(&app, "frank", "prod-db", None).await;
    let (status, body) = revoke_serial(&app, "bob", &revoked_serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let two = app.create_ok("alice", "two-person").await;
    let (_, first) = app.approve("bob", &two).await;
    assert_eq!(first["status"], "pending", "{first}");
    let (_, second) = app.approve("dave", &two).await;
    assert_eq!(second["status"], "issued", "{second}");
    let denied = app.create_ok("frank", "deploy").await;
    app.deny("dave", &denied, "not today").await;
    let keyed_body = json!({
        "role": "deploy",
        "public_key": public_line(&new_key()),
        "reason": "INC-4212: deploy",
    });
    let keyed = post_keyed(&app, "dave", "deploy-42", &keyed_body).await;
    assert_eq!(keyed.status(), StatusCode::CREATED);
    let keyed: Value = keyed.json().await.unwrap();
    let (status, body) = app
        .post(
            "bob",
            "/v1/users/erin/revoke",
            json!({ "reason": "left the company" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let ids = [kept.as_str(), two.as_str(), denied.as_str()];
    let mut requests = Vec::new();
    for id in ids {
        requests.push(app.request("bob", id).await.1);
    }
    let krl_before = krl_listing(&app).await;
    assert!(krl_before.contains(&revoked_serial), "{krl_before}");
    let events_before = app.audit("").await;
    app.stop().await;
    let sqlite_rows = sqlite_audit_rows(&app.db_path());

    use_postgres(&mut app, crate::pg::fresh_database());
    let config = app.config_path();
    let out = run(&config, &["migrate-store", "--to", "postgres"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for line in [
        "audit",
        "certificates",
        "approvals",
        "chain verified",
        "KRL version",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(stdout.contains("keep"), "says what to do next: {stdout}");
    let pg = app.pg.as_ref().unwrap();
    // The audit chain byte for byte.
    assert_eq!(pg.psql(AUDIT_ROWS), sqlite_rows);

    let app = app.restart().await;
    // Same requests (approvals in their order), same certificates.
    for (id, before) in ids.iter().zip(&requests) {
        let (status, now) = app.request("bob", id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&now, before, "{id}");
    }
    assert_eq!(app.certificate("alice", &kept).await.1, kept_cert);
    let (_, again) = app
        .get(
            "bob",
            &format!("/v1/requests/{}", keyed["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(again["status"], "pending", "{again}");
    // The KRL lists the revoked serial, at the same version.
    assert_eq!(krl_listing(&app).await, krl_before);
    assert!(!krl_before.contains(&kept_serial));
    assert_ne!(kept_cert, revoked_cert);
    // Old tokens authenticate; the disabled user's stay refused.
    let (status, me) = app.get("alice", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let (status, body) = app.get("erin", "/v1/whoami").await;
    assert_eq!(code(&body), "user_disabled", "{status} {body}");
    // The same idempotency key gives the same request.
    let replay = post_keyed(&app, "dave", "deploy-42", &keyed_body).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], keyed["id"]);
    // The export's first events are the SQLite ones, unchanged.
    let events_after = app.audit("").await;
    assert_eq!(events_after[..events_before.len()], events_before[..]);
    // New certificates get new row ids after the copied ones.
    let (_, fresh_serial, fresh) = issued(&app, "alice", "deploy", None).await;
    assert!(fresh.starts_with("ssh-ed25519-cert"), "{fresh}");
    let verify = run(&config, &["audit", "verify"]).await;
    assert!(verify.status.success(), "{}", text(&verify.stderr));

    // A second copy into the now used database is refused, and changes nothing; it says
    // why even after a revocation on PostgreSQL left the SQLite file behind the state
    // mark (which is not the reason to give).
    let (status, body) = revoke_serial(&app, "bob", &fresh_serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pg = app.pg.as_ref().unwrap();
    let rows = pg.psql(AUDIT_ROWS);
    let again = run(&config, &["migrate-store", "--to", "postgres"]).await;
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(err.contains("already holds countersign data"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("accept-rollback"), "{err}");
    assert_eq!(pg.psql(AUDIT_ROWS), rows);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_store_refuses_beside_a_server_without_postgres_config_or_for_another_ca() {
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    app.create_ok("alice", "prod-db").await;
    let config = app.config_path();
    // The SQLite config names no PostgreSQL database.
    let out = run(&config, &["migrate-store", "--to", "postgres"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("backend = \"postgres\""),
        "{}",
        text(&out.stderr)
    );
    app.stop().await;
    use_postgres(&mut app, crate::pg::fresh_database());
    // A server on the data folder holds the pid file's lock.
    let loaded = countersign::config::Config::load(&config).unwrap();
    let lock = countersign::daemon::PidFile::lock(&loaded).unwrap();
    let out = run(&config, &["migrate-store", "--to", "postgres"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("stop the server first"), "{err}");
    let pg = app.pg.as_ref().unwrap();
    assert_eq!(pg.psql("SELECT to_regclass('audit') IS NULL"), "t", "{err}");
    drop(lock);
    // A SQLite database of another CA key (the key replaced) is not copied: a server
    // on the copy would refuse it.
    let data = app.dir.path().join("data");
    std::fs::remove_file(data.join("ca_key")).unwrap();
    std::fs::remove_file(data.join("ca_key.pub")).ok();
    write_key(&data, "ca_key", &new_key());
    let out = run(&config, &["migrate-store", "--to", "postgres"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("belongs to CA key"), "{err}");
    assert_eq!(pg.psql("SELECT to_regclass('audit') IS NULL"), "t", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_on_postgres_points_to_pg_dump() {
    let app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let out_file = app.dir.path().join("copy.db");
    let out = run(
        &app.config_path(),
        &["backup", "--out", out_file.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("pg_dump"), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    assert!(!out_file.exists());
    let leftovers: Vec<_> = std::fs::read_dir(app.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// PostgreSQL keeps no foreign key from approvals and certificates to their request
/// (ARCHITECTURE.md, "Durability"), so the copy checks it: a SQLite file edited with its
/// keys off, holding an approval of a request it does not have, is refused whole, and
/// the target is left empty.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_store_refuses_approvals_without_their_request() {
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    app.stop().await;
    let db = app.dir.path().join("data/countersign.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF; \
         INSERT INTO approvals (request_id, approver, at) VALUES ('r-nowhere', 'bob', 1);",
    )
    .unwrap();
    drop(conn);
    use_postgres(&mut app, crate::pg::fresh_database());
    let out = run(&app.config_path(), &["migrate-store", "--to", "postgres"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("1 row(s) of approvals without their request"),
        "{err}"
    );
    let pg = app.pg.as_ref().unwrap();
    assert_eq!(
        pg.psql("SELECT count(*) FROM requests").trim(),
        "0",
        "{err}"
    );
}
