//! `countersign migrate-store --to postgres`: copies the SQLite database of the data
//! folder into the empty PostgreSQL database the config's `[storage]` names, in one
//! transaction, and checks the copy (audit chain, rows per table, database id, KRL
//! version). Run with the server stopped.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::service::migrate_to_postgres;

/// Where `migrate-store` moves the state.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StoreTarget {
    /// The PostgreSQL database of the config's `[storage]` section.
    Postgres,
}

/// `countersign migrate-store` options.
#[derive(Debug, clap::Args)]
pub struct MigrateStoreArgs {
    /// The backend to move the state to; the config's [storage] section names it.
    #[arg(long, value_enum)]
    pub to: StoreTarget,
}

/// Runs `migrate-store`.
pub(super) fn run(config: &Path, args: &MigrateStoreArgs) -> anyhow::Result<ExitCode> {
    let StoreTarget::Postgres = args.to;
    let config = Config::load(config)?;
    // No server may write the SQLite file while it is copied (nor start on the
    // PostgreSQL database before the copy is in).
    let _lock = crate::daemon::PidFile::lock(&config)
        .context("stop the server first: migrate-store copies a database no server is using")?;
    let done = migrate_to_postgres(&config)?;
    outln!(
        "copied {} into PostgreSQL ({}) in one transaction; the copy is checked:",
        done.source.display(),
        done.target
    )?;
    let width = done
        .tables
        .iter()
        .map(|(table, _)| table.len())
        .chain(["database id".len()])
        .max()
        .unwrap_or(0);
    for (table, rows) in &done.tables {
        outln!("  {table:<width$} {rows:>10} rows")?;
    }
    outln!("  {:<width$} {}", "database id", done.database)?;
    outln!(
        "  {:<width$} seq {} hash {} (chain verified)",
        "audit head",
        done.audit_seq,
        done.audit_head
    )?;
    outln!("  {:<width$} {}", "KRL version", done.krl_version)?;
    outln!()?;
    outln!(
        "Next: start the replicas with this config (countersign serve); keep {} unchanged, \
         as a backup of the state before the move. Do not start a server on it again: it \
         would fork the history.",
        done.source.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
