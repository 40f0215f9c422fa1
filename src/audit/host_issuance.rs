//! The issuance check of host certificates, alongside `issuance.rs`'s of user
//! certificates: someone able to write the database and recompute the chain's hashes
//! could otherwise append a `host.enrolled` for a token no admin made, or a
//! `host.renewed` of a certificate that never existed.
//!
//! Each `host.enrolled` must name a token a `host.token_created` made before it, used
//! once, and exactly that token's principals; each `host.renewed` must name a certificate
//! enrolled or renewed before it, for the same key and the same principals.

use std::collections::{HashMap, HashSet};

use crate::audit::{AuditEvent, HostEnrolled, HostRenewed, HostTokenCreated};

/// What the chain has shown so far.
#[derive(Debug, Default)]
pub(super) struct Hosts {
    /// Join tokens made and not yet used: id -> principals (sorted).
    tokens: HashMap<String, Vec<String>>,
    /// Tokens used up.
    used: HashSet<String>,
    /// Host certificates made: serial -> (key fingerprint, principals sorted).
    certs: HashMap<String, (String, Vec<String>)>,
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl Hosts {
    /// Takes one `host.*` event (`action` with its `detail`); the error completes
    /// "ACTION ..." with what it lacks.
    pub(super) fn see(&mut self, action: &str, detail: &str) -> Result<(), String> {
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
        self.certs.insert(e.serial, (e.key_fingerprint, principals));
        Ok(())
    }

    fn renewed(&mut self, r: HostRenewed) -> Result<(), String> {
        let (key, principals) = self.certs.get(&r.renewed_from).ok_or_else(|| {
            format!(
                "of serial {} renews {}, which no enrollment or renewal made",
                r.serial, r.renewed_from
            )
        })?;
        let same = *key == r.key_fingerprint && *principals == sorted(r.principals.clone());
        if !same {
            return Err(format!(
                "of serial {} changes the key or the principals of {}",
                r.serial, r.renewed_from
            ));
        }
        let entry = (key.clone(), principals.clone());
        self.certs.insert(r.serial, entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        h.see("host.token_created", &token("ht-1", &["b", "a"]))
            .unwrap();
        h.see("host.enrolled", &enrolled("7", "ht-1", "K", &["a", "b"]))
            .unwrap();
        h.see("host.renewed", &renewed("8", "7", "K", &["a", "b"]))
            .unwrap();
        h.see("host.renewed", &renewed("9", "8", "K", &["b", "a"]))
            .unwrap();
    }

    #[test]
    fn forged_enrollments_and_renewals_are_named() {
        let mut h = Hosts::default();
        let e = h.see("host.enrolled", &enrolled("7", "ht-x", "K", &["a"]));
        assert!(e.unwrap_err().contains("no host.token_created"));
        h.see("host.token_created", &token("ht-1", &["a"])).unwrap();
        let e = h.see("host.enrolled", &enrolled("7", "ht-1", "K", &["a", "evil"]));
        assert!(e.unwrap_err().contains("not its token's"));
        let mut h = Hosts::default();
        h.see("host.token_created", &token("ht-1", &["a"])).unwrap();
        h.see("host.enrolled", &enrolled("7", "ht-1", "K", &["a"]))
            .unwrap();
        let e = h.see("host.enrolled", &enrolled("8", "ht-1", "K", &["a"]));
        assert!(e.unwrap_err().contains("second time"));
        let e = h.see("host.renewed", &renewed("9", "6", "K", &["a"]));
        assert!(e.unwrap_err().contains("no enrollment"));
        let e = h.see("host.renewed", &renewed("9", "7", "OTHER", &["a"]));
        assert!(e.unwrap_err().contains("changes the key"));
        let e = h.see("host.renewed", &renewed("9", "7", "K", &["a", "b"]));
        assert!(e.unwrap_err().contains("changes the key or the principals"));
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
    }
}
