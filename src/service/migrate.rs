//! Moving the state from SQLite to PostgreSQL (`countersign migrate-store --to
//! postgres`): the config names the target (`[storage] backend = "postgres"`), and the
//! source is the SQLite file of the same config's `data_dir`. The copy is made in one
//! PostgreSQL transaction (`store/copy.rs`), then checked: the copy's audit chain
//! verifies to the same head, every table holds as many rows, and the database id and
//! KRL version are the same, so the state mark beside the CA key still matches.

use std::path::PathBuf;

use crate::audit::{self, AuditError};
use crate::config::{Config, StorageSettings};
use crate::state::{self, StateError};
use crate::store::copy::{self, CopyError, TableRows};
use crate::store::{Store, StoreError, certificates, meta};

/// Why the state was not moved (or the copy did not check out).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The command cannot run with this config or this source.
    #[error("{0}")]
    Refused(String),
    /// The copy was refused or failed; nothing was written to PostgreSQL.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// The copy was committed but does not match its source.
    #[error(
        "the copy in PostgreSQL does not match the SQLite database: {0}. Do not start \
         replicas on it: drop and recreate the PostgreSQL database, then run migrate-store \
         again"
    )]
    Mismatch(String),
    /// The source's audit chain does not verify: it is not copied.
    #[error("the SQLite database's audit chain does not verify, so it is not copied")]
    SourceAudit(#[source] AuditError),
    /// The copy's audit chain does not verify.
    #[error("the copy's audit chain does not verify")]
    CopyAudit(#[source] AuditError),
    /// The `[storage]` settings could not be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// A database could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was moved, as checked after the copy.
#[derive(Debug, Clone)]
pub struct Migrated {
    /// The SQLite file copied from (kept as it was).
    pub source: PathBuf,
    /// The PostgreSQL URL copied to, as configured (no password).
    pub target: String,
    /// Rows per table, in copy order (the same in both databases).
    pub tables: Vec<(String, i64)>,
    /// The database id both share.
    pub database: String,
    /// The newest audit event's number.
    pub audit_seq: i64,
    /// The newest audit event's hash.
    pub audit_head: String,
    /// The KRL version both give.
    pub krl_version: u64,
}

/// What one database says of itself, to compare source and copy.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    tables: Vec<TableRows>,
    database: String,
    audit_seq: i64,
    audit_head: String,
    audit_events: i64,
    krl_version: u64,
}

fn facts(store: &Store, verified: &audit::Verified) -> Result<Facts, StoreError> {
    let tables = copy::row_counts(store)?;
    let (database, head, krl_version) = store.read(|tx| {
        Ok::<_, StoreError>((
            meta::database_id(tx)?,
            meta::audit_head(tx)?,
            certificates::krl_version(tx)?,
        ))
    })?;
    Ok(Facts {
        tables,
        database,
        audit_seq: head.seq,
        audit_head: head.hash,
        audit_events: verified.events,
        krl_version,
    })
}

/// Copies the SQLite database of `config`'s data folder into the empty PostgreSQL
/// database `config` names, then checks the copy. The caller keeps servers off the
/// SQLite file meanwhile (the pid file's lock).
pub fn migrate_to_postgres(config: &Config) -> Result<Migrated, MigrateError> {
    let Some(options) = state::postgres_options(config)? else {
        return Err(MigrateError::Refused(format!(
            "{} keeps the state in SQLite: set [storage] backend = \"postgres\" (with its url and \
             password_file) in the config to migrate; the source is the SQLite file of the same \
             data_dir",
            config.path.display()
        )));
    };
    let source_path = config.database_path();
    match std::fs::symlink_metadata(&source_path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MigrateError::Refused(format!(
                "there is no SQLite database at {} to migrate",
                source_path.display()
            )));
        }
        Err(e) => {
            return Err(MigrateError::Refused(format!(
                "cannot look at the SQLite database {}: {e}",
                source_path.display()
            )));
        }
    }
    if Store::peek_schema_version(&source_path)? == 0 {
        return Err(MigrateError::Refused(format!(
            "the SQLite database {} is empty: there is nothing to migrate",
            source_path.display()
        )));
    }
    // A target in use says so first (read without creating the schema): after a move,
    // the SQLite file is behind the state mark the replicas advanced, and that is not
    // the reason to give.
    if let Some(ca) = Store::peek_postgres_ca(&options)? {
        return Err(CopyError::NotEmpty(format!("it records CA key {}", ca.fingerprint)).into());
    }
    // The source is opened as `serve` on SQLite would open it (read only): it must
    // belong to the configured CA key and not be behind the state mark, or the copy
    // would be refused at the first start on PostgreSQL.
    let mut on_sqlite = config.clone();
    on_sqlite.storage = StorageSettings::Sqlite;
    let (source, _) = state::open_existing(&on_sqlite)?;
    let before = audit::verify_store(&source).map_err(MigrateError::SourceAudit)?;
    let target = Store::open_postgres(&options)?;
    copy::sqlite_to_postgres(&source, &target)?;

    let after = audit::verify_store(&target).map_err(MigrateError::CopyAudit)?;
    let want = facts(&source, &before)?;
    let got = facts(&target, &after)?;
    if want != got {
        return Err(MigrateError::Mismatch(format!(
            "SQLite has {want:?}, PostgreSQL {got:?}"
        )));
    }
    let url = match &config.storage {
        StorageSettings::Postgres(pg) => pg.url.clone(),
        StorageSettings::Sqlite => String::new(),
    };
    Ok(Migrated {
        source: source_path,
        target: url,
        tables: got
            .tables
            .into_iter()
            .map(|t| (t.table.to_owned(), t.rows))
            .collect(),
        database: got.database,
        audit_seq: got.audit_seq,
        audit_head: got.audit_head,
        krl_version: got.krl_version,
    })
}
