//! What an approver needs to decide, beyond the request itself: the role's terms in
//! words, conflicts the requester holds, things worth a second look, and whether (or
//! why not) the viewer may approve. The web UI's review page shows it; the decision
//! itself goes through `approve`/`deny`, which check everything again.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{RequestView, Service, ServiceError};
use crate::names::{RequestId, UserName};
use crate::policy::rules::break_glass as bg;
use crate::policy::rules::{self, Refusal};
use crate::policy::{People, Role};
use crate::store::requests::{self as rq, Status};

/// A request as its review page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    /// The request.
    pub request: RequestView,
    /// The role's terms now, if it still exists.
    pub role: Option<RoleTerms>,
    /// Whether the role changed (or went) since the request was made: approving ends it
    /// refused (`policy_changed`).
    pub role_changed: bool,
    /// Roles conflicting with this one that the requester holds or asked for now.
    pub conflicts: Vec<HeldConflict>,
    /// Things worth a second look.
    pub flags: Vec<Flag>,
    /// When it was made, in the server's time zone (`None` in UTC).
    pub created_local: Option<String>,
    /// What the viewer may do.
    pub viewer: ViewerRights,
}

/// A role's terms, as a reviewer reads them.
#[derive(Debug, Clone, Serialize)]
pub struct RoleTerms {
    /// Who must approve, in words: `2 of group:dba AND 1 of group:security`.
    pub approval_rule: String,
    /// The lifetime a request gets when it names none (seconds).
    pub default_ttl_seconds: u64,
    /// The certificate's `force-command`, if any.
    pub force_command: Option<String>,
    /// The certificate's `source-address` networks, if any.
    pub source_address: Vec<String>,
    /// The certificate's extensions (`permit-pty`, ...).
    pub extensions: Vec<String>,
}

/// A conflicting role the requester holds.
#[derive(Debug, Clone, Serialize)]
pub struct HeldConflict {
    /// The role held (a certificate, or a pending request).
    pub role: String,
    /// The conflict's reason, from the config.
    pub reason: String,
}

/// Something about a request worth a second look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum Flag {
    /// A principal is `root`.
    RootPrincipal,
    /// The lifetime asked for is above the role's default.
    TtlAboveDefault {
        /// The role's default (seconds).
        default_seconds: u64,
    },
    /// The requester never asked for this role before.
    FirstOfRole,
    /// Made outside working hours (`[server] timezone`, `working_hours`).
    OutsideWorkingHours {
        /// The hours, in words.
        hours: String,
    },
    /// The requester holds this role already (a live certificate) or asked for it in
    /// another pending request.
    HoldsRoleAlready,
}

/// What the viewer of a review may do, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct ViewerRights {
    /// The viewer asked for it.
    pub is_requester: bool,
    /// `None`: the viewer may approve; else why not, in words.
    pub cannot_approve: Option<String>,
    /// Whether the viewer may deny it (an approver of its role, not its requester,
    /// while it is pending).
    pub may_deny: bool,
    /// A break-glass use under review: whether the viewer may give a verdict.
    pub may_review: bool,
    /// A break-glass use: why the viewer may not give a verdict, in words (`None` when
    /// they may, or when it is no break-glass use).
    pub cannot_review: Option<String>,
}

impl Service {
    /// The review of request `id` for `actor` (who must be able to see it).
    pub fn review(&self, actor: &UserName, id: &RequestId) -> Result<Review, ServiceError> {
        let (config, now) = (self.config(), self.now());
        let policy = &config.policy;
        let held = self.held();
        self.store.read(|tx| {
            let row = self.visible(tx, actor, id)?;
            let first = !rq::asked_before(tx, &row.requester, &row.role, row.created_at, id)?;
            let rivals: Vec<_> = policy.conflicting_roles(&row.role).into_iter().collect();
            // The rival roles and this one, in one read: conflicts, and "holds it already".
            let mut asked = rivals.clone();
            asked.push(&row.role);
            let holds = rq::holdings(tx, &row.requester, now.timestamp(), held, Some(id), &asked)?;
            let holds_same = holds.contains(&row.role);
            let approved_by: Vec<UserName> = rq::approvals(tx, id)?
                .into_iter()
                .map(|a| a.approver)
                .collect();
            let mut involved: Vec<&UserName> = vec![actor, &row.requester];
            involved.extend(&approved_by);
            let idp = self.idp_groups(tx, &involved, now)?;
            let people = People::new(policy, &idp);
            let role = policy.roles.get(&row.role);
            let role_changed = role.is_none_or(|r| r.digest() != row.role_digest);
            let created = DateTime::<Utc>::from_timestamp(row.created_at, 0).ok_or_else(|| {
                crate::store::StoreError::Corrupt(format!("request {id}: created_at out of range"))
            })?;
            let (role_name, requester) = (row.role.clone(), row.requester.clone());
            let request = self.request_view(tx, row, now)?;
            let conflicts = holds
                .iter()
                .filter_map(|held| {
                    let c = policy.conflict_between(&role_name, held)?;
                    Some(HeldConflict {
                        role: held.to_string(),
                        reason: c.reason.clone(),
                    })
                })
                .collect::<Vec<_>>();
            let mut flags = Vec::new();
            if request.principals.iter().any(|p| p == "root") {
                flags.push(Flag::RootPrincipal);
            }
            if let Some(role) = role {
                let default = role.default_ttl.as_secs();
                if u64::try_from(request.ttl_seconds).is_ok_and(|t| t > default) {
                    flags.push(Flag::TtlAboveDefault {
                        default_seconds: default,
                    });
                }
            }
            if first {
                flags.push(Flag::FirstOfRole);
            }
            let hours = &config.server.working_hours;
            if hours.outside(created) {
                flags.push(Flag::OutsideWorkingHours {
                    hours: hours.describe(),
                });
            }
            if holds_same {
                flags.push(Flag::HoldsRoleAlready);
            }
            let facts = Facts {
                people: &people,
                requester: &requester,
                role,
                approved_by: &approved_by,
                role_changed,
                conflicts: &conflicts,
            };
            let viewer = rights(&facts, &request, actor);
            Ok(Review {
                role: role.map(terms),
                role_changed,
                conflicts,
                flags,
                created_local: hours.local(created),
                viewer,
                request,
            })
        })
    }
}

/// A role's terms in words.
fn terms(role: &Role) -> RoleTerms {
    RoleTerms {
        approval_rule: role.approval_rule(),
        default_ttl_seconds: role.default_ttl.as_secs(),
        force_command: role.force_command.clone(),
        source_address: role
            .source_address
            .iter()
            .map(ToString::to_string)
            .collect(),
        extensions: role.extensions.iter().cloned().collect(),
    }
}

/// What `actor` may do with `request`, and why not: the checks `approve` makes, in
/// the order a viewer needs them, with the rules' own functions.
fn rights(facts: &Facts<'_>, request: &RequestView, actor: &UserName) -> ViewerRights {
    let Facts {
        people,
        requester,
        role,
        approved_by,
        role_changed,
        conflicts,
    } = *facts;
    let is_requester = requester == actor;
    let pending = request.status == Status::Pending;
    let approver = role.is_some_and(|r| people.may_decide(actor, r));
    let cannot_approve = match role {
        _ if !pending => Some(format!(
            "it is {}: there is nothing left to decide",
            request.status.as_str()
        )),
        _ if is_requester => Some("it is your own request: someone else must approve it".into()),
        Some(role) if !role_changed => {
            match rules::approver_may_approve(people, role, requester, actor, approved_by) {
                Err(Refusal::AlreadyApproved { .. }) => {
                    let at = request
                        .approvals
                        .iter()
                        .find(|a| a.approver == actor.as_str());
                    Some(format!(
                        "you approved it already, at {}",
                        at.map_or("", |a| &a.at)
                    ))
                }
                Err(Refusal::NotAnApprover { .. }) => Some(format!(
                    "you are not among the approvers of role {} ({})",
                    role.name,
                    role.approval_rule()
                )),
                Err(other) => Some(other.to_string()),
                Ok(())
                    if !rules::approval_would_count(
                        people,
                        role,
                        requester,
                        approved_by,
                        actor,
                    ) =>
                {
                    Some(format!(
                        "the approvals you may give are all given: it still needs {}",
                        still_needed(request)
                    ))
                }
                Ok(()) => final_conflict(
                    people,
                    role,
                    requester,
                    approved_by,
                    actor,
                    request,
                    conflicts,
                ),
            }
        }
        _ => Some(format!(
            "role {} changed (or was removed) since the request was made: it can no longer be \
             approved; approving would end it refused",
            request.role
        )),
    };
    let (may_review, cannot_review) = match &request.breakglass {
        Some(b) => match review_refusal(people, request, b, actor) {
            None => (true, None),
            Some(why) => (false, Some(why)),
        },
        None => (false, None),
    };
    ViewerRights {
        is_requester,
        cannot_approve,
        may_deny: pending && !is_requester && approver,
        may_review,
        cannot_review,
    }
}

/// Why `actor` may not give a verdict on the break-glass use `request` (`b`), in words;
/// `None` if they may: the rule `review_breakglass` applies.
fn review_refusal(
    people: &People<'_>,
    request: &RequestView,
    b: &crate::service::BreakGlassView,
    actor: &UserName,
) -> Option<String> {
    if b.outcome.is_some() {
        return Some("its review is closed".into());
    }
    let reviewers: Vec<crate::policy::Member> = b
        .reviewers
        .iter()
        .filter_map(|m| crate::policy::Member::parse(m))
        .collect();
    let (Ok(role), Ok(invoker)) = (
        crate::names::RoleName::parse(&request.role),
        UserName::parse(&request.requester),
    ) else {
        return Some("its role or invoker cannot be read".into());
    };
    let review = bg::Review {
        role: &role,
        reviewers: &reviewers,
        reviews: b.reviews_required,
    };
    let done: Vec<UserName> = b
        .verdicts
        .iter()
        .filter_map(|v| UserName::parse(&v.reviewer).ok())
        .collect();
    bg::may_review(
        people,
        &review,
        (&invoker, b.allowed_by.as_deref()),
        actor,
        &done,
    )
    .err()
    .map(|r| r.to_string())
}

/// Why an approval that would issue the certificate is refused at signing: the
/// requester holds a conflicting role. (A non-final approval is recorded anyway; the
/// conflict is shown beside it.)
fn final_conflict(
    people: &People<'_>,
    role: &Role,
    requester: &UserName,
    approved_by: &[UserName],
    actor: &UserName,
    request: &RequestView,
    conflicts: &[HeldConflict],
) -> Option<String> {
    let mut with = approved_by.to_vec();
    with.push(actor.clone());
    let last = rules::tally(people, role, requester, &with).is_complete();
    conflicts.first().filter(|_| last).map(|c| {
        format!(
            "{} holds role {}, which conflicts with {} ({}): the certificate would be refused",
            request.requester, c.role, request.role, c.reason
        )
    })
}

/// The steps still open, in words: `1 more of group:security`.
fn still_needed(request: &RequestView) -> String {
    request
        .waiting_for
        .iter()
        .map(|s| format!("{} more of {}", s.remaining, s.approvers.join(", ")))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// What [`rights`] decides from.
#[derive(Clone, Copy)]
struct Facts<'a> {
    people: &'a People<'a>,
    requester: &'a UserName,
    role: Option<&'a Role>,
    approved_by: &'a [UserName],
    role_changed: bool,
    conflicts: &'a [HeldConflict],
}
