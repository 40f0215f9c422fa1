//! `countersign session list|revoke`: sessions from `countersign login`, for admins.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::Client;
use super::show::urlencode;

/// `session` subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// The live sessions (never their tokens), of one user or everyone's.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End a session by its id, or every live session of a user.
    Revoke {
        /// The session's id (from `session list`).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Every live session of this user.
        #[arg(long)]
        user: Option<String>,
    },
}

fn listed(client: &Client, user: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let path = match user {
        Some(u) => format!("/v1/sessions?user={}", urlencode(u)),
        None => "/v1/sessions".to_owned(),
    };
    let v: Value = client.get(&path)?;
    Ok(v["sessions"].as_array().cloned().unwrap_or_default())
}

/// Runs a `session` subcommand against the server.
pub(super) fn run(url: &str, cmd: SessionCommand) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    match cmd {
        SessionCommand::List { user, json } => {
            let sessions = listed(&client, user.as_deref())?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&sessions)?)?;
            } else {
                let field = |s: &Value, k: &str| s[k].as_str().unwrap_or("").to_owned();
                let rows: Vec<Vec<String>> = sessions
                    .iter()
                    .map(|s| {
                        ["id", "user", "via", "created_at", "expires_at"]
                            .map(|k| field(s, k))
                            .to_vec()
                    })
                    .collect();
                out!(
                    "{}",
                    crate::render::render_table(
                        &["ID", "USER", "VIA", "CREATED", "EXPIRES"],
                        &rows
                    )
                )?;
            }
        }
        SessionCommand::Revoke { id, user } => {
            let ids: Vec<String> = match (id, user) {
                (Some(id), _) => vec![id],
                (None, Some(user)) => listed(&client, Some(&user))?
                    .iter()
                    .filter_map(|s| s["id"].as_str().map(str::to_owned))
                    .collect(),
                (None, None) => bail!("name a session id or --user NAME"),
            };
            for id in &ids {
                let _: Value = client.post(
                    &format!("/v1/sessions/{}/revoke", urlencode(id)),
                    &json!({}),
                )?;
                outln!("revoked session {id}")?;
            }
            if ids.is_empty() {
                eprintln!("no live session to revoke");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
