//! Notifications (`[[notify]]`) against a real receiver that checks every signature with
//! the `standardwebhooks` library from PyPI (tests/py/receiver.py).

mod delivery;
mod durability;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::helpers::POLICY;

/// A `tests/py/receiver.py` on a port of its own; killed on drop.
pub struct Receiver {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// `whsec_...`.
    pub secret: String,
    signed: bool,
}

fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/install-python.sh (scripts/test.sh does)",
        venv.display()
    );
    venv
}

/// Writes `text` to `path`, private (as secret files must be).
fn secret_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Receiver {
    /// A receiver (not started) that checks Standard Webhooks signatures, or, when not
    /// `signed`, takes any JSON (for a Slack sink).
    pub fn new(signed: bool) -> Receiver {
        let key: [u8; 32] = rand::random();
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let dir = tempfile::tempdir().unwrap();
        let port = crate::cli::free_port();
        secret_file(
            &dir.path().join("url"),
            &format!("http://127.0.0.1:{port}/hook"),
        );
        secret_file(&dir.path().join("secret"), &secret);
        Receiver {
            child: None,
            port,
            dir,
            secret,
            signed,
        }
    }

    /// The `[[notify]]` table of a sink named `name` pointing here, for `events`.
    pub fn sink(&self, name: &str, events: &str, extra: &str) -> String {
        let (kind, secret) = if self.signed {
            (
                "webhook",
                format!(
                    "secret_file = \"{}\"\n",
                    self.dir.path().join("secret").display()
                ),
            )
        } else {
            ("slack", String::new())
        };
        format!(
            "\n[[notify]]\nname = \"{name}\"\nkind = \"{kind}\"\nurl_file = \"{}\"\n{secret}\
             events = {events}\n{extra}\n",
            self.dir.path().join("url").display()
        )
    }

    /// Starts it and waits until it listens.
    pub fn start(&mut self) {
        let secret = if self.signed {
            self.secret.as_str()
        } else {
            "none"
        };
        let mut child = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/receiver.py"))
            .arg(self.port.to_string())
            .arg(self.dir.path().join("log"))
            .arg(secret)
            .arg(self.dir.path().join("mode"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "listening");
        self.child = Some(child);
    }

    /// Stops it (as a receiver that went away).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How it answers from now on: `ok`, `429 N`, `hang`, `500`.
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).unwrap();
    }

    /// Every POST it got, in order: the lines it finished writing (one read while the
    /// receiver writes may end in half a line, left for the next read).
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The verified events, in order of arrival.
    pub fn events(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["ok"] == true)
            .map(|r| {
                let mut body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
                body["_at"] = r["at"].clone();
                body["_headers"] = r["headers"].clone();
                body
            })
            .collect()
    }

    /// The verified events it answered 2xx to (delivered), in order of arrival.
    pub fn delivered(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .zip(self.records().into_iter().filter(|r| r["ok"] == true))
            .filter(|(_, r)| r["answer"] == 204)
            .map(|(e, _)| e)
            .collect()
    }

    /// Waits up to `secs` for a first POST, whatever it was.
    pub async fn wait_for_records(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.records().is_empty() {
            assert!(Instant::now() < deadline, "the receiver got nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `secs` for `done(events)`; the events then.
    pub async fn wait_for(&self, secs: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "receiver did not get what was expected; it got: {:?}",
                self.records()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// [`POLICY`] with `sinks` appended.
pub fn policy_with(sinks: &str) -> String {
    format!("{POLICY}{sinks}")
}

/// The events of `events` of type `kind`.
pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}
