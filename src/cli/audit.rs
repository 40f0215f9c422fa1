//! `countersign audit [--serial N] [--request ID]`, `audit explain LINE`, `audit export`,
//! `audit tail` (client, admins) and `audit verify`, `audit checkpoint` (on the CA host).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Deserialize;

use super::client::Client;
use super::output;
use super::show::urlencode;
use crate::audit::Event;

/// `audit` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Events of the certificate with this serial (a number, as sshd logs it).
    #[arg(long)]
    pub serial: Option<u64>,
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
    /// Recompute the hash chain of the local database; non-zero exit names the first bad
    /// event. With --checkpoint, also fail unless the log still contains that head.
    Verify {
        /// A checkpoint from `audit checkpoint` (statement + signature, or FILE and FILE.sig).
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Print a checkpoint of the log's head signed by the CA key (SSHSIG).
    Checkpoint {
        /// Write the statement to FILE and the signature to FILE.sig (for ssh-keygen -Y verify).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Tell the story behind an sshd log line: `Accepted publickey ... ID ... (serial N) CA ...`.
    Explain {
        /// The sshd log line (quote it).
        line: String,
    },
    /// Export events for a SIEM or an auditor.
    Export(super::export::ExportArgs),
    /// Print events as JSON lines, each checked against the chain; with --follow, new
    /// events as they are committed (for a log shipper), resuming with --after-seq.
    Tail(super::tail::TailArgs),
}

#[derive(Deserialize)]
struct Events {
    events: Vec<Event>,
}

/// Runs `audit`.
pub(super) fn run(config: &Path, url: &str, args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(AuditCommand::Verify { checkpoint }) => {
            return super::checkpoint::verify(config, checkpoint.as_deref());
        }
        Some(AuditCommand::Checkpoint { out }) => {
            return super::checkpoint::checkpoint(config, out.as_deref());
        }
        Some(AuditCommand::Explain { line }) => return super::export::explain(url, &line),
        Some(AuditCommand::Export(a)) => return super::export::export(url, a),
        Some(AuditCommand::Tail(a)) => return super::tail::tail(url, &a),
        None => {}
    }
    let mut query = Vec::new();
    if let Some(s) = args.serial {
        query.push(format!("serial={s}"));
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
    // Said on stderr, so that the table stays what a script reads.
    match (events.events.last(), args.serial) {
        (None, Some(serial)) => {
            eprintln!("no events of serial {serial}: no certificate of this CA has it");
        }
        (Some(last), _)
            if events.events.len() == args.limit.unwrap_or(crate::service::AUDIT_PAGE) as usize =>
        {
            eprintln!(
                "more events may follow (oldest first, {} a page): --after-seq {}",
                events.events.len(),
                last.seq
            );
        }
        _ => {}
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
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The detail fields a reader wants first, in a short line.
pub(super) fn summary(detail: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for key in [
        "role",
        // breakglass.reviewed, breakglass.review_closed
        "invoker",
        "verdict",
        "outcome",
        "reason",
        "comment",
        "code",
        "principals",
        "valid_before",
        "user",
        // ca.recorded, state.*, policy.loaded
        "fingerprint",
        "cause",
        "changes",
        "carried_revocations",
        "krl_version",
        // revocation.carried: the host KRL's or the user KRL's
        "host",
        // notify.dead, notify.retried
        "sink",
        "event",
        "event_id",
        "error",
    ] {
        match &detail[key] {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => parts.push(format!("{key}={s}")),
            other => parts.push(format!("{key}={other}")),
        }
    }
    // policy.loaded, policy.refused: who signed, and on what basis.
    if let Some(signoff) = detail["signoff"].as_object() {
        let by: Vec<&str> = signoff
            .get("signed_by")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v["user"].as_str()).collect())
            .unwrap_or_default();
        let basis = signoff.get("basis").and_then(|v| v.as_str()).unwrap_or("");
        parts.push(format!("signed_by={} basis={basis}", by.join(",")));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::summary;

    #[test]
    fn a_break_glass_verdict_is_named_in_the_table() {
        let reviewed = json!({
            "role": "prod-db", "invoker": "alice", "verdict": "unjustified",
            "comment": "no incident"
        });
        assert_eq!(
            summary(&reviewed),
            "role=prod-db invoker=alice verdict=unjustified comment=no incident"
        );
        let closed = json!({
            "role": "prod-db", "invoker": "alice", "outcome": "justified",
            "reviewers": ["bob", "carol"], "time_to_review_seconds": 60
        });
        assert_eq!(
            summary(&closed),
            "role=prod-db invoker=alice outcome=justified"
        );
    }
}
