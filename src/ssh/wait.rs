//! `request`: create a request for the key the user logged in with, then wait for the
//! decision, telling the user on stderr, and print the certificate alone on stdout.
//!
//! Waiting wakes on every change the service announces (re-reading at most every 100 ms)
//! and at least every `recheck` (which also notices expiry, and sends a heartbeat so the
//! idle timeout does not close a connection that is busy waiting). If the client goes away
//! the task stops and the request simply stays pending; `cert ID` fetches the certificate
//! later.

use chrono::{DateTime, Utc};

use super::commands::{RequestArgs, joined};
use super::context::{CommandError, Context, call, change};
use super::run::request_id;
use super::terminal::Terminal;
use crate::error_code::ErrorCode;
use crate::names::{RoleName, Text, parse_duration};
use crate::render::waiting_for;
use crate::service::{NewRequest, RequestView, Status};

/// Runs `request ROLE --reason TEXT [--ttl D] [--no-wait]`.
pub(super) async fn request(
    ctx: &Context,
    term: &Terminal,
    args: RequestArgs,
) -> Result<(), CommandError> {
    let new = new_request(ctx, &args.role, &args.reason, args.ttl.as_deref())?;
    // Subscribe before creating, so no decision can slip between the two.
    let changes = ctx.service.subscribe_changes();
    let view = change(ctx, move |s, me| s.create_request(me, new)).await?;
    tracing::info!(id = %view.id, role = %view.role, requester = %view.requester, "request created");
    if args.no_wait {
        term.out(format!("{}\n", view.id)).await?;
        let line = format!(
            "request {} for {} is pending; waiting for {}; \
             fetch the certificate later with: cert {}\n",
            view.id,
            view.role,
            waiting_for(&view),
            view.id
        );
        return Ok(term.err(line).await?);
    }
    term.err(format!(
        "request {} for {} is pending; waiting for {} ...\n",
        view.id,
        view.role,
        waiting_for(&view)
    ))
    .await?;
    let view = wait(ctx, term, view, changes).await?;
    finish(ctx, term, &view).await
}

/// The arguments as the API would parse them, with the authenticated key as subject
/// (for `request` and `breakglass`).
pub(super) fn new_request(
    ctx: &Context,
    role: &str,
    reason: &[String],
    ttl: Option<&str>,
) -> Result<NewRequest, CommandError> {
    let bad =
        |field: &str, e: &dyn std::fmt::Display| CommandError::invalid(format!("{field}: {e}"));
    let reason = joined(reason).unwrap_or_default();
    Ok(NewRequest {
        role: RoleName::parse(role).map_err(|e| bad("role", &e))?,
        public_key: ctx.identity.key.clone(),
        reason: Text::parse(&reason, "reason").map_err(|e| bad("reason", &e))?,
        ttl: match ttl {
            Some(t) => Some(parse_duration(t, "ttl").map_err(|e| bad("ttl", &e))?),
            None => None,
        },
    })
}

/// Shortest time between two reads of the request a waiter makes.
const READ_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until the request is no longer pending, printing each approval on the way.
async fn wait(
    ctx: &Context,
    term: &Terminal,
    mut view: RequestView,
    mut changes: tokio::sync::watch::Receiver<u64>,
) -> Result<RequestView, CommandError> {
    let id = request_id(&view.id)?;
    let mut last_read = tokio::time::Instant::now();
    // When the client must next hear something: a deadline kept across wake-ups, so that
    // commits elsewhere (which wake this loop often) cannot keep postponing it.
    let mut next_beat = last_read + ctx.recheck;
    while view.status == Status::Pending {
        // Biased: when commits keep a change always ready, a due heartbeat or the end of
        // the wait must still win (a random pick could pass over them several times).
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(ctx.wait_until) => return Err(still_pending(&view)),
            () = tokio::time::sleep_until(next_beat) => {
                term.heartbeat().await?;
                next_beat = tokio::time::Instant::now() + ctx.recheck;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(ctx.recheck).await;
                }
            }
        }
        // Every commit anywhere wakes every waiter; under load that is hundreds a second.
        // Re-reading at most every READ_INTERVAL keeps a waiter's cost bounded, and a
        // person waiting for an approval does not notice a tenth of a second.
        tokio::time::sleep_until(last_read + READ_INTERVAL).await;
        last_read = tokio::time::Instant::now();
        let id = id.clone();
        let next = call(ctx, move |s, me| s.get(me, &id)).await?;
        for line in progress(&view, &next, ctx.service.now()) {
            term.err(format!("{line}\n")).await?;
            next_beat = tokio::time::Instant::now() + ctx.recheck;
        }
        view = next;
    }
    Ok(view)
}

/// The certificate on stdout, or why there is none.
async fn finish(ctx: &Context, term: &Terminal, view: &RequestView) -> Result<(), CommandError> {
    if view.status != Status::Issued {
        return Err(ended(view));
    }
    let id = request_id(&view.id)?;
    let cert = call(ctx, move |s, me| s.certificate(me, &id)).await?;
    Ok(term.out(format!("{}\n", cert.trim_end())).await?)
}

/// The lines to show when the request moved from `old` to `new`.
fn progress(old: &RequestView, new: &RequestView, now: DateTime<Utc>) -> Vec<String> {
    let fresh: Vec<&str> = new
        .approvals
        .iter()
        .skip(old.approvals.len())
        .map(|a| a.approver.as_str())
        .collect();
    let mut lines: Vec<String> = fresh.iter().map(|a| format!("approved by {a}")).collect();
    let outlook = match (&new.certificate, new.status) {
        (Some(c), _) => Some(format!(
            "certificate serial {} valid until {}",
            c.serial,
            until(&c.valid_before, now)
        )),
        (None, Status::Pending) if !fresh.is_empty() => {
            Some(format!("waiting for {} ...", waiting_for(new)))
        }
        _ => None,
    };
    match (lines.last_mut(), outlook) {
        (Some(last), Some(o)) => *last = format!("{last}; {o}"),
        (None, Some(o)) => lines.push(o),
        (_, None) => {}
    }
    lines
}

/// `14:32 UTC` today, `2026-11-29 14:32 UTC` on another day.
fn until(rfc3339: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) if t.date_naive() == now.date_naive() => t.format("%H:%M UTC").to_string(),
        Ok(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// Why a request ended without a certificate, with its decision code.
fn ended(view: &RequestView) -> CommandError {
    let id = &view.id;
    let by = view.decided_by.as_deref().unwrap_or("someone");
    let note = view.decision_note.as_deref().unwrap_or_default();
    let message = match view.status {
        Status::Denied => format!("request {id} was denied by {by}: {note}"),
        Status::Cancelled => format!("request {id} was cancelled by {by}"),
        Status::Expired => format!("request {id} expired before it was approved"),
        status if note.is_empty() => format!("request {id} is {status}"),
        status => format!("request {id} is {status}: {note}"),
    };
    CommandError::failed(ended_code(view), message)
}

/// The decision code of a request that ended without a certificate (`denied`,
/// `cancelled`, `expired`, or the refusal that ended it), else its status. Both are
/// written from [`ErrorCode`]s; a row this version cannot name says `internal`.
fn ended_code(view: &RequestView) -> ErrorCode {
    [view.decision_code.as_deref(), Some(view.status.as_str())]
        .into_iter()
        .flatten()
        .find_map(ErrorCode::parse)
        .unwrap_or(ErrorCode::Internal)
}

fn still_pending(view: &RequestView) -> CommandError {
    CommandError::failed(
        ErrorCode::StillPending,
        format!(
            "request {} is still pending and this connection reached its time limit; \
             fetch the certificate later with: cert {}",
            view.id, view.id
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{ApprovalView, CertificateView, StepView};

    fn pending() -> RequestView {
        serde_json::from_value(serde_json::json!({
            "id": "r-abcdefghijkl", "role": "prod-db", "requester": "alice", "reason": "x",
            "status": "pending", "created_at": "2026-11-28T14:00:00Z",
            "expires_at": "2026-11-28T15:00:00Z", "ttl_seconds": 1800, "principals": ["dba"],
            "public_key_fingerprint": "SHA256:x", "approvals": [], "approvals_required": 2,
            "approvals_needed": 2,
            "waiting_for": [
                {"approvers": ["group:dba"], "approvals": 1, "remaining": 1},
                {"approvers": ["group:sre", "user:carol"], "approvals": 2, "remaining": 1}
            ],
            "decided_at": null, "decided_by": null, "decision_code": null, "decision_note": null,
            "certificate": null
        }))
        .unwrap()
    }

    fn approved_by(mut v: RequestView, who: &str) -> RequestView {
        v.approvals.push(ApprovalView {
            approver: who.into(),
            at: "2026-11-28T14:01:00Z".into(),
            comment: None,
        });
        v
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T14:02:00Z")
            .unwrap()
            .into()
    }

    #[test]
    fn waiting_names_every_open_step() {
        assert_eq!(
            waiting_for(&pending()),
            "1 approval from group:dba and 1 approval from group:sre or user:carol"
        );
    }

    #[test]
    fn an_approval_that_leaves_steps_open_says_what_is_still_needed() {
        let old = pending();
        let mut new = approved_by(old.clone(), "bob");
        new.waiting_for = vec![StepView {
            approvers: vec!["group:sre".into()],
            approvals: 2,
            remaining: 2,
            approved_by: Vec::new(),
        }];
        assert_eq!(
            progress(&old, &new, now()),
            ["approved by bob; waiting for 2 approvals from group:sre ..."]
        );
        assert!(progress(&new, &new, now()).is_empty());
    }

    #[test]
    fn the_last_approval_announces_the_certificate() {
        let old = approved_by(pending(), "bob");
        let mut new = approved_by(approved_by(old.clone(), "carol"), "dave");
        new.status = Status::Issued;
        new.certificate = Some(CertificateView {
            serial: crate::names::Serial::new(8812).unwrap(),
            key_id: "k".into(),
            valid_after: "2026-11-28T14:01:00Z".into(),
            valid_before: "2026-11-28T14:32:00Z".into(),
            revoked: None,
        });
        assert_eq!(
            progress(&old, &new, now()),
            [
                "approved by carol",
                "approved by dave; certificate serial 8812 valid until 14:32 UTC"
            ]
        );
    }

    #[test]
    fn validity_on_another_day_carries_the_date() {
        assert_eq!(until("2026-11-29T00:10:00Z", now()), "2026-11-29 00:10 UTC");
        assert_eq!(until("garbage", now()), "garbage");
    }

    #[test]
    fn a_denied_request_ends_with_its_code_and_reason() {
        let mut v = pending();
        v.status = Status::Denied;
        v.decided_by = Some("bob".into());
        v.decision_code = Some("denied".into());
        v.decision_note = Some("not during the freeze".into());
        let e = ended(&v).to_string();
        assert_eq!(
            e,
            "denied: request r-abcdefghijkl was denied by bob: not during the freeze"
        );
        v.status = Status::Refused;
        v.decision_code = Some("sod_conflict".into());
        v.decision_note = Some("role x conflicts".into());
        assert_eq!(
            ended(&v).to_string(),
            "sod_conflict: request r-abcdefghijkl is refused: role x conflicts"
        );
    }
}
