//! `revoke`, `done` and `krl`: ending certificates and fetching the revocation list.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use super::client::Client;
use super::show::urlencode;
use crate::service::RequestView;

/// `revoke` arguments: exactly one of serial, request or user.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["serial", "request", "user"])))]
pub struct RevokeArgs {
    /// Revoke the certificate with this serial.
    #[arg(long)]
    pub serial: Option<String>,
    /// Revoke the certificate of this request.
    #[arg(long)]
    pub request: Option<String>,
    /// Offboard this user: disable them (every token and SSH key refused until
    /// `user enable`), revoke their tokens, every active certificate and pending request.
    #[arg(long)]
    pub user: Option<String>,
    /// Why (required; recorded in the audit log).
    #[arg(long)]
    pub reason: String,
}

/// `done` arguments.
#[derive(Debug, Args)]
pub struct DoneArgs {
    /// Request id (r-...) whose certificate you no longer need.
    pub id: String,
    /// Optional note for the audit log.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Deserialize)]
struct Revoked {
    revoked: Vec<String>,
    /// Pending requests cancelled (revoking a user).
    #[serde(default)]
    cancelled: Vec<String>,
    /// Tokens revoked (revoking a user).
    #[serde(default)]
    tokens_revoked: u64,
    /// Whether the user was disabled by an earlier revocation.
    #[serde(default)]
    already_disabled: bool,
}

/// `countersign revoke (--serial N | --request ID | --user NAME) --reason TEXT`.
pub(super) fn revoke(url: &str, args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    let body = json!({ "reason": args.reason });
    let path = if let Some(user) = &args.user {
        format!("/v1/users/{}/revoke", urlencode(user))
    } else {
        let serial = match (&args.serial, &args.request) {
            (Some(s), _) => s.clone(),
            (None, Some(id)) => {
                let r: RequestView = client.get(&format!("/v1/requests/{}", urlencode(id)))?;
                r.certificate
                    .map(|c| c.serial.to_string())
                    .ok_or_else(|| anyhow!("request {id} is {}, it has no certificate", r.status))?
            }
            (None, None) => return Err(anyhow!("name --serial, --request or --user")),
        };
        format!("/v1/certificates/{}/revoke", urlencode(&serial))
    };
    let revoked: Revoked = client.post(&path, &body)?;
    if revoked.revoked.is_empty() {
        eprintln!("no active certificate to revoke");
    }
    for serial in &revoked.revoked {
        outln!("revoked certificate serial {serial}")?;
    }
    for id in &revoked.cancelled {
        outln!("cancelled pending request {id}")?;
    }
    if let Some(user) = &args.user {
        if revoked.already_disabled {
            eprintln!("user {user} was already disabled");
        } else {
            eprintln!(
                "user {user} is disabled ({} token(s) revoked); every token and SSH key of \
                 theirs is refused until `countersign user enable {user}`",
                revoked.tokens_revoked
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign done ID`: end your own certificate early.
pub(super) fn done(url: &str, args: DoneArgs) -> anyhow::Result<ExitCode> {
    let body = json!({ "reason": args.reason });
    let r: RequestView = Client::from_env(url)?
        .post(&format!("/v1/requests/{}/done", urlencode(&args.id)), &body)?;
    let serial = r
        .certificate
        .as_ref()
        .map(|c| c.serial.to_string())
        .unwrap_or_default();
    outln!(
        "certificate serial {serial} of {} revoked; thanks for giving access back",
        r.id
    )?;
    Ok(ExitCode::SUCCESS)
}
