//! Requests and approvals: rows and the queries over them.
//!
//! Values read back are parsed into the same types as input; a row that does not parse is
//! reported as corrupt instead of being trusted.

//! The rows and their parsing are in `requests/row.rs`, the list queries (paged, by what
//! a user may see) in `requests/list.rs`, and the role-conflict probes in
//! `requests/holdings.rs`.

mod holdings;
mod list;
mod marked;
mod row;

use super::sql::{Param, corrupt};
use super::{StoreError, Touch, Tx};
use crate::names::{RequestId, RoleName, UserName};
use row::{REQUEST_COLUMNS, request_from_row};

pub use holdings::{Asking, Held, holdings, revoked_hold_lifts};
pub use list::{Cursor, list, list_from, list_visible, under_review};
pub use marked::{
    Marked, SigningAsk, SigningRead, get_marked, get_marked_with_approvals,
    get_marked_with_certificate,
};
pub use row::{ApprovalRow, RequestRow, Status};

/// Stores a new pending request.
pub fn insert(tx: &Tx<'_>, r: &RequestRow) -> Result<(), StoreError> {
    let principals =
        serde_json::to_string(&r.principals).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.put_touching(
        &format!(
            "INSERT INTO requests ({REQUEST_COLUMNS}) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)"
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
            &r.approvals_required,
        ],
        Some(&[Touch::Request(&r.id), Touch::User(&r.requester)]),
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
    /// Who registered the key asked for, and whether `user` registered any.
    pub key_facts: super::keys::KeyFacts,
}

/// [`CreateChecks`] of `user` at `now` (with `held` and the rival `roles` for the
/// holdings) and the id `candidate`.
pub fn create_checks(
    tx: &Tx<'_>,
    (user, now, held): (&UserName, i64, Held),
    roles: &[&crate::names::RoleName],
    (candidate, key_fingerprint): (&RequestId, &str),
) -> Result<CreateChecks, StoreError> {
    let mut read = None;
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM disabled_users WHERE \"user\" = ?1), \
         (SELECT count(*) FROM requests INDEXED BY requests_pending \
          WHERE requester = ?1 AND status = 'pending' AND expires_at > ?2), \
         EXISTS (SELECT 1 FROM requests WHERE id = ?3), {}",
        super::keys::facts_columns("?4", "?1")
    );
    let holdings = holdings::holdings_and(
        tx,
        (user, now, held, None),
        roles,
        &[(
            &sql,
            &[&user.as_str(), &now, &candidate.as_str(), &key_fingerprint],
        )],
        |_, r| {
            let pending: i64 = r.get(1)?;
            read = Some((
                r.get(0)?,
                pending,
                r.get(2)?,
                super::keys::facts_from_row(r, 3)?,
            ));
            Ok(())
        },
    )?;
    let Some((disabled, pending, id_taken, key_facts)) = read else {
        return Err(StoreError::Corrupt(
            "the create checks returned no row".into(),
        ));
    };
    Ok(CreateChecks {
        disabled,
        pending: u32::try_from(pending).unwrap_or(u32::MAX),
        id_taken,
        holdings,
        key_facts,
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

/// The role and the requester of request `id`, if there is one: what a [`SigningAsk`]
/// needs, read before the write (neither changes once the request exists).
pub fn role_and_requester(
    tx: &Tx<'_>,
    id: &RequestId,
) -> Result<Option<(crate::names::RoleName, UserName)>, StoreError> {
    tx.opt(
        "SELECT role, requester FROM requests WHERE id = ?1",
        &[&id.as_str()],
        |r| {
            let (role, requester): (String, String) = (r.get(0)?, r.get(1)?);
            Ok((
                crate::names::RoleName::parse(&role).map_err(|e| corrupt("role", &role, e))?,
                UserName::parse(&requester).map_err(|e| corrupt("requester", &requester, e))?,
            ))
        },
    )
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
    let n = with_decision(id, d, |params| tx.exec(DECIDE, params))?;
    Ok(n == 1)
}

/// [`decide`] for a request this write transaction has read as pending, under the write
/// lock (so nobody else can have decided it since): at signing. The UPDATE is not waited
/// for (`Tx::put_one`: pipelined on PostgreSQL, held on SQLite); should it change
/// anything but exactly one row, it fails, so that nothing of the write commits and
/// nobody is told it succeeded. True when the request was (or will be) decided. The
/// request's requester, read with it, names what the change touches (`store/ahead.rs`).
pub fn decide_read_pending(
    tx: &Tx<'_>,
    (id, requester): (&RequestId, &UserName),
    d: &Decision<'_>,
) -> Result<bool, StoreError> {
    let touches = [Touch::Request(id), Touch::User(requester)];
    with_decision(id, d, |params| tx.put_one(DECIDE, params, Some(&touches)))?;
    Ok(true)
}

const DECIDE: &str = "UPDATE requests SET status = ?2, decided_at = ?3, decided_by = ?4, \
     decision_code = ?5, decision_note = ?6 WHERE id = ?1 AND status = 'pending'";

/// `f` with the parameters of [`DECIDE`].
fn with_decision<T>(id: &RequestId, d: &Decision<'_>, f: impl FnOnce(&[&dyn Param]) -> T) -> T {
    let (id, status) = (id.as_str(), d.status.as_str());
    f(&[&id, &status, &d.at, &d.by, &d.code, &d.note])
}

/// Records one approval.
pub fn insert_approval(
    tx: &Tx<'_>,
    id: &RequestId,
    approver: &UserName,
    at: i64,
    comment: Option<&str>,
) -> Result<(), StoreError> {
    tx.put_touching(
        "INSERT INTO approvals (request_id, approver, at, comment) VALUES (?1, ?2, ?3, ?4)",
        &[&id.as_str(), &approver.as_str(), &at, &comment],
        Some(&[Touch::Request(id)]),
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

/// Whether `requester` asked for `role` before the request `id` made at `created_at`
/// (whatever became of it): a first request of a role is worth a second look.
pub fn asked_before(
    tx: &Tx<'_>,
    requester: &UserName,
    role: &RoleName,
    created_at: i64,
    id: &RequestId,
) -> Result<bool, StoreError> {
    tx.one(
        "SELECT EXISTS (SELECT 1 FROM requests WHERE requester = ?1 AND role = ?2 \
         AND (created_at < ?3 OR (created_at = ?3 AND id < ?4)))",
        &[
            &requester.as_str(),
            &role.as_str(),
            &created_at,
            &id.as_str(),
        ],
        |r| r.get(0),
    )
}
