//! Break-glass: each use (a request issued at once, in `requests`), its review's
//! verdicts, and the extra uses admins allowed.
//!
//! A use is open until its review closes (`closed_at`); a user with an open use breaks
//! the glass again only by spending an allowance, in the use's transaction.

use super::sql::{Row, corrupt};
use super::{StoreError, Tx};
use crate::names::{RequestId, RoleName, UserName};

/// One use, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseRow {
    /// The request it issued.
    pub request_id: RequestId,
    /// Who broke the glass.
    pub invoker: UserName,
    /// The role taken.
    pub role: RoleName,
    /// The lifetime asked for (seconds), `None` for the role's default.
    pub ttl_asked: Option<i64>,
    /// Whether the lifetime asked was cut to the table's `max_ttl`.
    pub cut: bool,
    /// The table's `reviewers` at the use (`group:NAME` / `user:NAME`).
    pub reviewers: Vec<String>,
    /// The table's `reviews` at the use.
    pub reviews_required: u32,
    /// Unix seconds.
    pub used_at: i64,
    /// When the reminder goes out (unix seconds), if the review is still open.
    pub remind_at: i64,
    /// When the review is due (unix seconds).
    pub review_due: i64,
    /// The admin whose allowance this use spent, if it needed one.
    pub allowed_by: Option<String>,
    /// `justified` or `unjustified`, once closed.
    pub outcome: Option<String>,
    /// When the review closed.
    pub closed_at: Option<i64>,
    /// When the reminder went out.
    pub reminded_at: Option<i64>,
    /// When it was found overdue.
    pub overdue_at: Option<i64>,
}

/// One reviewer's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRow {
    /// Who reviewed.
    pub reviewer: UserName,
    /// `justified` or `unjustified`.
    pub verdict: String,
    /// Why.
    pub comment: String,
    /// Unix seconds.
    pub at: i64,
}

const COLUMNS: &str = "request_id, invoker, role, ttl_asked, cut, reviewers, reviews_required, \
     used_at, remind_at, review_due, allowed_by, outcome, closed_at, reminded_at, overdue_at";

fn use_from_row(r: &Row<'_>) -> Result<UseRow, StoreError> {
    let id: String = r.get(0)?;
    let invoker: String = r.get(1)?;
    let role: String = r.get(2)?;
    let reviewers: String = r.get(5)?;
    let reviews: i64 = r.get(6)?;
    Ok(UseRow {
        request_id: RequestId::parse(&id).map_err(|e| corrupt("request id", &id, e))?,
        invoker: UserName::parse(&invoker).map_err(|e| corrupt("invoker", &invoker, e))?,
        role: RoleName::parse(&role).map_err(|e| corrupt("role", &role, e))?,
        ttl_asked: r.get(3)?,
        cut: r.get::<i64>(4)? != 0,
        reviewers: serde_json::from_str(&reviewers)
            .map_err(|e| corrupt("reviewers", &reviewers, e))?,
        reviews_required: u32::try_from(reviews)
            .map_err(|e| corrupt("reviews_required", &reviews.to_string(), e))?,
        used_at: r.get(7)?,
        remind_at: r.get(8)?,
        review_due: r.get(9)?,
        allowed_by: r.get(10)?,
        outcome: r.get(11)?,
        closed_at: r.get(12)?,
        reminded_at: r.get(13)?,
        overdue_at: r.get(14)?,
    })
}

/// Records a use (its request row exists, in the same transaction).
pub fn insert(tx: &Tx<'_>, u: &UseRow) -> Result<(), StoreError> {
    let reviewers = serde_json::to_string(&u.reviewers)
        .map_err(|e| StoreError::Corrupt(format!("reviewers: {e}")))?;
    tx.put(
        &format!(
            "INSERT INTO breakglass ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, NULL, NULL, NULL)"
        ),
        &[
            &u.request_id.as_str(),
            &u.invoker.as_str(),
            &u.role.as_str(),
            &u.ttl_asked,
            &i64::from(u.cut),
            &reviewers,
            &i64::from(u.reviews_required),
            &u.used_at,
            &u.remind_at,
            &u.review_due,
            &u.allowed_by,
        ],
    )
}

/// The use that issued request `id`, if it was one.
pub fn get(tx: &Tx<'_>, id: &RequestId) -> Result<Option<UseRow>, StoreError> {
    tx.opt(
        &format!("SELECT {COLUMNS} FROM breakglass WHERE request_id = ?1"),
        &[&id.as_str()],
        use_from_row,
    )
}

/// The verdicts on use `id`, oldest first.
pub fn verdicts(tx: &Tx<'_>, id: &RequestId) -> Result<Vec<VerdictRow>, StoreError> {
    tx.all(
        "SELECT reviewer, verdict, comment, at FROM breakglass_verdicts \
         WHERE request_id = ?1 ORDER BY at, reviewer",
        &[&id.as_str()],
        |r| {
            let reviewer: String = r.get(0)?;
            Ok(VerdictRow {
                reviewer: UserName::parse(&reviewer)
                    .map_err(|e| corrupt("reviewer", &reviewer, e))?,
                verdict: r.get(1)?,
                comment: r.get(2)?,
                at: r.get(3)?,
            })
        },
    )
}

/// The request id of `user`'s oldest use still under review, if any.
pub fn open_use_of(tx: &Tx<'_>, user: &UserName) -> Result<Option<RequestId>, StoreError> {
    tx.opt(
        "SELECT request_id FROM breakglass WHERE invoker = ?1 AND closed_at IS NULL \
         ORDER BY used_at, request_id LIMIT 1",
        &[&user.as_str()],
        |r| {
            let id: String = r.get(0)?;
            RequestId::parse(&id).map_err(|e| corrupt("request id", &id, e))
        },
    )
}

/// The request id of `user`'s last use (the newest), when its review closed unjustified.
pub fn last_unjustified(tx: &Tx<'_>, user: &UserName) -> Result<Option<RequestId>, StoreError> {
    let last: Option<(String, Option<String>)> = tx.opt(
        "SELECT request_id, outcome FROM breakglass WHERE invoker = ?1 \
         ORDER BY used_at DESC, request_id DESC LIMIT 1",
        &[&user.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    match last {
        Some((id, Some(outcome))) if outcome == "unjustified" => RequestId::parse(&id)
            .map(Some)
            .map_err(|e| corrupt("request id", &id, e)),
        _ => Ok(None),
    }
}

/// Records one more use an admin allows `user` (replacing an unspent one).
pub fn allow(tx: &Tx<'_>, user: &UserName, by: &UserName, at: i64) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO breakglass_allowances (\"user\", granted_by, granted_at) \
         VALUES (?1, ?2, ?3) ON CONFLICT (\"user\") DO UPDATE \
         SET granted_by = excluded.granted_by, granted_at = excluded.granted_at",
        &[&user.as_str(), &by.as_str(), &at],
    )
    .map(drop)
}

/// Spends `user`'s allowance: who granted it, if there was one.
pub fn spend_allowance(tx: &Tx<'_>, user: &UserName) -> Result<Option<String>, StoreError> {
    let by = tx.opt(
        "SELECT granted_by FROM breakglass_allowances WHERE \"user\" = ?1",
        &[&user.as_str()],
        |r| r.get::<String>(0),
    )?;
    if by.is_some() {
        tx.exec(
            "DELETE FROM breakglass_allowances WHERE \"user\" = ?1",
            &[&user.as_str()],
        )?;
    }
    Ok(by)
}

/// Forgets `user`'s unspent allowance, if any (their last unreviewed use was reviewed:
/// an allowance never outlives the review it was given for).
pub fn forget_allowance(tx: &Tx<'_>, user: &UserName) -> Result<(), StoreError> {
    tx.exec(
        "DELETE FROM breakglass_allowances WHERE \"user\" = ?1",
        &[&user.as_str()],
    )
    .map(drop)
}

/// Records `reviewer`'s verdict on use `id`.
pub fn insert_verdict(tx: &Tx<'_>, id: &RequestId, v: &VerdictRow) -> Result<(), StoreError> {
    tx.put(
        "INSERT INTO breakglass_verdicts (request_id, reviewer, verdict, comment, at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            &id.as_str(),
            &v.reviewer.as_str(),
            &v.verdict,
            &v.comment,
            &v.at,
        ],
    )
}

/// Closes the review of use `id` with `outcome`; false if it was closed already.
pub fn close(tx: &Tx<'_>, id: &RequestId, outcome: &str, at: i64) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE breakglass SET outcome = ?2, closed_at = ?3 \
         WHERE request_id = ?1 AND closed_at IS NULL",
        &[&id.as_str(), &outcome, &at],
    )?;
    Ok(n == 1)
}

/// Open uses whose reminder (`overdue` false) or overdue notice (`overdue` true) is due
/// at `now` and not sent yet, oldest first; at most `limit`.
pub fn due(tx: &Tx<'_>, now: i64, overdue: bool, limit: u32) -> Result<Vec<UseRow>, StoreError> {
    let when = if overdue {
        "overdue_at IS NULL AND review_due <= ?1"
    } else {
        "reminded_at IS NULL AND overdue_at IS NULL AND remind_at <= ?1"
    };
    tx.all(
        &format!(
            "SELECT {COLUMNS} FROM breakglass WHERE closed_at IS NULL AND {when} \
             ORDER BY review_due, request_id LIMIT ?2"
        ),
        &[&now, &i64::from(limit)],
        use_from_row,
    )
}

/// Marks the reminder (`overdue` false) or the overdue notice of use `id` sent at `at`;
/// false if another replica did it first, or the review closed meanwhile.
pub fn mark(tx: &Tx<'_>, id: &RequestId, overdue: bool, at: i64) -> Result<bool, StoreError> {
    let sql = if overdue {
        "UPDATE breakglass SET overdue_at = ?2 \
         WHERE request_id = ?1 AND closed_at IS NULL AND overdue_at IS NULL"
    } else {
        "UPDATE breakglass SET reminded_at = ?2 \
         WHERE request_id = ?1 AND closed_at IS NULL AND reminded_at IS NULL"
    };
    Ok(tx.exec(sql, &[&id.as_str(), &at])? == 1)
}

/// Every use made in `[from, to)` (unix seconds), oldest first: for reports.
pub fn between(tx: &Tx<'_>, from: i64, to: i64) -> Result<Vec<UseRow>, StoreError> {
    tx.all(
        &format!(
            "SELECT {COLUMNS} FROM breakglass WHERE used_at >= ?1 AND used_at < ?2 \
             ORDER BY used_at, request_id"
        ),
        &[&from, &to],
        use_from_row,
    )
}

/// Every use whose review is open, oldest first.
pub fn open(tx: &Tx<'_>) -> Result<Vec<UseRow>, StoreError> {
    tx.all(
        &format!(
            "SELECT {COLUMNS} FROM breakglass WHERE closed_at IS NULL \
             ORDER BY used_at, request_id"
        ),
        &[],
        use_from_row,
    )
}

/// How many reviews are open, and how many of them are past due at `now`.
pub fn open_counts(tx: &Tx<'_>, now: i64) -> Result<(u64, u64), StoreError> {
    tx.one(
        "SELECT count(*), coalesce(sum(CASE WHEN review_due <= ?1 THEN 1 ELSE 0 END), 0) \
         FROM breakglass WHERE closed_at IS NULL",
        &[&now],
        |r| {
            let (open, overdue): (i64, i64) = (r.get(0)?, r.get(1)?);
            Ok((open.max(0) as u64, overdue.max(0) as u64))
        },
    )
}
