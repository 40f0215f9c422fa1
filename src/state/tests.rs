//! Unit tests of opening the state: binding, upgrades, and the mark.

use std::path::Path;

use chrono::Utc;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, HashAlg, PrivateKey};

use super::mark::{self, Mark};
use super::open::{bind_ca, check_ca};
use super::*;
use crate::config::Config;
use crate::store::meta::{self, Head};
use crate::store::{Store, certificates as certs};

fn key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

/// A schema-7 database (before the binding) holding one certificate signed by `ca`.
fn old_database(path: &Path, ca: &PrivateKey) {
    let subject = key();
    let mut b = Builder::new_with_random_nonce(
        &mut rand::rng(),
        subject.public_key().key_data().clone(),
        1,
        2,
    )
    .unwrap();
    b.serial(5).unwrap();
    b.cert_type(CertType::User).unwrap();
    b.valid_principal("x").unwrap();
    let cert = b.sign(ca).unwrap().to_openssh().unwrap();
    // An OpenSSH certificate line holds no quote.
    let seed = format!(
        "INSERT INTO requests VALUES ('r-1','ops','alice','x',60,'k','f','[]','d','issued',\
         1,2,NULL,NULL,NULL,NULL);\
         INSERT INTO certificates (serial, request_id, requester, role, key_id, \
         valid_after, valid_before, certificate) \
         VALUES (5, 'r-1', 'alice', 'ops', 'k', 1, 2, '{cert}');"
    );
    crate::store::create_at_schema(path, 7, &seed).unwrap();
}

/// How many audit events of `action` the log holds.
fn count_events(store: &Store, action: &str) -> usize {
    let all = crate::audit::Filter {
        limit: u32::MAX,
        ..Default::default()
    };
    let events = store.read(|tx| crate::audit::query(tx, &all)).unwrap();
    events.iter().filter(|e| e.action == action).count()
}

#[test]
fn a_database_from_before_the_binding_belongs_to_the_ca_that_signed_its_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.db");
    let (ours, theirs) = (key(), key());
    old_database(&path, &ours);
    let store = Store::open_existing(&path).unwrap();
    let e = check_ca(&store, theirs.public_key()).unwrap_err();
    assert!(e.to_string().contains("were signed by CA key"), "{e}");
    assert!(
        store.read(meta::current_ca).unwrap().is_none(),
        "bound to the wrong key"
    );

    check_ca(&store, ours.public_key()).unwrap();
    bind_ca(&store, ours.public_key(), "op", Utc::now()).unwrap();
    let bound = store.read(meta::current_ca).unwrap().unwrap();
    assert_eq!(
        bound.fingerprint,
        ours.public_key().fingerprint(HashAlg::Sha256).to_string()
    );
    assert_eq!(count_events(&store, "ca.recorded"), 1);
    // Bound now: the other key is refused as "belongs to", and ours is accepted.
    let e = check_ca(&store, theirs.public_key()).unwrap_err();
    assert!(
        e.to_string().contains("the database belongs to CA key"),
        "{e}"
    );
    check_ca(&store, ours.public_key()).unwrap();
}

#[test]
fn an_upgraded_database_is_taken_once_and_then_needs_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let ca = key();
    ca.write_openssh_file(data.join("ca_key"), ssh_key::LineEnding::LF)
        .unwrap();
    old_database(&data.join("countersign.db"), &ca);
    std::fs::set_permissions(
        data.join("countersign.db"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = Config::from_toml_str(
        "[server]\ndata_dir = \"data\"\n",
        &dir.path().join("c.toml"),
        dir.path(),
    )
    .unwrap();
    let count = count_events;
    // Read-only commands take the old database as it is, before any start.
    let (store, _) = open_existing(&config).unwrap();
    assert_eq!(count(&store, "ca.recorded"), 0, "a read-only command wrote");
    drop(store);
    // The first start binds it and starts a mark, on the record.
    let serve = Access::Serve {
        accept_rollback: None,
        new_replica: false,
    };
    let plan = plan(&config, &serve).unwrap();
    let (store, _) = open_store(&config, ca.public_key(), &serve, plan, "op", Utc::now()).unwrap();
    assert_eq!(count(&store, "state.mark_started"), 1);
    // It says where: the mark's path and the host, so an operator can tell replicas apart.
    let all = crate::audit::Filter {
        limit: u32::MAX,
        ..Default::default()
    };
    let events = store.read(|tx| crate::audit::query(tx, &all)).unwrap();
    let started = events
        .iter()
        .find(|e| e.action == "state.mark_started")
        .unwrap();
    assert_eq!(
        started.detail["host"],
        crate::state::files::host_name().as_str()
    );
    assert!(!crate::state::files::host_name().is_empty());
    assert!(Paths::of(&config).mark.exists());
    drop(store);
    // From now on the database needs its mark.
    std::fs::remove_file(Paths::of(&config).mark).unwrap();
    let Err(e) = open_existing(&config) else {
        panic!("the database was taken without its mark");
    };
    assert!(matches!(e, StateError::Rollback(_)), "{e}");
}

#[test]
fn the_mark_only_moves_forward_and_waits_for_answers_only_on_a_new_krl_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(mark::FILE_NAME);
    let start = Mark {
        ca: "SHA256:c".into(),
        database: "d".into(),
        krl_version: 2,
        audit_seq: 10,
        audit_hash: "h10".into(),
        updated: String::new(),
        revoked: Vec::new(),
        host_revoked: Vec::new(),
    };
    let none = certs::Revoked {
        serials: Vec::new(),
        valid_before: Vec::new(),
        first_expiry: None,
    };
    mark::write(&path, &start).unwrap();
    let guard = Guard::new(path.clone(), start);
    let head = |seq: i64| Head {
        seq,
        hash: format!("h{seq}"),
    };
    let now = Utc::now();
    assert!(!guard.behind());
    // A newer head alone does not cost an fsync on the answer path ...
    assert!(
        !guard
            .advance(2, &head(11), &none, &none, false, now)
            .unwrap()
    );
    // ... but is taken periodically.
    assert!(
        guard
            .advance(2, &head(11), &none, &none, true, now)
            .unwrap()
    );
    guard.note_revocation(3);
    assert!(guard.behind());
    assert!(!guard.holds_krl(3));
    assert!(
        guard
            .advance(3, &head(12), &none, &none, false, now)
            .unwrap()
    );
    assert!(!guard.behind());
    assert!(guard.holds_krl(3));
    // Never backwards.
    assert!(!guard.advance(1, &head(5), &none, &none, true, now).unwrap());
    let on_disk = mark::read(&path).unwrap().unwrap();
    assert_eq!((on_disk.krl_version, on_disk.audit_seq), (3, 12));
    assert_eq!(on_disk.audit_hash, "h12");
}
