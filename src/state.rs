//! The CA's state as one whole: the database, the CA key it belongs to, and the
//! high-water mark beside the key. Losing or rolling back one half must never un-revoke
//! a certificate, so every command that opens state goes through here.
//!
//! The rules:
//! - The database records the CA keys it belongs to (`store/meta.rs`, with the periods
//!   they were in use, so that a later rotation adds a key instead of breaking this). A key
//!   and a database that do not belong together are refused, whatever the command.
//! - Nothing creates one half of the state next to the other. `serve` and `init` create
//!   both in an empty data folder; `init` also creates the database for a key that never
//!   had one (no mark beside it). A database without its key, or a key whose mark says a
//!   database existed, is refused with what to restore.
//! - The mark (`state/mark.rs`) records the newest state this CA published: the KRL
//!   version and the audit head. It advances with every revocation and new KRL version
//!   before the answer that publishes it leaves ([`Guard`]), and at every start and stop.
//!   A database behind it (an older copy, another database, another history) is refused
//!   at start; `serve --accept-rollback` takes it anyway, on the record
//!   (`state.rollback_accepted`), and raises the KRL version's floor above the mark so
//!   that servers replace their newer KRL.
//! - Each replica keeps its own mark. With SQLite (one server), a database this CA
//!   already bound is refused without its mark (a restore onto a new host, a deleted
//!   mark) until `--accept-rollback`; a database from before the binding is taken as it
//!   is. A replica of a shared database (PostgreSQL, a later backend) without a mark will
//!   take the database as it finds it.
//! - The folder and files are checked like the CA key (`state/files.rs`).

pub mod files;
mod guard;
pub mod mark;
mod open;
mod paths;
mod rollback;
#[cfg(test)]
mod tests;

use crate::audit;
use crate::ca::CaError;
use crate::store::StoreError;
use mark::MarkError;

pub use guard::Guard;
pub use open::forget_unbound_key;
pub use open::postgres_options;
pub use open::{open_existing, open_store};
pub use paths::{Paths, Plan, plan};

/// The flag that takes a database older than the mark.
pub const ACCEPT_ROLLBACK_FLAG: &str = "--accept-rollback";

/// Why the state cannot be opened; every message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The halves of the state do not belong together, or one is missing.
    #[error("{0}")]
    Mismatch(String),
    /// The database is older than what this CA published (or another history).
    #[error("{0}")]
    Rollback(String),
    /// A folder or file countersign trusts is not safe.
    #[error(transparent)]
    Unsafe(#[from] files::UnsafeFile),
    /// The mark could not be read or written.
    #[error(transparent)]
    Mark(#[from] MarkError),
    /// The CA key could not be loaded or created.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The database could not be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit chain does not verify.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// What the command opening the state may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `serve`: creates both halves in an empty data folder (first use); otherwise both
    /// must exist and match the mark, unless `accept_rollback` gives the operator's reason
    /// for taking an older database. Keeps the mark.
    Serve {
        /// With `--accept-rollback`: the operator's `--reason` for taking an older database.
        accept_rollback: Option<String>,
        /// With `--new-replica`: this server joins a shared PostgreSQL database it has no
        /// state mark of yet (a new replica), and starts one from what the database holds.
        new_replica: bool,
    },
    /// `init`: creates what is missing when that cannot split the state. A key that
    /// countersign made but whose database and mark are both gone gets a new database
    /// only with `new_database` (it surely had one). Keeps the mark.
    Init {
        /// `--new-database`: allow a new database beside a key that had one.
        new_database: bool,
    },
    /// Every other command: the state must exist and belong together; creates nothing.
    Existing,
}
