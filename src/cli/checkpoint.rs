//! `countersign audit checkpoint` and `countersign audit verify [--checkpoint FILE]`,
//! run on the CA host against the local database and CA key.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use chrono::SecondsFormat;
use ssh_key::PublicKey;

use crate::audit::AuditError;
use crate::ca::CertificateAuthority;
use crate::checkpoint::{self, CheckpointError, NAMESPACE, SIGNER};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::service::Local;

fn open(config: &Path) -> anyhow::Result<(Config, Local)> {
    let config = Config::load(config)?;
    let local = Local::open(&config)?;
    Ok((config, local))
}

/// Prints (or writes) a signed checkpoint of the log's current head.
pub(super) fn checkpoint(config: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, local) = open(config)?;
    let (ca, _) = CertificateAuthority::open(&config.ca, false)?;
    let now = SystemClock.now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let (cp, signature) = local.checkpoint(&ca, &now)?;
    match out {
        Some(path) => {
            let sig_path = path.with_file_name(format!(
                "{}.sig",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            std::fs::write(path, cp.statement())
                .with_context(|| format!("writing {}", path.display()))?;
            std::fs::write(&sig_path, &signature)
                .with_context(|| format!("writing {}", sig_path.display()))?;
            eprintln!(
                "checkpoint of event {} written to {} and {}",
                cp.seq,
                path.display(),
                sig_path.display()
            );
            eprintln!(
                "check it with: \
                 ssh-keygen -Y verify -f allowed_signers -I {SIGNER} -n {NAMESPACE} -s {} < {}",
                sig_path.display(),
                path.display()
            );
        }
        None => out!("{}{signature}", cp.statement())?,
    }
    eprintln!(
        "allowed_signers line: {SIGNER} namespaces=\"{NAMESPACE}\" {}",
        ca.public_key_line()
    );
    Ok(ExitCode::SUCCESS)
}

/// Recomputes the chain; with a checkpoint, also requires its head to still be there.
pub(super) fn verify(config: &Path, checkpoint_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, local) = open(config)?;
    let Some(file) = checkpoint_file else {
        return match local.verify_audit() {
            Ok(v) => {
                outln!("audit log ok: {} events, head {}", v.events, v.head)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ AuditError::Broken { .. }) => {
                eprintln!("countersign: {e}");
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e.into()),
        };
    };
    let (statement, signature) = read_checkpoint(file)?;
    let (ca, _) = CertificateAuthority::open(&config.ca, false)?;
    let public = PublicKey::new(ca.public_key_data().clone(), "");
    let result = checkpoint::verify_signature(&public, &statement, &signature)
        .and_then(|cp| local.check_checkpoint(&cp).map(|v| (cp, v)));
    match result {
        Ok((cp, v)) => {
            outln!(
                "audit log ok: {} events, contains checkpoint event {} of {}",
                v.events,
                cp.seq,
                cp.time
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (CheckpointError::Missing(_)
            | CheckpointError::BadSignature(_)
            | CheckpointError::Malformed(_)
            | CheckpointError::Audit(AuditError::Broken { .. })),
        ) => {
            eprintln!("countersign: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// A checkpoint document (statement then signature), or FILE plus FILE.sig.
fn read_checkpoint(file: &Path) -> anyhow::Result<(String, String)> {
    let doc =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if let Some((statement, signature)) = checkpoint::split_document(&doc) {
        return Ok((statement.to_owned(), signature.to_owned()));
    }
    let sig_path = file.with_file_name(format!(
        "{}.sig",
        file.file_name().unwrap_or_default().to_string_lossy()
    ));
    let signature = std::fs::read_to_string(&sig_path).map_err(|_| {
        anyhow!(
            "{} has no signature and {} is missing",
            file.display(),
            sig_path.display()
        )
    })?;
    Ok((doc, signature))
}
