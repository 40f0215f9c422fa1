//! `countersign token create|revoke USER` (on the CA host).

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::names::UserName;
use crate::service::Local;

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for USER and print it once, alone on stdout.
    Create {
        /// A user from the config.
        user: String,
    },
    /// Revoke every token of USER.
    Revoke {
        /// A user name.
        user: String,
    },
}

/// The actor recorded for operator commands run on the CA host.
pub(super) fn operator() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    match UserName::parse(&name) {
        Ok(n) => format!("operator:{n}"),
        Err(_) => "operator".to_owned(),
    }
}

/// Runs a token subcommand.
pub(super) fn run(config: &Path, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let local = Local::open(&config)?;
    match cmd {
        TokenCommand::Create { user } => {
            let user = UserName::parse(&user)?;
            let secret = local.create_token(&config.policy, &user, &operator())?;
            outln!("{secret}")?;
            eprintln!("token for {user} created; it is shown only this once");
        }
        TokenCommand::Revoke { user } => {
            let user = UserName::parse(&user)?;
            let n = local.revoke_tokens(&config.policy, &user, &operator())?;
            eprintln!("revoked {n} token(s) of {user}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
