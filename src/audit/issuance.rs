//! The second half of `audit verify`: the hash chain proves that no event was edited,
//! removed or reordered; this proves that no certificate was issued without the events
//! that must come before it. Someone able to write the database and recompute hashes (the
//! hash function is public) could otherwise append a `certificate.issued` event, with a
//! correct hash, for a request nobody approved.
//!
//! Each `certificate.issued` event must be preceded, in the chain, by the
//! `request.created` of its request and by a `request.approved` of that request from
//! every approver it lists; the approvers must be distinct and none of them the
//! requester; and with `approvals_required` (one count per step, recorded since it was
//! added), each step must have at least that many. Events written before that field
//! existed are checked for everything else and for at least one approval.
//!
//! A break-glass issuance (`"breakglass": true`) lists no approvals: it must be preceded
//! by the `breakglass.used` of its request, by the requester it names, and nothing but a
//! break-glass use may claim it.

use std::collections::HashMap;

use serde::Deserialize;

use super::AuditError;
use crate::store::Tx;
use crate::store::audit as stored;

/// What the check reads of a `certificate.issued` event's detail.
#[derive(Deserialize)]
struct Issued {
    #[serde(default)]
    requester: Option<String>,
    #[serde(default)]
    approvals: Vec<Counted>,
    /// Per step, the approvals it required (absent in events of older versions).
    #[serde(default)]
    approvals_required: Option<Vec<u32>>,
    /// Issued by break-glass.
    #[serde(default)]
    breakglass: bool,
    /// What it grants, checked against its `breakglass.used`.
    #[serde(flatten)]
    granted: Granted,
}

/// What a `breakglass.used` said it would grant, and a break-glass `certificate.issued`
/// must grant: the same role, principals and key.
#[derive(Deserialize, PartialEq, Eq)]
struct Granted {
    #[serde(default)]
    role: String,
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    public_key_fingerprint: String,
}

#[derive(Deserialize)]
struct Counted {
    approver: String,
    /// 1-based step the approval counted toward.
    step: u32,
}

/// A request seen in the chain and not yet ended.
struct Open {
    requester: String,
    /// Begun by `breakglass.used` (what it said it would grant), not `request.created`.
    breakglass: Option<Granted>,
    /// Who approved it, by `request.approved` events.
    approved_by: Vec<String>,
}

/// Checks every `certificate.issued` event up to `last_seq` (see the module docs); the
/// error names the first event that lacks what must precede it.
pub(super) fn check(tx: &Tx<'_>, last_seq: i64) -> Result<(), AuditError> {
    let mut open: HashMap<String, Open> = HashMap::new();
    let mut hosts = super::host_issuance::Hosts::default();
    stored::scan_stories(tx, last_seq, |ev| {
        if ev.action.starts_with("host.") {
            return hosts
                .see(ev.action, ev.issued_detail.unwrap_or_default(), ev.at)
                .map_err(|why| AuditError::Broken {
                    seq: ev.seq,
                    why: format!("{} {why}", ev.action),
                });
        }
        let Some(request) = ev.request_id else {
            return Ok(());
        };
        match ev.action {
            "request.created" | "breakglass.used" => {
                let breakglass = match ev.action {
                    "breakglass.used" => Some(
                        serde_json::from_str(ev.issued_detail.unwrap_or_default()).map_err(
                            |e| AuditError::Broken {
                                seq: ev.seq,
                                why: format!("breakglass.used of {request} has a bad detail: {e}"),
                            },
                        )?,
                    ),
                    _ => None,
                };
                open.insert(
                    request.to_owned(),
                    Open {
                        requester: ev.actor.to_owned(),
                        breakglass,
                        approved_by: Vec::new(),
                    },
                );
            }
            "request.approved" => {
                if let Some(r) = open.get_mut(request) {
                    r.approved_by.push(ev.actor.to_owned());
                }
            }
            "certificate.issued" => {
                let req = open.remove(request);
                let detail = ev.issued_detail.unwrap_or_default();
                issued(request, req, detail).map_err(|why| AuditError::Broken {
                    seq: ev.seq,
                    why: format!("certificate.issued for request {request} {why}"),
                })?;
            }
            // The request ended otherwise: nothing may be issued for it any more.
            _ => {
                open.remove(request);
            }
        }
        Ok(())
    })
}

/// One `certificate.issued` event against what the chain showed of its request before
/// it; the error completes "certificate.issued for request R ...".
fn issued(request: &str, req: Option<Open>, detail: &str) -> Result<(), String> {
    let req = req.ok_or_else(|| {
        format!("has no request.created of {request} before it (or the request had ended)")
    })?;
    let d: Issued = serde_json::from_str(detail).map_err(|e| format!("has a bad detail: {e}"))?;
    if let Some(named) = &d.requester
        && *named != req.requester
    {
        return Err(format!(
            "names requester {named}, but {} created the request",
            req.requester
        ));
    }
    match (d.breakglass, &req.breakglass) {
        (true, Some(_)) if !d.approvals.is_empty() => {
            return Err("is a break-glass issuance that lists approvals".into());
        }
        (true, Some(used)) if *used != d.granted => {
            return Err(format!(
                "grants {} {:?} to key {}, but its breakglass.used said {} {:?} to key {}",
                d.granted.role,
                d.granted.principals,
                d.granted.public_key_fingerprint,
                used.role,
                used.principals,
                used.public_key_fingerprint
            ));
        }
        (true, Some(_)) => return Ok(()),
        (true, None) => {
            return Err(format!(
                "claims break-glass, but {request} was no break-glass use (no breakglass.used)"
            ));
        }
        (false, Some(_)) => {
            return Err(format!(
                "does not say break-glass, but {request} was a break-glass use"
            ));
        }
        (false, None) => {}
    }
    if d.approvals.is_empty() {
        return Err("lists no approvals".into());
    }
    let mut seen: Vec<&str> = Vec::with_capacity(d.approvals.len());
    for a in &d.approvals {
        if a.approver == req.requester {
            return Err(format!(
                "counts an approval by the requester {}",
                req.requester
            ));
        }
        if seen.contains(&a.approver.as_str()) {
            return Err(format!("counts {} twice", a.approver));
        }
        if !req.approved_by.contains(&a.approver) {
            return Err(format!(
                "lists approver {}, who has no request.approved of it before",
                a.approver
            ));
        }
        seen.push(&a.approver);
    }
    let Some(required) = &d.approvals_required else {
        return Ok(());
    };
    if let Some(a) = d
        .approvals
        .iter()
        .find(|a| a.step == 0 || a.step as usize > required.len())
    {
        return Err(format!(
            "counts {} toward step {} of {}",
            a.approver,
            a.step,
            required.len()
        ));
    }
    for (i, &n) in required.iter().enumerate() {
        let got = d
            .approvals
            .iter()
            .filter(|a| a.step as usize == i + 1)
            .count();
        if got < n as usize {
            return Err(format!(
                "lists {got} approvals for step {}, which required {n}",
                i + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        let d =
            json!({"requester": "alice", "role": "prod-db", "approvals": [], "breakglass": true});
        ("alice", "certificate.issued", d)
    }

    /// The seq and message of the broken event, sequentially and in parallel alike.
    fn broken(events: &[(&str, &str, Value)]) -> (i64, String) {
        let (_dir, store) = chain(events);
        let one = store.read(verify);
        let many = verify_parallel(&store, 2, 0);
        match (one, many) {
            (
                Err(AuditError::Broken { seq, why }),
                Err(AuditError::Broken { seq: s2, why: w2 }),
            ) => {
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
}
