//! A small Jepsen-style history checker: what clients were told (a request created, a
//! certificate issued with its serial, a certificate revoked), replayed against the
//! audit log (`countersign audit export`), the KRL of every replica, and the chain
//! (`countersign audit verify`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::Value;

use super::{Http, Replicas};
use crate::process::operator;

/// What clients were told. Shared by client tasks behind a mutex.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Told>,
}

#[derive(Debug, Default, Clone)]
pub struct Told {
    /// Request ids answered 201 (or 200 for a replayed Idempotency-Key).
    pub created: BTreeSet<String>,
    /// Request id -> serial of the certificate a client was shown for it.
    pub issued: BTreeMap<String, u64>,
    /// Serials a revoke was answered 200 for.
    pub revoked: BTreeSet<u64>,
}

impl History {
    pub fn created(&self, id: &str) {
        self.lock().created.insert(id.to_owned());
    }

    /// A client was shown certificate `serial` for request `id`. Two serials for one
    /// request, or one serial for two requests, fail at once.
    pub fn issued(&self, id: &str, serial: u64) {
        let mut told = self.lock();
        if let Some(earlier) = told.issued.insert(id.to_owned(), serial) {
            assert_eq!(earlier, serial, "request {id} shown two certificates");
        }
        let owners: Vec<&String> = told
            .issued
            .iter()
            .filter(|(_, s)| **s == serial)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(owners.len(), 1, "serial {serial} shown for {owners:?}");
    }

    pub fn revoked(&self, serial: u64) {
        self.lock().revoked.insert(serial);
    }

    pub fn told(&self) -> Told {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Told> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replays the history against the replicas (all running): every acknowledged
    /// creation and issuance is in the audit log with that serial, no request has two
    /// `certificate.issued` events, serials are unique, every acknowledged revocation is
    /// in every replica's KRL, and the chain verifies.
    pub async fn check(&self, replicas: &Replicas) {
        let told = self.told();
        let events = export(replicas);
        let mut issued_by_request: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut serials = BTreeSet::new();
        let mut created = BTreeSet::new();
        let mut revoked = BTreeSet::new();
        for e in &events {
            let request = e["request_id"].as_str().unwrap_or_default().to_owned();
            let serial = e["serial"].as_str().and_then(|s| s.parse::<u64>().ok());
            match e["action"].as_str().unwrap_or_default() {
                "request.created" => {
                    created.insert(request);
                }
                "certificate.issued" => {
                    let serial = serial.unwrap_or_else(|| panic!("no serial: {e}"));
                    assert!(serials.insert(serial), "serial {serial} issued twice");
                    issued_by_request.entry(request).or_default().push(serial);
                }
                "certificate.revoked" => {
                    if let Some(serial) = serial {
                        revoked.insert(serial);
                    }
                }
                _ => {}
            }
        }
        for (id, serials) in &issued_by_request {
            assert_eq!(
                serials.len(),
                1,
                "request {id} has certificates {serials:?}"
            );
        }
        for id in &told.created {
            assert!(created.contains(id), "acknowledged request {id} is lost");
        }
        for (id, serial) in &told.issued {
            assert_eq!(
                issued_by_request.get(id),
                Some(&vec![*serial]),
                "acknowledged certificate {serial} of {id} has no certificate.issued event"
            );
        }
        for serial in &told.revoked {
            assert!(revoked.contains(serial), "revocation of {serial} is lost");
        }
        check_krls(replicas, &told.revoked).await;
        replicas.audit_verify(0);
        eprintln!(
            "history: {} created, {} certificates and {} revocations acknowledged; \
             {} events, {} certificates in the log",
            told.created.len(),
            told.issued.len(),
            told.revoked.len(),
            events.len(),
            serials.len()
        );
    }
}

/// Every audit event, through `countersign audit export` against replica 0 as admin bob.
fn export(replicas: &Replicas) -> Vec<Value> {
    let out = operator(&replicas.config(0))
        .env("COUNTERSIGN_URL", replicas.url(0))
        .env("COUNTERSIGN_TOKEN", replicas.token("bob"))
        .args(["audit", "export", "--since", "1d", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every serial in `revoked` is in the KRL of every replica, as `ssh-keygen -Q` reads it.
async fn check_krls(replicas: &Replicas, revoked: &BTreeSet<u64>) {
    // Every worker revokes on its first flow: a history without one checked nothing.
    assert!(
        !revoked.is_empty(),
        "no revocation was acknowledged: nothing to check"
    );
    let http = Http::new();
    for i in 0..replicas.len() {
        let (_, _, bytes) = http.krl(&replicas.url(i)).await;
        let listed = crate::ha::krl_serials(&bytes);
        let missing: Vec<&u64> = revoked.iter().filter(|s| !listed.contains(s)).collect();
        assert!(missing.is_empty(), "replica {i}: KRL lacks {missing:?}");
    }
}
