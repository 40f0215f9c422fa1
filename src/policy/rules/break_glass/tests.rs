//! The break-glass rules, case by case.

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
    let may = |invoker: &str, reviewer: &str, done: &[&str]| allowed(invoker, None, reviewer, done);
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
