//! `countersign host renew`: a new host certificate for the same names, proving
//! possession of the host key.
//!
//! The server sends a challenge; the host private key (the `--key` path without `.pub`)
//! signs it here, in-process, as an SSHSIG in namespace `countersign-host-renew` (what
//! `ssh-keygen -Y sign -n countersign-host-renew` makes); the signature and the current
//! certificate go back, and the new certificate replaces the file atomically. The
//! private key never leaves this process and is never printed or logged.
//!
//! It renews whenever it runs, however long the current certificate has left: a renewal
//! costs one signature and one row, and a daily run that fails shows in `systemctl
//! --failed` the day it breaks, not days later when a threshold is finally crossed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::json;
use ssh_key::{Certificate, HashAlg, LineEnding, PrivateKey};

use super::{DEFAULT_HOST_KEY, HostCert, install};
use crate::cli::client::Client;
use crate::cli::keys::public_file;
use crate::cli::request::cert_path;
use crate::service::HOST_RENEW_NAMESPACE;

/// `host renew` arguments.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The host's public key; its private key is the same path without `.pub` (read
    /// here to sign the server's challenge; an encrypted key is refused).
    #[arg(long, default_value = DEFAULT_HOST_KEY)]
    pub key: PathBuf,
    /// The current certificate, replaced atomically by the new one [default: the key's
    /// path with -cert.pub].
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The new certificate's lifetime (at most the server's [host_ca] max_ttl)
    /// [default: its cert_ttl, 7d].
    #[arg(long)]
    pub ttl: Option<String>,
}

/// `POST /v1/hosts/renew/challenge`'s answer.
#[derive(Debug, Deserialize)]
struct Challenge {
    challenge: String,
    namespace: String,
}

/// Runs `host renew`.
pub(super) fn run(url: &str, args: &RenewArgs) -> anyhow::Result<ExitCode> {
    let public = public_file(&args.key);
    let out = args.cert.clone().unwrap_or_else(|| cert_path(&public));
    let current = read_certificate(&out)?;
    let private = read_private_key(&public)?;
    if current.public_key() != private.public_key().key_data() {
        bail!(
            "{} is a certificate for another key than {}; nothing was sent",
            out.display(),
            private_path(&public).display()
        );
    }
    let key = private.public_key().clone();
    let client = Client::anonymous(url)?;
    let asked: Challenge = client.post(
        "/v1/hosts/renew/challenge",
        &json!({ "public_key": key.to_openssh()? }),
    )?;
    if asked.namespace != HOST_RENEW_NAMESPACE {
        bail!(
            "the server asks for a signature in namespace {:?}, not {HOST_RENEW_NAMESPACE:?}: \
             nothing was signed",
            asked.namespace.chars().take(64).collect::<String>()
        );
    }
    let signature = private
        .sign(
            HOST_RENEW_NAMESPACE,
            HashAlg::Sha512,
            asked.challenge.as_bytes(),
        )
        .and_then(|sig| sig.to_pem(LineEnding::LF))
        .map_err(|e| anyhow!("signing the challenge with the host key: {e}"))?;
    drop(private);
    let body = json!({
        "certificate": current.to_openssh()?,
        "challenge": asked.challenge,
        "signature": signature,
        "ttl": args.ttl,
    });
    let cert: HostCert = client.post("/v1/hosts/renew", &body).with_context(|| {
        format!(
            "the server did not renew serial {}; {} was left as it is",
            current.serial(),
            out.display()
        )
    })?;
    install(&out, &key, &cert)?;
    eprintln!(
        "renewed: host certificate serial {} (was {}) for {}, valid until {}; wrote {} \
         (reload sshd to serve it: OpenSSH 9.8 and later read it only then; \
         countersign-host-renew.service does)",
        cert.serial,
        cert.renewed_from.as_deref().unwrap_or("?"),
        cert.principals.join(", "),
        cert.valid_before,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The certificate in `path` (written by `host enroll` or an earlier renewal).
fn read_certificate(path: &Path) -> anyhow::Result<Certificate> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (enroll the host first with `countersign host enroll`, or name the \
             certificate with --cert)",
            path.display()
        )
    })?;
    Certificate::from_openssh(text.trim())
        .map_err(|e| anyhow!("{} is not an OpenSSH certificate: {e}", path.display()))
}

/// The private key beside `public`: the same path without `.pub`.
fn private_path(public: &Path) -> PathBuf {
    public.with_extension("")
}

/// The host private key, unencrypted (sshd's host keys are; a passphrase could not be
/// typed by a timer anyway). Its error never quotes the file.
fn read_private_key(public: &Path) -> anyhow::Result<PrivateKey> {
    let path = private_path(public);
    let key = PrivateKey::read_openssh_file(&path).map_err(|e| {
        anyhow!(
            "reading the host private key {}: {e} (run as root: host keys are root's); \
             nothing was sent",
            path.display()
        )
    })?;
    if key.is_encrypted() {
        bail!(
            "the host private key {} is encrypted: host renew signs with an unencrypted host \
             key, as sshd uses it; nothing was sent",
            path.display()
        );
    }
    Ok(key)
}
