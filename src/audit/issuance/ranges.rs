//! The issuance check cut into ranges ([`Stories`] and [`settle`]) says what one walk
//! over the whole chain says, wherever the cuts fall: random forged chains over a few
//! requests, checked against [`step`] applied in order.
use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::verify::verify_parallel;
use super::super::{AuditError, append_forged, verify};
use super::{Ev, Kind, step};
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

/// One walk over the whole chain, in order: the check as it was before it was cut.
fn walk(store: &Store) -> Result<(), (i64, String)> {
    let mut open = Default::default();
    store
        .read(|tx| {
            stored::scan(tx, 1, i64::MAX, |row| {
                let f = row.fields;
                let (Some(request), Some(kind)) = (f.request_id, Kind::of(f.action)) else {
                    return Ok(());
                };
                let ev = Ev {
                    seq: f.seq,
                    kind,
                    actor: f.actor,
                    request,
                    detail: f.detail,
                };
                step(&mut open, &ev)
            })
        })
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
