//! Approving a pending request, and signing its certificate with the last approval.

use super::plan::ApprovePlan;
use super::{Attempt, changed, flatten};
use crate::audit::{self, NewEvent, RequestApproved};
use crate::names::{RequestId, RoleName, Text, UserName};
use crate::policy::People;
use crate::policy::rules::{self, Refusal};
use crate::service::issue::{Grounds, ReadAhead, Signing, read_for_signing};
use crate::service::{RequestView, Service, ServiceError, SteppedUp, unix, view};
use crate::store::requests::{self as rq, RequestRow, Status};

impl Service {
    /// Records `actor`'s approval; when it is the last one needed, checks the request again
    /// and signs the certificate in the same transaction.
    pub fn approve(
        &self,
        who: &SteppedUp,
        id: &RequestId,
        comment: Option<Text>,
    ) -> Result<RequestView, ServiceError> {
        self.approve_seen(who, id, comment, None)
    }

    /// [`Service::approve`], only if the request is still at the `version` the approver
    /// reviewed (its `RequestView::version`), else `request_changed` and nothing written.
    pub fn approve_seen(
        &self,
        who: &SteppedUp,
        id: &RequestId,
        comment: Option<Text>,
        seen: Option<&str>,
    ) -> Result<RequestView, ServiceError> {
        let plan = self.plan_approve(who, id);
        self.approve_planned(who, id, comment, seen, plan)
    }

    /// [`Service::approve_seen`] as planned by [`Service::plan_approve`] (before the
    /// batch's transaction began).
    pub fn approve_planned(
        &self,
        who: &SteppedUp,
        id: &RequestId,
        comment: Option<Text>,
        seen: Option<&str>,
        plan: ApprovePlan,
    ) -> Result<RequestView, ServiceError> {
        let actor = who.user_for(crate::service::StepUp::Approve)?;
        // Approving may sign: never by a clock the database disagrees with.
        self.clock_agrees()?;
        let config = self.config();
        let policy = &config.policy;
        // The moment it acts: now, after its batch took the lock, not the plan's (a
        // deadline passed meanwhile counts).
        let now = self.now();
        // A plan made for another request is not used (its answers would not be either:
        // they are checked against the request read under the lock).
        let ahead = plan.ahead.filter(|_| plan.id == *id);
        // On PostgreSQL, what signing checks is read with the request, under the write
        // lock, in one round trip (sent ahead with the batch's BEGIN when it can be: the
        // plan): it depends only on the request's role and requester, which never
        // change, so they are known before (outside the lock).
        let held = self.held();
        flatten(self.store.write(|tx| {
            // Who may not even read the request hears only that there is none (as GET), and
            // leaves no trace: nothing of its state, nothing to fill the audit log with.
            // The request comes with the actor's and the requester's disabled marks, in one
            // round trip under the write lock; a disabled actor hears so first.
            // Its approvals are read with it (one round trip on PostgreSQL): nothing below
            // writes an approval before they are used.
            let rivals: Option<Vec<&RoleName>> = ahead
                .as_ref()
                .map(|(_, _, rivals, _)| rivals.iter().collect());
            let ask =
                ahead
                    .as_ref()
                    .zip(rivals.as_deref())
                    .map(|((_, requester, _, serial), roles)| rq::SigningAsk {
                        asking: (requester, unix(now), held, Some(id)),
                        roles,
                        serial: *serial,
                    });
            let read = rq::get_marked_with_approvals(tx, id, actor, ask);
            let (marked, approvals, signing) = match self.or_disabled(tx, actor, read)? {
                Some((marked, approvals, signing)) => (Some(marked), approvals, signing),
                None => (None, Vec::new(), None),
            };
            let key_facts = marked.as_ref().map(|m| m.key_facts.clone());
            let (row, requester_disabled) = self.visible_marked(tx, actor, id, marked)?;
            // Read with the request, which exists here: never a default in its place.
            let Some(key_facts) = key_facts else {
                return Err(ServiceError::NotFound(format!("no request {id}")));
            };
            let attempt = Attempt::on(actor, "request.approve", &row);
            // The provider's groups of everyone this decision counts, in one read (none
            // without [oidc]).
            let mut involved: Vec<&UserName> = vec![actor, &row.requester];
            involved.extend(approvals.iter().map(|a| &a.approver));
            let idp = self.idp_groups(tx, &involved, now)?;
            let people = People::new(policy, &idp);
            // One who may read it but not approve it (an admin) hears so before its state.
            let may = policy
                .roles
                .get(&row.role)
                .is_none_or(|role| people.may_decide(actor, role));
            if actor != &row.requester && !may {
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
                && seen != view::version(policy, &row, &approvals)
            {
                return Ok(Err(changed(id)));
            }
            if actor == &row.requester {
                return self.refuse(tx, now, &attempt, Refusal::SelfApproval);
            }
            let role = match rules::role_unchanged(policy, &row.role, &row.role_digest) {
                Ok(role) => role,
                Err(r) => return self.end_refused(tx, now, actor, &row, r),
            };
            let mut approvals = approvals;
            let approved_by: Vec<UserName> = approvals.iter().map(|a| a.approver.clone()).collect();
            if let Err(r) =
                rules::approver_may_approve(&people, role, &row.requester, actor, &approved_by)
            {
                return self.refuse(tx, now, &attempt, r);
            }
            let mut all = approved_by;
            all.push(actor.clone());
            let tally = rules::tally(&people, role, &row.requester, &all);
            // What signing checks, read before this write records anything (on SQLite a
            // read after a held write costs the write a savepoint, `store/writer/held.rs`):
            // with the request when read ahead, about the request it was asked about; else
            // now. Nothing this write records changes it.
            let signing = if tally.is_complete() {
                let read_ahead = signing
                    .zip(ahead.as_ref())
                    .filter(|(_, (role, requester, _, _))| {
                        role == &row.role && requester == &row.requester
                    })
                    .map(|(read, (_, requester, rivals, serial))| ReadAhead {
                        about: (id.clone(), requester.clone()),
                        rivals: rivals.clone(),
                        held,
                        serial: *serial,
                        read,
                    });
                match read_ahead {
                    Some(read) => Some(read),
                    None => Some(read_for_signing(tx, policy, &row, held, now)?),
                }
            } else {
                None
            };
            let comment = comment.as_ref().map(Text::as_str);
            rq::insert_approval(tx, id, actor, unix(now), comment)?;
            audit::append(
                tx,
                now,
                &NewEvent::on_request(
                    actor.as_str(),
                    id.as_str(),
                    RequestApproved {
                        role: row.role.to_string(),
                        requester: row.requester.to_string(),
                        comment: comment.map(str::to_owned),
                    },
                ),
            )?;
            // The answer is built from what this write read and wrote, not read back.
            approvals.push(rq::ApprovalRow {
                approver: actor.clone(),
                at: unix(now),
                comment: comment.map(str::to_owned),
            });
            approvals.sort_by_key(|a| a.at); // stable: the store's order (time, then insertion)
            if !tally.is_complete() {
                // Read, not assumed: disabling cancels the user's pending requests, but
                // this view must say what is stored.
                return Ok(Ok(view::assemble(
                    &people,
                    row,
                    approvals,
                    None,
                    requester_disabled,
                    now,
                )));
            }
            let signing = Signing {
                people: &people,
                requester_disabled,
                key_facts: &key_facts,
                grounds: Grounds::Approved(&tally),
                ahead: signing,
            };
            let cert = match self.issue(tx, now, actor, role, &row, signing)? {
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
                &people,
                row,
                approvals,
                Some(&cert),
                // Issuing refuses a disabled requester, checked in this transaction.
                false,
                now,
            )))
        }))
    }
}
