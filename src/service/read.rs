//! The read operations: one request, a page of them, a certificate, the audit log, who
//! the caller is, and whether storage answers. None of them writes (except the
//! best-effort expiry before a list).

use super::{RequestView, Service, ServiceError, WhoAmI, view};
use crate::audit;
use crate::names::{RequestId, RoleName, UserName};
use crate::policy::People;
use crate::store::Tx;
use crate::store::certificates as certs;
use crate::store::requests::{self as rq, Status};
use crate::store::users as disabled;

impl Service {
    /// Who the caller is and what they may do.
    pub fn whoami(&self, actor: &UserName) -> Result<WhoAmI, ServiceError> {
        let now = self.now();
        let (is_disabled, idp) = self.store.read(|tx| {
            let is_disabled = disabled::is_disabled(tx, actor)?;
            Ok::<_, ServiceError>((is_disabled, self.idp_groups(tx, &[actor], now)?))
        })?;
        let config = self.config();
        let people = People::new(&config.policy, &idp);
        Ok(view::whoami(&people, actor, is_disabled))
    }

    /// One request, if the caller may see it.
    ///
    /// A read only: a pending request past its deadline shows as `expired` here, and the
    /// expiry sweep (or the next attempt to act on it) records that durably.
    pub fn get(&self, actor: &UserName, id: &RequestId) -> Result<RequestView, ServiceError> {
        let now = self.now();
        self.store.read(|tx| {
            let row = self.visible(tx, actor, id)?;
            self.request_view(tx, row, now)
        })
    }

    /// Requests the caller may see (own, those they may approve; admins all), newest
    /// first: at most `limit` (1 to [`LIST_LIMIT`]), starting after request `after`
    /// (which the caller must be able to see) when given.
    pub fn list(
        &self,
        actor: &UserName,
        status: Option<Status>,
        after: Option<&RequestId>,
        limit: u32,
    ) -> Result<ListPage, ServiceError> {
        if !(1..=LIST_LIMIT).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {LIST_LIMIT}"
            )));
        }
        // Best effort: a list is a read, and must work while writes cannot (disk full,
        // another process holding the write lock). Overdue requests show as expired
        // either way; the background sweep records them.
        if let Err(e) = self.expire_overdue() {
            // Debug keeps the cause (SQLite's message); Display says only "database error".
            tracing::warn!(
                error = ?e,
                "could not expire overdue requests before a list; listing anyway"
            );
        }
        let config = self.config();
        let policy = &config.policy;
        let admin = policy.is_admin(actor);
        let now = self.now();
        self.store.read(|tx| {
            // Non-admins: their own requests and those of roles they may approve, chosen
            // by the store before the limit (filtering the newest 10,000 of everyone's
            // afterwards hid a user's older requests once others had made 10,000 newer
            // ones).
            let idp = self.idp_groups(tx, &[actor], now)?;
            let people = People::new(policy, &idp);
            let approvable: Vec<RoleName> = policy
                .roles
                .values()
                .filter(|r| people.approves_for(actor, r))
                .map(|r| r.name.clone())
                .collect();
            let cursor = match after {
                Some(id) => Some(rq::Cursor::after(&self.visible(tx, actor, id)?)),
                None => None,
            };
            // One more than asked tells whether another page follows.
            let mut rows = if status == Some(Status::PendingReview) {
                // Few: every open review, then those the actor may see.
                let mut seen = Vec::new();
                for row in rq::under_review(tx, cursor.as_ref())? {
                    if seen.len() > limit as usize {
                        break;
                    }
                    if admin || self.may_view(tx, actor, &row, now)? {
                        seen.push(row);
                    }
                }
                seen
            } else if admin {
                rq::list(tx, status, cursor.as_ref(), limit + 1)?
            } else {
                rq::list_visible(tx, status, actor, &approvable, cursor.as_ref(), limit + 1)?
            };
            let more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            let next = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
            let requests = rows
                .into_iter()
                .map(|row| self.request_view(tx, row, now))
                .collect::<Result<_, _>>()?;
            Ok(ListPage { requests, next })
        })
    }

    /// The issued certificate line; only the requester may fetch it.
    ///
    /// The one read that hands out a credential: a waiting SSH `request` fetches it
    /// after its user may have been disabled, so the caller's disabled mark is read with
    /// it. The request, both marks and the certificate come in one statement (one round
    /// trip and no transaction on PostgreSQL); when there is no such request, or its row
    /// does not parse, a full read says which, as for any other read.
    pub fn certificate(&self, actor: &UserName, id: &RequestId) -> Result<String, ServiceError> {
        let read = self
            .store
            .read_single(|tx| rq::get_marked_with_certificate(tx, id, actor));
        let (row, cert) = match read {
            // The requester sees their own request whatever their groups.
            Ok(Some((marked, cert))) if &marked.row.requester == actor => {
                if marked.actor_disabled {
                    return Err(super::disabled_error(actor));
                }
                (marked.row, cert)
            }
            Err(e) if !matches!(e, crate::store::StoreError::Corrupt(_)) => return Err(e.into()),
            _ => self.store.read(|tx| {
                let (row, _) = self.visible_to_enabled(tx, actor, id)?;
                let cert = certs::for_request(tx, id)?.map(|c| c.certificate);
                Ok::<_, ServiceError>((row, cert))
            })?,
        };
        if &row.requester != actor {
            return Err(ServiceError::Forbidden(
                "only the requester may fetch the certificate".into(),
            ));
        }
        cert.ok_or_else(|| ServiceError::Conflict {
            code: crate::error_code::ErrorCode::NotIssued,
            message: format!(
                "request {id} is {}, no certificate was issued",
                row.status.as_str()
            ),
        })
    }

    /// Audit events (admins only).
    pub fn audit_events(
        &self,
        actor: &UserName,
        filter: &audit::Filter,
    ) -> Result<Vec<audit::Event>, ServiceError> {
        self.require_audit_reader(actor, None)?;
        Ok(self.store.read(|tx| audit::query(tx, filter))?)
    }

    /// [`Service::audit_events`] for the credential `credential` of `actor`: a service
    /// account's (`bot = true`) token with the `read-audit` scope reads the log too, so
    /// that streaming it to a SIEM hangs on no person's account.
    pub fn audit_events_as(
        &self,
        actor: &UserName,
        credential: &super::Credential,
        filter: &audit::Filter,
    ) -> Result<Vec<audit::Event>, ServiceError> {
        self.require_audit_reader(actor, Some(credential))?;
        Ok(self.store.read(|tx| audit::query(tx, filter))?)
    }

    /// Recomputes the audit chain (admins only over the API; the CLI runs it locally).
    pub fn audit_verify(&self, actor: Option<&UserName>) -> Result<audit::Verified, ServiceError> {
        if let Some(actor) = actor {
            self.require_admin(actor, "read the audit log")?;
        }
        Ok(audit::verify_store(&self.store)?)
    }

    /// Admins read the audit log; so does a service account (`bot = true` in the
    /// config) whose token has the `read-audit` scope (the door let only such a bot
    /// token reach the log). A person's scoped token reads it only if they are an admin.
    fn require_audit_reader(
        &self,
        actor: &UserName,
        credential: Option<&super::Credential>,
    ) -> Result<(), ServiceError> {
        let scoped = matches!(credential, Some(super::Credential::Bot(scopes))
            if scopes.contains(super::Scope::ReadAudit));
        let bot = self.config().policy.users.get(actor).is_some_and(|u| u.bot);
        if scoped && bot {
            return Ok(());
        }
        self.require_admin(actor, "read the audit log")
    }

    /// Whether the database answers a read of the audit log's head: what `/v1/health`
    /// reports, so that a server whose storage has failed does not look healthy.
    pub fn check_storage(&self) -> Result<(), ServiceError> {
        self.store.read(crate::store::audit::last_seq)?;
        Ok(())
    }

    /// [`Service::visible`] for an actor who must be enabled (`user_disabled` first, as
    /// `require_enabled` then `visible` would answer), in one query with the request:
    /// the request and its requester's disabled mark.
    pub(super) fn visible_to_enabled(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        id: &RequestId,
    ) -> Result<(rq::RequestRow, bool), ServiceError> {
        let marked = self.or_disabled(tx, actor, rq::get_marked(tx, id, actor))?;
        self.visible_marked(tx, actor, id, marked)
    }

    /// `read`, which also read `actor`'s disabled mark, or its error; but a disabled
    /// actor hears `user_disabled` first, as when the mark was read alone before anything
    /// else, also when the request row read with it does not parse.
    pub(super) fn or_disabled<T>(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        read: Result<T, crate::store::StoreError>,
    ) -> Result<T, ServiceError> {
        match read {
            Ok(v) => Ok(v),
            // A row read but not parsed: the transaction is intact, ask about the mark.
            Err(e @ crate::store::StoreError::Corrupt(_)) => {
                self.require_enabled(tx, actor)?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The checks of [`Service::visible_to_enabled`] on a request read with its marks
    /// (`None`: there is none).
    pub(super) fn visible_marked(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        id: &RequestId,
        marked: Option<rq::Marked>,
    ) -> Result<(rq::RequestRow, bool), ServiceError> {
        match marked {
            Some(m) => self.visible_row(tx, actor, id, m),
            None => {
                self.require_enabled(tx, actor)?;
                Err(ServiceError::NotFound(format!("no request {id}")))
            }
        }
    }

    /// The checks of [`Service::visible_marked`] on a request that exists: a disabled
    /// actor hears so; one who may not see it hears that there is none.
    fn visible_row(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        id: &RequestId,
        m: rq::Marked,
    ) -> Result<(rq::RequestRow, bool), ServiceError> {
        if m.actor_disabled {
            Err(super::disabled_error(actor))
        } else if self.may_view(tx, actor, &m.row, self.now())? {
            Ok((m.row, m.requester_disabled))
        } else {
            Err(hidden(actor, id))
        }
    }

    /// The request `id` if `actor` may see it; otherwise not found, so ids of other
    /// people's requests are not confirmed to exist.
    pub(super) fn visible(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        id: &RequestId,
    ) -> Result<rq::RequestRow, ServiceError> {
        match rq::get(tx, id)? {
            Some(row) if self.may_view(tx, actor, &row, self.now())? => Ok(row),
            Some(_) => Err(hidden(actor, id)),
            None => Err(ServiceError::NotFound(format!("no request {id}"))),
        }
    }
}

/// The answer to someone who may not see request `id`, which exists: that there is none
/// (its existence is not confirmed), and a `refused` line in the log for the operator
/// (someone reading, approving or cancelling other people's requests is probing).
fn hidden(actor: &UserName, id: &RequestId) -> ServiceError {
    tracing::warn!(
        user = %actor,
        id = %id,
        code = "not_found",
        "refused: a request this user may not see (answered that there is none)"
    );
    ServiceError::NotFound(format!("no request {id}"))
}

/// Most requests one page of a list returns (and the default page size).
pub const LIST_LIMIT: u32 = 10_000;

/// Events one page of `GET /v1/audit` holds when no `limit` is asked.
pub const AUDIT_PAGE: u32 = 100;

/// One page of [`Service::list`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListPage {
    /// The requests on this page, in the list's order.
    pub requests: Vec<RequestView>,
    /// When more requests follow: the id to pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<RequestId>,
}
