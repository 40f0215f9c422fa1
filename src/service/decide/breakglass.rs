//! Breaking the glass: a role taken at once, without approval, by one of its table's
//! `invokers`; loud (every sink is told, a warning is logged, a metric counts it) and
//! reviewed afterwards by people who were not involved (`verdict.rs`).
//!
//! A use is a request, created and issued in one transaction: the checks (the table,
//! the invoker, the reason, the key, `[[conflicts]]`, no unreviewed earlier use), the
//! request row, `breakglass.used`, the certificate with its `certificate.issued`, the
//! review's row and the notifications. Nothing of it is written if any part fails.

use chrono::{DateTime, Utc};

use super::{Attempt, NewRequest, flatten};
use crate::audit::{self, BreakglassUsed, NewEvent};
use crate::config::NotifyEvent;
use crate::names::RequestId;
use crate::policy::People;
use crate::policy::rules::break_glass as bg;
use crate::policy::rules::{self, Refusal};
use crate::service::issue::{Grounds, Signing};
use crate::service::{RequestView, Service, ServiceError, SteppedUp, unix, view};
use crate::store::breakglass::{self as uses, UseRow};
use crate::store::requests::{self as rq, RequestRow, Status};

/// When the reminder of a review goes out: when three quarters of `review_within` have
/// passed.
fn remind_at(used_at: i64, due: i64) -> i64 {
    used_at + (due - used_at) * 3 / 4
}

impl Service {
    /// Breaks the glass: `actor` takes `req.role` at once, if the role has a
    /// `break_glass` table that lists them. A lifetime above the table's `max_ttl` is cut
    /// to it, never refused. Returns the request, issued, with its certificate.
    pub fn break_glass(
        &self,
        who: &SteppedUp,
        req: NewRequest,
    ) -> Result<RequestView, ServiceError> {
        let actor = who.user_for(crate::service::StepUp::Approve)?;
        // Signing: never by a clock the database disagrees with.
        self.clock_agrees()?;
        let config = self.config();
        let policy = &config.policy;
        let now = self.now();
        let (role, principals) = self.role_asked(policy, &req, actor)?;
        let rivals: Vec<_> = policy.conflicting_roles(&role.name).into_iter().collect();
        let attempt = Attempt {
            actor,
            what: "breakglass.use",
            request: None,
            role: &role.name,
        };
        flatten(self.store.write(|tx| {
            let candidate = RequestId::new_at(now, &mut rand::rng());
            let checks = rq::create_checks(
                tx,
                (actor, unix(now), self.held()),
                &rivals,
                (&candidate, &req.public_key.fingerprint()),
            )?;
            if checks.disabled {
                return Err(crate::service::disabled_error(actor));
            }
            let table = match bg::table(role) {
                Ok(t) => t,
                Err(r) => return self.refuse(tx, now, &attempt, r.into()),
            };
            // The lifetime is cut to the table's max_ttl; one shorter than the role
            // allows is still refused as bad input, like any request's.
            let (ttl, cut) = bg::lifetime(role, table, req.ttl);
            rules::certificate_ttl(role, Some(ttl)).map_err(ServiceError::Invalid)?;
            let subject = &req.public_key;
            let required = config.requests.require_registered_keys;
            if !required
                && let Err(r) =
                    rules::key_must_be_requesters(policy, &checks.key_facts, actor, subject)
            {
                return Ok(Err(ServiceError::Invalid(r.to_string())));
            }
            let idp = self.idp_groups(tx, &[actor], now)?;
            let people = People::new(policy, &idp);
            let checked = bg::invoker_must_be_listed(&people, role, table, actor)
                .and_then(|()| bg::reason_must_match(table, req.reason.as_str()))
                .map_err(Refusal::from)
                .and_then(|()| rules::principals_must_be_own(&people, role, actor))
                .and_then(|()| {
                    let facts = &checks.key_facts;
                    rules::key_must_be_registered(required, policy, facts, actor, subject)
                });
            if let Err(r) = checked {
                return self.refuse(tx, now, &attempt, r);
            }
            if let Err(r) =
                rules::no_conflicting_holding(policy, &role.name, actor, &checks.holdings)
            {
                let r = self.conflict_lifts(tx, now, r, None)?;
                return self.refuse(tx, now, &attempt, r);
            }
            // Their last use, when it stands in the way: still under review, or judged
            // unjustified (an admin must allow the next one).
            let unreviewed = uses::open_use_of(tx, actor)?;
            let unjustified = match unreviewed {
                Some(_) => None,
                None => uses::last_unjustified(tx, actor)?,
            };
            let last = match (&unreviewed, &unjustified) {
                (Some(id), _) => Some(bg::LastUse::Unreviewed(id.as_str())),
                (None, Some(id)) => Some(bg::LastUse::Unjustified(id.as_str())),
                (None, None) => None,
            };
            // An allowance is spent only by a use that needs it.
            let allowed_by = match last {
                Some(_) => uses::spend_allowance(tx, actor)?,
                None => None,
            };
            if let Err(r) = bg::no_unreviewed_use(actor, last, allowed_by.is_some()) {
                return self.refuse(tx, now, &attempt, r.into());
            }
            let id = super::plan::free_id(tx, now, (candidate, checks.id_taken), &mut rand::rng())?;
            let row = RequestRow {
                id,
                role: role.name.clone(),
                requester: actor.clone(),
                reason: req.reason.as_str().to_owned(),
                ttl_seconds: ttl.as_secs() as i64,
                public_key: subject.to_openssh(),
                key_fingerprint: subject.fingerprint(),
                principals: principals.iter().map(|p| p.as_str().to_owned()).collect(),
                role_digest: role.digest(),
                status: Status::Pending,
                created_at: unix(now),
                // Issued in this transaction: it never waits.
                expires_at: unix(now),
                decided_at: None,
                decided_by: None,
                decision_code: None,
                decision_note: None,
                approvals_required: None,
            };
            rq::insert(tx, &row)?;
            let due = unix(now) + table.review_within.as_secs() as i64;
            let used = UseRow {
                request_id: row.id.clone(),
                invoker: actor.clone(),
                role: role.name.clone(),
                ttl_asked: req.ttl.map(|t| t.as_secs() as i64),
                cut,
                reviewers: table.reviewers.iter().map(ToString::to_string).collect(),
                reviews_required: table.reviews,
                used_at: unix(now),
                remind_at: remind_at(unix(now), due),
                review_due: due,
                allowed_by,
                outcome: None,
                closed_at: None,
                reminded_at: None,
                overdue_at: None,
            };
            self.record_use(tx, now, &row, &used)?;
            let signing = Signing {
                people: &people,
                requester_disabled: false,
                key_facts: &checks.key_facts,
                grounds: Grounds::BreakGlass,
                ahead: None,
            };
            // Every check it makes again was made above, in this transaction: a refusal
            // here is a defect, and rolls everything back rather than leave a use
            // without its certificate.
            let cert = self
                .issue(tx, now, actor, role, &row, signing)?
                .map_err(|e| {
                    tracing::error!(error = %e, "break-glass: signing refused what was checked");
                    e
                })?;
            self.tell_everyone(tx, now, NotifyEvent::BreakglassUsed, &row.id)?;
            let (who, what, request, serial) = (
                actor.to_string(),
                role.name.to_string(),
                row.id.to_string(),
                cert.serial,
            );
            self.count(tx, move |m| {
                m.breakglass_used(&what);
                tracing::warn!(
                    user = %who,
                    role = %what,
                    request = %request,
                    serial = %serial,
                    "break-glass: a role was taken without approval; it must be reviewed"
                );
            });
            let row = rq::get(tx, &row.id)?.ok_or_else(|| {
                ServiceError::Store(crate::store::StoreError::Corrupt(
                    "the break-glass request just written is gone".into(),
                ))
            })?;
            Ok(Ok(self.request_view(tx, row, now)?))
        }))
    }

    /// Writes the use's review row and its `breakglass.used` event, in `tx`.
    fn record_use(
        &self,
        tx: &crate::store::Tx<'_>,
        now: DateTime<Utc>,
        row: &RequestRow,
        used: &UseRow,
    ) -> Result<(), ServiceError> {
        uses::insert(tx, used)?;
        audit::append(
            tx,
            now,
            &NewEvent::on_request(
                used.invoker.as_str(),
                row.id.as_str(),
                BreakglassUsed {
                    role: row.role.to_string(),
                    reason: row.reason.clone(),
                    ttl_asked_seconds: used.ttl_asked,
                    ttl_seconds: row.ttl_seconds,
                    cut: used.cut,
                    principals: row.principals.clone(),
                    public_key_fingerprint: row.key_fingerprint.clone(),
                    role_digest: row.role_digest.clone(),
                    reviewers: used.reviewers.clone(),
                    reviews_required: used.reviews_required,
                    review_due: view::rfc3339(used.review_due),
                    allowed_by: used.allowed_by.clone(),
                },
            ),
        )?;
        Ok(())
    }
}
