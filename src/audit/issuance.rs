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

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::AuditError;
use super::sieve::Sieve;
use crate::store::Tx;
use crate::store::audit::{self as stored, Fields};

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

/// An event [`settle`] replays, owned.
struct Carried {
    seq: i64,
    kind: Kind,
    actor: String,
    request: String,
    detail: String,
    /// The first kept of its request, which may have begun and ended earlier in the
    /// range (the range's [`Sieve`] said "maybe").
    after_end: bool,
}

impl Carried {
    fn ev(&self) -> Ev<'_> {
        Ev {
            seq: self.seq,
            kind: self.kind,
            actor: &self.actor,
            request: &self.request,
            detail: &self.detail,
        }
    }
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

/// What one range of the chain showed of requests' stories, read alongside its hashes.
///
/// A request's story depends on nothing but its own events, so each range checks the
/// requests that begin in it as the whole chain would; an event of any other request
/// (begun in an earlier range, or ended here and named again) is kept, with every later
/// event of that request in the range, for [`settle`] to replay in order once the
/// ranges before are known. Only requests crossing a boundary are kept: few.
pub(super) struct Stories {
    /// Requests begun in this range and not ended.
    open: HashMap<String, Open>,
    /// Requests begun and ended in this range (none kept for the first range: nothing is
    /// open before it).
    ended: Sieve,
    /// Requests whose events here are kept for [`settle`].
    carried: HashSet<String>,
    carry: Vec<Carried>,
    /// The first event checked here that lacks what must precede it; nothing after it
    /// is looked at.
    broken: Option<AuditError>,
}

impl Stories {
    /// For the range of events `lo..=hi`.
    pub(super) fn new(lo: i64, hi: i64) -> Stories {
        let events = (lo > 1).then(|| hi.saturating_sub(lo).saturating_add(1).max(0) as u64);
        Stories {
            open: HashMap::new(),
            ended: Sieve::new(events),
            carried: HashSet::new(),
            carry: Vec::new(),
            broken: None,
        }
    }

    /// Takes the range's next event (in chain order).
    pub(super) fn see(&mut self, f: &Fields<'_>) {
        let (Some(request), Some(kind)) = (f.request_id, Kind::of(f.action)) else {
            return;
        };
        if self.broken.is_some() {
            return;
        }
        let detail = match kind {
            Kind::Issued | Kind::BreakglassUsed => f.detail,
            _ => "",
        };
        let here =
            !self.carried.contains(request) && (kind.begins() || self.open.contains_key(request));
        if here {
            let ev = Ev {
                seq: f.seq,
                kind,
                actor: f.actor,
                request,
                detail,
            };
            self.broken = step(&mut self.open, &ev).err();
            if matches!(kind, Kind::Issued | Kind::Ended) {
                self.ended.insert(request);
            }
        } else {
            let first = self.carried.insert(request.to_owned());
            self.carry.push(Carried {
                seq: f.seq,
                kind,
                actor: f.actor.to_owned(),
                request: request.to_owned(),
                detail: detail.to_owned(),
                after_end: first && self.ended.may_hold(request),
            });
        }
    }
}

/// Joins the ranges' [`Stories`] in chain order, each with the first seq of its range
/// and the first seq after it: replays what a range kept against the requests open at
/// its start, then lets what it checked itself replace them. The error names the first
/// event, in chain order, that lacks what must precede it.
pub(super) fn settle(tx: &Tx<'_>, ranges: Vec<(i64, i64, Stories)>) -> Result<(), AuditError> {
    let mut open: HashMap<String, Open> = HashMap::new();
    for (lo, end, stories) in ranges {
        let mut first = stories.broken;
        for c in &stories.carry {
            if first.as_ref().is_some_and(|e| seq_of(e) < c.seq) {
                break;
            }
            // A request begun and ended in this range before its first kept event was
            // not open then, whatever the ranges before left.
            if c.after_end && stored::began_in_rows(tx, &c.request, lo, c.seq)? {
                open.remove(&c.request);
            }
            if let Err(e) = step(&mut open, &c.ev()) {
                first = Some(e);
                break;
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        // A request open before this range and kept by neither side either had no
        // event in it, or began again in it and ended there: then it is not open.
        let mut ended_here = Vec::new();
        for request in open.keys() {
            if !stories.carried.contains(request)
                && !stories.open.contains_key(request)
                && stories.ended.may_hold(request)
                && stored::began_in_rows(tx, request, lo, end)?
            {
                ended_here.push(request.clone());
            }
        }
        for request in ended_here {
            open.remove(&request);
        }
        open.extend(stories.open);
    }
    Ok(())
}

/// The sequence number a chain error names (0 for a storage error).
pub(super) fn seq_of(e: &AuditError) -> i64 {
    match e {
        AuditError::Broken { seq, .. } => *seq,
        AuditError::Store(_) => 0,
    }
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
mod ranges;
#[cfg(test)]
mod tests;
