//! The subject public key a certificate is issued for, parsed and vetted at the edge.
//!
//! Accepted: one `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521` or `ssh-rsa` (>= 3072 bits)
//! public key line. Refused with a reason: certificates, DSA, short RSA, security-key
//! types, `authorized_keys` option prefixes, several keys, control characters.

use ssh_key::{Algorithm, EcdsaCurve, HashAlg, PublicKey, public::KeyData};

/// Smallest RSA modulus accepted, in bits (NIST SP 800-57 for use past 2030).
pub const MIN_RSA_BITS: u32 = 3072;

/// Longest public key line accepted (an RSA 16384-bit key fits).
const MAX_LINE: usize = 8192;

/// Why a public key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// A public key that may receive a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKey {
    key: PublicKey,
}

impl SubjectKey {
    /// Parses one OpenSSH public key line (`TYPE BASE64 [COMMENT]`).
    pub fn parse(line: &str) -> Result<Self, KeyError> {
        let line = line.trim_matches(|c| c == ' ' || c == '\t');
        let line = line.strip_suffix('\n').unwrap_or(line);
        if line.len() > MAX_LINE {
            return Err(KeyError("public key is too long".into()));
        }
        if line.chars().any(char::is_control) {
            return Err(KeyError(
                "public key must be one line without control characters (one key only)".into(),
            ));
        }
        let kind = line.split(' ').next().unwrap_or_default();
        if kind.contains("-cert-v01@openssh.com") {
            return Err(KeyError(
                "a certificate is not a public key: send the key itself (the .pub file)".into(),
            ));
        }
        let key = PublicKey::from_openssh(line).map_err(|_| {
            KeyError(format!(
                "not an OpenSSH public key line ({:?}...): expected TYPE BASE64 [COMMENT]",
                truncate(line, 24)
            ))
        })?;
        check_algorithm(key.key_data())?;
        Ok(Self {
            key: PublicKey::new(key.key_data().clone(), ""),
        })
    }

    /// Wraps a key already known to be acceptable (e.g. the CA's own, for comparison).
    pub fn from_key_data(key_data: KeyData) -> Result<Self, KeyError> {
        check_algorithm(&key_data)?;
        Ok(Self {
            key: PublicKey::new(key_data, ""),
        })
    }

    /// The key material, without comment.
    pub fn key_data(&self) -> &KeyData {
        self.key.key_data()
    }

    /// `SHA256:...` as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The canonical `TYPE BASE64` line (comment dropped).
    pub fn to_openssh(&self) -> String {
        // Encoding a key that was just decoded cannot fail; fall back to the fingerprint
        // rather than panic if the library ever disagrees.
        self.key.to_openssh().unwrap_or_else(|_| self.fingerprint())
    }
}

fn check_algorithm(key: &KeyData) -> Result<(), KeyError> {
    match key.algorithm() {
        Algorithm::Ed25519 => Ok(()),
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256 | EcdsaCurve::NistP384 | EcdsaCurve::NistP521,
        } => Ok(()),
        Algorithm::Rsa { .. } => {
            let bits = key.rsa().map(|k| k.key_size()).unwrap_or(0);
            if bits >= MIN_RSA_BITS {
                Ok(())
            } else {
                Err(KeyError(format!(
                    "RSA key of {bits} bits is too short: at least {MIN_RSA_BITS} bits"
                )))
            }
        }
        other => Err(KeyError(format!(
            "key type {} is not accepted: use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa (>= {MIN_RSA_BITS} bits)",
            other.as_str()
        ))),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A DSA public key: a type countersign never certifies.
    pub(crate) const DSA_KEY: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBAP0xcXJ3k1Gjmfn11BJnA3+5iG12tFVCSrtcUdcpUe3rx7eJkO5cBceluaE1TKqLO/k5WyCBiJJjvkWRvJYpw7zAIh+uaVcEOT68YxKXouBMFKzFDDR5j/OrUJ/E+3fEDO0IqjfY3qLFQeYYc6zRPzeONU9lY3S0+CRyaJ6vyDrHAAAAFQDgC9KlC5lIUEnOAcS9HFd/8Y08EwAAAIBJbnyb6nRKlmBjQMPnLt5Sa+7MVw+/yYZa1doPwQN2AaswImbQV1vIG2O/Fe7XVv/176sergzAVq8CoyzX/fMlSdzTK77+eZLAwSof/+7/YEP+GbwLmCB1K7MUCRCvhk14T5HwhRuRlQz/rb9jHohjMa3FgdmT6ykLzlqxx+WNsAAAAIEAi9Tz5dk1FklCh+/3LCEGr7XdPndXfT88Lmt0SXeTrsbeAhwYR25PpgmqGRIIeCH6SPiucsYbEWsSWnEFDQq4S0bOT5pjpZQWlpXFJGnAqXXSQ7exgVBypqFlMCMVx76gjLQz4Gr6R+Jdm/dfL2NatknlvjZOsB22STtKzzDTjoY= x";

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKvFm9JtqnwcZYbglX994ztqrGveXh8wQxlvse8HkMp4 alice@laptop";

    #[test]
    fn accepts_an_ed25519_line_and_drops_the_comment() {
        let key = SubjectKey::parse(ED25519).unwrap();
        assert!(key.to_openssh().starts_with("ssh-ed25519 AAAA"));
        assert!(!key.to_openssh().contains("alice"));
        assert!(key.fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn refuses_two_keys_options_and_certificates() {
        let two = format!("{ED25519}\n{ED25519}");
        assert!(SubjectKey::parse(&two).is_err());
        assert!(SubjectKey::parse(&format!("command=\"sh\" {ED25519}")).is_err());
        let cert = "ssh-ed25519-cert-v01@openssh.com AAAA";
        assert!(
            SubjectKey::parse(cert)
                .unwrap_err()
                .0
                .contains("certificate")
        );
        assert!(SubjectKey::parse("").is_err());
    }

    #[test]
    fn refuses_dsa() {
        let dsa = DSA_KEY;
        assert!(SubjectKey::parse(dsa).unwrap_err().0.contains("ssh-dss"));
    }
}
