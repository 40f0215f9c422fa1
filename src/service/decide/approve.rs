//! Approving a pending request, and signing its certificate with the last approval.

use super::{Attempt, end_refused, flatten, refuse, still_pending};
use crate::audit::{self, NewEvent, RequestApproved};
use crate::names::{RequestId, Text, UserName};
use crate::policy::rules::{self, Refusal};
use crate::service::{RequestView, Service, ServiceError, unix, view};
use crate::store::requests::{self as rq, RequestRow, Status};

impl Service {
    /// Records `actor`'s approval; when it is the last one needed, checks the request again
    /// and signs the certificate in the same transaction.
    pub fn approve(
        &self,
        actor: &UserName,
        id: &RequestId,
        comment: Option<Text>,
    ) -> Result<RequestView, ServiceError> {
        // Approving may sign: never by a clock the database disagrees with.
        self.clock_agrees()?;
        let config = self.config();
        let policy = &config.policy;
        let now = self.now();
        flatten(self.store.write(|tx| {
            // Who may not even read the request hears only that there is none (as GET), and
            // leaves no trace: nothing of its state, nothing to fill the audit log with.
            // The request comes with the actor's and the requester's disabled marks, in one
            // round trip under the write lock; a disabled actor hears so first.
            // Its approvals are read with it (one round trip on PostgreSQL): nothing below
            // writes an approval before they are used.
            let read = rq::get_marked_with_approvals(tx, id, actor);
            let (marked, approvals) = match self.or_disabled(tx, actor, read)? {
                Some((marked, approvals)) => (Some(marked), approvals),
                None => (None, Vec::new()),
            };
            let (row, requester_disabled) = self.visible_marked(tx, actor, id, marked)?;
            let attempt = Attempt::on(actor, "request.approve", &row);
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
                return refuse(tx, now, &attempt, r);
            }
            if let Err(e) = still_pending(tx, now, &attempt, &row)? {
                return Ok(Err(e));
            }
            if actor == &row.requester {
                return refuse(tx, now, &attempt, Refusal::SelfApproval);
            }
            let role = match rules::role_unchanged(policy, &row.role, &row.role_digest) {
                Ok(role) => role,
                Err(r) => return end_refused(tx, now, actor, &row, r),
            };
            let mut approvals = approvals;
            let approved_by: Vec<UserName> = approvals.iter().map(|a| a.approver.clone()).collect();
            if let Err(r) =
                rules::approver_may_approve(policy, role, &row.requester, actor, &approved_by)
            {
                return refuse(tx, now, &attempt, r);
            }
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
            if !tally.is_complete() {
                // Read, not assumed: disabling cancels the user's pending requests, but
                // this view must say what is stored.
                return Ok(Ok(view::assemble(
                    policy,
                    row,
                    approvals,
                    None,
                    requester_disabled,
                    now,
                )));
            }
            let cert = match self.issue(tx, now, actor, role, &row, requester_disabled, &tally)? {
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
                // Issuing refuses a disabled requester, checked in this transaction.
                false,
                now,
            )))
        }))
    }
}
