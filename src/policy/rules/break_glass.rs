//! The rules of break-glass (`[roles.NAME.break_glass]`, issue 20) as pure functions, for
//! the service to ask inside its transactions: who may break the glass for a role, with
//! what reason and lifetime, whether a previous use still waits for its review, who may
//! review a use, and what a set of verdicts amounts to.

use std::time::Duration;

use crate::error_code::ErrorCode;
use crate::names::{RoleName, UserName};
use crate::policy::{BreakGlass, Member, People, Role};

/// Why break-glass was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakGlassRefusal {
    /// The role has no `break_glass` table: it can never be broken into.
    #[error("role {role} cannot be broken into: it has no [roles.{role}.break_glass]")]
    NotBreakable {
        /// The role asked for.
        role: RoleName,
    },
    /// The user is not among the table's invokers (or is a service account).
    #[error("{user} may not break the glass for role {role}")]
    NotAnInvoker {
        /// Who asked.
        user: UserName,
        /// The role.
        role: RoleName,
    },
    /// The reason does not match `reason_pattern`.
    #[error("the reason must match {pattern:?} (e.g. an incident id)")]
    ReasonMismatch {
        /// The pattern, as written in the config.
        pattern: String,
    },
    /// A previous use of the user's still waits for its review, and no admin allowed one
    /// more.
    #[error(
        "{user}'s break-glass {previous} is not reviewed yet: an admin may allow one more use \
         (countersign breakglass allow {user})"
    )]
    Unreviewed {
        /// Who asked.
        user: UserName,
        /// The request id of the use still under review.
        previous: String,
    },
    /// The user's last use was judged unjustified, and no admin allowed another since.
    #[error(
        "{user}'s last break-glass {previous} was judged unjustified: they break the glass \
         again only once an admin allows it (countersign breakglass allow {user})"
    )]
    Unjustified {
        /// Who asked.
        user: UserName,
        /// The request id of that use.
        previous: String,
    },
    /// The reviewer is the invoker: nobody reviews their own use.
    #[error("nobody reviews their own break-glass")]
    SelfReview,
    /// The reviewer is the admin who allowed this use (one more while the invoker's last
    /// one waited for its review): nobody reviews a use they made possible.
    #[error("{user} allowed this break-glass use: nobody reviews a use they allowed")]
    AllowedIt {
        /// Who tried.
        user: UserName,
    },
    /// The reviewer is not among the table's reviewers (or is a service account).
    #[error("{user} may not review break-glass of role {role}")]
    NotAReviewer {
        /// Who tried.
        user: UserName,
        /// The role.
        role: RoleName,
    },
    /// This reviewer gave a verdict on this use already.
    #[error("{user} reviewed this break-glass already")]
    AlreadyReviewed {
        /// Who tried.
        user: UserName,
    },
    /// The review is closed: every verdict it needed is in.
    #[error("this break-glass review is closed")]
    ReviewClosed,
    /// The request is not a break-glass use: it has no review.
    #[error("request {id} is not a break-glass use: only those are reviewed")]
    NotBreakGlass {
        /// The request named.
        id: String,
    },
}

impl BreakGlassRefusal {
    /// The public error code.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BreakGlassRefusal::NotBreakable { .. } => ErrorCode::NotBreakable,
            BreakGlassRefusal::NotAnInvoker { .. } => ErrorCode::NotAnInvoker,
            BreakGlassRefusal::ReasonMismatch { .. } => ErrorCode::ReasonMismatch,
            BreakGlassRefusal::Unreviewed { .. } => ErrorCode::UnreviewedBreakglass,
            BreakGlassRefusal::Unjustified { .. } => ErrorCode::UnjustifiedBreakglass,
            BreakGlassRefusal::SelfReview | BreakGlassRefusal::AllowedIt { .. } => {
                ErrorCode::SelfReview
            }
            BreakGlassRefusal::NotAReviewer { .. } => ErrorCode::NotAReviewer,
            BreakGlassRefusal::AlreadyReviewed { .. } => ErrorCode::AlreadyReviewed,
            BreakGlassRefusal::ReviewClosed => ErrorCode::ReviewClosed,
            BreakGlassRefusal::NotBreakGlass { .. } => ErrorCode::NotBreakglass,
        }
    }

    /// Whether it is about the state of a use (409), not about who may (403).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            BreakGlassRefusal::Unreviewed { .. }
                | BreakGlassRefusal::Unjustified { .. }
                | BreakGlassRefusal::AlreadyReviewed { .. }
                | BreakGlassRefusal::ReviewClosed
                | BreakGlassRefusal::NotBreakGlass { .. }
        )
    }
}

/// The role's break-glass table, or `NotBreakable`.
pub fn table(role: &Role) -> Result<&BreakGlass, BreakGlassRefusal> {
    role.break_glass
        .as_ref()
        .ok_or_else(|| BreakGlassRefusal::NotBreakable {
            role: role.name.clone(),
        })
}

/// Only the table's invokers break the glass, and never a service account: an emergency
/// is a person's call, and a person is reviewed afterwards.
pub fn invoker_must_be_listed(
    people: &People<'_>,
    role: &Role,
    bg: &BreakGlass,
    user: &UserName,
) -> Result<(), BreakGlassRefusal> {
    if people.is_known(user) && !people.is_bot(user) && people.is_any_member(user, &bg.invokers) {
        Ok(())
    } else {
        Err(BreakGlassRefusal::NotAnInvoker {
            user: user.clone(),
            role: role.name.clone(),
        })
    }
}

/// The reason matches `reason_pattern`, when there is one.
pub fn reason_must_match(bg: &BreakGlass, reason: &str) -> Result<(), BreakGlassRefusal> {
    match &bg.reason_pattern {
        Some(p) if !p.matches(reason) => Err(BreakGlassRefusal::ReasonMismatch {
            pattern: p.source.clone(),
        }),
        _ => Ok(()),
    }
}

/// The lifetime granted for `asked` (the role's `default_ttl` when `None`): at most the
/// table's `max_ttl`, never refused for being longer (an emergency is no time for a
/// refusal); the second value says whether it was cut.
pub fn lifetime(role: &Role, bg: &BreakGlass, asked: Option<Duration>) -> (Duration, bool) {
    let asked = asked.unwrap_or(role.default_ttl);
    if asked > bg.max_ttl {
        (bg.max_ttl, true)
    } else {
        (asked, false)
    }
}

/// The user's last use, as it bears on their next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastUse<'a> {
    /// Still under review (its request id).
    Unreviewed(&'a str),
    /// Judged unjustified (its request id).
    Unjustified(&'a str),
}

/// A user breaks the glass again only once their previous use is reviewed and was not
/// judged unjustified, unless an admin allowed one more use (`allowed`; the use spends
/// it). `last` is their last use when it stands in the way, if it does.
pub fn no_unreviewed_use(
    user: &UserName,
    last: Option<LastUse<'_>>,
    allowed: bool,
) -> Result<(), BreakGlassRefusal> {
    let user = user.clone();
    match last {
        _ if allowed => Ok(()),
        Some(LastUse::Unreviewed(previous)) => Err(BreakGlassRefusal::Unreviewed {
            user,
            previous: previous.to_owned(),
        }),
        Some(LastUse::Unjustified(previous)) => Err(BreakGlassRefusal::Unjustified {
            user,
            previous: previous.to_owned(),
        }),
        None => Ok(()),
    }
}

/// A verdict on one use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The use was justified.
    Justified,
    /// It was not: the certificate is revoked at once if still valid.
    Unjustified,
}

/// Where a review stands after its verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewState {
    /// Verdicts `justified`.
    pub justified: u32,
    /// Verdicts `unjustified`.
    pub unjustified: u32,
    /// The outcome once `reviews` verdicts are in: `justified` only if all are.
    pub outcome: Option<Verdict>,
}

/// The review a use needs: the role's `reviewers` and `reviews` as they were when the
/// glass was broken (a later change of the policy does not change a use's review).
#[derive(Debug, Clone, Copy)]
pub struct Review<'a> {
    /// The role taken.
    pub role: &'a RoleName,
    /// Who may review.
    pub reviewers: &'a [Member],
    /// Distinct verdicts that close it.
    pub reviews: u32,
}

impl<'a> Review<'a> {
    /// The review `bg` (the table of `role`) asks for.
    pub fn of(role: &'a Role, bg: &'a BreakGlass) -> Self {
        Review {
            role: &role.name,
            reviewers: &bg.reviewers,
            reviews: bg.reviews,
        }
    }
}

/// Whether `reviewer` may add a verdict to the use `invoker` made (with the allowance
/// of admin `allowed_by`, if it spent one), which already has verdicts from
/// `reviewed_by`: a listed reviewer (never a service account), never the invoker nor the
/// admin who allowed the use, once, while the review is open.
pub fn may_review(
    people: &People<'_>,
    review: &Review<'_>,
    (invoker, allowed_by): (&UserName, Option<&str>),
    reviewer: &UserName,
    reviewed_by: &[UserName],
) -> Result<(), BreakGlassRefusal> {
    if reviewer == invoker {
        return Err(BreakGlassRefusal::SelfReview);
    }
    if allowed_by == Some(reviewer.as_str()) {
        return Err(BreakGlassRefusal::AllowedIt {
            user: reviewer.clone(),
        });
    }
    let listed = people.is_known(reviewer)
        && !people.is_bot(reviewer)
        && people.is_any_member(reviewer, review.reviewers);
    if !listed {
        return Err(BreakGlassRefusal::NotAReviewer {
            user: reviewer.clone(),
            role: review.role.clone(),
        });
    }
    if reviewed_by.contains(reviewer) {
        return Err(BreakGlassRefusal::AlreadyReviewed {
            user: reviewer.clone(),
        });
    }
    if reviewed_by.len() >= review.reviews as usize {
        return Err(BreakGlassRefusal::ReviewClosed);
    }
    Ok(())
}

/// The state of a review needing `reviews` verdicts, after `verdicts`.
pub fn review_state(verdicts: &[Verdict], reviews: u32) -> ReviewState {
    let unjustified = verdicts
        .iter()
        .filter(|v| **v == Verdict::Unjustified)
        .count() as u32;
    let justified = verdicts.len() as u32 - unjustified;
    let outcome = (verdicts.len() as u32 >= reviews).then_some(if unjustified == 0 {
        Verdict::Justified
    } else {
        Verdict::Unjustified
    });
    ReviewState {
        justified,
        unjustified,
        outcome,
    }
}

#[cfg(test)]
mod tests;
