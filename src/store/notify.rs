//! The notification outbox: one row per event and sink, written in the transaction of
//! the change it tells of, delivered at least once by the dispatcher (`daemon/notify.rs`),
//! claimed with a lease so that of several replicas one delivers each.

use super::{StoreError, Tx};

/// How many times a failure's text is kept, at most (bytes).
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
    tx.exec(
        "INSERT INTO notify_outbox (event_id, sink, event, payload, created_at, next_at, \
         attempts, status) VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0, 'pending')",
        &[&d.event_id, &d.sink, &d.event, &d.payload, &now],
    )?;
    Ok(())
}

/// Claims up to `limit` deliveries due at `now` that nobody holds, for `lease` seconds.
pub fn claim(tx: &Tx<'_>, now: i64, lease: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
    let lock = if tx.is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let due = tx.all(
        &format!(
            "SELECT event_id, sink, event, payload, created_at, attempts FROM notify_outbox \
             WHERE status = 'pending' AND next_at <= ?1 \
             AND (lease_until IS NULL OR lease_until <= ?1) \
             ORDER BY next_at, created_at, event_id, sink LIMIT ?2{lock}"
        ),
        &[&now, &limit],
        |r| {
            Ok(Delivery {
                event_id: r.get(0)?,
                sink: r.get(1)?,
                event: r.get(2)?,
                payload: r.get(3)?,
                created_at: r.get(4)?,
                attempts: r.get(5)?,
            })
        },
    )?;
    for d in &due {
        tx.exec(
            "UPDATE notify_outbox SET lease_until = ?3 WHERE event_id = ?1 AND sink = ?2",
            &[&d.event_id, &d.sink, &(now + lease)],
        )?;
    }
    Ok(due)
}

/// Marks a delivery made.
pub fn delivered(tx: &Tx<'_>, event_id: &str, sink: &str, now: i64) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE notify_outbox SET status = 'delivered', done_at = ?3, lease_until = NULL, \
         attempts = attempts + 1, last_error = NULL WHERE event_id = ?1 AND sink = ?2",
        &[&event_id, &sink, &now],
    )?;
    Ok(())
}

/// Puts a failed delivery back, due at `next_at`, with why it failed.
pub fn retry_at(
    tx: &Tx<'_>,
    event_id: &str,
    sink: &str,
    next_at: i64,
    error: &str,
) -> Result<(), StoreError> {
    let error: String = error.chars().take(MAX_ERROR).collect();
    tx.exec(
        "UPDATE notify_outbox SET next_at = ?3, lease_until = NULL, attempts = attempts + 1, \
         last_error = ?4 WHERE event_id = ?1 AND sink = ?2",
        &[&event_id, &sink, &next_at, &error],
    )?;
    Ok(())
}

/// Gives a delivery up (`dead`), with why.
pub fn give_up(
    tx: &Tx<'_>,
    event_id: &str,
    sink: &str,
    now: i64,
    error: &str,
) -> Result<(), StoreError> {
    let error: String = error.chars().take(MAX_ERROR).collect();
    tx.exec(
        "UPDATE notify_outbox SET status = 'dead', done_at = ?3, lease_until = NULL, \
         attempts = attempts + 1, last_error = ?4 WHERE event_id = ?1 AND sink = ?2",
        &[&event_id, &sink, &now, &error],
    )?;
    Ok(())
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

/// Re-arms the dead deliveries of event `event_id` (every sink's, or `sink`'s), due at
/// `now` with a fresh start; how many.
pub fn rearm(tx: &Tx<'_>, event_id: &str, sink: Option<&str>, now: i64) -> Result<u64, StoreError> {
    tx.exec(
        "UPDATE notify_outbox SET status = 'pending', next_at = ?2, created_at = ?2, \
         attempts = 0, lease_until = NULL, done_at = NULL \
         WHERE event_id = ?1 AND status = 'dead' AND (CAST(?3 AS TEXT) IS NULL OR sink = ?3)",
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
