//! A bulk loader for the benchmark, and the counts it checks at the end: SQLite only,
//! written against the tables of `store/migrations.rs`, and not part of the store's
//! contract (a second backend need not offer it).
//!
//! [`issued_flows`] writes issued requests, their approvals, (expired) certificates and
//! their audit events straight into the database, continuing the hash chain, in one
//! transaction with `synchronous=OFF`: a million flows in about two minutes instead of
//! hours through the service. The rows have the shape the service writes (so `audit
//! verify` and `audit --serial N` treat them as real), but nothing checks them against
//! a policy and the keys and certificates in them are placeholders.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Statement, Transaction, params};

use super::{Store, StoreError};
use crate::audit::{Fields, GENESIS};
use crate::names::{RequestId, Serial};

/// An issued request; placeholders for what only the service's checks read (the key,
/// its fingerprint, the role digest).
const INSERT_REQUEST: &str = "INSERT INTO requests (id, role, requester, reason, \
    ttl_seconds, public_key, key_fingerprint, principals, role_digest, status, created_at, \
    expires_at, decided_at, decided_by) VALUES (?1, ?2, ?3, 'prefilled', 1800, \
    'ssh-ed25519 AAAA', 'SHA256:x', '[\"svc\"]', 'x', 'issued', ?4, ?5, ?4, ?6)";
const INSERT_APPROVAL: &str =
    "INSERT INTO approvals (request_id, approver, at) VALUES (?1, ?2, ?3)";
/// A certificate; its text is a placeholder.
const INSERT_CERTIFICATE: &str = "INSERT INTO certificates (serial, request_id, requester, \
    role, key_id, valid_after, valid_before, certificate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
    'ssh-ed25519-cert-v01@openssh.com AAAA')";
const INSERT_EVENT: &str = "INSERT INTO audit (seq, at, actor, action, request_id, serial, \
    detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Who took part in the `i`th prefilled flow (names as the benchmark's policy has them).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Flow {
    /// Who asked (a user of the policy the database is served with).
    pub requester: String,
    /// Who approved: the one approval, also the actor of the issuance.
    pub approver: String,
    /// A role that needs one approval.
    pub role: String,
    /// The principals the issuance event records.
    pub principals: Vec<String>,
}

/// Inserts `n` issued flows into the database at `database`, created 30 days before
/// `now` (one a millisecond), each with one approval, a certificate expired long ago and
/// its three audit events (created, approved, issued), in one transaction. Request ids
/// and serials follow the creation time as the service's do (`RequestId::new_at`,
/// `Serial::fresh`), so new rows land where a long-running CA's would. The server must
/// not be running on it.
#[doc(hidden)]
pub fn issued_flows(
    database: &Path,
    now: DateTime<Utc>,
    n: usize,
    mut flow: impl FnMut(usize) -> Flow,
) -> Result<(), StoreError> {
    let mut conn = Connection::open(database)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut rows = Rows::prepare(&tx, now)?;
        let mut rng = rand::rng();
        for i in 0..n {
            rows.insert(i, &mut rng, &flow(i))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The prepared inserts of one prefill and the audit chain they continue.
struct Rows<'t> {
    requests: Statement<'t>,
    approvals: Statement<'t>,
    certificates: Statement<'t>,
    chain: Chain<'t>,
    /// When the first flow was created.
    t0: DateTime<Utc>,
}

impl<'t> Rows<'t> {
    fn prepare(tx: &'t Transaction<'_>, now: DateTime<Utc>) -> Result<Self, StoreError> {
        Ok(Rows {
            requests: tx.prepare(INSERT_REQUEST)?,
            approvals: tx.prepare(INSERT_APPROVAL)?,
            certificates: tx.prepare(INSERT_CERTIFICATE)?,
            chain: Chain::continuing(tx, now)?,
            t0: now - chrono::Duration::days(30),
        })
    }

    /// The `i`th flow: its request, approval, certificate and three audit events.
    fn insert(
        &mut self,
        i: usize,
        rng: &mut impl rand::Rng,
        flow: &Flow,
    ) -> Result<(), StoreError> {
        let Flow {
            requester,
            approver,
            role,
            principals,
        } = flow;
        // One flow a millisecond: every serial's time bits differ, so none repeats.
        let at = self.t0 + chrono::Duration::milliseconds(i as i64);
        let id = RequestId::new_at(at, rng);
        let id = id.as_str();
        let serial = Serial::fresh(at, rng).get();
        let key_id = format!("countersign:{id}:{requester}:{role}");
        let created = at.timestamp();
        self.requests.execute(params![
            id,
            role,
            requester,
            created,
            created + 3600,
            approver
        ])?;
        self.approvals.execute(params![id, approver, created])?;
        self.certificates.execute(params![
            serial as i64,
            id,
            requester,
            role,
            key_id,
            created - 60,
            created + 1800
        ])?;
        // Each certificate's story as the service writes it (audit verify checks that
        // an issuance follows its request and approvals): created, approved, issued.
        let serial_text = serial.to_string();
        let created =
            serde_json::json!({ "role": role, "reason": "prefilled", "ttl_seconds": 1800 });
        self.chain
            .append(requester, "request.created", id, None, &created)?;
        let approved = serde_json::json!({ "role": role, "requester": requester, "comment": null });
        self.chain
            .append(approver, "request.approved", id, None, &approved)?;
        let issued = serde_json::json!({
            "serial": serial_text, "key_id": key_id, "requester": requester, "role": role,
            "principals": principals,
            "approvals": [{ "approver": approver, "step": 1 }], "reason": "prefilled",
            "approvals_required": [1],
        });
        self.chain.append(
            approver,
            "certificate.issued",
            id,
            Some(&serial_text),
            &issued,
        )
    }
}

/// The audit chain's head, moved along as the prefill appends events.
struct Chain<'t> {
    insert: Statement<'t>,
    seq: i64,
    prev: String,
    /// Every prefilled event carries the same time.
    at: String,
}

impl<'t> Chain<'t> {
    fn continuing(tx: &'t Transaction<'_>, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let (seq, prev) = tx
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, GENESIS.to_owned()));
        let insert = tx.prepare(INSERT_EVENT)?;
        let at = (now - chrono::Duration::days(30)).to_rfc3339_opts(SecondsFormat::Millis, true);
        Ok(Chain {
            insert,
            seq,
            prev,
            at,
        })
    }

    fn append(
        &mut self,
        actor: &str,
        action: &str,
        request: &str,
        serial: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.seq += 1;
        let detail = detail.to_string();
        let hash = Fields {
            seq: self.seq,
            at: &self.at,
            actor,
            action,
            request_id: Some(request),
            serial,
            detail: &detail,
        }
        .hash(&self.prev);
        self.insert.execute(params![
            self.seq, self.at, actor, action, request, serial, detail, self.prev, hash
        ])?;
        self.prev = hash;
        Ok(())
    }
}

/// Certificates against `certificate.issued` events: the benchmark's end-of-run check
/// that every certificate was issued exactly once, on the record.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Census {
    /// Rows in `certificates`.
    pub certificates: i64,
    /// `certificate.issued` audit events.
    pub issued_events: i64,
    /// Distinct serials among those events.
    pub distinct_serials: i64,
    /// Certificates without exactly one `certificate.issued` event.
    pub orphans: i64,
}

/// Certificates without exactly one `certificate.issued` event (audit rows carry the
/// serial as text).
const COUNT_ORPHANS: &str = "SELECT count(*) FROM certificates c WHERE (SELECT count(*) \
    FROM audit a WHERE a.serial = CAST(c.serial AS TEXT) \
    AND a.action = 'certificate.issued') != 1";

/// Counts [`Census`] over the whole database.
#[doc(hidden)]
pub fn census(store: &Store) -> Result<Census, StoreError> {
    store.read(|tx| {
        let c = tx.sqlite()?;
        let count =
            |sql: &str| -> Result<i64, StoreError> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
        let issued = "FROM audit WHERE action = 'certificate.issued'";
        Ok(Census {
            certificates: count("SELECT count(*) FROM certificates")?,
            issued_events: count(&format!("SELECT count(*) {issued}"))?,
            distinct_serials: count(&format!("SELECT count(DISTINCT serial) {issued}"))?,
            orphans: count(COUNT_ORPHANS)?,
        })
    })
}

/// The serials of up to `n` certificates spread evenly over the table, oldest first.
#[doc(hidden)]
pub fn spread_serials(store: &Store, n: usize) -> Result<Vec<Serial>, StoreError> {
    store.read(|tx| {
        let c = tx.sqlite()?;
        let last: i64 = c.query_row("SELECT coalesce(max(id), 0) FROM certificates", [], |r| {
            r.get(0)
        })?;
        let mut stmt =
            c.prepare("SELECT serial FROM certificates WHERE id >= ?1 ORDER BY id LIMIT 1")?;
        let mut serials = Vec::with_capacity(n);
        for i in 0..n.min(usize::try_from(last).unwrap_or(0)) {
            let id = 1 + (i as i64 * last) / n as i64;
            let serial: i64 = stmt.query_row([id], |r| r.get(0))?;
            serials.push(
                Serial::from_stored(serial)
                    .ok_or_else(|| StoreError::Corrupt(format!("serial {serial}")))?,
            );
        }
        Ok(serials)
    })
}
