//! The issuance check cut into ranges: each range checks the requests that begin in it
//! as it hashes its rows ([`Stories`]), and [`settle`] joins the ranges in chain order.

use std::collections::{HashMap, HashSet};

use super::super::AuditError;
use super::super::sieve::Sieve;
use super::{Ev, Kind, Open, step};
use crate::store::Tx;
use crate::store::audit::{self as stored, Fields};

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

/// What one range of the chain showed of requests' stories, read alongside its hashes.
///
/// A request's story depends on nothing but its own events, so each range checks the
/// requests that begin in it as the whole chain would; an event of any other request
/// (begun in an earlier range, or ended here and named again) is kept, with every later
/// event of that request in the range, for [`settle`] to replay in order once the
/// ranges before are known. Only requests crossing a boundary are kept: few.
pub(in crate::audit) struct Stories {
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
    /// More than [`CARRY_LIMIT`] events were to be kept (a forged log can name requests
    /// that never began, without end): [`settle`] walks the whole chain instead.
    overflowed: bool,
}

/// Events a range keeps for [`settle`] before it gives up keeping them (an honest log
/// keeps those of the few requests open across its cuts); a few in unit tests, so that
/// their chains take both ways.
#[cfg(not(test))]
const CARRY_LIMIT: usize = 1 << 20;
#[cfg(test)]
pub(super) const CARRY_LIMIT: usize = 8;

impl Stories {
    /// For the range of events `lo..=hi`.
    pub(in crate::audit) fn new(lo: i64, hi: i64) -> Stories {
        let events = (lo > 1).then(|| hi.saturating_sub(lo).saturating_add(1).max(0) as u64);
        Stories {
            open: HashMap::new(),
            ended: Sieve::new(events),
            carried: HashSet::new(),
            carry: Vec::new(),
            broken: None,
            overflowed: false,
        }
    }

    /// Takes the range's next event (in chain order).
    pub(in crate::audit) fn see(&mut self, f: &Fields<'_>) {
        let (Some(request), Some(kind)) = (f.request_id, Kind::of(f.action)) else {
            return;
        };
        if self.broken.is_some() || self.overflowed {
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
        } else if self.carry.len() >= CARRY_LIMIT {
            self.overflowed = true;
            self.carry = Vec::new();
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
pub(in crate::audit) fn settle(
    tx: &Tx<'_>,
    ranges: Vec<(i64, i64, Stories)>,
) -> Result<(), AuditError> {
    if ranges.iter().any(|(_, _, s)| s.overflowed) {
        let last = ranges.last().map_or(0, |(_, end, _)| end - 1);
        return walk(tx, last);
    }
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
pub(in crate::audit) fn seq_of(e: &AuditError) -> i64 {
    match e {
        AuditError::Broken { seq, .. } => *seq,
        AuditError::Store(_) => 0,
    }
}

/// The check in one walk over events `1..=last`, in order, holding only the requests
/// open: what [`settle`] does when a range kept too much.
pub(in crate::audit) fn walk(tx: &Tx<'_>, last: i64) -> Result<(), AuditError> {
    let mut open = HashMap::new();
    stored::scan(tx, 1, last, |row| {
        let f = row.fields;
        let (Some(request), Some(kind)) = (f.request_id, Kind::of(f.action)) else {
            return Ok(());
        };
        let ev = Ev {
            seq: f.seq,
            kind,
            actor: f.actor,
            request,
            detail: f.detail,
        };
        step(&mut open, &ev)
    })
}
