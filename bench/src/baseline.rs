//! Baselines measured in the same run: raw Ed25519, `ssh-keygen -s` as whole processes,
//! and countersign's own signing door.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ed25519_dalek::Signer;
use serde::Serialize;

use countersign::ca::{CertificateAuthority, Grant};
use countersign::names::{Principal, Serial};
use countersign::pubkey::SubjectKey;

/// Operations per second over a timed loop.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Rate {
    pub ops: u64,
    pub seconds: f64,
    pub per_second: f64,
}

fn timed(min: Duration, mut op: impl FnMut()) -> Rate {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < min {
        for _ in 0..64 {
            op();
        }
        ops += 64;
    }
    let seconds = start.elapsed().as_secs_f64();
    Rate {
        ops,
        seconds,
        per_second: ops as f64 / seconds,
    }
}

impl Rate {
    /// Two timed runs of the same thing as one.
    fn plus(self, other: Rate) -> Rate {
        let ops = self.ops + other.ops;
        let seconds = self.seconds + other.seconds;
        Rate {
            ops,
            seconds,
            per_second: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

/// Raw Ed25519 signatures/s and certificates/s through countersign's own signing, one
/// thread each, timed in alternating slices (ten of each, `budget` in all per side): a
/// VM's speed drifts within seconds (its neighbours), and slices side by side see the
/// same drift, so the ratio of the two stays meaningful where back-to-back runs did not
/// (docs/benchmark.md, lab notes).
pub(crate) fn signing_side_by_side(dir: &Path, budget: Duration) -> anyhow::Result<(Rate, Rate)> {
    const SLICES: u32 = 10;
    let slice = budget / SLICES;
    let mut raw = RawEd25519::new();
    let mut door = SigningDoor::new(dir)?;
    let zero = Rate {
        ops: 0,
        seconds: 0.0,
        per_second: 0.0,
    };
    let (mut raw_rate, mut door_rate) = (zero, zero);
    for _ in 0..SLICES {
        raw_rate = raw_rate.plus(timed(slice, || raw.sign()));
        door_rate = door_rate.plus(timed(slice, || door.sign()));
        if let Some(e) = door.failed.take() {
            return Err(e.into());
        }
    }
    Ok((raw_rate, door_rate))
}

/// ed25519-dalek signatures over ~600-byte messages (a certificate's size).
struct RawEd25519 {
    key: ed25519_dalek::SigningKey,
    msg: Vec<u8>,
    i: u64,
}

impl RawEd25519 {
    fn new() -> Self {
        RawEd25519 {
            key: ed25519_dalek::SigningKey::from_bytes(&rand::random()),
            msg: vec![0u8; 600],
            i: 0,
        }
    }

    fn sign(&mut self) {
        self.msg[..8].copy_from_slice(&self.i.to_le_bytes());
        self.i += 1;
        std::hint::black_box(self.key.sign(&self.msg));
    }
}

/// Certificates per second a shell-script CA gets from `ssh-keygen -s` (one process per
/// certificate); `None` when ssh-keygen is not installed.
pub(crate) fn ssh_keygen(dir: &Path, budget: Duration) -> Option<Rate> {
    let dir = dir.join("ssh-keygen");
    std::fs::create_dir_all(&dir).ok()?;
    let keygen = |name: &str| {
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(name))
            .status()
            .ok()
            .filter(|s| s.success())
    };
    keygen("ca")?;
    keygen("user")?;
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < budget {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(dir.join("ca"))
            .args([
                "-I",
                "bench",
                "-n",
                "postgres",
                "-V",
                "+30m",
                "-z",
                &(ops + 1).to_string(),
            ])
            .arg(dir.join("user.pub"))
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        ops += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Some(Rate {
        ops,
        seconds,
        per_second: ops as f64 / seconds,
    })
}

/// Certificates through `CertificateAuthority::sign`, as issuance calls it.
struct SigningDoor {
    ca: CertificateAuthority,
    subject: SubjectKey,
    principals: [Principal; 2],
    extensions: [String; 1],
    serial: u64,
    failed: Option<countersign::ca::CaError>,
}

impl SigningDoor {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        let ca = CertificateAuthority::create(&dir.join("bench_ca_key"))?;
        let user = ssh_key::PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519)?;
        Ok(SigningDoor {
            ca,
            subject: SubjectKey::from_key_data(user.public_key().key_data().clone())?,
            principals: [Principal::parse("postgres")?, Principal::parse("alice")?],
            extensions: ["permit-pty".to_owned()],
            serial: 0,
            failed: None,
        })
    }

    fn sign(&mut self) {
        self.serial += 1;
        let Some(serial) = Serial::new(self.serial) else {
            unreachable!("the serial counts up from 1");
        };
        let grant = Grant {
            serial,
            key_id: format!("countersign:r-aaaaaaaaaaaa:alice:prod-db:{}", self.serial),
            subject: &self.subject,
            principals: &self.principals,
            valid_after: 1_800_000_000,
            valid_before: 1_800_001_800,
            extensions: &self.extensions,
            force_command: None,
            source_address: &[],
        };
        if let Err(e) = self.ca.sign(&grant) {
            self.failed = Some(e);
        }
    }
}
