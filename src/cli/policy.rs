//! `countersign policy sign|status|allowed-signers`: the signatures a configuration file
//! with `[policy]` needs before it takes effect (`signoff.rs`).
//!
//! `sign` has `ssh-keygen -Y sign -n countersign-policy` sign the file's exact bytes (it
//! asks for a passphrase, or the ssh-agent when `--key` names a `.pub` file whose private
//! half is not there) and writes the signature to `<config>.sig.d/<user>.sig`. `status`
//! and `allowed-signers` run on the CA host: whose signatures count is decided by the
//! policy the database records as in force.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use serde_json::json;
use ssh_key::{HashAlg, PublicKey, SshSig};

use crate::config::{Config, StorageSettings};
use crate::names::UserName;
use crate::service::Local;
use crate::signoff::{self, Basis, NAMESPACE, Outcome};

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Sign the configuration file (--config) with your SSH key; the signature goes to
    /// <config>.sig.d/<user>.sig.
    Sign {
        /// Your private key, or its `.pub` file to sign with the ssh-agent.
        #[arg(long)]
        key: PathBuf,
        /// Whose signature it is (default: the user whose `ssh_keys` in the file hold
        /// the key).
        #[arg(long = "as", value_name = "USER")]
        user: Option<String>,
    },
    /// Which signatures of the file are valid, by whom, and what is missing (on the CA
    /// host); exits 1 if the file would be refused.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an OpenSSH allowed_signers file of the signers whose signatures count, for
    /// `ssh-keygen -Y verify -n countersign-policy -I USER` (on the CA host).
    AllowedSigners,
}

/// Runs a `policy` subcommand.
pub(super) fn run(config_path: &Path, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Sign { key, user } => sign(config_path, &key, user.as_deref()),
        PolicyCommand::Status { json } => status(config_path, json),
        PolicyCommand::AllowedSigners => allowed_signers(config_path),
    }
}

/// Signs the file's exact bytes, once they are known to load.
fn sign(config_path: &Path, key: &Path, user: Option<&str>) -> anyhow::Result<ExitCode> {
    // The bytes signed are the text the config was parsed from (`Config::text`), never a
    // second read of the file.
    let config = Config::load(config_path)
        .map_err(|e| anyhow!("{:#}; nothing was signed", anyhow::Error::new(e)))?;
    let bytes = config.text.as_bytes();
    let pem = ssh_keygen_sign(key, bytes)?;
    let sig = SshSig::from_pem(&pem).context("ssh-keygen's output is not a signature")?;
    let public = PublicKey::new(sig.public_key().clone(), "");
    public
        .verify(NAMESPACE, bytes, &sig)
        .context("ssh-keygen's signature does not verify")?;
    let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
    let user = match user {
        Some(u) => {
            let user = UserName::parse(u)?;
            let listed = config
                .policy
                .users
                .get(&user)
                .is_some_and(|u| u.ssh_keys.iter().any(|k| k.fingerprint() == fingerprint));
            if !listed {
                eprintln!(
                    "warning: {fingerprint} is not in {user}'s ssh_keys in this file: the \
                     signature counts only if {user} registered the key (countersign keys add)"
                );
            }
            user
        }
        None => config
            .policy
            .users
            .values()
            .find(|u| u.ssh_keys.iter().any(|k| k.fingerprint() == fingerprint))
            .map(|u| u.name.clone())
            .ok_or_else(|| {
                anyhow!(
                    "key {fingerprint} is in no user's ssh_keys in {}: say whose signature \
                     this is with --as USER",
                    config_path.display()
                )
            })?,
    };
    let dir = signoff::signatures_dir(config_path);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(format!("{user}.sig"));
    if out.exists() {
        eprintln!("replacing the signature in {}", out.display());
    }
    // Public data, readable by the server whichever user it runs as.
    super::files::write_atomically_with_mode(&out, &pem, 0o644)?;
    eprintln!(
        "signed {} as {user} with {fingerprint}; written to {}",
        config_path.display(),
        out.display()
    );
    if let Some(s) = &config.policy.signing {
        eprintln!(
            "[policy] version {}; whose signatures count is decided by the policy in force \
             (its signers, or this file's own for a first signed policy): `countersign \
             policy status` on the CA host says who has signed and who is missing",
            s.version
        );
    } else {
        eprintln!("note: this file has no [policy] section: it takes effect unsigned");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ssh-keygen -Y sign` over `bytes` (on its stdin), the signature (PEM) from its stdout.
fn ssh_keygen_sign(key: &Path, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running ssh-keygen (OpenSSH 8.1 or later is needed)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(bytes).context("feeding ssh-keygen")?;
    }
    let out = child.wait_with_output().context("waiting for ssh-keygen")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen -Y sign failed ({}); nothing was written",
            out.status
        );
    }
    Ok(out.stdout)
}

/// What `serve` or a reload would decide about the file now.
fn status(config_path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let fresh = matches!(config.storage, StorageSettings::Sqlite)
        && !config.database_path().exists()
        && !config.ca.key_file.exists();
    let outcome = if fresh {
        // Before `init`: what the first start will judge (nothing is recorded yet).
        eprintln!("note: no CA state yet: judged as the first signed policy");
        crate::service::first_policy_outcome(&config)?
    } else {
        Local::open(&config)?.policy_outcome(&config)?
    };
    let missing = outcome.missing();
    if as_json {
        let authority = outcome.authority.as_ref().map(|a| {
            json!({
                "basis": basis(a.basis),
                "signers": a.signing.signers,
                "signatures_required": a.signing.signatures_required,
                "version": a.signing.version,
            })
        });
        super::output::json(&json!({
            "file": config_path,
            "version": outcome.signing.as_ref().map(|s| s.version),
            "authority": authority,
            "valid": outcome.tally.valid,
            "rejected": outcome.tally.rejected,
            "missing": missing,
            "in_force": outcome.in_force,
            "accepted": outcome.refusal.is_none(),
            "refusal": outcome.refusal,
        }))?;
    } else {
        print_status(config_path, &outcome, &missing)?;
    }
    Ok(if outcome.refusal.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn basis(b: Basis) -> &'static str {
    match b {
        Basis::Running => "running",
        Basis::Bootstrap => "bootstrap",
    }
}

fn print_status(path: &Path, outcome: &Outcome, missing: &[UserName]) -> anyhow::Result<()> {
    let Some(a) = &outcome.authority else {
        outln!(
            "{}: unsigned (no signers, and no signed policy in force): it takes effect as it is",
            path.display()
        )?;
        return Ok(());
    };
    if outcome.in_force {
        outln!(
            "{}: the very file in force (version {}): it was judged when it was loaded, and \
             starts again as it is",
            path.display(),
            a.signing.version
        )?;
        return Ok(());
    }
    let names = |v: &[UserName]| {
        v.iter()
            .map(UserName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match outcome.signing.as_ref() {
        Some(s) if !s.is_signed() => outln!(
            "{}: [policy] version {} without signers (retiring signing)",
            path.display(),
            s.version
        )?,
        Some(s) => outln!("{}: [policy] version {}", path.display(), s.version)?,
        None => outln!("{}: no [policy] section", path.display())?,
    }
    match a.basis {
        Basis::Running => outln!(
            "signers:  {} of {} (the policy in force, version {})",
            a.signing.signatures_required,
            names(&a.signing.signers),
            a.signing.version
        )?,
        Basis::Bootstrap => outln!(
            "signers:  {} of {} (first signed policy: its own signers)",
            a.signing.signatures_required,
            names(&a.signing.signers)
        )?,
    }
    for v in &outcome.tally.valid {
        outln!("valid:    {}  {}", v.user, v.key)?;
    }
    for r in &outcome.tally.rejected {
        outln!("ignored:  {}: {}", r.file, r.why)?;
    }
    if !missing.is_empty() {
        outln!("missing:  {}", names(missing))?;
    }
    match &outcome.refusal {
        None => outln!("result:   would take effect")?,
        Some(why) => outln!("result:   would be refused: {why}")?,
    }
    Ok(())
}

/// One allowed_signers line per key that counts, known in full.
fn allowed_signers(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let local = Local::open(&config)?;
    let outcome = local.policy_outcome(&config)?;
    if outcome.authority.is_none() {
        bail!(
            "no signed policy is in force and {} has no [policy]",
            config_path.display()
        );
    }
    let (known, unknown) = local.signer_keys(&config, &outcome)?;
    for k in &known {
        outln!("{} namespaces=\"{NAMESPACE}\" {}", k.user, k.public_key)?;
    }
    for (user, fingerprint) in unknown {
        eprintln!(
            "note: {user}'s key {fingerprint} counts but is in neither this file nor the \
             registered keys: it is left out"
        );
    }
    Ok(ExitCode::SUCCESS)
}
