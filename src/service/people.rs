//! The provider's groups of the people a decision is about, read in its transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{RequestView, Service, ServiceError, view};
use crate::names::{GroupName, UserName};
use crate::policy::{IdpGroups, Member, People, rules};
use crate::store::breakglass as uses;
use crate::store::certificates as certs;
use crate::store::requests::{self as rq, RequestRow, Status};
use crate::store::users as disabled;
use crate::store::{StoreError, Tx, sessions};

impl Service {
    /// What the identity provider says about `users` at `now`: for each with a live
    /// session, the countersign groups of their latest one. Nothing without `[oidc]` (and
    /// then nothing is read).
    pub(super) fn idp_groups(
        &self,
        tx: &Tx<'_>,
        users: &[&UserName],
        now: DateTime<Utc>,
    ) -> Result<IdpGroups, ServiceError> {
        let mut out = IdpGroups::default();
        if self.config().oidc.is_none() {
            return Ok(out);
        }
        for (user, words) in sessions::live_groups(tx, users, now.timestamp())? {
            out.insert(user.clone(), agreed(&user, &words)?);
        }
        Ok(out)
    }
}

/// The groups every one of `words` (JSON lists: the provider's words of one second on
/// `user`) gives: what they agree on.
pub(super) fn agreed(user: &UserName, words: &[String]) -> Result<BTreeSet<GroupName>, StoreError> {
    let mut agreed: Option<BTreeSet<GroupName>> = None;
    for word in words {
        let names: Vec<String> = serde_json::from_str(word)
            .map_err(|e| StoreError::Corrupt(format!("the groups of a session of {user}: {e}")))?;
        let groups = names
            .iter()
            .map(|g| {
                GroupName::parse(g).map_err(|e| {
                    StoreError::Corrupt(format!("a group of a session of {user}: {e}"))
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        agreed = Some(match agreed {
            Some(before) => before.intersection(&groups).cloned().collect(),
            None => groups,
        });
    }
    Ok(agreed.unwrap_or_default())
}

impl Service {
    /// The view of `row` as stored at `now`: its approvals, certificate and requester's
    /// mark are read, and the provider's groups of the people it counts.
    pub(super) fn request_view(
        &self,
        tx: &Tx<'_>,
        row: RequestRow,
        now: DateTime<Utc>,
    ) -> Result<RequestView, ServiceError> {
        let approvals = rq::approvals(tx, &row.id)?;
        let certificate = certs::for_request(tx, &row.id)?;
        let disabled = disabled::is_disabled(tx, &row.requester)?;
        let config = self.config();
        let mut involved: Vec<&UserName> = approvals.iter().map(|a| &a.approver).collect();
        involved.push(&row.requester);
        let idp = self.idp_groups(tx, &involved, now)?;
        let people = People::new(&config.policy, &idp);
        let used = match row.status {
            // Only an issued request can be a break-glass use.
            Status::Issued => uses::get(tx, &row.id)?,
            _ => None,
        };
        let view = view::assemble(&people, row, approvals, certificate.as_ref(), disabled, now);
        Ok(match used {
            Some(used) => {
                let verdicts = uses::verdicts(tx, &used.request_id)?;
                view::with_breakglass(view, used, verdicts, now)
            }
            None => view,
        })
    }

    /// Whether `actor` may see a request by `requester` for `role`: by `[users]` alone,
    /// else (with `[oidc]`) by the actor's groups from the provider too, read in `tx`.
    pub(super) fn may_view(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        row: &RequestRow,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let config = self.config();
        let role = config.policy.roles.get(&row.role);
        let toml = People::of_policy(&config.policy);
        if rules::may_view(&toml, role, &row.requester, actor) {
            return Ok(true);
        }
        // A break-glass use's reviewers see it too (as the table named them at the use).
        let reviewers: Option<Vec<Member>> = match row.status {
            Status::Issued => uses::get(tx, &row.id)?.map(|u| {
                u.reviewers
                    .iter()
                    .filter_map(|m| Member::parse(m))
                    .collect()
            }),
            _ => None,
        };
        let reviews = |people: &People<'_>| {
            reviewers.as_ref().is_some_and(|r| {
                people.is_known(actor) && !people.is_bot(actor) && people.is_any_member(actor, r)
            })
        };
        if config.oidc.is_none() {
            return Ok(reviews(&toml));
        }
        let idp = self.idp_groups(tx, &[actor], now)?;
        let people = People::new(&config.policy, &idp);
        Ok(rules::may_view(&people, role, &row.requester, actor) || reviews(&people))
    }
}
