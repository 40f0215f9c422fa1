//! Telling people (`[[notify]]`): each state change a sink wants to hear of writes one
//! outbox row per sink in its own transaction, next to its audit row, so a change that
//! commits is told and one that does not is not. The dispatcher (`daemon/notify.rs`)
//! delivers them. Nothing here is read when no sink wants the event.

use chrono::{DateTime, Utc};
use rand::{Rng, RngExt};
use serde_json::{Value, json};

use std::sync::Arc;

use super::{RequestView, Service, ServiceError, unix, view};
use crate::audit::{self, NewEvent, NotifyDead, SYSTEM_ACTOR};
use crate::config::NotifyEvent;
use crate::names::RequestId;
use crate::notify::{Delivered, Sink};
use crate::store::Tx;
use crate::store::notify::{self as outbox, Delivery, NewDelivery};
use crate::store::requests as rq;

/// Version of the JSON sinks are sent (`version`); a change that is not an addition
/// makes a new one.
pub(super) const PAYLOAD_VERSION: u32 = 1;

/// A new event id: `msg_` and 128 random bits, the same for every sink and every try
/// (receivers drop duplicates by it).
fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("msg_{}", hex::encode(bytes))
}

/// What a sink is told of a request: never a key or a token.
pub(super) fn request_data(v: &RequestView) -> Value {
    let approvals: Vec<Value> = v
        .approvals
        .iter()
        .map(|a| json!({ "approver": a.approver, "at": a.at, "comment": a.comment }))
        .collect();
    let mut request = json!({
        "id": v.id,
        "requester": v.requester,
        "role": v.role,
        "principals": v.principals,
        "ttl_seconds": v.ttl_seconds,
        "reason": v.reason,
        "status": v.status.as_str(),
        "created_at": v.created_at,
        "expires_at": v.expires_at,
        "approvals": approvals,
        "approvals_required": v.approvals_required,
        "approvals_needed": v.approvals_needed,
        "decided_by": v.decided_by,
        "decision_code": v.decision_code,
        "decision_note": v.decision_note,
    });
    if let Some(c) = &v.certificate {
        request["serial"] = json!(c.serial.to_string());
        request["valid_after"] = json!(c.valid_after);
        request["valid_before"] = json!(c.valid_before);
        if let Some(r) = &c.revoked {
            request["revoked"] = json!({ "at": r.at, "by": r.by, "reason": r.reason });
        }
    }
    if let Some(b) = &v.breakglass {
        // The review's state; the comments stay in the API and the audit log.
        request["breakglass"] = json!({
            "ttl_asked_seconds": b.ttl_asked_seconds,
            "ttl_cut": b.ttl_cut,
            "reviewers": b.reviewers,
            "reviews_required": b.reviews_required,
            "reviews_received": b.verdicts.len(),
            "review_due": b.review_due,
            "overdue": b.overdue,
            "outcome": b.outcome,
            "closed_at": b.closed_at,
            "allowed_by": b.allowed_by,
        });
    }
    json!({ "request": request })
}

impl Service {
    /// Writes, in `tx`, an outbox row for every sink that wants `event` about request
    /// `id` (as it is now in `tx`). Costs nothing when no sink wants the event.
    pub(super) fn tell(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        event: NotifyEvent,
        id: &RequestId,
    ) -> Result<(), ServiceError> {
        self.tell_with(tx, now, event, id, &[])
    }

    /// [`Service::tell`], with `extra` fields in `data` beside `request`.
    pub(super) fn tell_with(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        event: NotifyEvent,
        id: &RequestId,
        extra: &[(&str, Value)],
    ) -> Result<(), ServiceError> {
        let config = self.config();
        if !config.notify.iter().any(|s| s.events.contains(&event)) {
            return Ok(());
        }
        let Some(row) = rq::get(tx, id)? else {
            return Ok(());
        };
        let sinks: Vec<&str> = config
            .notify
            .iter()
            .filter(|s| s.wants(event, &row.role))
            .map(|s| s.name.as_str())
            .collect();
        if sinks.is_empty() {
            return Ok(());
        }
        let mut data = self.request_payload(tx, row, now)?;
        for (name, value) in extra {
            data[*name] = value.clone();
        }
        self.enqueue(tx, now, event, &sinks, data)
    }

    /// Writes, in `tx`, an outbox row about request `id` for every sink, whatever its
    /// `events` and `roles` say: what nobody may miss (break-glass). A sink whose `roles`
    /// leave the request's role out is told that it happened (who, which role, the
    /// review), not the request's reason, principals or certificate.
    pub(super) fn tell_everyone(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        event: NotifyEvent,
        id: &RequestId,
    ) -> Result<(), ServiceError> {
        let config = self.config();
        if config.notify.is_empty() {
            return Ok(());
        }
        let Some(row) = rq::get(tx, id)? else {
            return Ok(());
        };
        let (mut covering, mut others): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        for sink in &config.notify {
            if sink.covers(Some(&row.role)) {
                covering.push(&sink.name);
            } else {
                others.push(&sink.name);
            }
        }
        let data = self.request_payload(tx, row, now)?;
        if !others.is_empty() {
            let r = &data["request"];
            let mut brief = json!({ "request": {
                "id": r["id"], "requester": r["requester"], "role": r["role"],
                "status": r["status"], "breakglass": r["breakglass"],
            }});
            if let Some(link) = data.get("link") {
                brief["link"] = link.clone();
            }
            self.enqueue(tx, now, event, &others, brief)?;
        }
        if !covering.is_empty() {
            self.enqueue(tx, now, event, &covering, data)?;
        }
        Ok(())
    }

    /// What sinks are told of a request, with the link to its page in the web UI.
    fn request_payload(
        &self,
        tx: &Tx<'_>,
        row: rq::RequestRow,
        now: DateTime<Utc>,
    ) -> Result<Value, ServiceError> {
        let id = row.id.clone();
        let mut data = request_data(&self.request_view(tx, row, now)?);
        // The web UI's review page, where the sign-in is (no link without one).
        if let Some(oidc) = &self.config().oidc {
            let base = oidc.public_url.trim_end_matches('/');
            data["link"] = json!(format!("{base}/requests/{id}"));
        }
        Ok(data)
    }

    /// Writes `data` as `event` for `sinks`, in `tx`.
    pub(super) fn enqueue(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        event: NotifyEvent,
        sinks: &[&str],
        data: Value,
    ) -> Result<(), ServiceError> {
        let event_id = new_event_id();
        let payload = json!({
            "type": event.as_str(),
            "id": event_id,
            "timestamp": view::rfc3339(unix(now)),
            "version": PAYLOAD_VERSION,
            "data": data,
        })
        .to_string();
        for sink in sinks {
            let row = NewDelivery {
                event_id: &event_id,
                sink,
                event: event.as_str(),
                payload: &payload,
            };
            outbox::enqueue(tx, &row, unix(now))?;
        }
        Ok(())
    }
}

/// Reads every sink's URL and key: a sink that cannot be used stops the start.
pub(super) fn load_sinks(config: &crate::config::Config) -> Result<Vec<Sink>, ServiceError> {
    config
        .notify
        .iter()
        .map(|s| Sink::load(s).map_err(|e| ServiceError::Invalid(e.to_string())))
        .collect()
}

/// Seconds before the first retry; each failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: u64 = 5;

/// The longest wait between tries (seconds).
const MAX_BACKOFF: u64 = 600;

/// The longest `Retry-After` honoured (seconds).
const MAX_RETRY_AFTER: u64 = 3600;

/// How long a claimed delivery stays with its replica (seconds): longer than a try.
const LEASE: i64 = 15;

/// The wait before try `attempts + 1`: exponential, capped, with jitter (half to all of
/// it), and at least what a 429's `Retry-After` asked.
fn backoff(attempts: i64, retry_after: Option<u64>) -> u64 {
    let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    let full = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
    let jittered = full / 2 + rand::rng().random_range(0..=full / 2);
    jittered.max(retry_after.unwrap_or(0).min(MAX_RETRY_AFTER))
}

impl Service {
    /// The sinks read at start.
    pub fn sinks(&self) -> Arc<Vec<Sink>> {
        self.sinks.clone()
    }

    /// Forgets deliveries made more than a week ago; how many.
    pub fn prune_deliveries(&self) -> Result<u64, ServiceError> {
        let before = unix(self.now()) - 7 * 24 * 3600;
        Ok(self.store.write(|tx| outbox::prune(tx, before))?)
    }

    /// Claims up to `limit` deliveries due now to the sinks this replica has, for
    /// [`LEASE`] seconds, under a token of this claim's own. Reads first: an idle
    /// dispatcher never takes the write lock.
    pub fn claim_deliveries(&self, limit: i64) -> Result<Vec<Delivery>, ServiceError> {
        let now = unix(self.now());
        let sinks: Vec<&str> = self.sinks.iter().map(|s| s.config.name.as_str()).collect();
        if !self.store.read(|tx| outbox::any_due(tx, now, &sinks))? {
            return Ok(Vec::new());
        }
        let mut token = [0u8; 16];
        rand::rng().fill_bytes(&mut token);
        let claim = hex::encode(token);
        Ok(self
            .store
            .write(|tx| outbox::claim(tx, (now, LEASE), &sinks, limit, &claim))?)
    }

    /// Records how delivery `d` went, if its claim still holds (else another took it
    /// over and nothing is recorded): delivered; due again after a backoff; or, past
    /// its sink's `give_up_after`, dead (`Ok(true)`), with
    /// a `notify.dead` audit row and event.
    pub fn record_delivery(&self, d: &Delivery, outcome: &Delivered) -> Result<bool, ServiceError> {
        let now = self.now();
        let config = self.config();
        let give_up = config
            .notify
            .iter()
            .find(|s| s.name == d.sink)
            .map_or(24 * 3600, |s| {
                i64::try_from(s.give_up_after.as_secs()).unwrap_or(i64::MAX)
            });
        self.store.write(|tx| {
            let (why, retry_after) = match outcome {
                Delivered::Yes => {
                    outbox::delivered(tx, d, unix(now))?;
                    return Ok(false);
                }
                Delivered::No { why, retry_after } => (why, *retry_after),
            };
            let wait = i64::try_from(backoff(d.attempts, retry_after)).unwrap_or(i64::MAX / 2);
            // Times are whole seconds: a second more keeps a `Retry-After` a lower bound.
            let next = unix(now)
                .saturating_add(wait)
                .saturating_add(i64::from(retry_after.is_some()));
            // Tried until its deadline, the last time at it (or when a `Retry-After`
            // that runs past it allows); given up after a failure at or past it.
            let deadline = d.created_at.saturating_add(give_up);
            if unix(now) < deadline {
                let next = match retry_after {
                    Some(_) => next,
                    None => next.min(deadline),
                };
                outbox::retry_at(tx, d, next, why)?;
                return Ok(false);
            }
            if !outbox::give_up(tx, d, unix(now), why)? {
                return Ok(false);
            }
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    SYSTEM_ACTOR,
                    NotifyDead {
                        sink: d.sink.clone(),
                        event_id: d.event_id.clone(),
                        event: d.event.clone(),
                        attempts: d.attempts + 1,
                        error: why.clone(),
                    },
                ),
            )?;
            // Told to the sinks that want it, but never about a `notify.dead` itself (a
            // sink that is down would otherwise feed its own queue).
            if d.event != NotifyEvent::NotifyDead.as_str() {
                let original: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
                let request = &original["data"]["request"];
                let role = request["role"]
                    .as_str()
                    .and_then(|r| crate::names::RoleName::parse(r).ok());
                // The request itself only to sinks that may hear of its role.
                let (told, blind): (Vec<_>, Vec<_>) = config
                    .notify
                    .iter()
                    .filter(|s| s.events.contains(&NotifyEvent::NotifyDead))
                    .partition(|s| s.covers(role.as_ref()));
                let about = json!({
                    "sink": d.sink,
                    "event_id": d.event_id,
                    "event": d.event,
                    "error": why,
                });
                for (sinks, with_request) in [(told, true), (blind, false)] {
                    let names: Vec<&str> = sinks.iter().map(|s| s.name.as_str()).collect();
                    if names.is_empty() {
                        continue;
                    }
                    let mut data = about.clone();
                    if with_request && request.is_object() {
                        data["request"] = request.clone();
                    }
                    self.enqueue(tx, now, NotifyEvent::NotifyDead, &names, data)?;
                }
            }
            Ok(true)
        })
    }
}

/// What `notify status` shows: how many deliveries are pending and dead, and the first
/// `limit` of them, oldest first.
pub fn notify_status(
    store: &crate::store::Store,
    limit: i64,
) -> Result<(i64, i64, Vec<outbox::Listed>), ServiceError> {
    Ok(store.read(|tx| {
        let (pending, dead) = outbox::counts(tx)?;
        Ok::<_, crate::store::StoreError>((pending, dead, outbox::undelivered(tx, limit)?))
    })?)
}

/// Re-arms the dead deliveries of event `event_id` (`None`: of every event; to `sink`,
/// or every sink), tried again at once for another `give_up_after`; audited as
/// `notify.retried` (`event_id` `*` for every event). By the system clock, like the
/// other operator commands.
pub fn notify_retry(
    store: &crate::store::Store,
    event_id: Option<&str>,
    sink: Option<&str>,
    operator: &str,
) -> Result<u64, ServiceError> {
    use crate::clock::Clock;
    let now = crate::clock::SystemClock.now();
    store.write(|tx| {
        let n = outbox::rearm(tx, event_id, sink, unix(now))?;
        if n == 0 {
            return Err(ServiceError::NotFound(format!(
                "no dead delivery{}{}",
                event_id.map(|e| format!(" of {e}")).unwrap_or_default(),
                sink.map(|s| format!(" to {s}")).unwrap_or_default()
            )));
        }
        audit::append(
            tx,
            now,
            &NewEvent::general(
                operator,
                crate::audit::NotifyRetried {
                    event_id: event_id.unwrap_or("*").to_owned(),
                    sink: sink.map(str::to_owned),
                    deliveries: n,
                },
            ),
        )?;
        Ok(n)
    })
}
