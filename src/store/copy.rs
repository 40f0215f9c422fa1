//! Copying a whole SQLite database into an empty PostgreSQL one (`countersign
//! migrate-store`): every row of every table, unchanged, in one PostgreSQL transaction.
//!
//! What is kept as it was, and why:
//! - the audit chain byte for byte (seq, at, actor, action, request_id, serial, detail,
//!   prev_hash, hash): it is the evidence, and `audit verify` recomputes it;
//! - `meta.database_id` (and the KRL floor, and the recorded policy): the state mark
//!   beside the CA key names the database by it, so a replica started on the copy finds
//!   the state it published;
//! - certificate row ids (the identity sequence is moved past them), revocation numbers
//!   (`revoked_seq`, so the KRL version is the same) and carried revocations;
//! - approvals in the order they were given (their ids are assigned in that order).
//!
//! The target must hold no countersign data ([`CopyError::NotEmpty`]): the copy never
//! merges two histories. The check runs inside the copy's transaction, which holds the
//! advisory write lock every write takes, so no replica writes in between.

use super::sql::Param;
use super::{Store, StoreError, Tx};

/// Rows sent to PostgreSQL in one INSERT.
const BATCH_ROWS: usize = 500;

mod tables;

use tables::{Kind, TABLES, Table};

/// Why a copy was not made.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds countersign data; nothing was changed.
    #[error(
        "the PostgreSQL database already holds countersign data ({0}); migrate-store copies \
         into an empty database only, and nothing was changed"
    )]
    NotEmpty(String),
    /// The source is not SQLite or the target not PostgreSQL.
    #[error("{0}")]
    Backends(&'static str),
    /// The source holds approvals or certificates without their request (its foreign
    /// keys were turned off); nothing was copied.
    #[error(
        "the SQLite database holds {0} without their request (edited with its foreign \
         keys off?); nothing was copied"
    )]
    Orphans(String),
    /// Reading or writing failed; the PostgreSQL transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many rows one table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    /// The table.
    pub table: &'static str,
    /// Its rows.
    pub rows: i64,
}

/// The number of rows of every copied table (and `meta`), in copy order.
pub fn row_counts(store: &Store) -> Result<Vec<TableRows>, StoreError> {
    store.read(counts)
}

fn counts(tx: &Tx<'_>) -> Result<Vec<TableRows>, StoreError> {
    let mut out = Vec::with_capacity(TABLES.len() + 1);
    for table in TABLES.iter().map(|t| t.name).chain(["meta"]) {
        let rows = tx.one(&format!("SELECT count(*) FROM {table}"), &[], |r| {
            r.get::<i64>(0)
        })?;
        out.push(TableRows { table, rows });
    }
    Ok(out)
}

/// Copies every row of the SQLite store `source` (one read snapshot) into the empty
/// PostgreSQL store `target`, in one transaction holding the write lock: all or nothing.
/// Returns the rows copied per table.
pub fn sqlite_to_postgres(source: &Store, target: &Store) -> Result<Vec<TableRows>, CopyError> {
    if source.is_postgres() || !target.is_postgres() {
        return Err(CopyError::Backends(
            "the copy goes from a SQLite database to a PostgreSQL one",
        ));
    }
    target.write(|to| {
        refuse_if_not_empty(to)?;
        source.read(|from| {
            let mut copied = Vec::with_capacity(TABLES.len() + 1);
            for table in TABLES {
                let rows = copy_table(from, to, table)?;
                copied.push(TableRows {
                    table: table.name,
                    rows,
                });
            }
            copy_meta(from, to)?;
            refuse_orphans(to)?;
            copied.push(TableRows {
                table: "meta",
                rows: 1,
            });
            // New certificates get ids after the copied ones.
            for table in ["certificates", "host_certificates"] {
                to.one(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         coalesce(max(id), 0) + 1, false) FROM {table}"
                    ),
                    &[],
                    |r| r.get::<i64>(0),
                )?;
            }
            Ok::<_, CopyError>(copied)
        })
    })
}

/// Refuses a copy with approvals or certificates whose request it does not hold: on
/// PostgreSQL no foreign key stops them (`pg/migrations.rs`, schema version 16), and a
/// SQLite file edited with its keys off could hold some.
fn refuse_orphans(to: &Tx<'_>) -> Result<(), CopyError> {
    let mut found = Vec::new();
    for table in ["approvals", "certificates"] {
        let sql = format!(
            "SELECT count(*) FROM {table} t \
             WHERE NOT EXISTS (SELECT 1 FROM requests r WHERE r.id = t.request_id)"
        );
        let n = to.one(&sql, &[], |r| r.get::<i64>(0))?;
        if n > 0 {
            found.push(format!("{n} row(s) of {table}"));
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(CopyError::Orphans(found.join(" and ")))
    }
}

/// Refuses a target that holds any row (beyond the `meta` row its migration made), or
/// whose `meta` row was changed since.
fn refuse_if_not_empty(to: &Tx<'_>) -> Result<(), CopyError> {
    let mut held: Vec<String> = counts(to)?
        .into_iter()
        .filter(|t| t.table != "meta" && t.rows > 0)
        .map(|t| format!("{}: {} rows", t.table, t.rows))
        .collect();
    let meta_used = to.one(
        "SELECT count(*) FROM meta WHERE krl_floor <> 0 OR policy IS NOT NULL \
         OR host_ca_key IS NOT NULL",
        &[],
        |r| r.get::<i64>(0),
    )?;
    if meta_used > 0 {
        held.push("meta: a recorded policy or KRL floor".into());
    }
    if held.is_empty() {
        Ok(())
    } else {
        Err(CopyError::NotEmpty(held.join(", ")))
    }
}

/// One column's value, as read from the source.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Value {
    fn param(&self) -> &dyn Param {
        match self {
            Value::Int(v) => v,
            Value::Text(v) => v,
        }
    }
}

/// Streams `table` from `from` into `to`, [`BATCH_ROWS`] rows an INSERT; the rows copied.
fn copy_table(from: &Tx<'_>, to: &Tx<'_>, table: &Table) -> Result<i64, StoreError> {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    let select = format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        table.name,
        table.order
    );
    let mut pending: Vec<Value> = Vec::with_capacity(BATCH_ROWS * names.len());
    let mut copied = 0i64;
    from.each(&select, &[], |row| {
        for (i, (_, kind)) in table.columns.iter().enumerate() {
            pending.push(match kind {
                Kind::Int => Value::Int(row.get(i)?),
                Kind::Text => Value::Text(row.get(i)?),
            });
        }
        copied += 1;
        if pending.len() >= BATCH_ROWS * names.len() {
            insert(to, table.name, &names, &pending)?;
            pending.clear();
        }
        Ok::<_, StoreError>(())
    })?;
    if !pending.is_empty() {
        insert(to, table.name, &names, &pending)?;
    }
    Ok(copied)
}

/// One multi-row INSERT of `values` (whole rows of `columns`, in order).
fn insert(to: &Tx<'_>, table: &str, columns: &[&str], values: &[Value]) -> Result<(), StoreError> {
    let width = columns.len();
    let rows: Vec<String> = (0..values.len() / width)
        .map(|r| {
            let cells: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    // A certificate keeps its row id (the column is GENERATED BY DEFAULT).
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {}",
        columns.join(", "),
        rows.join(", ")
    );
    let params: Vec<&dyn Param> = values.iter().map(Value::param).collect();
    to.exec(&sql, &params)?;
    Ok(())
}

/// The database's identity, KRL floor and recorded policy, over the row the target's
/// migration created.
fn copy_meta(from: &Tx<'_>, to: &Tx<'_>) -> Result<(), StoreError> {
    type MetaRow = (String, i64, Option<String>, Option<String>);
    let (database_id, krl_floor, policy, host_ca_key): MetaRow = from.one(
        "SELECT database_id, krl_floor, policy, host_ca_key FROM meta WHERE id = 1",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    // The digest every write on PostgreSQL checks, of the text as recorded (a database
    // from before the column has none).
    let digest = policy.as_deref().map(crate::policy::summary::text_digest);
    let n = to.exec(
        "UPDATE meta SET database_id = ?1, krl_floor = ?2, policy = ?3, host_ca_key = ?4, \
         policy_digest = ?5 WHERE id = 1",
        &[&database_id, &krl_floor, &policy, &host_ca_key, &digest],
    )?;
    if n != 1 {
        return Err(StoreError::Corrupt(
            "the PostgreSQL database has no meta row".into(),
        ));
    }
    Ok(())
}
