//! The issuance check of host certificates, alongside `issuance.rs`'s of user
//! certificates: someone able to write the database and recompute the chain's hashes
//! could otherwise append a `host.enrolled` for a token no admin made, or a
//! `host.renewed` of a certificate that never existed.
//!
//! Each `host.enrolled` must name a token a `host.token_created` made before it, used
//! once, and exactly that token's principals; each `host.renewed` must name a certificate
//! enrolled or renewed before it, for the same key and the same principals.

use std::collections::{HashMap, HashSet};
use std::hash::RandomState;
use std::sync::Arc;

use super::AuditError;
use super::sieve::Tally;
use crate::audit::{AuditEvent, HostEnrolled, HostRenewed, HostTokenCreated};
use crate::store::audit as stored;
use crate::store::{StoreError, Tx};

/// Checks every host event up to `last_seq` (see the module docs), read through their
/// index (`through_index`) or from the table; the error names the first that lacks what
/// must precede it. `Ok` tells which events it read, for the caller to compare with
/// what the hashed rows showed.
pub(super) fn check(
    tx: &Tx<'_>,
    last_seq: i64,
    keys: &RandomState,
    through_index: bool,
) -> Result<Tally, AuditError> {
    let mut hosts = Hosts::default();
    let mut read = Tally::default();
    let mut after = 0;
    stored::scan_hosts(tx, last_seq, through_index, |ev| {
        let broken = |why: String| AuditError::Broken { seq: ev.seq, why };
        if ev.seq <= after {
            return Err(broken(
                "host event read out of order (a damaged index)".into(),
            ));
        }
        after = ev.seq;
        read.add(keys, (ev.seq, ev.action, ev.detail, ev.at));
        hosts
            .see(ev.action, ev.detail, ev.at)
            .map_err(|why| broken(format!("{} {why}", ev.action)))
    })?;
    Ok(read)
}

/// Whether [`check`] through the index read exactly the host events the hashed rows
/// showed and found nothing wrong: then [`settle`] has nothing to read.
pub(super) fn agrees(seen: &Tally, through_index: &Result<Tally, AuditError>) -> bool {
    matches!(through_index, Ok(read) if read == seen)
}

/// [`check`] through the index, trusted only if it read exactly the host events the
/// hashed rows showed (`seen`) and found nothing wrong; else from the table, whose
/// answer stands. An index that disagreed with the table is logged.
pub(super) fn settle(
    tx: &Tx<'_>,
    last_seq: i64,
    keys: &RandomState,
    seen: Tally,
    through_index: Result<Tally, AuditError>,
) -> Result<(), AuditError> {
    if agrees(&seen, &through_index) {
        return Ok(());
    }
    let from_table = match check(tx, last_seq, keys, false) {
        // The table, read without an index, shows what the hashed rows showed, or
        // something is rewriting the log under this check.
        Ok(read) if read != seen => Err(AuditError::Store(StoreError::Corrupt(
            "the host events read from the audit table differ from those just hashed".into(),
        ))),
        other => other,
    };
    let agreed = match (&through_index, &from_table) {
        (Err(AuditError::Broken { seq: a, .. }), Err(AuditError::Broken { seq: b, .. })) => a == b,
        _ => false,
    };
    if !agreed {
        tracing::warn!(
            "audit verify: the index of host events (audit_hosts) does not match the log; \
             the events were read from the table instead (rebuild it: REINDEX audit_hosts)"
        );
    }
    from_table.map(|_| ())
}

/// A host key and its principals (sorted), shared along a renewal chain.
type Host = Arc<(String, Vec<String>)>;

/// Host events between two sweeps of certificates long expired.
const SWEEP_EVERY: u32 = 4096;

/// How long after its end a certificate is kept for the check: it could never be renewed
/// after its end, give or take the clocks of replicas.
const KEPT_AFTER_END: i64 = 24 * 3600;

/// What the chain has shown so far.
#[derive(Debug, Default)]
pub(super) struct Hosts {
    /// Join tokens made and not yet used: id -> principals (sorted).
    tokens: HashMap<String, Vec<String>>,
    /// Tokens used up.
    used: HashSet<String>,
    /// Host certificates made and not long expired: serial -> (host, valid_before).
    certs: HashMap<String, (Host, i64)>,
    /// Host events since the last sweep of `certs`.
    since_sweep: u32,
}

/// Unix seconds of an RFC 3339 time; `i64::MAX` (kept for ever) if it does not parse.
fn unix(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map_or(i64::MAX, |t| t.timestamp())
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl Hosts {
    /// Takes one `host.*` event (`action` with its `detail`, recorded `at`); the error
    /// completes "ACTION ..." with what it lacks. Certificates a day past their end are
    /// forgotten now and then (no renewal can name them), so memory follows the live
    /// hosts, not the years of renewals.
    pub(super) fn see(&mut self, action: &str, detail: &str, at: &str) -> Result<(), String> {
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            let horizon = unix(at).saturating_sub(KEPT_AFTER_END);
            self.certs.retain(|_, (_, end)| *end >= horizon);
        }
        let value: serde_json::Value =
            serde_json::from_str(detail).map_err(|e| format!("has a bad detail: {e}"))?;
        match AuditEvent::parse(action, &value) {
            Some(AuditEvent::HostTokenCreated(HostTokenCreated {
                token_id,
                principals,
                ..
            })) => {
                self.tokens.insert(token_id, sorted(principals));
                Ok(())
            }
            Some(AuditEvent::HostEnrolled(e)) => self.enrolled(e),
            Some(AuditEvent::HostRenewed(r)) => self.renewed(r),
            _ => Err("has a detail this version cannot read".into()),
        }
    }

    fn enrolled(&mut self, e: HostEnrolled) -> Result<(), String> {
        if self.used.contains(&e.token_id) {
            return Err(format!("uses join token {} a second time", e.token_id));
        }
        let made = self.tokens.remove(&e.token_id).ok_or_else(|| {
            format!(
                "names join token {}, which no host.token_created made",
                e.token_id
            )
        })?;
        let principals = sorted(e.principals);
        if principals != made {
            return Err(format!(
                "of serial {} names principals {principals:?}, not its token's {made:?}",
                e.serial
            ));
        }
        self.used.insert(e.token_id);
        let end = unix(&e.valid_before);
        self.certs
            .insert(e.serial, (Arc::new((e.key_fingerprint, principals)), end));
        Ok(())
    }

    fn renewed(&mut self, r: HostRenewed) -> Result<(), String> {
        let (host, _) = self.certs.get(&r.renewed_from).ok_or_else(|| {
            format!(
                "of serial {} renews {}, which no enrollment or renewal made (or one long \
                 expired)",
                r.serial, r.renewed_from
            )
        })?;
        let same = host.0 == r.key_fingerprint && host.1 == sorted(r.principals);
        if !same {
            return Err(format!(
                "of serial {} changes the key or the principals of {}",
                r.serial, r.renewed_from
            ));
        }
        let entry = (host.clone(), unix(&r.valid_before));
        self.certs.insert(r.serial, entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "2026-12-05T12:00:00Z";

    fn token(id: &str, p: &[&str]) -> String {
        serde_json::json!({ "token_id": id, "principals": p, "expires_at": "x" }).to_string()
    }

    fn enrolled(serial: &str, token: &str, key: &str, p: &[&str]) -> String {
        serde_json::json!({ "serial": serial, "principals": p, "key_fingerprint": key,
            "token_id": token, "valid_before": "x" })
        .to_string()
    }

    fn renewed(serial: &str, from: &str, key: &str, p: &[&str]) -> String {
        serde_json::json!({ "serial": serial, "renewed_from": from, "principals": p,
            "key_fingerprint": key, "valid_before": "x" })
        .to_string()
    }

    #[test]
    fn an_honest_history_passes() {
        let mut h = Hosts::default();
        h.see("host.token_created", &token("ht-1", &["b", "a"]), AT)
            .unwrap();
        h.see(
            "host.enrolled",
            &enrolled("7", "ht-1", "K", &["a", "b"]),
            AT,
        )
        .unwrap();
        h.see("host.renewed", &renewed("8", "7", "K", &["a", "b"]), AT)
            .unwrap();
        h.see("host.renewed", &renewed("9", "8", "K", &["b", "a"]), AT)
            .unwrap();
    }

    #[test]
    fn forged_enrollments_and_renewals_are_named() {
        let mut h = Hosts::default();
        let e = h.see("host.enrolled", &enrolled("7", "ht-x", "K", &["a"]), AT);
        assert!(e.unwrap_err().contains("no host.token_created"));
        h.see("host.token_created", &token("ht-1", &["a"]), AT)
            .unwrap();
        let e = h.see(
            "host.enrolled",
            &enrolled("7", "ht-1", "K", &["a", "evil"]),
            AT,
        );
        assert!(e.unwrap_err().contains("not its token's"));
        let mut h = Hosts::default();
        h.see("host.token_created", &token("ht-1", &["a"]), AT)
            .unwrap();
        h.see("host.enrolled", &enrolled("7", "ht-1", "K", &["a"]), AT)
            .unwrap();
        let e = h.see("host.enrolled", &enrolled("8", "ht-1", "K", &["a"]), AT);
        assert!(e.unwrap_err().contains("second time"));
        let e = h.see("host.renewed", &renewed("9", "6", "K", &["a"]), AT);
        assert!(e.unwrap_err().contains("no enrollment"));
        let e = h.see("host.renewed", &renewed("9", "7", "OTHER", &["a"]), AT);
        assert!(e.unwrap_err().contains("changes the key"));
        let e = h.see("host.renewed", &renewed("9", "7", "K", &["a", "b"]), AT);
        assert!(e.unwrap_err().contains("changes the key or the principals"));
    }

    /// Memory follows the live hosts: a certificate long past its end is forgotten at a
    /// sweep (and could not be renewed anyway); a live one is kept.
    #[test]
    fn certificates_long_expired_are_forgotten_and_live_ones_kept() {
        let mut h = Hosts::default();
        let cert = |serial: &str, token: &str, end: &str| {
            serde_json::json!({ "serial": serial, "principals": ["a"], "key_fingerprint": "K",
                "token_id": token, "valid_before": end })
            .to_string()
        };
        h.see("host.token_created", &token("ht-old", &["a"]), AT)
            .unwrap();
        h.see(
            "host.enrolled",
            &cert("1", "ht-old", "2020-01-01T00:00:00Z"),
            AT,
        )
        .unwrap();
        h.see("host.token_created", &token("ht-new", &["a"]), AT)
            .unwrap();
        h.see(
            "host.enrolled",
            &cert("2", "ht-new", "2026-12-12T00:00:00Z"),
            AT,
        )
        .unwrap();
        for i in 0..SWEEP_EVERY {
            h.see("host.token_created", &token(&format!("ht-{i}"), &["a"]), AT)
                .unwrap();
        }
        assert!(!h.certs.contains_key("1") && h.certs.contains_key("2"));
        h.see("host.renewed", &renewed("3", "2", "K", &["a"]), AT)
            .unwrap();
    }

    /// A chain someone wrote with correct hashes: `audit verify` reads host events too.
    #[test]
    fn verify_names_a_forged_host_enrollment() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let forged: serde_json::Value =
            serde_json::from_str(&enrolled("7", "ht-x", "K", &["a"])).unwrap();
        store
            .write(|tx| {
                let made: serde_json::Value = serde_json::from_str(&token("ht-1", &["a"])).unwrap();
                super::super::append_forged(tx, "bob", "host.token_created", None, None, &made)?;
                super::super::append_forged(
                    tx,
                    "host:ht-x",
                    "host.enrolled",
                    None,
                    Some(7),
                    &forged,
                )
            })
            .unwrap();
        match store.read(super::super::verify) {
            Err(super::super::AuditError::Broken { seq, why }) => {
                assert_eq!(seq, 2);
                assert!(why.contains("host.enrolled names join token ht-x"), "{why}");
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
        // A host event that names a request is a host event all the same.
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        store
            .write(|tx| {
                let request = Some("r-aaaaaaaaaaaa");
                super::super::append_forged(tx, "x", "host.enrolled", request, None, &forged)
            })
            .unwrap();
        let parallel = super::super::verify::verify_parallel(&store, 2, 0);
        for verdict in [store.read(super::super::verify), parallel] {
            match verdict {
                Err(super::super::AuditError::Broken { seq: 1, why }) => {
                    assert!(why.contains("names join token ht-x"), "{why}");
                }
                other => panic!("expected a broken chain, got {other:?}"),
            }
        }
    }
}
