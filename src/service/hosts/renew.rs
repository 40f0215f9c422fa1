//! Renewal of a host certificate: the host proves it holds its host key (an SSHSIG, in
//! namespace [`HOST_RENEW_NAMESPACE`], over a challenge this server made) and presents a
//! current, unrevoked certificate of ours for that key; it gets a new certificate with
//! the same principals and a new serial.
//!
//! The challenge is stateless: its text carries the key, the host CA, an expiry and a
//! nonce, and a tag only the host CA can make (the SHA-256 of the host CA's deterministic
//! Ed25519 SSHSIG over the rest), so every replica can check it without storing it. A
//! renewal stores the hash of the challenge it answered (`host_certificates.challenge`,
//! UNIQUE): the same answer twice is refused.

use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};
use ssh_key::{Certificate, HashAlg, PublicKey, SshSig, certificate::CertType};

use super::{HostCertView, check_allowed, digest, host_settings, lifetime};
use crate::audit::{self, HostRenewed, NewEvent};
use crate::error_code::ErrorCode;
use crate::service::{Service, ServiceError, unix, view::rfc3339};
use crate::store::hosts::{self, HostCertRow};

/// SSHSIG namespace of a host's answer to a renewal challenge (`ssh-keygen -Y sign -n`).
pub const HOST_RENEW_NAMESPACE: &str = "countersign-host-renew";

/// Namespace of the host CA's own signature that the challenge's tag is made from.
const TAG_NAMESPACE: &str = "countersign-host-challenge";

/// First line of every challenge.
const TITLE: &str = "countersign host renewal";

/// How long a challenge may be answered (seconds).
pub const HOST_CHALLENGE_LIFETIME: i64 = 300;

/// What a host sends to renew.
#[derive(Debug, Clone)]
pub struct HostRenewal {
    /// Its current certificate (the `-cert.pub` file's line).
    pub certificate: String,
    /// The challenge text as `POST /v1/hosts/renew/challenge` gave it.
    pub challenge: String,
    /// The armored SSHSIG of the host key over the challenge.
    pub signature: String,
    /// The lifetime asked for; `cert_ttl` when `None`.
    pub ttl: Option<Duration>,
}

fn proof(message: impl Into<String>) -> ServiceError {
    ServiceError::Host {
        code: ErrorCode::HostProofFailed,
        message: message.into(),
    }
}

fn refused(message: impl Into<String>) -> ServiceError {
    ServiceError::Host {
        code: ErrorCode::HostCertificateRefused,
        message: message.into(),
    }
}

/// The value of `name: VALUE` in the challenge's lines.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

impl Service {
    /// The tag of a challenge body: SHA-256 of the host CA's SSHSIG over it.
    fn challenge_tag(&self, body: &str) -> Result<String, ServiceError> {
        let sig = self
            .host_ca()?
            .sign_message(TAG_NAMESPACE, body.as_bytes())?;
        let bytes = sig
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| ServiceError::Ca(crate::ca::CaError::Sign(e)))?;
        Ok(hex::encode(Sha256::digest(bytes.as_bytes())))
    }

    /// A challenge for the host key `key` to sign (`POST /v1/hosts/renew/challenge`),
    /// good for [`HOST_CHALLENGE_LIFETIME`] seconds.
    pub fn host_challenge(&self, key: &crate::pubkey::SubjectKey) -> Result<String, ServiceError> {
        host_settings(&self.config())?;
        let ca = self.host_ca()?;
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let body = format!(
            "{TITLE}\nkey: {}\nca: {}\nexpires: {}\nnonce: {}\n",
            key.fingerprint(),
            ca.fingerprint(),
            rfc3339(unix(self.now()) + HOST_CHALLENGE_LIFETIME),
            hex::encode(nonce),
        );
        let tag = self.challenge_tag(&body)?;
        Ok(format!("{body}tag: {tag}\n"))
    }

    /// Renews a host certificate (see the module docs); the answer is the new one.
    pub fn renew_host(&self, renewal: &HostRenewal) -> Result<HostCertView, ServiceError> {
        let config = self.config();
        let settings = host_settings(&config)?;
        let ca = self.host_ca()?;
        let ttl = lifetime(settings, renewal.ttl)?;
        let now = self.now();
        let cert = Certificate::from_openssh(renewal.certificate.trim())
            .map_err(|_| refused("certificate: not an OpenSSH certificate line"))?;
        if cert.cert_type() != CertType::Host || cert.signature_key() != ca.public_key_data() {
            return Err(refused(
                "certificate: not a host certificate of this server's host CA",
            ));
        }
        // Its signature (checked at its own start, so that only the signature and the CA
        // are checked here; its end is the database's to judge, with a clearer message).
        let host_ca = ssh_key::Fingerprint::new(HashAlg::Sha256, ca.public_key_data());
        cert.validate_at(cert.valid_after(), [&host_ca])
            .map_err(|_| refused("certificate: its signature does not verify"))?;
        let fingerprint = cert.public_key().fingerprint(HashAlg::Sha256).to_string();
        // The challenge: this server's, unexpired, for this key.
        let text = &renewal.challenge;
        let (body, tag) = text
            .strip_suffix('\n')
            .and_then(|t| t.rsplit_once("\ntag: "))
            .ok_or_else(|| proof("challenge: not one this server made"))?;
        let body = format!("{body}\n");
        let expected = self.challenge_tag(&body)?;
        if Sha256::digest(expected.as_bytes()) != Sha256::digest(tag.as_bytes())
            || !body.starts_with(TITLE)
        {
            return Err(proof("challenge: not one this server made"));
        }
        let expires = field(&body, "expires")
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
            .ok_or_else(|| proof("challenge: no expiry"))?;
        if expires.timestamp() <= unix(now) {
            return Err(proof("challenge expired: ask for a new one"));
        }
        if field(&body, "key") != Some(fingerprint.as_str()) {
            return Err(proof("challenge: made for another host key"));
        }
        // The host key's signature over it.
        let sig = SshSig::from_pem(renewal.signature.trim())
            .map_err(|_| proof("signature: not an armored SSH signature (ssh-keygen -Y sign)"))?;
        if sig.namespace() != HOST_RENEW_NAMESPACE {
            return Err(proof(format!(
                "signature: namespace {:?}, expected {HOST_RENEW_NAMESPACE:?}",
                sig.namespace()
            )));
        }
        let host_key = PublicKey::new(cert.public_key().clone(), "");
        if sig.public_key() != host_key.key_data() {
            return Err(proof(
                "signature: made with another key than the certificate's",
            ));
        }
        if !crate::pubkey::signature_fits_key(&sig) {
            return Err(proof(
                "signature: not of the key's algorithm (an RSA key signs with rsa-sha2-256 \
                 or rsa-sha2-512)",
            ));
        }
        host_key
            .verify(HOST_RENEW_NAMESPACE, text.as_bytes(), &sig)
            .map_err(|_| proof("signature: does not verify over the challenge"))?;
        let subject = crate::pubkey::SubjectKey::from_key_data(cert.public_key().clone())
            .map_err(|e| refused(format!("certificate: {e}")))?;
        let serial = crate::names::Serial::new(cert.serial())
            .ok_or_else(|| refused("certificate: serial 0 is never ours"))?;
        let answered = digest(text);
        self.store.write(|tx| {
            let old = hosts::cert_by_serial(tx, serial)?
                .ok_or_else(|| refused(format!("certificate {serial} is not one of ours")))?;
            if old.public_key != subject.to_openssh() {
                return Err(refused(format!("certificate {serial} is for another key")));
            }
            if old.revocation.is_some() || hosts::carried(tx, serial)? {
                return Err(refused(format!(
                    "certificate {serial} is revoked: the host must enroll again with a new \
                     join token"
                )));
            }
            if old.valid_before <= unix(now) {
                return Err(refused(format!(
                    "certificate {serial} expired at {}: the host must enroll again with a new \
                     join token",
                    rfc3339(old.valid_before)
                )));
            }
            if hosts::challenge_used(tx, &answered)? {
                return Err(proof(
                    "this challenge was answered already: ask for a new one",
                ));
            }
            check_allowed(settings, &old.principals)?;
            let row = self.sign_host_cert(tx, ca, &subject, &old.principals, ttl, now)?;
            let row = HostCertRow {
                renewed_from: Some(serial),
                ..row
            };
            hosts::insert_cert(tx, &row, Some(&answered))?;
            audit::append(
                tx,
                now,
                &NewEvent {
                    actor: &format!("host:{fingerprint}"),
                    request_id: None,
                    serial: Some(row.serial),
                    event: HostRenewed {
                        serial: row.serial.to_string(),
                        renewed_from: serial.to_string(),
                        principals: row.principals.iter().map(ToString::to_string).collect(),
                        key_fingerprint: row.key_fingerprint.clone(),
                        valid_before: rfc3339(row.valid_before),
                    }
                    .into(),
                },
            )?;
            tracing::info!(serial = %row.serial, renewed_from = %serial, "host renewed");
            Ok(HostCertView::of(&row, unix(now)))
        })
    }
}
