//! Storage: the only module that knows how data is kept. Two backends: SQLite (one
//! file, WAL, `synchronous=FULL`, migrations keyed on `user_version`; `store/lite.rs`),
//! the embedded default, and PostgreSQL (`store/pg.rs`), for several replicas.
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
//!    own SAVEPOINT inside one `BEGIN IMMEDIATE`). PostgreSQL, written to by several
//!    replicas at once, gives it with one transaction-scoped advisory lock that every
//!    write transaction takes first (`store/pg.rs`): writes from all replicas run one
//!    at a time, in lock order, each seeing every write committed before it. Every
//!    state change appends to the one audit chain, which needs that order anyway.
//!    docs/ARCHITECTURE.md has the table. The races in `tests/it/concurrency.rs` are
//!    written once and run on every backend.
//! 4. **Unique serials** are checked (`certificates::serial_taken`) and enforced by a
//!    unique index; a backend must refuse a duplicate insert, never overwrite.
//!
//! Row types and queries live in `store/requests.rs`, `store/certificates.rs`,
//! `store/tokens.rs`, `store/users.rs`, `store/meta.rs` and `store/audit.rs`.

mod after;
mod ahead;
pub mod audit;
pub mod breakglass;
pub mod certificates;
pub mod copy;
mod credentials;
pub mod device;
pub mod hosts;
pub mod idempotency;
pub mod identities;
mod in_force;
pub mod keys;
mod lite;
pub mod meta;
mod migrations;
pub mod notify;
mod pg;
#[doc(hidden)]
pub mod prefill;
pub mod recheck;
pub mod requests;
pub mod sessions;
mod sql;
pub mod stats;
pub mod tokens;
mod tx;
pub mod users;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

pub use ahead::Touch;
#[cfg(test)]
pub(crate) use migrations::create_at_schema;
pub use pg::PgOptions;
pub use tx::Tx;

/// Storage failures; callers branch only on "the database said no" vs "data is corrupt".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused a statement.
    #[error("database error")]
    Postgres(#[source] tokio_postgres::Error),
    /// The database cannot be reached (PostgreSQL down or restarting, the pool
    /// exhausted, a COMMIT whose outcome is unknown): retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The `[storage]` settings cannot be used.
    #[error("{0}")]
    Config(String),
    /// The operation exists only on the other backend.
    #[error("{0}")]
    Unsupported(&'static str),
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
    /// Another replica recorded a newer policy than this one decides by (`in_force.rs`).
    #[error("{IN_FORCE_MESSAGE}")]
    PolicyChanged,
}

/// What a replica on an older policy answers (`GET /v1/ready` and every write).
pub const IN_FORCE_MESSAGE: &str = "this server runs another policy than the newest the \
    database records: put the configuration file the other replicas run in place here, \
    then reload (countersign reload)";

/// The database handle shared by the server and the operator commands.
pub struct Store {
    backend: Backend,
}

/// Counts of the store's own work, for the metrics ([`Store::stats`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Write batches this process's writer thread ran since the store opened (group
    /// commit; either backend).
    pub batches: u64,
    /// Operations run in those batches.
    pub operations: u64,
    /// Time the writer thread spent running them.
    pub writer_busy: std::time::Duration,
    /// PostgreSQL: connections open, idle, and the most the pool opens.
    pub pool: Option<(usize, usize, usize)>,
    /// PostgreSQL: operations' first reads sent ahead with their batch's BEGIN
    /// (`store/ahead.rs`) that answered them, that were stale (a write earlier in the
    /// batch touched what they read) and that went unused.
    pub reads_ahead: [u64; 3],
    /// PostgreSQL: token lookups answered from what this replica remembers, and from
    /// the database (`store/credentials.rs`).
    pub tokens_remembered: [u64; 2],
    /// SQLite: WAL checkpoints beside the writer, by outcome: copied (the checkpoint
    /// thread's PASSIVE passes), restarted (the writer's RESTARTs: the WAL starts again),
    /// gave up (RESTARTs that stopped waiting for readers), on the writer (its PASSIVE
    /// ones after a COMMIT, past 24,000 frames), failed (`store/writer/checkpoint.rs`).
    pub wal_checkpoints: [u64; 5],
}

enum Backend {
    Lite(lite::Lite),
    Pg(Box<pg::PgStore>),
}

/// Drops the answer of a write queued with [`Store::write_later`], logging the one
/// failure it can show at once: the writer thread was not running, so it never queued.
/// (Its own failure `f` logs; a failed COMMIT the batch's members hear.)
fn not_queued<T>(answer: impl Future<Output = Result<T, StoreError>>) {
    let answer = std::pin::pin!(answer);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if let std::task::Poll::Ready(Err(e)) = answer.poll(&mut cx) {
        tracing::warn!(error = %e, "a write left for later was not queued");
    }
}

impl Store {
    /// The schema version of the SQLite database at `path` (0: empty, never migrated),
    /// read without migrating or writing anything.
    pub fn peek_schema_version(path: &Path) -> Result<i64, StoreError> {
        lite::Lite::peek_schema_version(path)
    }

    /// The CA key the SQLite database at `path` records as current, read without
    /// migrating or writing anything (for a message about a missing key); `None` if it
    /// records none.
    pub fn peek_current_ca(path: &Path) -> Result<Option<meta::CaKey>, StoreError> {
        lite::Lite::peek_current_ca(path)
    }

    /// Opens and migrates the SQLite database at `path`, which must exist: commands that
    /// must not create one half of the state next to the other (see `state.rs`) use this.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Lite(lite::Lite::open_existing(path)?),
        })
    }

    /// Opens (creating if needed, mode 0600) and migrates the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Lite(lite::Lite::open(path)?),
        })
    }

    /// Connects to PostgreSQL and migrates the schema (under an advisory lock, so that
    /// replicas starting together migrate once).
    pub fn open_postgres(options: &PgOptions) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Pg(Box::new(pg::PgStore::open(options)?)),
        })
    }

    /// The SQLite store, for tests of its writer.
    #[cfg(test)]
    fn lite(&self) -> &lite::Lite {
        match &self.backend {
            Backend::Lite(lite) => lite,
            Backend::Pg(_) => panic!("a SQLite store"),
        }
    }

    /// The CA key the PostgreSQL database records as current, read without migrating or
    /// writing anything; `None` if it has no schema yet or records none.
    pub fn peek_postgres_ca(options: &PgOptions) -> Result<Option<meta::CaKey>, StoreError> {
        pg::PgStore::peek(options, meta::current_ca)
    }

    /// The database server's clock now, in unix milliseconds (PostgreSQL's
    /// `clock_timestamp()`); `None` on SQLite, which has no clock of its own.
    pub fn database_now_ms(&self) -> Result<Option<i64>, StoreError> {
        match &self.backend {
            Backend::Lite(_) => Ok(None),
            Backend::Pg(pg) => pg
                .read(|conn| {
                    Tx::postgres(conn).one(
                        "SELECT CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) \
                         AS BIGINT)",
                        &[],
                        |r| r.get(0),
                    )
                })
                .map(Some),
        }
    }

    /// Counts for the metrics: the writer thread's group commit, PostgreSQL's connection
    /// pool.
    pub fn stats(&self) -> Stats {
        let (work, pool) = match &self.backend {
            Backend::Lite(lite) => (lite.writer_work(), None),
            Backend::Pg(pg) => (pg.writer_work(), Some(pg.pool_usage())),
        };
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        Stats {
            batches: work.map_or(0, |w| load(&w.batches)),
            operations: work.map_or(0, |w| load(&w.operations)),
            writer_busy: std::time::Duration::from_nanos(work.map_or(0, |w| load(&w.busy_ns))),
            pool,
            reads_ahead: work.map_or([0; 3], |w| w.ahead.each_ref().map(load)),
            tokens_remembered: self.credentials().map_or([0; 2], |c| c.counts()),
            wal_checkpoints: match &self.backend {
                Backend::Lite(lite) => lite.checkpoints(),
                Backend::Pg(_) => [0; 5],
            },
        }
    }

    /// PostgreSQL: the token rows this replica remembers (`store/credentials.rs`).
    fn credentials(&self) -> Option<&credentials::Credentials> {
        match &self.backend {
            Backend::Lite(_) => None,
            Backend::Pg(pg) => Some(pg.credentials()),
        }
    }

    /// Whether this store is on PostgreSQL (shared by replicas) rather than SQLite.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Pg(_))
    }

    /// Runs the operation `op` and resolves once every write it made is durable.
    ///
    /// On SQLite it runs on the writer thread, in a batch with whatever else is queued
    /// (group commit: one fsync for many operations); every `Store::write` that `op`
    /// makes runs atomically in its own SAVEPOINT, `op`'s result is delivered only after
    /// the COMMIT, and if the COMMIT fails an `op` that wrote gets
    /// [`StoreError::CommitFailed`] instead. PostgreSQL batches the same way, on a writer
    /// thread of its own per replica (`store/pg/batch.rs`).
    pub fn submit<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> T + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>> {
        self.submit_planned(|| (), move |()| op())
    }

    /// Runs `f` as one atomic unit of work and returns only once it is durable.
    ///
    /// On SQLite, inside an operation given to [`Store::submit`] it runs in its own
    /// SAVEPOINT of the batch (durable when the batch commits, before the operation's
    /// result leaves); anywhere else, and always on PostgreSQL, it runs alone in its own
    /// transaction and returns after its COMMIT. `Err` from `f` undoes exactly its own
    /// changes, while `Ok(inner)` keeps them whatever `inner` is (so a refusal and its
    /// audit row are kept).
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Lite(lite) => lite.write(f),
            Backend::Pg(pg) => pg.write(|conn| f(&Tx::postgres_writing(conn))),
        }
    }

    /// Queues `f` as a write of the writer thread's next batch (group commit) and returns
    /// at once, without waiting for it to run or commit: for a best-effort record that
    /// nobody waits for (a token's last use), which must not cost its caller a commit of
    /// its own nor, on PostgreSQL, a turn at the write lock. `f` runs like any write of a
    /// batch (undone alone if it fails); its outcome reaches nobody, so `f` logs its own
    /// failure. Lost if the process ends before the batch commits.
    pub fn write_later(&self, f: impl FnOnce(&Tx<'_>) -> Result<(), StoreError> + Send + 'static) {
        match &self.backend {
            Backend::Lite(lite) => lite.write_later(f),
            Backend::Pg(pg) => pg.write_later(move |conn| f(&Tx::postgres_writing(conn))),
        }
    }

    /// Runs `f` in a read transaction: one consistent snapshot of committed data (on
    /// SQLite inside an operation given to [`Store::submit`], the batch's connection, so
    /// the operation sees its own writes).
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Lite(lite) => lite.read(f),
            Backend::Pg(pg) => pg.read(|conn| f(&Tx::postgres(conn))),
        }
    }

    /// [`Store::read`] for a scan of a large part of the database (`audit verify`): on
    /// SQLite a connection of its own that reads the file memory-mapped, so pages come
    /// without a copy into the page cache (the scan's cost was a tenth in `pread` and
    /// fresh page-cache memory). Outside an operation given to [`Store::submit`] only.
    pub fn read_scan<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Lite(lite) => lite.read_scan(f),
            Backend::Pg(pg) => pg.read(|conn| f(&Tx::postgres(conn))),
        }
    }

    /// A read of exactly one statement (a token lookup): one statement sees one
    /// snapshot by itself, so on PostgreSQL it runs without a transaction around it (two
    /// statements fewer for the server); on SQLite likewise (a single statement is its
    /// own read transaction). A second statement in `f` is refused
    /// ([`StoreError::Nested`]). Inside a batch it is [`Store::read`].
    pub fn read_single<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Lite(lite) => lite.read_single(f),
            Backend::Pg(pg) => pg.read_single(|conn| f(&Tx::postgres(conn))),
        }
    }

    /// Copies the whole SQLite database, as one consistent snapshot of what is
    /// committed, to a new file at `dest`, and makes the copy durable. `dest` must not
    /// exist. PostgreSQL is backed up with its own tools (`pg_dump`).
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Lite(lite) => lite.backup_to(dest),
            Backend::Pg(_) => Err(StoreError::Unsupported(
                "on PostgreSQL, back up with pg_dump (see docs/operations.md)",
            )),
        }
    }

    /// Changes whenever a write transaction has committed (after the COMMIT), so a
    /// waiter can read again instead of polling. On PostgreSQL that includes other
    /// replicas' commits (LISTEN/NOTIFY; every second while not listening).
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.backend {
            Backend::Lite(lite) => lite.subscribe_commits(),
            Backend::Pg(pg) => pg.subscribe_commits(),
        }
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

/// Runs `sql` on the database file at `path` with the schema writable: for tests that
/// rewrite indexes as someone who can write the file would (no hash covers an index).
#[cfg(test)]
pub(crate) fn tamper_file(path: &Path, sql: &str) -> Result<(), StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA writable_schema = ON; {sql}; PRAGMA writable_schema = OFF;"
    ))?;
    Ok(())
}

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
