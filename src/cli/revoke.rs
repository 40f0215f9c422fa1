//! `revoke`, `done` and `krl`: ending certificates and fetching the revocation list.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use super::client::Client;
use super::files::write_atomically;
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
    /// Revoke every active certificate of this user (offboarding).
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

/// `krl` arguments.
#[derive(Debug, Args)]
pub struct KrlArgs {
    /// File to replace atomically (the file sshd's `RevokedKeys` names).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Deserialize)]
struct Revoked {
    revoked: Vec<String>,
    /// Pending requests cancelled (revoking a user).
    #[serde(default)]
    cancelled: Vec<String>,
}

/// `countersign revoke (--serial N | --request ID | --user NAME) --reason TEXT`.
pub fn revoke(url: &str, args: RevokeArgs) -> anyhow::Result<ExitCode> {
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
                    .map(|c| c.serial)
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
    Ok(ExitCode::SUCCESS)
}

/// `countersign done ID`: end your own certificate early.
pub fn done(url: &str, args: DoneArgs) -> anyhow::Result<ExitCode> {
    let body = json!({ "reason": args.reason });
    let r: RequestView = Client::from_env(url)?
        .post(&format!("/v1/requests/{}/done", urlencode(&args.id)), &body)?;
    let serial = r
        .certificate
        .as_ref()
        .map(|c| c.serial.clone())
        .unwrap_or_default();
    outln!(
        "certificate serial {serial} of {} revoked; thanks for giving access back",
        r.id
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `countersign krl --out FILE`: fetch `/v1/krl` (no token needed) and replace FILE
/// atomically, so sshd never sees a missing or half-written file.
pub fn krl(url: &str, args: KrlArgs) -> anyhow::Result<ExitCode> {
    let bytes = Client::anonymous(url)?.get_bytes("/v1/krl")?;
    if !bytes.starts_with(b"SSHKRL\n\0") {
        return Err(anyhow!("the server did not send a KRL"));
    }
    write_atomically(&args.out, &bytes)?;
    eprintln!("wrote {} ({} bytes)", args.out.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}
