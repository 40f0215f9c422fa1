//! `countersign krl forgotten --serial N --valid-before T --reason TEXT [--host]`: tells
//! the CA of a revocation it forgot, named by a server's `krl --out` or `krl sync`
//! (`POST /v1/krl/forgotten`, admins): the KRL lists the serial again until it ends.

use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;
use serde_json::json;

use crate::cli::client::Client;

/// `krl forgotten` arguments.
#[derive(Debug, Args)]
pub struct ForgottenArgs {
    /// The serial the server named.
    #[arg(long)]
    pub serial: String,
    /// When its certificate ends (RFC 3339, as the server named it): listed until then.
    #[arg(long)]
    pub valid_before: String,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
    /// A host certificate's (the host KRL), not a user certificate's.
    #[arg(long)]
    pub host: bool,
}

#[derive(Deserialize)]
struct Relisted {
    serial: String,
    known: bool,
    valid_before: String,
    krl_version: u64,
}

/// Runs `krl forgotten`.
pub(super) fn run(url: &str, args: &ForgottenArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    let body = json!({
        "serial": args.serial, "valid_before": args.valid_before, "reason": args.reason,
        "host": args.host,
    });
    let r: Relisted = client.post("/v1/krl/forgotten", &body)?;
    let how = if r.known {
        "its certificate revoked again, until its own end: --valid-before was not needed"
    } else {
        "no certificate of it here: the serial alone, until --valid-before"
    };
    outln!(
        "serial {} listed in KRL version {} until {} ({how})",
        r.serial,
        r.krl_version,
        r.valid_before
    )?;
    Ok(ExitCode::SUCCESS)
}
