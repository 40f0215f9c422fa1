//! Unit tests of the CA door: key file safety, encryption, and what gets signed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;
use crate::config::CredentialPath;

const ISSUED_AT: u64 = 1_800_000_000;

fn subject() -> SubjectKey {
    let k = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    SubjectKey::from_key_data(k.public_key().key_data().clone()).unwrap()
}

fn grant<'a>(subject: &'a SubjectKey, principals: &'a [Principal]) -> Grant<'a> {
    Grant {
        serial: Serial::new(42).unwrap(),
        key_id: "countersign:r-aaaaaaaaaaaa:alice:prod-db".into(),
        subject,
        principals,
        valid_after: ISSUED_AT - 60,
        valid_before: ISSUED_AT + 1800,
        extensions: &[],
        force_command: Some("/usr/local/bin/db-shell"),
        source_address: &[],
    }
}

fn settings(key_file: &Path, passphrase_file: Option<&Path>) -> CaSettings {
    CaSettings {
        key_file: key_file.to_owned(),
        backdate: std::time::Duration::ZERO,
        passphrase_file: passphrase_file.map(|p| CredentialPath::Path(p.to_owned())),
        agent: false,
        agent_public_key: None,
    }
}

#[test]
fn created_key_is_private_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca_key");
    let (ca, created) = CertificateAuthority::open(&settings(&path, None), true).unwrap();
    assert!(created);
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    let (again, created) = CertificateAuthority::open(&settings(&path, None), true).unwrap();
    assert!(!created);
    assert_eq!(ca.fingerprint(), again.fingerprint());
    assert!(CertificateAuthority::create(&path).is_err());
}

#[test]
fn group_readable_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca_key");
    CertificateAuthority::create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = CertificateAuthority::load(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn signs_exactly_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::create(&dir.path().join("k")).unwrap();
    let subject = subject();
    let principals = [Principal::parse("postgres").unwrap()];
    let cert = ca.sign(&grant(&subject, &principals)).unwrap();
    assert_eq!(cert.serial(), 42);
    assert_eq!(cert.valid_principals(), ["postgres"]);
    assert_eq!(cert.valid_after(), ISSUED_AT - 60);
    assert_eq!(cert.cert_type(), CertType::User);
    assert!(cert.critical_options().contains_key("force-command"));
    assert!(cert.extensions().is_empty());
    cert.validate_at(ISSUED_AT, &[ca.public.fingerprint(HashAlg::Sha256)])
        .unwrap();
}

#[test]
fn refuses_empty_principals_and_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::create(&dir.path().join("k")).unwrap();
    let subject = subject();
    let principals = [Principal::parse("postgres").unwrap()];
    assert!(ca.sign(&grant(&subject, &[])).is_err());
    let own = SubjectKey::from_key_data(ca.public.key_data().clone()).unwrap();
    assert!(ca.sign(&grant(&own, &principals)).is_err());
}

#[test]
fn symlinked_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real_key");
    CertificateAuthority::create(&real).unwrap();
    let link = dir.path().join("ca_key");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = CertificateAuthority::load(&link).unwrap_err().to_string();
    assert!(err.contains("symlink"), "{err}");
}

#[test]
fn key_owned_by_another_user_is_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca_key");
    CertificateAuthority::create(&path).unwrap();
    // Only root can give a file away; as anyone else this cannot be set up.
    if std::os::unix::fs::chown(&path, Some(65534), None).is_err() {
        eprintln!("skipped: not allowed to chown (not root)");
        return;
    }
    let err = CertificateAuthority::load(&path).unwrap_err().to_string();
    assert!(err.contains("owned by uid 65534"), "{err}");
    assert!(err.contains("run: chown"), "{err}");
}

fn write_secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn encrypted_key_opens_only_with_its_passphrase_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ca_key");
    let pass = dir.path().join("pass");
    write_secret(&pass, "correct horse battery staple\n");
    let (ca, created) = CertificateAuthority::open(&settings(&key, Some(&pass)), true).unwrap();
    assert!(created);
    let on_disk = PrivateKey::read_openssh_file(&key).unwrap();
    assert!(on_disk.is_encrypted(), "written encrypted");

    let (again, _) = CertificateAuthority::open(&settings(&key, Some(&pass)), false).unwrap();
    assert_eq!(again.fingerprint(), ca.fingerprint());

    let err = CertificateAuthority::open(&settings(&key, None), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("passphrase_file"), "{err}");
    write_secret(&pass, "wrong\n");
    let err = CertificateAuthority::open(&settings(&key, Some(&pass)), false).unwrap_err();
    assert!(format!("{err:#}").contains("wrong passphrase"), "{err:#}");
}

#[test]
fn passphrase_file_must_be_private_and_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ca_key");
    let pass = dir.path().join("pass");
    write_secret(&pass, "\n");
    let err = CertificateAuthority::open(&settings(&key, Some(&pass)), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    write_secret(&pass, "secret");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = CertificateAuthority::open(&settings(&key, Some(&pass)), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !key.exists(),
        "no key is created without a usable passphrase"
    );
}

#[test]
fn plain_key_with_a_passphrase_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ca_key");
    CertificateAuthority::create(&key).unwrap();
    let pass = dir.path().join("pass");
    write_secret(&pass, "secret");
    let err = CertificateAuthority::open(&settings(&key, Some(&pass)), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ssh-keygen -p"), "{err}");
}

#[test]
fn debug_output_and_errors_show_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca_key");
    let ca = CertificateAuthority::create(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let debug = format!("{ca:?}");
    assert!(debug.contains(&ca.fingerprint()), "{debug}");
    assert!(!debug.contains(&body[20..60]), "{debug}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = format!("{:#}", CertificateAuthority::load(&path).unwrap_err());
    assert!(!err.contains(&body[20..60]), "{err}");
}

fn host_settings(key_file: &Path) -> crate::config::HostCaSettings {
    crate::config::HostCaSettings {
        key_file: key_file.to_owned(),
        passphrase_file: None,
        agent: false,
        agent_public_key: None,
        cert_ttl: std::time::Duration::from_secs(3600),
        max_ttl: std::time::Duration::from_secs(7200),
        allowed_principals: Vec::new(),
    }
}

#[test]
fn the_host_ca_signs_host_certificates_only_and_never_with_the_user_ca_key() {
    let dir = tempfile::tempdir().unwrap();
    let user_ca = CertificateAuthority::create(&dir.path().join("ca")).unwrap();
    let user_key = user_ca.public_key_data().clone();
    // The user CA's own key file is refused as the host CA's.
    let same = HostAuthority::open(&host_settings(&dir.path().join("ca")), &user_key, false);
    assert!(same.unwrap_err().to_string().contains("user CA's key"));
    let path = dir.path().join("host_ca");
    let (host_ca, created) = HostAuthority::open(&host_settings(&path), &user_key, true).unwrap();
    assert!(created);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let subject = subject();
    let principals = [crate::names::HostPrincipal::parse("web1.example.com").unwrap()];
    let cert = host_ca
        .sign_host(&HostGrant {
            serial: Serial::new(7).unwrap(),
            key_id: "countersign:host:web1.example.com".into(),
            subject: &subject,
            principals: &principals,
            valid_after: 100,
            valid_before: 200,
        })
        .unwrap();
    assert_eq!(cert.cert_type(), CertType::Host);
    assert_eq!(cert.valid_principals(), ["web1.example.com"]);
    assert_eq!(cert.signature_key(), host_ca.public_key_data());
    assert!(cert.critical_options().is_empty() && cert.extensions().is_empty());
    // The user CA's certificates stay user certificates.
    let user_cert = user_ca
        .sign(&grant(&subject, &[Principal::parse("alice").unwrap()]))
        .unwrap();
    assert_eq!(user_cert.cert_type(), CertType::User);
    // Its own key is never a subject.
    let own = SubjectKey::from_key_data(host_ca.public_key_data().clone()).unwrap();
    let refused = host_ca.sign_host(&HostGrant {
        serial: Serial::new(8).unwrap(),
        key_id: "x".into(),
        subject: &own,
        principals: &principals,
        valid_after: 100,
        valid_before: 200,
    });
    assert!(refused.is_err());
}
