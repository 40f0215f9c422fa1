//! `whoami`, `list`, `show`, `cert`: reading requests over the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use super::client::Client;
use super::output;
use crate::service::{RequestView, WhoAmI};

/// `list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status (pending, issued, denied, cancelled, expired, refused).
    #[arg(long)]
    pub status: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `show` arguments.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Request id (r-...).
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cert` arguments.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// Request id (r-...).
    pub id: String,
    /// Write the certificate to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Deserialize)]
struct List {
    requests: Vec<RequestView>,
}

/// `countersign whoami`.
pub fn whoami(url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let me: WhoAmI = Client::from_env(url)?.get("/v1/whoami")?;
    if json {
        output::json(&me)?;
    } else {
        print!("{}", output::render_whoami(&me));
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign list`.
pub fn list(url: &str, args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    let path = match &args.status {
        Some(s) => format!("/v1/requests?status={}", urlencode(s)),
        None => "/v1/requests".to_owned(),
    };
    let list: List = client.get(&path)?;
    if args.json {
        output::json(&list.requests)?;
    } else {
        output::table(
            &output::REQUEST_HEADER,
            &output::request_rows(&list.requests),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign show ID`.
pub fn show(url: &str, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let r: RequestView =
        Client::from_env(url)?.get(&format!("/v1/requests/{}", urlencode(&args.id)))?;
    if args.json {
        output::json(&r)?;
    } else {
        output::request_details(&r);
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign cert ID [--out FILE]`.
pub fn cert(url: &str, args: CertArgs) -> anyhow::Result<ExitCode> {
    let cert = Client::from_env(url)?
        .get_text(&format!("/v1/requests/{}/certificate", urlencode(&args.id)))?;
    match args.out {
        Some(path) => {
            std::fs::write(&path, &cert).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("certificate written to {}", path.display());
        }
        None => print!("{cert}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a path or query component.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
