//! The audit table: appending a hashed row, reading the head, filtered queries, and
//! ordered scans for verification. The hashing and the chain's rules live in
//! `crate::audit`; this module only stores and reads rows.
//!
//! The table refuses UPDATE and DELETE (triggers, migration 1). An append reads the head
//! and inserts the next row in the same transaction: that relies on one writer at a time
//! (the isolation contract in `store.rs`; `docs/ARCHITECTURE.md`, "The single-writer
//! invariants").

use super::{StoreError, Tx};
use crate::names::{RequestId, Serial};
use chrono::{DateTime, SecondsFormat, Utc};

/// One stored event, as read back: `detail` is the stored JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
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
    /// The certificate serial it concerns, if any (decimal).
    pub serial: Option<String>,
    /// The detail: the event's fields as stored JSON text.
    pub detail: String,
    /// The previous event's `hash` ([`crate::audit::GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) over `prev_hash` and this event's canonical form.
    pub hash: String,
}

/// The hashed fields of one event, borrowed; `detail` is the stored JSON text. The
/// hashing itself is `crate::audit`'s (`Fields::hash`).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was recorded (RFC 3339 UTC, milliseconds).
    pub at: &'a str,
    /// Who did it (a user name, or the CA itself).
    pub actor: &'a str,
    /// What happened, e.g. `request.created`.
    pub action: &'a str,
    /// The request it concerns, if any.
    pub request_id: Option<&'a str>,
    /// The certificate serial it concerns, if any (decimal).
    pub serial: Option<&'a str>,
    /// The detail: the event's fields as stored JSON text.
    pub detail: &'a str,
}

/// One stored event, borrowed: its hashed fields and the two hashes that chain it (no
/// copies: verifying the chain reads every row).
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    /// What the hash covers.
    pub fields: Fields<'a>,
    /// The previous event's `hash` ([`crate::audit::GENESIS`] for the first).
    pub prev_hash: &'a str,
    /// SHA-256 (hex) over `prev_hash` and the fields' canonical form.
    pub hash: &'a str,
}

/// Which events to return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The whole story of this certificate: every event of its request, plus events
    /// that name the serial (issuance, revocation).
    pub serial: Option<Serial>,
    /// Events of this request.
    pub request_id: Option<RequestId>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events after this sequence number (paging).
    pub after_seq: i64,
    /// At most this many.
    pub limit: u32,
}

/// The newest event's sequence number and hash; `None` for an empty log.
pub fn last(tx: &Tx<'_>) -> Result<Option<(i64, String)>, StoreError> {
    if let Some(head) = tx.audit_head() {
        return Ok(Some(head));
    }
    tx.opt(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// When the policy of digest `digest` was last recorded (`policy.loaded`): its event's
/// sequence number and time, if ever. A scan of the log from its end, made only when a
/// server starts with a policy that is not the one recorded last.
pub fn policy_recorded(tx: &Tx<'_>, digest: &str) -> Result<Option<(i64, String)>, StoreError> {
    if !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    // The event's detail is serialized with `cause` first, then `digest`.
    let pattern = format!("%\"digest\":\"{digest}\"%");
    tx.opt(
        "SELECT seq, at FROM audit WHERE action = 'policy.loaded' AND detail LIKE ?1 \
         ORDER BY seq DESC LIMIT 1",
        &[&pattern],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The detail of the newest `policy.loaded` event, if any (a scan from the log's end,
/// made with [`policy_recorded`]).
pub fn newest_policy_event(tx: &Tx<'_>) -> Result<Option<String>, StoreError> {
    tx.opt(
        "SELECT detail FROM audit WHERE action = 'policy.loaded' ORDER BY seq DESC LIMIT 1",
        &[],
        |r| r.get(0),
    )
}

/// The newest event's sequence number (0 for an empty log).
pub fn last_seq(tx: &Tx<'_>) -> Result<i64, StoreError> {
    // NOT INDEXED (here and in the scans `audit verify` makes): no hash covers an index,
    // and one someone rewrote or added could hide rows; the table's own key cannot.
    tx.one(
        "SELECT coalesce(max(seq), 0) FROM audit NOT INDEXED",
        &[],
        |r| r.get(0),
    )
}

/// Stores one event, already hashed by the caller.
pub fn insert(tx: &Tx<'_>, row: &RowRef<'_>) -> Result<(), StoreError> {
    // The sequence number is the chain head's plus one, under the write lock, so the
    // row cannot clash: sent without waiting (`Tx::put`).
    tx.put_touching(
        "INSERT INTO audit (seq, at, actor, action, request_id, serial, detail, prev_hash, \
         hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &[
            &row.fields.seq,
            &row.fields.at,
            &row.fields.actor,
            &row.fields.action,
            &row.fields.request_id,
            &row.fields.serial,
            &row.fields.detail,
            &row.prev_hash,
            &row.hash,
        ],
        // Nothing a read sent ahead reads (`store/ahead.rs`): the chain's head is read
        // under the lock with the BEGIN.
        Some(&[]),
    )?;
    tx.set_audit_head(row.fields.seq, row.hash);
    Ok(())
}

/// Events matching `filter`, in sequence order.
pub fn query(tx: &Tx<'_>, filter: &Filter) -> Result<Vec<Row>, StoreError> {
    // One statement per shape of filter, so that the serial and request indexes serve
    // it (a `?2 IS NULL OR ...` condition made SQLite scan the whole log). Every shape
    // binds the same six values, each used at least once.
    let select = "SELECT seq, at, actor, action, request_id, serial, detail, prev_hash, hash \
                  FROM audit WHERE seq > ?1";
    let rest = "AND (CAST(?6 AS TEXT) IS NULL OR at >= ?6) ORDER BY seq LIMIT ?4";
    let sql = match (&filter.serial, &filter.request_id) {
        (Some(_), _) => format!(
            "{select} AND (serial = ?2 \
             OR request_id = (SELECT request_id FROM certificates WHERE serial = ?5)) \
             AND (CAST(?3 AS TEXT) IS NULL OR request_id = ?3) {rest}"
        ),
        (None, Some(_)) => format!(
            "{select} AND request_id = ?3 AND CAST(?2 AS TEXT) IS NULL \
             AND CAST(?5 AS BIGINT) IS NULL {rest}"
        ),
        (None, None) => format!(
            "{select} AND CAST(?2 AS TEXT) IS NULL AND CAST(?3 AS TEXT) IS NULL \
             AND CAST(?5 AS BIGINT) IS NULL {rest}"
        ),
    };
    tx.all(
        &sql,
        &[
            &filter.after_seq,
            &filter.serial.map(|s| s.to_string()),
            &filter.request_id.as_ref().map(RequestId::as_str),
            &i64::from(filter.limit),
            &filter.serial.and_then(Serial::to_stored),
            &filter
                .since
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ],
        |r| {
            Ok(Row {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                request_id: r.get(4)?,
                serial: r.get(5)?,
                detail: r.get(6)?,
                prev_hash: r.get(7)?,
                hash: r.get(8)?,
            })
        },
    )
}

/// Calls `each` with the stored events `lo..=hi` in sequence order, borrowed; stops at
/// the first error `each` returns. A field that is not text (a hand-edited row) is a
/// storage error.
pub fn scan<E: From<StoreError>>(
    tx: &Tx<'_>,
    lo: i64,
    hi: i64,
    mut each: impl FnMut(RowRef<'_>) -> Result<(), E>,
) -> Result<(), E> {
    // A page at a time, so that a long log is never held in memory whole (PostgreSQL
    // hands a query's rows over all at once).
    // Bounded by the log's newest event, so that an open end (i64::MAX) ends.
    let hi = hi.min(last_seq(tx)?);
    let mut from = lo;
    while from <= hi {
        let to = hi.min(from.saturating_add(SCAN_PAGE - 1));
        tx.each(
            "SELECT seq, at, actor, action, request_id, serial, detail, prev_hash, hash \
             FROM audit NOT INDEXED WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
            &[&from, &to],
            |row| {
                let required =
                    |i: usize| -> Result<&str, StoreError> { Ok(row.text(i)?.unwrap_or_default()) };
                each(RowRef {
                    fields: Fields {
                        seq: row.get(0)?,
                        at: required(1)?,
                        actor: required(2)?,
                        action: required(3)?,
                        request_id: row.text(4)?,
                        serial: row.text(5)?,
                        detail: required(6)?,
                    },
                    prev_hash: required(7)?,
                    hash: required(8)?,
                })
            },
        )?;
        if to == i64::MAX {
            break;
        }
        from = to + 1;
    }
    Ok(())
}

/// Rows a scan reads per statement.
const SCAN_PAGE: i64 = 10_000;

/// One `host.*` event, for the host half of the issuance check.
#[derive(Debug, Clone, Copy)]
pub struct HostRef<'a> {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// `host.token_created`, `host.enrolled` or `host.renewed`.
    pub action: &'a str,
    /// The event's fields as stored JSON text.
    pub detail: &'a str,
    /// When it was recorded (RFC 3339).
    pub at: &'a str,
}

/// Calls `each` with every event up to `last_seq` that makes a host join token or a
/// host certificate, in sequence order (whatever request it names, if any):
/// `through_index`, read through their own index (a few rows), else from the whole table
/// (every row). No hash covers an index: the caller compares what it read with what the
/// hashed rows showed, and reads the table when they differ.
pub fn scan_hosts<E: From<StoreError>>(
    tx: &Tx<'_>,
    last_seq: i64,
    through_index: bool,
    mut each: impl FnMut(HostRef<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let sql = if through_index {
        // The index holds every `host.*` event (its condition is the first test here).
        "SELECT seq, action, detail, at FROM audit INDEXED BY audit_hosts \
         WHERE substr(action, 1, 5) = 'host.' AND seq >= ?1 AND seq <= ?2 \
         AND action IN ('host.token_created', 'host.enrolled', 'host.renewed') ORDER BY seq"
    } else {
        "SELECT seq, action, detail, at FROM audit NOT INDEXED \
         WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq"
    };
    let newest = last_seq.min(self::last_seq(tx)?);
    let mut from = 1;
    while from <= newest {
        let to = newest.min(from.saturating_add(SCAN_PAGE - 1));
        tx.each(sql, &[&from, &to], |row| {
            let action = row.text(1)?.unwrap_or_default();
            if !is_host_action(action) {
                return Ok(());
            }
            each(HostRef {
                seq: row.get(0)?,
                action,
                detail: row.text(2)?.unwrap_or_default(),
                at: row.text(3)?.unwrap_or_default(),
            })
        })?;
        if to == i64::MAX {
            break;
        }
        from = to + 1;
    }
    Ok(())
}

/// Whether `action` makes a host join token or a host certificate.
pub fn is_host_action(action: &str) -> bool {
    matches!(
        action,
        "host.token_created" | "host.enrolled" | "host.renewed"
    )
}

/// Whether `request` began (`request.created` or `breakglass.used`) at a sequence number
/// in `from..before`, read from the rows themselves, every one of them in order (an
/// index could hide one: none is used), so rarely: when a cheaper answer said "maybe".
pub fn began_in_rows(
    tx: &Tx<'_>,
    request: &str,
    from: i64,
    before: i64,
) -> Result<bool, StoreError> {
    let mut expected = from;
    let mut began = false;
    while expected < before {
        let (page, to) = (expected, before.min(expected.saturating_add(SCAN_PAGE)));
        tx.each(
            "SELECT seq, request_id, action FROM audit NOT INDEXED \
             WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            &[&page, &to],
            |row| {
                let seq: i64 = row.get(0)?;
                if seq != expected {
                    return Err(missing(expected));
                }
                expected += 1;
                began |= row.text(1)? == Some(request)
                    && matches!(row.text(2)?, Some("request.created" | "breakglass.used"));
                Ok(())
            },
        )?;
        if expected < to {
            return Err(missing(expected));
        }
    }
    Ok(began)
}

fn missing(seq: i64) -> StoreError {
    StoreError::Corrupt(format!("audit event {seq} missing from a read in order"))
}
