//! Separation-of-duties rules as pure functions of (policy, facts, now).
//!
//! The service layer gathers the facts inside its transaction and asks these functions;
//! it never decides anything itself. Each refusal carries a stable `code` that the HTTP
//! API and the SSH front door report verbatim.

use std::time::Duration;

use super::{Member, People, Policy, Role};
use crate::error_code::ErrorCode;
use crate::names::{RoleName, UserName};

/// Why an action was refused; `code()` is the public, binding error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The user is not in the role's `requesters`.
    #[error("{user} may not request role {role}")]
    NotARequester {
        /// Who asked.
        user: UserName,
        /// The role asked for.
        role: RoleName,
    },
    /// The user is in none of the role's approval steps.
    #[error("{user} may not approve requests for role {role}")]
    NotAnApprover {
        /// Who tried to approve or deny.
        user: UserName,
        /// The request's role.
        role: RoleName,
    },
    /// Nobody approves their own request: admins included.
    #[error("you cannot approve your own request")]
    SelfApproval,
    /// Each person counts once.
    #[error("{user} has already approved this request")]
    AlreadyApproved {
        /// Who tried to approve again.
        user: UserName,
    },
    /// The requester holds, or has asked for, a conflicting role.
    #[error(
        "role {role} conflicts with {held}, which {user} holds or has requested: {reason}{}",
        lifts_note(.lifts_at)
    )]
    SodConflict {
        /// The requester.
        user: UserName,
        /// The role asked for.
        role: RoleName,
        /// The conflicting role the requester holds or has asked for.
        held: RoleName,
        /// The conflict's `reason` from the policy.
        reason: String,
        /// Set when `held` is held only through certificates revoked (or given back)
        /// less than `revocation_grace` ago: when the conflict lifts, RFC 3339.
        lifts_at: Option<String>,
    },
    /// The role was changed or removed after the request was made.
    #[error("role {role} changed since the request was made; request it again")]
    PolicyChanged {
        /// The request's role.
        role: RoleName,
    },
    /// The request waited longer than `pending_ttl`.
    #[error("the request expired before it was approved")]
    Expired,
    /// The request has already ended.
    #[error("the request is already {status}")]
    AlreadyDecided {
        /// How it ended (`issued`, `denied`, ...).
        status: &'static str,
    },
    /// A `{user}` principal made from the requester's name belongs to someone else.
    #[error(
        "role {role} would give {user} the principal {principal}, {why}; a person with this \
         name cannot have this role (an admin can rename the account at the identity provider \
         or change the role's principals)"
    )]
    PrincipalTaken {
        /// The requester.
        user: UserName,
        /// The role asked for.
        role: RoleName,
        /// The principal the template gives.
        principal: String,
        /// Whose it is, as the end of a sentence.
        why: String,
    },
    /// The key is not one the requester may have certified: another user registered it,
    /// or the requester registered keys and it is none of them.
    #[error("public key {fingerprint} {why}")]
    KeyNotAllowed {
        /// The key's SHA-256 fingerprint.
        fingerprint: String,
        /// Why not, as the end of a sentence about the key.
        why: String,
    },
    /// A break-glass rule said no.
    #[error(transparent)]
    BreakGlass(#[from] BreakGlassRefusal),
}

/// What a conflict through a revoked certificate adds to the message: why it still
/// counts, and until when.
fn lifts_note(lifts_at: &Option<String>) -> String {
    match lifts_at {
        Some(at) => format!(
            "; its certificate was revoked, but counts as held for [requests] revocation_grace \
             after the revocation (servers refuse it only after their next KRL fetch): the \
             conflict lifts at {at}"
        ),
        None => String::new(),
    }
}

impl Refusal {
    /// The stable `error.code` for this refusal.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// [`Refusal::code`] as one of the public [`ErrorCode`]s.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Refusal::NotARequester { .. } => ErrorCode::NotARequester,
            Refusal::NotAnApprover { .. } => ErrorCode::NotAnApprover,
            Refusal::SelfApproval => ErrorCode::SelfApproval,
            Refusal::AlreadyApproved { .. } => ErrorCode::AlreadyApproved,
            Refusal::SodConflict { .. } => ErrorCode::SodConflict,
            Refusal::PolicyChanged { .. } => ErrorCode::PolicyChanged,
            Refusal::Expired => ErrorCode::Expired,
            Refusal::AlreadyDecided { .. } => ErrorCode::AlreadyDecided,
            Refusal::KeyNotAllowed { .. } => ErrorCode::KeyNotAllowed,
            Refusal::PrincipalTaken { .. } => ErrorCode::PrincipalTaken,
            Refusal::BreakGlass(b) => b.error_code(),
        }
    }
}

/// Rule 1: only the role's requesters may ask for it.
pub fn requester_must_be_listed(
    people: &People<'_>,
    role: &Role,
    user: &UserName,
) -> Result<(), Refusal> {
    if people.is_known(user) && people.is_any_member(user, &role.requesters) {
        Ok(())
    } else {
        Err(Refusal::NotARequester {
            user: user.clone(),
            role: role.name.clone(),
        })
    }
}

/// Rule 4: no role while holding (or having asked for) one that conflicts with it.
/// `holdings` are the roles of the user's active certificates and open requests, the
/// request being decided excluded.
pub fn no_conflicting_holding<'a>(
    policy: &Policy,
    role: &RoleName,
    user: &UserName,
    holdings: impl IntoIterator<Item = &'a RoleName>,
) -> Result<(), Refusal> {
    for held in holdings {
        if let Some(conflict) = policy.conflict_between(role, held) {
            return Err(Refusal::SodConflict {
                user: user.clone(),
                role: role.clone(),
                held: held.clone(),
                reason: conflict.reason.clone(),
                lifts_at: None,
            });
        }
    }
    Ok(())
}

/// Rule 5: the role must be exactly what it was when the request was made.
pub fn role_unchanged<'p>(
    policy: &'p Policy,
    role: &RoleName,
    digest: &str,
) -> Result<&'p Role, Refusal> {
    match policy.roles.get(role) {
        Some(r) if r.digest() == digest => Ok(r),
        _ => Err(Refusal::PolicyChanged { role: role.clone() }),
    }
}

/// Rules 2 and 3 for one new approval: not the requester, eligible for some step, and
/// not counted already.
pub fn approver_may_approve(
    people: &People<'_>,
    role: &Role,
    requester: &UserName,
    approver: &UserName,
    approved_by: &[UserName],
) -> Result<(), Refusal> {
    if approver == requester {
        return Err(Refusal::SelfApproval);
    }
    if approved_by.contains(approver) {
        return Err(Refusal::AlreadyApproved {
            user: approver.clone(),
        });
    }
    if people.may_decide(approver, role) {
        Ok(())
    } else {
        Err(Refusal::NotAnApprover {
            user: approver.clone(),
            role: role.name.clone(),
        })
    }
}

/// Rule 6: a request past its pending deadline is expired.
pub fn is_expired(now: i64, expires_at: i64) -> bool {
    now >= expires_at
}

/// What the approvals so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// For each counted approver, the index of the step it counts toward.
    pub counted: Vec<(UserName, usize)>,
    /// For each step, how many more approvals it needs.
    pub missing: Vec<u32>,
}

impl Tally {
    /// Whether every step is met.
    pub fn is_complete(&self) -> bool {
        self.missing.iter().all(|&m| m == 0)
    }

    /// Approvals still needed, over all steps.
    pub fn still_needed(&self) -> u32 {
        self.missing.iter().sum()
    }
}

/// Rule 3: counts approvals toward steps so that each person counts once and as many
/// steps as possible are met (a maximum bipartite matching of people to step slots, so an
/// approver eligible for two steps never blocks a later, narrower approver). The requester
/// and anyone no longer eligible never count.
pub fn tally(
    people: &People<'_>,
    role: &Role,
    requester: &UserName,
    approved_by: &[UserName],
) -> Tally {
    let slots: Vec<usize> = role
        .steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| std::iter::repeat_n(i, s.approvals as usize))
        .collect();
    let mut who: Vec<&UserName> = approved_by
        .iter()
        .filter(|u| *u != requester && people.is_known(u))
        .collect();
    // Each person counts once, whatever the caller passed.
    who.sort();
    who.dedup();
    let eligible = |p: &UserName, slot: usize| {
        !people.is_bot(p) && people.is_any_member(p, &role.steps[slots[slot]].approvers)
    };
    let mut slot_owner: Vec<Option<usize>> = vec![None; slots.len()];
    for person in 0..who.len() {
        let mut seen = vec![false; slots.len()];
        augment(person, &who, &eligible, &mut slot_owner, &mut seen);
    }
    let mut missing: Vec<u32> = role.steps.iter().map(|s| s.approvals).collect();
    let mut counted = Vec::new();
    for (slot, owner) in slot_owner.iter().enumerate() {
        if let Some(p) = owner {
            missing[slots[slot]] -= 1;
            counted.push((who[*p].clone(), slots[slot]));
        }
    }
    counted.sort();
    Tally { counted, missing }
}

/// Whether an approval by `approver` would count toward the role's steps, on top of
/// `approved_by`'s: false when every step they are eligible for is met already (or they
/// already approved, or are the requester). Approving then records an approval that
/// brings the request no closer to a certificate.
pub fn approval_would_count(
    people: &People<'_>,
    role: &Role,
    requester: &UserName,
    approved_by: &[UserName],
    approver: &UserName,
) -> bool {
    let before = tally(people, role, requester, approved_by).still_needed();
    let mut with = approved_by.to_vec();
    with.push(approver.clone());
    tally(people, role, requester, &with).still_needed() < before
}

/// Kuhn's augmenting path: tries to give `person` a slot, moving earlier owners if needed.
fn augment(
    person: usize,
    people: &[&UserName],
    eligible: &impl Fn(&UserName, usize) -> bool,
    slot_owner: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for slot in 0..slot_owner.len() {
        if seen[slot] || !eligible(people[person], slot) {
            continue;
        }
        seen[slot] = true;
        let free = match slot_owner[slot] {
            None => true,
            Some(other) => augment(other, people, eligible, slot_owner, seen),
        };
        if free {
            slot_owner[slot] = Some(person);
            return true;
        }
    }
    false
}

/// Users who could meet every step of `role` for `requester` with distinct people, or
/// the index of the first step that cannot be met. Used by the config loader to warn.
pub fn satisfiable(policy: &Policy, role: &Role, requester: &UserName) -> Result<(), usize> {
    let everyone: Vec<UserName> = policy.users.keys().cloned().collect();
    let t = tally(&People::of_policy(policy), role, requester, &everyone);
    match t.missing.iter().position(|&m| m > 0) {
        None => Ok(()),
        Some(step) => Err(step),
    }
}

/// A requested TTL, or the role's default; longer than `max_ttl` is an error, never
/// clamped.
pub fn certificate_ttl(role: &Role, requested: Option<Duration>) -> Result<Duration, String> {
    let ttl = requested.unwrap_or(role.default_ttl);
    if ttl > role.max_ttl {
        return Err(format!(
            "ttl {} exceeds role {}'s max_ttl {}",
            humantime::format_duration(ttl),
            role.name,
            humantime::format_duration(role.max_ttl)
        ));
    }
    Ok(ttl)
}

/// Whether `user` may see a request by `requester` for `role`: the requester, anyone who
/// may approve it, and admins.
pub fn may_view(
    people: &People<'_>,
    role: Option<&Role>,
    requester: &UserName,
    user: &UserName,
) -> bool {
    user == requester || people.is_admin(user) || role.is_some_and(|r| people.approves_for(user, r))
}

/// Names of the members of a step, for "waiting for 1 approval from group:dba".
pub fn describe_members(members: &[Member]) -> String {
    members
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub mod break_glass;
mod keys;
mod principals;

pub use break_glass::BreakGlassRefusal;
pub use keys::{
    KeyFacts, device_session_key_must_be_registered, key_must_be_registered,
    key_must_be_requesters, key_owner, registered_to_another,
};
pub(crate) use principals::SYSTEM_ACCOUNTS;
pub use principals::principals_must_be_own;

#[cfg(test)]
mod tests;
