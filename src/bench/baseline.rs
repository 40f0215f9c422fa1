//! Baselines measured in the same run: raw Ed25519, `ssh-keygen -s` as whole processes,
//! and countersign's own signing door.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ed25519_dalek::Signer;
use serde::Serialize;

use crate::ca::{CertificateAuthority, Grant};
use crate::names::Principal;
use crate::pubkey::SubjectKey;

/// Operations per second over a timed loop.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
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

/// ed25519-dalek signatures over ~600-byte messages (a certificate's size), one thread.
pub fn raw_ed25519(budget: Duration) -> Rate {
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let mut msg = vec![0u8; 600];
    let mut i = 0u64;
    timed(budget, || {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        i += 1;
        std::hint::black_box(key.sign(&msg));
    })
}

/// Certificates per second a shell-script CA gets from `ssh-keygen -s` (one process per
/// certificate); `None` when ssh-keygen is not installed.
pub fn ssh_keygen(dir: &Path, budget: Duration) -> Option<Rate> {
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

/// Certificates per second through `CertificateAuthority::sign`, one thread.
pub fn in_process_signing(dir: &Path, budget: Duration) -> anyhow::Result<Rate> {
    let ca = CertificateAuthority::create(&dir.join("bench_ca_key"))?;
    let user = ssh_key::PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519)?;
    let subject = SubjectKey::from_key_data(user.public_key().key_data().clone())?;
    let principals = [Principal::parse("postgres")?, Principal::parse("alice")?];
    let extensions = ["permit-pty".to_owned()];
    let mut serial = 0u64;
    let mut failed = None;
    let rate = timed(budget, || {
        serial += 1;
        let grant = Grant {
            serial,
            key_id: format!("countersign:r-aaaaaaaaaaaa:alice:prod-db:{serial}"),
            subject: &subject,
            principals: &principals,
            valid_after: 1_800_000_000,
            valid_before: 1_800_001_800,
            extensions: &extensions,
            force_command: None,
            source_address: &[],
        };
        if let Err(e) = ca.sign(&grant) {
            failed = Some(e);
        }
    });
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(rate),
    }
}
