//! Reads sent ahead (`src/store/ahead.rs`): on PostgreSQL an operation's plan names its
//! first read, which goes out with the batch's BEGIN and so sees the database as the
//! batch began. These tests run operations in one batch on a real PostgreSQL and check
//! that an operation never gets an answer that a write before it in the batch made
//! stale, nor an answer to another question than the one it asks, while a read nothing
//! touched is answered from ahead (the round trip saved, counted in `Store::stats`).

use std::sync::Arc;

use countersign::names::{RequestId, RoleName, UserName};
use countersign::store::requests::{self as rq, Held, RequestRow, Status};
use countersign::store::{Store, StoreError, Touch, Tx, users};

use crate::pg_pipeline::{behind_a_held_batch, store};

const NOW: i64 = 1_800_000_000;
const HELD: Held = Held {
    after_expiry: 300,
    after_revocation: 300,
};

fn user(name: &str) -> UserName {
    UserName::parse(name).expect("a user name")
}

fn role() -> RoleName {
    RoleName::parse("prod-db").expect("a role name")
}

/// A pending request of `requester` for `prod-db`.
fn pending(requester: &str) -> RequestRow {
    RequestRow {
        id: RequestId::new_at(
            chrono::DateTime::from_timestamp(NOW, 0).unwrap(),
            &mut rand::rng(),
        ),
        role: role(),
        requester: user(requester),
        reason: "test".into(),
        ttl_seconds: 600,
        public_key: "ssh-ed25519 AAAA".into(),
        key_fingerprint: "SHA256:x".into(),
        principals: vec!["svc".into()],
        role_digest: "x".into(),
        status: Status::Pending,
        created_at: NOW,
        expires_at: NOW + 3600,
        decided_at: None,
        decided_by: None,
        decision_code: None,
        decision_note: None,
        approvals_required: Some(1),
    }
}

/// The roles among `prod-db` that `who` holds or has asked for, at `now`.
fn holdings(tx: &Tx<'_>, who: &str, now: i64) -> Result<Vec<RoleName>, StoreError> {
    rq::holdings(tx, &user(who), now, HELD, None, &[&role()])
}

/// An operation's run: what it read, or nothing.
type Run = Box<dyn FnOnce(&Store) -> Result<Vec<RoleName>, StoreError> + Send>;

/// An operation of a batch: a plan (on the writer thread, before the batch's
/// transaction) and a run with the store.
type Planned = (Box<dyn FnOnce(&Store) + Send>, Run);

/// A plan that sends `who`'s holdings at `now` ahead, depending on `who`'s rows.
fn ahead(who: &'static str, now: i64) -> Box<dyn FnOnce(&Store) + Send> {
    Box::new(move |s: &Store| {
        let who_ = user(who);
        s.read_ahead(&[Touch::User(&who_)], |tx| holdings(tx, who, now));
    })
}

/// A run that reads `who`'s holdings at `now`.
fn read(who: &'static str, now: i64) -> Run {
    Box::new(move |s: &Store| s.read(|tx| holdings(tx, who, now)))
}

/// A run that writes, touching nothing a read names (it reads nothing itself).
fn writes(f: impl FnOnce(&Tx<'_>) -> Result<(), StoreError> + Send + 'static) -> Run {
    Box::new(move |s: &Store| s.write(f).map(|()| Vec::new()))
}

fn no_plan() -> Box<dyn FnOnce(&Store) + Send> {
    Box::new(|_: &Store| {})
}

/// Runs `ops` as one batch (a first operation holds the writer thread until all are
/// queued behind it); each one's result.
fn one_batch(store: &Arc<Store>, ops: Vec<Planned>) -> Vec<Result<Vec<RoleName>, StoreError>> {
    behind_a_held_batch(store, || {
        ops.into_iter()
            .map(|(plan, run)| {
                let (p, r) = (store.clone(), store.clone());
                store.submit_planned(move || plan(&p), move |()| run(&r))
            })
            .collect()
    })
}

/// Reads ahead used, stale and unused so far.
fn counts(store: &Store) -> [u64; 3] {
    store.stats().reads_ahead
}

#[test]
fn a_read_sent_ahead_is_used_only_if_no_write_before_it_in_the_batch_touched_it() {
    let (_db, store) = store();
    let request = pending("alice");
    let ops: Vec<Planned> = vec![
        (no_plan(), writes(move |tx| rq::insert(tx, &request))),
        // Alice's request was written after her holdings were sent ahead: the answer
        // sent ahead (nothing held) is stale and must not be used.
        (ahead("alice", NOW), read("alice", NOW)),
        // Nothing of bob's was written: his answer sent ahead is used.
        (ahead("bob", NOW), read("bob", NOW)),
    ];
    let before = counts(&store);
    let results = one_batch(&store, ops);
    assert_eq!(
        results[1].as_ref().unwrap(),
        &vec![role()],
        "alice's own request"
    );
    assert_eq!(results[2].as_ref().unwrap(), &Vec::<RoleName>::new());
    let after = counts(&store);
    assert_eq!(
        after[0] - before[0],
        1,
        "bob's answer sent ahead was used: {after:?}"
    );
    assert_eq!(after[1] - before[1], 1, "alice's was stale: {after:?}");
}

#[test]
fn a_write_that_names_nothing_makes_every_later_read_ahead_of_its_batch_stale() {
    let (_db, store) = store();
    let request = pending("alice");
    // Committed before the batch: alice holds the role (her pending request).
    store.write(|tx| rq::insert(tx, &request)).unwrap();
    let ops: Vec<Planned> = vec![
        // Disabling a user names no key: it counts as touching everything.
        (
            no_plan(),
            writes(|tx| users::disable(tx, &user("carol"), NOW, "admin", "test").map(drop)),
        ),
        (ahead("alice", NOW), read("alice", NOW)),
    ];
    let before = counts(&store);
    let results = one_batch(&store, ops);
    assert_eq!(results[1].as_ref().unwrap(), &vec![role()]);
    let after = counts(&store);
    assert_eq!(
        (after[0] - before[0], after[1] - before[1]),
        (0, 1),
        "{after:?}"
    );
}

#[test]
fn an_operation_that_asks_another_question_than_its_plan_reads_for_itself() {
    let (_db, store) = store();
    let request = pending("alice");
    store.write(|tx| rq::insert(tx, &request)).unwrap();
    let ops: Vec<Planned> = vec![
        // Planned about bob (who holds nothing), but asks about alice: the answer sent
        // ahead is bob's and must not be given for alice's question.
        (ahead("bob", NOW), read("alice", NOW)),
        // Planned about alice an hour later (her request has expired by then), asks
        // about now.
        (ahead("alice", NOW + 7200), read("alice", NOW)),
    ];
    let before = counts(&store);
    let results = one_batch(&store, ops);
    assert_eq!(results[0].as_ref().unwrap(), &vec![role()]);
    assert_eq!(results[1].as_ref().unwrap(), &vec![role()]);
    let after = counts(&store);
    assert_eq!(after[2] - before[2], 2, "both went unused: {after:?}");
    assert_eq!(after[0] - before[0], 0, "{after:?}");
}

#[test]
fn a_read_sent_ahead_is_not_used_after_the_operations_own_write() {
    let (_db, store) = store();
    let request = pending("alice");
    let ops: Vec<Planned> = vec![(
        ahead("alice", NOW),
        // Writes first, then reads what the plan sent ahead: the read must see the
        // write, so the answer (from before it) is not used.
        Box::new(move |s: &Store| {
            s.write(|tx| rq::insert(tx, &request))?;
            s.read(|tx| holdings(tx, "alice", NOW))
        }),
    )];
    let before = counts(&store);
    let results = one_batch(&store, ops);
    assert_eq!(results[0].as_ref().unwrap(), &vec![role()]);
    let after = counts(&store);
    assert_eq!(after[0] - before[0], 0, "{after:?}");
}

/// Through the API on PostgreSQL, one flow at a time: a create with an idempotency key
/// (as the CLI sends every create) and its approval each get their checks from the read
/// sent with their batch's BEGIN, and the flow still ends in one certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_create_and_its_approval_each_use_their_read_sent_ahead() {
    use crate::helpers::{Backend, POLICY, TestApp, new_key, public_line};

    let app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let before = app.service.store().stats().reads_ahead;
    let body = serde_json::json!({
        "role": "prod-db",
        "public_key": public_line(&new_key()),
        "reason": "INC-4211: replica lag",
        "ttl": "30m",
    });
    let created = app
        .http
        .post(format!("{}/v1/requests", app.url))
        .bearer_auth(app.token("alice"))
        .header("Idempotency-Key", "k-ahead-1")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let view: serde_json::Value = created.json().await.expect("JSON");
    let id = view["id"].as_str().expect("an id").to_owned();
    let (status, approved) = app.approve("bob", &id).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "issued", "{approved}");
    let after = app.service.store().stats().reads_ahead;
    let used = after[0] - before[0];
    assert!(
        used >= 2,
        "create and approve each used theirs: {before:?} -> {after:?}"
    );
    assert_eq!(after[2], before[2], "none went unused: {after:?}");
    // What an operator sees of it.
    let metrics = app
        .http
        .get(&app.metrics_url)
        .send()
        .await
        .expect("GET /metrics");
    let text = metrics.text().await.expect("the metrics");
    let shown: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("countersign_store_reads_ahead_total{outcome=\"used\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reads-ahead line in:\n{text}"));
    assert!(shown >= 2.0, "{shown}");
}
