//! The append-only, hash-chained audit log.
//!
//! Each event's `hash` is SHA-256 over the previous event's hash and the event's canonical
//! form (a JSON array of seq, at, actor, action, request_id, serial, detail), so editing,
//! deleting or reordering any event breaks every hash after it. Triggers refuse UPDATE and
//! DELETE; [`verify`] recomputes the whole chain, and checks that every
//! `certificate.issued` event is preceded by its request and its approvals (see
//! `issuance.rs`). Events are appended inside the same transaction as the state change
//! they describe.

mod event;
mod issuance;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::store::audit::Filter;
use crate::store::audit::{self as stored, RowRef};
use crate::store::{Store, StoreError, Tx};

/// `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Actor recorded for things the CA does by itself (expiring requests).
pub const SYSTEM_ACTOR: &str = "countersign";

pub use event::*;

/// An event to append: who did what, and the request and certificate it concerns.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Who did it (a user name, or [`SYSTEM_ACTOR`]).
    pub actor: &'a str,
    /// The request it concerns.
    pub request_id: Option<&'a str>,
    /// The certificate serial it concerns.
    pub serial: Option<u64>,
    /// What happened: the stored action and detail.
    pub event: AuditEvent,
}

/// A stored event, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Event {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub request_id: Option<String>,
    /// Decimal string: serials are 64-bit and JSON numbers are not.
    pub serial: Option<String>,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// The typed event, if this version knows its action and its detail parses.
    pub fn parsed(&self) -> Option<AuditEvent> {
        AuditEvent::parse(&self.action, &self.detail)
    }
}

/// The chain is broken at `seq`.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A stored event does not match its hash or its predecessor.
    #[error("audit log broken at event {seq}: {why}")]
    Broken { seq: i64, why: String },
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Number of events.
    pub events: i64,
    /// Hash of the newest event (the head).
    pub head: String,
}

/// The hashed fields of one event, borrowed; `detail` is the stored JSON text.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub request_id: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub detail: &'a str,
}

impl Fields<'_> {
    /// SHA-256 over the previous hash, a newline, and this event's canonical form: the
    /// compact JSON array `[seq, at, actor, action, request_id, serial, detail]`.
    pub fn hash(&self, prev_hash: &str) -> String {
        hex::encode(self.digest(prev_hash, &mut Vec::new()))
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
            seq: fields.seq,
            at: &at,
            actor: fields.actor,
            action: fields.action,
            request_id: fields.request_id,
            serial: fields.serial,
            detail: fields.detail,
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

/// Recomputes the whole chain, then checks that every `certificate.issued` event is
/// preceded by its request and approvals; the error names the first bad event.
pub fn verify(tx: &Tx<'_>) -> Result<Verified, AuditError> {
    let span = verify_span(tx, 1, i64::MAX, Some(GENESIS))?;
    issuance::check(tx, span.events)?;
    Ok(Verified {
        events: span.events,
        head: span.last_hash,
    })
}

/// [`verify`] over a store, with the chain cut into ranges checked on several threads
/// (each event can be checked from its own stored `prev_hash`; only the links between
/// ranges are checked afterwards). Events appended meanwhile are not looked at.
pub fn verify_store(store: &Store) -> Result<Verified, AuditError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    verify_parallel(store, threads, 20_000)
}

/// [`verify_store`] with the number of threads, and the chain length below which one
/// thread does it all.
fn verify_parallel(store: &Store, threads: usize, min_events: i64) -> Result<Verified, AuditError> {
    let last = store.read(stored::last_seq)?;
    let threads = threads as i64;
    if threads < 2 || last < min_events.max(1) {
        return store.read(verify);
    }
    let per = last / threads + 1;
    // A short chain can leave the last range empty; an empty range has no link to check.
    let ranges: Vec<(i64, i64)> = (0..threads)
        .map(|i| (i * per + 1, ((i + 1) * per).min(last)))
        .filter(|(lo, hi)| lo <= hi)
        .collect();
    let (spans, issuances) = std::thread::scope(|scope| {
        // The issuance check needs the chain in order, so it runs alongside the ranges.
        let issuances = scope.spawn(move || store.read(|c| issuance::check(c, last)));
        let handles: Vec<_> = ranges
            .iter()
            .map(|&(lo, hi)| {
                let first = (lo == 1).then_some(GENESIS);
                scope.spawn(move || store.read(|c| verify_span(c, lo, hi, first)))
            })
            .collect();
        let panicked = || AuditError::Broken {
            seq: 0,
            why: "verifier thread panicked".into(),
        };
        let spans: Vec<Result<Span, AuditError>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked())))
            .collect();
        (spans, issuances.join().unwrap_or_else(|_| Err(panicked())))
    });
    // A broken hash chain is reported first: what it says of issuances is not evidence.
    let verified = first_break(&ranges, spans)?;
    issuances?;
    Ok(verified)
}

/// Joins range results: the earliest broken event wins, including broken links between
/// ranges; a storage error is returned as is.
fn first_break(
    ranges: &[(i64, i64)],
    spans: Vec<Result<Span, AuditError>>,
) -> Result<Verified, AuditError> {
    let mut earliest: Option<AuditError> = None;
    let mut keep = |e: AuditError| match (&earliest, &e) {
        (Some(AuditError::Broken { seq: old, .. }), AuditError::Broken { seq: new, .. })
            if old <= new => {}
        _ => earliest = Some(e),
    };
    let mut prev: Option<&Span> = None;
    let mut events = 0;
    for (i, span) in spans.iter().enumerate() {
        match span {
            Err(AuditError::Store(_)) => {
                return Err(spans.into_iter().nth(i).and_then(Result::err).unwrap_or(
                    AuditError::Broken {
                        seq: 0,
                        why: "storage".into(),
                    },
                ));
            }
            Err(AuditError::Broken { seq, why }) => keep(AuditError::Broken {
                seq: *seq,
                why: why.clone(),
            }),
            Ok(s) => {
                if let Some(p) = prev
                    && s.first_prev != p.last_hash
                {
                    keep(AuditError::Broken {
                        seq: ranges[i].0,
                        why: "prev_hash does not match the previous event's hash".into(),
                    });
                }
                events += s.events;
            }
        }
        prev = span.as_ref().ok();
    }
    match (earliest, spans.last()) {
        (Some(e), _) => Err(e),
        (None, Some(Ok(last))) => Ok(Verified {
            events,
            head: last.last_hash.clone(),
        }),
        (None, _) => Ok(Verified {
            events: 0,
            head: GENESIS.to_owned(),
        }),
    }
}

/// One verified range of the chain.
struct Span {
    /// `prev_hash` of its first event.
    first_prev: String,
    /// `hash` of its last event.
    last_hash: String,
    /// Events in it.
    events: i64,
}

/// Checks events `lo..=hi`, all of which must exist (up to the end when `hi` is
/// `i64::MAX`); `expected_prev`, when given, must be the first event's `prev_hash`.
fn verify_span(
    tx: &Tx<'_>,
    lo: i64,
    hi: i64,
    expected_prev: Option<&str>,
) -> Result<Span, AuditError> {
    let mut expected_prev: Option<String> = expected_prev.map(str::to_owned);
    let mut first_prev: Option<String> = None;
    let mut expected_seq = lo;
    let mut buf = Vec::with_capacity(1024);
    let mut hex_buf = [0u8; 64];
    stored::scan(tx, lo, hi, |row| {
        let seq = row.seq;
        let broken = |why: &str| AuditError::Broken {
            seq,
            why: why.to_owned(),
        };
        if seq != expected_seq {
            return Err(AuditError::Broken {
                seq: expected_seq,
                why: format!("event missing (next stored event is {seq})"),
            });
        }
        if expected_prev.as_deref().is_some_and(|p| p != row.prev_hash) {
            return Err(broken("prev_hash does not match the previous event's hash"));
        }
        if first_prev.is_none() {
            first_prev = Some(row.prev_hash.to_owned());
        }
        let fields = Fields {
            seq,
            at: row.at,
            actor: row.actor,
            action: row.action,
            request_id: row.request_id,
            serial: row.serial,
            detail: row.detail,
        };
        let digest = fields.digest(row.prev_hash, &mut buf);
        // Encoding 32 bytes into a 64-byte buffer cannot fail.
        let _ = hex::encode_to_slice(digest, &mut hex_buf);
        if row.hash.as_bytes() != hex_buf {
            return Err(broken(
                "content does not match its hash (the event was altered)",
            ));
        }
        let next = expected_prev.get_or_insert_with(String::new);
        next.clear();
        next.push_str(row.hash);
        expected_seq += 1;
        Ok(())
    })?;
    if hi != i64::MAX && expected_seq <= hi {
        return Err(AuditError::Broken {
            seq: expected_seq,
            why: "event missing".into(),
        });
    }
    let events = expected_seq - lo;
    let genesis = || GENESIS.to_owned();
    Ok(Span {
        first_prev: first_prev.unwrap_or_else(genesis),
        last_hash: if events == 0 {
            genesis()
        } else {
            expected_prev.unwrap_or_else(genesis)
        },
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Appends an event of `action` about one request, as `actor`.
    fn add(
        tx: &Tx<'_>,
        actor: &str,
        action: &str,
        serial: Option<u64>,
        detail: serde_json::Value,
    ) -> Result<i64, StoreError> {
        append_forged(tx, actor, action, Some("r-aaaaaaaaaaaa"), serial, &detail)
    }

    #[test]
    fn canonical_form_is_serde_jsons_compact_array() {
        let tricky =
            "quote \" backslash \\ newline \n tab \t nul \u{0} bidi \u{202e} emoji 🙂 </script>";
        for (request_id, serial) in [(Some("r-aaaaaaaaaaaa"), Some("881")), (None, None)] {
            let f = Fields {
                seq: 42,
                at: "2026-11-28T00:00:00.000Z",
                actor: tricky,
                action: "a.b",
                request_id,
                serial,
                detail: r#"{"k":"v\"x"}"#,
            };
            let mut buf = Vec::new();
            f.canonical(&mut buf);
            let expected = serde_json::json!([
                f.seq,
                f.at,
                f.actor,
                f.action,
                f.request_id,
                f.serial,
                f.detail
            ])
            .to_string();
            assert_eq!(String::from_utf8(buf).unwrap(), expected);
        }
    }

    fn chain_of(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .write(|tx| {
                for _ in 0..n {
                    add(
                        tx,
                        "alice",
                        "request.created",
                        None,
                        serde_json::json!({"role": "prod-db"}),
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        (dir, store)
    }

    fn tamper(store: &Store, sql: &str) {
        store
            .write(|tx| {
                tx.tamper(&format!(
                    "DROP TRIGGER IF EXISTS audit_no_update; \
                     DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
                ))
            })
            .unwrap();
    }

    fn broken_at(r: Result<Verified, AuditError>) -> i64 {
        match r {
            Err(AuditError::Broken { seq, .. }) => seq,
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn parallel_verify_agrees_with_the_sequential_one() {
        let (_dir, store) = chain_of(100);
        let seq = store.read(verify).unwrap();
        for threads in [2, 3, 4] {
            assert_eq!(verify_parallel(&store, threads, 0).unwrap(), seq);
        }
        // An edit inside a range, at a range's first event, and a removed event.
        tamper(&store, "UPDATE audit SET actor = 'x' WHERE seq = 60;");
        assert_eq!(broken_at(verify_parallel(&store, 3, 0)), 60);
        tamper(&store, "UPDATE audit SET actor = 'y' WHERE seq = 35;");
        assert_eq!(
            broken_at(verify_parallel(&store, 3, 0)),
            35,
            "range 2 starts at 35: its first event"
        );
        tamper(&store, "DELETE FROM audit WHERE seq = 10;");
        assert_eq!(
            broken_at(verify_parallel(&store, 3, 0)),
            10,
            "the earliest break wins"
        );
    }

    #[test]
    fn parallel_verify_catches_a_rewritten_chain_at_a_range_boundary() {
        let (_dir, store) = chain_of(90);
        // Rewrite event 32 (the first of range 2 when 3 threads split 90 events as
        // 1-31, 32-62, 63-90) and every later one consistently: each range on its own
        // verifies, only the link between ranges 1 and 2 breaks.
        let filter = Filter {
            after_seq: 31,
            limit: u32::MAX,
            ..Filter::default()
        };
        let rows = store.read(|tx| stored::query(tx, &filter)).unwrap();
        let mut prev = "f".repeat(64);
        let mut sql = String::new();
        for row in rows {
            let seq = row.seq;
            let h = Fields {
                seq,
                at: &row.at,
                actor: &row.actor,
                action: &row.action,
                request_id: row.request_id.as_deref(),
                serial: row.serial.as_deref(),
                detail: &row.detail,
            }
            .hash(&prev);
            sql.push_str(&format!(
                "UPDATE audit SET prev_hash = '{prev}', hash = '{h}' WHERE seq = {seq};"
            ));
            prev = h;
        }
        tamper(&store, &sql);
        assert_eq!(broken_at(store.read(verify)), 32);
        assert_eq!(broken_at(verify_parallel(&store, 3, 0)), 32);
    }

    #[test]
    fn chain_verifies_and_an_edited_event_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .write(|tx| {
                let role = serde_json::json!({"role": "prod-db"});
                add(tx, "alice", "request.created", None, role.clone())?;
                add(tx, "bob", "request.approved", None, role)?;
                let issued = serde_json::json!({
                    "requester": "alice", "approvals": [{"approver": "bob", "step": 1}],
                });
                add(tx, "bob", "certificate.issued", Some(881), issued)?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let v = store.read(verify).unwrap();
        assert_eq!(v.events, 3);

        let err = store.write(|tx| tx.tamper("UPDATE audit SET actor = 'mallory' WHERE seq = 2"));
        assert!(err.is_err(), "the trigger must refuse updates");

        store
            .write(|tx| {
                tx.tamper(
                    "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 2;",
                )
            })
            .unwrap();
        match store.read(verify) {
            Err(AuditError::Broken { seq: 2, .. }) => {}
            other => panic!("expected event 2 to be named, got {other:?}"),
        }
    }
}
