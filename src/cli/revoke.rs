//! `revoke`, `done` and `krl`: ending certificates and fetching the revocation list.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
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
    if let Some(user) = &args.user {
        if revoked.already_disabled {
            eprintln!("user {user} was already disabled");
        } else {
            eprintln!(
                "user {user} is disabled ({} token(s) revoked); every token and SSH key of theirs is refused until `countersign user enable {user}`",
                revoked.tokens_revoked
            );
        }
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

/// Writes a temp file in the same folder, syncs it, and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
