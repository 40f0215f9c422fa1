//! Checking the chain: every event against its hash and its predecessor, on one thread
//! ([`verify`]) or with the chain cut into ranges checked on several ([`verify_store`]).

use std::hash::RandomState;

use serde::Serialize;

use super::issuance::{self, Stories, seq_of};
use super::sieve::Tally;
use super::{GENESIS, host_issuance};
use crate::store::audit as stored;
use crate::store::{Store, StoreError, Tx};

/// The chain is broken at `seq`.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A stored event does not match its hash or its predecessor.
    #[error("audit log broken at event {seq}: {why}")]
    Broken {
        /// The sequence number of the first event that does not fit.
        seq: i64,
        /// What does not match.
        why: String,
    },
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Number of events.
    pub events: i64,
    /// Hash of the newest event (the head).
    pub head: String,
}

/// Recomputes the whole chain, then checks that every `certificate.issued` event is
/// preceded by its request and approvals (and every host certificate by its join token
/// or its predecessor); the error names the first bad event.
pub fn verify(tx: &Tx<'_>) -> Result<Verified, AuditError> {
    let keys = RandomState::new();
    // Up to the newest event, which must all be there (a hidden tail is a break).
    let last = stored::last_seq(tx)?;
    let span = verify_span(tx, 1, last, Some(GENESIS), &keys)?;
    let end = span.events + 1;
    let requests = issuance::settle(tx, vec![(1, end, span.stories)]);
    let indexed = host_issuance::check(tx, span.events, &keys, true);
    let hosts = host_issuance::settle(tx, span.events, &keys, span.hosts, indexed);
    earliest(requests, hosts)?;
    Ok(Verified {
        events: span.events,
        head: span.last_hash,
    })
}

/// The issuance check's answer from its two halves (requests, hosts): the earlier error.
fn earliest(
    requests: Result<(), AuditError>,
    hosts: Result<(), AuditError>,
) -> Result<(), AuditError> {
    match (requests, hosts) {
        (Err(r), Err(h)) if seq_of(&h) < seq_of(&r) => Err(h),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// [`verify`] over a store, with the chain cut into ranges checked on several threads
/// (each event can be checked from its own stored `prev_hash`; only the links between
/// ranges are checked afterwards), each also checking the stories of the requests that
/// begin in it; the host events are read in order beside them, through their index.
/// Events appended meanwhile are not looked at.
pub fn verify_store(store: &Store) -> Result<Verified, AuditError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    verify_parallel(store, threads, 20_000)
}

/// [`verify_store`] with the number of threads, and the chain length below which one
/// thread does it all.
pub(super) fn verify_parallel(
    store: &Store,
    threads: usize,
    min_events: i64,
) -> Result<Verified, AuditError> {
    let last = store.read(stored::last_seq)?;
    let threads = threads as i64;
    if threads < 2 || last < min_events.max(1) {
        return store.read_scan(verify);
    }
    let per = last / threads + 1;
    // A short chain can leave the last range empty; an empty range has no link to check.
    let ranges: Vec<(i64, i64)> = (0..threads)
        .map(|i| (i * per + 1, ((i + 1) * per).min(last)))
        .filter(|(lo, hi)| lo <= hi)
        .collect();
    let keys = &RandomState::new();
    let (spans, indexed) = std::thread::scope(|scope| {
        // The hosts' check needs their events in order, so it reads them alongside the
        // ranges (the requests' check runs in them: see `issuance::Stories`).
        let hosts =
            scope.spawn(move || store.read_scan(|c| host_issuance::check(c, last, keys, true)));
        let handles: Vec<_> = ranges
            .iter()
            .map(|&(lo, hi)| {
                let first = (lo == 1).then_some(GENESIS);
                scope.spawn(move || store.read_scan(|c| verify_span(c, lo, hi, first, keys)))
            })
            .collect();
        let panicked = || AuditError::Broken {
            seq: 0,
            why: "verifier thread panicked".into(),
        };
        let spans: Vec<Result<Span, AuditError>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked())))
            .collect();
        (spans, hosts.join().unwrap_or_else(|_| Err(panicked())))
    });
    // A broken hash chain is reported first: what it says of issuances is not evidence.
    let (verified, stories, seen) = first_break(&ranges, spans)?;
    let stories = ranges
        .iter()
        .zip(stories)
        .map(|(&(lo, hi), s)| (lo, hi + 1, s))
        .collect();
    let requests = store.read(|c| issuance::settle(c, stories));
    // Nothing to read again when the index showed what the hashed rows did.
    let hosts = if host_issuance::agrees(&seen, &indexed) {
        Ok(())
    } else {
        store.read_scan(|c| host_issuance::settle(c, last, keys, seen, indexed))
    };
    earliest(requests, hosts)?;
    Ok(verified)
}

/// Joins range results: the earliest broken event wins, including broken links between
/// ranges; a storage error is returned as is.
fn first_break(
    ranges: &[(i64, i64)],
    spans: Vec<Result<Span, AuditError>>,
) -> Result<(Verified, Vec<Stories>, Tally), AuditError> {
    let mut earliest: Option<AuditError> = None;
    let mut keep = |e: AuditError| match (&earliest, &e) {
        (Some(AuditError::Broken { seq: old, .. }), AuditError::Broken { seq: new, .. })
            if old <= new => {}
        _ => earliest = Some(e),
    };
    let mut prev: Option<&Span> = None;
    let mut events = 0;
    for (i, span) in spans.iter().enumerate() {
        match span {
            Err(AuditError::Store(_)) => {
                return Err(spans.into_iter().nth(i).and_then(Result::err).unwrap_or(
                    AuditError::Broken {
                        seq: 0,
                        why: "storage".into(),
                    },
                ));
            }
            Err(AuditError::Broken { seq, why }) => keep(AuditError::Broken {
                seq: *seq,
                why: why.clone(),
            }),
            Ok(s) => {
                if let Some(p) = prev
                    && s.first_prev != p.last_hash
                {
                    keep(AuditError::Broken {
                        seq: ranges[i].0,
                        why: "prev_hash does not match the previous event's hash".into(),
                    });
                }
                events += s.events;
            }
        }
        prev = span.as_ref().ok();
    }
    if let Some(e) = earliest {
        return Err(e);
    }
    let head = match spans.last() {
        Some(Ok(last)) => last.last_hash.clone(),
        _ => GENESIS.to_owned(),
    };
    let mut hosts = Tally::default();
    let stories = spans
        .into_iter()
        .filter_map(Result::ok)
        .map(|s| {
            hosts = hosts.join(s.hosts);
            s.stories
        })
        .collect();
    Ok((Verified { events, head }, stories, hosts))
}

/// One verified range of the chain.
struct Span {
    /// `prev_hash` of its first event.
    first_prev: String,
    /// `hash` of its last event.
    last_hash: String,
    /// Events in it.
    events: i64,
    /// What it showed of requests' stories.
    stories: Stories,
    /// Its host events.
    hosts: Tally,
}

/// Checks events `lo..=hi`, all of which must exist (up to the end when `hi` is
/// `i64::MAX`); `expected_prev`, when given, must be the first event's `prev_hash`.
fn verify_span(
    tx: &Tx<'_>,
    lo: i64,
    hi: i64,
    expected_prev: Option<&str>,
    keys: &RandomState,
) -> Result<Span, AuditError> {
    let mut expected_prev: Option<String> = expected_prev.map(str::to_owned);
    let mut first_prev: Option<String> = None;
    let mut expected_seq = lo;
    let mut buf = Vec::with_capacity(1024);
    let mut hex_buf = [0u8; 64];
    let mut stories = Stories::new(lo, hi);
    let mut hosts = Tally::default();
    stored::scan(tx, lo, hi, |row| {
        let seq = row.fields.seq;
        let broken = |why: &str| AuditError::Broken {
            seq,
            why: why.to_owned(),
        };
        if seq != expected_seq {
            return Err(AuditError::Broken {
                seq: expected_seq,
                why: format!("event missing (next stored event is {seq})"),
            });
        }
        if expected_prev.as_deref().is_some_and(|p| p != row.prev_hash) {
            return Err(broken("prev_hash does not match the previous event's hash"));
        }
        if first_prev.is_none() {
            first_prev = Some(row.prev_hash.to_owned());
        }
        let digest = row.fields.digest(row.prev_hash, &mut buf);
        // Encoding 32 bytes into a 64-byte buffer cannot fail.
        let _ = hex::encode_to_slice(digest, &mut hex_buf);
        if row.hash.as_bytes() != hex_buf {
            return Err(broken(
                "content does not match its hash (the event was altered)",
            ));
        }
        let next = expected_prev.get_or_insert_with(String::new);
        next.clear();
        next.push_str(row.hash);
        stories.see(&row.fields);
        let f = &row.fields;
        if stored::is_host_action(f.action) {
            hosts.add(keys, (seq, f.action, f.detail, f.at));
        }
        expected_seq += 1;
        Ok(())
    })?;
    if hi != i64::MAX && expected_seq <= hi {
        return Err(AuditError::Broken {
            seq: expected_seq,
            why: "event missing".into(),
        });
    }
    let events = expected_seq - lo;
    let genesis = || GENESIS.to_owned();
    Ok(Span {
        first_prev: first_prev.unwrap_or_else(genesis),
        last_hash: if events == 0 {
            genesis()
        } else {
            expected_prev.unwrap_or_else(genesis)
        },
        events,
        stories,
        hosts,
    })
}
