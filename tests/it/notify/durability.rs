//! Notifications are never lost: a receiver that is away gets everything when it is
//! back, one that never comes back is given up on the record, and a crash mid-delivery
//! loses nothing.

use std::time::Duration;

use serde_json::Value;

use super::{Receiver, of_type, policy_with};
use crate::cli::{countersign, run, text};
use crate::helpers::{TestApp, manual_clock};

const CREATED: &str = r#"["request.created"]"#;

/// Waits until every delivery in the outbox was tried at least once.
async fn all_tried(app: &TestApp, n: i64) {
    for _ in 0..200 {
        let tried = app.count("SELECT count(*) FROM notify_outbox WHERE attempts >= 1");
        if tried == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not every delivery was tried");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_away_for_a_minute_gets_all_100_events_when_it_is_back() {
    let clock = manual_clock();
    let mut hook = Receiver::new(true);
    let policy = policy_with(&hook.sink("hook", CREATED, "")).replace(
        "pending_ttl = \"1h\"",
        "pending_ttl = \"1h\"\nmax_pending_per_user = 1000",
    );
    let app = TestApp::spawn_with_clock(&policy, &clock).await;
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..100 {
        ids.insert(app.create_ok("alice", "prod-db").await);
    }
    // Nobody listens: every delivery fails once and waits.
    all_tried(&app, 100).await;
    assert!(hook.records().is_empty());
    hook.start();
    clock.advance(Duration::from_secs(60));
    // A try that timed out on a busy machine is due again only after its backoff: the
    // clock moves on while waiting (it once stalled a CI run for want of that). Then a
    // delivery may also come twice (its lease ran out while it was in flight: at least
    // once, by design), so what counts is every request told, not the number of posts.
    let told = |events: &[Value]| -> std::collections::BTreeSet<String> {
        events
            .iter()
            .map(|e| e["data"]["request"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for _ in 0..240 {
        if told(&hook.events()) == ids {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(told(&hook.events()), ids);
    // Each one recorded delivered once its answer is in (a try that timed out on a busy
    // machine is due again after its backoff: the clock moves on for it).
    let delivered = "SELECT count(*) FROM notify_outbox WHERE status = 'delivered'";
    for _ in 0..120 {
        if app.count(delivered) == 100 {
            break;
        }
        clock.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        app.count(delivered),
        100,
        "pending: {}, with an error: {}, receiver got {} posts",
        app.count("SELECT count(*) FROM notify_outbox WHERE status = 'pending'"),
        app.count(
            "SELECT count(*) FROM notify_outbox WHERE last_error IS NOT NULL AND status = 'pending'"
        ),
        hook.records().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_that_never_succeeds_is_given_up_on_the_record_and_can_be_retried() {
    let clock = manual_clock();
    let mut hook = Receiver::new(true);
    let mut watcher = Receiver::new(true);
    watcher.start();
    // Another team's sink hears that something died, not what it was about.
    let mut other_team = Receiver::new(true);
    other_team.start();
    let sinks = format!(
        "{}{}{}",
        hook.sink("flaky", CREATED, "give_up_after = \"1m\""),
        watcher.sink("watch", r#"["notify.dead"]"#, ""),
        other_team.sink("ops-team", r#"["notify.dead"]"#, "roles = [\"ops\"]")
    );
    let app = TestApp::spawn_with_clock(&policy_with(&sinks), &clock).await;
    let id = app.create_ok("alice", "prod-db").await;
    all_tried(&app, 1).await;
    clock.advance(Duration::from_secs(61));
    let dead = watcher.wait_for(20, |e| !e.is_empty()).await;
    assert_eq!(dead[0]["type"], "notify.dead");
    assert_eq!(dead[0]["data"]["sink"], "flaky");
    assert_eq!(dead[0]["data"]["request"]["id"], id.as_str());
    let theirs = other_team.wait_for(20, |e| !e.is_empty()).await;
    assert_eq!(theirs[0]["data"]["sink"], "flaky");
    assert!(theirs[0]["data"]["request"].is_null(), "{}", theirs[0]);
    let audited = app.audit("").await;
    let given_up: Vec<&Value> = audited
        .iter()
        .filter(|e| e["action"] == "notify.dead")
        .collect();
    assert_eq!(given_up.len(), 1);
    assert_eq!(given_up[0]["detail"]["sink"], "flaky");
    // The operator sees it, the receiver is fixed, the operator retries.
    let status = run({
        let mut c = countersign(&app.config_path());
        c.args(["notify", "status", "--json"]);
        c
    })
    .await;
    assert!(status.status.success(), "{}", text(&status.stderr));
    let listed: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(listed["dead"], 1, "{listed}");
    let event_id = listed["deliveries"][0]["id"].as_str().unwrap().to_owned();
    assert!(!text(&status.stdout).contains("http://"), "no URL is shown");
    hook.start();
    let retried = run({
        let mut c = countersign(&app.config_path());
        c.args(["notify", "retry", &event_id, "--sink", "flaky"]);
        c
    })
    .await;
    assert!(retried.status.success(), "{}", text(&retried.stderr));
    let events = hook.wait_for(20, |e| !e.is_empty()).await;
    assert_eq!(events[0]["id"], event_id.as_str());
    assert_eq!(of_type(&events, "request.created").len(), 1);
    let audited = app.audit("").await;
    assert!(audited.iter().any(|e| e["action"] == "notify.retried"));
    // Retrying what is not dead says so.
    let again = run({
        let mut c = countersign(&app.config_path());
        c.args(["notify", "retry", &event_id]);
        c
    })
    .await;
    assert!(!again.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_the_middle_of_deliveries_loses_none_of_them() {
    use crate::process::{Api, ServerProcess, create_token, operator};
    let mut hook = Receiver::new(true);
    hook.set_mode("hang");
    hook.start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("countersign.toml");
    std::fs::write(&config, policy_with(&hook.sink("hook", CREATED, ""))).unwrap();
    assert!(
        operator(&config)
            .arg("init")
            .output()
            .unwrap()
            .status
            .success()
    );
    let alice = tokio::task::block_in_place(|| create_token(&config, "alice"));
    let server = tokio::task::block_in_place(|| ServerProcess::start(&config));
    let api = Api::new(&server.url);
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..10 {
        let key = crate::helpers::public_line(&crate::helpers::new_key());
        let body =
            serde_json::json!({ "role": "prod-db", "public_key": key, "reason": format!("r{i}") });
        let (status, created) = api.post(&alice, "/v1/requests", body).await.unwrap();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
        ids.insert(created["id"].as_str().unwrap().to_owned());
    }
    // Deliveries are in flight, the receiver holding them, when the power goes.
    hook.wait_for_records(10).await;
    tokio::task::block_in_place(|| server.kill_9());
    hook.set_mode("ok");
    let _server = tokio::task::block_in_place(|| ServerProcess::start(&config));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let told: std::collections::BTreeSet<String> = hook
            .delivered()
            .iter()
            .filter_map(|e| e["data"]["request"]["id"].as_str().map(str::to_owned))
            .collect();
        if ids.iter().all(|id| told.contains(id)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivered after the crash: {told:?} of {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_deliver_each_event_once() {
    use crate::helpers::Backend;
    let mut hook = Receiver::new(true);
    hook.start();
    let policy = policy_with(&hook.sink("hook", CREATED, ""));
    let first = TestApp::spawn_on_backend(&policy, Backend::Postgres).await;
    let second = TestApp::spawn_replica_of(&first, &policy).await;
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &first } else { &second };
        let user = if i % 4 < 2 { "alice" } else { "frank" };
        ids.insert(app.create_ok(user, "prod-db").await);
    }
    let events = hook.wait_for(30, |e| e.len() >= 20).await;
    // Both dispatchers ran all along: a claimed delivery is the other's to skip.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = if hook.events().len() > events.len() {
        hook.events()
    } else {
        events
    };
    let told: Vec<String> = events
        .iter()
        .map(|e| e["data"]["request"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(told.len(), 20, "each event once: {told:?}");
    assert_eq!(
        told.into_iter().collect::<std::collections::BTreeSet<_>>(),
        ids
    );
}

/// A receiver that was down long enough for many deliveries to be given up gets them all
/// with one command once it is back (`notify retry --all --sink`), on the record.
#[tokio::test(flavor = "multi_thread")]
async fn every_dead_delivery_to_a_sink_is_retried_with_one_command() {
    let clock = manual_clock();
    let mut hook = Receiver::new(true);
    let policy = policy_with(&hook.sink("flaky", CREATED, "give_up_after = \"1m\""));
    let app = TestApp::spawn_with_clock(&policy, &clock).await;
    let ids: std::collections::BTreeSet<String> = [
        app.create_ok("alice", "prod-db").await,
        app.create_ok("frank", "prod-db").await,
    ]
    .into();
    all_tried(&app, 2).await;
    clock.advance(Duration::from_secs(61));
    let dead = "SELECT count(*) FROM notify_outbox WHERE status = 'dead'";
    for _ in 0..200 {
        if app.count(dead) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count(dead), 2, "both given up");
    hook.start();
    let retried = run({
        let mut c = countersign(&app.config_path());
        c.args(["notify", "retry", "--all", "--sink", "flaky"]);
        c
    })
    .await;
    assert!(retried.status.success(), "{}", text(&retried.stderr));
    assert!(
        text(&retried.stderr).contains("re-armed 2"),
        "{}",
        text(&retried.stderr)
    );
    let events = hook
        .wait_for(20, |e| of_type(e, "request.created").len() >= 2)
        .await;
    let told: std::collections::BTreeSet<String> = events
        .iter()
        .map(|e| {
            e["data"]["request"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(told, ids);
    let audited = app.audit("").await;
    let retry = audited
        .iter()
        .find(|e| e["action"] == "notify.retried")
        .expect("audited");
    assert_eq!(retry["detail"]["event_id"], "*", "{retry}");
    assert_eq!(retry["detail"]["deliveries"], 2, "{retry}");
    // Nothing dead is left: another --all says so, and an id with --all is refused.
    let again = run({
        let mut c = countersign(&app.config_path());
        c.args(["notify", "retry", "--all"]);
        c
    })
    .await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("no dead delivery"),
        "{}",
        text(&again.stderr)
    );
    let both = run({
        let mut c = countersign(&app.config_path());
        c.args(["notify", "retry", "msg_x", "--all"]);
        c
    })
    .await;
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    // A sink this file does not have is named as such (nothing would ever try it).
    let unknown = run({
        let mut c = countersign(&app.config_path());
        c.args(["notify", "retry", "--all", "--sink", "nosuch"]);
        c
    })
    .await;
    assert!(!unknown.status.success());
    let said = text(&unknown.stderr);
    assert!(
        said.contains("no [[notify]] sink is named nosuch") && said.contains("flaky"),
        "{said}"
    );
}
