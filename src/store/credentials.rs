//! Whose a bearer token is, remembered for a moment on PostgreSQL.
//!
//! Every API call looks its token up. On SQLite that is an in-process read of a few
//! microseconds; on PostgreSQL it is a round trip on a pooled connection, three a flow,
//! and it cost a quarter of the flows/s the benchmark reached (docs/benchmark.md). So a
//! replica remembers each token's row (its owner, revoked mark, disabled mark, ends) for
//! at most [`REMEMBERED_FOR`], and forgets everything it remembers the moment anything
//! may have changed one:
//!
//! - **here**: a write transaction of this process that wrote anything besides the writes
//!   that name what they touch (`store/ahead.rs`: requests, approvals, certificates,
//!   audit rows, the outbox, a token's last use, idempotency keys) forgets before its
//!   COMMIT is answered (or, when its answer is lost, before its outcome is asked),
//!   so a token revoked, a user disabled or a session ended is refused by the next call;
//! - **on another replica** (or a CLI): every write transaction notifies the commit
//!   channel, with the payload `k` only when it wrote nothing but such named writes; any
//!   other notification (also a release from before this cache, which sends none) makes
//!   this replica forget, a few milliseconds after that COMMIT;
//! - **unheard**: while the listener knows its connection is down (or its task ended),
//!   nothing is remembered, and it forgets on reconnecting;
//! - a hand edit of the database (`psql`) notifies nobody, nor does a connection that
//!   fails unnoticed (a half-open TCP connection, a pooler in transaction mode): such a
//!   change is seen within [`REMEMBERED_FOR`] of the read, the hard bound.
//!
//! An unknown token is never remembered (each guess is a query, as before), and what is
//! remembered is the row, not the decision: the config (who is a user, sign-in rules) and
//! the clock (a token's or a session's end) are applied at every call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::tokens::TokenOwner;

/// Longest a token's row is used without reading it again.
pub(crate) const REMEMBERED_FOR: Duration = Duration::from_secs(1);

/// Most rows remembered at once; past it, everything is forgotten (a flood of distinct
/// tokens cannot grow the memory).
const MOST: usize = 10_000;

/// The rows remembered, and when to forget them (see the module's text).
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    /// Bumped whenever a credential may have changed.
    epoch: AtomicU64,
    /// The commit listener is connected: other replicas' changes reach this one.
    hearing: AtomicBool,
    known: Mutex<HashMap<String, Known>>,
    /// Lookups answered from memory, and from the database.
    counts: [AtomicU64; 2],
}

#[derive(Debug)]
struct Known {
    owner: TokenOwner,
    at: Instant,
}

/// What [`Credentials::epoch`] read before a lookup, and when: its answer is remembered
/// only if nothing changed meanwhile, and its age counts from then (a slow query's
/// answer is not younger than its snapshot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(u64, Instant);

impl Credentials {
    /// The row of the token whose hash is `hashed`, if remembered and fresh, as of `now`
    /// (a session past its end is revoked).
    pub(crate) fn get(&self, hashed: &str, now: i64) -> Option<TokenOwner> {
        let found = self.hearing.load(Ordering::Acquire).then(|| {
            let known = super::lock(&self.known);
            known
                .get(hashed)
                .filter(|k| k.at.elapsed() < REMEMBERED_FOR)
                .map(|k| k.owner.clone())
        });
        let mut owner = found.flatten();
        self.counts[usize::from(owner.is_none())].fetch_add(1, Ordering::Relaxed);
        if let Some(o) = owner.as_mut()
            && o.session
            && o.ends.is_none_or(|end| end <= now)
        {
            o.revoked = true;
        }
        owner
    }

    /// To be read before looking a token up in the database.
    pub(crate) fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::Acquire), Instant::now())
    }

    /// Remembers `owner`, read from the database after `since`, unless something may
    /// have changed since then or the listener is not connected.
    pub(crate) fn keep(&self, hashed: &str, owner: &TokenOwner, since: Epoch) {
        let mut known = super::lock(&self.known);
        // Checked under the lock `changed` takes: a change either comes first (and this
        // keeps nothing) or clears what this keeps.
        if self.epoch.load(Ordering::Acquire) != since.0 || !self.hearing.load(Ordering::Acquire) {
            return;
        }
        if known.len() >= MOST {
            known.clear();
        }
        known.insert(
            hashed.to_owned(),
            Known {
                owner: owner.clone(),
                at: since.1,
            },
        );
    }

    /// A credential may have changed: everything remembered is forgotten.
    pub(crate) fn changed(&self) {
        let mut known = super::lock(&self.known);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        known.clear();
    }

    /// The commit listener connected (`true`) or lost its connection; either way what
    /// it may have missed is forgotten.
    pub(crate) fn hearing(&self, connected: bool) {
        self.hearing.store(connected, Ordering::Release);
        self.changed();
    }

    /// Lookups answered from memory, and from the database.
    pub(crate) fn counts(&self) -> [u64; 2] {
        self.counts.each_ref().map(|n| n.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::UserName;

    fn owner(session: bool, ends: Option<i64>) -> TokenOwner {
        TokenOwner {
            user: UserName::parse("alice").expect("a name"),
            revoked: false,
            disabled: false,
            session,
            auth_time: None,
            via: None,
            expires_at: None,
            created_at: Some(0),
            bot_scopes: None,
            ends,
        }
    }

    fn hearing() -> Credentials {
        let c = Credentials::default();
        c.hearing(true);
        c
    }

    #[test]
    fn a_row_read_before_a_change_is_not_remembered() {
        let c = hearing();
        let since = c.epoch();
        c.changed();
        c.keep("h", &owner(false, None), since);
        assert_eq!(c.get("h", 0), None);
        c.keep("h", &owner(false, None), c.epoch());
        assert_eq!(c.get("h", 0), Some(owner(false, None)));
        assert_eq!(c.counts(), [1, 1]);
    }

    #[test]
    fn a_change_forgets_what_was_remembered() {
        let c = hearing();
        c.keep("h", &owner(false, None), c.epoch());
        c.changed();
        assert_eq!(c.get("h", 0), None);
    }

    #[test]
    fn nothing_is_remembered_while_the_listener_is_not_connected() {
        let c = Credentials::default();
        c.keep("h", &owner(false, None), c.epoch());
        assert_eq!(c.get("h", 0), None);
        let c = hearing();
        c.keep("h", &owner(false, None), c.epoch());
        c.hearing(false);
        c.keep("h", &owner(false, None), c.epoch());
        assert_eq!(c.get("h", 0), None, "deaf: neither kept nor served");
        c.hearing(true);
        assert_eq!(c.get("h", 0), None, "forgotten on reconnecting");
    }

    #[test]
    fn a_remembered_session_past_its_end_is_revoked() {
        let c = hearing();
        c.keep("s", &owner(true, Some(100)), c.epoch());
        assert!(!c.get("s", 99).expect("remembered").revoked);
        assert!(c.get("s", 100).expect("remembered").revoked);
    }

    #[test]
    fn a_rows_age_counts_from_before_its_read() {
        let c = hearing();
        let mut since = c.epoch();
        since.1 -= REMEMBERED_FOR;
        c.keep("h", &owner(false, None), since);
        assert_eq!(
            c.get("h", 0),
            None,
            "read a second ago: too old when it came"
        );
    }

    #[test]
    fn a_row_is_used_for_a_second_at_most() {
        let c = hearing();
        c.keep("h", &owner(false, None), c.epoch());
        if let Some(k) = super::super::lock(&c.known).get_mut("h") {
            k.at = Instant::now() - REMEMBERED_FOR;
        }
        assert_eq!(c.get("h", 0), None);
    }
}
