//! The subject public key a certificate is issued for, parsed and vetted at the edge.
//!
//! Accepted: one `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521` or `ssh-rsa` (>= 3072 bits)
//! public key line. Refused with a reason: certificates, DSA, short RSA, security-key
//! types, `authorized_keys` option prefixes, several keys, control characters, and key
//! material that is no real key in the encoding OpenSSH writes (an ECDSA point off its
//! curve or compressed, a small-order or non-canonical Ed25519 point, an RSA exponent
//! below 3 or even, an even modulus).

use ssh_key::{HashAlg, PublicKey, public::KeyData};

mod sk;
#[cfg(test)]
pub(crate) use sk::tests as sk_tests;
pub use sk::{signature_fits_key, user_was_present};

/// Smallest RSA modulus accepted, in bits (NIST SP 800-57 for use past 2030).
pub const MIN_RSA_BITS: u32 = 3072;

/// Longest public key line accepted (an RSA 16384-bit key fits).
const MAX_LINE: usize = 8192;

/// Why a public key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// [`SubjectKey::material`] of any key: its family and point for Ed25519 and P-256 keys
/// (plain or a security key's), else its fingerprint.
pub fn material_of(key: &KeyData) -> Vec<u8> {
    use ssh_key::public::EcdsaPublicKey;
    let tagged = |tag: &[u8], point: &[u8]| [tag, point].concat();
    match key {
        KeyData::Ed25519(k) => tagged(b"ed25519:", &k.0),
        KeyData::SkEd25519(k) => tagged(b"ed25519:", &k.public_key().0),
        KeyData::Ecdsa(EcdsaPublicKey::NistP256(p)) => tagged(b"p256:", p.as_bytes()),
        KeyData::SkEcdsaSha2NistP256(k) => tagged(b"p256:", k.ec_point().as_bytes()),
        other => format!("key:{}", other.fingerprint(HashAlg::Sha256)).into_bytes(),
    }
}

/// Longest key comment kept.
const MAX_COMMENT: usize = 100;

/// The comment of an OpenSSH public key line, kept only if it is text as a reason may be
/// (no control, invisible or direction-changing characters, no line separators) and at
/// most [`MAX_COMMENT`] characters; else empty (the key is shown without it).
pub fn plain_comment(line: &str) -> String {
    let comment = line
        .trim()
        .splitn(3, [' ', '\t'])
        .nth(2)
        .unwrap_or_default()
        .trim();
    match crate::names::Text::parse(comment, "comment") {
        Ok(_) if comment.chars().count() <= MAX_COMMENT => comment.to_owned(),
        _ => String::new(),
    }
}

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

    /// The canonical line with `comment` after it (from [`plain_comment`]; none if empty).
    pub fn line_with(&self, comment: &str) -> String {
        match comment.is_empty() {
            true => self.to_openssh(),
            false => format!("{} {comment}", self.to_openssh()),
        }
    }

    /// The key's point whatever form it is written in: a security key's (`sk-...`, any
    /// application) and the plain key of the same point are one private key, which one
    /// person's ownership and one signer's signature must not count twice.
    pub fn material(&self) -> Vec<u8> {
        material_of(self.key.key_data())
    }

    /// A security key's (FIDO: `sk-...@openssh.com`), whose signatures need a touch.
    pub fn is_security_key(&self) -> bool {
        matches!(
            self.key.key_data(),
            KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_)
        )
    }

    /// The canonical `TYPE BASE64` line (comment dropped).
    pub fn to_openssh(&self) -> String {
        // Encoding a key that was just decoded cannot fail; fall back to the fingerprint
        // rather than panic if the library ever disagrees.
        self.key.to_openssh().unwrap_or_else(|_| self.fingerprint())
    }
}

/// The key's type is one we certify, and its material is a real key of that type in the
/// one encoding OpenSSH writes: so that equal keys have equal bytes (a key registered to
/// one user cannot come back re-encoded for another), and no certificate goes to a key
/// whose signatures anyone could forge (a small-order Ed25519 point, an RSA exponent of 1).
fn check_algorithm(key: &KeyData) -> Result<(), KeyError> {
    match key {
        KeyData::Ed25519(k) => check_ed25519(&k.0),
        KeyData::Ecdsa(k) => check_ecdsa(k),
        KeyData::Rsa(k) => check_rsa(k),
        KeyData::SkEd25519(k) => {
            sk::check_application(k.application())?;
            check_ed25519(&k.public_key().0)
        }
        KeyData::SkEcdsaSha2NistP256(k) => {
            sk::check_application(k.application())?;
            check_ecdsa(&ssh_key::public::EcdsaPublicKey::NistP256(*k.ec_point()))
        }
        other => Err(KeyError(format!(
            "key type {} is not accepted: use ssh-ed25519, ecdsa-sha2-nistp256/384/521, \
             ssh-rsa (>= {MIN_RSA_BITS} bits), or a security key's \
             sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com",
            other.algorithm().as_str()
        ))),
    }
}

/// Ed25519 keys this process found usable: the check (a point decompression and a
/// multiplication) is deterministic, and a request's key is checked at creation and again
/// at signing. Cleared when full, so it never holds more than this many keys.
static VETTED_ED25519: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<[u8; 32]>>> =
    std::sync::LazyLock::new(Default::default);

/// Most keys [`VETTED_ED25519`] holds.
const VETTED_MAX: usize = 65_536;

fn check_ed25519(bytes: &[u8; 32]) -> Result<(), KeyError> {
    let vetted = || {
        VETTED_ED25519
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if vetted().contains(bytes) {
        return Ok(());
    }
    check_ed25519_point(bytes)?;
    let mut set = vetted();
    if set.len() >= VETTED_MAX {
        set.clear();
    }
    set.insert(*bytes);
    Ok(())
}

fn check_ed25519_point(bytes: &[u8; 32]) -> Result<(), KeyError> {
    let bad = |why: &str| Err(KeyError(format!("not a usable Ed25519 public key: {why}")));
    // y must be below p = 2^255 - 19 (little-endian, the top bit is x's sign): the 19
    // values from p up are second encodings of small y. (x = 0 with the sign bit set is
    // the other non-canonical form; both such points are of small order, refused below.)
    let mut y = *bytes;
    y[31] &= 0x7f;
    if y[31] == 0x7f && y[1..31].iter().all(|b| *b == 0xff) && y[0] >= 0xed {
        return bad("not in canonical encoding");
    }
    match ed25519_dalek::VerifyingKey::from_bytes(bytes) {
        Err(_) => bad("not a point of the curve"),
        Ok(k) if k.is_weak() => bad("a small-order point, whose signatures anyone can forge"),
        Ok(_) => Ok(()),
    }
}

fn check_ecdsa(key: &ssh_key::public::EcdsaPublicKey) -> Result<(), KeyError> {
    use ssh_key::public::EcdsaPublicKey as K;
    let curve = key.curve();
    let bad = |why: &str| Err(KeyError(format!("not a usable {curve} public key: {why}")));
    // OpenSSH writes (and reads) the uncompressed point only: 0x04, then x and y.
    if key.as_sec1_bytes().first() != Some(&0x04) {
        return bad("the point must be uncompressed (as OpenSSH writes it)");
    }
    let on_curve = match key {
        K::NistP256(_) => p256::ecdsa::VerifyingKey::try_from(key).is_ok(),
        K::NistP384(_) => p384::ecdsa::VerifyingKey::try_from(key).is_ok(),
        K::NistP521(_) => p521::ecdsa::VerifyingKey::try_from(key).is_ok(),
    };
    if on_curve {
        Ok(())
    } else {
        bad("not a point of the curve")
    }
}

fn check_rsa(key: &ssh_key::public::RsaPublicKey) -> Result<(), KeyError> {
    let bad = |why: String| Err(KeyError(format!("not a usable RSA public key: {why}")));
    let (Some(e), Some(n)) = (key.e().as_positive_bytes(), key.n().as_positive_bytes()) else {
        return bad("exponent and modulus must be positive".into());
    };
    // The modulus's length in bits, from its first non-zero byte.
    let bits = n
        .iter()
        .position(|b| *b != 0)
        .map(|i| (n.len() - i) * 8 - n[i].leading_zeros() as usize)
        .unwrap_or(0);
    if bits < MIN_RSA_BITS as usize {
        return Err(KeyError(format!(
            "RSA key of {bits} bits is too short: at least {MIN_RSA_BITS} bits"
        )));
    }
    if n.last().is_none_or(|b| b % 2 == 0) {
        return bad("the modulus is even".into());
    }
    // e = 1 makes every signature trivial to forge; an even e is no RSA key. (Positive
    // bytes carry no leading zero, so 1 is exactly [1].)
    if e == [1] || e.last().is_none_or(|b| b % 2 == 0) {
        return bad("the exponent must be odd and at least 3".into());
    }
    Ok(())
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
    pub(crate) const DSA_KEY: &str = concat!(
        "ssh-dss ",
        "AAAAB3NzaC1kc3MAAACBAP0xcXJ3k1Gjmfn11BJnA3+5iG12tFVCSrtcUdcpUe3rx7eJkO5cBceluaE1",
        "TKqLO/k5WyCBiJJjvkWRvJYpw7zAIh+uaVcEOT68YxKXouBMFKzFDDR5j/OrUJ/E+3fEDO0IqjfY3qLF",
        "QeYYc6zRPzeONU9lY3S0+CRyaJ6vyDrHAAAAFQDgC9KlC5lIUEnOAcS9HFd/8Y08EwAAAIBJbnyb6nRK",
        "lmBjQMPnLt5Sa+7MVw+/yYZa1doPwQN2AaswImbQV1vIG2O/Fe7XVv/176sergzAVq8CoyzX/fMlSdzT",
        "K77+eZLAwSof/+7/YEP+GbwLmCB1K7MUCRCvhk14T5HwhRuRlQz/rb9jHohjMa3FgdmT6ykLzlqxx+WN",
        "sAAAAIEAi9Tz5dk1FklCh+/3LCEGr7XdPndXfT88Lmt0SXeTrsbeAhwYR25PpgmqGRIIeCH6SPiucsYb",
        "EWsSWnEFDQq4S0bOT5pjpZQWlpXFJGnAqXXSQ7exgVBypqFlMCMVx76gjLQz4Gr6R+Jdm/dfL2Natknl",
        "vjZOsB22STtKzzDTjoY=",
        " x"
    );

    const ED25519: &str = concat!(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKvFm9JtqnwcZYbglX994ztqrGveXh8wQxlvse8HkMp4",
        " alice@laptop"
    );

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

    fn refused(key: KeyData) -> String {
        let line = PublicKey::new(key.clone(), "").to_openssh().unwrap();
        let by_line = SubjectKey::parse(&line).unwrap_err().0;
        assert_eq!(SubjectKey::from_key_data(key).unwrap_err().0, by_line);
        by_line
    }

    #[test]
    fn refuses_ecdsa_points_compressed_or_off_the_curve() {
        use ssh_key::public::EcdsaPublicKey;
        for alg in [
            ssh_key::EcdsaCurve::NistP256,
            ssh_key::EcdsaCurve::NistP384,
            ssh_key::EcdsaCurve::NistP521,
        ] {
            let private = ssh_key::PrivateKey::random(
                &mut rand::rng(),
                ssh_key::Algorithm::Ecdsa { curve: alg },
            )
            .unwrap();
            let good = private.public_key().key_data().clone();
            SubjectKey::from_key_data(good.clone()).unwrap();
            let point = good.ecdsa().unwrap().as_sec1_bytes().to_vec();
            let size = (point.len() - 1) / 2;
            // The same point compressed: x, and y's parity in the tag.
            let mut compressed = vec![2 + (point[point.len() - 1] & 1)];
            compressed.extend_from_slice(&point[1..=size]);
            let key = KeyData::Ecdsa(EcdsaPublicKey::from_sec1_bytes(&compressed).unwrap());
            assert!(refused(key).contains("uncompressed"), "{alg}");
            // x = y = 0 is no point of the curve.
            let mut zeros = vec![4];
            zeros.resize(point.len(), 0);
            let key = KeyData::Ecdsa(EcdsaPublicKey::from_sec1_bytes(&zeros).unwrap());
            assert!(refused(key).contains("not a point of the curve"), "{alg}");
        }
    }

    #[test]
    fn refuses_small_order_and_non_canonical_ed25519_points() {
        use ssh_key::public::Ed25519PublicKey;
        // The identity (y = 1): any signature verifies against it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let why = refused(KeyData::Ed25519(Ed25519PublicKey(identity)));
        assert!(why.contains("small-order"), "{why}");
        // y = p + 3 (2^255 - 16), written unreduced: the point y = 3 (on the curve, not of
        // small order), encoded a second way.
        let mut unreduced = [0xff; 32];
        unreduced[0] = 0xf0;
        unreduced[31] = 0x7f;
        let why = refused(KeyData::Ed25519(Ed25519PublicKey(unreduced)));
        assert!(why.contains("canonical"), "{why}");
        // The same point written canonically is a key (its bytes are y = 3).
        let mut three = [0u8; 32];
        three[0] = 3;
        SubjectKey::from_key_data(KeyData::Ed25519(Ed25519PublicKey(three))).unwrap();
        // y = 2 is no point of the curve at all.
        three[0] = 2;
        let why = refused(KeyData::Ed25519(Ed25519PublicKey(three)));
        assert!(why.contains("not a point"), "{why}");
    }

    #[test]
    fn refuses_rsa_keys_with_a_weak_exponent_or_an_even_modulus() {
        use ssh_key::Mpint;
        use ssh_key::public::RsaPublicKey;
        let rsa = |e: &[u8], last: u8| {
            let mut n = vec![0xc5; 384];
            n[383] = last;
            KeyData::Rsa(
                RsaPublicKey::new(
                    Mpint::from_positive_bytes(e),
                    Mpint::from_positive_bytes(&n),
                )
                .unwrap(),
            )
        };
        SubjectKey::from_key_data(rsa(&[1, 0, 1], 0xc5)).unwrap();
        SubjectKey::from_key_data(rsa(&[3], 0xc5)).unwrap();
        for (e, last) in [
            (&[1][..], 0xc5),
            (&[2][..], 0xc5),
            (&[1, 0, 0][..], 0xc5),
            (&[1, 0, 1][..], 0xc4),
        ] {
            let why = refused(rsa(e, last));
            assert!(why.contains("not a usable RSA public key"), "{e:?}: {why}");
        }
        // Bits counted from the first set bit: 384 bytes starting 0x01 are 3,065 bits.
        let mut n = vec![0xc5; 384];
        n[0] = 1;
        let short = KeyData::Rsa(
            RsaPublicKey::new(
                Mpint::from_positive_bytes(&[1, 0, 1]),
                Mpint::from_positive_bytes(&n),
            )
            .unwrap(),
        );
        assert!(refused(short).contains("3065 bits is too short"));
    }
}
