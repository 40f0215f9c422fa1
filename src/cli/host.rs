//! `countersign host token create|enroll|renew|revoke|list`: SSH host certificates from
//! the host CA (`[host_ca]`); `known-hosts` and `ssh-config` for the clients that trust
//! them are in `host/known_hosts.rs`.
//!
//! Admins make a single-use join token for exactly a host's names (`token create`) and
//! list or revoke host certificates, with their API token. A host needs no API token: it
//! enrolls once with the join token (`host/enroll.rs`), then renews with its host key's
//! signature over a challenge and its current certificate (`host/renew.rs`). Both write
//! the certificate file beside the host key atomically, so sshd, which reads it at each
//! connection, never sees a missing or half-written one.

mod enroll;
mod known_hosts;
mod renew;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::{Value, json};
use ssh_key::Certificate;
use ssh_key::certificate::CertType;

use super::client::Client;
use super::files::write_atomically_with_mode;
use super::show::urlencode;
use crate::names::HostPrincipal;

pub(super) use enroll::EnrollArgs;
pub(super) use known_hosts::{KnownHostsArgs, SshConfigArgs};
pub(super) use known_hosts::{known_hosts, ssh_config};
pub(super) use renew::RenewArgs;

/// The host key sshd has on most systems, whose certificate these commands make.
const DEFAULT_HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key.pub";

/// `host` subcommands.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Single-use join tokens for `host enroll` (admins).
    #[command(subcommand)]
    Token(HostTokenCommand),
    /// On a server: get its first host certificate with a join token, write it beside
    /// the host key, and print the sshd_config line that serves it.
    Enroll(EnrollArgs),
    /// On a server: replace its host certificate with a new one (same names, new
    /// serial), proving possession of the host key; run by countersign-host-renew.timer.
    Renew(RenewArgs),
    /// Revoke a host certificate (admins): listed in the host KRL (`krl sync --host`)
    /// until it expires, so clients refuse it.
    Revoke {
        /// The certificate's serial (`host list` shows it).
        #[arg(long)]
        serial: String,
        /// Why (required; recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Each host key's newest certificate still valid, newest first (admins).
    List {
        /// Only those that end within this long (e.g. 2d): hosts whose renewal fails.
        #[arg(long, value_name = "D")]
        expiring: Option<String>,
        /// Every one: superseded, expired and revoked ones too.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `host token` subcommands.
#[derive(Debug, Subcommand)]
pub enum HostTokenCommand {
    /// Make a join token for exactly these principals and print it once, alone on stdout.
    Create {
        /// The names and addresses the host's certificate is for, comma-separated or
        /// repeated (e.g. web1,web1.example.com,10.0.0.5): each must be inside the
        /// server's [host_ca] allowed_principals.
        #[arg(long, value_delimiter = ',', required = true)]
        principals: Vec<String>,
        /// How long the token may wait for its enrollment (at most 7d) [default: 15m].
        #[arg(long)]
        ttl: Option<String>,
        /// Print the token with its id, principals and expiry as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What the server says of a host certificate (`HostCertView`), the fields shown here.
#[derive(Debug, Deserialize)]
pub(super) struct HostCert {
    serial: String,
    status: String,
    principals: Vec<String>,
    key_fingerprint: String,
    valid_before: String,
    #[serde(default)]
    renewed_from: Option<String>,
    certificate: String,
    /// Revoking: the other certificates of the same host key revoked with it.
    #[serde(default)]
    also_revoked: Vec<String>,
}

/// Runs a `host` subcommand against the server at `url`.
pub(super) fn run(url: &str, cmd: HostCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HostCommand::Token(HostTokenCommand::Create {
            principals,
            ttl,
            json,
        }) => token_create(url, &principals, ttl, json),
        HostCommand::Enroll(args) => enroll::run(url, &args),
        HostCommand::Renew(args) => renew::run(url, &args),
        HostCommand::Revoke { serial, reason } => revoke(&Client::from_env(url)?, &serial, reason),
        HostCommand::List {
            expiring,
            all,
            json,
        } => list(&Client::from_env(url)?, expiring.as_deref(), all, json),
    }
}

fn token_create(
    url: &str,
    principals: &[String],
    ttl: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // Checked here too, so that a typo is named before anything is sent.
    HostPrincipal::parse_list(principals).map_err(|e| anyhow!("--principals: {e}"))?;
    // A join token makes a host certificate: with a session, a recent sign-in.
    let made: Value = super::login::post_stepping_up(
        url,
        "/v1/hosts/tokens",
        &json!({ "principals": principals, "ttl": ttl }),
        "Making a host join token",
    )?;
    if json {
        super::output::json(&made)?;
        return Ok(ExitCode::SUCCESS);
    }
    let token = made["token"]
        .as_str()
        .ok_or_else(|| anyhow!("the server sent no token"))?;
    outln!("{token}")?;
    eprintln!(
        "join token {} for {} created, expires {}; single use, shown only this once. On the \
         host: put it in a file only root reads, then `countersign host enroll --token-file \
         FILE --key {DEFAULT_HOST_KEY}`",
        made["id"].as_str().unwrap_or("?"),
        principals.join(", "),
        made["expires_at"].as_str().unwrap_or("?"),
    );
    Ok(ExitCode::SUCCESS)
}

fn revoke(client: &Client, serial: &str, reason: String) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/hosts/certificates/{}/revoke", urlencode(serial));
    let cert: HostCert = client.post(&path, &json!({ "reason": reason }))?;
    outln!("revoked host certificate serial {}", cert.serial)?;
    for other in &cert.also_revoked {
        outln!("revoked host certificate serial {other} (same host key)")?;
    }
    eprintln!(
        "{} ({}) is listed in the host KRL until {}; clients refuse it once their \
         RevokedHostKeys file is synced (`countersign krl sync --host`)",
        cert.principals.join(", "),
        cert.key_fingerprint,
        cert.valid_before
    );
    Ok(ExitCode::SUCCESS)
}

fn list(
    client: &Client,
    expiring: Option<&str>,
    all: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = match (expiring, all) {
        (Some(d), true) => format!("/v1/hosts/certificates?expiring={}&all=true", urlencode(d)),
        (Some(d), false) => format!("/v1/hosts/certificates?expiring={}", urlencode(d)),
        (None, true) => "/v1/hosts/certificates?all=true".to_owned(),
        (None, false) => "/v1/hosts/certificates".to_owned(),
    };
    let v: Value = client.get(&path)?;
    let certs = v["certificates"].clone();
    if json {
        super::output::json(&certs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let certs: Vec<HostCert> = serde_json::from_value(certs)
        .context("server sent a response that is not the expected JSON")?;
    let rows: Vec<Vec<String>> = certs
        .into_iter()
        .map(|c| {
            vec![
                c.serial,
                c.status,
                c.principals.join(","),
                c.valid_before,
                c.key_fingerprint,
            ]
        })
        .collect();
    let header = ["SERIAL", "STATUS", "PRINCIPALS", "VALID BEFORE", "KEY"];
    super::output::table(&header, &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// Checks that what the server sent is a host certificate for `key` and writes it to
/// `out` atomically, readable by all (mode 0644, like the `.pub` beside it).
fn install(out: &Path, key: &ssh_key::PublicKey, cert: &HostCert) -> anyhow::Result<()> {
    let parsed = Certificate::from_openssh(cert.certificate.trim())
        .map_err(|e| anyhow!("the server sent a certificate that does not parse: {e}"))?;
    if parsed.cert_type() != CertType::Host || parsed.public_key() != key.key_data() {
        bail!(
            "the server sent something other than a host certificate for this key; {} was \
             left as it is",
            out.display()
        );
    }
    let line = format!("{}\n", cert.certificate.trim());
    write_atomically_with_mode(out, line.as_bytes(), 0o644).with_context(|| {
        format!(
            "the certificate (serial {}) was made but not written: an admin can fetch it \
             with GET /v1/hosts/certificates/{}",
            cert.serial, cert.serial
        )
    })
}
