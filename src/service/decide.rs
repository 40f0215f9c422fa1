//! The state changes: create, approve (and sign), deny, cancel, expire.
//!
//! Every function here runs inside the caller's `BEGIN IMMEDIATE` transaction. An outer
//! `Err` rolls back; `Ok(Err(refusal))` commits the refusal's audit row (and any state it
//! ended) and then reports the refusal.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{RequestView, Service, ServiceError, unix, view};
use crate::audit::{
    self, AttemptRefused, NewEvent, RequestApproved, RequestCancelled, RequestCreated,
    RequestDenied, RequestExpired, RequestRefused, SYSTEM_ACTOR,
};
use crate::names::{Principal, RequestId, RoleName, Text, UserName};
use crate::policy::Role;
use crate::policy::rules::{self, Refusal};
use crate::pubkey::SubjectKey;
use crate::store::Tx;
use crate::store::requests::{self as rq, RequestRow, Status};

/// A request as parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub role: RoleName,
    pub public_key: SubjectKey,
    pub reason: Text,
    pub ttl: Option<Duration>,
}

pub(super) type Outcome<T> = Result<Result<T, ServiceError>, ServiceError>;

fn flatten<T>(r: Outcome<T>) -> Result<T, ServiceError> {
    r.and_then(|inner| inner)
}

/// A request as asked for and checked, before it has an id.
#[derive(Clone, Copy)]
struct Asked<'a> {
    actor: &'a UserName,
    role: &'a Role,
    req: &'a NewRequest,
    ttl: Duration,
    principals: &'a [Principal],
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

/// Records a refused attempt (who tried what, and the code) and returns the refusal.
fn refuse<T>(tx: &Tx<'_>, now: DateTime<Utc>, a: &Attempt<'_>, refusal: Refusal) -> Outcome<T> {
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
    Ok(Err(refusal.into()))
}

/// Ends a pending request as refused (checked again at signing and failed).
pub(super) fn end_refused<T>(
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
        &NewEvent {
            actor: actor.as_str(),
            request_id: Some(row.id.as_str()),
            serial: None,
            event: RequestRefused {
                role: row.role.to_string(),
                requester: row.requester.to_string(),
                code: refusal.code().to_owned(),
                message: refusal.to_string(),
            }
            .into(),
        },
    )?;
    Ok(Err(refusal.into()))
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

/// Cancels a pending request (its requester, or an admin revoking the requester, with
/// `note` saying why), with its `request.cancelled` audit row; false if it was no longer
/// pending (nothing written).
pub(super) fn cancel_pending(
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
        &NewEvent {
            actor: actor.as_str(),
            request_id: Some(row.id.as_str()),
            serial: None,
            event: event.into(),
        },
    )?;
    Ok(true)
}

/// Marks one overdue request expired; false if it was no longer pending.
pub(super) fn expire(
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
        &NewEvent {
            actor: SYSTEM_ACTOR,
            request_id: Some(row.id.as_str()),
            serial: None,
            event: RequestExpired {
                role: row.role.to_string(),
                requester: row.requester.to_string(),
                expires_at: view::rfc3339(row.expires_at),
            }
            .into(),
        },
    )?;
    Ok(true)
}

/// A pending, unexpired request, or the refusal that applies (`already_decided`,
/// `expired`, the latter also ending the request).
fn still_pending(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    actor: &UserName,
    attempt: &str,
    row: &RequestRow,
) -> Outcome<()> {
    if row.status != Status::Pending {
        let status = row.status.as_str();
        return refuse(
            tx,
            now,
            &Attempt {
                actor,
                what: attempt,
                request: Some(&row.id),
                role: &row.role,
            },
            Refusal::AlreadyDecided { status },
        );
    }
    if rules::is_expired(unix(now), row.expires_at) {
        expire(tx, now, row)?;
        return refuse(
            tx,
            now,
            &Attempt {
                actor,
                what: attempt,
                request: Some(&row.id),
                role: &row.role,
            },
            Refusal::Expired,
        );
    }
    Ok(Ok(()))
}

impl Service {
    /// Creates a pending request for `actor`.
    pub fn create_request(
        &self,
        actor: &UserName,
        req: NewRequest,
    ) -> Result<RequestView, ServiceError> {
        let config = self.config();
        let policy = &config.policy;
        let role = policy
            .roles
            .get(&req.role)
            .ok_or_else(|| ServiceError::Invalid(format!("unknown role {}", req.role)))?;
        let ttl = rules::certificate_ttl(role, req.ttl).map_err(ServiceError::Invalid)?;
        self.check_subject_key(actor, &req.public_key)?;
        let principals = role
            .principals_for(actor)
            .map_err(|e| ServiceError::Invalid(format!("role {}: {e}", role.name)))?;
        let now = self.now();
        let limit = config.requests.max_pending_per_user;
        flatten(self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            // Counted inside the transaction: racing creates cannot pass the limit together.
            if rq::pending_count(tx, actor, unix(now))? >= limit {
                return Ok(Err(ServiceError::TooManyPending { limit }));
            }
            if let Err(r) = rules::requester_must_be_listed(policy, role, actor) {
                return refuse(
                    tx,
                    now,
                    &Attempt {
                        actor,
                        what: "request.create",
                        request: None,
                        role: &role.name,
                    },
                    r,
                );
            }
            let rivals: Vec<_> = policy.conflicting_roles(&role.name).into_iter().collect();
            let holdings = rq::holdings(tx, actor, unix(now), self.held(), None, &rivals)?;
            if let Err(r) = rules::no_conflicting_holding(policy, &role.name, actor, &holdings) {
                let r = self.conflict_lifts(tx, now, r, None)?;
                return refuse(
                    tx,
                    now,
                    &Attempt {
                        actor,
                        what: "request.create",
                        request: None,
                        role: &role.name,
                    },
                    r,
                );
            }
            let asked = Asked {
                actor,
                role,
                req: &req,
                ttl,
                principals: &principals,
            };
            let row = self.new_row(tx, now, &asked)?;
            rq::insert(tx, &row)?;
            audit::append(
                tx,
                now,
                &NewEvent {
                    actor: actor.as_str(),
                    request_id: Some(row.id.as_str()),
                    serial: None,
                    event: RequestCreated {
                        role: row.role.to_string(),
                        reason: row.reason.clone(),
                        ttl_seconds: row.ttl_seconds,
                        principals: row.principals.clone(),
                        public_key_fingerprint: row.key_fingerprint.clone(),
                        role_digest: row.role_digest.clone(),
                        expires_at: view::rfc3339(row.expires_at),
                    }
                    .into(),
                },
            )?;
            // A new request has no approvals and no certificate yet: nothing to read back.
            // Its requester was just checked to be enabled, in this transaction.
            Ok(Ok(view::assemble(
                policy,
                row,
                Vec::new(),
                None,
                false,
                now,
            )))
        }))
    }

    /// A `sod_conflict` through a certificate revoked (or given back) less than
    /// `revocation_grace` ago, told when it lifts; any other refusal as it is.
    pub(super) fn conflict_lifts(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        refusal: Refusal,
        except: Option<&RequestId>,
    ) -> Result<Refusal, ServiceError> {
        Ok(match refusal {
            Refusal::SodConflict {
                user,
                role,
                held,
                reason,
                lifts_at: None,
            } => {
                let lifts =
                    rq::revoked_hold_lifts(tx, &user, &held, unix(now), self.held(), except)?;
                Refusal::SodConflict {
                    user,
                    role,
                    held,
                    reason,
                    lifts_at: lifts.map(view::rfc3339),
                }
            }
            other => other,
        })
    }

    fn check_subject_key(&self, actor: &UserName, key: &SubjectKey) -> Result<(), ServiceError> {
        if self.ca.is_ca_key(key) {
            return Err(ServiceError::Invalid(
                "the CA key cannot be certified".into(),
            ));
        }
        // Refused before anything is written, as bad input (`invalid_request`); checked
        // again at signing, where a changed config ends the request `key_not_allowed`.
        rules::key_must_be_requesters(&self.config().policy, actor, key)
            .map_err(|r| ServiceError::Invalid(r.to_string()))
    }

    /// The row of a new pending request, under an id not taken yet.
    fn new_row(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        asked: &Asked<'_>,
    ) -> Result<RequestRow, ServiceError> {
        let Asked {
            actor,
            role,
            req,
            ttl,
            principals,
        } = *asked;
        let mut id = RequestId::new_at(unix(now), &mut rand::rng());
        while rq::exists(tx, &id)? {
            id = RequestId::new_at(unix(now), &mut rand::rng());
        }
        let pending_ttl = self.config().requests.pending_ttl.as_secs() as i64;
        Ok(RequestRow {
            id,
            role: role.name.clone(),
            requester: actor.clone(),
            reason: req.reason.as_str().to_owned(),
            ttl_seconds: ttl.as_secs() as i64,
            public_key: req.public_key.to_openssh(),
            key_fingerprint: req.public_key.fingerprint(),
            principals: principals.iter().map(|p| p.as_str().to_owned()).collect(),
            role_digest: role.digest(),
            status: Status::Pending,
            created_at: unix(now),
            expires_at: unix(now) + pending_ttl,
            decided_at: None,
            decided_by: None,
            decision_code: None,
            decision_note: None,
        })
    }

    /// Records `actor`'s approval; when it is the last one needed, checks the request again
    /// and signs the certificate in the same transaction.
    pub fn approve(
        &self,
        actor: &UserName,
        id: &RequestId,
        comment: Option<Text>,
    ) -> Result<RequestView, ServiceError> {
        let config = self.config();
        let policy = &config.policy;
        let now = self.now();
        flatten(self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            // Who may not even read the request hears only that there is none (as GET), and
            // leaves no trace: nothing of its state, nothing to fill the audit log with.
            let row = self.visible(tx, actor, id)?;
            // One who may read it but not approve it (an admin) hears so before its state.
            let may = policy
                .roles
                .get(&row.role)
                .is_none_or(|role| policy.may_decide(actor, role));
            if actor != &row.requester && !may {
                let r = Refusal::NotAnApprover {
                    user: actor.clone(),
                    role: row.role.clone(),
                };
                return refuse(
                    tx,
                    now,
                    &Attempt {
                        actor,
                        what: "request.approve",
                        request: Some(id),
                        role: &row.role,
                    },
                    r,
                );
            }
            if let Err(e) = still_pending(tx, now, actor, "request.approve", &row)? {
                return Ok(Err(e));
            }
            if actor == &row.requester {
                return refuse(
                    tx,
                    now,
                    &Attempt {
                        actor,
                        what: "request.approve",
                        request: Some(id),
                        role: &row.role,
                    },
                    Refusal::SelfApproval,
                );
            }
            let role = match rules::role_unchanged(policy, &row.role, &row.role_digest) {
                Ok(role) => role,
                Err(r) => return end_refused(tx, now, actor, &row, r),
            };
            let mut approvals = rq::approvals(tx, id)?;
            let approved_by: Vec<UserName> = approvals.iter().map(|a| a.approver.clone()).collect();
            if let Err(r) =
                rules::approver_may_approve(policy, role, &row.requester, actor, &approved_by)
            {
                return refuse(
                    tx,
                    now,
                    &Attempt {
                        actor,
                        what: "request.approve",
                        request: Some(id),
                        role: &row.role,
                    },
                    r,
                );
            }
            let comment = comment.as_ref().map(Text::as_str);
            rq::insert_approval(tx, id, actor, unix(now), comment)?;
            audit::append(
                tx,
                now,
                &NewEvent {
                    actor: actor.as_str(),
                    request_id: Some(id.as_str()),
                    serial: None,
                    event: RequestApproved {
                        role: row.role.to_string(),
                        requester: row.requester.to_string(),
                        comment: comment.map(str::to_owned),
                    }
                    .into(),
                },
            )?;
            let mut all = approved_by;
            all.push(actor.clone());
            let tally = rules::tally(policy, role, &row.requester, &all);
            // The answer is built from what this write read and wrote, not read back.
            approvals.push(rq::ApprovalRow {
                approver: actor.clone(),
                at: unix(now),
                comment: comment.map(str::to_owned),
            });
            approvals.sort_by_key(|a| a.at); // stable: the store's order (time, then insertion)
            // Read, not assumed: disabling cancels the user's pending requests, but this
            // view must say what is stored.
            let disabled = crate::store::users::is_disabled(tx, &row.requester)?;
            if !tally.is_complete() {
                return Ok(Ok(view::assemble(
                    policy, row, approvals, None, disabled, now,
                )));
            }
            let cert = match self.issue(tx, now, actor, role, &row, &tally)? {
                Ok(cert) => cert,
                Err(e) => return Ok(Err(e)),
            };
            let row = RequestRow {
                status: Status::Issued,
                decided_at: Some(unix(now)),
                decided_by: Some(actor.to_string()),
                decision_code: None,
                decision_note: None,
                ..row
            };
            Ok(Ok(view::assemble(
                policy,
                row,
                approvals,
                Some(&cert),
                disabled,
                now,
            )))
        }))
    }

    /// Denies a pending request; only someone who could approve it may.
    pub fn deny(
        &self,
        actor: &UserName,
        id: &RequestId,
        reason: Text,
    ) -> Result<RequestView, ServiceError> {
        let config = self.config();
        let policy = &config.policy;
        let now = self.now();
        flatten(self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let row = self.visible(tx, actor, id)?;
            if actor == &row.requester {
                return Ok(Err(ServiceError::Forbidden(
                    "you cannot deny your own request; cancel it instead".into(),
                )));
            }
            let may = policy
                .roles
                .get(&row.role)
                .is_some_and(|role| policy.may_decide(actor, role));
            if !may {
                let r = Refusal::NotAnApprover {
                    user: actor.clone(),
                    role: row.role.clone(),
                };
                return refuse(
                    tx,
                    now,
                    &Attempt {
                        actor,
                        what: "request.deny",
                        request: Some(id),
                        role: &row.role,
                    },
                    r,
                );
            }
            if let Err(e) = still_pending(tx, now, actor, "request.deny", &row)? {
                return Ok(Err(e));
            }
            decided(rq::decide(
                tx,
                id,
                &rq::Decision {
                    status: Status::Denied,
                    at: unix(now),
                    by: actor.as_str(),
                    code: Some("denied"),
                    note: Some(reason.as_str()),
                },
            )?)?;
            audit::append(
                tx,
                now,
                &NewEvent {
                    actor: actor.as_str(),
                    request_id: Some(id.as_str()),
                    serial: None,
                    event: RequestDenied {
                        role: row.role.to_string(),
                        requester: row.requester.to_string(),
                        reason: reason.as_str().to_owned(),
                    }
                    .into(),
                },
            )?;
            let row = rq::get(tx, id)?
                .ok_or_else(|| ServiceError::NotFound(format!("no request {id}")))?;
            Ok(Ok(view::request(tx, policy, row, now)?))
        }))
    }

    /// Cancels one's own pending request.
    pub fn cancel(&self, actor: &UserName, id: &RequestId) -> Result<RequestView, ServiceError> {
        let config = self.config();
        let policy = &config.policy;
        let now = self.now();
        flatten(self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let row = self.visible(tx, actor, id)?;
            if actor != &row.requester {
                return Ok(Err(ServiceError::Forbidden(
                    "only the requester may cancel a request".into(),
                )));
            }
            if let Err(e) = still_pending(tx, now, actor, "request.cancel", &row)? {
                return Ok(Err(e));
            }
            decided(cancel_pending(tx, now, actor, &row, None)?)?;
            let row = rq::get(tx, id)?
                .ok_or_else(|| ServiceError::NotFound(format!("no request {id}")))?;
            Ok(Ok(view::request(tx, policy, row, now)?))
        }))
    }
}
