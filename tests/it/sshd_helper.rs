//! A throw-away OpenSSH `sshd` on loopback that trusts a given CA key, and the real `ssh`
//! client to log into it.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

/// The account this test runs as: a non-root sshd can only log in as itself.
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl Sshd {
    /// Starts sshd in `dir` trusting `ca_pub` (a `TrustedUserCAKeys` line).
    pub fn start(dir: &Path, ca_pub: &str) -> Sshd {
        Self::start_with(dir, ca_pub, "")
    }

    /// Like [`Sshd::start`], with extra `sshd_config` lines (e.g. `RevokedKeys`).
    pub fn start_with(dir: &Path, ca_pub: &str, extra: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: apt-get install openssh-server (scripts/test.sh does)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let host_key = dir.join("host_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::write(dir.join("ca.pub"), format!("{}\n", ca_pub.trim())).unwrap();
        if is_root() {
            // sshd running as root needs its privilege-separation directory.
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let port = crate::cli::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
             TrustedUserCAKeys {ca}\n\
             AuthorizedKeysFile none\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nLogLevel VERBOSE\n\
             PermitRootLogin prohibit-password\n{extra}",
            hk = host_key.display(),
            pid = dir.join("sshd.pid").display(),
            ca = dir.join("ca.pub").display(),
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let log = dir.join("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("sshd starts");
        let mut sshd = Sshd { child, port, log };
        sshd.wait_ready();
        sshd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh USER@127.0.0.1 true` with exactly this key and certificate; true on success.
    pub fn login(&self, user: &str, key: &Path, cert: &Path) -> bool {
        let cert_file = format!("CertificateFile={}", cert.display());
        let out = ssh_command(&["-o", &cert_file], key, self.port, user)
            .arg("true")
            .output()
            .expect("ssh runs");
        out.status.success()
    }
}

/// The real `ssh` client to 127.0.0.1:`port` as `login` with exactly `key`, no config,
/// no known-hosts file, no prompts. `opts` come first: for ssh the first value wins.
pub fn ssh_command(opts: &[&str], key: &Path, port: u16, login: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(opts)
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            "-p",
        ]);
    cmd.arg(port.to_string())
        .arg(format!("{login}@127.0.0.1"))
        .stdin(Stdio::null());
    cmd
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
