//! `countersign krl --out FILE`: fetch the KRL for sshd's `RevokedKeys`, check it, and
//! replace FILE atomically.
//!
//! The KRL may come over plain HTTP, so it is trusted only with the CA's signature
//! (`/v1/krl.sig`, SSHSIG in namespace `countersign-krl`) checked against a CA key this
//! host already has: `--ca-key FILE`, or the key pinned beside FILE at the first fetch
//! (`FILE.ca.pub`). A KRL older than the file it would replace, or naming another CA, is
//! refused unless `--force`: spreading a rolled-back or foreign KRL to every server
//! would un-revoke certificates everywhere within a minute. A bad signature is never
//! overridden.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use ssh_key::{HashAlg, PublicKey, SshSig};

use super::client::Client;
use super::files::write_atomically;
use crate::krl::{self, KrlSummary};
use crate::service::KRL_NAMESPACE;

/// `krl` arguments.
#[derive(Debug, Args)]
pub struct KrlArgs {
    /// File to replace atomically (the file sshd's `RevokedKeys` names).
    #[arg(long)]
    pub out: PathBuf,
    /// The CA public key (an OpenSSH line, e.g. the file `TrustedUserCAKeys` names) the
    /// KRL's signature must verify with. Without it, the key pinned in OUT.ca.pub at the
    /// first fetch is used (and pinned then from /v1/ca.pub: trust on first use).
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
    /// Replace OUT even with a KRL older than it or one naming another CA (the signature
    /// must still verify).
    #[arg(long)]
    pub force: bool,
    /// Refuse a KRL made longer ago than this (its signed generated date; the CA makes
    /// a new one every minute): an answer replayed from the past, or a CA whose clock
    /// is far behind, fails loudly instead of freezing the file.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub max_age: std::time::Duration,
}

/// How many times the KRL and its signature are fetched when a revocation between the
/// two fetches makes them disagree.
const ATTEMPTS: usize = 3;

/// Fetches, checks and writes the KRL.
pub(super) fn run(url: &str, args: KrlArgs) -> anyhow::Result<ExitCode> {
    let client = Client::anonymous(url)?;
    let (ca, pin) = trusted_ca(&client, &args)?;
    let (bytes, summary) = fetch_verified(&client, &ca, args.ca_key.is_some())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = now.saturating_sub(summary.generated_date);
    if summary.generated_date > now.saturating_add(args.max_age.as_secs()) {
        bail!(
            "the KRL says it was made {} from now, more than --max-age ahead: \
             the CA's clock (or this host's) is wrong; nothing was written",
            humantime::format_duration(std::time::Duration::from_secs(
                summary.generated_date - now
            ))
        );
    }
    if age > args.max_age.as_secs() {
        bail!(
            "the KRL was made {} ago, more than --max-age {}: a stale answer \
             (replayed, or from a CA whose clock is behind); nothing was written",
            humantime::format_duration(std::time::Duration::from_secs(age)),
            humantime::format_duration(args.max_age)
        );
    }
    if summary.cas.iter().any(|k| k != ca.key_data()) {
        bail!(
            "the KRL names a CA other than {}; nothing was written",
            fingerprint(&ca)
        );
    }
    if let Some(why) = replaces_badly(&args.out, &ca, summary.version)? {
        if !args.force {
            bail!(
                "{why}; {} was left as it is (--force replaces it anyway)",
                args.out.display()
            );
        }
        eprintln!("warning: {why}; replacing it anyway (--force)");
    }
    // Pinned only once a KRL is accepted with it: a refused first fetch pins nothing.
    if let Some(pin) = pin {
        write_atomically(&pin, format!("{}\n", ca.to_openssh()?).as_bytes())?;
        eprintln!(
            "pinned CA key {} in {} (trust on first use; --ca-key names the key yourself)",
            fingerprint(&ca),
            pin.display()
        );
    }
    if std::fs::read(&args.out).is_ok_and(|old| old == bytes) {
        eprintln!(
            "{} is current (KRL version {})",
            args.out.display(),
            summary.version
        );
        return Ok(ExitCode::SUCCESS);
    }
    write_atomically(&args.out, &bytes)?;
    eprintln!(
        "wrote {} (KRL version {}, {} bytes, signed by {})",
        args.out.display(),
        summary.version,
        bytes.len(),
        fingerprint(&ca)
    );
    Ok(ExitCode::SUCCESS)
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Where the CA key is pinned for `out`.
fn pin_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_owned();
    name.push(".ca.pub");
    out.with_file_name(name)
}

/// The CA key the KRL must be signed by: `--ca-key`, the pin, or (first fetch) the
/// server's `/v1/ca.pub`, with the pin file to write once a KRL verified with it.
fn trusted_ca(client: &Client, args: &KrlArgs) -> anyhow::Result<(PublicKey, Option<PathBuf>)> {
    if let Some(path) = &args.ca_key {
        return Ok((read_key(path)?, None));
    }
    let pin = pin_path(&args.out);
    if pin.exists() {
        return Ok((read_key(&pin)?, None));
    }
    let line = client.get_text("/v1/ca.pub")?;
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|e| anyhow!("the server's /v1/ca.pub is not an OpenSSH public key: {e}"))?;
    Ok((key, Some(pin)))
}

/// The first OpenSSH public key line of `path` (comments and blank lines skipped).
fn read_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| anyhow!("{} holds no public key", path.display()))?;
    PublicKey::from_openssh(line)
        .map_err(|e| anyhow!("{} is not an OpenSSH public key: {e}", path.display()))
}

/// The KRL and its summary, once its signature verifies with `ca`.
fn fetch_verified(
    client: &Client,
    ca: &PublicKey,
    named: bool,
) -> anyhow::Result<(Vec<u8>, KrlSummary)> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let bytes = client.get_bytes("/v1/krl")?;
        let signature = client.get_text("/v1/krl.sig")?;
        let sig = SshSig::from_pem(signature.trim())
            .map_err(|e| anyhow!("/v1/krl.sig is not an SSH signature: {e}"))?;
        match ca.verify(KRL_NAMESPACE, &bytes, &sig) {
            Ok(()) => {
                let summary = krl::read(&bytes).map_err(|e| anyhow!("the server sent {e}"))?;
                return Ok((bytes, summary));
            }
            // A revocation between the two fetches gives a signature of the next KRL.
            Err(e) => last = Some(e),
        }
    }
    let hint = if named {
        "is --ca-key the key of the CA at this URL?"
    } else {
        "if the CA key changed on purpose, pass the new one with --ca-key"
    };
    Err(anyhow!(
        "the KRL's signature does not verify with CA key {} ({}); nothing was written. {hint}",
        fingerprint(ca),
        last.map_or_else(String::new, |e| e.to_string())
    ))
}

/// Why writing a KRL of `version` over `out` would be wrong, if it would.
fn replaces_badly(out: &Path, ca: &PublicKey, version: u64) -> anyhow::Result<Option<String>> {
    let old = match std::fs::read(out) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let old = match krl::read(&old) {
        Ok(s) => s,
        Err(e) => return Ok(Some(format!("{} is {e}", out.display()))),
    };
    if old.cas.iter().any(|k| k != ca.key_data()) {
        return Ok(Some(format!(
            "{} is a KRL of another CA than {}",
            out.display(),
            fingerprint(ca)
        )));
    }
    if old.version > version {
        return Ok(Some(format!(
            "the server's KRL (version {version}) is older than {} (version {}): \
             was the CA's database rolled back?",
            out.display(),
            old.version
        )));
    }
    Ok(None)
}
