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
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::Config;

    fn config(table: &str) -> Config {
        let text = format!(
            r#"
[users.alice]
groups = ["oncall"]
[users.bob]
groups = ["security"]
[users.carol]
groups = ["security", "oncall"]
[users.dave]
groups = ["dev"]
[users.robot]
groups = ["oncall", "security"]
bot = true

[roles.prod-db]
principals = ["postgres"]
requesters = ["group:dev"]
approvers = ["group:security"]
max_ttl = "4h"
default_ttl = "30m"
{table}
"#
        );
        Config::from_toml_str(&text, "t.toml".as_ref(), "/tmp".as_ref()).unwrap()
    }

    const TABLE: &str = r#"
[roles.prod-db.break_glass]
invokers = ["group:oncall"]
max_ttl = "1h"
reason_pattern = "^INC-[0-9]+"
reviewers = ["group:security"]
reviews = 2
"#;

    fn u(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    #[test]
    fn only_listed_people_break_the_glass_of_a_role_that_has_the_table() {
        let c = config(TABLE);
        let people = People::of_policy(&c.policy);
        let role = c.policy.roles.values().next().unwrap();
        let bg = table(role).unwrap();
        assert!(invoker_must_be_listed(&people, role, bg, &u("alice")).is_ok());
        for who in ["dave", "bob", "robot", "nobody"] {
            let r = invoker_must_be_listed(&people, role, bg, &u(who));
            assert!(
                matches!(r, Err(BreakGlassRefusal::NotAnInvoker { .. })),
                "{who}"
            );
        }
        let plain = config("");
        let role = plain.policy.roles.values().next().unwrap();
        assert!(matches!(
            table(role),
            Err(BreakGlassRefusal::NotBreakable { .. })
        ));
    }

    #[test]
    fn the_reason_matches_and_a_long_ttl_is_cut_not_refused() {
        let c = config(TABLE);
        let role = c.policy.roles.values().next().unwrap();
        let bg = table(role).unwrap();
        assert!(reason_must_match(bg, "INC-4211 db down").is_ok());
        assert!(reason_must_match(bg, "db down").is_err());
        let hour = Duration::from_secs(3600);
        assert_eq!(lifetime(role, bg, Some(hour * 3)), (hour, true));
        assert_eq!(lifetime(role, bg, Some(hour / 4)), (hour / 4, false));
        assert_eq!(lifetime(role, bg, None), (hour / 2, false));
    }

    #[test]
    fn a_second_use_waits_for_the_first_review_unless_allowed() {
        let r = no_unreviewed_use(
            &u("alice"),
            Some(LastUse::Unreviewed("r-aaaaaaaaaaaa")),
            false,
        );
        assert!(matches!(r, Err(BreakGlassRefusal::Unreviewed { .. })));
        assert!(
            no_unreviewed_use(
                &u("alice"),
                Some(LastUse::Unreviewed("r-aaaaaaaaaaaa")),
                true
            )
            .is_ok()
        );
        assert!(no_unreviewed_use(&u("alice"), None, false).is_ok());
        let r = no_unreviewed_use(
            &u("alice"),
            Some(LastUse::Unjustified("r-bbbbbbbbbbbb")),
            false,
        );
        assert!(
            matches!(&r, Err(BreakGlassRefusal::Unjustified { previous, .. }) if previous == "r-bbbbbbbbbbbb"),
            "{r:?}"
        );
        let last = Some(LastUse::Unjustified("r-bbbbbbbbbbbb"));
        assert!(no_unreviewed_use(&u("alice"), last, true).is_ok());
    }

    #[test]
    fn reviewers_are_listed_people_never_the_invoker_once_each() {
        let c = config(TABLE);
        let people = People::of_policy(&c.policy);
        let role = c.policy.roles.values().next().unwrap();
        let bg = table(role).unwrap();
        let allowed = |invoker: &str, by: Option<&str>, reviewer: &str, done: &[&str]| {
            let done: Vec<UserName> = done.iter().map(|d| u(d)).collect();
            may_review(
                &people,
                &Review::of(role, bg),
                (&u(invoker), by),
                &u(reviewer),
                &done,
            )
        };
        let may =
            |invoker: &str, reviewer: &str, done: &[&str]| allowed(invoker, None, reviewer, done);
        // The admin who allowed one more use does not review it; others do.
        assert_eq!(
            allowed("alice", Some("bob"), "bob", &[]),
            Err(BreakGlassRefusal::AllowedIt { user: u("bob") })
        );
        assert!(allowed("alice", Some("bob"), "carol", &[]).is_ok());
        assert!(may("alice", "bob", &[]).is_ok());
        // carol is a reviewer, but not of her own use.
        assert_eq!(
            may("carol", "carol", &[]),
            Err(BreakGlassRefusal::SelfReview)
        );
        assert!(may("alice", "carol", &["bob"]).is_ok());
        assert!(matches!(
            may("alice", "dave", &[]),
            Err(BreakGlassRefusal::NotAReviewer { .. })
        ));
        assert!(matches!(
            may("alice", "robot", &[]),
            Err(BreakGlassRefusal::NotAReviewer { .. })
        ));
        assert!(matches!(
            may("alice", "bob", &["bob"]),
            Err(BreakGlassRefusal::AlreadyReviewed { .. })
        ));
        assert_eq!(
            may("dave", "bob", &["carol", "x"]),
            Err(BreakGlassRefusal::ReviewClosed)
        );
    }

    proptest! {
        /// A review closes exactly when `reviews` verdicts are in, and is justified only if
        /// every verdict is.
        #[test]
        fn a_review_is_justified_only_if_every_verdict_is(
            verdicts in proptest::collection::vec(any::<bool>(), 0..8),
            reviews in 1u32..6,
        ) {
            let vs: Vec<Verdict> = verdicts
                .iter()
                .map(|j| if *j { Verdict::Justified } else { Verdict::Unjustified })
                .collect();
            let s = review_state(&vs, reviews);
            prop_assert_eq!((s.justified + s.unjustified) as usize, vs.len());
            prop_assert_eq!(s.outcome.is_some(), vs.len() >= reviews as usize);
            if let Some(o) = s.outcome {
                prop_assert_eq!(o == Verdict::Justified, verdicts.iter().all(|j| *j));
            }
        }
    }
}
