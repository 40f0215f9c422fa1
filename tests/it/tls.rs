//! HTTPS with a certificate made in the test (rcgen): the server speaks only TLS on its
//! port, clients must trust its CA, the CLI trusts a private CA through
//! `COUNTERSIGN_CA_CERT`; plain HTTP off loopback is refused unless allowed, and then
//! warned about at start.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;

use crate::helpers::*;
use crate::process::{ServerProcess, create_token, init, operator};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A self-signed certificate for localhost and 127.0.0.1; returns (cert, key) paths.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn config(dir: &Path, server_lines: &str) -> PathBuf {
    let path = dir.join("countersign.toml");
    let policy = POLICY.replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"data\"\n{server_lines}"),
    );
    std::fs::write(&path, policy).unwrap();
    path
}

fn trusting(cert: &Path) -> reqwest::Client {
    countersign::tls::install_crypto_provider();
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_api_speaks_https_and_the_cli_trusts_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let config = config(
        dir.path(),
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    init(&config);
    let token = create_token(&config, "alice");
    let server = ServerProcess::start(&config);
    assert!(
        server.url.starts_with("https://localhost:"),
        "{}",
        server.url
    );

    let resp = trusting(&cert)
        .get(format!("{}/v1/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let untrusted = reqwest::Client::new()
        .get(format!("{}/v1/health", server.url))
        .send()
        .await;
    assert!(
        untrusted.is_err(),
        "a client that does not trust the CA must fail"
    );
    let plain = reqwest::get(server.url.replace("https://", "http://") + "/v1/health").await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| r.status() != StatusCode::OK),
        "no plain HTTP on the TLS port"
    );

    let whoami = |ca: Option<&Path>| {
        let mut cmd = operator(&config);
        cmd.args(["--url", &server.url, "whoami"])
            .env("COUNTERSIGN_TOKEN", &token);
        if let Some(ca) = ca {
            cmd.env("COUNTERSIGN_CA_CERT", ca);
        }
        cmd.output().unwrap()
    };
    let out = whoami(Some(&cert));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("alice"), "{}", text(&out.stdout));
    let out = whoami(None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot reach countersign"),
        "{}",
        text(&out.stderr)
    );
    assert!(server.terminate());
}

#[test]
fn unusable_tls_files_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed(dir.path());
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let wrong_key = dir.path().join("wrong.pem");
    std::fs::write(&wrong_key, other.signing_key.serialize_pem()).unwrap();
    let config = config(
        dir.path(),
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            cert.display().to_string(),
            wrong_key.display().to_string()
        ),
    );
    let out = operator(&config).arg("serve").output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used together"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plain_http_off_loopback_is_refused_unless_allowed_and_then_warned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.toml");
    std::fs::write(&path, POLICY.replace("127.0.0.1:0", "0.0.0.0:0")).unwrap();
    let out = operator(&path).arg("check-config").output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("server.listen") && err.contains("tls_cert"),
        "{err}"
    );

    let config = config(dir.path(), "allow_plain_http = true");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("127.0.0.1:0", "0.0.0.0:0"),
    )
    .unwrap();
    let out = operator(&config).arg("check-config").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("plain HTTP on 0.0.0.0:0"),
        "{}",
        text(&out.stderr)
    );
    let server = ServerProcess::start(&config);
    assert!(
        server.log().contains("plain HTTP on 0.0.0.0:0"),
        "{}",
        server.log()
    );
    assert!(server.terminate());
}
