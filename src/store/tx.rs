//! [`Tx`]: one transaction of the store, the only door through which the rest of the
//! crate reads and writes data (every query lives in a `store/` module and takes one).

use rusqlite::Connection;

use super::StoreError;
use super::pg::Conn as PgConn;
use super::sql::{Param, Row};
use super::writer::held::{self, Held};

/// One transaction: a read snapshot ([`Store::read`](super::Store::read)) or an atomic
/// write ([`Store::write`](super::Store::write)), on SQLite or PostgreSQL. Outside
/// `store/` it is opaque: it can only be handed to the store's query functions, so no
/// SQL lives anywhere else.
pub struct Tx<'c> {
    on: On<'c>,
    /// A write transaction (only those may queue work for after their COMMIT).
    write: bool,
    /// Statements left to a SQLite read outside a transaction
    /// ([`Tx::lite_single`]); `None` in a transaction.
    single: std::cell::Cell<Option<u8>>,
    /// A SQLite write in a batch: where its INSERTs are held (`writer/held.rs`).
    held: Option<&'c Held>,
}

/// The connection a transaction runs on.
enum On<'c> {
    Lite(&'c Connection),
    Pg(&'c PgConn),
}

impl<'c> Tx<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Tx {
            on: On::Lite(conn),
            write: false,
            single: std::cell::Cell::new(None),
            held: None,
        }
    }

    /// One statement on SQLite outside any transaction: a single statement reads one
    /// snapshot by itself (see [`Store::read_single`](super::Store::read_single)); a
    /// second one is refused ([`StoreError::Nested`]).
    pub(super) fn lite_single(conn: &'c Connection) -> Self {
        Tx {
            on: On::Lite(conn),
            write: false,
            single: std::cell::Cell::new(Some(1)),
            held: None,
        }
    }

    /// A write transaction on SQLite (see [`Tx::after_commit`]); in a batch, with where
    /// its INSERTs are held.
    pub(super) fn writing(conn: &'c Connection, held: Option<&'c Held>) -> Self {
        Tx {
            on: On::Lite(conn),
            write: true,
            single: std::cell::Cell::new(None),
            held,
        }
    }

    pub(super) fn postgres(conn: &'c PgConn) -> Self {
        Tx {
            on: On::Pg(conn),
            write: false,
            single: std::cell::Cell::new(None),
            held: None,
        }
    }

    /// A write transaction on PostgreSQL (see [`Tx::after_commit`]).
    pub(super) fn postgres_writing(conn: &'c PgConn) -> Self {
        Tx {
            on: On::Pg(conn),
            write: true,
            single: std::cell::Cell::new(None),
            held: None,
        }
    }

    /// Runs `f` once this write transaction has committed, on the thread that committed
    /// it, before the operation's answer leaves; never if it rolls back (nor if this
    /// write alone is undone inside a batch). For counting what is durable (metrics):
    /// `f` must be quick and must not use the store. In a read transaction, nothing.
    pub fn after_commit(&self, f: impl FnOnce() + 'static) {
        if self.write {
            super::after::push(Box::new(f));
        }
    }

    /// Whether this transaction runs on PostgreSQL (for the few statements that differ).
    pub(super) fn is_postgres(&self) -> bool {
        matches!(self.on, On::Pg(_))
    }

    /// The SQLite connection, for what exists only there (the bench's bulk loader, tests
    /// that look at query plans); an error on PostgreSQL.
    pub(super) fn sqlite(&self) -> Result<&'c Connection, StoreError> {
        match self.on {
            On::Lite(conn) => {
                self.before_send(conn, true)?;
                Ok(conn)
            }
            On::Pg(_) => Err(StoreError::Unsupported("this needs the SQLite backend")),
        }
    }

    /// The SQLite connection, for the store's own tests of SQLite behaviour.
    #[cfg(test)]
    pub(super) fn sql(&self) -> &'c Connection {
        self.sqlite().expect("a SQLite transaction")
    }

    /// Before a SQLite statement goes out (see `Held::before_send`).
    fn before_send(&self, conn: &Connection, writes: bool) -> Result<(), StoreError> {
        match self.held {
            Some(held) => held.before_send(conn, writes),
            None => Ok(()),
        }
    }

    /// Counts a statement of a single-statement read (see [`Tx::lite_single`]).
    fn statement(&self) -> Result<(), StoreError> {
        match self.single.get() {
            None => Ok(()),
            Some(0) => Err(StoreError::Nested),
            Some(n) => {
                self.single.set(Some(n - 1));
                Ok(())
            }
        }
    }

    /// Runs a statement that returns no rows; how many rows it changed. On PostgreSQL it
    /// counts as touching everything a read sent ahead may depend on (`store/ahead.rs`).
    pub(super) fn exec(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StoreError> {
        self.exec_touching(sql, params, None)
    }

    /// [`Tx::exec`] of a write that touches only `touches` (`None`: anything) of what a
    /// read sent ahead may depend on. With `Some`, it must also change no credential (a
    /// token's or session's owner, revoked mark or end, a disabled mark): only writes
    /// that name nothing make the replicas forget the token rows they remember
    /// (`store/credentials.rs`).
    pub(super) fn exec_touching(
        &self,
        sql: &str,
        params: &[&dyn Param],
        touches: Option<&[super::Touch<'_>]>,
    ) -> Result<u64, StoreError> {
        match self.on {
            On::Lite(conn) => {
                self.statement()?;
                self.before_send(conn, true)?;
                let params: Vec<_> = params.iter().map(|p| p.lite()).collect();
                let n = conn.prepare_cached(sql)?.execute(params.as_slice())?;
                Ok(n as u64)
            }
            On::Pg(conn) => conn.execute(sql, params, keyed(sql, touches)),
        }
    }

    /// Runs a write statement whose answer nothing needs (an INSERT of a row that was
    /// checked not to clash). On PostgreSQL inside a write it is pipelined, not waited
    /// for, and a failure aborts the transaction so that it cannot commit (`Conn::put`);
    /// on SQLite inside a batch it is held until the write ends or sends something else
    /// (`writer/held.rs`).
    pub(super) fn put(&self, sql: &str, params: &[&dyn Param]) -> Result<(), StoreError> {
        self.put_touching(sql, params, None)
    }

    /// [`Tx::put`] of a write that touches only `touches` (`None`: anything) of what a
    /// read sent ahead may depend on (`store/ahead.rs`); with `Some`, it changes no
    /// credential either (see [`Tx::exec_touching`]).
    pub(super) fn put_touching(
        &self,
        sql: &str,
        params: &[&dyn Param],
        touches: Option<&[super::Touch<'_>]>,
    ) -> Result<(), StoreError> {
        match self.on {
            On::Lite(_) => {
                if let Some(held) = self.held
                    && held.hold(sql, params, false)?
                {
                    return Ok(());
                }
                self.exec(sql, params).map(drop)
            }
            On::Pg(conn) => conn.put(sql, params, keyed(sql, touches)),
        }
    }

    /// [`Tx::put`] for a write that must change exactly one row (an UPDATE of a row this
    /// write transaction read under the write lock): any other count is an error that
    /// fails the write (and, once sent without waiting, the transaction). It touches
    /// `touches` (as [`Tx::put_touching`]).
    pub(super) fn put_one(
        &self,
        sql: &str,
        params: &[&dyn Param],
        touches: Option<&[super::Touch<'_>]>,
    ) -> Result<(), StoreError> {
        match self.on {
            On::Lite(_) => {
                if let Some(h) = self.held
                    && h.hold(sql, params, true)?
                {
                    return Ok(());
                }
                held::one_row(self.exec(sql, params)? as usize)
            }
            // A count other than 1 makes a cast fail, with the count in its message.
            On::Pg(conn) => conn.put_one(sql, params, keyed(sql, touches)),
        }
    }

    /// The audit chain's head as this write transaction left it, when known without a
    /// query: after an append in the same transaction (PostgreSQL) or batch (SQLite).
    pub(super) fn audit_head(&self) -> Option<(i64, String)> {
        match self.on {
            On::Lite(_) => self.held.and_then(Held::audit_head),
            On::Pg(conn) => conn.audit_head(),
        }
    }

    /// Records the head an append just wrote (see [`Tx::audit_head`]).
    pub(super) fn set_audit_head(&self, seq: i64, hash: &str) {
        match self.on {
            On::Lite(_) => {
                if let Some(held) = self.held {
                    held.set_audit_head(seq, hash);
                }
            }
            On::Pg(conn) => conn.set_audit_head(seq, hash),
        }
    }

    /// Calls `each` with every row of a query, in order; stops at its first error.
    pub(super) fn each<E: From<StoreError>>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut each: impl FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.on {
            On::Lite(conn) => {
                self.statement()?;
                self.before_send(conn, false)?;
                let params: Vec<_> = params.iter().map(|p| p.lite()).collect();
                let mut stmt = conn.prepare_cached(sql).map_err(StoreError::from)?;
                let mut rows = stmt.query(params.as_slice()).map_err(StoreError::from)?;
                while let Some(row) = rows.next().map_err(StoreError::from)? {
                    each(&Row::Lite(row))?;
                }
                Ok(())
            }
            On::Pg(conn) => {
                for row in conn.query(sql, params)? {
                    each(&Row::Pg(&row))?;
                }
                Ok(())
            }
        }
    }

    /// Calls `each(i, row)` with every row of query `i` of `queries`, query by query, in
    /// order; stops at its first error. On PostgreSQL all queries are sent before the
    /// first answer is awaited: one round trip for all (for reads a write does not
    /// branch on between them).
    pub(super) fn each_of<E: From<StoreError>>(
        &self,
        queries: &[(&str, &[&dyn Param])],
        mut each: impl FnMut(usize, &Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if queries.is_empty() {
            return Ok(());
        }
        match self.on {
            On::Lite(_) => {
                for (i, (sql, params)) in queries.iter().enumerate() {
                    self.each(sql, params, |row| each(i, row))?;
                }
                Ok(())
            }
            On::Pg(conn) => {
                for (i, rows) in conn.query_many(queries)?.iter().enumerate() {
                    for row in rows {
                        each(i, &Row::Pg(row))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Every row of a query, each made into a `T` by `f`.
    pub(super) fn all<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.each(sql, params, |row| {
            out.push(f(row)?);
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// The first row of a query made into a `T` by `f`, if there is one.
    pub(super) fn opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self.on {
            On::Lite(conn) => {
                self.statement()?;
                self.before_send(conn, false)?;
                let params: Vec<_> = params.iter().map(|p| p.lite()).collect();
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(params.as_slice())?;
                match rows.next()? {
                    Some(row) => Ok(Some(f(&Row::Lite(row))?)),
                    None => Ok(None),
                }
            }
            On::Pg(conn) => match conn.query(sql, params)?.first() {
                Some(row) => Ok(Some(f(&Row::Pg(row))?)),
                None => Ok(None),
            },
        }
    }

    /// The one row a query always returns (an aggregate, `EXISTS`), made into a `T`.
    pub(super) fn one<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.opt(sql, params, f)?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from {sql}")))
    }

    /// Runs raw SQL: for tests that hand-edit the database as an attacker would.
    #[cfg(test)]
    pub(crate) fn tamper(&self, sql: &str) -> Result<(), super::StoreError> {
        match self.on {
            On::Lite(conn) => {
                self.before_send(conn, true)?;
                Ok(conn.execute_batch(sql)?)
            }
            On::Pg(conn) => {
                conn.forget_head();
                conn.touch(None);
                conn.batch(sql)
            }
        }
    }
}

/// The keys `sql` may be said to touch: `touches`, unless it writes a table that holds
/// credentials (tokens, sessions, disabled marks, identities), which counts as touching
/// everything whatever it says, so that every replica forgets the token rows it
/// remembers (`store/credentials.rs`). The one write of such a table allowed keys is a
/// token's last use, which no lookup reads. (A declaration made for reads sent ahead
/// cannot so silently stop the forgetting.)
fn keyed<'t, 'a>(
    sql: &str,
    touches: Option<&'t [super::Touch<'a>]>,
) -> Option<&'t [super::Touch<'a>]> {
    const CREDENTIALS: [&str; 4] = ["tokens", "sessions", "disabled_users", "identities"];
    let last_use = sql.starts_with(super::tokens::LAST_USE);
    let credentials = CREDENTIALS.iter().any(|t| sql.contains(t)) && !last_use;
    debug_assert!(
        touches.is_none() || !credentials,
        "a write of credentials names what it touches: {sql}"
    );
    touches.filter(|_| !credentials)
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

#[cfg(test)]
mod tests {
    use super::keyed;

    #[test]
    fn only_a_tokens_last_use_among_credential_writes_keeps_what_it_names() {
        let none: &[super::super::Touch<'_>] = &[];
        assert!(keyed(super::super::tokens::LAST_USE, Some(none)).is_some());
        let audit = "INSERT INTO audit (seq, at) VALUES (?1, ?2)";
        assert!(keyed(audit, Some(none)).is_some());
        assert!(keyed("UPDATE sessions SET revoked_at = ?1", None).is_none());
    }

    /// A write of a credential table that names keys is a mistake: tests (debug
    /// builds) stop at it; a release counts it as touching everything.
    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "names what it touches"))]
    fn a_credential_write_that_names_keys_touches_everything() {
        let none: &[super::super::Touch<'_>] = &[];
        assert!(
            keyed(
                "UPDATE tokens SET revoked_at = ?2 WHERE hash = ?1",
                Some(none)
            )
            .is_none()
        );
    }
}
