//! `countersign notify status|retry` (on the CA host): notifications not delivered.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use super::token::operator;
use crate::config::Config;
use crate::service::{Local, rfc3339};

/// `notify` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// How many notifications are pending and dead, and the oldest of them.
    Status {
        /// List at most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Try a dead notification again at once (every sink's, or --sink's); --all: every
    /// dead one.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
    Retry {
        /// The event's id (msg_..., from `notify status`).
        id: Option<String>,
        /// Every dead delivery (of every event; with --sink, to that sink), e.g. once a
        /// receiver that was down for a while is back.
        #[arg(long)]
        all: bool,
        /// Only the deliveries to this sink.
        #[arg(long)]
        sink: Option<String>,
    },
}

/// Runs a `notify` subcommand.
pub(super) fn run(config: &Path, cmd: NotifyCommand) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let local = Local::open(&config)?;
    match cmd {
        NotifyCommand::Status { limit, json } => {
            let (pending, dead, list) = local.notify_status(limit.clamp(1, 10_000))?;
            if json {
                let items: Vec<_> = list
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.event_id, "sink": d.sink, "event": d.event,
                            "status": d.status, "attempts": d.attempts,
                            "created_at": rfc3339(d.created_at),
                            "next_at": (d.status == "pending").then(|| rfc3339(d.next_at)),
                            "last_error": d.last_error,
                        })
                    })
                    .collect();
                let out = json!({ "pending": pending, "dead": dead, "deliveries": items });
                outln!("{}", serde_json::to_string_pretty(&out)?)?;
            } else {
                outln!("pending {pending}, dead {dead}")?;
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|d| {
                        vec![
                            d.event_id.clone(),
                            d.sink.clone(),
                            d.event.clone(),
                            d.status.clone(),
                            d.attempts.to_string(),
                            rfc3339(d.created_at),
                            d.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    let headers = [
                        "ID",
                        "SINK",
                        "EVENT",
                        "STATUS",
                        "TRIES",
                        "CREATED",
                        "LAST ERROR",
                    ];
                    out!("{}", crate::render::render_table(&headers, &rows))?;
                }
            }
        }
        NotifyCommand::Retry { id, all: _, sink } => {
            if let Some(name) = &sink
                && !config.notify.iter().any(|s| &s.name == name)
            {
                let known: Vec<&str> = config.notify.iter().map(|s| s.name.as_str()).collect();
                bail!(
                    "no [[notify]] sink is named {name} in this file (its sinks: {}): a sink no \
                     replica has is never tried",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
            let n = local.notify_retry(id.as_deref(), sink.as_deref(), &operator())?;
            let of = id.map(|id| format!(" of {id}")).unwrap_or_default();
            eprintln!("re-armed {n} delivery(ies){of}: they are tried again within seconds");
        }
    }
    Ok(ExitCode::SUCCESS)
}
