//! `GET /v1/ready`: readiness for a load balancer (database reachable, the policy in
//! force the newest the database records); `/v1/health` stays liveness.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// `GET /v1/ready` without a token.
async fn ready(app: &TestApp) -> (StatusCode, Value) {
    let resp = app
        .http
        .get(format!("{}/v1/ready", app.url))
        .send()
        .await
        .expect("GET");
    let status = resp.status();
    (status, resp.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_replica_on_the_newest_policy_is_ready_and_one_left_behind_is_not() {
    // SQLite only: the test reaches into the database file itself.
    let app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready")),
        "{body}"
    );
    assert!(
        body.get("policy").is_none(),
        "no policy digest without a token: {body}"
    );

    // Another replica recorded a newer policy (one more role than this one runs).
    app.sql(
        "UPDATE meta SET policy = \
         json_set(policy, '$.roles.newer', json('{\"principals\":[\"x\"]}'))",
    );
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("countersign reload"), "{message}");
    // Liveness is another question: the process is fine.
    let (status, _) = app.get("alice", "/v1/health").await;
    assert_eq!(status, StatusCode::OK);

    // Reloading records the policy it runs: ready again.
    let config = countersign::config::Config::load(&app.config_path()).expect("config");
    app.service.reload(config, "operator").expect("reload");
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_replica_whose_database_does_not_answer_is_not_ready() {
    let app = TestApp::spawn().await;
    app.sql("ALTER TABLE meta RENAME TO meta_gone;");
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
}

/// A database that records no policy at all (none was ever recorded, or it was wiped)
/// cannot say this server's policy is the newest: not ready, saying so.
#[tokio::test]
async fn a_database_without_a_recorded_policy_is_not_ready() {
    let app = TestApp::spawn().await;
    app.sql("UPDATE meta SET policy = NULL;");
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no policy"),
        "{body}"
    );
}

/// A replica whose clock strays from the database's by more than 5 s refuses to sign and
/// is not ready, and is both again once the clocks agree (PostgreSQL: SQLite has no
/// clock of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_strays_from_the_databases_does_not_sign() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock_on(POLICY, &clock, Backend::Postgres).await;
    let id = app.create_ok("alice", "prod-db").await;
    let skew = app
        .service
        .check_clock()
        .expect("measured")
        .expect("on PostgreSQL");
    assert!(
        skew.abs() < 2_000,
        "the test machine's clocks agree: {skew} ms"
    );

    clock.advance(std::time::Duration::from_secs(8));
    let skew = app.service.check_clock().unwrap().unwrap();
    assert!(skew < -5_000, "{skew} ms");
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "not_ready", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("clock"),
        "{body}"
    );
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(body["status"], "pending", "nothing was signed: {body}");

    clock.set(chrono::Utc::now());
    app.service.check_clock().unwrap();
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// On SQLite there is no database clock: the check measures nothing and never refuses.
#[tokio::test]
async fn on_sqlite_there_is_no_database_clock_to_stray_from() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock_on(POLICY, &clock, Backend::Sqlite).await;
    clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(app.service.check_clock().unwrap(), None);
    assert_eq!(ready(&app).await.0, StatusCode::OK);
}

/// A database that takes reads but refuses writes (here a trigger; a full disk in life)
/// is not ready, and ready again once it takes them.
#[tokio::test]
async fn a_database_that_refuses_writes_is_not_ready() {
    // SQLite only: the test reaches into the database file itself.
    let app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    app.sql(
        "CREATE TRIGGER no_writes BEFORE UPDATE ON meta \
         BEGIN SELECT RAISE(ABORT, 'read-only for the test'); END;",
    );
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("writes"), "{message}");
    app.sql("DROP TRIGGER no_writes;");
    // A failed probe stands a second (a full disk is not written to once per caller).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = ready(&app).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The probe changed a value (SQLite writes nothing for an UPDATE to the same value,
    // so a full disk would go unseen): the count moved, once for the 5 s it stands.
    assert_eq!(app.count("SELECT ready_probe FROM meta"), 1);
    let (status, _) = ready(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.count("SELECT ready_probe FROM meta"),
        1,
        "a success stands 5 s"
    );
}

/// `/v1/ready` turns 503 while the PostgreSQL server is down, and 200 again once it is
/// back, without a restart of countersign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_database_down_and_up_again() {
    let cluster = crate::pg::Cluster::start_new();
    let app = TestApp::spawn_on_cluster(&cluster).await;
    let id = app.create_ok("alice", "prod-db").await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    cluster.stop("fast");
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "unavailable", "{body}");
    // The daemon's clock check meets the outage: nothing is signed on an old measurement.
    assert!(app.service.check_clock().is_err());
    cluster.start();
    // Back within seconds, not at the daemon's next check (up to a minute: an operator
    // trial saw every replica refuse to sign that long after the database was back).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = ready(&app).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `[server] shutdown_delay`: at SIGTERM the real server says 503 `not_ready` at once
/// and still answers requests, so that a balancer takes it out of rotation before it
/// stops; a second SIGTERM stops it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_is_not_ready_but_still_serves_for_the_delay() {
    use crate::process::{ServerProcess, create_token, init};
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("countersign.toml");
    let policy = POLICY.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nshutdown_delay = \"60s\"",
    );
    std::fs::write(&config, policy).expect("config");
    init(&config);
    let alice = create_token(&config, "alice");
    let server = ServerProcess::start(&config);
    let http = crate::process::Api::new(&server.url).http;
    let get = |path: &str, token: Option<&str>| {
        let mut req = http.get(format!("{}{path}", server.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(
        get("/v1/ready", None).await.expect("GET").status(),
        StatusCode::OK
    );
    let pid = server.pid().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(term.expect("kill").success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body: Value = loop {
        let resp = get("/v1/ready", None).await.expect("still answering");
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            break resp.json().await.expect("JSON");
        }
        assert!(std::time::Instant::now() < deadline, "never turned 503");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(code(&body), "not_ready", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    let who = get("/v1/whoami", Some(&alice))
        .await
        .expect("still serving");
    assert_eq!(who.status(), StatusCode::OK);
    // The second SIGTERM (what terminate() sends) does not wait out the 60 s.
    let stopped = tokio::task::spawn_blocking(move || server.terminate());
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), stopped)
        .await
        .expect("stopped at the second signal, not after 60 s");
    assert!(stopped.expect("join"), "exit 0");
}

/// Probes need no token: many at once share one check of the database (each still
/// newer than its call) instead of taking every place, so none is refused for being one
/// too many and the balancer's own probe is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_probes_is_answered_not_refused() {
    let app = TestApp::spawn().await;
    let mut probes = Vec::new();
    for i in 0..48 {
        let (http, url) = (app.http.clone(), app.url.clone());
        let path = if i % 2 == 0 {
            "/v1/ready"
        } else {
            "/v1/health"
        };
        probes.push(tokio::spawn(async move {
            http.get(format!("{url}{path}"))
                .send()
                .await
                .expect("GET")
                .status()
        }));
    }
    for p in probes {
        assert_eq!(p.await.expect("join"), StatusCode::OK);
    }
}
