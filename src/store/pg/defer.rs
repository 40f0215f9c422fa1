//! The writes of one operation of a batch (`pg/batch.rs`), held back until something
//! needs them sent, so that most operations need no SAVEPOINT.
//!
//! A batch runs many operations in one transaction, and one that fails must leave no
//! trace while the others commit. A SAVEPOINT before each gives that, at a price:
//! PostgreSQL starts a subtransaction for each, with a transaction id of its own once it
//! writes, and with more than 64 of them in one transaction every other session's
//! snapshots get slower (the subtransaction cache overflows). Measured here, the
//! savepoints cost a fifth of the write throughput.
//!
//! So an operation's INSERTs that nothing reads the answer of (`Conn::put`) are kept on
//! the client, their parameters already encoded. Most operations read first and then
//! only put: when they succeed, their writes are sent (pipelined, as before) and no
//! savepoint was ever needed; when they fail, the writes are dropped and nothing reached
//! the server. Only when an operation sends a statement after a held write (a read that
//! might see it, a write whose answer it needs) does it take a savepoint first, then send
//! what it held: from there on it is undone as before (`ROLLBACK TO`).

use bytes::BytesMut;
use tokio_postgres::Statement;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

use super::Conn;
use super::drive::poll_once;
use crate::store::StoreError;
use crate::store::ahead::Touch;
use crate::store::sql::Param;

/// The operation running on a connection.
#[derive(Debug)]
pub(super) struct Op {
    /// Its savepoint's name (`w1`, `w2`...: each operation has one of its own).
    pub(super) name: String,
    /// The SAVEPOINT was sent: its writes are undone by `ROLLBACK TO`.
    pub(super) savepoint: bool,
    /// Writes not sent yet, in order.
    pub(super) held: Vec<Held>,
    /// What its writes touched (`store/ahead.rs`), kept with them if it succeeds.
    pub(super) touched: crate::store::ahead::Touched,
}

impl Op {
    pub(super) fn new(name: String) -> Self {
        Op {
            name,
            savepoint: false,
            held: Vec::new(),
            touched: Default::default(),
        }
    }
}

/// The operation running on a connection (its writes held back), from its beginning
/// to its end.
impl Conn {
    /// An operation of a batch begins: its writes are held back until something needs
    /// them sent ([`Conn::begin_op`] to [`Conn::end_op`], `pg/defer.rs`).
    pub(in crate::store) fn begin_op(&self, savepoint: String) {
        *self.op.borrow_mut() = Some(Op::new(savepoint));
    }

    /// The operation ends. If it succeeded, what it held is sent (pipelined) and its
    /// savepoint, if it took one, released. If it failed, what it held is dropped and
    /// its savepoint, if it took one, rolled back to: the error is that of the ROLLBACK
    /// TO, which leaves the transaction aborted (nothing of it may commit).
    pub(in crate::store) fn end_op(&self, succeeded: bool) -> Result<(), StoreError> {
        let Some(op) = self.op.borrow_mut().take() else {
            return Ok(());
        };
        if succeeded {
            self.touched.borrow_mut().absorb(op.touched);
            self.send_all_held(&op.held);
            if op.savepoint {
                self.send(&format!("RELEASE {}", op.name));
            }
            return Ok(());
        }
        self.forget_head();
        if op.savepoint {
            self.batch(&format!("ROLLBACK TO {0}; RELEASE {0}", op.name))?;
        }
        Ok(())
    }

    /// Adds `touches` to what the running operation touched; false if none runs.
    pub(super) fn op_touched(&self, touches: Option<&[Touch<'_>]>) -> bool {
        match self.op.borrow_mut().as_mut() {
            Some(op) => {
                op.touched.add(touches);
                true
            }
            None => false,
        }
    }

    /// The operation's closure panicked: what it held is dropped, and what it sent undone
    /// without waiting (if that fails, the transaction is aborted and cannot commit).
    pub(in crate::store) fn abandon_op(&self) {
        if let Some(op) = self.op.borrow_mut().take() {
            self.forget_head();
            if op.savepoint {
                self.send(&format!("ROLLBACK TO {0}; RELEASE {0}", op.name));
            }
        }
    }

    /// Before a statement goes out during an operation: if it writes (`writes`), or the
    /// operation holds writes it could read, the operation takes its savepoint (once)
    /// and sends what it held, so that the statement runs after them, as written.
    pub(super) fn release_held(&self, writes: bool) {
        let mut op = self.op.borrow_mut();
        let Some(op) = op.as_mut() else {
            return;
        };
        if !writes && op.held.is_empty() {
            return;
        }
        if !op.savepoint {
            op.savepoint = true;
            self.send(&format!("SAVEPOINT {}", op.name));
        }
        for held in op.held.drain(..) {
            self.send_held(&held);
        }
    }

    /// Sends a held write without waiting for its answer (see [`Conn::put`]).
    pub(super) fn send_held(&self, held: &Held) {
        let _ = poll_once(self.client.execute(&held.statement, &held.params()));
    }

    /// Sends the writes an operation held, in order: runs of several that can be one
    /// statement (`defer::joinable`) as one (`defer::joined`, prepared once per
    /// connection), the others alone; a run whose joined statement takes other parameter
    /// types than its parts (never seen) goes alone too.
    pub(super) fn send_all_held(&self, mut held: &[Held]) {
        while !held.is_empty() {
            let run = super::defer::joinable(held).max(1);
            let (now, rest) = held.split_at(run);
            held = rest;
            if run > 1
                && let Ok(stmt) = self.statement(&super::defer::joined(now))
                && stmt
                    .params()
                    .iter()
                    .eq(now.iter().flat_map(|h| h.statement.params()))
            {
                let params: Vec<&(dyn ToSql + Sync)> = now
                    .iter()
                    .flat_map(|h| h.params.iter().map(|p| p as &(dyn ToSql + Sync)))
                    .collect();
                let _ = poll_once(self.client.execute(&stmt, &params));
                continue;
            }
            for h in now {
                self.send_held(h);
            }
        }
    }
}

/// A write statement with its parameters, encoded as they will be sent.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) statement: Statement,
    pub(super) params: Vec<Encoded>,
    /// The statement as written (`?N` placeholders); for a write meant for one row,
    /// the bare UPDATE, which `statement` wraps in its check.
    pub(super) sql: String,
    /// It must change exactly one row.
    pub(super) one_row: bool,
}

impl Held {
    /// `params` for `statement`, encoded now (they borrow from the caller); a parameter
    /// of the wrong type is refused here, as sending it would be.
    pub(super) fn new(
        statement: Statement,
        params: &[&dyn Param],
        sql: &str,
        one_row: bool,
    ) -> Result<Self, StoreError> {
        let types = statement.params();
        if types.len() != params.len() {
            return Err(StoreError::Corrupt(format!(
                "a statement takes {} parameters, given {}",
                types.len(),
                params.len()
            )));
        }
        let params = params
            .iter()
            .zip(types)
            .map(|(p, ty)| Encoded::new(p.pg(), ty))
            .collect::<Result<_, _>>()?;
        Ok(Held {
            statement,
            params,
            sql: sql.to_owned(),
            one_row,
        })
    }

    /// Whether `params` encode to exactly this statement's parameters.
    pub(super) fn same_params(&self, params: &[&dyn Param]) -> bool {
        let types = self.statement.params();
        params.len() == self.params.len()
            && params
                .iter()
                .zip(types)
                .zip(&self.params)
                .all(|((p, ty), held)| {
                    Encoded::new(p.pg(), ty).is_ok_and(|e| {
                        e.bytes == held.bytes
                            && matches!(
                                (e.format, held.format),
                                (Format::Text, Format::Text) | (Format::Binary, Format::Binary)
                            )
                    })
                })
    }

    /// The parameters as `tokio-postgres` takes them.
    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `sql` made a check that it changed exactly one row: the count in the error if not.
pub(super) fn one_row_check(sql: &str) -> String {
    format!("WITH changed AS ({sql} RETURNING 1) {}", check("changed"))
}

/// A SELECT that fails unless `cte` returned exactly one row.
fn check(cte: &str) -> String {
    format!(
        "SELECT CASE count(*) WHEN 1 THEN 1 ELSE \
         ('a write meant for one row changed ' || count(*))::int END FROM {cte}"
    )
}

/// The table a held write inserts into (`Some((true, t))`) or updates
/// (`Some((false, t))`); `None` for any other statement, which is never joined.
fn target(sql: &str) -> Option<(bool, &str)> {
    let (insert, rest) = if let Some(rest) = sql.strip_prefix("INSERT INTO ") {
        (true, rest)
    } else {
        (false, sql.strip_prefix("UPDATE ")?)
    };
    let table = rest.split([' ', '(']).next()?;
    (!table.is_empty() && !sql.contains("WITH")).then_some((insert, table))
}

/// How many of the writes of `held`, from the first, can be one statement
/// ([`joined`]): statements in one WITH do not see each other's rows, so an UPDATE of a
/// table an earlier write of the run inserted into ends the run before it.
pub(super) fn joinable(held: &[Held]) -> usize {
    joinable_sql(held.iter().map(|h| h.sql.as_str()))
}

/// [`joinable`] over the statements' text.
fn joinable_sql<'a>(sqls: impl Iterator<Item = &'a str>) -> usize {
    let mut inserted: Vec<&str> = Vec::new();
    let mut n = 0;
    for sql in sqls {
        match target(sql) {
            Some((true, table)) => inserted.push(table),
            Some((false, table)) if !inserted.contains(&table) => {}
            _ => return n,
        }
        n += 1;
    }
    n
}

/// The writes of `held`, in order, as one statement: each in a WITH of its own (all run,
/// once each, in one statement: one message to encode and one statement for the server
/// to run instead of several). A write meant for one row is checked as alone.
pub(super) fn joined(held: &[Held]) -> String {
    joined_sql(
        held.iter()
            .map(|h| (h.sql.as_str(), h.one_row, h.params.len())),
    )
}

/// [`joined`] over each statement's text, whether it is meant for one row, and its
/// number of parameters.
fn joined_sql<'a>(parts: impl Iterator<Item = (&'a str, bool, usize)>) -> String {
    let mut sql = String::from("WITH ");
    let mut by = 0;
    let mut checked = None;
    for (i, (part, one_row, params)) in parts.enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "w{i} AS ({}",
            super::super::sql::renumber(part, by)
        ));
        if one_row {
            sql.push_str(" RETURNING 1");
            checked.get_or_insert(Vec::new()).push(format!("w{i}"));
        }
        sql.push(')');
        by += params;
    }
    match checked {
        None => sql.push_str(" SELECT 1"),
        Some(ctes) => {
            let checks: Vec<String> = ctes.iter().map(|c| format!("({})", check(c))).collect();
            sql.push_str(" SELECT ");
            sql.push_str(&checks.join(" + "));
        }
    }
    sql
}

/// One parameter's bytes on the wire (`None`: NULL), and its format.
#[derive(Debug)]
pub(super) struct Encoded {
    bytes: Option<Vec<u8>>,
    format: Format,
}

impl Encoded {
    fn new(value: &(dyn ToSql + Sync), ty: &Type) -> Result<Self, StoreError> {
        let mut out = BytesMut::new();
        let bytes = match value.to_sql_checked(ty, &mut out) {
            Ok(IsNull::Yes) => None,
            Ok(IsNull::No) => Some(out.to_vec()),
            Err(e) => {
                return Err(StoreError::Corrupt(format!(
                    "a parameter of type {ty}: {e}"
                )));
            }
        };
        Ok(Encoded {
            bytes,
            format: value.encode_format(ty),
        })
    }
}

impl ToSql for Encoded {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.bytes {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    /// Checked when encoded (`Encoded::new`), against the same statement's types.
    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        self.format
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::{joinable_sql, joined_sql};

    #[test]
    fn inserts_and_updates_of_other_tables_join_and_an_update_of_a_new_row_does_not() {
        let approve = [
            "INSERT INTO approvals (a) VALUES (?1)",
            "INSERT INTO audit (b, c) VALUES (?1, ?2)",
            "UPDATE requests SET s = ?2 WHERE id = ?1",
            "INSERT INTO audit (b, c) VALUES (?1, ?2)",
        ];
        assert_eq!(joinable_sql(approve.into_iter()), 4);
        let break_glass = [
            "INSERT INTO requests (id) VALUES (?1)",
            "INSERT INTO audit (b) VALUES (?1)",
            "UPDATE requests SET s = ?2 WHERE id = ?1",
        ];
        assert_eq!(
            joinable_sql(break_glass.into_iter()),
            2,
            "the UPDATE sees the row"
        );
        assert_eq!(joinable_sql(["SELECT pg_notify('x', ?1)"].into_iter()), 0);
        assert_eq!(
            joinable_sql(["WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x"].into_iter()),
            0
        );
    }

    #[test]
    fn a_joined_statement_numbers_parameters_in_order_and_checks_one_row_writes() {
        let sql = joined_sql(
            [
                ("INSERT INTO approvals (a, b) VALUES (?1, ?2)", false, 2),
                ("UPDATE requests SET s = ?2 WHERE id = ?1", true, 2),
                ("INSERT INTO audit (c) VALUES (?1)", false, 1),
            ]
            .into_iter(),
        );
        assert_eq!(
            sql,
            "WITH w0 AS (INSERT INTO approvals (a, b) VALUES (?1, ?2)), \
             w1 AS (UPDATE requests SET s = ?4 WHERE id = ?3 RETURNING 1), \
             w2 AS (INSERT INTO audit (c) VALUES (?5)) \
             SELECT (SELECT CASE count(*) WHEN 1 THEN 1 ELSE \
             ('a write meant for one row changed ' || count(*))::int END FROM w1)"
        );
        let plain = joined_sql([("INSERT INTO t (a) VALUES (?1)", false, 1)].into_iter());
        assert_eq!(plain, "WITH w0 AS (INSERT INTO t (a) VALUES (?1)) SELECT 1");
    }
}
