//! `countersign report --since 90d`: the evidence an access review asks for. Per role:
//! who held it, from when to when, for how long, why, and who approved — built from the
//! audit log (certificates issued in the window, and their revocations).

use std::process::ExitCode;

use clap::Args;

use super::client::Client;
use super::export::{fetch_since, parse_since};
use super::output;
use crate::audit::story::grants;

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
