//! The connection pool of the PostgreSQL backend (each connection with a runtime its
//! users drive: `conn.rs`), and the listener that hears other replicas' commits, on a
//! runtime thread of its own.

use std::cell::Cell;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use super::listen::listen_with;
use super::tls::Rustls;
use super::{CONNECT_WAIT, Conn, PgOptions};
use crate::config::PgTls;
use crate::store::credentials::Credentials;
use crate::store::{StoreError, lock};

/// Longest wait for the write lock before the write answers 503.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest statement (the server cancels it).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(20);
/// A session idle this long inside a transaction is ended by the server.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);
/// Longest wait for a new connection, TCP and the startup exchange together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for any answer on a connection (above [`STATEMENT_TIMEOUT`], so that the
/// server's own cancellation normally comes first); then the connection is dropped.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(25);

/// How often waiters are woken anyway while the listener is not connected (so a wait on
/// another replica's approval is bounded by this even without NOTIFY).
pub(super) const POLL_WHILE_DEAF: Duration = Duration::from_secs(1);

/// Pooled connections to one database.
pub(in crate::store) struct Pool {
    config: tokio_postgres::Config,
    /// TLS to the server (`None`: a server on this machine, without TLS).
    tls: Option<Rustls>,
    /// The runtime thread the commit listener runs on.
    runtime: tokio::runtime::Handle,
    /// Ends the runtime's thread when the pool goes.
    _stop: tokio::sync::oneshot::Sender<()>,
    size: usize,
    slots: Arc<(Mutex<Slots>, Condvar)>,
    /// Since when connecting has failed, until a connection is made again (which is
    /// logged: the failures are, by whoever met them).
    outage: Mutex<Option<Instant>>,
}

struct Slots {
    idle: Vec<Conn>,
    /// Connections open now, idle or in use.
    open: usize,
}

/// A connection lent by the pool; back to it when dropped, unless abandoned.
pub(crate) struct Pooled {
    conn: Option<Conn>,
    slots: Arc<(Mutex<Slots>, Condvar)>,
    abandoned: Cell<bool>,
}

impl std::ops::Deref for Pooled {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // Present until drop.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("a pooled connection is present"))
    }
}

impl Pooled {
    /// Closes the connection instead of returning it (its transaction state is unknown).
    pub(in crate::store) fn abandon(&self) {
        self.abandoned.set(true);
    }

    /// Undoes [`Pooled::abandon`]: the connection is idle again (its transaction ended).
    pub(in crate::store) fn keep(&self) {
        self.abandoned.set(false);
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let (slots, freed) = &*self.slots;
        // What was sent without waiting (a read's ROLLBACK) leaves now, normally, not
        // when the next user drives the connection: an idle connection should not sit in
        // a transaction (holding its snapshot and locks until the server ends the
        // session; a connection ended so is then not lent, see `get`). Not while
        // unwinding: a second panic there would abort the process.
        let keep = !self.abandoned.get() && !std::thread::panicking();
        if let Some(conn) = &self.conn
            && keep
        {
            conn.flush();
        }
        let conn = self.conn.take();
        let closing = match conn {
            Some(conn) if keep && !conn.is_closed() => {
                lock(slots).idle.push(conn);
                None
            }
            other => {
                let mut s = lock(slots);
                s.open = s.open.saturating_sub(1);
                other
            }
        };
        // Closed outside the lock.
        drop(closing);
        freed.notify_one();
    }
}

impl Pool {
    pub(in crate::store) fn new(options: &PgOptions) -> Result<Pool, StoreError> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| StoreError::Config(format!("[storage] url does not parse: {e}")))?;
        if config.get_password().is_some() {
            return Err(StoreError::Config(
                "[storage] url must not hold a password: put it in password_file".into(),
            ));
        }
        if let Some(password) = &options.password {
            config.password(password.as_bytes());
        }
        let tls = match &options.tls {
            PgTls::Disable => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            PgTls::VerifyFull { root_cert } => {
                config.ssl_mode(SslMode::Require);
                Some(Rustls::new(root_cert.as_deref())?)
            }
        };
        // Server-side bounds on this replica's sessions: a wait for the write lock gives
        // up (503) instead of queueing forever behind a frozen holder, no statement runs
        // unbounded, and a session that stalls inside a transaction (a replica paused or
        // cut off while holding the write lock) is ended by the server, releasing it.
        let session = format!(
            "{} -c lock_timeout={}ms -c statement_timeout={}ms \
             -c idle_in_transaction_session_timeout={}ms",
            config.get_options().unwrap_or_default(),
            LOCK_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis(),
            IDLE_IN_TRANSACTION.as_millis(),
        );
        config.options(session.trim());
        config
            .application_name("countersign")
            .connect_timeout(Duration::from_secs(5))
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(Duration::from_secs(15));
        let runtime = current_thread_runtime("the commit listener's")?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("countersign-pg".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_background();
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the database thread: {e}"))
            })?;
        Ok(Pool {
            config,
            tls,
            runtime: handle,
            _stop: stop,
            outage: Mutex::new(None),
            size: options.pool_size.max(2),
            slots: Arc::new((
                Mutex::new(Slots {
                    idle: Vec::new(),
                    open: 0,
                }),
                Condvar::new(),
            )),
        })
    }

    /// A new connection, with a runtime of its own that its users drive (`Conn`).
    fn connect(&self) -> Result<Conn, StoreError> {
        let runtime = current_thread_runtime("a connection's")?;
        let config = self.config.clone();
        let connect = async move {
            match self.tls.clone() {
                None => connect_with(config, NoTls).await,
                Some(tls) => connect_with(config, tls).await,
            }
        };
        match super::drive::drive_on(&runtime, connect).and_then(|c| c) {
            Ok(client) => Ok(Conn::new(client, runtime)),
            Err(e) => {
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    /// Connections open now, how many of them are idle, and the most it opens.
    pub(in crate::store) fn usage(&self) -> (usize, usize, usize) {
        let s = lock(&self.slots.0);
        (s.open, s.idle.len(), self.size)
    }

    /// A connection: an idle one, a new one while fewer than the pool size are open, or
    /// the next one returned (waiting at most [`CONNECT_WAIT`]).
    pub(in crate::store) fn get(&self) -> Result<Pooled, StoreError> {
        let deadline = Instant::now() + CONNECT_WAIT;
        let (slots, freed) = &*self.slots;
        let mut s = lock(slots);
        loop {
            while let Some(conn) = s.idle.pop() {
                // An idle connection is not driven: what the server sent meanwhile (the
                // end of the session at a restart) is read now, outside the lock, so a
                // dead one is not lent.
                drop(s);
                conn.flush();
                if !conn.is_closed() {
                    return Ok(self.lend(conn));
                }
                drop(conn);
                s = lock(slots);
                s.open = s.open.saturating_sub(1);
            }
            if s.open < self.size {
                s.open += 1;
                drop(s);
                return match self.connect() {
                    Ok(conn) => {
                        if let Some(since) = lock(&self.outage).take() {
                            let down_seconds = since.elapsed().as_secs();
                            tracing::info!(down_seconds, "the database answers again");
                        }
                        Ok(self.lend(conn))
                    }
                    Err(e) => {
                        lock(&self.outage).get_or_insert_with(Instant::now);
                        let mut s = lock(slots);
                        s.open = s.open.saturating_sub(1);
                        drop(s);
                        freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable(format!(
                    "all {} database connections are busy",
                    self.size
                )));
            }
            s = freed
                .wait_timeout(s, left)
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn lend(&self, conn: Conn) -> Pooled {
        Pooled {
            conn: Some(conn),
            slots: self.slots.clone(),
            abandoned: Cell::new(false),
        }
    }

    /// Whether transaction `xid`, whose COMMIT's answer was lost, committed: asked of
    /// the server on fresh connections until it knows (at most [`CONNECT_WAIT`]).
    ///
    /// A transaction id can be handed out again after the server restarts from a crash
    /// (or fails over to an asynchronous standby) if nothing of the transaction reached
    /// the WAL on disk: `committed` may then be another transaction's. So when the
    /// transaction appended audit events (`head`: its last one's `seq` and `hash`), a
    /// `committed` is believed only if that very event is stored; every state change
    /// appends one, so a transaction without is one that changed nothing.
    pub(in crate::store) fn outcome(
        &self,
        xid: i64,
        head: Option<&(i64, String)>,
    ) -> Result<bool, StoreError> {
        let committed = self.txid_outcome(xid)?;
        let Some((seq, hash)) = head else {
            return Ok(committed);
        };
        if !committed {
            return Ok(false);
        }
        let conn = self.get()?;
        let stored = conn.query("SELECT hash FROM audit WHERE seq = ?1", &[seq])?;
        let ours = match stored.first() {
            Some(row) => row.try_get::<_, String>(0).map_err(StoreError::from_pg)? == *hash,
            None => false,
        };
        if !ours {
            tracing::warn!(
                xid,
                seq,
                "the transaction id reads as committed, but this transaction's audit event is \
                 not stored: the id was used again (a crash or failover lost the transaction)"
            );
        }
        Ok(ours)
    }

    /// What `txid_status` says of `xid` (see [`Pool::outcome`]).
    fn txid_outcome(&self, xid: i64) -> Result<bool, StoreError> {
        let deadline = Instant::now() + CONNECT_WAIT;
        loop {
            let status = self.get().and_then(|conn| {
                let rows = conn.query("SELECT txid_status(?1)", &[&xid])?;
                match rows.first() {
                    Some(row) => row
                        .try_get::<_, Option<String>>(0)
                        .map_err(StoreError::from_pg),
                    None => Ok(None),
                }
            });
            match status.as_ref().map(Option::as_deref) {
                Ok(Some("committed")) => return Ok(true),
                Ok(Some("aborted")) | Ok(None) => return Ok(false),
                Ok(Some(_)) | Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    return Err(StoreError::Unavailable(format!(
                        "the connection failed during COMMIT and whether transaction {xid} \
                         committed is unknown"
                    )));
                }
            }
        }
    }

    /// Listens on `channel` on a connection of its own, bumping `commits` on every
    /// notification (and telling `credentials` of every one but a commit that kept
    /// them); reconnects when it fails, waking waiters every second meanwhile.
    pub(in crate::store) fn listen(
        &self,
        channel: &'static str,
        commits: tokio::sync::watch::Sender<u64>,
        credentials: Arc<Credentials>,
    ) {
        let config = self.config.clone();
        match self.tls.clone() {
            None => drop(self.runtime.spawn(listen_with(
                config,
                NoTls,
                channel,
                (commits, credentials),
            ))),
            Some(tls) => drop(self.runtime.spawn(super::listen::listen_with(
                config,
                tls,
                channel,
                (commits, credentials),
            ))),
        }
    }
}

/// A current-thread runtime with I/O and timers; `whose` names it in the error.
fn current_thread_runtime(whose: &str) -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot start {whose} runtime: {e}")))
}

/// Connects with `tls`; the connection's task is spawned on the current runtime.
async fn connect_with<T>(config: tokio_postgres::Config, tls: T) -> Result<Client, StoreError>
where
    T: MakeTlsConnect<Socket> + Send + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) =
        match tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls)).await {
            Ok(connected) => connected.map_err(StoreError::from_pg)?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "the database did not complete a connection within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a database connection ended");
        }
    });
    Ok(client)
}
