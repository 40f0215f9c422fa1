//! One connection to PostgreSQL: its statement cache, the runtime its users drive
//! while they wait for an answer, and the state of the transaction open on it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;

use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::defer::{Held, Op};
use super::drive::{drive_on, poll_once};
use super::pool;
use crate::store::StoreError;
use crate::store::ahead::{Touch, Touched};
use crate::store::sql::{Param, translate};

/// One open connection and the statements prepared on it.
pub(crate) struct Conn {
    pub(super) client: tokio_postgres::Client,
    statements: RefCell<HashMap<String, Statement>>,
    /// Drives this connection (its socket, and the task that reads and writes it)
    /// while a caller waits for an answer; its timer bounds every wait. `None` only
    /// while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// An answer did not come in time: the connection's state is unknown.
    timed_out: std::cell::Cell<bool>,
    /// Statements left to a read outside a transaction (`PgStore::read_single`);
    /// `None` otherwise.
    single: std::cell::Cell<Option<u8>>,
    /// A write transaction (holding [`WRITE_LOCK`](super::txn::WRITE_LOCK)) is open on
    /// this connection.
    writing: std::cell::Cell<bool>,
    /// The write transaction open here found another policy recorded than the one this
    /// replica decides by (`store/in_force.rs`).
    pub(in crate::store) policy_stale: std::cell::Cell<bool>,
    /// The audit chain's head as this write transaction left it (`store/audit.rs`):
    /// valid while the transaction holds the write lock, since nobody else appends
    /// meanwhile; forgotten whenever the transaction ends or undoes any of its work.
    head: RefCell<Option<(i64, String)>>,
    /// The operation of a batch running on this connection, with the writes it holds
    /// back (`pg/defer.rs`).
    pub(super) op: RefCell<Option<Op>>,
    /// What the writes kept by this write transaction touched (`store/ahead.rs`).
    pub(super) touched: RefCell<Touched>,
    /// A plan's read is being recorded, not sent (`pg/ahead.rs`), and what was recorded.
    pub(super) recording: std::cell::Cell<bool>,
    pub(super) recorded: RefCell<Option<Vec<Held>>>,
    /// The answer of a read sent ahead, offered to the operation about to run.
    pub(super) answer: RefCell<Option<super::ahead::Answer>>,
    /// That answer served its read.
    pub(super) answered: std::cell::Cell<bool>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context (a pool
        // dropped by a test's async body); shutting it down in the background does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Conn {
    pub(in crate::store) fn new(
        client: tokio_postgres::Client,
        runtime: tokio::runtime::Runtime,
    ) -> Self {
        Conn {
            client,
            statements: RefCell::new(HashMap::new()),
            runtime: Some(runtime),
            timed_out: std::cell::Cell::new(false),
            single: std::cell::Cell::new(None),
            writing: std::cell::Cell::new(false),
            policy_stale: std::cell::Cell::new(false),
            head: RefCell::new(None),
            op: RefCell::new(None),
            touched: RefCell::new(Touched::default()),
            recording: std::cell::Cell::new(false),
            recorded: RefCell::new(None),
            answer: RefCell::new(None),
            answered: std::cell::Cell::new(false),
        }
    }

    /// Where the write transaction open on this connection begins or ends.
    pub(in crate::store) fn set_writing(&self, writing: bool) {
        self.writing.set(writing);
        self.forget_head();
        self.touched.take();
        self.answer.take();
    }

    /// The audit chain's head this write transaction knows, if any.
    pub(in crate::store) fn audit_head(&self) -> Option<(i64, String)> {
        if self.writing.get() {
            self.head.borrow().clone()
        } else {
            None
        }
    }

    /// Records the head this write transaction just appended (ignored outside one).
    pub(in crate::store) fn set_audit_head(&self, seq: i64, hash: &str) {
        if self.writing.get() {
            *self.head.borrow_mut() = Some((seq, hash.to_owned()));
        }
    }

    /// Forgets the head (part of the transaction's work was undone, or it ended).
    pub(in crate::store) fn forget_head(&self) {
        self.head.borrow_mut().take();
    }

    /// Drives the connection on this thread until `f` is done.
    pub(super) fn drive<F: std::future::Future + Send>(&self, f: F) -> Result<F::Output, StoreError>
    where
        F::Output: Send,
    {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Unavailable("the connection is closing".into()));
        };
        drive_on(runtime, f)
    }

    /// Whether the connection is gone or in an unknown state (not to be reused).
    pub(in crate::store) fn is_closed(&self) -> bool {
        self.client.is_closed() || self.timed_out.get()
    }

    /// Waits for `answer`, at most [`pool::ANSWER_TIMEOUT`]: a server that accepted the
    /// connection but stopped answering (frozen, or cut off while its kernel still
    /// acknowledges) makes the call unavailable instead of hanging it.
    pub(in crate::store) fn wait<T: Send>(
        &self,
        answer: impl std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send,
    ) -> Result<T, StoreError> {
        // The timer is made inside the runtime (it needs its time driver).
        let waited = self.drive(async { tokio::time::timeout(pool::ANSWER_TIMEOUT, answer).await });
        // A wait that did not finish (its thread panicked) leaves the connection's state
        // unknown: it is not reused.
        let waited = waited.inspect_err(|_| self.timed_out.set(true))?;
        match waited {
            Ok(out) => out.map_err(StoreError::from_pg),
            Err(_) => {
                self.timed_out.set(true);
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {}s",
                    pool::ANSWER_TIMEOUT.as_secs()
                )))
            }
        }
    }

    pub(super) fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        // Every statement with parameters comes here first: the one place to count a
        // single-statement read's, to stop a plan's read that is not to be recorded
        // (`pg/ahead.rs`), and to withdraw an answer sent ahead that it was not for.
        if self.recording.get() {
            return Err(StoreError::Nested);
        }
        self.answer.take();
        match self.single.get() {
            None => {}
            Some(0) => return Err(StoreError::Nested),
            Some(n) => self.single.set(Some(n - 1)),
        }
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.wait(self.client.prepare(&translate(sql)))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    pub(in crate::store) fn query(
        &self,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.release_held(false);
        let stmt = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.pg()).collect();
        self.wait(self.client.query(&stmt, &params))
    }

    /// Runs every query of `queries` and returns their rows, in order. All are sent
    /// before the first answer is awaited (pipelined): one round trip for all of them.
    /// The first failure is returned (in a transaction, a failure makes the later ones
    /// fail too).
    pub(in crate::store) fn query_many(
        &self,
        queries: &[(&str, &[&dyn Param])],
    ) -> Result<Vec<Vec<tokio_postgres::Row>>, StoreError> {
        if self.recording.get() {
            return self.record_queries(queries);
        }
        if let Some(rows) = self.answer_for(queries) {
            return Ok(rows);
        }
        self.release_held(false);
        let statements = queries
            .iter()
            .map(|(sql, _)| self.statement(sql))
            .collect::<Result<Vec<_>, _>>()?;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = queries
            .iter()
            .map(|(_, params)| params.iter().map(|p| p.pg()).collect())
            .collect();
        let mut answers: Vec<_> = statements
            .iter()
            .zip(&params)
            .map(|(stmt, params)| Box::pin(self.client.query(stmt, params)))
            .collect();
        self.wait(async move {
            let mut rows: Vec<Option<Vec<tokio_postgres::Row>>> =
                answers.iter().map(|_| None).collect();
            // Each is polled until it is done; the first poll of each sends its request,
            // so all go out before any answer is awaited.
            std::future::poll_fn(|cx| {
                let mut waiting = false;
                for (answer, out) in answers.iter_mut().zip(rows.iter_mut()) {
                    if out.is_some() {
                        continue;
                    }
                    match answer.as_mut().poll(cx) {
                        std::task::Poll::Ready(Ok(r)) => *out = Some(r),
                        std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                        std::task::Poll::Pending => waiting = true,
                    }
                }
                if waiting {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(Ok(()))
                }
            })
            .await?;
            Ok(rows.into_iter().map(Option::unwrap_or_default).collect())
        })
    }

    /// Runs a write statement and waits for its count; it touched `touches` (`None`:
    /// everything, `store/ahead.rs`).
    pub(in crate::store) fn execute(
        &self,
        sql: &str,
        params: &[&dyn Param],
        touches: Option<&[Touch<'_>]>,
    ) -> Result<u64, StoreError> {
        self.release_held(true);
        let stmt = self.statement(sql)?;
        self.touch(touches);
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.pg()).collect();
        self.wait(self.client.execute(&stmt, &params))
    }

    /// Runs a write statement inside a write transaction without waiting for its answer
    /// (pipelined: the next statement goes out at once). Its failure cannot go unseen: it
    /// aborts the transaction, so every later statement fails and so does the COMMIT,
    /// whose NOTIFY is refused in an aborted transaction (`pg/batch.rs` says how a
    /// batch keeps that). Outside a write transaction it waits, like `execute`.
    pub(in crate::store) fn put(
        &self,
        sql: &str,
        params: &[&dyn Param],
        touches: Option<&[Touch<'_>]>,
    ) -> Result<(), StoreError> {
        self.put_as(sql, params, false, touches)
    }

    /// [`Conn::put`] of a write that must change exactly one row: any other count fails
    /// the statement (and so the transaction).
    pub(in crate::store) fn put_one(
        &self,
        sql: &str,
        params: &[&dyn Param],
        touches: Option<&[Touch<'_>]>,
    ) -> Result<(), StoreError> {
        self.put_as(sql, params, true, touches)
    }

    fn put_as(
        &self,
        sql: &str,
        params: &[&dyn Param],
        one_row: bool,
        touches: Option<&[Touch<'_>]>,
    ) -> Result<(), StoreError> {
        let checked;
        let statement_sql = if one_row {
            checked = super::defer::one_row_check(sql);
            checked.as_str()
        } else {
            sql
        };
        if !self.writing.get() {
            return self.execute(statement_sql, params, touches).map(drop);
        }
        let stmt = self.statement(statement_sql)?;
        self.touch(touches);
        if let Some(op) = self.op.borrow_mut().as_mut() {
            op.held.push(Held::new(stmt, params, sql, one_row)?);
            return Ok(());
        }
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.pg()).collect();
        match poll_once(self.client.execute(&stmt, &params)) {
            Some(Err(e)) => Err(StoreError::from_pg(e)),
            _ => Ok(()),
        }
    }

    /// Runs statements without parameters (transaction control, DDL).
    pub(in crate::store) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.release_held(true);
        self.answer.take();
        self.wait(self.client.batch_execute(sql))
    }

    /// Lets the connection do what is queued and what has arrived, without a round
    /// trip: requests sent without waiting (a read's ROLLBACK) leave for the server, and
    /// an end of the connection the server sent (a restart, an idle session ended) is
    /// noticed, so [`Conn::is_closed`] tells. Nothing drives an idle connection
    /// otherwise: the pool does this when it takes one back and before it lends one.
    pub(in crate::store) fn flush(&self) {
        let ticks = async {
            // Two turns of the runtime: the connection's task runs in the first.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        };
        if self.drive(ticks).is_err() {
            self.timed_out.set(true);
        }
    }

    /// Sends statements without waiting for their answer (a round trip saved): the
    /// connection runs requests in the order sent, so whatever is sent next runs after
    /// them. Only for statements whose failure cannot go unnoticed: a read's BEGIN (a
    /// failed one means a broken connection, whose next statement fails too) and
    /// ROLLBACK (which cannot fail on a live connection), and a batch's SAVEPOINT and
    /// RELEASE (`pg/batch.rs` says why).
    pub(in crate::store) fn send(&self, sql: &str) {
        let _ = poll_once(self.client.batch_execute(sql));
    }
}

/// A single-statement read in progress on a connection; ended when dropped (a panic
/// included), so the connection goes back to the pool as any other.
pub(super) struct Single<'c>(&'c Conn);

impl<'c> Single<'c> {
    pub(in crate::store) fn start(conn: &'c Conn) -> Self {
        conn.single.set(Some(1));
        Single(conn)
    }
}

impl Drop for Single<'_> {
    fn drop(&mut self) {
        self.0.single.set(None);
    }
}
