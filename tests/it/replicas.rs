//! Replicas on one PostgreSQL database, in one process: a new replica joins with only the
//! config and the CA key, one with another CA key is refused, and what one replica
//! writes the others see at once (reads, the KRL, waiters woken by LISTEN/NOTIFY). The
//! HA tests with real processes, kills and restarts are in `ha.rs`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_needs_only_the_config_and_the_ca_key() {
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let id = first.create_ok("alice", "prod-db").await;
    let second = TestApp::spawn_replica_of(&first, POLICY).await;
    assert!(
        !second.dir.path().join("data/countersign.db").exists(),
        "no SQLite file on a replica"
    );
    // The request made on the first is approved on the second, and read on both.
    let (status, body) = second.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial = body["certificate"]["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let (_, seen) = first.request("alice", &id).await;
    assert_eq!(seen["status"], "issued", "{seen}");

    // Revoked on the first: the same KRL (bytes, version, ETag) from both at once.
    let (status, body) = crate::revocation::revoke_serial(&first, "bob", &serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (a, b) = (krl(&first).await, krl(&second).await);
    assert_eq!(a, b, "one KRL for the whole deployment");
    assert_eq!(a.1.as_deref(), Some("1"), "version 1 after one revocation");

    // One audit chain: it verifies from either replica and holds both replicas' events.
    for app in [&first, &second] {
        let (status, body) = app.get("bob", "/v1/audit/verify").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let events = second.audit("").await;
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    for action in [
        "request.created",
        "certificate.issued",
        "certificate.revoked",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

/// The KRL a replica serves: (bytes, version header, ETag).
async fn krl(app: &TestApp) -> (Vec<u8>, Option<String>, Option<String>) {
    let resp = app
        .http
        .get(format!("{}/v1/krl", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (version, etag) = (header("x-krl-version"), header("etag"));
    (resp.bytes().await.unwrap().to_vec(), version, etag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_ca_key_refuses_to_start_naming_both_keys() {
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let recorded = first.service.ca().fingerprint();
    let pg = first.pg.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), POLICY, Some(&pg));
    let config = countersign::config::Config::load(&dir.path().join("countersign.toml")).unwrap();
    // An empty data folder would get a new key made: that key is not the database's.
    let err = countersign::service::Service::open(
        config,
        countersign::state::Access::Serve {
            accept_rollback: None,
            new_replica: false,
        },
        "operator:test",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&recorded), "{err}");
    assert!(err.contains("CA key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_one_replica_hears_of_a_commit_on_another_at_once() {
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let second = TestApp::spawn_replica_of(&first, POLICY).await;
    let id = first.create_ok("alice", "prod-db").await;
    let mut commits = second.service.store().subscribe_commits();
    commits.borrow_and_update();
    let started = Instant::now();
    let (status, body) = first.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::timeout(Duration::from_secs(5), commits.changed())
        .await
        .expect("the other replica's commit is heard")
        .unwrap();
    println!(
        "a commit on one replica woke a waiter on another after {:?}",
        started.elapsed()
    );
    let (_, seen) = second.request("alice", &id).await;
    assert_eq!(seen["status"], "issued", "{seen}");
}

/// The rollback guard holds on PostgreSQL: the database restored (pg_restore) from a dump
/// taken before a revocation is refused by the replica that saw the revocation, until an
/// operator accepts it, and then the revocation is still in the KRL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restored_to_before_a_revocation_is_refused_until_accepted() {
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let pg = app.pg.clone().unwrap();
    let id = app.create_ok("alice", "prod-db").await;
    let (_, body) = app.approve("bob", &id).await;
    let serial = body["certificate"]["serial"].as_str().unwrap().to_owned();
    let dump = app.dir.path().join("before.dump");
    pg.dump(&dump);
    let (status, body) = crate::revocation::revoke_serial(&app, "bob", &serial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;

    pg.restore(&dump);
    let revoked = app.count("SELECT count(*) FROM certificates WHERE revoked_at IS NOT NULL");
    assert_eq!(revoked, 0, "the restored copy predates the revocation");

    let config = app.config_path();
    let log = match crate::process::ServerProcess::start_with(
        crate::process::operator(&config).arg("serve"),
    ) {
        Ok(_) => panic!("serve started on the rolled-back database"),
        Err(log) => log,
    };
    assert!(log.contains("--accept-rollback"), "{log}");

    let server =
        crate::process::ServerProcess::start_with(crate::process::operator(&config).args([
            "serve",
            "--accept-rollback",
            "--reason",
            "restored from the nightly dump",
        ]))
        .unwrap_or_else(|log| panic!("{log}"));
    let krl = reqwest::get(format!("{}/v1/krl", server.url))
        .await
        .unwrap();
    assert_eq!(krl.status(), StatusCode::OK);
    let bytes = krl.bytes().await.unwrap();
    let listing = crate::revocation_krl::ssh_keygen_list_krl(app.dir.path(), &bytes);
    assert!(
        listing.contains(&format!("serial: {serial}")),
        "the revocation is carried over: {listing}"
    );
    let version = countersign::krl::read(&bytes).unwrap().version;
    assert!(version >= 2, "the version never goes back: {version}");
}

/// `request --wait` waits through a database outage (503 `unavailable` from its server)
/// instead of giving up while the request lives on, and writes the certificate once an
/// approval comes after the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_wait_waits_through_a_database_outage() {
    let cluster = crate::pg::Cluster::start_new();
    let app = TestApp::spawn_on_cluster(&cluster).await;
    let key = write_key(app.dir.path(), "id_ed25519", &new_key());
    let public = key.with_extension("pub");
    let (child, id) = crate::cli_request::request_waiting(&app, &public).await;

    cluster.stop("fast");
    // Polled every second: it hears 503 unavailable a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app.approve("bob", &id).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("still waiting"),
        "it saw the outage: {stderr}"
    );
    assert!(
        app.dir.path().join("id_ed25519-cert.pub").exists(),
        "{stderr}"
    );
}

/// `check-config` names where the state is kept and checks the PostgreSQL password file
/// as `serve` would (a file others can read is refused, exit 1), without connecting.
#[test]
fn check_config_shows_the_storage_and_refuses_an_unsafe_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let pg = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), POLICY, Some(&pg));
    let config = dir.path().join("countersign.toml");
    let out = crate::process::operator(&config)
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("storage      postgres {}", pg.url)),
        "{stdout}"
    );
    assert!(stdout.contains("pg-password (ok)"), "{stdout}");
    assert!(
        !stdout.contains(&pg.password),
        "the password is never shown"
    );

    let file = dir.path().join("pg-password");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = crate::process::operator(&config)
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("password     UNUSABLE"), "{stdout}");
    assert!(stdout.contains("chmod 600"), "{stdout}");
}

/// Replicas converge on one policy: once one replica reloads a newer policy, another
/// still running the old one is not ready (503 `not_ready`), until it reloads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_left_on_an_older_policy_is_not_ready_until_it_reloads() {
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let second = TestApp::spawn_replica_of(&first, POLICY).await;
    let ready = |app: &TestApp| {
        let url = format!("{}/v1/ready", app.url);
        let http = app.http.clone();
        async move {
            let resp = http.get(url).send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(ready(&second).await.0, StatusCode::OK);

    let newer = POLICY.replace("max_ttl = \"2h\"", "max_ttl = \"1h\"");
    first
        .service
        .reload(first.config_of(&newer), "operator")
        .unwrap();
    let (status, body) = ready(&second).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    assert_eq!(ready(&first).await.0, StatusCode::OK);

    second
        .service
        .reload(second.config_of(&newer), "operator")
        .unwrap();
    assert_eq!(ready(&second).await.0, StatusCode::OK);
}

/// Replicas started together on a new database each make a CA key; the first to record
/// its own wins and the others are refused. A refused start removes the key it made
/// (never recorded, never used), so that its data folder is as it was and the message
/// says what to do; a key the database records, or one found rather than made, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_key_made_for_a_database_another_replica_bound_first_is_removed() {
    use countersign::ca::CertificateAuthority;
    use countersign::state::{StateError, forget_unbound_key};

    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let pg = first.pg.clone().expect("on PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), POLICY, Some(&pg));
    let text = std::fs::read_to_string(dir.path().join("countersign.toml")).unwrap();
    let config = countersign::config::Config::from_toml_str(
        &text,
        &dir.path().join("countersign.toml"),
        dir.path(),
    )
    .unwrap();
    let refused = || StateError::Mismatch("the database belongs to another CA key".into());
    // This start made its own key (as a start on an empty data folder does).
    let (ca, created) = CertificateAuthority::open(&config.ca, true).unwrap();
    assert!(created);
    let ours = ssh_key::PublicKey::new(ca.public_key_data().clone(), "");
    // A key found, not made, is never removed.
    let e = forget_unbound_key(&config, &ours, false, refused());
    assert!(config.ca.key_file.exists(), "{e}");
    // A key made by this start that the database does not record is removed.
    let e = forget_unbound_key(&config, &ours, true, refused());
    assert!(
        !config.ca.key_file.exists(),
        "the unrecorded key was left: {e}"
    );
    let message = e.to_string();
    assert!(
        message.contains("was removed") && message.contains("--new-replica"),
        "{message}"
    );
    // The key the database records stays, even if this start believes it made it.
    let recorded = first.service.config().ca.key_file.clone();
    std::fs::copy(&recorded, &config.ca.key_file).unwrap();
    let theirs = CertificateAuthority::public_key(&first.service.config().ca).unwrap();
    let e = forget_unbound_key(&config, &theirs, true, refused());
    assert!(
        config.ca.key_file.exists(),
        "the recorded key was removed: {e}"
    );
}

/// operations.md, "Memory": a replica on PostgreSQL runs without transparent huge pages
/// (their zeroing cost it flows a second under load); a server on SQLite keeps what any
/// process gets (this test's own setting, which it inherits).
#[test]
fn a_replica_on_postgres_runs_without_transparent_huge_pages() {
    let thp = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("THP_enabled:"));
        line.map(|l| l.split_whitespace().nth(1) == Some("1"))
    };
    let db = crate::pg::fresh_database();
    let replicas = crate::ha::Replicas::start(&db, POLICY, 1);
    assert_eq!(
        thp(replicas.server(0).pid()),
        Some(false),
        "huge pages on PostgreSQL"
    );

    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), POLICY, None);
    let config = dir.path().join("countersign.toml");
    crate::process::init(&config);
    let sqlite = crate::process::ServerProcess::start(&config);
    let ours = thp(std::process::id());
    assert_eq!(
        thp(sqlite.pid()),
        ours,
        "huge pages as for any process on SQLite"
    );
}
