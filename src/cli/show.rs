//! `whoami`, `list`, `show`, `cert`: reading requests over the API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use super::client::Client;
use super::output;
use crate::render;
use crate::service::{RequestView, WhoAmI};

/// `list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status (pending, issued, denied, cancelled, expired, refused).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many (1 to 10000; the server's default is 10000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after this request (the id a previous page named).
    #[arg(long)]
    pub after: Option<String>,
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
    /// Set when more requests follow this page.
    next: Option<String>,
}

/// `countersign whoami`.
pub(super) fn whoami(url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let me: WhoAmI = Client::from_env(url)?.get("/v1/whoami")?;
    if json {
        output::json(&me)?;
    } else {
        out!("{}", render::render_whoami(&me))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign list`.
pub(super) fn list(url: &str, args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    let mut query = Vec::new();
    if let Some(s) = &args.status {
        query.push(format!("status={}", urlencode(s)));
    }
    if let Some(n) = args.limit {
        query.push(format!("limit={n}"));
    }
    if let Some(id) = &args.after {
        query.push(format!("after={}", urlencode(id)));
    }
    let path = match query.is_empty() {
        true => "/v1/requests".to_owned(),
        false => format!("/v1/requests?{}", query.join("&")),
    };
    let list: List = client.get(&path)?;
    if args.json {
        output::json(&list.requests)?;
    } else {
        output::table(
            &render::REQUEST_HEADER,
            &render::request_rows(&list.requests),
        )?;
    }
    if let Some(next) = list.next {
        let mut again = String::from("countersign list");
        if let Some(s) = &args.status {
            again.push_str(&format!(" --status {s}"));
        }
        if let Some(n) = args.limit {
            again.push_str(&format!(" --limit {n}"));
        }
        eprintln!("more requests follow: {again} --after {next}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign show ID`.
pub(super) fn show(url: &str, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let r: RequestView =
        Client::from_env(url)?.get(&format!("/v1/requests/{}", urlencode(&args.id)))?;
    if args.json {
        output::json(&r)?;
    } else {
        output::request_details(&r)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign cert ID [--out FILE]`.
pub(super) fn cert(url: &str, args: CertArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    let id = urlencode(&args.id);
    let cert = client.get_text(&format!("/v1/requests/{id}/certificate"))?;
    match args.out {
        Some(path) => {
            super::files::write_atomically(&path, cert.as_bytes())?;
            eprintln!("certificate written to {}", path.display());
        }
        None => out!("{cert}")?,
    }
    // A revoked certificate is still served (it is the record): say so, as servers that
    // read the KRL refuse it. Best effort: the certificate is out already.
    if let Ok(view) = client.get::<RequestView>(&format!("/v1/requests/{id}"))
        && let Some(r) = view.certificate.and_then(|c| c.revoked)
    {
        eprintln!(
            "warning: this certificate was revoked at {} by {} ({}): servers that read \
             the KRL refuse it",
            r.at, r.by, r.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a path or query component.
pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
