//! `audit export` (JSON lines or CSV for SIEMs and auditors) and `audit explain` (from an
//! sshd log line to the people behind it). Both read the API with an admin's token.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use ssh_key::{HashAlg, PublicKey};

use super::client::Client;
use super::show::urlencode;
use crate::audit::story::{parse_log_line, story_line};
use crate::audit::{AuditEvent, Event};
use crate::clock::{Clock, SystemClock};

/// Output format of `audit export`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON event per line.
    Jsonl,
    /// RFC 4180 CSV with a header row; `detail` is a JSON column.
    Csv,
}

/// `audit export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Events from this long ago (`30d`, `12h`) or since an RFC 3339 time.
    #[arg(long)]
    pub since: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
}

#[derive(Deserialize)]
struct Events {
    events: Vec<Event>,
}

/// `30d` -> now minus 30 days; an RFC 3339 time as is.
pub(super) fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = crate::names::parse_duration(s, "--since")?;
    let d = chrono::Duration::from_std(d)?;
    Ok(SystemClock.now() - d)
}

/// Every event matching `query`, following `after_seq` pages to the end.
pub(super) fn fetch_all(client: &Client, query: &str) -> anyhow::Result<Vec<Event>> {
    const PAGE: usize = 10_000;
    let mut out: Vec<Event> = Vec::new();
    loop {
        let after = out.last().map(|e| e.seq).unwrap_or(0);
        let page: Events =
            client.get(&format!("/v1/audit?{query}&after_seq={after}&limit={PAGE}"))?;
        let n = page.events.len();
        out.extend(page.events);
        if n < PAGE {
            return Ok(out);
        }
    }
}

/// Events since a time, for export and reports.
pub(super) fn fetch_since(client: &Client, since: DateTime<Utc>) -> anyhow::Result<Vec<Event>> {
    let since = since.to_rfc3339_opts(SecondsFormat::Secs, true);
    fetch_all(client, &format!("since={}", urlencode(&since)))
}

/// `countersign audit export --since 30d [--format jsonl|csv]`.
pub(super) fn export(url: &str, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let since = parse_since(&args.since)?;
    let events = fetch_since(&Client::from_env(url)?, since)?;
    match args.format {
        Format::Jsonl => {
            for e in &events {
                outln!("{}", serde_json::to_string(e)?)?;
            }
        }
        Format::Csv => {
            outln!("seq,at,actor,action,request_id,serial,detail,prev_hash,hash")?;
            for e in &events {
                let cells = [
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.clone(),
                    e.action.clone(),
                    e.request_id.clone().unwrap_or_default(),
                    e.serial.clone().unwrap_or_default(),
                    e.detail.to_string(),
                    e.prev_hash.clone(),
                    e.hash.clone(),
                ];
                let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                outln!("{}", row.join(","))?;
            }
        }
    }
    eprintln!("{} events", events.len());
    Ok(ExitCode::SUCCESS)
}

/// One CSV cell: quoted when needed, and defused when a spreadsheet would read it as a
/// formula (a reason starting with `=` must not run in the auditor's spreadsheet).
pub(super) fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `countersign audit explain "<sshd log line>"`.
pub(super) fn explain(url: &str, line: &str) -> anyhow::Result<ExitCode> {
    let parsed = parse_log_line(line).map_err(|e| anyhow!(e))?;
    let client = Client::from_env(url)?;
    let ca_line = String::from_utf8(client.get_bytes("/v1/ca.pub")?)?;
    let ours = PublicKey::from_openssh(ca_line.trim())?
        .fingerprint(HashAlg::Sha256)
        .to_string();
    if let Some(fp) = &parsed.ca_fingerprint
        && *fp != ours
    {
        bail!("the certificate was signed by CA {fp}, not by this countersign ({ours})");
    }
    let events = fetch_all(&client, &format!("serial={}", parsed.serial))?;
    let issued = events
        .iter()
        .find(|e| {
            e.action == "certificate.issued"
                && e.serial.as_deref() == Some(&parsed.serial.to_string())
        })
        .ok_or_else(|| {
            anyhow!(
                "no certificate with serial {} in the audit log",
                parsed.serial
            )
        })?;
    let issued_key_id = match issued.parsed() {
        Some(AuditEvent::CertificateIssued(d)) => Some(d.key_id),
        _ => None,
    };
    outln!(
        "certificate serial {} (key ID {})",
        parsed.serial,
        issued_key_id.as_deref().unwrap_or("?")
    )?;
    if let Some(id) = &parsed.key_id
        && issued_key_id.as_deref() != Some(id.as_str())
    {
        outln!(
            "WARNING: the log line names key ID {id:?}, which does not match the issued certificate"
        )?;
    }
    for e in &events {
        outln!("{}", story_line(e))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
    }

    #[test]
    fn since_takes_durations_and_times() {
        let t = parse_since("2026-01-31T00:00:00Z").unwrap();
        assert_eq!(
            t.to_rfc3339_opts(SecondsFormat::Secs, true),
            "2026-01-31T00:00:00Z"
        );
        let d = Utc::now() - parse_since("30d").unwrap();
        assert!((d.num_days() - 30).abs() <= 1);
        assert!(parse_since("soon").is_err());
    }
}
