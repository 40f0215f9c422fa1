//! What creating and approving work out before their batch's transaction begins
//! ([`Store::submit_planned`](crate::store::Store::submit_planned)): the fresh ids they
//! will try, and the read each names to be sent ahead with the batch's BEGIN (on
//! PostgreSQL), asked as the operation will ask it under the lock. Nothing is decided
//! here, and not at the plan's moment: the operation takes its own moment once it runs
//! (after the lock: a deadline passed meanwhile counts), checks everything again in its
//! transaction, and reads anew whatever the answer sent ahead cannot be used for
//! (`store/ahead.rs`): an answer asked about another second than the operation's moment
//! has other parameters, and is not used. [`free_id`], run inside the transaction,
//! finds another id when the planned one is taken.

use chrono::{DateTime, Utc};

use super::NewRequest;
use crate::names::{RequestId, RoleName, Serial, UserName};
use crate::service::{Service, ServiceError, SteppedUp, unix};
use crate::store::requests as rq;
use crate::store::{Touch, Tx};

/// A create's plan ([`Service::plan_create`]).
#[derive(Debug)]
pub struct CreatePlan {
    /// The id it tries first.
    pub(super) candidate: RequestId,
    /// The caller looked the idempotency key up already and found nothing
    /// ([`Service::replay_created`], before submitting): the run does not look again
    /// before its write (it still does inside it).
    pub(super) looked_up: bool,
}

/// An approval's plan ([`Service::plan_approve`]).
#[derive(Debug)]
pub struct ApprovePlan {
    /// The request it was made for: any other request is approved without it.
    pub(super) id: RequestId,
    /// The request's role and requester (they never change), the roles in conflict
    /// with that role, and a fresh serial: what its signing checks are asked about.
    pub(super) ahead: Option<(RoleName, UserName, Vec<RoleName>, Serial)>,
}

impl Service {
    /// Plans `actor`'s creating `req` (`looked_up`: its idempotency key was looked up
    /// and found nothing, see [`CreatePlan`]): on PostgreSQL its checks are sent ahead.
    pub fn plan_create(&self, actor: &UserName, req: &NewRequest, looked_up: bool) -> CreatePlan {
        let now = self.now();
        let candidate = RequestId::new_at(now, &mut rand::rng());
        let config = self.config();
        // SQLite has no round trips to save.
        if self.store.is_postgres()
            && let Some(role) = config.policy.roles.get(&req.role)
        {
            let rivals: Vec<_> = config
                .policy
                .conflicting_roles(&role.name)
                .into_iter()
                .collect();
            let reads = [Touch::User(actor), Touch::Request(&candidate)];
            self.store.read_ahead(&reads, |tx| {
                rq::create_checks(
                    tx,
                    (actor, unix(now), self.held()),
                    &rivals,
                    (&candidate, &req.public_key.fingerprint()),
                )
            });
        }
        CreatePlan {
            candidate,
            looked_up,
        }
    }

    /// Plans `who`'s approving request `id`: on PostgreSQL the request, its approvals
    /// and (when its role and requester are known without the lock) what signing checks
    /// are sent ahead.
    pub fn plan_approve(&self, who: &SteppedUp, id: &RequestId) -> ApprovePlan {
        let now = self.now();
        // Known from the request's creation here or an earlier read, else read now,
        // outside the lock. A failed read only costs the round trip: the write reads
        // what it needs anyway. (SQLite has no round trips to save.)
        let ahead = self
            .store
            .is_postgres()
            .then(|| self.role_and_requester(id))
            .flatten()
            .map(|(role, requester)| {
                let rivals: Vec<RoleName> = self
                    .config()
                    .policy
                    .conflicting_roles(&role)
                    .into_iter()
                    .cloned()
                    .collect();
                (
                    role,
                    requester,
                    rivals,
                    Serial::fresh(now, &mut rand::rng()),
                )
            });
        if let Some((_, requester, rivals, serial)) = &ahead {
            let roles: Vec<&RoleName> = rivals.iter().collect();
            let ask = rq::SigningAsk {
                asking: (requester, unix(now), self.held(), Some(id)),
                roles: &roles,
                serial: *serial,
            };
            let reads = [
                Touch::Request(id),
                Touch::User(requester),
                Touch::Serial(*serial),
            ];
            self.store.read_ahead(&reads, |tx| {
                rq::get_marked_with_approvals(tx, id, who.user(), Some(ask))
            });
        }
        ApprovePlan {
            id: id.clone(),
            ahead,
        }
    }

    /// The role and requester of request `id`: remembered, or read (and remembered).
    fn role_and_requester(&self, id: &RequestId) -> Option<(RoleName, UserName)> {
        if let Some(facts) = self.facts.get(id) {
            return Some(facts);
        }
        let (role, requester) = self
            .store
            .read_single(|tx| rq::role_and_requester(tx, id))
            .ok()
            .flatten()?;
        self.facts.put(id.clone(), role.clone(), requester.clone());
        Some((role, requester))
    }
}

/// Taken ids drawn at the clock's millisecond before [`free_id`] draws any id.
const DRAWS_AT_THE_CLOCK: u32 = 16;

/// `candidate`, read in this transaction to be free (`false`) or taken, or another id
/// found free: made at `now` ([`RequestId::new_at`]), and after [`DRAWS_AT_THE_CLOCK`]
/// taken ones, any id ([`RequestId::random`]), so that a stuck clock never leaves the
/// writer drawing taken ids forever.
pub(super) fn free_id(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    (mut id, mut taken): (RequestId, bool),
    rng: &mut impl rand::Rng,
) -> Result<RequestId, ServiceError> {
    let mut draws = 0;
    while taken {
        id = match draws < DRAWS_AT_THE_CLOCK {
            true => RequestId::new_at(now, rng),
            false => RequestId::random(rng),
        };
        taken = rq::exists(tx, &id)?;
        draws += 1;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::store::Store;
    use crate::store::requests::{RequestRow, Status};

    fn request(id: RequestId) -> RequestRow {
        RequestRow {
            id,
            role: RoleName::parse("prod-db").unwrap(),
            requester: UserName::parse("alice").unwrap(),
            reason: "test".into(),
            ttl_seconds: 600,
            public_key: "ssh-ed25519 AAAA".into(),
            key_fingerprint: "SHA256:x".into(),
            principals: vec!["postgres".into()],
            role_digest: "x".into(),
            status: Status::Denied,
            created_at: 0,
            expires_at: 600,
            decided_at: Some(0),
            decided_by: Some("bob".into()),
            decision_code: None,
            decision_note: None,
            approvals_required: Some(1),
        }
    }

    #[test]
    fn a_taken_id_is_drawn_again_and_a_stuck_clock_ends_in_any_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let seeded = || ChaCha8Rng::seed_from_u64(27);
        // Before 1970 counts as 0 ms: every id made then starts with the same 9
        // characters. The first 16 a seeded generator makes are taken.
        let stuck = Utc.timestamp_millis_opt(-1_000).single().unwrap();
        let mut rng = seeded();
        let taken: Vec<RequestId> = (0..16)
            .map(|_| RequestId::new_at(stuck, &mut rng))
            .collect();
        let id = store
            .write(|tx| {
                for id in &taken {
                    rq::insert(tx, &request(id.clone()))?;
                }
                free_id(tx, stuck, (taken[0].clone(), true), &mut seeded())
            })
            .unwrap();
        assert!(!taken.contains(&id), "{id} is free");
        assert_ne!(
            id.as_str()[..9],
            taken[0].as_str()[..9],
            "{id}: any id, not at the clock"
        );
        // A free candidate is kept.
        let free = RequestId::new_at(stuck, &mut rand::rng());
        let kept = store
            .write(|tx| free_id(tx, stuck, (free.clone(), false), &mut seeded()))
            .unwrap();
        assert_eq!(kept, free);
    }
}
