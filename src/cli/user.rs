//! `countersign user enable NAME`: let a disabled (offboarded) user in again (admins).
//! Disabling is part of `revoke --user` (`revoke.rs`).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::show::urlencode;

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Enable a user disabled by `revoke --user`: their SSH keys work again, and tokens
    /// created from now on (their old ones stay revoked).
    Enable {
        /// The user's name.
        name: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs a `user` subcommand against the server.
pub(super) fn run(url: &str, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Enable { name, reason } => {
            let body = json!({ "reason": reason });
            let path = format!("/v1/users/{}/enable", urlencode(&name));
            let _: serde_json::Value =
                super::login::post_stepping_up(url, &path, &body, "Enabling a user")?;
            outln!("enabled user {name}")?;
            eprintln!(
                "their old tokens stay revoked; an operator creates a new one with \
                 `countersign token create {name}`"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
