//! `countersign krl --out FILE`: fetch the KRL for sshd's `RevokedKeys`, check it, and
//! replace FILE atomically; `krl sync` does it again and again (`krl/sync.rs`).
//!
//! The KRL may come over plain HTTP, so it is trusted only with the CA's signature
//! (`/v1/krl.sig`, SSHSIG in namespace `countersign-krl`) checked against a CA key this
//! host already has: `--ca-key FILE`, or the key pinned beside FILE at the first fetch
//! (`FILE.ca.pub`). A KRL naming another CA is refused unless `--force`, and a bad
//! signature is never overridden: spreading a foreign KRL to every server would un-revoke
//! certificates everywhere within a minute. A revocation the file lists that the new KRL
//! drops before its certificate expires stays in the file, and the round fails
//! (`krl/carry.rs`); so a KRL older than the file (a CA whose database went back) is
//! taken with them, refused only when it drops serials the file gives no expiry for.
//!
//! `--host` fetches the host KRL instead (`/v1/krl/host`, for ssh's `RevokedHostKeys`),
//! signed by the host CA (`/v1/krl/host.sig`, namespace `countersign-host-krl`), under the
//! same rules with the host CA's key (`--ca-key`, or pinned from `/v1/host_ca.pub`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use ssh_key::{HashAlg, PublicKey, SshSig};

use super::client::Client;
use super::files::write_atomically;
use crate::krl::{self, KrlSummary};
use crate::service::{HOST_KRL_NAMESPACE, KRL_NAMESPACE};

mod carry;
mod forgotten;
mod sync;

/// `krl` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct KrlArgs {
    /// `sync`: keep OUT current, fetching every --interval (or once, for a timer).
    #[command(subcommand)]
    pub command: Option<KrlCommand>,
    /// File to replace atomically (the file sshd's `RevokedKeys` names).
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub checks: Checks,
    /// Replace OUT even with a KRL naming another CA, or older than OUT and dropping
    /// serials OUT gives no expiry for (the signature must still verify). Revocations OUT
    /// lists that have not expired are still kept when the KRL is of the same CA: remove
    /// OUT to start afresh.
    #[arg(long)]
    pub force: bool,
}

/// `krl` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KrlCommand {
    /// Keep OUT current: fetch the KRL every --interval (ETag: unchanged KRLs are not
    /// sent again), check it as `krl --out` does, replace OUT atomically when it
    /// changed; keep the last good file when the CA cannot be reached or sends a KRL
    /// that fails a check. --once: one fetch, non-zero exit on failure (for a timer).
    Sync(sync::SyncArgs),
    /// Tell the CA of a revocation it forgot, as `krl --out` or `krl sync` on a server
    /// named it (admins): the KRL lists the serial again until --valid-before.
    Forgotten(forgotten::ForgottenArgs),
}

/// What a fetched KRL must pass before it replaces the file (`krl --out`, `krl sync`).
#[derive(Debug, Args)]
pub struct Checks {
    /// The CA public key (an OpenSSH line, e.g. the file `TrustedUserCAKeys` names) the
    /// KRL's signature must verify with. Without it, the key pinned in OUT.ca.pub at the
    /// first fetch is used (and pinned then from /v1/ca.pub: trust on first use).
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
    /// Refuse a KRL made longer ago than this (its signed generated date; the CA makes
    /// a new one every minute): an answer replayed from the past, or a CA whose clock
    /// is far behind, fails loudly instead of freezing the file.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub max_age: std::time::Duration,
    /// The host KRL (for ssh's `RevokedHostKeys` on clients), signed by the host CA:
    /// --ca-key is then the host CA's public key (/v1/host_ca.pub, checked with the CA's
    /// operator), and the pin is taken from /v1/host_ca.pub.
    #[arg(long)]
    pub host: bool,
}

/// Where one KRL and what vouches for it are served.
struct Source {
    /// The KRL.
    krl: &'static str,
    /// Its signature.
    sig: &'static str,
    /// The public key of the CA that signs it (pinned at the first fetch).
    ca: &'static str,
    /// The signature's SSHSIG namespace.
    namespace: &'static str,
}

/// The user CA's KRL, for sshd's `RevokedKeys`.
const USER_KRL: Source = Source {
    krl: "/v1/krl",
    sig: "/v1/krl.sig",
    ca: "/v1/ca.pub",
    namespace: KRL_NAMESPACE,
};

/// The host CA's KRL, for ssh's `RevokedHostKeys`.
const HOST_KRL: Source = Source {
    krl: "/v1/krl/host",
    sig: "/v1/krl/host.sig",
    ca: "/v1/host_ca.pub",
    namespace: HOST_KRL_NAMESPACE,
};

impl Checks {
    /// The KRL these checks are for.
    fn source(&self) -> &'static Source {
        if self.host { &HOST_KRL } else { &USER_KRL }
    }
}

/// How many times the KRL and its signature are fetched when a revocation between the
/// two fetches makes them disagree.
const ATTEMPTS: usize = 3;

/// Fetches, checks and writes the KRL (or runs `krl sync`).
pub(super) fn run(url: &str, args: KrlArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(KrlCommand::Sync(sync)) => return sync::run(url, &sync),
        Some(KrlCommand::Forgotten(f)) => return forgotten::run(url, &f),
        None => {}
    }
    let out = args.out.ok_or_else(|| anyhow!("--out FILE is required"))?;
    let client = Client::anonymous(url)?;
    let (ca, pin) = trusted_ca(&client, &out, &args.checks)?;
    let Some(fetched) = fetch_verified(&client, (&args.checks, &out), &ca, None)? else {
        bail!("the server answered 304 Not Modified to an unconditional request");
    };
    let installed = install(&out, &args.checks, &ca, pin, &fetched, args.force)?;
    eprintln!("{}", said(&out, &ca, &fetched, &installed));
    if !installed.kept.is_empty() {
        let (version, host) = (fetched.summary.version, args.checks.host);
        bail!(carry::complaint(&out, version, &installed.kept, host));
    }
    Ok(ExitCode::SUCCESS)
}

/// A KRL fetched, its signature verified.
pub(super) struct Fetched {
    bytes: Vec<u8>,
    summary: KrlSummary,
    /// The server's `ETag` for it (for the next conditional fetch).
    etag: Option<String>,
}

/// What [`install`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Installed {
    /// The file was replaced (else it already held these bytes).
    written: bool,
    /// What the file holds now.
    bytes: Vec<u8>,
    /// Revocations the file listed that the KRL dropped early, kept in it.
    kept: Vec<carry::Kept>,
}

/// Checks `fetched` (its age, its CA, its version against `out`'s) and replaces `out`
/// with it atomically; pins `pin` once a KRL is accepted with it. `force` lets an older
/// or foreign KRL replace `out` (never an unsigned one: that was checked before).
fn install(
    out: &Path,
    checks: &Checks,
    ca: &PublicKey,
    pin: Option<PathBuf>,
    fetched: &Fetched,
    force: bool,
) -> anyhow::Result<Installed> {
    let (bytes, summary) = (&fetched.bytes, &fetched.summary);
    check_age(summary, checks)?;
    if summary.cas.iter().any(|k| k != ca.key_data()) {
        bail!(
            "the KRL names a CA other than {}; nothing was written",
            fingerprint(ca)
        );
    }
    let old = match std::fs::read(out) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let old_summary = old.as_deref().map(krl::read);
    let same_ca = match &old_summary {
        Some(Ok(old)) if old.cas.iter().all(|k| k == ca.key_data()) => Some(old),
        _ => None,
    };
    let dropped = same_ca.map_or_else(Default::default, |old| {
        carry::dropped(old, summary, unix_now())
    });
    let older = replaces_badly(out, ca, old_summary.as_ref(), summary.version, &dropped);
    let forced = older.is_some();
    if let Some(why) = older {
        if !force {
            bail!(
                "{why}; {} was left as it is (--force replaces it anyway)",
                out.display()
            );
        }
        eprintln!("warning: {why}; replacing it anyway (--force)");
    }
    // Pinned only once a KRL is accepted with it: a refused first fetch pins nothing.
    if let Some(pin) = pin {
        write_atomically(&pin, format!("{}\n", ca.to_openssh()?).as_bytes())?;
        eprintln!(
            "pinned CA key {} in {} (trust on first use; --ca-key names the key yourself)",
            fingerprint(ca),
            pin.display()
        );
    }
    // (Not when --force took it past a refusal: then the file may lose what it listed.)
    if let Some(old) = same_ca.filter(|old| !forced && old.version > summary.version) {
        // Taken: every revocation the file lists is in it still, or ended, or kept below.
        eprintln!(
            "warning: the CA's KRL (version {}) is older than {} (version {}): its database \
             went back (restored from an older copy?); every revocation the file lists that \
             has not ended stays in it",
            summary.version,
            out.display(),
            old.version
        );
    }
    let kept = dropped.kept;
    let bytes = match same_ca {
        Some(old) if !kept.is_empty() || dropped.longer > 0 => {
            carry::with_kept(summary, old, ca.key_data(), &kept)?
        }
        _ => bytes.clone(),
    };
    let written = old.as_ref() != Some(&bytes);
    if written {
        write_atomically(out, &bytes)?;
    }
    Ok(Installed {
        written,
        bytes,
        kept,
    })
}

/// This host's clock, in Unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A KRL made longer ago than `--max-age`, or further ahead than it (its signed
/// generated date), is refused: a replayed or frozen answer fails loudly.
fn check_age(summary: &KrlSummary, checks: &Checks) -> anyhow::Result<()> {
    let now = unix_now();
    let age = now.saturating_sub(summary.generated_date);
    if summary.generated_date > now.saturating_add(checks.max_age.as_secs()) {
        bail!(
            "the KRL says it was made {} from now, more than --max-age ahead: \
             the CA's clock (or this host's) is wrong; nothing was written",
            humantime::format_duration(std::time::Duration::from_secs(
                summary.generated_date - now
            ))
        );
    }
    if age > checks.max_age.as_secs() {
        bail!(
            "the KRL was made {} ago, more than --max-age {}: a stale answer \
             (replayed, or from a CA whose clock is behind); nothing was written",
            humantime::format_duration(std::time::Duration::from_secs(age)),
            humantime::format_duration(checks.max_age)
        );
    }
    Ok(())
}

/// The line that says what [`install`] did.
fn said(out: &Path, ca: &PublicKey, fetched: &Fetched, installed: &Installed) -> String {
    let kept = match installed.kept.len() {
        0 => String::new(),
        n => format!(", with {n} revocation(s) it dropped early kept"),
    };
    if installed.written {
        format!(
            "wrote {} (KRL version {}, {} bytes, signed by {}{kept})",
            out.display(),
            fetched.summary.version,
            installed.bytes.len(),
            fingerprint(ca)
        )
    } else {
        format!(
            "{} is current (KRL version {}{kept})",
            out.display(),
            fetched.summary.version
        )
    }
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
/// server's `/v1/ca.pub` (`/v1/host_ca.pub` with `--host`), with the pin file to write
/// once a KRL verified with it.
fn trusted_ca(
    client: &Client,
    out: &Path,
    checks: &Checks,
) -> anyhow::Result<(PublicKey, Option<PathBuf>)> {
    if let Some(path) = &checks.ca_key {
        return Ok((read_key(path)?, None));
    }
    let pin = pin_path(out);
    if pin.exists() {
        return Ok((read_key(&pin)?, None));
    }
    let path = checks.source().ca;
    let line = client.get_text(path)?;
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|e| anyhow!("the server's {path} is not an OpenSSH public key: {e}"))?;
    Ok((key, Some(pin)))
}

/// The first OpenSSH public key line of `path` (comments and blank lines skipped).
pub(super) fn read_key(path: &Path) -> anyhow::Result<PublicKey> {
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

/// The KRL `checks` name, once its signature verifies with `ca`; `None` if it is still
/// the one of `etag` (304 Not Modified).
fn fetch_verified(
    client: &Client,
    (checks, out): (&Checks, &Path),
    ca: &PublicKey,
    etag: Option<&str>,
) -> anyhow::Result<Option<Fetched>> {
    let source = checks.source();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let Some((bytes, etag)) = client.get_if_changed(source.krl, etag)? else {
            return Ok(None);
        };
        let signature = client.get_text(source.sig)?;
        let sig = SshSig::from_pem(signature.trim())
            .map_err(|e| anyhow!("{} is not an SSH signature: {e}", source.sig))?;
        match ca.verify(source.namespace, &bytes, &sig) {
            Ok(()) => {
                let summary = krl::read(&bytes).map_err(|e| anyhow!("the server sent {e}"))?;
                return Ok(Some(Fetched {
                    bytes,
                    summary,
                    etag,
                }));
            }
            // A revocation between the two fetches gives a signature of the next KRL.
            Err(e) => last = Some(e),
        }
    }
    let pinned = pin_path(out);
    let hint = if checks.ca_key.is_some() {
        "is --ca-key the key of the CA at this URL?".to_owned()
    } else if !pinned.exists() {
        format!(
            "the key is the one {} gave just now: the KRL is not signed by the CA that URL \
             names",
            checks.source().ca
        )
    } else {
        format!(
            "the key is the one pinned in {} at the first fetch; if the CA key changed on \
             purpose, pass the new one with --ca-key, or remove that file to pin the new one",
            pinned.display()
        )
    };
    Err(anyhow!(
        "the KRL's signature does not verify with CA key {} ({}); nothing was written. {hint}",
        fingerprint(ca),
        last.map_or_else(String::new, |e| e.to_string())
    ))
}

/// Why writing a KRL of `version` over `out`, which holds `old` (if it exists), would be
/// wrong, if it would. An older KRL of the same CA is taken when what it leaves out of the
/// file has ended or is kept (`dropped`): refused only when it would drop serials the file
/// gives no expiry for.
fn replaces_badly(
    out: &Path,
    ca: &PublicKey,
    old: Option<&Result<KrlSummary, krl::NotAKrl>>,
    version: u64,
    dropped: &carry::Dropped,
) -> Option<String> {
    let old = match old? {
        Ok(s) => s,
        Err(e) => return Some(format!("{} is {e}", out.display())),
    };
    if old.cas.iter().any(|k| k != ca.key_data()) {
        return Some(format!(
            "{} is a KRL of another CA than {}",
            out.display(),
            fingerprint(ca)
        ));
    }
    if old.version > version && dropped.unknown > 0 {
        return Some(format!(
            "the server's KRL (version {version}) is older than {} (version {}): \
             was the CA's database rolled back? It leaves out {} serial(s) the file lists \
             with no expiry known",
            out.display(),
            old.version,
            dropped.unknown
        ));
    }
    None
}
