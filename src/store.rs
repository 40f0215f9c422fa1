//! SQLite storage: one file, WAL, `synchronous=FULL`, migrations keyed on `user_version`.
//!
//! The store is a synchronous rusqlite connection behind a std mutex (async callers go
//! through `spawn_blocking`). Every state change runs in one `BEGIN IMMEDIATE`
//! transaction together with its audit row; the caller answers only after COMMIT.
//! Row types and queries live in `store/requests.rs` and `store/tokens.rs`.

pub mod requests;
pub mod tokens;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

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
    /// A stored value does not parse; someone edited the database by hand.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
/// Entries are never edited or removed: a change is a new entry at the end.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// The database handle shared by the server and the operator commands.
pub struct Store {
    conn: Mutex<Connection>,
}

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
        let mut conn = Connection::open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction. `Ok(inner)` commits, whatever `inner`
    /// is (so a refusal and its audit row are kept); `Err` rolls everything back.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` in a read transaction (one consistent snapshot).
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        f(&tx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done transaction: rusqlite rolls
        // back on drop, so the connection is still consistent.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
