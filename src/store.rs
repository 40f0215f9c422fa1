//! SQLite storage: one file, WAL, `synchronous=FULL`, migrations keyed on `user_version`.
//!
//! The store is synchronous rusqlite (async callers go through `spawn_blocking`): one
//! writer connection behind a std mutex, with group commit, and pooled reader
//! connections. Every state change runs atomically together with its audit row (its own
//! SAVEPOINT inside a shared `BEGIN IMMEDIATE`); the caller answers only after COMMIT.
//! Row types and queries live in `store/requests.rs`, `store/certificates.rs` and
//! `store/tokens.rs`.

pub mod certificates;
pub mod requests;
pub mod tokens;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// Storage failures; callers branch only on "the database said no" vs "data is corrupt".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The file or folder could not be prepared.
    #[error("database file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The group commit this write belonged to failed; nothing of it was kept.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// A stored value does not parse; someone edited the database by hand.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
/// Entries are never edited or removed: a change is a new entry at the end.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE requests (
    id              TEXT PRIMARY KEY,
    role            TEXT NOT NULL,
    requester       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    ttl_seconds     INTEGER NOT NULL CHECK (ttl_seconds > 0),
    public_key      TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    principals      TEXT NOT NULL,
    role_digest     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                    ('pending','issued','denied','cancelled','expired','refused')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    decided_at      INTEGER,
    decided_by      TEXT,
    decision_code   TEXT,
    decision_note   TEXT
);
CREATE INDEX requests_by_requester ON requests (requester, status);
CREATE INDEX requests_by_status ON requests (status, expires_at);

CREATE TABLE approvals (
    request_id TEXT NOT NULL REFERENCES requests (id),
    approver   TEXT NOT NULL,
    at         INTEGER NOT NULL,
    comment    TEXT,
    PRIMARY KEY (request_id, approver)
);

CREATE TABLE certificates (
    serial       INTEGER PRIMARY KEY CHECK (serial > 0),
    request_id   TEXT NOT NULL UNIQUE REFERENCES requests (id),
    requester    TEXT NOT NULL,
    role         TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    valid_after  INTEGER NOT NULL,
    valid_before INTEGER NOT NULL,
    certificate  TEXT NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX certificates_by_requester ON certificates (requester, valid_before);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX tokens_by_user ON tokens (user);

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    request_id TEXT,
    serial     TEXT,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_by_request ON audit (request_id);
CREATE INDEX audit_by_serial ON audit (serial);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    r#"
ALTER TABLE certificates ADD COLUMN revoked_by TEXT;
ALTER TABLE certificates ADD COLUMN revoke_reason TEXT;
ALTER TABLE certificates ADD COLUMN revoked_seq INTEGER;
CREATE UNIQUE INDEX certificates_by_revoked_seq ON certificates (revoked_seq);
CREATE INDEX certificates_revoked ON certificates (revoked_at, valid_before);
"#,
    r#"
-- Serials are random: as the rowid they scattered every insert over the whole table.
-- Rows now append in issue order; serial is a unique secondary key.
CREATE TABLE certificates_v3 (
    id            INTEGER PRIMARY KEY,
    serial        INTEGER NOT NULL UNIQUE CHECK (serial > 0),
    request_id    TEXT NOT NULL UNIQUE REFERENCES requests (id),
    requester     TEXT NOT NULL,
    role          TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    valid_after   INTEGER NOT NULL,
    valid_before  INTEGER NOT NULL,
    certificate   TEXT NOT NULL,
    revoked_at    INTEGER,
    revoked_by    TEXT,
    revoke_reason TEXT,
    revoked_seq   INTEGER
);
INSERT INTO certificates_v3 (serial, request_id, requester, role, key_id, valid_after,
    valid_before, certificate, revoked_at, revoked_by, revoke_reason, revoked_seq)
    SELECT serial, request_id, requester, role, key_id, valid_after, valid_before,
    certificate, revoked_at, revoked_by, revoke_reason, revoked_seq
    FROM certificates ORDER BY rowid;
DROP TABLE certificates;
ALTER TABLE certificates_v3 RENAME TO certificates;
CREATE INDEX certificates_by_requester ON certificates (requester, valid_before);
CREATE INDEX certificates_revoked ON certificates (revoked_at, valid_before);
CREATE UNIQUE INDEX certificates_by_revoked_seq ON certificates (revoked_seq);
"#,
    r#"
-- The SoD check asks "does this user hold one of these roles?": one probe per role,
-- instead of reading every active certificate of the user.
CREATE INDEX certificates_held ON certificates (requester, role, valid_before)
    WHERE revoked_at IS NULL;
"#,
];

/// The database handle shared by the server and the operator commands: one writer
/// connection with group commit, and a small pool of reader connections.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Writer>,
    /// Writers queued for the writer lock; a batch leader waits for them to join.
    queued: AtomicUsize,
    readers: Mutex<Vec<Connection>>,
}

/// The writer connection and the state of the batch being built on it.
struct Writer {
    conn: Connection,
    /// A `BEGIN IMMEDIATE` is open and collecting members.
    open: bool,
    /// Members whose work is in the open batch.
    members: usize,
    /// Where the open batch's members wait for its COMMIT.
    slot: Arc<BatchSlot>,
}

/// Where the members of one batch learn its fate. Followers wait here, not on the
/// writer lock, so a COMMIT wakes them without making them queue for the connection.
#[derive(Default)]
struct BatchSlot {
    /// `None` until the leader's COMMIT returned; then its error, if any.
    result: Mutex<Option<Result<(), String>>>,
    done: Condvar,
}

impl BatchSlot {
    fn finish(&self, result: Result<(), String>) {
        *lock(&self.result) = Some(result);
        self.done.notify_all();
    }

    fn wait(&self) -> Result<(), StoreError> {
        let mut r = lock(&self.result);
        loop {
            match &*r {
                Some(Ok(())) => return Ok(()),
                Some(Err(why)) => return Err(StoreError::CommitFailed(why.clone())),
                None => r = self.done.wait(r).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

/// Most members in one batch; bounds the latency a batch adds to its first member.
const MAX_BATCH: usize = 256;
/// Readers kept open for reuse.
const MAX_IDLE_READERS: usize = 64;

impl Store {
    /// Opens (creating if needed, mode 0600) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let mut conn = connect(path)?;
        // The writer touches every table's newest pages; keep them (16 MiB) cached.
        conn.pragma_update(None, "cache_size", -16384)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        migrate(&mut conn)?;
        Ok(Store {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn,
                open: false,
                members: 0,
                slot: Arc::default(),
            }),
            queued: AtomicUsize::new(0),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` as one atomic unit of work and returns only once it is durable.
    ///
    /// Concurrent writers share one `BEGIN IMMEDIATE` transaction and one COMMIT (group
    /// commit: one fsync for many writers); each runs inside its own SAVEPOINT, so `Err`
    /// from `f` undoes exactly its own changes, while `Ok(inner)` keeps them whatever
    /// `inner` is (so a refusal and its audit row are kept). Every member of a batch
    /// returns after the COMMIT; if the COMMIT fails, every member gets the error and
    /// nothing of the batch is kept.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut w = self.lock_writer();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if !w.open {
            w.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(StoreError::from)?;
            w.open = true;
            w.members = 0;
            w.slot = Arc::default();
        }
        let slot = w.slot.clone();
        let out = match run_in_savepoint(&mut w.conn, f) {
            Ok(out) => out,
            Err(e) => {
                // After some errors (disk full, I/O) SQLite rolls back the whole
                // transaction by itself: then the members already in it lost their work
                // and must hear so, and this batch must never COMMIT.
                let aborted = w.conn.is_autocommit();
                if w.members == 0 || aborted {
                    let _ = w.conn.execute_batch("ROLLBACK");
                    w.open = false;
                    if w.members > 0 {
                        slot.finish(Err(
                            "the database rolled the batch back after an error".into()
                        ));
                    }
                }
                return Err(e);
            }
        };
        w.members += 1;
        if w.members == 1 {
            self.lead(w, &slot)?;
        } else {
            drop(w);
            slot.wait()?;
        }
        Ok(out)
    }

    /// The first member commits the batch, after letting queued writers join it.
    fn lead<'a>(
        &'a self,
        mut w: MutexGuard<'a, Writer>,
        slot: &Arc<BatchSlot>,
    ) -> Result<(), StoreError> {
        let mut rounds = 0;
        while self.queued.load(Ordering::SeqCst) > 0 && w.members < MAX_BATCH && rounds < 64 {
            drop(w);
            std::thread::yield_now();
            w = self.lock_writer();
            rounds += 1;
        }
        if !w.open || !Arc::ptr_eq(&w.slot, slot) {
            // A member's error made SQLite abort this batch; its fate is already decided.
            drop(w);
            return slot.wait();
        }
        let result = w.conn.execute_batch("COMMIT");
        w.open = false;
        if result.is_err() {
            let _ = w.conn.execute_batch("ROLLBACK");
        }
        drop(w);
        slot.finish(result.as_ref().map(|_| ()).map_err(ToString::to_string));
        result.map_err(StoreError::from)
    }

    /// Runs `f` in a read transaction (one consistent snapshot of committed data) on a
    /// reader connection, so reads never wait for writers.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let pooled = lock(&self.readers).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = {
            let tx = conn.transaction().map_err(StoreError::from)?;
            f(&tx)
        };
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }
}

/// A panic while holding a lock leaves no half-done work behind (savepoints and
/// transactions roll back on drop), so a poisoned lock is still safe to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run_in_savepoint<T, E: From<StoreError>>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let sp = conn.savepoint().map_err(StoreError::from)?;
    let out = f(&sp)?;
    sp.commit().map_err(StoreError::from)?;
    Ok(out)
}

/// A connection with the pragmas every connection needs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoint journals stay in memory instead of going to a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this countersign ({})",
            MIGRATIONS.len()
        )));
    }
    for sql in &MIGRATIONS[version..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests;
