//! Reads sent ahead, on PostgreSQL: an operation given to [`Store::submit_planned`] may
//! name, in its plan, the read it will make first ([`Store::read_ahead`]); the writer
//! thread sends every such read of a batch with the batch's BEGIN and write lock, in one
//! round trip, instead of one round trip per operation under the lock
//! (docs/benchmark.md, "the writer is the bound").
//!
//! Such a read sees the database as the batch began, without the writes of the
//! operations before it in the batch. So its answer is used only if none of them
//! touched what it read: each write says what it touches ([`Touch`]), each read ahead
//! what it depends on, and a write that says nothing counts as touching everything. The
//! answer is also used only for the very read that was planned (the same statements
//! with the same parameters, as the operation's first statement); anything else, and
//! the operation reads as it always did.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use super::{Backend, Store, StoreError, Tx};
use crate::names::{RequestId, Serial, UserName};

/// What a write changes, and what a read sent ahead depends on. The kinds are coarse on
/// purpose: a write names every key its rows fall under, a read every key of the rows
/// it reads. Nothing else is covered (a disabled mark, a registered key): a read ahead
/// may read those only because every write of them names nothing (`None`), and so
/// counts as touching everything. Writes of what no read ahead reads (the audit log, the
/// notification outbox, tokens' last use, idempotency keys) say they touch no key
/// (`Some(&[])`); a read ahead that comes to read one of those must change that first.
/// A write that names keys also says it changes no credential: the replicas keep the
/// token rows they remember (`store/credentials.rs`); a write of a credential table
/// counts as touching everything whatever it names (`store/tx.rs`, `keyed`).
#[derive(Debug, Clone, Copy)]
pub enum Touch<'a> {
    /// The requests a user asked for and the certificates issued to them (any row
    /// whose requester is this user).
    User(&'a UserName),
    /// One request's row and its approvals, and any certificate issued for it.
    Request(&'a RequestId),
    /// The certificates with this serial.
    Serial(Serial),
}

impl Touch<'_> {
    /// The key as kept: a 64-bit hash of its kind and name. Two keys with the same hash
    /// only make a read ahead stale that need not be (it is read again): never the other
    /// way round, so a collision, even a chosen one, costs a round trip and nothing else.
    pub(super) fn key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        match self {
            Touch::User(u) => (0u8, u.as_str()).hash(&mut h),
            Touch::Request(r) => (1u8, r.as_str()).hash(&mut h),
            Touch::Serial(s) => (2u8, s.get()).hash(&mut h),
        }
        h.finish()
    }
}

/// What the writes of a transaction so far have touched (their keys).
#[derive(Debug, Default)]
pub(super) struct Touched {
    /// A write named nothing.
    everything: bool,
    keys: HashSet<u64>,
}

impl Touched {
    /// A write touched `keys`, or everything (`None`).
    pub(super) fn add(&mut self, keys: Option<&[Touch<'_>]>) {
        match keys {
            Some(keys) => self.keys.extend(keys.iter().map(Touch::key)),
            None => self.everything = true,
        }
    }

    /// Whether a write named nothing (so touched anything).
    pub(super) fn everything(&self) -> bool {
        self.everything
    }

    /// Whether any of `keys` (as [`Touch::key`] makes them) was touched.
    pub(super) fn any(&self, keys: &[u64]) -> bool {
        self.everything || keys.iter().any(|k| self.keys.contains(k))
    }

    /// Adds what `other` touched.
    pub(super) fn absorb(&mut self, other: Touched) {
        self.everything |= other.everything;
        self.keys.extend(other.keys);
    }
}

impl Store {
    /// [`Store::submit`] in two steps, both on the writer thread: `plan` runs before the
    /// batch's transaction begins (outside the write lock: it may read what does not
    /// need the lock, and name the operation's first read with [`Store::read_ahead`]),
    /// then `op` runs in the batch with what `plan` returned. The same guarantees as
    /// [`Store::submit`]; a read ahead changes how many round trips, never what is read.
    pub fn submit_planned<P: 'static, T: Send + 'static>(
        &self,
        plan: impl FnOnce() -> P + Send + 'static,
        op: impl FnOnce(P) -> T + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>> {
        match &self.backend {
            Backend::Lite(lite) => Box::pin(lite.submit(plan, op)),
            Backend::Pg(pg) => Box::pin(pg.submit(plan, op)),
        }
    }

    /// Names the first read of the operation being planned: `f`, with its statements
    /// recorded rather than run, to be sent with the batch's BEGIN. `reads` must name
    /// every key ([`Touch`]) of the rows `f` reads. When the operation then reads the
    /// same as its first statement, it gets the answer sent ahead if no write of the
    /// batch before it touched `reads`, and reads again otherwise. Only the statements of
    /// `f`'s first call that sends several at once are recorded. Does nothing on SQLite
    /// (no round trips to save) or outside a plan.
    pub fn read_ahead<T>(&self, reads: &[Touch], f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>) {
        if let Backend::Pg(pg) = &self.backend {
            pg.read_ahead(reads, |conn| f(&Tx::postgres(conn)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_names_nothing_touches_everything() {
        let (alice, bob) = (
            UserName::parse("alice").unwrap(),
            UserName::parse("bob").unwrap(),
        );
        let id = RequestId::parse("r-aaaaaaaaaaaa").unwrap();
        let (alice, bob, request) = (Touch::User(&alice), Touch::User(&bob), Touch::Request(&id));
        let mut touched = Touched::default();
        touched.add(Some(&[alice]));
        assert!(touched.any(&[bob.key(), alice.key()]));
        assert!(!touched.any(&[bob.key()]));
        assert!(
            !touched.any(&[request.key()]),
            "a request is not its requester"
        );
        assert!(!touched.any(&[]));
        let mut other = Touched::default();
        other.add(None);
        touched.absorb(other);
        assert!(touched.any(&[bob.key()]));
        assert!(
            touched.any(&[]),
            "everything includes a read that names nothing"
        );
    }
}
