//! Requests and approvals: rows and the queries over them.
//!
//! Values read back are parsed into the same types as input; a row that does not parse is
//! reported as corrupt instead of being trusted.

use rusqlite::{OptionalExtension, Row, named_params, params};

use super::{StoreError, Tx};
use crate::names::{RequestId, RoleName, UserName};

/// Where a request is in its life; only `pending` can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Issued,
    Denied,
    Cancelled,
    Expired,
    Refused,
}

impl Status {
    /// All statuses, for help texts.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Issued,
        Status::Denied,
        Status::Cancelled,
        Status::Expired,
        Status::Refused,
    ];

    /// The stored and public name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Issued => "issued",
            Status::Denied => "denied",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Refused => "refused",
        }
    }

    /// Parses a public name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A list's `status` filter as given: absent or empty is none; otherwise a status name,
    /// or an error naming them all.
    pub fn filter(s: Option<&str>) -> Result<Option<Status>, String> {
        match s {
            None | Some("") => Ok(None),
            Some(s) => Status::parse(s).map(Some).ok_or_else(|| {
                let all = Status::ALL.map(Status::as_str).join(", ");
                format!("status must be one of {all}")
            }),
        }
    }
}

/// One stored request.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: RequestId,
    pub role: RoleName,
    pub requester: UserName,
    pub reason: String,
    pub ttl_seconds: i64,
    pub public_key: String,
    pub key_fingerprint: String,
    pub principals: Vec<String>,
    pub role_digest: String,
    pub status: Status,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub decision_code: Option<String>,
    pub decision_note: Option<String>,
}

/// One stored approval.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    pub approver: UserName,
    pub at: i64,
    pub comment: Option<String>,
}

const REQUEST_COLUMNS: &str = "id, role, requester, reason, ttl_seconds, public_key, key_fingerprint, \
     principals, role_digest, status, created_at, expires_at, decided_at, decided_by, \
     decision_code, decision_note";

pub(super) fn corrupt(what: &str, value: &str, cause: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("stored {what} {value:?} does not parse: {cause}").into(),
    )
}

fn request_from_row(r: &Row<'_>) -> rusqlite::Result<RequestRow> {
    let id: String = r.get(0)?;
    let role: String = r.get(1)?;
    let requester: String = r.get(2)?;
    let principals: String = r.get(7)?;
    let status: String = r.get(9)?;
    Ok(RequestRow {
        id: RequestId::parse(&id).map_err(|e| corrupt("request id", &id, e))?,
        role: RoleName::parse(&role).map_err(|e| corrupt("role", &role, e))?,
        requester: UserName::parse(&requester).map_err(|e| corrupt("requester", &requester, e))?,
        reason: r.get(3)?,
        ttl_seconds: r.get(4)?,
        public_key: r.get(5)?,
        key_fingerprint: r.get(6)?,
        principals: serde_json::from_str(&principals)
            .map_err(|e| corrupt("principals", &principals, e))?,
        role_digest: r.get(8)?,
        status: Status::parse(&status)
            .ok_or_else(|| corrupt("status", &status, "not a known status"))?,
        created_at: r.get(10)?,
        expires_at: r.get(11)?,
        decided_at: r.get(12)?,
        decided_by: r.get(13)?,
        decision_code: r.get(14)?,
        decision_note: r.get(15)?,
    })
}

/// Stores a new pending request.
pub fn insert(tx: &Tx<'_>, r: &RequestRow) -> Result<(), StoreError> {
    let principals =
        serde_json::to_string(&r.principals).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.sql().prepare_cached(
        &format!("INSERT INTO requests ({REQUEST_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"))?
        .execute(params![
            r.id.as_str(),
            r.role.as_str(),
            r.requester.as_str(),
            r.reason,
            r.ttl_seconds,
            r.public_key,
            r.key_fingerprint,
            principals,
            r.role_digest,
            r.status.as_str(),
            r.created_at,
            r.expires_at,
            r.decided_at,
            r.decided_by,
            r.decision_code,
            r.decision_note,
        ],
    )?;
    Ok(())
}

/// Whether an id is already taken.
pub fn exists(tx: &Tx<'_>, id: &RequestId) -> Result<bool, StoreError> {
    let n: i64 = tx
        .sql()
        .prepare_cached("SELECT count(*) FROM requests WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))?;
    Ok(n > 0)
}

/// How many of `user`'s requests are pending and not yet past their deadline at `now`
/// (one past it is expired, whether or not the sweep has recorded it): the partial index
/// of pending requests.
pub fn pending_count(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<u32, StoreError> {
    let n: u32 = tx
        .sql()
        .prepare_cached(
            "SELECT count(*) FROM requests INDEXED BY requests_pending \
             WHERE requester = ?1 AND status = 'pending' AND expires_at > ?2",
        )?
        .query_row(params![user.as_str(), now], |r| r.get(0))?;
    Ok(n)
}

/// The request with this id.
pub fn get(tx: &Tx<'_>, id: &RequestId) -> Result<Option<RequestRow>, StoreError> {
    Ok(tx
        .sql()
        .prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"
        ))?
        .query_row([id.as_str()], request_from_row)
        .optional()?)
}

/// Where a page of a list begins: just after this request, in the lists' order (newest
/// first; requests made in the same second by id). The first page has none.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub created_at: i64,
    pub id: RequestId,
}

impl Cursor {
    /// The page after `row`.
    pub fn after(row: &RequestRow) -> Cursor {
        Cursor {
            created_at: row.created_at,
            id: row.id.clone(),
        }
    }

    /// Bind values for [`AFTER_CURSOR`]: with no cursor, a position before every request.
    fn params(cursor: Option<&Cursor>) -> (i64, &str) {
        cursor.map_or((i64::MAX, ""), |c| (c.created_at, c.id.as_str()))
    }
}

/// Rows after the cursor `(?c, ?i)` in `created_at DESC, id` order. `created_at <= ?c`
/// lets SQLite start the index walk at the cursor instead of skipping the rows before
/// it one by one.
const AFTER_CURSOR: &str = "created_at <= :c AND (created_at < :c OR id > :i)";

/// [`list`]'s statement, with or without a status.
fn list_sql(by_status: bool) -> String {
    let status = if by_status {
        "status = :s"
    } else {
        ":s IS NULL"
    };
    format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE {status} AND {AFTER_CURSOR} \
         ORDER BY created_at DESC, id LIMIT :n"
    )
}

/// [`list_visible`]'s statement for one source: `by` is `requester` or `role`.
///
/// Pending requests (an approver's inbox, the common filter) come from the small partial
/// index of pending requests, sorted there; walking the source's whole history for them
/// would read every request the role ever had. Other statuses walk the source's history
/// newest first and filter.
fn visible_sql(by: &str, status: Option<Status>) -> String {
    match status {
        Some(Status::Pending) => format!(
            "SELECT created_at, id FROM requests INDEXED BY requests_pending \
             WHERE {by} = :k AND status = 'pending' AND status = :s AND {AFTER_CURSOR} \
             ORDER BY created_at DESC, id LIMIT :n"
        ),
        _ => format!(
            "SELECT created_at, id FROM requests INDEXED BY requests_by_{by} \
             WHERE {by} = :k AND (:s IS NULL OR status = :s) AND {AFTER_CURSOR} \
             ORDER BY created_at DESC, id LIMIT :n"
        ),
    }
}

/// Requests newest first, optionally of one status, after `cursor`; at most `limit`.
pub fn list(
    tx: &Tx<'_>,
    status: Option<Status>,
    cursor: Option<&Cursor>,
    limit: u32,
) -> Result<Vec<RequestRow>, StoreError> {
    // One statement per shape, each walking an index newest first (a `?1 IS NULL OR`
    // condition made SQLite read and sort the whole table).
    let mut stmt = tx.sql().prepare_cached(&list_sql(status.is_some()))?;
    let (c, i) = Cursor::params(cursor);
    let rows = stmt.query_map(
        named_params! {":s": status.map(Status::as_str), ":c": c, ":i": i, ":n": limit},
        request_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// [`list`] of what one user may see: requests they made, and requests for `roles`
/// (those they may approve); at most `limit`, newest first, after `cursor`.
///
/// Each source is read newest first from its own index (`requests_by_requester`,
/// `requests_by_role`; pending ones from `requests_pending`, see [`visible_sql`]), at
/// most `limit` keys each, merged (a request in two sources once), and only the `limit` newest
/// rows are then read: the work is bounded by the limit and the number of roles, not by
/// the size of the table (filtering a walk of all requests by age read the whole table
/// for a user who may see few of them).
pub fn list_visible(
    tx: &Tx<'_>,
    status: Option<Status>,
    user: &UserName,
    roles: &[RoleName],
    cursor: Option<&Cursor>,
    limit: u32,
) -> Result<Vec<RequestRow>, StoreError> {
    let (requester_sql, role_sql) = (
        visible_sql("requester", status),
        visible_sql("role", status),
    );
    let status = status.map(Status::as_str);
    let (c, i) = Cursor::params(cursor);
    let mut keys: Vec<(i64, String)> = Vec::new();
    let mut collect = |sql: &str, key: &str| -> Result<(), StoreError> {
        let mut stmt = tx.sql().prepare_cached(sql)?;
        let rows = stmt.query_map(
            named_params! {":k": key, ":s": status, ":c": c, ":i": i, ":n": limit},
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        for row in rows {
            keys.push(row?);
        }
        Ok(())
    };
    collect(&requester_sql, user.as_str())?;
    for role in roles {
        collect(&role_sql, role.as_str())?;
    }
    keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    keys.dedup_by(|a, b| a.1 == b.1);
    keys.truncate(limit as usize);
    let mut stmt = tx.sql().prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"
    ))?;
    let mut out = Vec::with_capacity(keys.len());
    for (_, id) in keys {
        if let Some(row) = stmt.query_row([&id], request_from_row).optional()? {
            out.push(row);
        }
    }
    Ok(out)
}

/// Pending requests whose deadline has passed.
pub fn overdue(tx: &Tx<'_>, now: i64) -> Result<Vec<RequestRow>, StoreError> {
    let mut stmt = tx.sql().prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE status = 'pending' AND expires_at <= ?1"
    ))?;
    let rows = stmt.query_map([now], request_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The pending, not yet overdue requests of `user` (from the index of pending requests).
pub fn pending_of(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<Vec<RequestRow>, StoreError> {
    let mut stmt = tx.sql().prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM requests INDEXED BY requests_pending \
         WHERE requester = ?1 AND status = 'pending' AND expires_at > ?2"
    ))?;
    let rows = stmt.query_map(params![user.as_str(), now], request_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
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
    let n = tx
        .sql()
        .prepare_cached(
            "UPDATE requests SET status = ?2, decided_at = ?3, decided_by = ?4, \
             decision_code = ?5, decision_note = ?6 WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![
            id.as_str(),
            d.status.as_str(),
            d.at,
            d.by,
            d.code,
            d.note
        ])?;
    Ok(n == 1)
}

/// How long certificates still count as held, for role conflicts, after they stop being
/// valid by the CA's clock (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// After `valid_before`: a server whose clock is behind by up to this (the backdate
    /// allowed for) still accepts the certificate.
    pub after_expiry: i64,
    /// After a revocation: a server refuses the certificate only once its next KRL fetch
    /// lists it. (It stops counting at expiry, as above, if that comes first.)
    pub after_revocation: i64,
}

/// Whether user ?1 holds role ?2 or has asked for it (see [`holdings`]): three index
/// probes, the recently revoked certificates from the small index of revoked ones.
const HOLDS: &str = "SELECT EXISTS (SELECT 1 FROM certificates WHERE requester = ?1 AND role = ?2 \
         AND valid_before > ?5 AND revoked_at IS NULL) \
     OR EXISTS (SELECT 1 FROM certificates WHERE revoked_at > ?6 AND requester = ?1 \
         AND role = ?2 AND valid_before > ?5) \
     OR EXISTS (SELECT 1 FROM requests INDEXED BY requests_pending WHERE requester = ?1 \
         AND status = 'pending' AND role = ?2 AND expires_at > ?3 AND id IS NOT ?4)";

/// Which of `roles` `user` holds or has asked for: certificates still held (see [`Held`])
/// and pending requests, the request `except` left out.
///
/// The SoD check needs only the roles that conflict with the one asked for, so this
/// asks about those alone: a few index probes, however many certificates the user holds.
pub fn holdings(
    tx: &Tx<'_>,
    user: &UserName,
    now: i64,
    held: Held,
    except: Option<&RequestId>,
    roles: &[&RoleName],
) -> Result<Vec<RoleName>, StoreError> {
    let mut stmt = tx.sql().prepare_cached(HOLDS)?;
    let mut found = Vec::new();
    for role in roles {
        let holds: bool = stmt.query_row(
            params![
                user.as_str(),
                role.as_str(),
                now,
                except.map(RequestId::as_str),
                now.saturating_sub(held.after_expiry),
                now.saturating_sub(held.after_revocation),
            ],
            |r| r.get(0),
        )?;
        if holds {
            found.push((*role).clone());
        }
    }
    Ok(found)
}

/// When `user`'s hold on `role` ends, if they hold it only through certificates revoked
/// less than `held.after_revocation` ago (no live certificate, no pending request but
/// `except`): the latest moment, over those certificates, at which each stops counting
/// (the revocation plus `after_revocation`, or the expiry plus `after_expiry` if sooner).
/// `None` when the hold is of another kind, or there is none.
pub fn revoked_hold_lifts(
    tx: &Tx<'_>,
    user: &UserName,
    role: &RoleName,
    now: i64,
    held: Held,
    except: Option<&RequestId>,
) -> Result<Option<i64>, StoreError> {
    let sql = "SELECT CASE WHEN EXISTS (SELECT 1 FROM certificates WHERE requester = ?1 \
             AND role = ?2 AND valid_before > ?5 AND revoked_at IS NULL) \
         OR EXISTS (SELECT 1 FROM requests INDEXED BY requests_pending WHERE requester = ?1 \
             AND status = 'pending' AND role = ?2 AND expires_at > ?3 AND id IS NOT ?4) \
         THEN NULL ELSE (SELECT max(min(revoked_at + ?7, valid_before + ?8)) FROM certificates \
             WHERE revoked_at > ?6 AND requester = ?1 AND role = ?2 AND valid_before > ?5) END";
    Ok(tx.sql().prepare_cached(sql)?.query_row(
        params![
            user.as_str(),
            role.as_str(),
            now,
            except.map(RequestId::as_str),
            now.saturating_sub(held.after_expiry),
            now.saturating_sub(held.after_revocation),
            held.after_revocation,
            held.after_expiry,
        ],
        |r| r.get(0),
    )?)
}

/// Records one approval.
pub fn insert_approval(
    tx: &Tx<'_>,
    id: &RequestId,
    approver: &UserName,
    at: i64,
    comment: Option<&str>,
) -> Result<(), StoreError> {
    tx.sql()
        .prepare_cached(
            "INSERT INTO approvals (request_id, approver, at, comment) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id.as_str(), approver.as_str(), at, comment])?;
    Ok(())
}

/// Approvals of a request, oldest first.
pub fn approvals(tx: &Tx<'_>, id: &RequestId) -> Result<Vec<ApprovalRow>, StoreError> {
    let mut stmt = tx.sql().prepare_cached(
        "SELECT approver, at, comment FROM approvals WHERE request_id = ?1 ORDER BY at, rowid",
    )?;
    let rows = stmt.query_map([id.as_str()], |r| {
        let approver: String = r.get(0)?;
        Ok(ApprovalRow {
            approver: UserName::parse(&approver).map_err(|e| corrupt("approver", &approver, e))?,
            at: r.get(1)?,
            comment: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every list statement walks an index from the cursor: no sort of the table, and
    /// the cursor is a range on the index (a deep page costs what the first one does).
    #[test]
    fn list_statements_seek_an_index_from_the_cursor_and_never_sort() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let plan = |sql: &str| -> String {
            store
                .read(|c| {
                    let mut stmt = c.sql().prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let names = stmt.parameter_count();
                    for i in 1..=names {
                        stmt.raw_bind_parameter(i, 1)?;
                    }
                    let mut rows = stmt.raw_query();
                    let mut out = String::new();
                    while let Some(r) = rows.next()? {
                        out.push_str(&r.get::<_, String>(3)?);
                        out.push('\n');
                    }
                    Ok::<_, StoreError>(out)
                })
                .unwrap()
        };
        let history = [
            (
                list_sql(true),
                "requests_by_status (status=? AND created_at<?)",
            ),
            (list_sql(false), "requests_by_age (created_at<?)"),
            (
                visible_sql("requester", None),
                "requests_by_requester (requester=? AND created_at<?)",
            ),
            (
                visible_sql("role", Some(Status::Issued)),
                "requests_by_role (role=? AND created_at<?)",
            ),
        ];
        for (sql, index) in history {
            let plan = plan(&sql);
            assert!(
                plan.contains(&format!("USING INDEX {index}")),
                "{sql}\n{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
        }
        let holds = plan(HOLDS);
        for index in [
            "certificates_held (requester=? AND role=? AND valid_before>?)",
            "certificates_revoked (revoked_at>?)",
            "requests_pending (requester=? AND role=?)",
        ] {
            assert!(holds.contains(index), "{index}\n{holds}");
        }
        assert!(
            !holds.contains("SCAN certificates") && !holds.contains("SCAN requests"),
            "{holds}"
        );
        // Pending ones come from the partial index of pending requests (small: sorting
        // it is cheap), never from a walk of the source's whole history.
        for by in ["requester", "role"] {
            let sql = visible_sql(by, Some(Status::Pending));
            let plan = plan(&sql);
            assert!(
                plan.contains("USING INDEX requests_pending"),
                "{sql}\n{plan}"
            );
        }
    }
}
