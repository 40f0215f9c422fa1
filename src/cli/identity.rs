//! `countersign identity list|unbind` (on the CA host): which user name is bound to which
//! person of the identity provider, and undoing a binding.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::names::{Text, UserName};
use crate::service::Local;

/// `identity` subcommands.
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Every user name bound to a person of the identity provider (issuer and subject).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove USER's binding, so that the next sign-in with that name binds it afresh
    /// (after an issuer change, or the person's account re-created at the provider); their
    /// live sessions end.
    Unbind {
        /// The user name.
        user: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// Runs an `identity` subcommand.
pub(super) fn run(config: &Path, cmd: IdentityCommand) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let local = Local::open(&config)?;
    match cmd {
        IdentityCommand::List { json } => {
            let all = local.identities()?;
            let at = crate::service::rfc3339;
            if json {
                let list: Vec<_> = all
                    .iter()
                    .map(|b| {
                        json!({
                            "user": b.user, "issuer": b.issuer,
                            "subject": b.subject, "bound_at": at(b.bound_at),
                        })
                    })
                    .collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "identities": list }))?
                )?;
            } else if all.is_empty() {
                eprintln!("no user name is bound to a person of the identity provider");
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|b| {
                        vec![
                            b.user.to_string(),
                            b.issuer.clone(),
                            b.subject.clone(),
                            at(b.bound_at),
                        ]
                    })
                    .collect();
                let table =
                    crate::render::render_table(&["USER", "ISSUER", "SUBJECT", "BOUND"], &rows);
                out!("{table}")?;
            }
        }
        IdentityCommand::Unbind { user, reason } => {
            let user = UserName::parse(&user)?;
            let reason = Text::parse(&reason, "reason")?;
            let (was, ended) = local.unbind_identity(&user, &reason, &super::token::operator())?;
            eprintln!(
                "unbound {user} from {} at {}; {ended} live session(s) ended; the next sign-in \
                 with this name binds it afresh",
                was.subject, was.issuer
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
