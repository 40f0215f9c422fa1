//! Security keys (FIDO, `sk-...@openssh.com`): what their keys and signatures must say.

use super::{KeyError, truncate};

/// Longest FIDO application string of a security key we certify.
const MAX_APPLICATION: usize = 64;

/// A security key's FIDO application must be an SSH one (`ssh:`, or `ssh:` and a name),
/// as OpenSSH makes them: a credential of another application (a web site's WebAuthn
/// key) is not an SSH key, and its signatures are made for something else.
pub(super) fn check_application(application: &str) -> Result<(), KeyError> {
    let printable = application.bytes().all(|b| b.is_ascii_graphic());
    if application.starts_with("ssh:") && application.len() <= MAX_APPLICATION && printable {
        Ok(())
    } else {
        Err(KeyError(format!(
            "a security key's application must be ssh: or ssh:NAME (at most \
             {MAX_APPLICATION} printable characters), not {:?}",
            truncate(application, MAX_APPLICATION)
        )))
    }
}

/// Whether an SSHSIG's signature is of its key's own algorithm, as OpenSSH requires (an
/// RSA key's with SHA-256 or SHA-512): ssh-key checks a signature by the key's type
/// whatever algorithm the signature names, so a security key's signature renamed
/// `rsa-sha2-512` would verify and escape the touch check below.
pub fn signature_fits_key(sig: &ssh_key::SshSig) -> bool {
    use ssh_key::{Algorithm, HashAlg, public::KeyData};
    match (sig.public_key(), sig.signature().algorithm()) {
        (KeyData::Rsa(_), Algorithm::Rsa { hash }) => {
            matches!(hash, Some(HashAlg::Sha256 | HashAlg::Sha512))
        }
        (key, named) => key.algorithm() == named,
    }
}

/// Whether an SSHSIG says its key's holder was there: for a security key, a signature of
/// its own algorithm whose "user present" flag is set (it was touched), which
/// `ssh-keygen -Y verify` also requires of an allowed signer by default; any other key's
/// signature is made by whoever holds the key. Decided by the key, not by the name the
/// signature gives itself.
pub fn user_was_present(sig: &ssh_key::SshSig) -> bool {
    use ssh_key::public::KeyData;
    match sig.public_key() {
        KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_) => {
            // ssh-key keeps the flags and the 4-byte counter after the signature proper.
            let bytes = sig.signature().as_bytes();
            signature_fits_key(sig)
                && bytes
                    .len()
                    .checked_sub(5)
                    .is_some_and(|at| bytes[at] & USER_PRESENT != 0)
        }
        _ => true,
    }
}

/// The FIDO flag of a signature made with the user's touch.
const USER_PRESENT: u8 = 0x01;

#[cfg(test)]
pub(crate) mod tests {
    use ed25519_dalek::Signer;
    use sha2::{Digest, Sha256};
    use ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
    use ssh_key::{Algorithm, HashAlg, LineEnding, PublicKey, SshSig};

    use super::*;
    use crate::pubkey::SubjectKey;

    /// What a security key holding `signing` for `application` would make: its public
    /// line, and its armored SSHSIG over `msg` in `namespace` with FIDO `flags` (as
    /// PROTOCOL.u2f says: the key signs SHA-256 of the application, the flags, a counter
    /// and SHA-256 of the data).
    pub(crate) fn sk_sshsig(
        signing: &ed25519_dalek::SigningKey,
        application: &str,
        (namespace, msg): (&str, &[u8]),
        flags: u8,
    ) -> (String, String) {
        let public = Ed25519PublicKey(signing.verifying_key().to_bytes());
        let key = KeyData::SkEd25519(SkEd25519::new(public, application));
        let line = PublicKey::new(key.clone(), "").to_openssh().unwrap();
        let data = SshSig::signed_data(namespace, HashAlg::Sha512, msg).unwrap();
        let counter = 7u32.to_be_bytes();
        let mut signed = Sha256::digest(application).to_vec();
        signed.push(flags);
        signed.extend(counter);
        signed.extend(Sha256::digest(&data));
        let mut bytes = signing.sign(&signed).to_bytes().to_vec();
        bytes.push(flags);
        bytes.extend(counter);
        let signature = ssh_key::Signature::new(Algorithm::SkEd25519, bytes).unwrap();
        let sig = SshSig::new(key, namespace, HashAlg::Sha512, signature).unwrap();
        (line, sig.to_pem(LineEnding::LF).unwrap())
    }

    #[test]
    fn a_security_key_of_ssh_is_certified_and_one_of_another_application_is_not() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        for application in ["ssh:", "ssh:countersign"] {
            let (line, _) = sk_sshsig(&signing, application, ("n", b"m"), USER_PRESENT);
            let key = SubjectKey::parse(&line).unwrap();
            assert!(key.is_security_key());
            assert!(key.to_openssh().starts_with("sk-ssh-ed25519@openssh.com "));
        }
        for application in [
            "https://example.com",
            "ssh",
            "ssh:\u{7f}",
            &"ssh:x".repeat(20),
        ] {
            let (line, _) = sk_sshsig(&signing, application, ("n", b"m"), USER_PRESENT);
            let why = SubjectKey::parse(&line).unwrap_err().0;
            assert!(
                why.contains("application must be ssh:"),
                "{application:?}: {why}"
            );
        }
    }

    #[test]
    fn a_security_keys_signature_says_whether_it_was_touched() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        for (flags, present) in [(0x01, true), (0x05, true), (0x00, false), (0x04, false)] {
            let (_, pem) = sk_sshsig(&signing, "ssh:", ("n", b"m"), flags);
            let sig = SshSig::from_pem(&pem).unwrap();
            assert_eq!(user_was_present(&sig), present, "flags {flags:#x}");
            assert!(signature_fits_key(&sig));
            // The same bytes under another algorithm's name: not the key's, never touched.
            let renamed = [
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                },
                Algorithm::Ed25519,
                Algorithm::Other("x@example.com".parse().unwrap()),
            ];
            for name in renamed {
                let bytes = sig.signature().as_bytes().to_vec();
                let Ok(other) = ssh_key::Signature::new(name.clone(), bytes) else {
                    continue;
                };
                let key = sig.public_key().clone();
                let renamed = SshSig::new(key, "n", HashAlg::Sha512, other).unwrap();
                assert!(!signature_fits_key(&renamed), "{name:?}");
                assert!(!user_was_present(&renamed), "{name:?}");
            }
        }
    }
}
