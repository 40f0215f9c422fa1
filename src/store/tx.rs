//! [`Tx`]: one transaction of the store, the only door through which the rest of the
//! crate reads and writes data (every query lives in a `store/` module and takes one).

use rusqlite::Connection;

/// One transaction: a read snapshot ([`Store::read`](super::Store::read)) or an atomic
/// write ([`Store::write`](super::Store::write)). Outside `store/` it is opaque: it can
/// only be handed to the store's query functions, so no SQL lives anywhere else and a
/// second backend needs to change nothing above this seam.
pub struct Tx<'c> {
    conn: &'c Connection,
}

impl<'c> Tx<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Tx { conn }
    }

    /// The SQLite connection the transaction runs on, for the store's queries.
    pub(super) fn sql(&self) -> &'c Connection {
        self.conn
    }

    /// Runs raw SQL: for tests that hand-edit the database as an attacker would.
    #[cfg(test)]
    pub(crate) fn tamper(&self, sql: &str) -> Result<(), super::StoreError> {
        Ok(self.conn.execute_batch(sql)?)
    }
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}
