//! The append-only, hash-chained audit log.
//!
//! Each event's `hash` is SHA-256 over the previous event's hash and the event's canonical
//! form (a JSON array of seq, at, actor, action, request_id, serial, detail), so editing,
//! deleting or reordering any event breaks every hash after it. Triggers refuse UPDATE and
//! DELETE; [`verify`](fn@verify) (in `verify.rs`) recomputes the whole chain, and checks that every
//! `certificate.issued` event is preceded by its request and its approvals (see
//! `issuance.rs`). Events are appended inside the same transaction as the state change
//! they describe.

pub mod breakglass_story;
mod event;
mod host_issuance;
mod issuance;
mod sieve;
pub mod story;
#[cfg(test)]
mod tests;
mod verify;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::names::Serial;
pub use crate::store::audit::Fields;
pub use crate::store::audit::Filter;
use crate::store::audit::{self as stored, RowRef};
use crate::store::{StoreError, Tx};

/// `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Actor recorded for things the CA does by itself (expiring requests).
pub const SYSTEM_ACTOR: &str = "countersign";

pub use event::*;
pub use verify::{AuditError, Verified, verify, verify_store};

/// An event to append: who did what, and the request and certificate it concerns.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Who did it (a user name, or [`SYSTEM_ACTOR`]).
    pub actor: &'a str,
    /// The request it concerns.
    pub request_id: Option<&'a str>,
    /// The certificate serial it concerns.
    pub serial: Option<Serial>,
    /// What happened: the stored action and detail.
    pub event: AuditEvent,
}

impl<'a> NewEvent<'a> {
    /// An event about request `request_id` (before any certificate of it).
    pub fn on_request(actor: &'a str, request_id: &'a str, event: impl Into<AuditEvent>) -> Self {
        NewEvent {
            actor,
            request_id: Some(request_id),
            serial: None,
            event: event.into(),
        }
    }

    /// An event about no one request or certificate (a token, a user, the policy, the
    /// state itself).
    pub fn general(actor: &'a str, event: impl Into<AuditEvent>) -> Self {
        NewEvent {
            actor,
            request_id: None,
            serial: None,
            event: event.into(),
        }
    }
}

/// A stored event, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Event {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was recorded (RFC 3339 UTC, milliseconds).
    pub at: String,
    /// Who did it (a user name, or the CA itself).
    pub actor: String,
    /// What happened, e.g. `request.created`.
    pub action: String,
    /// The request it concerns, if any.
    pub request_id: Option<String>,
    /// Decimal string: serials are 64-bit and JSON numbers are not.
    pub serial: Option<String>,
    /// The detail: the event's fields as a JSON object.
    pub detail: serde_json::Value,
    /// The previous event's `hash` ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) over `prev_hash` and this event's canonical form.
    pub hash: String,
}

impl Event {
    /// The typed event, if this version knows its action and its detail parses.
    pub fn parsed(&self) -> Option<AuditEvent> {
        AuditEvent::parse(&self.action, &self.detail)
    }
}

impl Fields<'_> {
    /// SHA-256 over the previous hash, a newline, and this event's canonical form: the
    /// compact JSON array `[seq, at, actor, action, request_id, serial, detail]`.
    pub fn hash(&self, prev_hash: &str) -> String {
        crate::hex_lower(&self.digest(prev_hash, &mut Vec::new()))
    }

    /// [`Fields::hash`] as raw bytes, reusing `buf` for the canonical form.
    pub fn digest(&self, prev_hash: &str, buf: &mut Vec<u8>) -> [u8; 32] {
        self.canonical(buf);
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(b"\n");
        h.update(&buf[..]);
        h.finalize().into()
    }

    /// Writes the canonical form; strings are escaped exactly as serde_json does.
    fn canonical(&self, buf: &mut Vec<u8>) {
        fn string(buf: &mut Vec<u8>, s: Option<&str>) {
            buf.push(b',');
            match s {
                // Writing into a Vec cannot fail.
                Some(s) => serde_json::to_writer(&mut *buf, s).unwrap_or(()),
                None => buf.extend_from_slice(b"null"),
            }
        }
        buf.clear();
        buf.push(b'[');
        buf.extend_from_slice(self.seq.to_string().as_bytes());
        string(buf, Some(self.at));
        string(buf, Some(self.actor));
        string(buf, Some(self.action));
        string(buf, self.request_id);
        string(buf, self.serial);
        string(buf, Some(self.detail));
        buf.push(b']');
    }
}

/// Appends one event; returns its sequence number.
pub fn append(tx: &Tx<'_>, now: DateTime<Utc>, ev: &NewEvent<'_>) -> Result<i64, StoreError> {
    let started = std::time::Instant::now();
    let appended = append_event(tx, now, ev);
    crate::metrics::audit_append_histogram().observe(started.elapsed().as_secs_f64());
    appended
}

fn append_event(tx: &Tx<'_>, now: DateTime<Utc>, ev: &NewEvent<'_>) -> Result<i64, StoreError> {
    let action = ev.event.action();
    let detail = ev
        .event
        .detail()
        .map_err(|e| StoreError::Corrupt(format!("audit event {action}: {e}")))?
        .to_string();
    append_stored(
        tx,
        now,
        Fields {
            seq: 0,
            at: "",
            actor: ev.actor,
            action,
            request_id: ev.request_id,
            serial: ev.serial.map(|s| s.to_string()).as_deref(),
            detail: &detail,
        },
    )
}

/// Appends `fields` as the next event, at `now`: its `seq` and `at` are set here.
fn append_stored(tx: &Tx<'_>, now: DateTime<Utc>, fields: Fields<'_>) -> Result<i64, StoreError> {
    let (last_seq, prev_hash) = stored::last(tx)?.unwrap_or_else(|| (0, GENESIS.to_owned()));
    let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let fields = Fields {
        seq: last_seq + 1,
        at: &at,
        ..fields
    };
    let hash = fields.hash(&prev_hash);
    stored::insert(
        tx,
        &RowRef {
            fields,
            prev_hash: &prev_hash,
            hash: &hash,
        },
    )?;
    Ok(fields.seq)
}

/// Appends an event with any action and detail, correctly hashed: what someone who can
/// write the database and knows the (public) hash function can forge. For tests.
#[cfg(test)]
pub(crate) fn append_forged(
    tx: &Tx<'_>,
    actor: &str,
    action: &str,
    request_id: Option<&str>,
    serial: Option<u64>,
    detail: &serde_json::Value,
) -> Result<i64, StoreError> {
    let detail = detail.to_string();
    append_stored(
        tx,
        Utc::now(),
        Fields {
            seq: 0,
            at: "",
            actor,
            action,
            request_id,
            serial: serial.map(|s| s.to_string()).as_deref(),
            detail: &detail,
        },
    )
}

/// Events matching `filter`, in sequence order.
pub fn query(tx: &Tx<'_>, filter: &Filter) -> Result<Vec<Event>, StoreError> {
    stored::query(tx, filter)?
        .into_iter()
        .map(|row| {
            let detail = serde_json::from_str(&row.detail)
                .map_err(|e| StoreError::Corrupt(format!("audit event {} detail: {e}", row.seq)))?;
            Ok(Event {
                seq: row.seq,
                at: row.at,
                actor: row.actor,
                action: row.action,
                request_id: row.request_id,
                serial: row.serial,
                detail,
                prev_hash: row.prev_hash,
                hash: row.hash,
            })
        })
        .collect()
}
