//! What a user holds or has asked for, for the separation-of-duties checks: live and
//! recently ended certificates, and pending requests.

use crate::names::{RequestId, RoleName, UserName};
use crate::store::sql::{Param, Row};
use crate::store::{StoreError, Tx};

/// How long certificates still count as held, for role conflicts, after they stop being
/// valid by the CA's clock (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
pub(super) const HOLDS: &str = "SELECT EXISTS (SELECT 1 FROM certificates WHERE requester = ?1 \
         AND role = ?2 AND valid_before > ?5 AND revoked_at IS NULL) \
     OR EXISTS (SELECT 1 FROM certificates WHERE revoked_at > ?6 AND requester = ?1 \
         AND role = ?2 AND valid_before > ?5) \
     OR EXISTS (SELECT 1 FROM requests INDEXED BY requests_pending WHERE requester = ?1 \
         AND status = 'pending' AND role = ?2 AND expires_at > ?3 AND id IS DISTINCT FROM ?4)";

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
    holdings_and(tx, (user, now, held, except), roles, &[], |_, _| Ok(()))
}

/// Who is asked about, when, and which request is left out: the common arguments of
/// [`holdings`].
pub type Asking<'a> = (&'a UserName, i64, Held, Option<&'a RequestId>);

/// [`holdings`], with the queries `also` sent in the same round trip after the probes
/// (reads the caller needs anyway and does not branch on first); `on_also(i, row)` gets
/// every row of `also[i]`.
pub(in crate::store) fn holdings_and(
    tx: &Tx<'_>,
    (user, now, held, except): Asking<'_>,
    roles: &[&RoleName],
    also: &[(&str, &[&dyn Param])],
    mut on_also: impl FnMut(usize, &Row<'_>) -> Result<(), StoreError>,
) -> Result<Vec<RoleName>, StoreError> {
    let (user, except) = (user.as_str(), except.map(RequestId::as_str));
    let (expired, revoked) = (
        now.saturating_sub(held.after_expiry),
        now.saturating_sub(held.after_revocation),
    );
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let params: Vec<[&dyn Param; 6]> = names
        .iter()
        .map(|role| -> [&dyn Param; 6] { [&user, role, &now, &except, &expired, &revoked] })
        .collect();
    let mut queries: Vec<(&str, &[&dyn Param])> =
        params.iter().map(|p| (HOLDS, p.as_slice())).collect();
    queries.extend_from_slice(also);
    // One probe per role, and `also`, all sent together (one round trip on PostgreSQL).
    let mut holds = vec![false; roles.len()];
    tx.each_of(&queries, |i, row| match holds.get_mut(i) {
        Some(h) => {
            *h = row.get(0)?;
            Ok(())
        }
        None => on_also(i - roles.len(), row),
    })?;
    Ok(roles
        .iter()
        .zip(holds)
        .filter(|(_, holds)| *holds)
        .map(|(role, _)| (*role).clone())
        .collect())
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
             AND status = 'pending' AND role = ?2 AND expires_at > ?3 \
             AND id IS DISTINCT FROM ?4) \
         THEN NULL ELSE (SELECT max(CASE WHEN revoked_at + ?7 < valid_before + ?8 \
             THEN revoked_at + ?7 ELSE valid_before + ?8 END) FROM certificates \
             WHERE revoked_at > ?6 AND requester = ?1 AND role = ?2 AND valid_before > ?5) END";
    tx.one(
        sql,
        &[
            &user.as_str(),
            &role.as_str(),
            &now,
            &except.map(RequestId::as_str),
            &now.saturating_sub(held.after_expiry),
            &now.saturating_sub(held.after_revocation),
            &held.after_revocation,
            &held.after_expiry,
        ],
        |r| r.get(0),
    )
}
