//! Key files and `ssh-keygen` for the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ssh_key::{Algorithm, LineEnding, PrivateKey};

/// A fresh Ed25519 key pair.
pub fn new_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key")
}

/// `ssh-ed25519 AAAA...` of a key.
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().expect("public line")
}

/// Writes `key` as an OpenSSH private key file (0600) and `.pub` next to it.
pub fn write_key(dir: &Path, name: &str, key: &PrivateKey) -> PathBuf {
    let path = dir.join(name);
    key.write_openssh_file(&path, LineEnding::LF)
        .expect("write key");
    std::fs::write(
        dir.join(format!("{name}.pub")),
        format!("{}\n", public_line(key)),
    )
    .expect("write pub");
    path
}

/// `ssh-keygen -L -f FILE` output for a certificate text.
pub fn ssh_keygen_list(dir: &Path, cert: &str) -> String {
    let path = dir.join(format!("listed-{}-cert.pub", rand::random::<u32>()));
    std::fs::write(&path, cert).expect("write cert");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen -L failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throw-away `ssh-agent -D` on its own socket; killed on drop.
pub struct Agent {
    child: Child,
    /// Its socket, for `SSH_AUTH_SOCK`.
    pub socket: PathBuf,
}

impl Agent {
    /// Starts one with its socket in `dir`.
    pub fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent never made its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, socket }
    }

    /// `ssh-add ARGS...` against it.
    pub fn ssh_add(&self, args: &[&str]) {
        let out = Command::new("ssh-add")
            .args(args)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add runs");
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
