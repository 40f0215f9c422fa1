//! Host certificates end to end with a real OpenSSH sshd and ssh client: sshd serves
//! `HostKey` + `HostCertificate` from an enrollment, and a client whose only trust is
//! `@cert-authority * <host CA>` with `StrictHostKeyChecking=yes` connects without a
//! prompt, or fails hard (exit 255) for wrong principals, an expired or revoked
//! certificate, or a client that trusts the user CA instead. Login uses a user
//! certificate of a throw-away CA of the test's own, so only host checks are tested.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::hosts_helper::*;
use crate::sshd_helper::{Sshd, current_user};

/// An sshd whose host certificate the test installs, and a user key that logs in.
struct HostSshd {
    sshd: Sshd,
    dir: PathBuf,
    user_key: PathBuf,
}

impl HostSshd {
    /// Starts sshd in `app`'s temp dir; its `HostCertificate` file is not there yet.
    fn start(app: &TestApp) -> HostSshd {
        let dir = app.dir.path().join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        let login_ca = new_key();
        write_key(&dir, "login_ca", &login_ca);
        let user_key = write_key(&dir, "user", &new_key());
        let out = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(dir.join("login_ca"))
            .args(["-I", "test-login", "-V", "-5m:+1h", "-n", &current_user()])
            .arg(dir.join("user.pub"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let cert = dir.join("host_ed25519-cert.pub");
        let extra = format!("HostCertificate {}\n", cert.display());
        let sshd = Sshd::start_with(&dir, &public_line(&login_ca), &extra);
        HostSshd {
            sshd,
            dir,
            user_key,
        }
    }

    /// The host key file (`HostKey`), and its public line.
    fn host_key(&self) -> (PathBuf, String) {
        let key = self.dir.join("host_ed25519");
        let public = std::fs::read_to_string(self.dir.join("host_ed25519.pub")).unwrap();
        (key, public.trim().to_owned())
    }

    /// Enrolls the host key for `principals` and installs the certificate (atomically).
    async fn enroll(&self, app: &TestApp, principals: &[&str]) -> Value {
        let token = token_for(app, principals).await;
        let (status, view) = enroll(app, &token, &self.host_key().1).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        self.install(&view);
        view
    }

    /// Writes a certificate view's certificate as the `HostCertificate` file.
    fn install(&self, view: &Value) {
        let cert = view["certificate"].as_str().unwrap();
        write_atomically(&self.dir, "host_ed25519-cert.pub", cert.as_bytes());
    }

    /// `ssh -v ... true` with `@cert-authority * TRUSTED` as the only known host line;
    /// asserts that ssh left that file as it was.
    fn connect(&self, trusted: &str, opts: &[&str]) -> Output {
        let line = format!("@cert-authority * {}\n", trusted.trim());
        let kh = write_atomically(&self.dir, "known_hosts", line.as_bytes());
        let kh_option = format!("UserKnownHostsFile={}", kh.display());
        let out = tokio::task::block_in_place(|| {
            Command::new("ssh")
                .args(["-v", "-F", "/dev/null", "-i"])
                .arg(&self.user_key)
                .args(["-o", "IdentitiesOnly=yes", "-o", &kh_option])
                .args(["-o", "GlobalKnownHostsFile=/dev/null"])
                .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
                .args(["-o", "ConnectTimeout=10", "-p", &self.sshd.port.to_string()])
                .args(opts)
                .arg(format!("{}@127.0.0.1", current_user()))
                .arg("true")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        });
        assert_eq!(
            std::fs::read(&kh).unwrap(),
            line.as_bytes(),
            "ssh wrote to known_hosts"
        );
        out
    }

    /// The pid sshd wrote (`PidFile`).
    fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.pid")).unwrap()
    }
}

/// The host CA line `GET /v1/host_ca.pub` serves.
async fn host_ca(app: &TestApp) -> String {
    served_key(app, "/v1/host_ca.pub")
        .await
        .to_openssh()
        .unwrap()
}

/// Asserts that ssh failed hard (255, no login) saying `why`.
fn fails_hard(out: &Output, why: &str, sshd: &HostSshd) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(255),
        "{err}\nsshd: {}",
        sshd.sshd.log()
    );
    assert!(err.contains("Host key verification failed."), "{err}");
    assert!(err.contains(why), "wanted {why:?} in: {err}");
}

/// Asserts that ssh logged in and saw the host certificate with `serial`.
fn connects_with(out: &Output, serial: &Value, sshd: &HostSshd) {
    let err = stderr(out);
    assert!(out.status.success(), "{err}\nsshd: {}", sshd.sshd.log());
    let serial = serial.as_str().unwrap();
    assert!(
        err.contains("Server host certificate: ssh-ed25519-cert-v01@openssh.com")
            && err.contains(&format!(", serial {serial} ID \"")),
        "serial {serial} not served: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_only_the_host_ca_connects_without_prompt_or_known_hosts_entry() {
    let app = spawn_hosts(&manual_clock()).await;
    let host = HostSshd::start(&app);
    let view = host.enroll(&app, &["127.0.0.1", "localhost"]).await;
    let out = host.connect(&host_ca(&app).await, &[]);
    connects_with(&out, &view["serial"], &host);
    let err = stderr(&out);
    assert!(
        err.contains("matches the ED25519-CERT host certificate"),
        "{err}"
    );
    assert!(!err.contains("Permanently added"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_user_ca_refuses_our_host_certificate() {
    let app = spawn_hosts(&manual_clock()).await;
    let host = HostSshd::start(&app);
    let view = host.enroll(&app, &["127.0.0.1"]).await;
    let user_ca = served_key(&app, "/v1/ca.pub").await.to_openssh().unwrap();
    let out = host.connect(&user_ca, &[]);
    fails_hard(&out, "No ED25519 host key is known", &host);
    let out = host.connect(&host_ca(&app).await, &[]);
    connects_with(&out, &view["serial"], &host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_certificate_for_other_principals_fails_hard() {
    let app = spawn_hosts(&manual_clock()).await;
    let host = HostSshd::start(&app);
    host.enroll(&app, &["web1.example.com", "10.0.0.5"]).await;
    let out = host.connect(&host_ca(&app).await, &[]);
    fails_hard(
        &out,
        "Certificate invalid: name is not a listed principal",
        &host,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_host_certificate_fails_hard() {
    // The CA's clock stands 3h back: its 1h certificate ended 2h ago by ssh's clock.
    let clock = manual_clock();
    clock.set(clock.now() - chrono::Duration::hours(3));
    let app = spawn_hosts(&clock).await;
    let host = HostSshd::start(&app);
    host.enroll(&app, &["127.0.0.1", "localhost"]).await;
    let out = host.connect(&host_ca(&app).await, &[]);
    fails_hard(&out, "Certificate invalid: expired", &host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_host_certificate_fails_hard_with_the_host_krl() {
    let app = spawn_hosts(&manual_clock()).await;
    let host = HostSshd::start(&app);
    let view = host.enroll(&app, &["127.0.0.1"]).await;
    let ca = host_ca(&app).await;
    let fetch_krl = || async {
        let (status, _, krl) = anon_get(&app, "/v1/krl/host").await;
        assert_eq!(status, StatusCode::OK);
        let file = write_atomically(&host.dir, "host.krl", &krl);
        format!("RevokedHostKeys={}", file.display())
    };
    let revoked_keys = fetch_krl().await;
    let out = host.connect(&ca, &["-o", &revoked_keys]);
    connects_with(&out, &view["serial"], &host);

    let serial = view["serial"].as_str().unwrap();
    let path = format!("/v1/hosts/certificates/{serial}/revoke");
    let (status, body) = app.post("bob", &path, json!({ "reason": "stolen" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked_keys = fetch_krl().await;
    let out = host.connect(&ca, &["-o", &revoked_keys]);
    fails_hard(&out, "revoked by file", &host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_on_the_next_connection_without_restarting_sshd() {
    let app = spawn_hosts(&manual_clock()).await;
    let host = HostSshd::start(&app);
    let first = host.enroll(&app, &["127.0.0.1", "localhost"]).await;
    let ca = host_ca(&app).await;
    connects_with(&host.connect(&ca, &[]), &first["serial"], &host);
    let pid = host.pid();

    // The host answers with its real host key file, signed by ssh-keygen.
    let (key_file, public) = host.host_key();
    let text = challenge(&app, &public).await;
    let sig = ssh_keygen_sign(&key_file, "countersign-host-renew", &text);
    let cert = first["certificate"].as_str().unwrap();
    let (status, second) = renew(&app, cert, &text, &sig).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    host.install(&second);

    connects_with(&host.connect(&ca, &[]), &second["serial"], &host);
    assert_eq!(host.pid(), pid, "sshd was not restarted");
    assert!(Path::new(&format!("/proc/{}", pid.trim())).exists());
}
