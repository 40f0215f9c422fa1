//! `countersign serve`: the HTTP API, and the SSH front door when `[ssh]` is configured,
//! until Ctrl-C or SIGTERM; SIGHUP reloads the configuration. The options are parsed
//! here; `daemon.rs` starts and runs everything.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

/// `countersign serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Start on a database older than the state this CA already published (a restore
    /// from an older copy): recorded in the audit log as state.rollback_accepted, and the
    /// KRL version jumps above every version published. Revocations made after the copy
    /// are lost: make them again.
    #[arg(long, requires = "reason")]
    pub accept_rollback: bool,
    /// Why the older database is accepted (with --accept-rollback; recorded with it).
    #[arg(long, requires = "accept_rollback")]
    pub reason: Option<String>,
    /// A new replica joining a shared PostgreSQL database that this data folder has no
    /// state mark of yet: it starts one from what the database holds (recorded in the
    /// audit log as state.mark_started). Without it such a start is refused, so that a
    /// replica whose mark was lost cannot take a rolled-back database silently.
    #[arg(long)]
    pub new_replica: bool,
}

/// Loads the config, parses the options and runs the server (`daemon.rs`) until Ctrl-C or SIGTERM.
pub(super) fn serve(config: &Path, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    crate::logging::init(config.server.log_format, "info");
    let reason = args
        .reason
        .as_deref()
        .map(|r| crate::names::Text::parse(r, "reason"))
        .transpose()?;
    crate::daemon::serve(config, reason, args.new_replica, super::token::operator())?;
    Ok(ExitCode::SUCCESS)
}
