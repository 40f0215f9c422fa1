//! The idempotency keys of `POST /v1/requests`: which request a user's key created, and
//! a fingerprint of what was asked (`migrations.rs`, migration 10).
//!
//! A key is looked up and stored in the transaction that creates the request, so two
//! retries racing with one key create one request (the single writer; a second backend
//! relies on the primary key to make the loser's insert fail, then reads the winner's).

use super::{StoreError, Tx};
use crate::names::{IdempotencyKey, RequestId, UserName};

/// What a key created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// Digest of what was asked (`NewRequest::fingerprint`).
    pub fingerprint: String,
    /// The request the key created.
    pub request_id: RequestId,
}

/// What `user`'s `key` created at or after `since` (unix seconds), if anything.
pub fn lookup(
    tx: &Tx<'_>,
    user: &UserName,
    key: &IdempotencyKey,
    since: i64,
) -> Result<Option<Remembered>, StoreError> {
    let row: Option<(String, String)> = tx.opt(
        "SELECT fingerprint, request_id FROM idempotency_keys \
         WHERE \"user\" = ?1 AND key = ?2 AND created_at >= ?3",
        &[&user.as_str(), &key.as_str(), &since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    row.map(|(fingerprint, id)| {
        let request_id = RequestId::parse(&id)
            .map_err(|e| StoreError::Corrupt(format!("idempotency key's request {id:?}: {e}")))?;
        Ok(Remembered {
            fingerprint,
            request_id,
        })
    })
    .transpose()
}

/// Remembers that `user`'s `key` created `request_id` at `at`, replacing an entry of the
/// key older than `forget_before`; forgets every entry older than that.
pub fn remember(
    tx: &Tx<'_>,
    user: &UserName,
    key: &IdempotencyKey,
    remembered: &Remembered,
    at: i64,
    forget_before: i64,
) -> Result<(), StoreError> {
    // No read sent ahead reads idempotency keys (`store/ahead.rs`): these touch nothing
    // such a read depends on, so the batch's later reads ahead stay good.
    tx.exec_touching(
        "DELETE FROM idempotency_keys WHERE created_at < ?1",
        &[&forget_before],
        Some(&[]),
    )?;
    tx.exec_touching(
        "INSERT INTO idempotency_keys (\"user\", key, fingerprint, request_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            &user.as_str(),
            &key.as_str(),
            &remembered.fingerprint,
            &remembered.request_id.as_str(),
            &at,
        ],
        Some(&[]),
    )?;
    Ok(())
}
