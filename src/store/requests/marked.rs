//! A request read with what acting on it checks, in one round trip: the disabled marks
//! of the actor and of its requester, what the database says of its key, and (to
//! approve) its approvals and what signing reads.

use super::row::{REQUEST_COLUMN_COUNT, REQUEST_COLUMNS, request_from_row};
use super::{ApprovalRow, Asking, RequestRow, approval_from_row, approvals_sql, holdings};
use crate::names::{RequestId, UserName};
use crate::store::sql::Param;
use crate::store::{StoreError, Tx};

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
    /// Who registered its key (with `countersign keys add`), and whether its requester
    /// registered any: what signing checks of the key.
    pub key_facts: crate::store::keys::KeyFacts,
}

/// The columns of [`get_marked`] after the request's: ?2 the actor.
fn marked_columns() -> String {
    format!(
        "{REQUEST_COLUMNS}, \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = ?2), \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = requests.requester), {}",
        crate::store::keys::facts_columns("requests.key_fingerprint", "requests.requester")
    )
}

/// The query of [`get_marked`]: ?1 the request id, ?2 the actor.
fn get_marked_sql() -> String {
    format!("SELECT {} FROM requests WHERE id = ?1", marked_columns())
}

/// How many columns [`marked_from_row`] reads.
const MARKED_COLUMNS: usize = REQUEST_COLUMN_COUNT + 4;

fn marked_from_row(r: &crate::store::sql::Row<'_>) -> Result<Marked, StoreError> {
    Ok(Marked {
        row: request_from_row(r)?,
        actor_disabled: r.get(REQUEST_COLUMN_COUNT)?,
        requester_disabled: r.get(REQUEST_COLUMN_COUNT + 1)?,
        key_facts: crate::store::keys::facts_from_row(r, REQUEST_COLUMN_COUNT + 2)?,
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

/// [`get_marked`] and the request's certificate line, if one was issued, in one
/// statement (a certificate fetch: `Store::read_single` on PostgreSQL).
pub fn get_marked_with_certificate(
    tx: &Tx<'_>,
    id: &RequestId,
    actor: &UserName,
) -> Result<Option<(Marked, Option<String>)>, StoreError> {
    let sql = format!(
        "SELECT {}, \
         (SELECT c.certificate FROM certificates c WHERE c.request_id = requests.id) \
         FROM requests WHERE id = ?1",
        marked_columns()
    );
    tx.opt(&sql, &[&id.as_str(), &actor.as_str()], |r| {
        Ok((marked_from_row(r)?, r.get(MARKED_COLUMNS)?))
    })
}

/// What signing checks, asked before the request is read (its role and requester do
/// not change once it exists): [`holdings`] of the requester in the rival `roles`, and
/// whether a candidate `serial` was ever used.
#[derive(Debug, Clone, Copy)]
pub struct SigningAsk<'a> {
    /// Whose holdings, when, and the request left out (the one being signed).
    pub asking: Asking<'a>,
    /// The rival roles of the request's role.
    pub roles: &'a [&'a crate::names::RoleName],
    /// A fresh serial.
    pub serial: crate::names::Serial,
}

/// The answers to a [`SigningAsk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRead {
    /// The rival roles the requester holds or has asked for.
    pub holdings: Vec<crate::names::RoleName>,
    /// The serial was used before.
    pub serial_taken: bool,
}

/// The request with both disabled marks ([`get_marked`]), read with its [`approvals`]
/// and, if asked, what signing checks ([`SigningAsk`]): all in one round trip on
/// PostgreSQL. The approvals are empty when there is no such request.
#[allow(clippy::type_complexity)]
pub fn get_marked_with_approvals(
    tx: &Tx<'_>,
    id: &RequestId,
    actor: &UserName,
    ahead: Option<SigningAsk<'_>>,
) -> Result<Option<(Marked, Vec<ApprovalRow>, Option<SigningRead>)>, StoreError> {
    let (mut marked, mut approvals) = (None, Vec::new());
    let mut on_read = |i: usize, row: &crate::store::sql::Row<'_>| -> Result<(), StoreError> {
        if i == 0 {
            marked = Some(marked_from_row(row)?);
        } else {
            approvals.push(approval_from_row(row)?);
        }
        Ok(())
    };
    let (id_s, actor_s) = (id.as_str(), actor.as_str());
    let marked_sql = get_marked_sql();
    let (marked_params, approvals_params): ([&dyn Param; 2], [&dyn Param; 1]) =
        ([&id_s, &actor_s], [&id_s]);
    let mut queries: Vec<(&str, &[&dyn Param])> = vec![
        (&marked_sql, &marked_params),
        (approvals_sql(tx), &approvals_params),
    ];
    let signing = match ahead {
        None => {
            tx.each_of(&queries, on_read)?;
            None
        }
        Some(ask) => {
            let stored = ask.serial.to_stored();
            let serial: [&dyn Param; 1] = [&stored];
            // A serial the database cannot hold counts as taken (another is drawn).
            let mut serial_taken = stored.is_none();
            if stored.is_some() {
                queries.push((crate::store::certificates::SERIAL_TAKEN, &serial));
            }
            let holdings =
                holdings::holdings_and(tx, ask.asking, ask.roles, &queries, |i, row| {
                    if i < 2 {
                        on_read(i, row)
                    } else {
                        let n: i64 = row.get(0)?;
                        serial_taken = n > 0;
                        Ok(())
                    }
                })?;
            Some(SigningRead {
                holdings,
                serial_taken,
            })
        }
    };
    Ok(marked.map(|m| (m, approvals, signing)))
}
