//! `[roles.NAME.break_glass]`: who may take a role at once in an emergency, for how
//! long, with what reason, and who reviews it afterwards.

use std::time::Duration;

use serde::Deserialize;

use super::{Builder, ConfigError};
use crate::policy::{BreakGlass, Member, Policy, ReasonPattern};

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreakGlass {
    pub invokers: Vec<String>,
    pub max_ttl: Option<String>,
    pub reason_pattern: Option<String>,
    pub reviewers: Vec<String>,
    pub reviews: Option<u32>,
    pub review_within: Option<String>,
}

/// Most compiled size of a `reason_pattern` (the `regex` crate's limit), so that a
/// pattern cannot take the server's memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Bounds of `review_within`.
const REVIEW_WITHIN: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(300)..=Duration::from_secs(30 * 24 * 3600);

impl Builder<'_> {
    /// Validates the break-glass table of the role `key` (`roles.NAME`), whose normal
    /// `max_ttl` is `role_max_ttl`: break-glass never grants longer than the role does.
    pub(super) fn break_glass(
        &mut self,
        policy: &Policy,
        key: &str,
        raw: RawBreakGlass,
        role_max_ttl: Duration,
    ) -> Result<BreakGlass, ConfigError> {
        let key = format!("{key}.break_glass");
        let invokers = self.members(policy, &format!("{key}.invokers"), &raw.invokers)?;
        let reviewers = self.members(policy, &format!("{key}.reviewers"), &raw.reviewers)?;
        let max_ttl = match raw.max_ttl.as_deref() {
            Some(d) => self.duration(&format!("{key}.max_ttl"), Some(d), "")?,
            None => role_max_ttl.min(Duration::from_secs(3600)),
        };
        if max_ttl > role_max_ttl {
            return Err(self.err(
                format!("{key}.max_ttl"),
                format!(
                    "must not exceed the role's max_ttl ({}): breaking the glass never \
                     grants longer than an approved request",
                    humantime::format_duration(role_max_ttl)
                ),
            ));
        }
        let reason_pattern = match raw.reason_pattern {
            Some(source) => {
                let regex = regex::RegexBuilder::new(&source)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        let why = e.to_string().replace('\n', " ");
                        self.err(format!("{key}.reason_pattern"), why)
                    })?;
                Some(ReasonPattern { source, regex })
            }
            None => None,
        };
        let reviews = raw.reviews.unwrap_or(1);
        if !(1..=100).contains(&reviews) {
            return Err(self.err(format!("{key}.reviews"), "must be between 1 and 100"));
        }
        let review_within = self.duration(
            &format!("{key}.review_within"),
            raw.review_within.as_deref(),
            "24h",
        )?;
        if !REVIEW_WITHIN.contains(&review_within) {
            return Err(self.err(format!("{key}.review_within"), "must be between 5m and 30d"));
        }
        let fed = reviewers
            .iter()
            .any(|m| matches!(m, Member::Group(g) if self.fed.contains(g)));
        if !fed {
            let n = people_named(policy, &reviewers, &[]);
            // A reviewer who may also invoke never reviews their own use.
            let both = people_named(policy, &reviewers, &invokers);
            if n < reviews as usize {
                self.warnings.push(format!(
                    "{key}: reviews = {reviews}, but only {n} people of [users] are reviewers: \
                     no use could ever be reviewed"
                ));
            } else if both > 0 && n < reviews as usize + 1 {
                self.warnings.push(format!(
                    "{key}: reviews = {reviews} of {n} reviewers, {both} of whom may also break \
                     the glass: their use could not be reviewed (never by themselves)"
                ));
            }
        }
        // `countersign breakglass allow USER` and `breakglass help` are subcommands.
        if let Some(name @ ("allow" | "help")) = key
            .strip_prefix("roles.")
            .and_then(|k| k.strip_suffix(".break_glass"))
        {
            self.warnings.push(format!(
                "{key}: `countersign breakglass {name}` is a subcommand of the CLI, not this \
                 role: break the glass for it over the SSH front door or POST /v1/breakglass, \
                 or rename the role"
            ));
        }
        Ok(BreakGlass {
            invokers,
            max_ttl,
            reason_pattern,
            reviewers,
            reviews,
            review_within,
        })
    }
}

/// How many people of `[users]` `members` names (and `also` too, when not empty); a
/// service account never reviews nor breaks the glass, so it is not counted.
fn people_named(policy: &Policy, members: &[Member], also: &[Member]) -> usize {
    let names = |list: &[Member], u: &crate::policy::User| {
        list.iter().any(|m| match m {
            Member::User(name) => *name == u.name,
            Member::Group(g) => u.groups.contains(g),
        })
    };
    policy
        .users
        .values()
        .filter(|u| !u.bot && names(members, u) && (also.is_empty() || names(also, u)))
        .count()
}
