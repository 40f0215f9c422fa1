//! The notification outbox: one row per event and sink, written in the transaction of
//! the change it tells of, delivered at least once by the dispatcher (`daemon/notify.rs`),
//! claimed with a lease so that of several replicas one delivers each.

use super::{StoreError, Tx};

/// The most characters of a failure's text kept.
const MAX_ERROR: usize = 300;

/// A delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's id, the same for every sink and every try (`msg_...`).
    pub event_id: String,
    /// The sink's name.
    pub sink: String,
    /// The event (`request.created`, ...).
    pub event: String,
    /// Its JSON, as the sink will be sent it (before the sink's own format).
    pub payload: String,
    /// When it was written (Unix seconds).
    pub created_at: i64,
    /// Tries so far.
    pub attempts: i64,
    /// This claim's token: an outcome is recorded only while the row still carries it
    /// (a claim that outlived its lease, taken over by another, records nothing).
    pub claim: String,
}

/// A new row: an event for one sink.
#[derive(Debug, Clone, Copy)]
pub struct NewDelivery<'a> {
    /// The event's id.
    pub event_id: &'a str,
    /// The sink's name.
    pub sink: &'a str,
    /// The event.
    pub event: &'a str,
    /// Its JSON.
    pub payload: &'a str,
}

/// Writes `delivery`, due at `now`.
pub fn enqueue(tx: &Tx<'_>, d: &NewDelivery<'_>, now: i64) -> Result<(), StoreError> {
    // A new row (a fresh event id): nothing to read back, pipelined on PostgreSQL.
    tx.put_touching(
        "INSERT INTO notify_outbox (event_id, sink, event, payload, created_at, next_at, \
         attempts, status) VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0, 'pending')",
        &[&d.event_id, &d.sink, &d.event, &d.payload, &now],
        // Nothing a read sent ahead reads (`store/ahead.rs`).
        Some(&[]),
    )
}

/// Whether a delivery to one of `sinks` is due at `now` and free (a read: the
/// dispatcher takes the write lock only when there is something to claim).
pub fn any_due(tx: &Tx<'_>, now: i64, sinks: &[&str]) -> Result<bool, StoreError> {
    if sinks.is_empty() {
        return Ok(false);
    }
    let (list, mut params) = sink_list(sinks, 2);
    params.insert(0, &now);
    tx.one(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM notify_outbox WHERE status = 'pending' \
             AND next_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1) \
             AND sink IN ({list}))"
        ),
        &params,
        |r| r.get(0),
    )
}

/// `?K, ?K+1, ...` for `sinks`, and the sinks as parameters.
fn sink_list<'a>(sinks: &'a [&'a str], first: usize) -> (String, Vec<&'a dyn super::sql::Param>) {
    let list = (first..first + sinks.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let params = sinks.iter().map(|s| s as &dyn super::sql::Param).collect();
    (list, params)
}

/// What a delivery's own updates touch: the outbox only, which no read sent ahead reads
/// (`store/ahead.rs`) and which holds no credential (`store/credentials.rs`).
const OUTBOX_ONLY: Option<&[super::Touch<'_>]> = Some(&[]);

/// Claims up to `limit` deliveries to `sinks` due at `now` that nobody holds, for
/// `lease` seconds, each under the token `claim`.
pub fn claim(
    tx: &Tx<'_>,
    (now, lease): (i64, i64),
    sinks: &[&str],
    limit: i64,
    claim: &str,
) -> Result<Vec<Delivery>, StoreError> {
    if sinks.is_empty() {
        return Ok(Vec::new());
    }
    let lock = if tx.is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let (list, mut params) = sink_list(sinks, 3);
    params.insert(0, &limit);
    params.insert(0, &now);
    let due = tx.all(
        &format!(
            "SELECT event_id, sink, event, payload, created_at, attempts FROM notify_outbox \
             WHERE status = 'pending' AND next_at <= ?1 \
             AND (lease_until IS NULL OR lease_until <= ?1) AND sink IN ({list}) \
             ORDER BY next_at, created_at, event_id, sink LIMIT ?2{lock}"
        ),
        &params,
        |r| {
            Ok(Delivery {
                event_id: r.get(0)?,
                sink: r.get(1)?,
                event: r.get(2)?,
                payload: r.get(3)?,
                created_at: r.get(4)?,
                attempts: r.get(5)?,
                claim: claim.to_owned(),
            })
        },
    )?;
    for d in &due {
        tx.exec_touching(
            "UPDATE notify_outbox SET lease_until = ?3, claim = ?4 \
             WHERE event_id = ?1 AND sink = ?2",
            &[&d.event_id, &d.sink, &(now + lease), &claim],
            OUTBOX_ONLY,
        )?;
    }
    Ok(due)
}

/// Marks delivery `d` made; whether its claim still held (else nothing changed).
pub fn delivered(tx: &Tx<'_>, d: &Delivery, now: i64) -> Result<bool, StoreError> {
    let n = tx.exec_touching(
        "UPDATE notify_outbox SET status = 'delivered', done_at = ?3, lease_until = NULL, \
         claim = NULL, attempts = attempts + 1, last_error = NULL \
         WHERE event_id = ?1 AND sink = ?2 AND status = 'pending' AND claim = ?4",
        &[&d.event_id, &d.sink, &now, &d.claim],
        OUTBOX_ONLY,
    )?;
    Ok(n == 1)
}

/// Puts failed delivery `d` back, due at `next_at`, with why it failed; whether its
/// claim still held (else nothing changed).
pub fn retry_at(tx: &Tx<'_>, d: &Delivery, next_at: i64, error: &str) -> Result<bool, StoreError> {
    let error: String = error.chars().take(MAX_ERROR).collect();
    let n = tx.exec_touching(
        "UPDATE notify_outbox SET next_at = ?3, lease_until = NULL, claim = NULL, \
         attempts = attempts + 1, last_error = ?4 \
         WHERE event_id = ?1 AND sink = ?2 AND status = 'pending' AND claim = ?5",
        &[&d.event_id, &d.sink, &next_at, &error, &d.claim],
        OUTBOX_ONLY,
    )?;
    Ok(n == 1)
}

/// Gives delivery `d` up (`dead`), with why; whether its claim still held (else
/// nothing changed, and nothing is to be recorded of it).
pub fn give_up(tx: &Tx<'_>, d: &Delivery, now: i64, error: &str) -> Result<bool, StoreError> {
    let error: String = error.chars().take(MAX_ERROR).collect();
    let n = tx.exec_touching(
        "UPDATE notify_outbox SET status = 'dead', done_at = ?3, lease_until = NULL, \
         claim = NULL, attempts = attempts + 1, last_error = ?4 \
         WHERE event_id = ?1 AND sink = ?2 AND status = 'pending' AND claim = ?5",
        &[&d.event_id, &d.sink, &now, &error, &d.claim],
        OUTBOX_ONLY,
    )?;
    Ok(n == 1)
}

/// A delivery as `notify status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The event's id.
    pub event_id: String,
    /// The sink's name.
    pub sink: String,
    /// The event.
    pub event: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Tries so far.
    pub attempts: i64,
    /// When it was written (Unix seconds).
    pub created_at: i64,
    /// When it is tried next (pending).
    pub next_at: i64,
    /// Why the last try failed.
    pub last_error: Option<String>,
}

/// The deliveries not delivered (pending and dead), oldest first, at most `limit`.
pub fn undelivered(tx: &Tx<'_>, limit: i64) -> Result<Vec<Listed>, StoreError> {
    tx.all(
        "SELECT event_id, sink, event, status, attempts, created_at, next_at, last_error \
         FROM notify_outbox WHERE status <> 'delivered' \
         ORDER BY created_at, event_id, sink LIMIT ?1",
        &[&limit],
        |r| {
            Ok(Listed {
                event_id: r.get(0)?,
                sink: r.get(1)?,
                event: r.get(2)?,
                status: r.get(3)?,
                attempts: r.get(4)?,
                created_at: r.get(5)?,
                next_at: r.get(6)?,
                last_error: r.get(7)?,
            })
        },
    )
}

/// How many deliveries are pending and dead.
pub fn counts(tx: &Tx<'_>) -> Result<(i64, i64), StoreError> {
    tx.one(
        "SELECT (SELECT count(*) FROM notify_outbox WHERE status = 'pending'), \
         (SELECT count(*) FROM notify_outbox WHERE status = 'dead')",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Re-arms the dead deliveries of event `event_id` (`None`: of every event; every sink's,
/// or `sink`'s), due at `now` with a fresh start; how many.
pub fn rearm(
    tx: &Tx<'_>,
    event_id: Option<&str>,
    sink: Option<&str>,
    now: i64,
) -> Result<u64, StoreError> {
    tx.exec(
        "UPDATE notify_outbox SET status = 'pending', next_at = ?2, created_at = ?2, \
         attempts = 0, lease_until = NULL, claim = NULL, done_at = NULL \
         WHERE (CAST(?1 AS TEXT) IS NULL OR event_id = ?1) AND status = 'dead' \
         AND (CAST(?3 AS TEXT) IS NULL OR sink = ?3)",
        &[&event_id, &now, &sink],
    )
}

/// Forgets deliveries delivered before `before` (they are on record in the receivers).
pub fn prune(tx: &Tx<'_>, before: i64) -> Result<u64, StoreError> {
    tx.exec(
        "DELETE FROM notify_outbox WHERE status = 'delivered' AND done_at < ?1",
        &[&before],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn an_outcome_is_recorded_only_under_the_claim_that_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let new = NewDelivery {
            event_id: "msg_1",
            sink: "hook",
            event: "request.created",
            payload: "{}",
        };
        store.write(|tx| enqueue(tx, &new, 100)).unwrap();
        let claim_at = |now: i64, sinks: &[&str], token: &str| {
            store
                .write(|tx| claim(tx, (now, 15), sinks, 10, token))
                .unwrap()
        };
        let first = claim_at(100, &["hook"], "a");
        assert_eq!(first.len(), 1);
        // Not claimable again while its lease holds, nor by a replica without the sink.
        assert!(claim_at(110, &["hook"], "b").is_empty());
        assert!(claim_at(200, &["other"], "b").is_empty());
        assert!(!store.read(|tx| any_due(tx, 110, &["hook"])).unwrap());
        // The lease ran out: another claim takes it over, and only its outcome counts.
        let second = claim_at(116, &["hook"], "b");
        assert_eq!(second.len(), 1);
        assert!(
            !store
                .write(|tx| give_up(tx, &first[0], 120, "late"))
                .unwrap()
        );
        assert!(store.write(|tx| delivered(tx, &second[0], 121)).unwrap());
        assert_eq!(store.read(counts).unwrap(), (0, 0));
        assert!(
            !store
                .write(|tx| retry_at(tx, &second[0], 130, "again"))
                .unwrap()
        );
    }
}
