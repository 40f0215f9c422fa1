//! Unit tests of the chain: its canonical form, and verification (sequential and
//! parallel) catching edits.

use super::verify::verify_parallel;
use super::*;
use crate::store::Store;

/// Appends an event of `action` about one request, as `actor`.
fn add(
    tx: &Tx<'_>,
    actor: &str,
    action: &str,
    serial: Option<u64>,
    detail: serde_json::Value,
) -> Result<i64, StoreError> {
    append_forged(tx, actor, action, Some("r-aaaaaaaaaaaa"), serial, &detail)
}

#[test]
fn canonical_form_is_serde_jsons_compact_array() {
    let tricky =
        "quote \" backslash \\ newline \n tab \t nul \u{0} bidi \u{202e} emoji 🙂 </script>";
    for (request_id, serial) in [(Some("r-aaaaaaaaaaaa"), Some("881")), (None, None)] {
        let f = Fields {
            seq: 42,
            at: "2026-11-28T00:00:00.000Z",
            actor: tricky,
            action: "a.b",
            request_id,
            serial,
            detail: r#"{"k":"v\"x"}"#,
        };
        let mut buf = Vec::new();
        f.canonical(&mut buf);
        let expected = serde_json::json!([
            f.seq,
            f.at,
            f.actor,
            f.action,
            f.request_id,
            f.serial,
            f.detail
        ])
        .to_string();
        assert_eq!(String::from_utf8(buf).unwrap(), expected);
    }
}

fn chain_of(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|tx| {
            for _ in 0..n {
                add(
                    tx,
                    "alice",
                    "request.created",
                    None,
                    serde_json::json!({"role": "prod-db"}),
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    (dir, store)
}

fn tamper(store: &Store, sql: &str) {
    store
        .write(|tx| {
            tx.tamper(&format!(
                "DROP TRIGGER IF EXISTS audit_no_update; \
                 DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
            ))
        })
        .unwrap();
}

fn broken_at(r: Result<Verified, AuditError>) -> i64 {
    match r {
        Err(AuditError::Broken { seq, .. }) => seq,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn parallel_verify_agrees_with_the_sequential_one() {
    let (_dir, store) = chain_of(100);
    let seq = store.read(verify).unwrap();
    for threads in [2, 3, 4] {
        assert_eq!(verify_parallel(&store, threads, 0).unwrap(), seq);
    }
    // An edit inside a range, at a range's first event, and a removed event.
    tamper(&store, "UPDATE audit SET actor = 'x' WHERE seq = 60;");
    assert_eq!(broken_at(verify_parallel(&store, 3, 0)), 60);
    tamper(&store, "UPDATE audit SET actor = 'y' WHERE seq = 35;");
    assert_eq!(
        broken_at(verify_parallel(&store, 3, 0)),
        35,
        "range 2 starts at 35: its first event"
    );
    tamper(&store, "DELETE FROM audit WHERE seq = 10;");
    assert_eq!(
        broken_at(verify_parallel(&store, 3, 0)),
        10,
        "the earliest break wins"
    );
}

#[test]
fn parallel_verify_catches_a_rewritten_chain_at_a_range_boundary() {
    let (_dir, store) = chain_of(90);
    // Rewrite event 32 (the first of range 2 when 3 threads split 90 events as
    // 1-31, 32-62, 63-90) and every later one consistently: each range on its own
    // verifies, only the link between ranges 1 and 2 breaks.
    let filter = Filter {
        after_seq: 31,
        limit: u32::MAX,
        ..Filter::default()
    };
    let rows = store.read(|tx| stored::query(tx, &filter)).unwrap();
    let mut prev = "f".repeat(64);
    let mut sql = String::new();
    for row in rows {
        let seq = row.seq;
        let h = Fields {
            seq,
            at: &row.at,
            actor: &row.actor,
            action: &row.action,
            request_id: row.request_id.as_deref(),
            serial: row.serial.as_deref(),
            detail: &row.detail,
        }
        .hash(&prev);
        sql.push_str(&format!(
            "UPDATE audit SET prev_hash = '{prev}', hash = '{h}' WHERE seq = {seq};"
        ));
        prev = h;
    }
    tamper(&store, &sql);
    assert_eq!(broken_at(store.read(verify)), 32);
    assert_eq!(broken_at(verify_parallel(&store, 3, 0)), 32);
}

#[test]
fn chain_verifies_and_an_edited_event_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|tx| {
            let role = serde_json::json!({"role": "prod-db"});
            add(tx, "alice", "request.created", None, role.clone())?;
            add(tx, "bob", "request.approved", None, role)?;
            let issued = serde_json::json!({
                "requester": "alice", "approvals": [{"approver": "bob", "step": 1}],
            });
            add(tx, "bob", "certificate.issued", Some(881), issued)?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let v = store.read(verify).unwrap();
    assert_eq!(v.events, 3);

    let err = store.write(|tx| tx.tamper("UPDATE audit SET actor = 'mallory' WHERE seq = 2"));
    assert!(err.is_err(), "the trigger must refuse updates");

    store
        .write(|tx| {
            tx.tamper(
                "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 2;",
            )
        })
        .unwrap();
    match store.read(verify) {
        Err(AuditError::Broken { seq: 2, .. }) => {}
        other => panic!("expected event 2 to be named, got {other:?}"),
    }
}
