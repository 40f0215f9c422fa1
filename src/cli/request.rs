//! `countersign request ROLE --reason TEXT [--ttl D] [--key PATH.pub] [--wait]`.
//!
//! With `--wait` it polls until the request is decided and writes the certificate next
//! to the key as `NAME-cert.pub`, where `ssh` picks it up by itself.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::json;

use super::client::Client;
use super::output;
use crate::render;
use crate::service::{RequestView, Status};

/// How long `request --wait` waits through a server that cannot be reached.
const WAIT_THROUGH_OUTAGE: Duration = Duration::from_secs(15 * 60);

/// `request` arguments.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The role to ask for.
    pub role: String,
    /// Why (required; approvers and the audit log see it).
    #[arg(long)]
    pub reason: String,
    /// Certificate lifetime, e.g. 45m (default: the role's default_ttl).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Public key to certify (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub,
    /// id_rsa.pub, id_ed25519_sk.pub or id_ecdsa_sk.pub).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Wait for the decision and write the certificate next to the key.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between polls while waiting.
    #[arg(long, default_value_t = 2, hide = true)]
    pub poll_seconds: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `request`.
pub(super) fn run(url: &str, args: RequestArgs) -> anyhow::Result<ExitCode> {
    let key_path = match &args.key {
        Some(p) => p.clone(),
        None => default_key("pass --key PATH.pub")?,
    };
    let public_key = read_public_key(&key_path)?;
    let client = Client::from_env(url)?;
    let body = json!({ "role": args.role, "public_key": public_key.trim(), "reason": args.reason, "ttl": args.ttl });
    // Safe to retry: a create that reached the server before the connection broke is
    // found again by its Idempotency-Key, not made twice.
    let mut r: RequestView = client.post_once("/v1/requests", &body)?;
    if !args.wait {
        if args.json {
            output::json(&r)?;
        } else {
            outln!("{}", r.id)?;
            eprintln!(
                "request {} for {} is pending; {} approval(s) needed",
                r.id, r.role, r.approvals_needed
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "request {} for {} is pending; waiting for {}",
        r.id,
        r.role,
        render::waiting_for(&r)
    );
    let mut seen = r.approvals.len();
    let mut outage: Option<std::time::Instant> = None;
    while r.status == Status::Pending {
        std::thread::sleep(Duration::from_secs(args.poll_seconds.max(1)));
        // The request lives on in the database whatever happens to one server: a
        // server down, restarting or out of rotation is waited out, not taken for an
        // answer (asking again would make a second request).
        match client.get(&format!("/v1/requests/{}", r.id)) {
            Ok(now) => {
                if outage.take().is_some() {
                    eprintln!("the server answers again; still waiting");
                }
                r = now;
            }
            Err(e) if e.downcast_ref::<super::client::Transient>().is_some() => {
                let since = *outage.get_or_insert_with(|| {
                    eprintln!("{e:#}; request {} stays as it is, still waiting", r.id);
                    std::time::Instant::now()
                });
                if since.elapsed() > WAIT_THROUGH_OUTAGE {
                    bail!(
                        "{e:#}; gave up waiting after {} minutes: request {} may be decided \
                         meanwhile (countersign show {}; its certificate: countersign cert {})",
                        WAIT_THROUGH_OUTAGE.as_secs() / 60,
                        r.id,
                        r.id,
                        r.id
                    );
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        for a in r.approvals.iter().skip(seen) {
            eprintln!("approved by {}", a.approver);
        }
        seen = r.approvals.len();
    }
    if r.status != Status::Issued {
        let why = r
            .decision_note
            .clone()
            .or(r.decision_code.clone())
            .unwrap_or_default();
        bail!("request {} {}: {why}", r.id, r.status);
    }
    let out = write_certificate(&client, &r, &key_path)?;
    if args.json {
        output::json(&r)?;
    } else {
        outln!("{}", out.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Fetches the certificate of the issued request `r` and writes it next to the key at
/// `key_path`, where `ssh` looks for it; says so on stderr. Its path.
pub(super) fn write_certificate(
    client: &Client,
    r: &RequestView,
    key_path: &Path,
) -> anyhow::Result<PathBuf> {
    let cert = client.get_text(&format!("/v1/requests/{}/certificate", r.id))?;
    let out = cert_path(key_path);
    // Replaced whole: the certificate `ssh` uses now is never emptied or half-written.
    super::files::write_atomically(&out, cert.as_bytes())?;
    let c = r
        .certificate
        .as_ref()
        .ok_or_else(|| anyhow!("issued request without certificate facts"))?;
    eprintln!(
        "certificate serial {} valid until {} written to {}",
        c.serial,
        c.valid_before,
        out.display()
    );
    Ok(out)
}

/// `id_ed25519.pub` -> `id_ed25519-cert.pub`, the name `ssh` looks for.
pub(super) fn cert_path(key: &Path) -> PathBuf {
    let name = key
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".pub").unwrap_or(&name);
    key.with_file_name(format!("{stem}-cert.pub"))
}

/// The public key line in `path`, checked here as the server would: a private key, or
/// anything else that is not one public key line, is refused before anything is sent.
pub(super) fn read_public_key(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.contains("PRIVATE KEY") {
        bail!(
            "{} is a private key; pass its public half (e.g. {}.pub); nothing was sent",
            path.display(),
            path.display()
        );
    }
    crate::pubkey::SubjectKey::parse(text.trim())
        .map_err(|e| anyhow!("{}: {e}; nothing was sent", path.display()))?;
    Ok(text.trim().to_owned())
}

/// The public keys looked for in `~/.ssh`, first found first (a security key's last: one
/// who has only that has it taken).
const DEFAULT_KEYS: [&str; 5] = [
    "id_ed25519.pub",
    "id_ecdsa.pub",
    "id_rsa.pub",
    "id_ed25519_sk.pub",
    "id_ecdsa_sk.pub",
];

pub(super) fn default_key(hint: &str) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; {hint}"))?;
    let dir = Path::new(&home).join(".ssh");
    DEFAULT_KEYS
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow!(
                "no public key in {} ({}); {hint}",
                dir.display(),
                DEFAULT_KEYS.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_lands_where_ssh_looks_for_it() {
        assert_eq!(
            cert_path(Path::new("/h/.ssh/id_ed25519.pub")),
            PathBuf::from("/h/.ssh/id_ed25519-cert.pub")
        );
        assert_eq!(cert_path(Path::new("key")), PathBuf::from("key-cert.pub"));
    }
}
