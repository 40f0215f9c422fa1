//! TLS to PostgreSQL against a real certificate: a private cluster serves a certificate
//! for `localhost` issued by a CA made in the test (rcgen), and the store connects with
//! `sslmode=verify-full` and `sslrootcert` from `[storage] url`, as docs/configuration.md
//! says. It must connect (and the server must see TLS) only when the certificate chains
//! to the configured root and names the host in the URL.

use std::path::Path;

use countersign::config::Config;
use countersign::store::Store;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::pg::{Cluster, PgDatabase};

/// A CA: its certificate (PEM) and the issuer that signs with it.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// Loads a config whose `[storage]` is `db` at `url_host`, with TLS checked against the
/// root certificate in `root_pem`.
fn config(dir: &Path, db: &PgDatabase, port: u16, url_host: &str, root_pem: &str) -> Config {
    std::fs::write(dir.join("root.pem"), root_pem).unwrap();
    let password = db.write_password_file(dir);
    let text = format!(
        "[server]\ndata_dir = \"data\"\n[storage]\nbackend = \"postgres\"\n\
         url = \"postgres://{}@{url_host}:{port}/{}?sslmode=verify-full&sslrootcert=root.pem\"\n\
         password_file = \"{}\"\n",
        db.user,
        db.name,
        password.display()
    );
    Config::from_toml_str(&text, &dir.join("countersign.toml"), dir).unwrap()
}

/// Opens the store the config names (creating its schema).
fn open(config: &Config) -> Result<Store, String> {
    let options = countersign::state::postgres_options(config)
        .map_err(|e| e.to_string())?
        .expect("a PostgreSQL config");
    Store::open_postgres(&options).map_err(|e| e.to_string())
}

#[test]
fn verify_full_connects_only_to_a_certificate_of_the_configured_root_for_the_host() {
    let cluster = Cluster::start_new();
    let (root_pem, issuer) = ca("countersign test root");
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    cluster.use_tls(&server.pem(), &server_key.serialize_pem());
    let db = cluster.fresh_database();
    let dir = tempfile::tempdir().unwrap();

    // The right root and the host the certificate names: connected, over TLS.
    let store = open(&config(
        dir.path(),
        &db,
        cluster.port(),
        "localhost",
        &root_pem,
    ))
    .expect("verify-full with the issuing root");
    assert!(store.database_now_ms().unwrap().is_some());
    let tls = cluster.psql(
        "postgres",
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'countersign'",
    );
    let (on, all) = tls.split_once('|').unwrap();
    assert!(all != "0" && on == all, "sessions over TLS / all: {tls}");
    drop(store);

    // Another root: refused, with the reason.
    let (other_root, _) = ca("someone else's root");
    let e = open(&config(
        dir.path(),
        &db,
        cluster.port(),
        "localhost",
        &other_root,
    ))
    .err()
    .expect("a certificate from another root was accepted");
    assert!(e.contains("UnknownIssuer"), "{e}");

    // The right root, but a host name the certificate does not name: refused.
    let e = open(&config(
        dir.path(),
        &db,
        cluster.port(),
        "127.0.0.1",
        &root_pem,
    ))
    .err()
    .expect("a certificate for another host name was accepted");
    assert!(e.contains("not valid for name"), "{e}");
}
