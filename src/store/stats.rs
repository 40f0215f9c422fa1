//! Counts the metrics read at scrape time (`GET /metrics`).

use super::{StoreError, Tx};

/// Pending requests by role, unexpired at `now` (unix seconds), roles in order: the
/// role, how many, and when the oldest was made (unix seconds).
pub fn pending_by_role(tx: &Tx<'_>, now: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let mut out = Vec::new();
    tx.each::<StoreError>(
        "SELECT role, count(*), min(created_at) FROM requests \
         WHERE status = 'pending' AND expires_at > ?1 GROUP BY role ORDER BY role",
        &[&now],
        |r| {
            out.push((r.get(0)?, r.get(1)?, r.get(2)?));
            Ok(())
        },
    )?;
    Ok(out)
}

/// Sign-in sessions neither revoked nor expired at `now` (unix seconds).
pub fn active_sessions(tx: &Tx<'_>, now: i64) -> Result<i64, StoreError> {
    tx.one(
        "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1",
        &[&now],
        |r| r.get(0),
    )
}
