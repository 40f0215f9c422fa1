//! The second half of `audit verify`: the hash chain proves that no event was edited,
//! removed or reordered; this proves that no certificate was issued without the events
//! that must come before it. Someone able to write the database and recompute hashes (the
//! hash function is public) could otherwise append a `certificate.issued` event, with a
//! correct hash, for a request nobody approved.
//!
//! Each `certificate.issued` event must be preceded, in the chain, by the
//! `request.created` of its request and by a `request.approved` of that request from
//! every approver it lists; the approvers must be distinct and none of them the
//! requester; and with `approvals_required` (one count per step, recorded since it was
//! added), each step must have at least that many. Events written before that field
//! existed are checked for everything else and for at least one approval.
//!
//! A break-glass issuance (`"breakglass": true`) lists no approvals: it must be preceded
//! by the `breakglass.used` of its request, by the requester it names, and nothing but a
//! break-glass use may claim it.
//!
//! The check runs in the same pass as the hashes, range by range ([`Stories`], joined by
//! [`settle`]): a request's story depends only on its own events, so one read of the log
//! serves both halves, on as many threads as there are ranges.

use std::collections::HashMap;

use serde::Deserialize;

pub(super) use cut::{Stories, seq_of, settle};

use super::AuditError;

/// What the check reads of a `certificate.issued` event's detail; also of a
/// `breakglass.used` detail, of which only what it grants (role, principals, key) counts.
#[derive(Deserialize)]
struct Issued {
    #[serde(default)]
    requester: Option<String>,
    #[serde(default)]
    approvals: Vec<Counted>,
    /// Per step, the approvals it required (absent in events of older versions).
    #[serde(default)]
    approvals_required: Option<Vec<u32>>,
    /// Issued by break-glass.
    #[serde(default)]
    breakglass: bool,
    /// What it grants: a break-glass issuance must grant what its `breakglass.used`
    /// said it would (fields of their own: `#[serde(flatten)]` of a shared struct would
    /// buffer the whole detail before parsing it).
    #[serde(default)]
    role: String,
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    public_key_fingerprint: String,
}

impl Issued {
    /// Whether this grants exactly what `used` (a `breakglass.used`) said it would.
    fn grants_as(&self, used: &Issued) -> bool {
        self.role == used.role
            && self.principals == used.principals
            && self.public_key_fingerprint == used.public_key_fingerprint
    }
}

#[derive(Deserialize)]
struct Counted {
    approver: String,
    /// 1-based step the approval counted toward.
    step: u32,
}

/// A request seen in the chain and not yet ended.
struct Open {
    requester: String,
    /// Begun by `breakglass.used` (what it said it would grant), not `request.created`.
    breakglass: Option<Issued>,
    /// Who approved it, by `request.approved` events.
    approved_by: Vec<String>,
}

/// What an event does to its request's story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Created,
    BreakglassUsed,
    Approved,
    Issued,
    /// Denied, cancelled, expired or refused: nothing may be issued for it any more.
    Ended,
}

impl Kind {
    fn of(action: &str) -> Option<Kind> {
        Some(match action {
            "request.created" => Kind::Created,
            "breakglass.used" => Kind::BreakglassUsed,
            "request.approved" => Kind::Approved,
            "certificate.issued" => Kind::Issued,
            "request.denied" | "request.cancelled" | "request.expired" | "request.refused" => {
                Kind::Ended
            }
            _ => return None,
        })
    }

    fn begins(self) -> bool {
        matches!(self, Kind::Created | Kind::BreakglassUsed)
    }
}

/// One event of a request's story, borrowed.
struct Ev<'a> {
    seq: i64,
    kind: Kind,
    actor: &'a str,
    request: &'a str,
    /// The detail of an issuance or a break-glass use (empty otherwise).
    detail: &'a str,
}

/// One event, in chain order, against the requests open before it.
fn step(open: &mut HashMap<String, Open>, ev: &Ev<'_>) -> Result<(), AuditError> {
    let broken = |why: String| AuditError::Broken { seq: ev.seq, why };
    match ev.kind {
        Kind::Created | Kind::BreakglassUsed => {
            let breakglass = match ev.kind {
                Kind::BreakglassUsed => Some(serde_json::from_str(ev.detail).map_err(|e| {
                    broken(format!(
                        "breakglass.used of {} has a bad detail: {e}",
                        ev.request
                    ))
                })?),
                _ => None,
            };
            open.insert(
                ev.request.to_owned(),
                Open {
                    requester: ev.actor.to_owned(),
                    breakglass,
                    approved_by: Vec::new(),
                },
            );
        }
        Kind::Approved => {
            if let Some(r) = open.get_mut(ev.request) {
                r.approved_by.push(ev.actor.to_owned());
            }
        }
        Kind::Issued => {
            let req = open.remove(ev.request);
            issued(ev.request, req, ev.detail).map_err(|why| {
                broken(format!(
                    "certificate.issued for request {} {why}",
                    ev.request
                ))
            })?;
        }
        Kind::Ended => {
            open.remove(ev.request);
        }
    }
    Ok(())
}

/// One `certificate.issued` event against what the chain showed of its request before
/// it; the error completes "certificate.issued for request R ...".
fn issued(request: &str, req: Option<Open>, detail: &str) -> Result<(), String> {
    let req = req.ok_or_else(|| {
        format!("has no request.created of {request} before it (or the request had ended)")
    })?;
    let d: Issued = serde_json::from_str(detail).map_err(|e| format!("has a bad detail: {e}"))?;
    if let Some(named) = &d.requester
        && *named != req.requester
    {
        return Err(format!(
            "names requester {named}, but {} created the request",
            req.requester
        ));
    }
    match (d.breakglass, &req.breakglass) {
        (true, Some(_)) if !d.approvals.is_empty() => {
            return Err("is a break-glass issuance that lists approvals".into());
        }
        (true, Some(used)) if !d.grants_as(used) => {
            return Err(format!(
                "grants {} {:?} to key {}, but its breakglass.used said {} {:?} to key {}",
                d.role,
                d.principals,
                d.public_key_fingerprint,
                used.role,
                used.principals,
                used.public_key_fingerprint
            ));
        }
        (true, Some(_)) => return Ok(()),
        (true, None) => {
            return Err(format!(
                "claims break-glass, but {request} was no break-glass use (no breakglass.used)"
            ));
        }
        (false, Some(_)) => {
            return Err(format!(
                "does not say break-glass, but {request} was a break-glass use"
            ));
        }
        (false, None) => {}
    }
    if d.approvals.is_empty() {
        return Err("lists no approvals".into());
    }
    let mut seen: Vec<&str> = Vec::with_capacity(d.approvals.len());
    for a in &d.approvals {
        if a.approver == req.requester {
            return Err(format!(
                "counts an approval by the requester {}",
                req.requester
            ));
        }
        if seen.contains(&a.approver.as_str()) {
            return Err(format!("counts {} twice", a.approver));
        }
        if !req.approved_by.contains(&a.approver) {
            return Err(format!(
                "lists approver {}, who has no request.approved of it before",
                a.approver
            ));
        }
        seen.push(&a.approver);
    }
    let Some(required) = &d.approvals_required else {
        return Ok(());
    };
    if let Some(a) = d
        .approvals
        .iter()
        .find(|a| a.step == 0 || a.step as usize > required.len())
    {
        return Err(format!(
            "counts {} toward step {} of {}",
            a.approver,
            a.step,
            required.len()
        ));
    }
    for (i, &n) in required.iter().enumerate() {
        let got = d
            .approvals
            .iter()
            .filter(|a| a.step as usize == i + 1)
            .count();
        if got < n as usize {
            return Err(format!(
                "lists {got} approvals for step {}, which required {n}",
                i + 1
            ));
        }
    }
    Ok(())
}

mod cut;
#[cfg(test)]
mod ranges;
#[cfg(test)]
mod tests;
