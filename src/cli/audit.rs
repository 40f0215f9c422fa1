//! `countersign audit [--serial N] [--request ID]` (client, admins) and
//! `countersign audit verify` (on the CA host).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;

use super::client::Client;
use super::output;
use super::show::urlencode;
use crate::audit::{self, AuditError, Event};
use crate::config::Config;
use crate::store::Store;

/// `audit` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Events of the certificate with this serial.
    #[arg(long)]
    pub serial: Option<String>,
    /// Events of this request.
    #[arg(long)]
    pub request: Option<String>,
    /// Only events after this sequence number.
    #[arg(long)]
    pub after_seq: Option<i64>,
    /// At most this many events (default 100, max 10000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of the local database; non-zero exit names the first bad event.
    Verify,
}

#[derive(Deserialize)]
struct Events {
    events: Vec<Event>,
}

/// Runs `audit`.
pub fn run(config: &Path, url: &str, args: AuditArgs) -> anyhow::Result<ExitCode> {
    if let Some(AuditCommand::Verify) = args.command {
        return verify(config);
    }
    let mut query = Vec::new();
    if let Some(s) = &args.serial {
        query.push(format!("serial={}", urlencode(s)));
    }
    if let Some(r) = &args.request {
        query.push(format!("request={}", urlencode(r)));
    }
    if let Some(k) = args.after_seq {
        query.push(format!("after_seq={k}"));
    }
    if let Some(l) = args.limit {
        query.push(format!("limit={l}"));
    }
    let events: Events = Client::from_env(url)?.get(&format!("/v1/audit?{}", query.join("&")))?;
    if args.json {
        output::json(&events.events)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = events
        .events
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                e.at.clone(),
                e.actor.clone(),
                e.action.clone(),
                e.request_id.clone().unwrap_or_default(),
                e.serial.clone().unwrap_or_default(),
                summary(&e.detail),
            ]
        })
        .collect();
    output::table(
        &[
            "SEQ", "AT", "ACTOR", "ACTION", "REQUEST", "SERIAL", "DETAIL",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// The detail fields a reader wants first, in a short line.
fn summary(detail: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for key in [
        "role",
        "reason",
        "comment",
        "code",
        "principals",
        "valid_before",
        "user",
    ] {
        match &detail[key] {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => parts.push(format!("{key}={s}")),
            other => parts.push(format!("{key}={other}")),
        }
    }
    parts.join(" ")
}

fn verify(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Store::open(&config.database_path()).context("opening the database")?;
    match store.read(audit::verify) {
        Ok(v) => {
            println!("audit log ok: {} events, head {}", v.events, v.head);
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ AuditError::Broken { .. }) => {
            eprintln!("countersign: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
