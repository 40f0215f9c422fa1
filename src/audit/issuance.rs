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

use std::collections::HashMap;

use serde::Deserialize;

use super::AuditError;
use crate::store::Tx;
use crate::store::audit as stored;

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

/// Checks every `certificate.issued` event up to `last_seq` (see the module docs); the
/// error names the first event that lacks what must precede it.
pub(super) fn check(tx: &Tx<'_>, last_seq: i64) -> Result<(), AuditError> {
    let mut open: HashMap<String, Open> = HashMap::new();
    let mut hosts = super::host_issuance::Hosts::default();
    stored::scan_stories(tx, last_seq, |ev| {
        if ev.action.starts_with("host.") {
            return hosts
                .see(ev.action, ev.issued_detail.unwrap_or_default(), ev.at)
                .map_err(|why| AuditError::Broken {
                    seq: ev.seq,
                    why: format!("{} {why}", ev.action),
                });
        }
        let Some(request) = ev.request_id else {
            return Ok(());
        };
        match ev.action {
            "request.created" | "breakglass.used" => {
                let breakglass = match ev.action {
                    "breakglass.used" => Some(
                        serde_json::from_str(ev.issued_detail.unwrap_or_default()).map_err(
                            |e| AuditError::Broken {
                                seq: ev.seq,
                                why: format!("breakglass.used of {request} has a bad detail: {e}"),
                            },
                        )?,
                    ),
                    _ => None,
                };
                open.insert(
                    request.to_owned(),
                    Open {
                        requester: ev.actor.to_owned(),
                        breakglass,
                        approved_by: Vec::new(),
                    },
                );
            }
            "request.approved" => {
                if let Some(r) = open.get_mut(request) {
                    r.approved_by.push(ev.actor.to_owned());
                }
            }
            "certificate.issued" => {
                let req = open.remove(request);
                let detail = ev.issued_detail.unwrap_or_default();
                issued(request, req, detail).map_err(|why| AuditError::Broken {
                    seq: ev.seq,
                    why: format!("certificate.issued for request {request} {why}"),
                })?;
            }
            // The request ended otherwise: nothing may be issued for it any more.
            _ => {
                open.remove(request);
            }
        }
        Ok(())
    })
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

#[cfg(test)]
mod tests;
