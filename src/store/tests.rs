//! Group commit: many writers, one COMMIT, each writer's work all-or-nothing.

use std::sync::Arc;

use super::*;

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|c| {
            c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                .map_err(StoreError::from)
        })
        .unwrap();
    (dir, Arc::new(store))
}

fn count(store: &Store) -> i64 {
    store
        .read(|c| Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn concurrent_writers_all_commit_and_failures_undo_only_their_own_work() {
    let (_dir, store) = store();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let k = t * 1000 + i;
                    let result = store.write(|c| {
                        c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
                        if i % 10 == 0 {
                            // A failing member: its insert must vanish, nobody else's.
                            c.execute("INSERT INTO t (k, v) VALUES (?1, NULL)", [k + 500])?;
                        }
                        Ok::<_, StoreError>(())
                    });
                    assert_eq!(result.is_err(), i % 10 == 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&store), 8 * 180);
    let failed_rows: i64 = store
        .read(|c| {
            Ok::<_, StoreError>(c.query_row(
                "SELECT count(*) FROM t WHERE k % 1000 % 10 = 0",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(failed_rows, 0);
}

#[test]
fn a_write_is_visible_to_readers_when_it_returns() {
    let (_dir, store) = store();
    for k in 0..50 {
        store
            .write(|c| {
                c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])
                    .map_err(StoreError::from)
            })
            .unwrap();
        assert_eq!(count(&store), k + 1);
    }
}

#[test]
fn a_failed_write_leaves_no_transaction_open() {
    let (dir, store) = store();
    let r = store.write(|c| {
        c.execute("INSERT INTO t (k, v) VALUES (1, NULL)", [])
            .map_err(StoreError::from)
    });
    assert!(r.is_err());
    // Another connection (another process, e.g. `countersign token create`) can write.
    let other = Connection::open(dir.path().join("db")).unwrap();
    other.busy_timeout(Duration::from_millis(200)).unwrap();
    other
        .execute("INSERT INTO t (k, v) VALUES (2, 'y')", [])
        .unwrap();
    assert_eq!(count(&store), 1);
}

#[test]
fn when_the_disk_is_full_every_acknowledged_write_is_kept_and_no_other() {
    let (_dir, store) = store();
    // A database that cannot grow past its current size plus a little: inserts start
    // failing with SQLITE_FULL part-way, inside batches shared by other writers.
    store
        .write(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.query_row(
                &format!("PRAGMA max_page_count = {}", pages + 8),
                [],
                |_| Ok(()),
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..150 {
                    let k = t * 1000 + i;
                    let big = "x".repeat(2000);
                    let ok = store
                        .write(|c| {
                            c.execute(
                                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                                rusqlite::params![k, big],
                            )
                            .map_err(StoreError::from)
                        })
                        .is_ok();
                    if ok {
                        acked.push(k);
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked: Vec<i64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    let stored: Vec<i64> = store
        .read(|c| {
            let mut st = c.prepare("SELECT k FROM t ORDER BY k")?;
            let rows = st
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok::<_, StoreError>(rows)
        })
        .unwrap();
    assert!(
        acked.len() < 900,
        "the disk never filled up; the test proves nothing"
    );
    assert_eq!(
        stored, acked,
        "acknowledged writes and stored rows must be the same set"
    );
}

#[test]
fn migrating_a_version_2_database_keeps_every_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, key_fingerprint, principals, role_digest, status, created_at, expires_at) \
             VALUES ('r-aaaaaaaaaaaa', 'prod-db', 'alice', 'x', 60, 'k', 'f', '[]', 'd', 'issued', 1, 2); \
             INSERT INTO certificates (serial, request_id, requester, role, key_id, valid_after, valid_before, certificate, revoked_at, revoked_by, revoke_reason, revoked_seq) \
             VALUES (9223372036854775807, 'r-aaaaaaaaaaaa', 'alice', 'prod-db', 'kid', 1, 99, 'cert', 5, 'bob', 'why', 1);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let row: (i64, String, Option<String>, i64) = store
        .read(|c| {
            Ok::<_, StoreError>(c.query_row(
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
        .read(|c| Ok::<_, StoreError>(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(version as usize, MIGRATIONS.len());
    // The serial is still unique (the request exists, so only the serial can clash).
    store
        .write(|c| {
            c.execute(
                "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, key_fingerprint, principals, role_digest, status, created_at, expires_at) \
                 VALUES ('r-aaaaaaaaaaab', 'prod-db', 'alice', 'x', 60, 'k', 'f', '[]', 'd', 'issued', 1, 2)",
                [],
            )
            .map_err(StoreError::from)
        })
        .unwrap();
    let dup = store.write(|c| {
        c.execute(
            "INSERT INTO certificates (serial, request_id, requester, role, key_id, valid_after, valid_before, certificate) \
             VALUES (9223372036854775807, 'r-aaaaaaaaaaab', 'a', 'r', 'k', 1, 2, 'c')",
            [],
        )
        .map_err(StoreError::from)
    });
    let err = dup.unwrap_err().to_string();
    assert!(
        matches!(
            store.read(|c| Ok::<_, StoreError>(c.query_row(
                "SELECT count(*) FROM certificates",
                [],
                |r| r.get::<_, i64>(0)
            )?)),
            Ok(1)
        ),
        "{err}"
    );
}
