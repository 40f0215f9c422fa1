//! Ending a pending request without a certificate: denied by an approver, or cancelled
//! by its requester.

use super::{Attempt, changed, decided, flatten};
use crate::audit::{self, NewEvent, RequestDenied};
use crate::names::{RequestId, Text, UserName};
use crate::policy::People;
use crate::policy::rules::Refusal;
use crate::service::{RequestView, Service, ServiceError, unix, view};
use crate::store::requests::{self as rq, Status};

impl Service {
    /// Denies a pending request; only someone who could approve it may.
    pub fn deny(
        &self,
        actor: &UserName,
        id: &RequestId,
        reason: Text,
    ) -> Result<RequestView, ServiceError> {
        self.deny_seen(actor, id, reason, None)
    }

    /// [`Service::deny`], only if the request is still at the `version` the approver
    /// reviewed, else `request_changed` and nothing written.
    pub fn deny_seen(
        &self,
        actor: &UserName,
        id: &RequestId,
        reason: Text,
        seen: Option<&str>,
    ) -> Result<RequestView, ServiceError> {
        let config = self.config();
        let policy = &config.policy;
        let now = self.now();
        flatten(self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let row = self.visible(tx, actor, id)?;
            let attempt = Attempt::on(actor, "request.deny", &row);
            if actor == &row.requester {
                return Ok(Err(ServiceError::Forbidden(
                    "you cannot deny your own request; cancel it instead".into(),
                )));
            }
            let idp = self.idp_groups(tx, &[actor], now)?;
            let people = People::new(policy, &idp);
            let may = policy
                .roles
                .get(&row.role)
                .is_some_and(|role| people.may_decide(actor, role));
            if !may {
                let r = Refusal::NotAnApprover {
                    user: actor.clone(),
                    role: row.role.clone(),
                };
                return self.refuse(tx, now, &attempt, r);
            }
            if let Err(e) = self.still_pending(tx, now, &attempt, &row)? {
                return Ok(Err(e));
            }
            // A decided or expired request says so (and is audited) before it says it
            // changed.
            if let Some(seen) = seen
                && seen != view::version(policy, &row, &rq::approvals(tx, id)?)
            {
                return Ok(Err(changed(id)));
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
                &NewEvent::on_request(
                    actor.as_str(),
                    id.as_str(),
                    RequestDenied {
                        role: row.role.to_string(),
                        requester: row.requester.to_string(),
                        reason: reason.as_str().to_owned(),
                    },
                ),
            )?;
            self.tell(tx, now, crate::config::NotifyEvent::RequestDecided, id)?;
            let denied = crate::metrics::Outcome::Denied;
            self.count_decided(tx, row.role.as_str(), row.created_at, denied);
            let row = rq::get(tx, id)?
                .ok_or_else(|| ServiceError::NotFound(format!("no request {id}")))?;
            Ok(Ok(self.request_view(tx, row, now)?))
        }))
    }

    /// Cancels one's own pending request.
    pub fn cancel(&self, actor: &UserName, id: &RequestId) -> Result<RequestView, ServiceError> {
        let now = self.now();
        flatten(self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let row = self.visible(tx, actor, id)?;
            if actor != &row.requester {
                return Ok(Err(ServiceError::Forbidden(
                    "only the requester may cancel a request".into(),
                )));
            }
            let attempt = Attempt::on(actor, "request.cancel", &row);
            if let Err(e) = self.still_pending(tx, now, &attempt, &row)? {
                return Ok(Err(e));
            }
            decided(self.cancel_pending(tx, now, actor, &row, None)?)?;
            let row = rq::get(tx, id)?
                .ok_or_else(|| ServiceError::NotFound(format!("no request {id}")))?;
            Ok(Ok(self.request_view(tx, row, now)?))
        }))
    }
}
