//! SQLite storage: one file, WAL, `synchronous=FULL`, migrations keyed on `user_version`.
//!
//! The store is synchronous rusqlite: one write connection, with group commit on a
//! writer thread (`store/writer.rs`), and pooled reader connections. Every state change
//! runs atomically together with its audit row (its own SAVEPOINT inside a shared
//! `BEGIN IMMEDIATE`); the caller answers only after COMMIT.
//! Row types and queries live in `store/requests.rs`, `store/certificates.rs`,
//! `store/tokens.rs` and `store/users.rs`.

pub mod certificates;
pub mod meta;
#[doc(hidden)]
pub mod prefill;
pub mod requests;
pub mod tokens;
pub mod users;
mod writer;

use std::future::Future;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use writer::{Shared, Threads};

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
    /// The store has been closed.
    #[error("the database is closed")]
    Closed,
    /// A store call made from inside another store call's closure.
    #[error("a database call cannot run inside another")]
    Nested,
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
    r#"
-- Fewer index pages per issued certificate. certificates_held (requester first) serves
-- every per-user query; the revocation indexes hold revoked rows only, and audit rows
-- without a serial stay out of audit_by_serial.
DROP INDEX certificates_by_requester;
DROP INDEX certificates_revoked;
CREATE INDEX certificates_revoked ON certificates (revoked_at, valid_before)
    WHERE revoked_at IS NOT NULL;
DROP INDEX certificates_by_revoked_seq;
CREATE UNIQUE INDEX certificates_by_revoked_seq ON certificates (revoked_seq)
    WHERE revoked_seq IS NOT NULL;
DROP INDEX audit_by_serial;
CREATE INDEX audit_by_serial ON audit (serial) WHERE serial IS NOT NULL;
"#,
    r#"
-- requests_by_requester put every request of a user in one random place of the index
-- (a random page per create and per decision); the SoD check needs pending ones only,
-- which this small index holds. Lists page by status and age straight from an index
-- instead of sorting the table; overdue pending requests come from the pending section.
DROP INDEX requests_by_requester;
CREATE INDEX requests_pending ON requests (requester, role) WHERE status = 'pending';
DROP INDEX requests_by_status;
CREATE INDEX requests_by_status ON requests (status, created_at DESC, id);
CREATE INDEX requests_by_age ON requests (created_at DESC, id);
"#,
    r#"
-- A non-admin's list (own requests, and those of the roles they may approve) reads each
-- source newest first from its own index, however large the table; only inserts touch
-- these (requester, role and created_at never change).
CREATE INDEX requests_by_requester ON requests (requester, created_at DESC, id);
CREATE INDEX requests_by_role ON requests (role, created_at DESC, id);
"#,
    r#"
-- The state binding (store/meta.rs): which database this is, which CA keys it belongs
-- to (with the periods they were in use, so that a later key rotation adds a row), and
-- the floor under the KRL version (raised when an operator accepts a rolled-back
-- database, so that the KRL version never goes back).
CREATE TABLE meta (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    database_id TEXT NOT NULL,
    krl_floor   INTEGER NOT NULL DEFAULT 0 CHECK (krl_floor >= 0),
    -- The policy last recorded as policy.loaded (canonical JSON), to tell what a start
    -- or a reload changed.
    policy      TEXT
);
INSERT INTO meta (id, database_id) VALUES (1, lower(hex(randomblob(16))));
CREATE TABLE ca_keys (
    fingerprint TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    since       INTEGER NOT NULL,
    until       INTEGER
);
CREATE UNIQUE INDEX ca_keys_current ON ca_keys (until IS NULL) WHERE until IS NULL;
-- Revocations an older copy of the database did not have when an operator accepted it
-- (serve --accept-rollback), carried over from the high-water mark (certificates the
-- copy has no row of, or has not revoked): listed in the KRL until their end.
CREATE TABLE carried_revocations (
    serial       INTEGER PRIMARY KEY CHECK (serial > 0),
    valid_before INTEGER NOT NULL,
    carried_at   INTEGER NOT NULL
);
"#,
    r#"
-- Offboarding disables a user (refused every credential until enabled again), and marks
-- their tokens revoked for good: kept, so that a revoked token is answered "disabled"
-- rather than "unknown", and never live again (enabling does not revive them).
CREATE TABLE disabled_users (
    user        TEXT PRIMARY KEY,
    disabled_at INTEGER NOT NULL,
    disabled_by TEXT NOT NULL,
    reason      TEXT NOT NULL
) WITHOUT ROWID;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
"#,
];

/// The database handle shared by the server and the operator commands: one write
/// connection with group commit on a writer thread (`store/writer.rs`), and a pool of
/// reader connections.
pub struct Store {
    path: PathBuf,
    /// Tells this store's writer thread apart from other stores' in the same process.
    id: u64,
    writer: Arc<Shared>,
    /// The writer thread, where operations queue; started on first use.
    threads: OnceLock<Option<Threads>>,
    readers: Mutex<Vec<Connection>>,
}

/// Readers kept open for reuse.
const MAX_IDLE_READERS: usize = 64;

impl Store {
    /// The schema version of the database at `path` (0: empty, never migrated), read
    /// without migrating or writing anything.
    pub fn peek_schema_version(path: &Path) -> Result<i64, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// The CA key the database at `path` records as current, read without migrating or
    /// writing anything (for a message about a missing key); `None` if it records none.
    pub fn peek_current_ca(path: &Path) -> Result<Option<meta::CaKey>, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 8 {
            return Ok(None);
        }
        meta::current_ca(&conn)
    }

    /// Opens and migrates the database at `path`, which must exist: commands that must
    /// not create one half of the state next to the other (see `state.rs`) use this.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Store::open(path),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

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
            id: writer::next_store_id(),
            writer: Arc::new(Shared::new(conn)),
            threads: OnceLock::new(),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs the operation `op` on the writer thread, in a batch with whatever else is
    /// queued, and resolves once the batch is durable (group commit: one fsync for many
    /// operations). Every `Store::write` that `op` makes runs atomically in its own
    /// SAVEPOINT; `op`'s result is delivered only after the COMMIT, and if the COMMIT
    /// fails an `op` that wrote gets [`StoreError::CommitFailed`] instead.
    pub fn submit<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static {
        let (reply, result) = tokio::sync::oneshot::channel();
        let sent = match self
            .threads
            .get_or_init(|| writer::start(self.writer.clone(), self.id))
        {
            Some(threads) => threads.jobs.send(writer::job(op, reply)).is_ok(),
            None => false,
        };
        async move {
            if !sent {
                return Err(StoreError::CommitFailed(
                    "the writer thread is not running".into(),
                ));
            }
            result
                .await
                .map_err(|_| StoreError::CommitFailed("the write was abandoned".into()))?
        }
    }

    /// Runs `f` as one atomic unit of work and returns only once it is durable.
    ///
    /// Inside an operation given to [`Store::submit`] it runs in its own SAVEPOINT of
    /// the batch (durable when the batch commits, before the operation's result leaves);
    /// anywhere else it runs alone in its own transaction and returns after its COMMIT.
    /// `Err` from `f` undoes exactly its own changes, while `Ok(inner)` keeps them
    /// whatever `inner` is (so a refusal and its audit row are kept).
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        if writer::batch_is_open_here(self.id) {
            writer::write_in_batch(f)
        } else {
            self.writer.write_alone(f)
        }
    }

    /// Runs `f` in a read transaction (one consistent snapshot of committed data) on a
    /// reader connection, so reads never wait for writers. Inside an operation given to
    /// [`Store::submit`] it reads the batch's connection instead, so the operation sees
    /// its own writes.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        if writer::batch_is_open_here(self.id) {
            return writer::read_in_batch(f);
        }
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        // BEGIN/ROLLBACK from the statement cache: a read costs two cached steps, not
        // two parses. A connection whose transaction did not end is not reused.
        exec(&conn, "BEGIN")?;
        let out = f(&conn);
        if exec(&conn, "ROLLBACK").is_ok() {
            let mut idle = lock(&self.readers);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }

    /// Copies the whole database, as one consistent snapshot of what is committed, to a
    /// new file at `dest` (SQLite's online backup: writers go on meanwhile), and makes
    /// the copy durable. `dest` must not exist.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: dest.to_owned(),
            source,
        };
        // Created here, private and exclusive, before SQLite writes into it.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(io)?;
        let source = connect(&self.path)?;
        let mut copy = Connection::open(dest)?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
            // All pages in one step: one read transaction, so one snapshot.
            backup.step(-1)?;
        }
        // The copy is a single file (no -wal) that restores by copying it in place.
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        drop(copy);
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        Ok(())
    }

    /// Changes whenever a write transaction has committed (after the COMMIT), so a
    /// waiter can read again instead of polling.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.subscribe_commits()
    }
}

impl Drop for Store {
    /// Stops the writer thread and closes the write connection here and now, so that a
    /// clean exit leaves no WAL behind (the last connection to close checkpoints and
    /// removes it). On the writer thread itself (its last operation, or a result, held
    /// the last handle) the thread cannot wait for itself: it winds down on its own.
    fn drop(&mut self) {
        let threads = self.threads.take().flatten();
        if writer::batch_is_open_here(self.id) || threads.as_ref().is_some_and(Threads::runs_here) {
            return;
        }
        if let Some(threads) = threads {
            threads.stop();
        }
        self.writer.close();
    }
}

/// A panic while holding a lock leaves no half-done work behind (savepoints and
/// transactions roll back on drop), so a poisoned lock is still safe to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one parameterless statement through the connection's statement cache.
fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// How long a connection waits for another process's write lock (e.g. a CLI command).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with the pragmas every connection needs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoint journals stay in memory instead of going to a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Applies the migrations not applied yet. A database already current is only read:
/// opening it (for `audit verify`, `token create`, ...) takes no write lock, so it works
/// while another process holds one or the disk is full.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let schema_version = |c: &Connection| -> Result<usize, StoreError> {
        let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "database schema version {version} is newer than this countersign ({})",
                MIGRATIONS.len()
            )));
        }
        Ok(version)
    };
    if schema_version(conn)? == MIGRATIONS.len() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    // Read again under the lock: another process may have migrated meanwhile.
    let version = schema_version(&tx)?;
    for sql in &MIGRATIONS[version..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}

/// A database created at schema `version` (the first `version` migrations only), as an
/// older countersign left it: for tests of upgrades.
#[cfg(test)]
pub(crate) fn create_at_schema(path: &Path, version: usize) -> Result<Connection, StoreError> {
    let conn = connect(path)?;
    for sql in &MIGRATIONS[..version] {
        conn.execute_batch(sql)?;
    }
    conn.pragma_update(None, "user_version", version as i64)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
