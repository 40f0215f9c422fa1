//! Where the parts of the state live, and what a command may create from what exists
//! ([`plan`]), before the CA key is opened.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{Access, StateError, files, mark};
use crate::ca::CertificateAuthority;
use crate::config::{Config, StorageSettings};
use crate::store::{Store, StoreError};

/// Where the parts of the state live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `server.data_dir`.
    pub data_dir: PathBuf,
    /// The SQLite database file (with `[storage] backend = "sqlite"`).
    pub database: PathBuf,
    /// The database, in words, for messages: "the database FILE", or "the PostgreSQL
    /// database URL".
    pub database_label: String,
    /// The CA key file, or with `[ca] agent` the public key line the agent must hold.
    pub key: Option<PathBuf>,
    /// The high-water mark file, beside the CA key (or in the data folder without one).
    pub mark: PathBuf,
}

impl Paths {
    /// Where `config` puts each part.
    pub fn of(config: &Config) -> Paths {
        let key = if config.ca.agent {
            config.ca.agent_public_key.clone()
        } else {
            Some(config.ca.key_file.clone())
        };
        let key_dir = key
            .as_deref()
            .and_then(Path::parent)
            .map_or_else(|| config.server.data_dir.clone(), Path::to_owned);
        let database_label = match &config.storage {
            StorageSettings::Sqlite => {
                format!("the database {}", config.database_path().display())
            }
            StorageSettings::Postgres(pg) => format!("the PostgreSQL database {}", pg.url),
        };
        Paths {
            data_dir: config.server.data_dir.clone(),
            database: config.database_path(),
            database_label,
            key,
            mark: key_dir.join(mark::FILE_NAME),
        }
    }
}

/// What exists, and so what may be created.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Create the CA key (an empty data folder, first use).
    pub create_key: bool,
    /// Create the database.
    pub create_database: bool,
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Checks the folder and files, and decides what `access` may create. Run before the CA
/// key is opened, so that no key is made next to a database that has one.
pub fn plan(config: &Config, access: &Access) -> Result<Plan, StateError> {
    let paths = Paths::of(config);
    files::check_data_dir(&paths.data_dir)?;
    let postgres = super::open::postgres_options(config)?;
    if postgres.is_none() {
        files::check_database(&paths.database)?;
    }
    files::check_mark(&paths.mark)?;
    let key = paths.key.as_deref().is_some_and(exists);
    if key {
        // An unsafe or unreadable key is the first thing to fix, whatever else is wrong.
        CertificateAuthority::public_key(&config.ca)?;
    }
    // A PostgreSQL database "exists" once a CA key is recorded in it: `init` or the
    // first replica's start made it, and later replicas join it.
    let (db, wanted) = match &postgres {
        None => (exists(&paths.database), None),
        Some(options) => {
            let recorded = Store::peek_postgres_ca(options)?;
            (recorded.is_some(), recorded)
        }
    };
    let marked = exists(&paths.mark);
    let plan = decide(config, &paths, (key, db, marked), access, wanted)?;
    if plan.create_database || plan.create_key {
        // 0700 from the start (the key file's own folder creation would follow the umask).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&paths.data_dir)
            .map_err(|source| StoreError::Io {
                path: paths.data_dir.clone(),
                source,
            })?;
    }
    Ok(plan)
}

/// What may be created, from what exists: (CA key, database, mark).
fn decide(
    config: &Config,
    paths: &Paths,
    (key, db, marked): (bool, bool, bool),
    access: &Access,
    recorded_ca: Option<crate::store::meta::CaKey>,
) -> Result<Plan, StateError> {
    let db_path = &paths.database_label;
    let key_path = paths
        .key
        .as_deref()
        .map_or_else(|| "the CA key".to_owned(), |p| p.display().to_string());
    let mark_path = paths.mark.display();
    match (key, db, marked, access) {
        (true, true, _, _) => Ok(Plan {
            create_key: false,
            create_database: false,
        }),
        (false, false, false, Access::Serve { .. } | Access::Init { .. }) => Ok(Plan {
            // With an agent the key is not ours to create: its public line must exist.
            create_key: !config.ca.agent,
            create_database: true,
        }),
        (true, false, false, Access::Init { new_database })
            if *new_database || !CertificateAuthority::made_by_countersign(&config.ca) =>
        {
            Ok(Plan {
                create_key: false,
                create_database: true,
            })
        }
        (true, false, false, Access::Init { .. }) => Err(StateError::Mismatch(format!(
            "the CA key {key_path} was made by countersign, so it had a database, but {db_path} \
             and {mark_path} are both gone: restore the database from a backup. `countersign init \
             --new-database` starts an empty one for this key instead: every revocation made with \
             it is forgotten (servers whose KRL is newer refuse the new one, see krl --out), so do \
             that only if this key never issued a certificate"
        ))),
        (true, false, false, _) => Err(StateError::Mismatch(format!(
            "the CA key {key_path} exists but {db_path} does not; if this key never \
             had a database, create one with: countersign init"
        ))),
        (true, false, true, _) => Err(StateError::Mismatch(format!(
            "{db_path} is missing, but {mark_path} shows this CA key had one: restore \
             the database from a backup (countersign backup) and start again. Starting on an empty \
             database would un-revoke every certificate revoked so far, so countersign will not; \
             if no copy exists, start a new CA (a new data_dir, servers trust the new key)"
        ))),
        (false, true, _, _) => {
            let replica = if config.storage == StorageSettings::Sqlite {
                ""
            } else {
                ". A new replica: copy the CA key from the host where `countersign init` ran \
                 (mode 0600), then start it with `countersign serve --new-replica`"
            };
            let recorded = match recorded_ca {
                Some(k) => Ok(Some(k)),
                None => Store::peek_current_ca(&paths.database),
            };
            let wanted = match recorded {
                Ok(Some(k)) => format!(" ({}: {})", k.fingerprint, k.public_key),
                Ok(None) => String::new(),
                Err(e) => format!(" (its recorded key cannot be read: {e})"),
            };
            Err(StateError::Mismatch(format!(
                "{db_path} exists but the CA key {key_path} does not: restore the CA \
                 key the database belongs to{wanted} (countersign never makes a new key next to an \
                 existing database: servers would not enforce its revocations){replica}"
            )))
        }
        (false, false, true, _) => Err(StateError::Mismatch(format!(
            "the CA key {key_path} and {db_path} are missing, but {mark_path} shows \
             they existed: restore both from a backup"
        ))),
        (false, false, false, Access::Existing) => Err(StateError::Mismatch(format!(
            "no CA state in {}: run countersign init (or serve) first",
            paths.data_dir.display()
        ))),
    }
}
