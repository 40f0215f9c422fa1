//! The lists of the web UI: what waits for one approver (and would count), and requests
//! filtered by requester or role in the store, before any limit.

use super::{RequestView, Service, ServiceError};
use crate::names::{RoleName, UserName};
use crate::policy::{People, rules};
use crate::store::requests::{self as rq, Status};

/// What [`Service::list_where`] selects.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Of this status only.
    pub status: Option<Status>,
    /// Of this role only.
    pub role: Option<RoleName>,
    /// The caller's own requests only.
    pub mine: bool,
}

impl Service {
    /// Pending requests `actor` may approve whose approval would count now: not their
    /// own, not approved by them yet, and a step they are eligible for still open (a
    /// met step is no one's inbox). Soonest to expire first; at most `limit`.
    pub fn waiting_for(
        &self,
        actor: &UserName,
        limit: usize,
    ) -> Result<Vec<RequestView>, ServiceError> {
        let (config, now) = (self.config(), self.now());
        let policy = &config.policy;
        self.store.read(|tx| {
            let idp = self.idp_groups(tx, &[actor], now)?;
            let people = People::new(policy, &idp);
            let roles: Vec<RoleName> = policy
                .roles
                .values()
                .filter(|r| people.may_decide(actor, r))
                .map(|r| r.name.clone())
                .collect();
            let rows = rq::list_from(
                tx,
                Some(Status::Pending),
                None,
                &roles,
                None,
                super::LIST_LIMIT,
            )?;
            let mut out = Vec::new();
            for row in rows {
                if &row.requester == actor || rules::is_expired(now.timestamp(), row.expires_at) {
                    continue;
                }
                let Some(role) = policy
                    .roles
                    .get(&row.role)
                    .filter(|r| r.digest() == row.role_digest)
                else {
                    continue;
                };
                let by: Vec<UserName> = rq::approvals(tx, &row.id)?
                    .into_iter()
                    .map(|a| a.approver)
                    .collect();
                let mut involved: Vec<&UserName> = vec![actor, &row.requester];
                involved.extend(&by);
                let idp = self.idp_groups(tx, &involved, now)?;
                let people = People::new(policy, &idp);
                if rules::approval_would_count(&people, role, &row.requester, &by, actor) {
                    out.push(row);
                }
            }
            // Only the rows shown are made into views (a view reads more).
            out.sort_by(|a, b| {
                a.expires_at
                    .cmp(&b.expires_at)
                    .then_with(|| a.id.as_str().cmp(b.id.as_str()))
            });
            out.truncate(limit);
            let mut views = out
                .into_iter()
                .map(|row| self.request_view(tx, row, now))
                .collect::<Result<Vec<_>, _>>()?;
            // Then the break-glass uses the actor may review now.
            for row in rq::under_review(tx, None)? {
                if views.len() >= limit {
                    break;
                }
                if self.may_review_now(tx, actor, &row, now)? {
                    views.push(self.request_view(tx, row, now)?);
                }
            }
            Ok(views)
        })
    }

    /// Requests `actor` may see, chosen by `filter` in the store (so that a limit never
    /// hides the ones asked for behind newer others), newest first; at most `limit`.
    pub fn list_where(
        &self,
        actor: &UserName,
        filter: &ListFilter,
        limit: u32,
    ) -> Result<Vec<RequestView>, ServiceError> {
        if !filter.mine && filter.role.is_none() {
            return Ok(self.list(actor, filter.status, None, limit)?.requests);
        }
        // Break-glass uses under review are few: those the actor may see, then filtered.
        if filter.status == Some(Status::PendingReview) {
            let all = self
                .list(actor, filter.status, None, super::LIST_LIMIT)?
                .requests;
            return Ok(all
                .into_iter()
                .filter(|r| !filter.mine || r.requester == actor.as_str())
                .filter(|r| {
                    filter
                        .role
                        .as_ref()
                        .is_none_or(|role| r.role == role.as_str())
                })
                .take(limit as usize)
                .collect());
        }
        let (config, now) = (self.config(), self.now());
        let policy = &config.policy;
        self.store.read(|tx| {
            let idp = self.idp_groups(tx, &[actor], now)?;
            let people = People::new(policy, &idp);
            let sees_role = |role: &RoleName| {
                policy.is_admin(actor)
                    || policy
                        .roles
                        .get(role)
                        .is_some_and(|r| people.approves_for(actor, r))
            };
            let rows = match &filter.role {
                Some(role) if !filter.mine && sees_role(role) => rq::list_from(
                    tx,
                    filter.status,
                    None,
                    std::slice::from_ref(role),
                    None,
                    limit,
                )?,
                role => {
                    // Their own (all of them, then of the role): few, next to everyone's.
                    let own = rq::list_from(
                        tx,
                        filter.status,
                        Some(actor),
                        &[],
                        None,
                        super::LIST_LIMIT,
                    )?;
                    own.into_iter()
                        .filter(|r| role.as_ref().is_none_or(|role| &r.role == role))
                        .take(limit as usize)
                        .collect()
                }
            };
            rows.into_iter()
                .map(|row| self.request_view(tx, row, now))
                .collect::<Result<Vec<_>, _>>()
        })
    }
}
