//! Requests and approvals: rows and the queries over them.
//!
//! Values read back are parsed into the same types as input; a row that does not parse is
//! reported as corrupt instead of being trusted.

//! The rows and their parsing are in `requests/row.rs`, the list queries (paged, by what
//! a user may see) in `requests/list.rs`, and the role-conflict probes in
//! `requests/holdings.rs`.

mod holdings;
mod list;
mod row;

use super::sql::corrupt;
use super::{StoreError, Tx};
use crate::names::{RequestId, UserName};
use row::{REQUEST_COLUMNS, request_from_row};

pub use holdings::{Asking, Held, holdings, revoked_hold_lifts};
pub use list::{Cursor, list, list_visible};
pub use row::{ApprovalRow, RequestRow, Status};

/// Stores a new pending request.
pub fn insert(tx: &Tx<'_>, r: &RequestRow) -> Result<(), StoreError> {
    let principals =
        serde_json::to_string(&r.principals).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.put(
        &format!(
            "INSERT INTO requests ({REQUEST_COLUMNS}) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"
        ),
        &[
            &r.id.as_str(),
            &r.role.as_str(),
            &r.requester.as_str(),
            &r.reason,
            &r.ttl_seconds,
            &r.public_key,
            &r.key_fingerprint,
            &principals,
            &r.role_digest,
            &r.status.as_str(),
            &r.created_at,
            &r.expires_at,
            &r.decided_at,
            &r.decided_by,
            &r.decision_code,
            &r.decision_note,
        ],
    )?;
    Ok(())
}

/// Whether an id is already taken.
pub fn exists(tx: &Tx<'_>, id: &RequestId) -> Result<bool, StoreError> {
    let n: i64 = tx.one(
        "SELECT count(*) FROM requests WHERE id = ?1",
        &[&id.as_str()],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// What creating a request checks, read in one round trip of the write transaction:
/// whether `user` is disabled, how many of their requests are pending
/// ([`pending_count`]), whether the id `candidate` is taken ([`exists`]), and which of
/// the roles asked about they hold or have asked for ([`holdings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateChecks {
    /// `user` is disabled.
    pub disabled: bool,
    /// `user`'s pending requests not yet past their deadline.
    pub pending: u32,
    /// The candidate id is taken.
    pub id_taken: bool,
    /// The roles asked about that `user` holds or has asked for.
    pub holdings: Vec<crate::names::RoleName>,
}

/// [`CreateChecks`] of `user` at `now` (with `held` and the rival `roles` for the
/// holdings) and the id `candidate`.
pub fn create_checks(
    tx: &Tx<'_>,
    (user, now, held): (&UserName, i64, Held),
    roles: &[&crate::names::RoleName],
    candidate: &RequestId,
) -> Result<CreateChecks, StoreError> {
    let mut read = None;
    let holdings = holdings::holdings_and(
        tx,
        (user, now, held, None),
        roles,
        &[(
            "SELECT EXISTS (SELECT 1 FROM disabled_users WHERE \"user\" = ?1), \
             (SELECT count(*) FROM requests INDEXED BY requests_pending \
              WHERE requester = ?1 AND status = 'pending' AND expires_at > ?2), \
             EXISTS (SELECT 1 FROM requests WHERE id = ?3)",
            &[&user.as_str(), &now, &candidate.as_str()],
        )],
        |_, r| {
            let pending: i64 = r.get(1)?;
            read = Some((r.get(0)?, pending, r.get(2)?));
            Ok(())
        },
    )?;
    let Some((disabled, pending, id_taken)) = read else {
        return Err(StoreError::Corrupt(
            "the create checks returned no row".into(),
        ));
    };
    Ok(CreateChecks {
        disabled,
        pending: u32::try_from(pending).unwrap_or(u32::MAX),
        id_taken,
        holdings,
    })
}

/// [`holdings`] of `user` in `roles`, and whether `serial` was ever used
/// ([`serial_taken`](super::certificates::serial_taken)): what signing checks, read in
/// one round trip.
pub fn holdings_and_serial_taken(
    tx: &Tx<'_>,
    asking: Asking<'_>,
    roles: &[&crate::names::RoleName],
    serial: crate::names::Serial,
) -> Result<(Vec<crate::names::RoleName>, bool), StoreError> {
    let Some(stored) = serial.to_stored() else {
        return Ok((
            holdings(tx, asking.0, asking.1, asking.2, asking.3, roles)?,
            true,
        ));
    };
    let mut taken = false;
    let held = holdings::holdings_and(
        tx,
        asking,
        roles,
        &[(super::certificates::SERIAL_TAKEN, &[&stored])],
        |_, row| {
            let n: i64 = row.get(0)?;
            taken = n > 0;
            Ok(())
        },
    )?;
    Ok((held, taken))
}

/// A request read together with two disabled marks (one round trip): `actor`'s (who
/// asks to act on it) and its requester's.
#[derive(Debug, Clone)]
pub struct Marked {
    /// The request.
    pub row: RequestRow,
    /// The actor is disabled.
    pub actor_disabled: bool,
    /// Its requester is disabled.
    pub requester_disabled: bool,
}

/// The query of [`get_marked`]: ?1 the request id, ?2 the actor.
fn get_marked_sql() -> String {
    format!(
        "SELECT {REQUEST_COLUMNS}, \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = ?2), \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = requests.requester) \
         FROM requests WHERE id = ?1"
    )
}

fn marked_from_row(r: &super::sql::Row<'_>) -> Result<Marked, StoreError> {
    Ok(Marked {
        row: request_from_row(r)?,
        actor_disabled: r.get(16)?,
        requester_disabled: r.get(17)?,
    })
}

/// The request with this id and the disabled marks of `actor` and its requester.
pub fn get_marked(
    tx: &Tx<'_>,
    id: &RequestId,
    actor: &UserName,
) -> Result<Option<Marked>, StoreError> {
    tx.opt(
        &get_marked_sql(),
        &[&id.as_str(), &actor.as_str()],
        marked_from_row,
    )
}

/// [`get_marked`] and the request's [`approvals`], read together (one round trip on
/// PostgreSQL); the approvals are empty when there is no such request.
pub fn get_marked_with_approvals(
    tx: &Tx<'_>,
    id: &RequestId,
    actor: &UserName,
) -> Result<Option<(Marked, Vec<ApprovalRow>)>, StoreError> {
    let (mut marked, mut approvals) = (None, Vec::new());
    tx.each_of(
        &[
            (&get_marked_sql(), &[&id.as_str(), &actor.as_str()]),
            (approvals_sql(tx), &[&id.as_str()]),
        ],
        |i, row| {
            if i == 0 {
                marked = Some(marked_from_row(row)?);
            } else {
                approvals.push(approval_from_row(row)?);
            }
            Ok::<_, StoreError>(())
        },
    )?;
    Ok(marked.map(|m| (m, approvals)))
}

/// How many of `user`'s requests are pending and not yet past their deadline at `now`
/// (one past it is expired, whether or not the sweep has recorded it): the partial index
/// of pending requests.
pub fn pending_count(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<u32, StoreError> {
    let n: i64 = tx.one(
        "SELECT count(*) FROM requests INDEXED BY requests_pending \
         WHERE requester = ?1 AND status = 'pending' AND expires_at > ?2",
        &[&user.as_str(), &now],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The request with this id.
pub fn get(tx: &Tx<'_>, id: &RequestId) -> Result<Option<RequestRow>, StoreError> {
    tx.opt(
        &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
        &[&id.as_str()],
        request_from_row,
    )
}

/// Pending requests whose deadline has passed.
pub fn overdue(tx: &Tx<'_>, now: i64) -> Result<Vec<RequestRow>, StoreError> {
    tx.all(
        &format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE status = 'pending' AND expires_at <= ?1"
        ),
        &[&now],
        request_from_row,
    )
}

/// The pending, not yet overdue requests of `user` (from the index of pending requests).
pub fn pending_of(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<Vec<RequestRow>, StoreError> {
    tx.all(
        &format!(
            "SELECT {REQUEST_COLUMNS} FROM requests INDEXED BY requests_pending \
             WHERE requester = ?1 AND status = 'pending' AND expires_at > ?2"
        ),
        &[&user.as_str(), &now],
        request_from_row,
    )
}

/// How a pending request ends.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The status it ends in (never `pending`).
    pub status: Status,
    /// When (unix seconds).
    pub at: i64,
    /// Who ended it (a user, or the CA itself).
    pub by: &'a str,
    /// The public code of the ending (`denied`, `cancelled`, a refusal's code).
    pub code: Option<&'a str>,
    /// The reason or message that came with it.
    pub note: Option<&'a str>,
}

/// Ends a pending request. Returns false if it was no longer pending (the caller lost a
/// race and must not act on it).
pub fn decide(tx: &Tx<'_>, id: &RequestId, d: &Decision<'_>) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE requests SET status = ?2, decided_at = ?3, decided_by = ?4, \
         decision_code = ?5, decision_note = ?6 WHERE id = ?1 AND status = 'pending'",
        &[
            &id.as_str(),
            &d.status.as_str(),
            &d.at,
            &d.by,
            &d.code,
            &d.note,
        ],
    )?;
    Ok(n == 1)
}

/// Records one approval.
pub fn insert_approval(
    tx: &Tx<'_>,
    id: &RequestId,
    approver: &UserName,
    at: i64,
    comment: Option<&str>,
) -> Result<(), StoreError> {
    tx.put(
        "INSERT INTO approvals (request_id, approver, at, comment) VALUES (?1, ?2, ?3, ?4)",
        &[&id.as_str(), &approver.as_str(), &at, &comment],
    )?;
    Ok(())
}

/// The query of [`approvals`]: ?1 the request id.
fn approvals_sql(tx: &Tx<'_>) -> &'static str {
    // Ties in time keep insertion order: SQLite's rowid, PostgreSQL's identity column.
    if tx.is_postgres() {
        "SELECT approver, at, comment FROM approvals WHERE request_id = ?1 ORDER BY at, id"
    } else {
        "SELECT approver, at, comment FROM approvals WHERE request_id = ?1 ORDER BY at, rowid"
    }
}

fn approval_from_row(r: &super::sql::Row<'_>) -> Result<ApprovalRow, StoreError> {
    let approver: String = r.get(0)?;
    Ok(ApprovalRow {
        approver: UserName::parse(&approver).map_err(|e| corrupt("approver", &approver, e))?,
        at: r.get(1)?,
        comment: r.get(2)?,
    })
}

/// Approvals of a request, oldest first.
pub fn approvals(tx: &Tx<'_>, id: &RequestId) -> Result<Vec<ApprovalRow>, StoreError> {
    tx.all(approvals_sql(tx), &[&id.as_str()], approval_from_row)
}
