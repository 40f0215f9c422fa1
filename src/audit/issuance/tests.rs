//! `audit verify`'s issuance check against forged chains.
use serde_json::{Value, json};

use super::super::verify::verify_parallel;
use super::super::{AuditError, append_forged, verify};
use crate::store::{Store, StoreError};

const REQUEST: &str = "r-aaaaaaaaaaaa";

/// Actor, action and detail of one event.
type Ev = (&'static str, &'static str, Value);

/// A store holding these events, each appended with its correct hash: what someone
/// who can write the database and knows the (public) hash function can produce.
fn chain(events: &[(&str, &str, Value)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|tx| {
            for (actor, action, detail) in events {
                let issued = *action == "certificate.issued";
                append_forged(
                    tx,
                    actor,
                    action,
                    Some(REQUEST),
                    issued.then_some(881),
                    detail,
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    (dir, store)
}

fn created() -> Ev {
    ("alice", "request.created", json!({"role": "prod-db"}))
}

fn approved(by: &'static str) -> Ev {
    (by, "request.approved", json!({"requester": "alice"}))
}

fn issued(approvals: Value, required: Option<Value>) -> Ev {
    let mut d = json!({"requester": "alice", "role": "prod-db", "approvals": approvals});
    if let Some(r) = required {
        d["approvals_required"] = r;
    }
    ("bob", "certificate.issued", d)
}

fn used() -> Ev {
    ("alice", "breakglass.used", json!({"role": "prod-db"}))
}

fn issued_breakglass() -> Ev {
    let d = json!({"requester": "alice", "role": "prod-db", "approvals": [], "breakglass": true});
    ("alice", "certificate.issued", d)
}

/// The seq and message of the broken event, sequentially and in parallel alike.
fn broken(events: &[(&str, &str, Value)]) -> (i64, String) {
    let (_dir, store) = chain(events);
    let one = store.read(verify);
    let many = verify_parallel(&store, 2, 0);
    match (one, many) {
        (Err(AuditError::Broken { seq, why }), Err(AuditError::Broken { seq: s2, why: w2 })) => {
            assert_eq!(seq, s2, "{why} / {w2}");
            (seq, why)
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn issued_events_backed_by_their_request_and_approvals_verify_new_and_old_shapes() {
    for required in [Some(json!([1])), None] {
        let (_dir, store) = chain(&[
            created(),
            approved("bob"),
            issued(json!([{"approver": "bob", "step": 1}]), required),
        ]);
        assert_eq!(store.read(verify).unwrap().events, 3);
        assert_eq!(verify_parallel(&store, 2, 0).unwrap().events, 3);
    }
    // Two steps, two approvers, in any order of approval.
    let (_dir, store) = chain(&[
        created(),
        approved("carol"),
        approved("bob"),
        issued(
            json!([{"approver": "bob", "step": 1}, {"approver": "carol", "step": 2}]),
            Some(json!([1, 1])),
        ),
    ]);
    store.read(verify).unwrap();
    // A break-glass use: its certificate lists no approvals.
    let (_dir, store) = chain(&[used(), issued_breakglass()]);
    assert_eq!(store.read(verify).unwrap().events, 2);
    assert_eq!(verify_parallel(&store, 2, 0).unwrap().events, 2);
}

#[test]
fn an_issued_event_without_its_approvals_breaks_verify_naming_it() {
    let one = json!([{"approver": "bob", "step": 1}]);
    let cases: Vec<(Vec<Ev>, i64, &str)> = vec![
        // Appended with a correct hash, for a request nobody approved.
        (
            vec![created(), issued(one.clone(), Some(json!([1])))],
            2,
            "no request.approved",
        ),
        (
            vec![created(), issued(json!([]), None)],
            2,
            "lists no approvals",
        ),
        (vec![issued(one.clone(), None)], 1, "no request.created"),
        // A break-glass claim without its use, or a use issued as if approved.
        (
            vec![created(), issued_breakglass()],
            2,
            "no breakglass.used",
        ),
        (
            vec![used(), approved("bob"), issued(one.clone(), None)],
            3,
            "was a break-glass use",
        ),
        (
            vec![
                used(),
                approved("bob"),
                (
                    "alice",
                    "certificate.issued",
                    json!({"requester": "alice", "breakglass": true, "approvals": one.clone()}),
                ),
            ],
            3,
            "lists approvals",
        ),
        (
            vec![
                used(),
                (
                    "alice",
                    "certificate.issued",
                    json!({"requester": "mallory", "breakglass": true}),
                ),
            ],
            2,
            "names requester mallory",
        ),
        // A use for one role, a certificate for another.
        (
            vec![
                used(),
                (
                    "alice",
                    "certificate.issued",
                    json!({"requester": "alice", "role": "ops", "breakglass": true}),
                ),
            ],
            2,
            "but its breakglass.used said prod-db",
        ),
        (
            vec![
                created(),
                approved("alice"),
                issued(json!([{"approver": "alice", "step": 1}]), None),
            ],
            3,
            "by the requester alice",
        ),
        (
            vec![
                created(),
                approved("bob"),
                issued(
                    json!([{"approver": "bob", "step": 1}, {"approver": "bob", "step": 2}]),
                    None,
                ),
            ],
            3,
            "counts bob twice",
        ),
        (
            vec![
                created(),
                approved("bob"),
                issued(one.clone(), Some(json!([2]))),
            ],
            3,
            "lists 1 approvals for step 1, which required 2",
        ),
        (
            vec![
                created(),
                approved("bob"),
                issued(one.clone(), Some(json!([1, 1]))),
            ],
            3,
            "step 2, which required 1",
        ),
        (
            vec![
                created(),
                approved("bob"),
                issued(json!([{"approver": "bob", "step": 3}]), Some(json!([1]))),
            ],
            3,
            "toward step 3 of 1",
        ),
        // The approval came after the issuance: not "before it" in the chain.
        (
            vec![created(), issued(one.clone(), None), approved("bob")],
            2,
            "no request.approved",
        ),
        // A request that ended (denied) is not issued afterwards.
        (
            vec![
                created(),
                approved("bob"),
                ("bob", "request.denied", json!({})),
                issued(one.clone(), None),
            ],
            4,
            "had ended",
        ),
        (
            vec![
                created(),
                approved("bob"),
                (
                    "bob",
                    "certificate.issued",
                    json!({"requester": "mallory", "approvals": one.clone()}),
                ),
            ],
            3,
            "names requester mallory",
        ),
    ];
    for (events, seq, needle) in cases {
        let (at, why) = broken(&events);
        assert_eq!(at, seq, "{needle}: {why}");
        assert!(
            why.contains("certificate.issued for request r-aaaaaaaaaaaa"),
            "{why}"
        );
        assert!(why.contains(needle), "{why:?} lacks {needle:?}");
    }
}
