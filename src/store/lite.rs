//! The SQLite backend: one file, WAL, `synchronous=FULL`; one write connection with
//! group commit on a writer thread (`store/writer.rs`) and a pool of readers.

use std::future::Future;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::Connection;

use super::migrations::migrate;
use super::writer::{self, Shared, Threads};
use super::{StoreError, Tx, connect, exec, lock, meta};

/// Bytes of the database file a scan maps (SQLite's own ceiling is 2 GiB; beyond what
/// is mapped it reads as usual).
const SCAN_MMAP: i64 = 1 << 31;

/// The SQLite store.
pub(super) struct Lite {
    path: PathBuf,
    /// Tells this store's writer thread apart from other stores' in the same process.
    id: u64,
    pub(super) writer: Arc<Shared>,
    /// The writer thread, where operations queue; started on first use.
    threads: OnceLock<Option<Threads>>,
    readers: Mutex<Vec<Connection>>,
}

/// Readers kept open for reuse.
const MAX_IDLE_READERS: usize = 64;

impl Lite {
    /// The schema version of the database at `path` (0: empty, never migrated), read
    /// without migrating or writing anything.
    pub(super) fn peek_schema_version(path: &Path) -> Result<i64, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// The CA key the database at `path` records as current, read without migrating or
    /// writing anything (for a message about a missing key); `None` if it records none.
    pub(super) fn peek_current_ca(path: &Path) -> Result<Option<meta::CaKey>, StoreError> {
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
    pub(super) fn open_existing(path: &Path) -> Result<Lite, StoreError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Lite::open(path),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Opens (creating if needed, mode 0600) and migrates the database at `path`.
    pub(super) fn open(path: &Path) -> Result<Lite, StoreError> {
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
        let checkpointer = writer::checkpoint::Checkpointer::start(path, &conn);
        Ok(Lite {
            path: path.to_owned(),
            id: writer::next_store_id(),
            writer: Arc::new(Shared::new(conn, checkpointer)),
            threads: OnceLock::new(),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The WAL checkpoints run beside the writer, by outcome (`writer/checkpoint.rs`).
    pub(super) fn checkpoints(&self) -> [u64; 5] {
        self.writer.checkpoints()
    }

    /// What the writer thread has done, once it started.
    pub(super) fn writer_work(&self) -> Option<&writer::Work> {
        self.threads
            .get()
            .and_then(Option::as_ref)
            .map(Threads::work)
    }

    /// Runs the operation `op` on the writer thread, in a batch with whatever else is
    /// queued, and resolves once the batch is durable (group commit: one fsync for many
    /// operations). Every `Store::write` that `op` makes runs atomically in its own
    /// SAVEPOINT; `op`'s result is delivered only after the COMMIT, and if the COMMIT
    /// fails an `op` that wrote gets [`StoreError::CommitFailed`] instead.
    pub(super) fn submit<P: 'static, T: Send + 'static>(
        &self,
        plan: impl FnOnce() -> P + Send + 'static,
        op: impl FnOnce(P) -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static {
        let threads = self
            .threads
            .get_or_init(|| writer::start(self.writer.clone(), self.id));
        writer::submit(threads.as_ref(), plan, op)
    }

    /// Queues `f` as a write of the writer thread's next batch and returns at once
    /// ([`Store::write_later`](super::Store::write_later)).
    pub(super) fn write_later(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<(), StoreError> + Send + 'static,
    ) {
        let id = self.id;
        super::not_queued(self.submit(
            || (),
            move |()| {
                if writer::batch_is_open_here(id) {
                    writer::write_in_batch(|conn, held| f(&Tx::writing(conn, Some(held))))
                } else {
                    Err(StoreError::Nested)
                }
            },
        ));
    }

    /// Runs `f` as one atomic unit of work and returns only once it is durable.
    ///
    /// Inside an operation given to [`Store::submit`] it runs in its own SAVEPOINT of
    /// the batch (durable when the batch commits, before the operation's result leaves);
    /// anywhere else it runs alone in its own transaction and returns after its COMMIT.
    /// `Err` from `f` undoes exactly its own changes, while `Ok(inner)` keeps them
    /// whatever `inner` is (so a refusal and its audit row are kept).
    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if writer::batch_is_open_here(self.id) {
            writer::write_in_batch(|conn, held| f(&Tx::writing(conn, Some(held))))
        } else {
            self.writer.write_alone(|conn| f(&Tx::writing(conn, None)))
        }
    }

    /// Runs `f` in a read transaction (one consistent snapshot of committed data) on a
    /// reader connection, so reads never wait for writers. Inside an operation given to
    /// [`Store::submit`] it reads the batch's connection instead, so the operation sees
    /// its own writes.
    pub(super) fn read<T, E: From<StoreError>>(
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

    /// [`Lite::read`] on a new connection that maps up to [`SCAN_MMAP`] bytes of the
    /// file, closed afterwards (a mapped connection is not pooled: the server's reads
    /// keep plain ones, which an I/O error fails rather than kills).
    pub(super) fn read_scan<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if writer::batch_is_open_here(self.id) {
            return self.read(f);
        }
        let conn = connect(&self.path)?;
        conn.pragma_update(None, "mmap_size", SCAN_MMAP)
            .map_err(StoreError::from)?;
        exec(&conn, "BEGIN")?;
        // Closing the connection, right after, ends the read transaction whatever
        // ROLLBACK says: its error would hide `f`'s answer for nothing.
        let out = f(&Tx::new(&conn));
        let _ = exec(&conn, "ROLLBACK");
        out
    }

    /// `f`, which runs one statement, outside any transaction: SQLite reads one snapshot
    /// for a single statement by itself, so BEGIN and ROLLBACK are two steps saved (see
    /// [`Store::read_single`](super::Store::read_single)). In a batch, [`Lite::read`].
    pub(super) fn read_single<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if writer::batch_is_open_here(self.id) {
            return self.read(f);
        }
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = f(&Tx::lite_single(&conn));
        // A statement reset when its rows were dropped leaves no read open; one that
        // did not is not reused.
        if conn.is_autocommit() && !conn.is_busy() {
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
    pub(super) fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
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
    pub(super) fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.subscribe_commits()
    }
}

impl Drop for Lite {
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
