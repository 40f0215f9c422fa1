//! `countersign report --since 90d`: the evidence an access review asks for. Per role:
//! who held it, from when to when, for how long, why, and who approved — built from the
//! audit log (certificates issued in the window, and their revocations).

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use chrono::DateTime;
use clap::Args;
use serde::Serialize;

use super::client::Client;
use super::export::{fetch_since, parse_since};
use super::output;
use crate::audit::{AuditEvent, Event};

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Certificates issued this long ago (`90d`) or since an RFC 3339 time.
    #[arg(long)]
    pub since: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One certificate in the review.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Grant {
    pub role: String,
    pub user: String,
    pub serial: String,
    pub request_id: String,
    /// When it was issued (its `valid_after` is earlier by the configured backdate).
    pub from: String,
    /// `valid_before`, or the revocation time if it was ended early.
    pub until: String,
    pub seconds: i64,
    pub reason: String,
    pub approved_by: Vec<String>,
    pub revoked: Option<String>,
}

/// Folds issued and revoked events into grants grouped by role.
pub(super) fn grants(events: &[Event]) -> BTreeMap<String, Vec<Grant>> {
    let revoked: HashMap<&str, (&str, String)> = events
        .iter()
        .filter_map(|e| {
            let Some(AuditEvent::CertificateRevoked(d)) = e.parsed() else {
                return None;
            };
            let serial = e.serial.as_deref()?;
            let why = format!("{} by {}: {}", e.at, e.actor, d.reason);
            Some((serial, (e.at.as_str(), why)))
        })
        .collect();
    let mut by_role: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    for e in events {
        let Some(AuditEvent::CertificateIssued(d)) = e.parsed() else {
            continue;
        };
        let serial = e.serial.clone().unwrap_or_default();
        // Held from the moment of issue (`valid_after` is backdated for clock skew; the
        // certificate did not exist before), to expiry or revocation; whole seconds.
        let from = to_seconds(&e.at);
        let (until, revocation) = match revoked.get(serial.as_str()) {
            Some((at, why)) => (to_seconds(at), Some(why.clone())),
            None => (to_seconds(&d.valid_before), None),
        };
        let secs = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp())
                .unwrap_or(0)
        };
        let approved_by = d.approvals.into_iter().map(|a| a.approver).collect();
        by_role.entry(d.role.clone()).or_default().push(Grant {
            role: d.role,
            user: d.requester,
            serial,
            request_id: e.request_id.clone().unwrap_or_default(),
            seconds: (secs(&until) - secs(&from)).max(0),
            from,
            until,
            reason: d.reason,
            approved_by,
            revoked: revocation,
        });
    }
    by_role
}

/// An RFC 3339 time in whole seconds (`...T10:01:10Z`); text that is not one, unchanged.
fn to_seconds(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| t.to_owned())
}

/// Runs `report`.
pub(super) fn run(url: &str, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let since = parse_since(&args.since)?;
    let events = fetch_since(&Client::from_env(url)?, since)?;
    let by_role = grants(&events);
    if args.json {
        output::json(&by_role)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "access report since {}",
        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    for (role, grants) in &by_role {
        outln!("\nrole {role}: {} certificate(s)", grants.len())?;
        let rows: Vec<Vec<String>> = grants
            .iter()
            .map(|g| {
                vec![
                    g.user.clone(),
                    g.from.clone(),
                    g.until.clone(),
                    humantime::format_duration(std::time::Duration::from_secs(g.seconds as u64))
                        .to_string(),
                    g.approved_by.join(", "),
                    g.serial.clone(),
                    if g.revoked.is_some() {
                        format!("{} (ended early)", g.reason)
                    } else {
                        g.reason.clone()
                    },
                ]
            })
            .collect();
        output::table(
            &[
                "USER",
                "FROM",
                "UNTIL",
                "HELD",
                "APPROVED BY",
                "SERIAL",
                "REASON",
            ],
            &rows,
        )?;
    }
    if by_role.is_empty() {
        outln!("no certificates were issued in this period")?;
    }
    Ok(ExitCode::SUCCESS)
}
