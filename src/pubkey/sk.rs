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

/// Whether an SSH signature says its key's holder was there: for a security key, its
/// "user present" flag (it was touched), which `ssh-keygen -Y verify` also requires of
/// an allowed signer by default; any other key's signature is made by whoever holds the key.
pub fn user_was_present(signature: &ssh_key::Signature) -> bool {
    use ssh_key::Algorithm;
    match signature.algorithm() {
        // ssh-key keeps the flags and the 4-byte counter after the signature proper.
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256 => {
            let bytes = signature.as_bytes();
            bytes
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
            assert_eq!(
                user_was_present(sig.signature()),
                present,
                "flags {flags:#x}"
            );
        }
    }
}
