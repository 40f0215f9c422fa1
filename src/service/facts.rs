//! The role and the requester of requests this replica made or read, kept for the
//! approvals that follow. Neither ever changes once a request exists, so an entry is
//! never stale; it saves the read an approval makes outside the write lock on PostgreSQL
//! (`decide/approve.rs`).
//!
//! Nothing is decided on an entry alone: what it lets the approving transaction read
//! ahead is used only if the request read under the lock has the same role and requester,
//! and read again otherwise. A request rolled back or never made is simply not found by
//! that read.

use std::sync::Mutex;

use hashlink::LruCache;

use crate::names::{RequestId, RoleName, UserName};

/// How many requests are remembered: about as many as are pending on a busy CA. An
/// entry is under 150 bytes; the least recently used goes first.
const CAPACITY: usize = 4096;

/// Requests' roles and requesters, by id (see the module's comment).
#[derive(Debug)]
pub(super) struct RequestFacts(Mutex<LruCache<RequestId, (RoleName, UserName)>>);

impl Default for RequestFacts {
    fn default() -> Self {
        RequestFacts(Mutex::new(LruCache::new(CAPACITY)))
    }
}

impl RequestFacts {
    /// The role and requester of `id`, if remembered.
    pub(super) fn get(&self, id: &RequestId) -> Option<(RoleName, UserName)> {
        self.lock().get(id).cloned()
    }

    /// Remembers what a request of this id was created with or read to have.
    pub(super) fn put(&self, id: RequestId, role: RoleName, requester: UserName) {
        self.lock().insert(id, (role, requester));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<RequestId, (RoleName, UserName)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> RequestId {
        use chrono::TimeZone;
        let at = chrono::Utc
            .timestamp_opt(1_800_000_000 + n as i64, 0)
            .single();
        RequestId::new_at(at.unwrap_or_default(), &mut rand::rng())
    }

    #[test]
    fn the_least_recently_used_request_is_forgotten_first() {
        let facts = RequestFacts::default();
        let role = RoleName::parse("prod-db").unwrap();
        let alice = UserName::parse("alice").unwrap();
        let ids: Vec<RequestId> = (0..=CAPACITY).map(id).collect();
        facts.put(ids[0].clone(), role.clone(), alice.clone());
        for i in &ids[1..CAPACITY] {
            facts.put(i.clone(), role.clone(), alice.clone());
        }
        // Used again: the second one is now the oldest.
        assert_eq!(facts.get(&ids[0]), Some((role.clone(), alice.clone())));
        facts.put(ids[CAPACITY].clone(), role.clone(), alice.clone());
        assert_eq!(facts.get(&ids[1]), None);
        assert!(facts.get(&ids[0]).is_some());
        assert!(facts.get(&ids[CAPACITY]).is_some());
    }
}
