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
    /// Certificates issued this long ago (`90d`) or since an RFC 3339 time (with
    /// `--breakglass`: uses since then; default: every one).
    #[arg(long, required_unless_present = "breakglass")]
    pub since: Option<String>,
    /// Every break-glass use instead: reason, duration, reviewers, verdicts and time to
    /// review.
    #[arg(long)]
    pub breakglass: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `report`.
pub(super) fn run(url: &str, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let since = match &args.since {
        Some(s) => parse_since(s)?,
        None => chrono::DateTime::UNIX_EPOCH,
    };
    let events = fetch_since(&Client::from_env(url)?, since)?;
    if args.breakglass {
        return breakglass(&events, since, args.json);
    }
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

/// `report --breakglass`: each use, oldest first.
fn breakglass(
    events: &[crate::audit::Event],
    since: chrono::DateTime<chrono::Utc>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let uses = crate::audit::breakglass_story::uses(events);
    if json {
        output::json(&uses)?;
        return Ok(ExitCode::SUCCESS);
    }
    if since == chrono::DateTime::UNIX_EPOCH {
        outln!("break-glass uses: {}", uses.len())?;
    } else {
        outln!(
            "break-glass uses since {}: {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            uses.len()
        )?;
    }
    for u in &uses {
        let review = match (&u.outcome, u.time_to_review_seconds) {
            (Some(o), Some(t)) => format!("{o}, closed after {}", crate::render::seconds(t)),
            _ if u.overdue => format!("OPEN, OVERDUE (was due {})", u.review_due),
            _ => format!("open, due {}", u.review_due),
        };
        outln!(
            "\n{} {} took {} at {}, access for {}{}\n  reason: {}\n  serial: {}\n  \
             reviewers: {} ({} needed)\n  review: {review}",
            u.request_id,
            u.user,
            u.role,
            u.used_at,
            crate::render::seconds(u.held_seconds),
            if u.ttl_cut {
                " (lifetime cut to max_ttl)"
            } else {
                ""
            },
            u.reason,
            u.serial.as_deref().unwrap_or("-"),
            u.reviewers.join(", "),
            u.reviews_required,
        )?;
        if let Some(r) = &u.revoked {
            outln!("  revoked: {r}")?;
        }
        if let Some(a) = &u.allowed_by {
            outln!("  allowed by: {a} (one more use before the last was reviewed)")?;
        }
        for v in &u.verdicts {
            outln!("  {} {}: {} ({})", v.at, v.reviewer, v.verdict, v.comment)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
