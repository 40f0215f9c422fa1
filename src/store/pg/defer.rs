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

use crate::store::StoreError;
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
}

impl Op {
    pub(super) fn new(name: String) -> Self {
        Op {
            name,
            savepoint: false,
            held: Vec::new(),
        }
    }
}

/// A write statement with its parameters, encoded as they will be sent.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) statement: Statement,
    pub(super) params: Vec<Encoded>,
}

impl Held {
    /// `params` for `statement`, encoded now (they borrow from the caller); a parameter
    /// of the wrong type is refused here, as sending it would be.
    pub(super) fn new(statement: Statement, params: &[&dyn Param]) -> Result<Self, StoreError> {
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
        Ok(Held { statement, params })
    }

    /// The parameters as `tokio-postgres` takes them.
    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p as &(dyn ToSql + Sync))
            .collect()
    }
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
