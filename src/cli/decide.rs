//! `approve`, `deny`, `cancel`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::client::Client;
use super::output;
use super::show::urlencode;
use crate::render;
use crate::service::RequestView;

/// `approve` arguments.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Request id (r-...).
    pub id: String,
    /// Note recorded with the approval.
    #[arg(long)]
    pub comment: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `deny` arguments.
#[derive(Debug, Args)]
pub struct DenyArgs {
    /// Request id (r-...).
    pub id: String,
    /// Why (required; the requester sees it).
    #[arg(long)]
    pub reason: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cancel` arguments.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Request id (r-...).
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn report(r: &RequestView, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::json(r)?;
    } else {
        outln!("{}", render::decision_summary(r))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign approve ID [--comment TEXT]`.
pub(super) fn approve(url: &str, args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let body = json!({ "comment": args.comment });
    let path = format!("/v1/requests/{}/approve", urlencode(&args.id));
    // Approving needs a recent sign-in at the identity provider (with a session).
    let r: RequestView = super::login::post_stepping_up(url, &path, &body, "Approving")?;
    report(&r, args.json)
}

/// `countersign deny ID --reason TEXT`.
pub(super) fn deny(url: &str, args: DenyArgs) -> anyhow::Result<ExitCode> {
    let body = json!({ "reason": args.reason });
    let r: RequestView = Client::from_env(url)?
        .post(&format!("/v1/requests/{}/deny", urlencode(&args.id)), &body)?;
    report(&r, args.json)
}

/// `countersign cancel ID`.
pub(super) fn cancel(url: &str, args: CancelArgs) -> anyhow::Result<ExitCode> {
    let r: RequestView = Client::from_env(url)?.post(
        &format!("/v1/requests/{}/cancel", urlencode(&args.id)),
        &json!({}),
    )?;
    report(&r, args.json)
}
