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
}

/// Loads the config, parses the options and runs the server (`daemon.rs`) until Ctrl-C or SIGTERM.
pub(super) fn serve(config: &Path, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let reason = args
        .reason
        .as_deref()
        .map(|r| crate::names::Text::parse(r, "reason"))
        .transpose()?;
    crate::daemon::serve(config, reason, super::token::operator())?;
    Ok(ExitCode::SUCCESS)
}
