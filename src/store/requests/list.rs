//! Listing requests newest first, a page at a time from a cursor: all of them, or those
//! one user may see.

use super::row::{REQUEST_COLUMNS, RequestRow, Status, request_from_row};
use crate::names::{RequestId, RoleName, UserName};
use crate::store::{StoreError, Tx};

/// Where a page of a list begins: just after this request, in the lists' order (newest
/// first; requests made in the same second by id). The first page has none.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// That request's creation time (unix seconds).
    pub created_at: i64,
    /// That request's id.
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

/// Rows after the cursor `(?1, ?2)` in `created_at DESC, id` order. `created_at <= ?1`
/// lets the database start the index walk at the cursor instead of skipping the rows
/// before it one by one. The list statements bind, in order: the cursor's time and id,
/// the limit (?3), the status or NULL (?4), and the source's key (?5, visible lists).
const AFTER_CURSOR: &str = "created_at <= ?1 AND (created_at < ?1 OR id > ?2)";

/// A break-glass use whose review is open shows as `pending_review`, not `issued`: the
/// `issued` filter leaves it out.
const NOT_UNDER_REVIEW: &str = "NOT EXISTS (SELECT 1 FROM breakglass b \
     WHERE b.request_id = requests.id AND b.closed_at IS NULL)";

/// The condition a `status` filter adds (`issued` leaves out uses under review).
fn status_sql(status: Option<Status>) -> String {
    match status {
        None => "CAST(?4 AS TEXT) IS NULL".to_owned(),
        Some(Status::Issued) => format!("status = ?4 AND {NOT_UNDER_REVIEW}"),
        Some(_) => "status = ?4".to_owned(),
    }
}

/// [`list`]'s statement, with or without a status.
fn list_sql(status: Option<Status>) -> String {
    let status = status_sql(status);
    format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE {status} AND {AFTER_CURSOR} \
         ORDER BY created_at DESC, id LIMIT ?3"
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
             WHERE {by} = ?5 AND status = 'pending' AND status = ?4 AND {AFTER_CURSOR} \
             ORDER BY created_at DESC, id LIMIT ?3"
        ),
        Some(Status::Issued) => format!(
            "SELECT created_at, id FROM requests INDEXED BY requests_by_{by} \
             WHERE {by} = ?5 AND status = ?4 AND {NOT_UNDER_REVIEW} AND {AFTER_CURSOR} \
             ORDER BY created_at DESC, id LIMIT ?3"
        ),
        _ => format!(
            "SELECT created_at, id FROM requests INDEXED BY requests_by_{by} \
             WHERE {by} = ?5 AND (CAST(?4 AS TEXT) IS NULL OR status = ?4) AND {AFTER_CURSOR} \
             ORDER BY created_at DESC, id LIMIT ?3"
        ),
    }
}

/// Break-glass uses whose review is open (`pending_review`), newest first, after
/// `cursor`: few (a user has one, unless an admin allowed more), so all of them.
pub fn under_review(tx: &Tx<'_>, cursor: Option<&Cursor>) -> Result<Vec<RequestRow>, StoreError> {
    let (c, i) = Cursor::params(cursor);
    tx.all(
        &format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE status = 'issued' AND id IN \
             (SELECT request_id FROM breakglass WHERE closed_at IS NULL) AND {AFTER_CURSOR} \
             ORDER BY created_at DESC, id"
        ),
        &[&c, &i],
        request_from_row,
    )
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
    let (c, i) = Cursor::params(cursor);
    tx.all(
        &list_sql(status),
        &[&c, &i, &i64::from(limit), &status.map(Status::as_str)],
        request_from_row,
    )
}

/// [`list`] of what one user may see: requests they made, and requests for `roles`
/// (those they may approve); at most `limit`, newest first, after `cursor`.
///
/// Each source is read newest first from its own index (`requests_by_requester`,
/// `requests_by_role`; pending ones from `requests_pending`, see `visible_sql`), at
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
    list_from(tx, status, Some(user), roles, cursor, limit)
}

/// [`list_visible`]'s sources chosen one by one: the requests `requester` made (if
/// named) and those of `roles`; at most `limit`, newest first, after `cursor`.
pub fn list_from(
    tx: &Tx<'_>,
    status: Option<Status>,
    requester: Option<&UserName>,
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
        tx.each(sql, &[&c, &i, &i64::from(limit), &status, &key], |r| {
            keys.push((r.get(0)?, r.get(1)?));
            Ok(())
        })
    };
    if let Some(user) = requester {
        collect(&requester_sql, user.as_str())?;
    }
    for role in roles {
        collect(&role_sql, role.as_str())?;
    }
    keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    keys.dedup_by(|a, b| a.1 == b.1);
    keys.truncate(limit as usize);
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1");
    let mut out = Vec::with_capacity(keys.len());
    for (_, id) in keys {
        if let Some(row) = tx.opt(&sql, &[&id], request_from_row)? {
            out.push(row);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::holdings::HOLDS;
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
                    let mut stmt = c.sqlite()?.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
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
                list_sql(Some(Status::Denied)),
                "requests_by_status (status=? AND created_at<?)",
            ),
            (
                list_sql(Some(Status::Issued)),
                "requests_by_status (status=? AND created_at<?)",
            ),
            (list_sql(None), "requests_by_age (created_at<?)"),
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
