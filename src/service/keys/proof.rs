//! Proof of possession: the SSH signature over a challenge that registering a key
//! needs, checked before (and apart from) the database write.

use ssh_key::{PublicKey, SshSig};

use super::ServiceError;
use crate::pubkey::SubjectKey;

/// SSHSIG namespace of the signature that proves a key.
pub const KEY_NAMESPACE: &str = "countersign-key";

/// A key whose holder signed a challenge with it: what [`Service::register_key`] takes.
/// Made only by [`prove`], which checks the signature (CPU work, done before and apart
/// from the database write).
#[derive(Debug, Clone)]
pub struct ProvenKey {
    pub(super) key: SubjectKey,
    pub(super) line: String,
    pub(super) challenge: String,
}

impl ProvenKey {
    /// The key's fingerprint.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint()
    }
}

/// Parses the key `line` and checks `signature` over `challenge` with it (not yet that
/// the challenge was handed out: registering does that in its transaction).
pub fn prove(line: &str, challenge: &str, signature: &str) -> Result<ProvenKey, ServiceError> {
    let key = SubjectKey::parse(line).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    check_proof(&key, challenge, signature).map_err(ServiceError::KeyProof)?;
    Ok(ProvenKey {
        key,
        line: line.to_owned(),
        challenge: challenge.to_owned(),
    })
}

/// Checks that `signature` (an armored SSHSIG) is `key`'s over `challenge` in
/// [`KEY_NAMESPACE`]; the reason it is not, for the person.
pub fn check_proof(key: &SubjectKey, challenge: &str, signature: &str) -> Result<(), String> {
    let sig = SshSig::from_pem(signature.trim()).map_err(|_| {
        "the signature is not an armored SSH signature (-----BEGIN SSH SIGNATURE-----), as \
         `ssh-keygen -Y sign` writes it"
            .to_owned()
    })?;
    if sig.namespace() != KEY_NAMESPACE {
        return Err(format!(
            "the signature is for namespace {:?}, not {KEY_NAMESPACE:?}: sign with \
             `ssh-keygen -Y sign -n {KEY_NAMESPACE}`",
            sig.namespace().chars().take(64).collect::<String>()
        ));
    }
    // RSA with SHA-1 (`ssh-rsa`), which `ssh-keygen -Y verify` refuses too.
    if sig.signature().algorithm() == (ssh_key::Algorithm::Rsa { hash: None }) {
        return Err(
            "an RSA signature with SHA-1 (ssh-rsa): sign with rsa-sha2-512, as \
                    `ssh-keygen -Y sign` does"
                .to_owned(),
        );
    }
    if !crate::pubkey::signature_fits_key(&sig) {
        return Err(format!(
            "the signature's algorithm ({}) is not one of its key's",
            sig.signature().algorithm().as_str()
        ));
    }
    if sig.public_key() != key.key_data() {
        return Err(format!(
            "the signature was made with another key ({}), not {}",
            sig.public_key().fingerprint(ssh_key::HashAlg::Sha256),
            key.fingerprint()
        ));
    }
    PublicKey::new(key.key_data().clone(), "")
        .verify(KEY_NAMESPACE, challenge.as_bytes(), &sig)
        .map_err(|_| "the signature does not verify over this challenge".to_owned())?;
    if !crate::pubkey::user_was_present(&sig) {
        return Err(
            "the security key was not touched for this signature (its \"user \
                    present\" flag is off): sign again and touch the key"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, SshSig};

    use super::*;

    /// A proof whose inner signature claims RSA with SHA-1 is refused before any check
    /// (as `ssh-keygen -Y verify` refuses it), and a genuine one passes.
    #[test]
    fn a_sha1_rsa_signature_is_no_proof() {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let line = key.public_key().to_openssh().unwrap();
        let subject = SubjectKey::parse(&line).unwrap();
        let good = key
            .sign(KEY_NAMESPACE, HashAlg::Sha512, b"challenge")
            .unwrap();
        let pem = |s: &SshSig| s.to_pem(LineEnding::LF).unwrap();
        assert_eq!(check_proof(&subject, "challenge", &pem(&good)), Ok(()));
        let sha1 = ssh_key::Signature::new(
            Algorithm::Rsa { hash: None },
            good.signature_bytes().to_vec(),
        )
        .unwrap();
        let forged = SshSig::new(
            good.public_key().clone(),
            KEY_NAMESPACE,
            HashAlg::Sha512,
            sha1,
        )
        .unwrap();
        let refused = check_proof(&subject, "challenge", &pem(&forged)).unwrap_err();
        assert!(refused.contains("SHA-1"), "{refused}");
    }

    /// A security key proves itself only with a signature it was touched for.
    #[test]
    fn a_security_keys_proof_needs_its_touch() {
        use crate::pubkey::sk_tests::sk_sshsig;
        let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let asked = (KEY_NAMESPACE, &b"challenge"[..]);
        let (line, touched) = sk_sshsig(&signing, "ssh:", asked, 0x01);
        let subject = SubjectKey::parse(&line).unwrap();
        assert_eq!(check_proof(&subject, "challenge", &touched), Ok(()));
        assert!(check_proof(&subject, "another challenge", &touched).is_err());
        let (_, untouched) = sk_sshsig(&signing, "ssh:", asked, 0x00);
        let refused = check_proof(&subject, "challenge", &untouched).unwrap_err();
        assert!(refused.contains("not touched"), "{refused}");
    }
}
