//! Opening a database: migrating an old schema, and reading a current one without
//! taking the write lock.

use super::*;

#[test]
fn migrating_a_version_2_database_keeps_every_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &super::migrations::MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, \
             key_fingerprint, principals, role_digest, status, created_at, expires_at) \
             VALUES ('r-aaaaaaaaaaaa', 'prod-db', 'alice', 'x', 60, 'k', 'f', '[]', 'd', 'issued', \
             1, 2); \
             INSERT INTO certificates (serial, request_id, requester, role, key_id, valid_after, \
             valid_before, certificate, revoked_at, revoked_by, revoke_reason, revoked_seq) \
             VALUES (9223372036854775807, 'r-aaaaaaaaaaaa', 'alice', 'prod-db', 'kid', 1, 99, \
             'cert', 5, 'bob', 'why', 1);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let row: (i64, String, Option<String>, i64) = store
        .read(|c| {
            Ok::<_, StoreError>(c.sql().query_row(
                "SELECT serial, request_id, revoked_by, revoked_seq FROM certificates",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })
        .unwrap();
    assert_eq!(
        row,
        (i64::MAX, "r-aaaaaaaaaaaa".into(), Some("bob".into()), 1)
    );
    let version: i64 = store
        .read(|c| Ok::<_, StoreError>(c.sql().query_row("PRAGMA user_version", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(version as usize, super::migrations::MIGRATIONS.len());
    // The serial is still unique (the request exists, so only the serial can clash).
    store
        .write(|c| {
            c.sql()
                .execute(
                    "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, \
                 key_fingerprint, principals, role_digest, status, created_at, expires_at) \
                 VALUES ('r-aaaaaaaaaaab', 'prod-db', 'alice', 'x', 60, 'k', 'f', '[]', 'd', \
                 'issued', 1, 2)",
                    [],
                )
                .map_err(StoreError::from)
        })
        .unwrap();
    let dup = store.write(|c| {
        c.sql().execute(
            "INSERT INTO certificates (serial, request_id, requester, role, key_id, valid_after, \
             valid_before, certificate) \
             VALUES (9223372036854775807, 'r-aaaaaaaaaaab', 'a', 'r', 'k', 1, 2, 'c')",
            [],
        )
        .map_err(StoreError::from)
    });
    let err = dup.unwrap_err().to_string();
    assert!(
        matches!(
            store.read(|c| Ok::<_, StoreError>(c.sql().query_row(
                "SELECT count(*) FROM certificates",
                [],
                |r| r.get::<_, i64>(0)
            )?)),
            Ok(1)
        ),
        "{err}"
    );
}

/// Opening a database whose schema is current only reads it: operator commands (`audit
/// verify`, `token create`) work while another process holds the write lock.
#[test]
fn opening_a_current_database_takes_no_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path).unwrap());
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let store = Store::open(&path).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let version: i64 = store
        .read(|c| Ok::<_, StoreError>(c.sql().query_row("PRAGMA user_version", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(version as usize, super::migrations::MIGRATIONS.len());
    holder.execute_batch("ROLLBACK").unwrap();
}

/// A single-statement read runs outside a transaction on SQLite too: it sees what is
/// committed, a second statement is refused (it would read another snapshot), and it
/// leaves no read open behind it (a checkpoint can empty the whole log afterwards).
#[test]
fn a_single_statement_read_is_one_statement_and_leaves_nothing_open() {
    let (dir, store) = store();
    insert(&store, 1, Some("one")).unwrap();
    let count = |tx: &Tx<'_>| tx.one("SELECT count(*) FROM t", &[], |r| r.get::<i64>(0));
    assert_eq!(store.read_single(count).unwrap(), 1);
    let two = store.read_single(|tx| {
        count(tx)?;
        count(tx)
    });
    assert!(matches!(two, Err(StoreError::Nested)), "{two:?}");
    insert(&store, 2, Some("two")).unwrap();
    assert_eq!(store.read_single(count).unwrap(), 2);
    // Every pooled reader is idle: a TRUNCATE checkpoint finds no reader holding the log.
    let other = Connection::open(dir.path().join("db")).unwrap();
    let busy: i64 = other
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "a reader still held a snapshot");
}

/// A host event written before the index of host events existed (the previous schema)
/// is in that index after the upgrade: `audit verify` still finds and checks it.
#[test]
fn host_events_from_before_their_index_are_checked_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let detail = serde_json::json!({"serial": "7", "principals": ["a"], "key_fingerprint": "K",
        "token_id": "ht-x", "valid_before": "x"})
    .to_string();
    let fields = audit::Fields {
        seq: 1,
        at: "2026-12-06T00:00:00.000Z",
        actor: "host:ht-x",
        action: "host.enrolled",
        request_id: None,
        serial: Some("7"),
        detail: &detail,
    };
    let genesis = crate::audit::GENESIS;
    let seed = format!(
        "INSERT INTO audit (seq, at, actor, action, request_id, serial, detail, prev_hash, \
         hash) VALUES (1, '{}', '{}', '{}', NULL, '7', '{detail}', '{genesis}', '{}')",
        fields.at,
        fields.actor,
        fields.action,
        fields.hash(genesis)
    );
    let before = super::migrations::MIGRATIONS
        .iter()
        .position(|m| m.contains("CREATE INDEX audit_hosts"))
        .unwrap();
    crate::store::create_at_schema(&path, before, &seed).unwrap();
    let store = Store::open(&path).unwrap();
    match store.read(crate::audit::verify) {
        Err(crate::audit::AuditError::Broken { seq, why }) => {
            assert_eq!(seq, 1);
            assert!(why.contains("names join token ht-x"), "{why}");
        }
        other => panic!("expected the forged enrollment named, got {other:?}"),
    }
}

/// `requests.status` is checked by comparisons after the upgrade (SQLite's `IN` built a
/// small table at every write of a request): the rows are kept, the database is sound,
/// and the check refuses what it refused before, on the connection that migrated (the
/// writer's) and on any other.
#[test]
fn the_status_check_is_rewritten_without_in_and_refuses_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let before = super::migrations::MIGRATIONS
        .iter()
        .position(|m| m.contains("name = 'requests'"))
        .unwrap();
    let seed = "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, \
                key_fingerprint, principals, role_digest, status, created_at, expires_at) \
                VALUES ('r-aaaaaaaaaaaa', 'prod-db', 'alice', 'x', 60, 'k', 'f', '[]', 'd', \
                'pending', 1, 2)";
    crate::store::create_at_schema(&path, before, seed).unwrap();
    let store = Store::open(&path).unwrap();
    let set = |status: &str| {
        let sql = format!("UPDATE requests SET status = '{status}' WHERE id = 'r-aaaaaaaaaaaa'");
        store.write(|tx| tx.exec(&sql, &[]).map(|_| ()))
    };
    let refused = format!("{:?}", set("granted").unwrap_err());
    assert!(refused.contains("CHECK constraint failed"), "{refused}");
    set("issued").unwrap();
    let other = Connection::open(&path).unwrap();
    let (text, check): (String, String) = other
        .query_row(
            "SELECT (SELECT sql FROM sqlite_schema WHERE name = 'requests'), \
             (SELECT integrity_check FROM pragma_integrity_check)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(check, "ok");
    assert!(!text.contains("status IN"), "{text}");
    for status in [
        "pending",
        "issued",
        "denied",
        "cancelled",
        "expired",
        "refused",
    ] {
        assert!(text.contains(&format!("status = '{status}'")), "{text}");
    }
    let err = other
        .execute("UPDATE requests SET status = 'Issued'", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("CHECK constraint failed"), "{err}");
    let status: String = other
        .query_row("SELECT status FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "issued");
    // A database made now has the same text.
    let fresh = dir.path().join("fresh");
    drop(Store::open(&fresh).unwrap());
    let made: String = Connection::open(&fresh)
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'requests'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !made.contains("status IN") && made.contains("status = 'refused'"),
        "{made}"
    );
}
