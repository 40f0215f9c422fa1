//! Storage: the only module that knows how data is kept. Today that is SQLite: one
//! file, WAL, `synchronous=FULL`, migrations keyed on `user_version`.
//!
//! The rest of the crate reads and writes only through [`Store::read`] and
//! [`Store::write`], whose closures get a [`Tx`] to hand to the query functions of the
//! modules below (`requests`, `certificates`, `tokens`, `users`, `meta`, `audit`). No
//! SQL and no `rusqlite` type lives outside `store/`.
//!
//! # The isolation contract
//!
//! What every operation relies on, and so what any backend must give:
//!
//! 1. **Atomic writes.** A [`Store::write`] closure's changes are kept whole or not at
//!    all: `Err` undoes them, `Ok` keeps them (a refusal and its audit row alike), and
//!    the caller answers only once they are durable.
//! 2. **Snapshot reads.** A [`Store::read`] closure sees one consistent state of what
//!    was committed; inside an operation given to [`Store::submit`] it sees that
//!    operation's own writes too.
//! 3. **Serialised writes over what they read.** These guarantees read and then
//!    write, and hold only if no other write comes between:
//!    - *the separation-of-duties re-check at signing* (`service/issue.rs`): read the
//!      roles the requester holds or has asked for (`requests::holdings`), then insert
//!      the certificate;
//!    - *the audit chain append* (`audit::append`): read the head (seq, hash), then
//!      insert the next event;
//!    - *a request is decided once*: read the request and its approvals, then add an
//!      approval and perhaps sign (`requests::decide` stays conditional on `pending`);
//!    - *pending requests per user*: count them (`requests::pending_count`), then insert
//!      one;
//!    - *the KRL version*: read the newest revocation number, then write the next
//!      (`certificates::revoke`, `certificates::krl_version`);
//!    - *an idempotency key creates one request*: look the key up, then create and
//!      remember (`idempotency`); the primary key (user, key) makes a racing second
//!      insert fail rather than create twice.
//!
//!    SQLite gives this by having one writer: every write runs on the one write
//!    connection (group commit on a writer thread, `store/writer.rs`, each write in its
//!    own SAVEPOINT inside one `BEGIN IMMEDIATE`). A backend with concurrent writers
//!    must take the same order explicitly: a per-requester lock before the holdings or
//!    the pending count are read (e.g. `SELECT ... FOR UPDATE` on a row per user, or an
//!    advisory lock keyed on the user), a lock on the request row before it is decided,
//!    and a lock on the chain head and on the revocation counter before they are read
//!    (one-row tables read `FOR UPDATE`), or run at `SERIALIZABLE` and retry.
//!    docs/ARCHITECTURE.md has the table. The races in `tests/it/concurrency.rs` are
//!    written once and run on every backend.
//! 4. **Unique serials** are checked (`certificates::serial_taken`) and enforced by a
//!    unique index; a backend must refuse a duplicate insert, never overwrite.
//!
//! Row types and queries live in `store/requests.rs`, `store/certificates.rs`,
//! `store/tokens.rs`, `store/users.rs`, `store/meta.rs` and `store/audit.rs`.

pub mod audit;
pub mod certificates;
pub mod idempotency;
pub mod meta;
mod migrations;
#[doc(hidden)]
pub mod prefill;
pub mod requests;
pub mod tokens;
mod tx;
pub mod users;
mod writer;

use std::future::Future;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::Connection;

#[cfg(test)]
pub(crate) use migrations::create_at_schema;
use migrations::migrate;
pub use tx::Tx;
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
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
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
        meta::current_ca(&Tx::new(&conn))
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
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let f = |conn: &Connection| f(&Tx::new(conn));
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
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if writer::batch_is_open_here(self.id) {
            return writer::read_in_batch(|conn| f(&Tx::new(conn)));
        }
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        // BEGIN/ROLLBACK from the statement cache: a read costs two cached steps, not
        // two parses. A connection whose transaction did not end is not reused.
        exec(&conn, "BEGIN")?;
        let out = f(&Tx::new(&conn));
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

#[cfg(test)]
mod tests;
