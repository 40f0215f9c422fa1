//! `countersign backup --out FILE`: a consistent copy of the database, taken while the
//! server runs, checked before it is kept.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::service::Local;

/// `countersign backup` options.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy; must not exist yet (nothing is overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Copies the database (SQLite's online backup: one snapshot, writers go on), verifies
/// the copy's audit chain and that it is the same database, then moves it into place.
pub(super) fn run(config: &Path, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let local = Local::open(&config)?;
    if local.is_postgres() {
        bail!(
            "the state is in PostgreSQL ([storage] backend = \"postgres\"): `countersign \
             backup` copies the SQLite file only. Back up PostgreSQL with its own tools: \
             pg_dump --format=custom --serializable-deferrable (or base backups with WAL \
             archiving); copy each replica's state mark (countersign.mark) off its host \
             more often than the database, and never restore a mark from the same moment \
             as the database; see docs/operations.md, \"Backup and restore\" and \"Several \
             replicas on PostgreSQL\""
        );
    }
    let folder = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !folder.is_dir() {
        bail!("{} is not a folder: create it first", folder.display());
    }
    if std::fs::symlink_metadata(&args.out).is_ok() {
        bail!(
            "{} already exists; backup never overwrites a file: name a new one",
            args.out.display()
        );
    }
    let name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let tmp = args
        .out
        .with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = copy_and_check(&local, &tmp);
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // Not `rename`: it would replace a file made meanwhile at the same name.
    std::fs::hard_link(&tmp, &args.out)
        .with_context(|| format!("moving the copy to {}", args.out.display()))?;
    std::fs::remove_file(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    std::fs::File::open(folder)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", folder.display()))?;
    eprintln!(
        "backup written to {}: database {}, {} audit events (head {}), KRL version {}; \
         audit chain verified",
        args.out.display(),
        summary.database,
        summary.events,
        summary.head,
        summary.krl_version
    );
    Ok(ExitCode::SUCCESS)
}

/// What a checked copy holds.
struct Summary {
    database: String,
    events: i64,
    head: String,
    krl_version: u64,
}

fn copy_and_check(local: &Local, tmp: &Path) -> anyhow::Result<Summary> {
    local
        .backup_to(tmp)
        .with_context(|| format!("copying the database to {}", tmp.display()))?;
    let copy = Local::open_copy(tmp).context("opening the copy")?;
    let verified = copy
        .verify_audit()
        .context("the copy's audit chain does not verify")?;
    let (database, krl_version) = copy.identity()?;
    let (original, _) = local.identity()?;
    if database != original {
        bail!("the copy is not the same database ({database} vs {original})");
    }
    drop(copy);
    Ok(Summary {
        database,
        events: verified.events,
        head: verified.head,
        krl_version,
    })
}
