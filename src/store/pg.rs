//! The PostgreSQL backend: connections, the pool, and transactions that keep the
//! isolation contract of `store.rs` when several replicas write at once.
//!
//! # How the contract is kept
//! Every write transaction first takes one transaction-scoped advisory lock
//! ([`WRITE_LOCK`](txn::WRITE_LOCK)), so writes from every replica run one at a time, in
//! the order they got the lock, exactly as SQLite's single writer runs them: each
//! read-then-write invariant (the SoD re-check at signing, the audit chain head, a
//! request decided once, the pending count, the KRL version, an idempotency key) sees
//! every write committed before it and nothing commits in between. Every state change
//! appends to the one audit chain, which needs this order anyway, so finer locks would
//! buy little. Reads run in `REPEATABLE READ READ ONLY` transactions (one snapshot) and
//! take no lock.
//!
//! # A COMMIT whose answer was lost
//! Each write learns its transaction id (`txid_current()`) before its work. When the
//! connection fails during COMMIT, the outcome is asked of PostgreSQL
//! (`txid_status`) on another connection before anything is answered: committed is a
//! success, aborted a failure, and an outcome that cannot be learned is reported as
//! [`StoreError::Unavailable`] (nothing is retried blindly, so nothing is signed twice).
//!
//! # Blocking
//! The store's API is synchronous. Each connection has a current-thread runtime of its
//! own, and the thread that uses the connection drives it while it waits for an answer
//! (as the `postgres` crate does): a round trip costs the socket's system calls and no
//! hand-off between threads. From inside an async context, where a runtime cannot be
//! entered, the wait runs on a short-lived thread instead, so a query works from any
//! thread (the API's blocking pool, the writer thread, the CLI, tests).

mod ahead;
mod batch;
mod conn;
mod defer;
mod drive;
mod listen;
mod migrations;
mod pool;
mod tls;
mod txn;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::StoreError;

pub(crate) use conn::Conn;
use conn::Single;
pub(super) use migrations::migrate;
pub(super) use pool::{Pool, Pooled};
use txn::CHANNEL;

/// How long to wait for a connection (pool full, or the server restarting).
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// What the store needs to reach PostgreSQL (from `[storage]`).
#[derive(Clone)]
pub struct PgOptions {
    /// The connection URL, without a password or TLS parameters.
    pub url: String,
    /// TLS to the server.
    pub tls: crate::config::PgTls,
    /// The password (from `password_file`), if any.
    pub password: Option<String>,
    /// Most connections this process opens.
    pub pool_size: usize,
}

impl std::fmt::Debug for PgOptions {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.url)
            .field("tls", &self.tls)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl StoreError {
    /// A PostgreSQL error: the server's refusal (a constraint, bad SQL) is a database
    /// error; a connection that failed or closed means the database is unavailable, and
    /// so does the server ending the session itself: a FATAL error, or SQLSTATE class
    /// 08 (connection exception) or 57 (operator intervention: "terminating connection
    /// due to administrator command" at a shutdown, "the database system is starting
    /// up" during recovery).
    pub(super) fn from_pg(e: tokio_postgres::Error) -> StoreError {
        match e.as_db_error() {
            Some(db) if !e.is_closed() && !server_gone(db) => StoreError::Postgres(e),
            _ => StoreError::Unavailable(cause(&e)),
        }
    }
}

/// The driver's error with every cause under it ("db error" alone says nothing: the
/// server's message, e.g. a refused password, is the cause), and a hint for the causes
/// an operator can fix.
fn cause(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let hint = if text.contains("password authentication failed") {
        " (check [storage] password_file and the role's password)"
    } else if text.contains("password missing") || text.contains("invalid configuration") {
        " (the server asks for a password: set [storage] password_file)"
    } else if text.contains("Connection refused") || text.contains("error connecting") {
        " (is PostgreSQL running and listening on the host and port of [storage] url?)"
    } else if text.contains("does not exist") && text.contains("database") {
        " (create the database, or fix the name in [storage] url)"
    } else {
        ""
    };
    text.push_str(hint);
    text
}

/// Whether the server's error means it is going away or not yet there (see
/// [`StoreError::from_pg`]), rather than refusing this statement.
fn server_gone(db: &tokio_postgres::error::DbError) -> bool {
    let class = db.code().code().get(..2);
    // 55P03: a lock wait passed lock_timeout (another replica holds the write lock).
    matches!(db.severity(), "FATAL" | "PANIC")
        || matches!(class, Some("08" | "57"))
        || db.code().code() == "55P03"
}

/// The PostgreSQL side of [`Store`](super::Store).
pub(super) struct PgStore {
    shared: Arc<Shared>,
    /// Tells this store's writer thread apart from other stores' in the same process.
    id: u64,
    /// Where operations given to `submit` queue (`pg/batch.rs`); started on first use.
    jobs: OnceLock<Option<super::writer::Threads>>,
}

/// What the writer thread shares with the store.
pub(super) struct Shared {
    pool: Pool,
    /// Bumped after every COMMIT of this process, and on every NOTIFY from another.
    commits: tokio::sync::watch::Sender<u64>,
    /// Token rows remembered for a moment, forgotten at any change
    /// (`store/credentials.rs`).
    credentials: Arc<super::credentials::Credentials>,
    /// The digest of the policy this replica decides by, once the server set it
    /// ([`Store::set_policy_in_force`](super::Store::set_policy_in_force)): a write
    /// transaction that finds another recorded as the newest refuses its writes.
    policy: std::sync::Mutex<Option<String>>,
}

thread_local! {
    /// This thread is inside a write (its closure runs): a write inside it would wait
    /// for the lock its own transaction holds.
    static WRITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as inside a write's closure until dropped (a panic included).
struct Writing;

impl Writing {
    fn enter() -> Writing {
        WRITING.with(|w| w.set(true));
        Writing
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(false));
    }
}

impl PgStore {
    /// See [`Store::set_policy_in_force`](super::Store::set_policy_in_force).
    pub(super) fn set_policy_in_force(&self, digest: &str) {
        *self
            .shared
            .policy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(digest.to_owned());
    }

    /// Connects, migrates (under an advisory lock, so replicas starting together
    /// migrate once), and starts listening for other replicas' commits.
    pub(super) fn open(options: &PgOptions) -> Result<PgStore, StoreError> {
        let pool = Pool::new(options)?;
        {
            let conn = pool.get()?;
            migrate(&conn)?;
        }
        let commits = tokio::sync::watch::Sender::new(0);
        let credentials = Arc::new(super::credentials::Credentials::default());
        pool.listen(CHANNEL, commits.clone(), credentials.clone());
        Ok(PgStore {
            shared: Arc::new(Shared {
                pool,
                commits,
                credentials,
                policy: std::sync::Mutex::new(None),
            }),
            id: super::writer::next_store_id(),
            jobs: OnceLock::new(),
        })
    }

    /// Reads `f` from a database without migrating it; `None` when it has no schema.
    pub(super) fn peek<T>(
        options: &PgOptions,
        f: impl FnOnce(&super::Tx<'_>) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let pool = Pool::new(options)?;
        let conn = pool.get()?;
        if migrations::version(&conn)? == 0 {
            return Ok(None);
        }
        f(&super::Tx::postgres(&conn))
    }

    pub(super) fn credentials(&self) -> &super::credentials::Credentials {
        &self.shared.credentials
    }

    pub(super) fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.commits.subscribe()
    }

    /// What the writer thread has done, once it started.
    pub(super) fn writer_work(&self) -> Option<&super::writer::Work> {
        self.jobs.get().and_then(Option::as_ref).map(|t| t.work())
    }

    /// The pool's connections: open, idle, most.
    pub(super) fn pool_usage(&self) -> (usize, usize, usize) {
        self.shared.pool.usage()
    }

    /// Runs `op` on this store's writer thread, in a batch with whatever else is queued
    /// (`pg/batch.rs`); resolves once the batch is durable.
    pub(super) fn submit<P: 'static, T: Send + 'static>(
        &self,
        plan: impl FnOnce() -> P + Send + 'static,
        op: impl FnOnce(P) -> T + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let threads = self
            .jobs
            .get_or_init(|| batch::start(self.shared.clone(), self.id));
        super::writer::submit(threads.as_ref(), plan, op)
    }

    /// Records `f`, the first read of the operation being planned on this thread, to be
    /// sent ahead ([`Store::read_ahead`](super::Store::read_ahead)).
    pub(super) fn read_ahead<T>(
        &self,
        reads: &[super::Touch<'_>],
        f: impl FnOnce(&Conn) -> Result<T, StoreError>,
    ) {
        batch::record(self.id, reads, f);
    }

    /// Queues `f` as a write of the writer thread's next batch and returns at once
    /// ([`Store::write_later`](super::Store::write_later)).
    pub(super) fn write_later(
        &self,
        f: impl FnOnce(&Conn) -> Result<(), StoreError> + Send + 'static,
    ) {
        let id = self.id;
        super::not_queued(self.submit(
            || (),
            move |()| {
                if batch::open_here(id) {
                    // Bookkeeping (a token's last use), no decision: any policy.
                    super::in_force::any_policy(|| batch::write(f))
                } else {
                    Err(StoreError::Nested)
                }
            },
        ));
    }

    /// `f` in one write transaction holding [`WRITE_LOCK`](txn::WRITE_LOCK); returns once
    /// it is durable.
    /// Inside an operation given to `submit`, an operation of the batch instead (undone
    /// alone if it fails: `pg/defer.rs`).
    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        if batch::open_here(self.id) {
            return batch::write(f);
        }
        if WRITING.with(std::cell::Cell::get) {
            return Err(StoreError::Nested.into());
        }
        let conn = self.shared.pool.get()?;
        let xid = self.shared.begin_write(&conn)?;
        super::after::discard();
        if let Err(e) = super::in_force::check(&conn) {
            Shared::roll_back(&conn);
            return Err(e.into());
        }
        let out = {
            let _writing = Writing::enter();
            f(&conn)
        };
        match out {
            Ok(out) => {
                let committed = self.shared.end_write(&conn, xid);
                super::after::settle(&committed);
                committed?;
                Ok(out)
            }
            Err(e) => {
                super::after::discard();
                Shared::roll_back(&conn);
                Err(e)
            }
        }
    }

    /// `f`, which runs one statement, outside any transaction (see
    /// [`Store::read_single`](super::Store::read_single)).
    pub(super) fn read_single<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        if batch::open_here(self.id) || WRITING.with(std::cell::Cell::get) {
            return self.read(f);
        }
        let conn = self.shared.pool.get()?;
        let _single = Single::start(&conn);
        f(&conn)
    }

    /// `f` in a read-only transaction over one snapshot (inside an operation given to
    /// `submit`, on the batch's connection: it sees the batch's writes).
    pub(super) fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        if batch::open_here(self.id) {
            return batch::read(f);
        }
        if WRITING.with(std::cell::Cell::get) {
            // It would read another snapshot than the write's (without its changes), on a
            // second connection the pool may not have while writers queue for the lock.
            return Err(StoreError::Nested.into());
        }
        let conn = self.shared.pool.get()?;
        // BEGIN and ROLLBACK go out without waiting (`Conn::send`): a read costs the
        // round trips of its own statements only.
        conn.send("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        // Closed, not pooled, if `f` panics (the transaction would stay open).
        conn.abandon();
        let out = f(&conn);
        conn.send("ROLLBACK");
        conn.keep();
        out
    }
}
