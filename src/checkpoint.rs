//! Signed audit checkpoints: evidence that the log once reached a given head.
//!
//! A hash chain shows edits, but not that its newest events were cut off or that the
//! database was rolled back to an old copy. A checkpoint is a short statement (sequence
//! number, head hash, time, CA fingerprint) signed by the CA key as an SSH signature in
//! namespace `countersign-audit`, so `ssh-keygen -Y verify` accepts it. Kept somewhere
//! else (a ticket, a WORM bucket), it later proves whether the log still contains that
//! head.

use ssh_key::{LineEnding, PublicKey, SshSig};

use crate::audit::{self, AuditError, GENESIS};
use crate::ca::{CaError, CertificateAuthority};
use crate::store::{StoreError, Tx};

/// SSHSIG namespace of checkpoint signatures.
pub const NAMESPACE: &str = "countersign-audit";

/// Principal used in the `allowed_signers` line for `ssh-keygen -Y verify -I`.
pub const SIGNER: &str = "countersign-ca";

const TITLE: &str = "countersign audit checkpoint";
const ARMOR: &str = "-----BEGIN SSH SIGNATURE-----";

/// What a checkpoint states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence number of the newest event (0 for an empty log).
    pub seq: i64,
    /// That event's hash.
    pub head: String,
    /// When the checkpoint was made (RFC 3339).
    pub time: String,
    /// Fingerprint of the signing CA key.
    pub ca: String,
}

/// Why a checkpoint does not hold.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The text is not a checkpoint.
    #[error("not a countersign checkpoint: {0}")]
    Malformed(String),
    /// The signature is not the CA's.
    #[error("checkpoint signature does not verify against this CA key")]
    BadSignature(#[source] ssh_key::Error),
    /// The log no longer contains the checkpointed head.
    #[error("audit log does not contain the checkpoint: {0}")]
    Missing(String),
    /// The chain itself is broken.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Signing failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn statement(&self) -> String {
        format!(
            "{TITLE}\nseq: {}\nhead: {}\ntime: {}\nca: {}\n",
            self.seq, self.head, self.time, self.ca
        )
    }

    /// Parses a statement made by [`Checkpoint::statement`].
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let mut lines = text.lines();
        if lines.next() != Some(TITLE) {
            return Err(CheckpointError::Malformed(format!(
                "first line must be {TITLE:?}"
            )));
        }
        let mut field = |name: &str| -> Result<String, CheckpointError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|v| v.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or_else(|| CheckpointError::Malformed(format!("missing {name}")))
        };
        let seq = field("seq")?
            .parse()
            .map_err(|_| CheckpointError::Malformed("seq is not a number".into()))?;
        let head = field("head")?;
        let time = field("time")?;
        let ca = field("ca")?;
        let cp = Checkpoint {
            seq,
            head,
            time,
            ca,
        };
        if cp.statement() != text {
            return Err(CheckpointError::Malformed("unexpected extra text".into()));
        }
        Ok(cp)
    }
}

/// A signed checkpoint of the log as it is now: the statement and its armored signature.
pub fn create(
    tx: &Tx<'_>,
    ca: &CertificateAuthority,
    time: &str,
) -> Result<(Checkpoint, String), CheckpointError> {
    let verified = audit::verify(tx)?;
    let cp = Checkpoint {
        seq: verified.events,
        head: verified.head,
        time: time.to_owned(),
        ca: ca.fingerprint(),
    };
    let sig = ca.sign_message(NAMESPACE, cp.statement().as_bytes())?;
    let pem = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| CheckpointError::Ca(CaError::Sign(e)))?;
    Ok((cp, pem))
}

/// Splits a checkpoint document (statement followed by the armored signature) in two.
pub fn split_document(doc: &str) -> Option<(&str, &str)> {
    doc.find(ARMOR).map(|i| doc.split_at(i))
}

/// Checks the signature with the CA public key and returns the statement.
pub fn verify_signature(
    ca: &PublicKey,
    statement: &str,
    signature_pem: &str,
) -> Result<Checkpoint, CheckpointError> {
    let sig = SshSig::from_pem(signature_pem.trim()).map_err(CheckpointError::BadSignature)?;
    ca.verify(NAMESPACE, statement.as_bytes(), &sig)
        .map_err(CheckpointError::BadSignature)?;
    Checkpoint::parse(statement)
}

/// Checks that the chain verifies and still contains the checkpointed head.
pub fn check_log(tx: &Tx<'_>, cp: &Checkpoint) -> Result<audit::Verified, CheckpointError> {
    let verified = audit::verify(tx)?;
    if cp.seq == 0 {
        return if cp.head == GENESIS {
            Ok(verified)
        } else {
            Err(CheckpointError::Malformed(
                "seq 0 with a non-genesis head".into(),
            ))
        };
    }
    if verified.events < cp.seq {
        return Err(CheckpointError::Missing(format!(
            "the log ends at event {} but the checkpoint saw event {}: \
             events were cut off or the database was rolled back",
            verified.events, cp.seq
        )));
    }
    let hash = crate::store::meta::audit_hash_at(tx, cp.seq)?;
    if hash.as_deref() != Some(cp.head.as_str()) {
        return Err(CheckpointError::Missing(format!(
            "event {} differs from the checkpoint: the log was rewritten, or restored from an \
             older copy and written to since",
            cp.seq
        )));
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_round_trips_and_rejects_additions() {
        let cp = Checkpoint {
            seq: 7,
            head: "ab".repeat(32),
            time: "2026-11-28T00:00:00Z".into(),
            ca: "SHA256:x".into(),
        };
        assert_eq!(Checkpoint::parse(&cp.statement()).unwrap(), cp);
        assert!(Checkpoint::parse(&format!("{}extra\n", cp.statement())).is_err());
        assert!(Checkpoint::parse("hello").is_err());
    }

    #[test]
    fn signature_verifies_only_for_the_signed_statement() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(&dir.path().join("k")).unwrap();
        let cp = Checkpoint {
            seq: 1,
            head: "cd".repeat(32),
            time: "t".into(),
            ca: ca.fingerprint(),
        };
        let sig = ca
            .sign_message(NAMESPACE, cp.statement().as_bytes())
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap();
        let public = PublicKey::new(ca.public_key_data().clone(), "");
        assert_eq!(
            verify_signature(&public, &cp.statement(), &sig).unwrap(),
            cp
        );
        let forged = cp.statement().replace("seq: 1", "seq: 2");
        assert!(verify_signature(&public, &forged, &sig).is_err());
    }
}
