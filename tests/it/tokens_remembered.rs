//! On PostgreSQL a replica remembers a token's row for at most a second
//! (`store/credentials.rs`), and forgets it as soon as a credential may have changed: a
//! change made here is refused by the next call, one made on another replica within
//! milliseconds, a hand edit of the database within the second; while the commit
//! listener is cut off nothing is remembered.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Lookups answered from memory, and from the database, on `app`.
fn lookups(app: &TestApp) -> [u64; 2] {
    app.service.store().stats().tokens_remembered
}

/// `alice` lists requests on `app` until a call is answered from memory (the first one
/// reads the row, the next ones use it).
async fn remembered(app: &TestApp) {
    let before = lookups(app);
    for _ in 0..3 {
        let (status, body) = app.get("alice", "/v1/requests").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let after = lookups(app);
    assert!(
        after[0] > before[0],
        "no call was answered from memory: {before:?} -> {after:?}"
    );
    // What an operator sees of it.
    let text = app
        .http
        .get(&app.metrics_url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    let line = "countersign_store_token_lookups_total{outcome=\"remembered\"} ";
    let shown: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no remembered-lookups line in:\n{text}"));
    assert!(shown >= after[0] as f64, "{shown} < {after:?}");
}

/// How long until `alice`'s calls on `app` are refused (polled every 10 ms, 3 s at most).
async fn refused_after(app: &TestApp, since: Instant) -> Duration {
    loop {
        let (status, _) = app.get("alice", "/v1/requests").await;
        if status == StatusCode::UNAUTHORIZED {
            return since.elapsed();
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "still accepted after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_token_of_a_user_disabled_on_this_replica_is_refused_by_the_next_call() {
    let app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    remembered(&app).await;
    let (status, body) = app
        .post(
            "bob",
            "/v1/users/alice/revoke",
            json!({ "reason": "left the company" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get("alice", "/v1/requests").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "user_disabled", "{body}");
}

/// `token revoke` run by an operator (its own store, as the CLI opens) on one replica's
/// config; the token was used on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_elsewhere_is_refused_on_a_replica_well_within_the_second() {
    let first = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let second = TestApp::spawn_replica_of(&first, POLICY).await;
    let config = first.service.config();
    let operator = countersign::service::Local::open(&config).expect("the CLI's store");
    remembered(&second).await;
    let revoked = Instant::now();
    let alice = countersign::names::UserName::parse("alice").unwrap();
    let n = tokio::task::block_in_place(|| {
        operator
            .revoke_tokens(&config.policy, &alice, "ops")
            .expect("revoked")
    });
    assert_eq!(n, 1);
    let after = refused_after(&second, revoked).await;
    println!("a token revoked on one replica was refused on another after {after:?}");
    // Its row was read just before: only the commit's notification makes it go this soon.
    assert!(after < Duration::from_millis(700), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_of_the_database_is_seen_within_the_second() {
    let app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    remembered(&app).await;
    let edited = Instant::now();
    app.sql("UPDATE tokens SET revoked_at = 1 WHERE \"user\" = 'alice'");
    let after = refused_after(&app, edited).await;
    println!("a hand-revoked token was refused after {after:?}");
    assert!(after < Duration::from_millis(1500), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_remembered_while_the_commit_listener_is_cut_off() {
    let app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let db = app.pg.clone().expect("on PostgreSQL").name;
    let admin = |sql: &str| crate::pg::cluster().psql(&db, sql);
    remembered(&app).await;
    // The listener's connection is ended, and it cannot connect again (the pool keeps
    // the connections it has): it stays deaf until the limit is lifted.
    admin(&format!("ALTER DATABASE {db} CONNECTION LIMIT 0"));
    admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN %' AND datname = current_database()",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Deaf: this row is read and not kept, so a hand edit (which notifies nobody) is
    // seen by the very next call.
    let (status, body) = app.get("alice", "/v1/requests").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = lookups(&app);
    admin("UPDATE tokens SET revoked_at = 1 WHERE \"user\" = 'alice'");
    let (status, body) = app.get("alice", "/v1/requests").await;
    admin(&format!("ALTER DATABASE {db} CONNECTION LIMIT -1"));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        lookups(&app)[0],
        before[0],
        "answered from memory while deaf"
    );
}

/// On the store itself, so that nothing comes between: a write of this process that may
/// change a credential forgets what it remembers before it returns, not when its own
/// notification comes back (the listener may well be quicker than the next call over
/// HTTP, but not than the next line).
#[test]
fn a_write_here_that_may_change_a_credential_forgets_before_it_returns() {
    use countersign::store::tokens::{self, TokenKind};

    let (_db, store) = crate::pg_pipeline::store();
    let alice = countersign::names::UserName::parse("alice").unwrap();
    let kind = TokenKind {
        bot_scopes: None,
        expires_at: i64::MAX,
    };
    let revoked = |hashed: &str| {
        let owner = tokens::owner(&store, hashed, 1).expect("looked up");
        owner.expect("alice's").revoked
    };
    for k in 0..20 {
        let hashed = tokens::hash(&format!("secret-{k}"));
        store
            .write(|tx| tokens::insert(tx, &hashed, &alice, 0, &kind))
            .expect("a token");
        // Remembered once the listener is connected and has heard that insert.
        let waited = Instant::now();
        loop {
            let before = store.stats().tokens_remembered[0];
            assert!(!revoked(&hashed));
            if store.stats().tokens_remembered[0] > before {
                break;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "never remembered"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        store
            .write(|tx| tokens::revoke_all(tx, &alice))
            .expect("revoked");
        // `token revoke` deletes the row: the token is nobody's now.
        let owner = tokens::owner(&store, &hashed, 1).expect("looked up");
        assert_eq!(owner, None, "a revoked token was remembered (round {k})");
    }
}
