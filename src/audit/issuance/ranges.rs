//! The issuance check cut into ranges ([`Stories`] and [`settle`]) says what one walk
//! over the whole chain says, wherever the cuts fall: random forged chains over a few
//! requests, checked against [`step`] applied in order.
use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::verify::verify_parallel;
use super::super::{AuditError, append_forged, verify};
use crate::store::audit as stored;
use crate::store::{Store, StoreError};

/// Request, actor, action and detail of one event.
type Ev4 = (&'static str, &'static str, &'static str, Value);

const REQUESTS: [&str; 3] = ["r-aaaaaaaaaaaa", "r-bbbbbbbbbbbb", "r-cccccccccccc"];
const PEOPLE: [&str; 3] = ["alice", "bob", "carol"];

fn event() -> impl Strategy<Value = Ev4> {
    let request = prop::sample::select(&REQUESTS[..]);
    let actor = prop::sample::select(&PEOPLE[..]);
    let approvals = prop::collection::vec((prop::sample::select(&PEOPLE[..]), 1u32..3), 0..3);
    let required = prop::option::of(prop::collection::vec(0u32..2, 1..3));
    (request, actor, 0..7u8, approvals, required, any::<bool>()).prop_map(
        |(request, actor, what, approvals, required, breakglass)| {
            let approvals: Vec<Value> = approvals
                .into_iter()
                .map(|(approver, step)| json!({"approver": approver, "step": step}))
                .collect();
            let (action, detail) = match what {
                0 => ("request.created", json!({"role": "prod-db"})),
                1 => ("breakglass.used", json!({"role": "prod-db"})),
                2 | 3 => ("request.approved", json!({})),
                4 | 5 => {
                    let mut d = json!({"requester": "alice", "role": "prod-db",
                        "approvals": approvals, "breakglass": breakglass});
                    if let Some(r) = required {
                        d["approvals_required"] = json!(r);
                    }
                    ("certificate.issued", d)
                }
                _ => ("request.denied", json!({})),
            };
            (request, actor, action, detail)
        },
    )
}

fn chain(events: &[Ev4]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|tx| {
            for (request, actor, action, detail) in events {
                append_forged(tx, actor, action, Some(request), None, detail)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    (dir, store)
}

/// One walk over the whole chain, in order: the check as it was before it was cut (also
/// what a range that kept too much gives way to).
fn walk(store: &Store) -> Result<(), (i64, String)> {
    let last = store.read(stored::last_seq).unwrap();
    store
        .read(|tx| super::cut::walk(tx, last))
        .map_err(|e| match e {
            AuditError::Broken { seq, why } => (seq, why),
            other => panic!("{other}"),
        })
}

fn outcome(r: Result<super::super::Verified, AuditError>) -> Result<(), (i64, String)> {
    match r {
        Ok(_) => Ok(()),
        Err(AuditError::Broken { seq, why }) => Err((seq, why)),
        Err(other) => panic!("{other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ranges_agree_with_one_walk(events in prop::collection::vec(event(), 1..24)) {
        let (_dir, store) = chain(&events);
        let walked = walk(&store);
        prop_assert_eq!(&outcome(store.read(verify)), &walked, "one range");
        for threads in 2..=events.len().min(8) {
            let cut = outcome(verify_parallel(&store, threads, 0));
            prop_assert_eq!(&cut, &walked, "{} ranges", threads);
        }
    }
}

/// A request begun again (a forged second `request.created`) and ended in a later
/// range: what an earlier range left open of it is gone, as in one walk.
#[test]
fn a_request_begun_again_and_ended_in_a_later_range_is_not_open_after_it() {
    let issued = json!({"requester": "alice", "approvals": [{"approver": "bob", "step": 1}]});
    let r = REQUESTS[0];
    let events: Vec<Ev4> = vec![
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.approved", json!({})),
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.denied", json!({})),
        (r, "bob", "certificate.issued", issued.clone()),
        (r, "carol", "request.approved", json!({})),
    ];
    let (_dir, store) = chain(&events);
    assert_eq!(walk(&store).unwrap_err().0, 5);
    for threads in 2..=6 {
        let (seq, why) = outcome(verify_parallel(&store, threads, 0)).unwrap_err();
        assert_eq!(seq, 5, "{threads} ranges: {why}");
        assert!(why.contains("had ended"), "{why}");
    }
    // Without the second beginning, the issuance stands whatever the cuts.
    let mut events = events;
    events.drain(2..4);
    let (_dir, store) = chain(&events);
    for threads in 2..=4 {
        assert!(
            verify_parallel(&store, threads, 0).is_ok(),
            "{threads} ranges"
        );
    }
}

/// A request named in a range before it begins there again (all forged): every event
/// of it in that range is replayed in order, so its ending there counts.
#[test]
fn a_request_named_before_it_begins_again_in_a_range_is_replayed_whole() {
    let issued = json!({"requester": "alice", "approvals": [{"approver": "bob", "step": 1}]});
    let (r, other) = (REQUESTS[0], REQUESTS[1]);
    let events: Vec<Ev4> = vec![
        (other, "alice", "request.created", json!({})),
        (other, "bob", "request.approved", json!({})),
        (other, "bob", "certificate.issued", issued.clone()),
        (REQUESTS[2], "alice", "request.created", json!({})),
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.approved", json!({})),
        // Two ranges cut here (10 events: 1-6, 7-10).
        (r, "carol", "request.approved", json!({})),
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.denied", json!({})),
        (r, "bob", "certificate.issued", issued),
    ];
    let (_dir, store) = chain(&events);
    assert_eq!(walk(&store).unwrap_err().0, 10);
    for threads in 2..=8 {
        let (seq, why) = outcome(verify_parallel(&store, threads, 0)).unwrap_err();
        assert_eq!(seq, 10, "{threads} ranges: {why}");
    }
}

/// Rewrites index `name` (created by `original`) to leave out the rows `omit` matches,
/// while the schema still shows `original`: what someone who can write the database file
/// can do (no hash covers an index), and `Store::open` finds nothing amiss.
fn tamper_index(path: &std::path::Path, name: &str, original: &str, omit: &str) {
    let partial = if original.contains(" WHERE ") {
        format!("{original} AND NOT ({omit})")
    } else {
        format!("{original} WHERE NOT ({omit})")
    };
    let sql = format!(
        "DROP INDEX {name}; {partial}; UPDATE sqlite_schema SET sql = '{}' WHERE name = '{name}'",
        original.replace('\'', "''")
    );
    crate::store::tamper_file(path, &sql).unwrap();
}

/// Adds an index `name` on `audit (cols)` that leaves out the rows `omit` matches while
/// the schema shows it whole: the planner may pick it for any read of those columns.
fn add_lying_index(path: &std::path::Path, name: &str, cols: &str, omit: &str) {
    let sql = format!(
        "CREATE INDEX {name} ON audit ({cols}) WHERE NOT ({omit}); \
         UPDATE sqlite_schema SET sql = 'CREATE INDEX {name} ON audit ({cols})' \
         WHERE name = '{name}'"
    );
    crate::store::tamper_file(path, &sql).unwrap();
}

const BY_REQUEST: &str = "CREATE INDEX audit_by_request ON audit (request_id)";

/// A forged second `request.created` hidden from the index by request: the ranges never
/// ask an index whether a request began in them (found in review: they did, and a
/// forged issuance passed with 3 ranges).
#[test]
fn an_index_that_hides_a_beginning_does_not_open_a_way_for_an_issuance() {
    let issued = json!({"requester": "alice", "approvals": [{"approver": "bob", "step": 1}]});
    let (r, f) = (REQUESTS[0], REQUESTS[1]);
    // Kept at the cut (3 ranges: 1-3, 4-6), and open across it, kept by neither side.
    let kept: Vec<Ev4> = vec![
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.approved", json!({})),
        (f, "alice", "request.created", json!({})),
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.denied", json!({})),
        (r, "bob", "certificate.issued", issued.clone()),
    ];
    let mut across = kept.clone();
    across.truncate(5);
    across.extend([
        (f, "alice", "request.created", json!({})),
        (f, "alice", "request.created", json!({})),
        (r, "bob", "certificate.issued", issued),
    ]);
    for (events, at) in [(kept, 6), (across, 8)] {
        let (dir, store) = chain(&events);
        drop(store);
        let path = dir.path().join("db");
        tamper_index(&path, "audit_by_request", BY_REQUEST, "seq = 4");
        let store = Store::open(&path).unwrap();
        assert_eq!(walk(&store).unwrap_err().0, at);
        for threads in 2..=6 {
            let (seq, why) = outcome(verify_parallel(&store, threads, 0)).unwrap_err();
            assert_eq!(seq, at, "{threads} ranges: {why}");
        }
    }
}

/// The same through the command's own entry point (`verify_store`: 20,000 events or
/// more, as many ranges as cores), the beginning just after the first cut.
#[test]
fn verify_store_names_the_issuance_behind_a_tampered_index() {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4) as i64;
    let last = 20_000i64;
    let lo2 = last / threads.max(2) + 2;
    let issued = json!({"requester": "alice", "approvals": [{"approver": "bob", "step": 1}]});
    let r = REQUESTS[0];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    store
        .write(|tx| {
            for seq in 1..=last {
                let (request, actor, action, detail) = match seq {
                    1 => (Some(r), "alice", "request.created", json!({})),
                    2 => (Some(r), "bob", "request.approved", json!({})),
                    s if s == lo2 => (Some(r), "alice", "request.created", json!({})),
                    s if s == lo2 + 1 => (Some(r), "bob", "request.denied", json!({})),
                    s if s == lo2 + 2 => (Some(r), "bob", "certificate.issued", issued.clone()),
                    _ => (None, "x", "certificate.revoked", json!({})),
                };
                append_forged(tx, actor, action, request, None, &detail)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    drop(store);
    tamper_index(
        &path,
        "audit_by_request",
        BY_REQUEST,
        &format!("seq = {lo2}"),
    );
    let store = Store::open(&path).unwrap();
    let (seq, why) = outcome(super::super::verify_store(&store)).unwrap_err();
    assert_eq!(seq, lo2 + 2, "{why}");
}

/// A forged `host.enrolled` left out of the index of host events: what the index gave
/// is compared with what the hashed rows showed, and the table is read instead (found in
/// review: the enrollment passed every way).
#[test]
fn an_index_that_hides_a_host_event_is_caught_and_the_table_read() {
    let forged = json!({"serial": "7", "principals": ["a"], "key_fingerprint": "K",
        "token_id": "ht-x", "valid_before": "x"});
    let events: Vec<(Option<&str>, &str, Value)> = vec![
        (Some(REQUESTS[0]), "request.created", json!({})),
        (None, "host.enrolled", forged),
        (Some(REQUESTS[1]), "request.created", json!({})),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    store
        .write(|tx| {
            for (request, action, detail) in &events {
                append_forged(tx, "alice", action, *request, None, detail)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    drop(store);
    let original = "CREATE INDEX audit_hosts ON audit (seq) WHERE substr(action, 1, 5) = 'host.'";
    tamper_index(&path, "audit_hosts", original, "seq = 2");
    let store = Store::open(&path).unwrap();
    let one = outcome(store.read(verify));
    for got in [
        one,
        outcome(verify_parallel(&store, 2, 0)),
        outcome(verify_parallel(&store, 3, 0)),
    ] {
        let (seq, why) = got.unwrap_err();
        assert_eq!(seq, 2, "{why}");
        assert!(why.contains("names join token ht-x"), "{why}");
    }
}

/// A range that would keep more events than it may (a forged log naming requests that
/// began elsewhere, without end) gives way to one walk over the chain: same verdict.
#[test]
fn a_range_that_would_keep_too_much_gives_way_to_one_walk() {
    let r = REQUESTS[0];
    let mut events: Vec<Ev4> = vec![(r, "alice", "request.created", json!({}))];
    let many = super::cut::CARRY_LIMIT + 4;
    events.extend((0..many).map(|_| (REQUESTS[1], "x", "request.created", json!({}))));
    events.extend((0..many).map(|_| (r, "carol", "request.approved", json!({}))));
    let issued = json!({"requester": "alice", "approvals": [{"approver": "bob", "step": 1}]});
    events.push((r, "bob", "certificate.issued", issued));
    let (_dir, store) = chain(&events);
    let walked = walk(&store);
    assert_eq!(walked.as_ref().unwrap_err().0, events.len() as i64);
    for threads in 2..=4 {
        assert_eq!(
            outcome(verify_parallel(&store, threads, 0)),
            walked,
            "{threads}"
        );
    }
}

/// Indexes someone added or rewrote so that the planner would read through them (found
/// in a second review): the reads `audit verify` decides by use the table's own key.
#[test]
fn indexes_added_or_rewritten_to_lie_are_never_read_through() {
    let issued = json!({"requester": "alice", "approvals": [{"approver": "bob", "step": 1}]});
    let (r, f) = (REQUESTS[0], REQUESTS[1]);
    let begun_again: Vec<Ev4> = vec![
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.approved", json!({})),
        (f, "alice", "request.created", json!({})),
        (r, "alice", "request.created", json!({})),
        (r, "bob", "request.denied", json!({})),
        (r, "bob", "certificate.issued", issued),
    ];
    // A covering index that hides the beginning again from the re-read of a range.
    let (dir, store) = chain(&begun_again);
    drop(store);
    let path = dir.path().join("db");
    add_lying_index(&path, "x", "seq, request_id, action", "seq BETWEEN 4 AND 5");
    let store = Store::open(&path).unwrap();
    for threads in 2..=4 {
        let (seq, why) = outcome(verify_parallel(&store, threads, 0)).unwrap_err();
        assert_eq!(seq, 6, "{threads} ranges: {why}");
    }
    // The index of host events shown whole: the newest event is still the table's.
    let (dir, store) = hosts_then(&[("host.token_created", token())]);
    let unbacked = json!({"requester": "alice", "approvals": [{"approver": "bob", "step": 1}]});
    store
        .write(|tx| append_forged(tx, "bob", "certificate.issued", Some(r), None, &unbacked))
        .unwrap();
    drop(store);
    let path = dir.path().join("db");
    let whole = "UPDATE sqlite_schema SET sql = 'CREATE INDEX audit_hosts ON audit (seq)' \
                 WHERE name = 'audit_hosts'";
    crate::store::tamper_file(&path, whole).unwrap();
    let store = Store::open(&path).unwrap();
    for got in [
        outcome(store.read(verify)),
        outcome(verify_parallel(&store, 2, 0)),
    ] {
        assert_eq!(got.unwrap_err().0, 4);
    }
}

/// Two ways around the index of host events: a covering one built elsewhere that reads
/// harmless content for the right events, and its removal with a lying index beside it
/// for the table read. Either way the forged enrollment is named.
#[test]
fn a_host_index_that_reads_other_content_or_is_gone_is_not_believed() {
    let forged = json!({"serial": "7", "principals": ["a"], "key_fingerprint": "K",
        "token_id": "ht-x", "valid_before": "x"});
    let covering = "DROP INDEX audit_hosts; \
        CREATE TABLE shadow (seq INTEGER PRIMARY KEY, action TEXT, detail TEXT, at TEXT); \
        INSERT INTO shadow VALUES (3, 'host.token_created', \
            '{\"token_id\":\"ht-z\",\"principals\":[\"a\"],\"expires_at\":\"x\"}', 'x'); \
        CREATE INDEX audit_hosts ON shadow (seq, action, detail, at); \
        UPDATE sqlite_schema SET tbl_name = 'audit', \
            sql = 'CREATE INDEX audit_hosts ON audit (seq, action, detail, at)' \
            WHERE name = 'audit_hosts'";
    let gone = "DROP INDEX audit_hosts; \
        CREATE INDEX h ON audit (seq, action, detail, at) WHERE seq <> 3; \
        UPDATE sqlite_schema SET sql = 'CREATE INDEX h ON audit (seq, action, detail, at)' \
            WHERE name = 'h'";
    for tampering in [covering, gone] {
        let (dir, store) = hosts_then(&[("host.enrolled", forged.clone())]);
        drop(store);
        let path = dir.path().join("db");
        crate::store::tamper_file(&path, tampering).unwrap();
        let store = Store::open(&path).unwrap();
        let one = outcome(store.read(verify));
        for got in [one, outcome(verify_parallel(&store, 2, 0))] {
            let (seq, why) = got.unwrap_err();
            assert_eq!(seq, 3, "{why}");
            assert!(why.contains("names join token ht-x"), "{why}");
        }
    }
}

fn token() -> Value {
    json!({"token_id": "ht-1", "principals": ["a"], "expires_at": "x"})
}

/// Two requests begun, then these host events (from seq 3).
fn hosts_then(events: &[(&str, Value)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|tx| {
            for r in &REQUESTS[..2] {
                append_forged(tx, "alice", "request.created", Some(r), None, &json!({}))?;
            }
            for (action, detail) in events {
                append_forged(tx, "host:h", action, None, None, detail)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    (dir, store)
}
