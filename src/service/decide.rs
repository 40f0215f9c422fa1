//! The state changes: create, approve (and sign), deny, cancel, expire.
//!
//! Every function here runs inside the caller's `BEGIN IMMEDIATE` transaction. An outer
//! `Err` rolls back; `Ok(Err(refusal))` commits the refusal's audit row (and any state it
//! ended) and then reports the refusal.
//!
//! This file holds what every change shares (refusals, ending a request, expiry); each
//! operation has its own file: `create.rs`, `approve.rs`, `deny.rs` (deny and cancel).

mod approve;
mod breakglass;
mod create;
mod deny;
mod plan;
mod reminders;
mod verdict;

use chrono::{DateTime, Utc};

use super::{Service, ServiceError, unix, view};
use crate::audit::{
    self, AttemptRefused, NewEvent, RequestCancelled, RequestExpired, RequestRefused, SYSTEM_ACTOR,
};
use crate::config::NotifyEvent;
use crate::metrics::Outcome as Ended;
use crate::names::{RequestId, RoleName, Text, UserName};
use crate::policy::rules::{self, Refusal};
use crate::store::Tx;
use crate::store::requests::{self as rq, RequestRow, Status};

pub use create::{Created, IDEMPOTENCY_KEY_LIFETIME, NewRequest};
pub use plan::{ApprovePlan, CreatePlan};
pub use verdict::Allowance;

pub(super) type Outcome<T> = Result<Result<T, ServiceError>, ServiceError>;

fn flatten<T>(r: Outcome<T>) -> Result<T, ServiceError> {
    r.and_then(|inner| inner)
}

/// Who tried what: the subject of an `attempt.refused` event.
struct Attempt<'a> {
    actor: &'a UserName,
    /// `request.create`, `request.approve`, ...
    what: &'a str,
    /// The request it was about, once there is one.
    request: Option<&'a RequestId>,
    role: &'a RoleName,
}

impl<'a> Attempt<'a> {
    /// `actor`'s attempt `what` on the request `row`.
    fn on(actor: &'a UserName, what: &'a str, row: &'a RequestRow) -> Self {
        Attempt {
            actor,
            what,
            request: Some(&row.id),
            role: &row.role,
        }
    }
}

/// `request_changed`: the request is not at the version the decider reviewed.
fn changed(id: &RequestId) -> ServiceError {
    ServiceError::Conflict {
        code: crate::error_code::ErrorCode::RequestChanged,
        message: format!(
            "request {id} changed since you reviewed it (an approval, a decision, or its \
             role); review it again"
        ),
    }
}

/// A decision that found the request no longer pending: it lost a race and must not be
/// recorded (the checks before it run in the same transaction, so this should not happen).
pub(super) fn decided(changed: bool) -> Result<(), ServiceError> {
    if changed {
        Ok(())
    } else {
        Err(ServiceError::Conflict {
            code: crate::error_code::ErrorCode::AlreadyDecided,
            message: "the request changed while it was being decided".into(),
        })
    }
}

impl Service {
    /// Records a refused attempt (who tried what, and the code) and returns the refusal.
    fn refuse<T>(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        a: &Attempt<'_>,
        refusal: Refusal,
    ) -> Outcome<T> {
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: a.actor.as_str(),
                request_id: a.request.map(RequestId::as_str),
                serial: None,
                event: AttemptRefused {
                    attempt: a.what.to_owned(),
                    role: a.role.to_string(),
                    code: refusal.code().to_owned(),
                    message: refusal.to_string(),
                }
                .into(),
            },
        )?;
        self.count_refusal(tx, refusal.code());
        Ok(Err(refusal.into()))
    }

    /// Counts, once `tx` commits, a refusal with `code`.
    fn count_refusal(&self, tx: &Tx<'_>, code: &str) {
        let code = code.to_owned();
        self.count(tx, move |m| m.refused(&code));
    }

    /// Ends a pending request as refused (checked again at signing and failed).
    pub(in crate::service) fn end_refused<T>(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        actor: &UserName,
        row: &RequestRow,
        refusal: Refusal,
    ) -> Outcome<T> {
        decided(rq::decide(
            tx,
            &row.id,
            &rq::Decision {
                status: Status::Refused,
                at: unix(now),
                by: actor.as_str(),
                code: Some(refusal.code()),
                note: Some(&refusal.to_string()),
            },
        )?)?;
        audit::append(
            tx,
            now,
            &NewEvent::on_request(
                actor.as_str(),
                row.id.as_str(),
                RequestRefused {
                    role: row.role.to_string(),
                    requester: row.requester.to_string(),
                    code: refusal.code().to_owned(),
                    message: refusal.to_string(),
                },
            ),
        )?;
        self.tell(tx, now, NotifyEvent::RequestDecided, &row.id)?;
        self.count_decided(tx, row.role.as_str(), row.created_at, Ended::Refused);
        self.count_refusal(tx, refusal.code());
        Ok(Err(refusal.into()))
    }

    /// Cancels a pending request (its requester, or an admin revoking the requester, with
    /// `note` saying why), with its `request.cancelled` audit row; false if it was no longer
    /// pending (nothing written).
    pub(in crate::service) fn cancel_pending(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        actor: &UserName,
        row: &RequestRow,
        note: Option<&Text>,
    ) -> Result<bool, ServiceError> {
        let note = note.map(Text::as_str);
        if !rq::decide(
            tx,
            &row.id,
            &rq::Decision {
                status: Status::Cancelled,
                at: unix(now),
                by: actor.as_str(),
                code: Some("cancelled"),
                note,
            },
        )? {
            return Ok(false);
        }
        let event = RequestCancelled {
            role: row.role.to_string(),
            // A cancellation with a reason (disabling) says whose and why.
            requester: note.map(|_| row.requester.to_string()),
            reason: note.map(str::to_owned),
        };
        audit::append(
            tx,
            now,
            &NewEvent::on_request(actor.as_str(), row.id.as_str(), event),
        )?;
        self.tell(tx, now, NotifyEvent::RequestDecided, &row.id)?;
        self.count_decided(tx, row.role.as_str(), row.created_at, Ended::Cancelled);
        Ok(true)
    }

    /// Marks one overdue request expired; false if it was no longer pending.
    pub(in crate::service) fn expire(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        row: &RequestRow,
    ) -> Result<bool, ServiceError> {
        if !rq::decide(
            tx,
            &row.id,
            &rq::Decision {
                status: Status::Expired,
                at: unix(now),
                by: SYSTEM_ACTOR,
                code: Some("expired"),
                note: None,
            },
        )? {
            return Ok(false);
        }
        audit::append(
            tx,
            now,
            &NewEvent::on_request(
                SYSTEM_ACTOR,
                row.id.as_str(),
                RequestExpired {
                    role: row.role.to_string(),
                    requester: row.requester.to_string(),
                    expires_at: view::rfc3339(row.expires_at),
                },
            ),
        )?;
        self.tell(tx, now, NotifyEvent::RequestDecided, &row.id)?;
        self.count_decided(tx, row.role.as_str(), row.created_at, Ended::Expired);
        Ok(true)
    }

    /// A pending, unexpired request, or the refusal of `attempt` (about `row`) that applies
    /// (`already_decided`, `expired`, the latter also ending the request).
    fn still_pending(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        attempt: &Attempt<'_>,
        row: &RequestRow,
    ) -> Outcome<()> {
        if row.status != Status::Pending {
            let status = row.status.as_str();
            return self.refuse(tx, now, attempt, Refusal::AlreadyDecided { status });
        }
        if rules::is_expired(unix(now), row.expires_at) {
            self.expire(tx, now, row)?;
            return self.refuse(tx, now, attempt, Refusal::Expired);
        }
        Ok(Ok(()))
    }
}
