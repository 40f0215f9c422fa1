//! The review of a break-glass use: verdicts by people the use's table names (never the
//! invoker), the revocation an `unjustified` verdict makes at once, the close; and the
//! one more use an admin may allow a user whose last use waits for its review.

use chrono::{DateTime, Utc};

use super::Attempt;
use crate::audit::{self, BreakglassAllowed, BreakglassReviewClosed, BreakglassReviewed, NewEvent};
use crate::config::NotifyEvent;
use crate::names::{RequestId, Text, UserName};
use crate::policy::rules::break_glass::{self as bg, BreakGlassRefusal, Review, Verdict};
use crate::policy::{Member, People};
use crate::service::{RequestView, Service, ServiceError, SteppedUp, unix};
use crate::store::Tx;
use crate::store::breakglass::{self as uses, UseRow, VerdictRow};
use crate::store::certificates as certs;
use crate::store::requests as rq;

/// What `breakglass allow` did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Allowance {
    /// Who may break the glass once more.
    pub user: String,
    /// The admin who allowed it.
    pub allowed_by: String,
    /// Their use still under review, if any.
    pub unreviewed: Option<String>,
    /// Their last use, judged unjustified, if that is what needed the allowance (added
    /// field).
    #[serde(default)]
    pub unjustified: Option<String>,
}

impl Verdict {
    /// `justified` or `unjustified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Justified => "justified",
            Verdict::Unjustified => "unjustified",
        }
    }

    /// The verdict named `s`.
    pub fn parse(s: &str) -> Option<Verdict> {
        [Verdict::Justified, Verdict::Unjustified]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The reviewers a use's table named, as stored (a member this version cannot read
/// counts for nobody: fail closed).
fn stored_members(used: &UseRow) -> Vec<Member> {
    used.reviewers
        .iter()
        .filter_map(|m| Member::parse(m))
        .collect()
}

impl Service {
    /// Records `actor`'s verdict on the break-glass use that issued request `id`. An
    /// `unjustified` verdict revokes its certificate at once if it is still valid; the
    /// review closes when it has the verdicts it needs (`justified` only if all are).
    pub fn review_breakglass(
        &self,
        who: &SteppedUp,
        id: &RequestId,
        verdict: Verdict,
        comment: Text,
    ) -> Result<RequestView, ServiceError> {
        let actor = who.user_for(crate::service::StepUp::Approve)?;
        let now = self.now();
        let policy = &self.config().policy;
        super::flatten(self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let row = self.visible(tx, actor, id)?;
            let attempt = Attempt::on(actor, "breakglass.review", &row);
            let Some(used) = uses::get(tx, id)? else {
                let r = BreakGlassRefusal::NotBreakGlass { id: id.to_string() };
                return self.refuse(tx, now, &attempt, r.into());
            };
            let verdicts = uses::verdicts(tx, id)?;
            if used.closed_at.is_some() {
                return self.refuse(tx, now, &attempt, BreakGlassRefusal::ReviewClosed.into());
            }
            let reviewers = stored_members(&used);
            let review = Review {
                role: &used.role,
                reviewers: &reviewers,
                reviews: used.reviews_required,
            };
            let idp = self.idp_groups(tx, &[actor], now)?;
            let people = People::new(policy, &idp);
            let reviewed_by: Vec<UserName> = verdicts.iter().map(|v| v.reviewer.clone()).collect();
            let use_ = (&used.invoker, used.allowed_by.as_deref());
            if let Err(r) = bg::may_review(&people, &review, use_, actor, &reviewed_by) {
                return self.refuse(tx, now, &attempt, r.into());
            }
            let given = VerdictRow {
                reviewer: actor.clone(),
                verdict: verdict.as_str().to_owned(),
                comment: comment.as_str().to_owned(),
                at: unix(now),
            };
            uses::insert_verdict(tx, id, &given)?;
            audit::append(
                tx,
                now,
                &NewEvent::on_request(
                    actor.as_str(),
                    id.as_str(),
                    BreakglassReviewed {
                        role: used.role.to_string(),
                        invoker: used.invoker.to_string(),
                        verdict: verdict.as_str().to_owned(),
                        comment: comment.as_str().to_owned(),
                    },
                ),
            )?;
            if verdict == Verdict::Unjustified {
                self.revoke_unjustified(tx, now, actor, id)?;
            }
            let mut all = verdicts;
            all.push(given);
            self.close_if_complete(tx, now, actor, &used, &all)?;
            self.tell(tx, now, NotifyEvent::BreakglassReviewed, id)?;
            let row = rq::get(tx, id)?.unwrap_or(row);
            Ok(Ok(self.request_view(tx, row, now)?))
        }))
    }

    /// Whether `actor` may give a verdict on the use that issued `row` now (for the
    /// web UI's list of what waits for them); false for any other request.
    pub(in crate::service) fn may_review_now(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        row: &rq::RequestRow,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let Some(used) = uses::get(tx, &row.id)? else {
            return Ok(false);
        };
        if used.closed_at.is_some() {
            return Ok(false);
        }
        let reviewers = stored_members(&used);
        let review = Review {
            role: &used.role,
            reviewers: &reviewers,
            reviews: used.reviews_required,
        };
        let done: Vec<UserName> = uses::verdicts(tx, &row.id)?
            .into_iter()
            .map(|v| v.reviewer)
            .collect();
        let idp = self.idp_groups(tx, &[actor], now)?;
        let config = self.config();
        let people = People::new(&config.policy, &idp);
        let use_ = (&used.invoker, used.allowed_by.as_deref());
        Ok(bg::may_review(&people, &review, use_, actor, &done).is_ok())
    }

    /// Revokes the certificate of use `id` unless it is revoked already: an `unjustified`
    /// verdict ends the access at once (the KRL lists it from this transaction on). One
    /// past its end is revoked too: a server whose clock lags by up to the backdate still
    /// takes it, and the KRL lists it until then.
    fn revoke_unjustified(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        actor: &UserName,
        id: &RequestId,
    ) -> Result<(), ServiceError> {
        let Some(cert) = certs::for_request(tx, id)? else {
            return Ok(());
        };
        if cert.revocation.is_some() {
            return Ok(());
        }
        let Some(holding) = certs::by_serial(tx, cert.serial)? else {
            return Ok(());
        };
        let reason = Text::parse("break-glass review: unjustified", "reason")
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        self.revoke_one(tx, now, actor, &holding, &reason)?;
        Ok(())
    }

    /// Closes the review of `used` when `verdicts` are as many as it needs, with
    /// `breakglass.review_closed`.
    fn close_if_complete(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        actor: &UserName,
        used: &UseRow,
        verdicts: &[VerdictRow],
    ) -> Result<(), ServiceError> {
        let given: Vec<Verdict> = verdicts
            .iter()
            .filter_map(|v| Verdict::parse(&v.verdict))
            .collect();
        let Some(outcome) = bg::review_state(&given, used.reviews_required).outcome else {
            return Ok(());
        };
        if !uses::close(tx, &used.request_id, outcome.as_str(), unix(now))? {
            return Ok(());
        }
        // An allowance given while this use waited is for then only.
        if uses::open_use_of(tx, &used.invoker)?.is_none() {
            uses::forget_allowance(tx, &used.invoker)?;
        }
        audit::append(
            tx,
            now,
            &NewEvent::on_request(
                actor.as_str(),
                used.request_id.as_str(),
                BreakglassReviewClosed {
                    role: used.role.to_string(),
                    invoker: used.invoker.to_string(),
                    outcome: outcome.as_str().to_owned(),
                    reviewers: verdicts.iter().map(|v| v.reviewer.to_string()).collect(),
                    time_to_review_seconds: unix(now) - used.used_at,
                },
            ),
        )?;
        Ok(())
    }

    /// Allows `user` one more break-glass use before their last one is reviewed, or after
    /// it was judged unjustified (admins; never for themselves; only while one of those
    /// stands in the way: an allowance given while a use waits is forgotten when its
    /// review closes). Audited as `breakglass.allowed`.
    pub fn allow_breakglass(
        &self,
        who: &SteppedUp,
        user: &UserName,
    ) -> Result<Allowance, ServiceError> {
        let actor = who.user_for(crate::service::StepUp::Grant(
            "allowing one more break-glass use",
        ))?;
        self.require_admin(actor, "allow break-glass uses")?;
        if actor == user {
            return Err(ServiceError::Forbidden(
                "an admin cannot allow their own break-glass: another admin must".into(),
            ));
        }
        let now = self.now();
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            self.require_known(tx, user)?;
            let unreviewed = uses::open_use_of(tx, user)?;
            let unjustified = match unreviewed {
                Some(_) => None,
                None => uses::last_unjustified(tx, user)?,
            };
            let Some(open) = unreviewed.clone().or_else(|| unjustified.clone()) else {
                return Err(ServiceError::Conflict {
                    code: crate::error_code::ErrorCode::NothingToAllow,
                    message: format!(
                        "{user} has no break-glass use waiting for its review, and their last \
                         was not judged unjustified: they may break the glass without an \
                         allowance"
                    ),
                });
            };
            let unreviewed = unreviewed.map(|id| id.to_string());
            let unjustified = unjustified.map(|id| id.to_string());
            uses::allow(tx, user, actor, unix(now))?;
            let event = BreakglassAllowed {
                user: user.to_string(),
                unreviewed: unreviewed.clone(),
                unjustified: unjustified.clone(),
            };
            audit::append(tx, now, &NewEvent::general(actor.as_str(), event))?;
            // About the use that stood in the way: the one this lets them pass.
            let allowance = serde_json::json!({ "user": user, "allowed_by": actor });
            self.tell_with(
                tx,
                now,
                NotifyEvent::BreakglassAllowed,
                &open,
                &[("allowance", allowance)],
            )?;
            Ok(Allowance {
                user: user.to_string(),
                allowed_by: actor.to_string(),
                unreviewed,
                unjustified,
            })
        })
    }
}
