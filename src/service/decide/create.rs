//! Creating a pending request: the checks before it and its row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::plan::CreatePlan;
use super::{Attempt, flatten};
use crate::audit::{self, NewEvent, RequestCreated};
use crate::config::NotifyEvent;
use crate::names::{IdempotencyKey, Principal, RequestId, RoleName, Text, UserName};
use crate::policy::rules::{self, Refusal};
use crate::policy::{People, Role};
use crate::pubkey::SubjectKey;
use crate::service::{Credential, RequestView, Service, ServiceError, unix, view};
use crate::store::idempotency::{self as idem, Remembered};
use crate::store::requests::{self as rq, RequestRow, Status};
use crate::store::{StoreError, Tx};

/// A request as parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The role asked for.
    pub role: RoleName,
    /// The key to certify.
    pub public_key: SubjectKey,
    /// Why the requester needs the role.
    pub reason: Text,
    /// The certificate lifetime asked for; `None` takes the role's `default_ttl`.
    pub ttl: Option<Duration>,
}

/// A request as asked for and checked, before it has an id.
#[derive(Clone, Copy)]
struct Asked<'a> {
    actor: &'a UserName,
    role: &'a Role,
    req: &'a NewRequest,
    ttl: Duration,
    principals: &'a [Principal],
}

impl NewRequest {
    /// A digest of what is asked (role, key, reason, ttl): a retry under the same
    /// idempotency key must ask the same.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([
            self.role.as_str(),
            self.public_key.to_openssh(),
            self.reason.as_str(),
            self.ttl.map(|t| t.as_secs()),
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// How long an idempotency key is remembered (seconds): a retry within it gets the
/// request the key created.
pub const IDEMPOTENCY_KEY_LIFETIME: i64 = 24 * 3600;

/// A request created, or found again by its idempotency key.
#[derive(Debug, Clone)]
pub struct Created {
    /// The request, as it is now.
    pub view: RequestView,
    /// Whether the key had created it before (nothing was created this time).
    pub replayed: bool,
}

impl Service {
    /// Creates a pending request for `actor`, who came through the web UI (a browser
    /// sign-in) or the SSH front door (a registered key).
    pub fn create_request(
        &self,
        actor: &UserName,
        req: NewRequest,
    ) -> Result<RequestView, ServiceError> {
        let plan = self.plan_create(actor, &req, false);
        self.create(actor, req, None, false, plan).map(|c| c.view)
    }

    /// Creates a pending request for `actor`, who presented `credential`, once per
    /// idempotency `key`: a retry with the same key and the same request within
    /// [`IDEMPOTENCY_KEY_LIFETIME`] gets the request the key created (`replayed`),
    /// whatever has happened to it since; the same key with a different request is
    /// `idempotency_mismatch`. A session from the device flow asks only for a key
    /// registered to `actor` (`rules::device_session_key_must_be_registered`).
    pub fn create_request_once(
        &self,
        actor: &UserName,
        credential: &Credential,
        req: NewRequest,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, ServiceError> {
        let plan = self.plan_create(actor, &req, false);
        self.create_request_planned(actor, credential, req, key, plan)
    }

    /// [`Service::create_request_once`] as planned by [`Service::plan_create`] (before
    /// the batch's transaction began).
    pub fn create_request_planned(
        &self,
        actor: &UserName,
        credential: &Credential,
        req: NewRequest,
        key: Option<&IdempotencyKey>,
        plan: CreatePlan,
    ) -> Result<Created, ServiceError> {
        let device = matches!(credential, Credential::Session { device: true, .. });
        self.create(actor, req, key, device, plan)
    }

    fn create(
        &self,
        actor: &UserName,
        req: NewRequest,
        key: Option<&IdempotencyKey>,
        device: bool,
        plan: CreatePlan,
    ) -> Result<Created, ServiceError> {
        let config = self.config();
        let policy = &config.policy;
        // The moment it acts: now, after its batch took the lock, not the plan's.
        let now = self.now();
        let CreatePlan {
            candidate,
            looked_up,
        } = plan;
        let fingerprint = key.map(|_| req.fingerprint());
        let remembered_since = unix(now) - IDEMPOTENCY_KEY_LIFETIME;
        // A retry is answered before the policy is consulted: the role may have changed
        // or gone since the first attempt made the request, which still stands. Looked
        // up now, unless the caller did before submitting (the API, so that the checks
        // sent ahead stay this write's first read).
        if let (Some(key), Some(fingerprint), false) = (key, &fingerprint, looked_up)
            && let Some(created) = self.replay_before(actor, key, fingerprint, now)?
        {
            return Ok(created);
        }
        let asked = self
            .role_asked(policy, &req, actor)
            .and_then(|(role, principals)| {
                let ttl = rules::certificate_ttl(role, req.ttl).map_err(ServiceError::Invalid)?;
                Ok((role, ttl, principals))
            });
        let (role, ttl, principals) = match (asked, key, &fingerprint) {
            (Ok(asked), _, _) => asked,
            // A retry whose first attempt committed in this batch, after the plan looked:
            // still answered with what it made, before the refusal.
            (Err(e), Some(key), Some(fingerprint)) => {
                return self.replay_before(actor, key, fingerprint, now)?.ok_or(e);
            }
            (Err(e), _, _) => return Err(e),
        };
        let limit = config.requests.max_pending_per_user;
        let attempt = Attempt {
            actor,
            what: "request.create",
            request: None,
            role: &role.name,
        };
        let rivals: Vec<_> = policy.conflicting_roles(&role.name).into_iter().collect();
        let created = flatten(self.store.write(|tx| {
            // The actor's disabled mark, their pending count, whether a fresh id is free
            // and what they hold of the rival roles: one round trip under the write lock
            // (sent ahead with the batch's BEGIN when it can be: the plan).
            let checks = rq::create_checks(
                tx,
                (actor, unix(now), self.held()),
                &rivals,
                (&candidate, &req.public_key.fingerprint()),
            )?;
            if checks.disabled {
                return Err(crate::service::disabled_error(actor));
            }
            // A retry that raced the first attempt: checked again in the transaction that
            // would create, before any limit (it asks for nothing new).
            if let (Some(key), Some(fingerprint)) = (key, &fingerprint)
                && let Some(created) =
                    self.replay(tx, actor, key, fingerprint, remembered_since, now)?
            {
                return Ok(Ok(created));
            }
            // Someone else's key is bad input (`invalid_request`), refused before anything
            // is written; checked again at signing, where a changed config or a key
            // registered since ends the request `key_not_allowed`. With
            // `require_registered_keys`, any key not the requester's is a refusal
            // (`key_not_allowed`, audited) below.
            let subject = &req.public_key;
            let required = config.requests.require_registered_keys;
            // A device-flow session asks only for a registered key of the actor's, which
            // the rule below checks (audited, with what to do); not as bad input here.
            if !required
                && !device
                && let Err(r) =
                    rules::key_must_be_requesters(policy, &checks.key_facts, actor, subject)
            {
                return Ok(Err(ServiceError::Invalid(r.to_string())));
            }
            // Counted inside the transaction: racing creates cannot pass the limit together.
            if checks.pending >= limit {
                return Ok(Err(ServiceError::TooManyPending { limit }));
            }
            let idp = self.idp_groups(tx, &[actor], now)?;
            let people = People::new(policy, &idp);
            if let Err(r) = rules::requester_must_be_listed(&people, role, actor)
                .and_then(|()| rules::principals_must_be_own(&people, role, actor))
                .and_then(|()| {
                    let facts = &checks.key_facts;
                    rules::key_must_be_registered(required, policy, facts, actor, subject)?;
                    if device {
                        rules::device_session_key_must_be_registered(
                            policy, facts, actor, subject,
                        )?;
                    }
                    Ok(())
                })
            {
                return self.refuse(tx, now, &attempt, r);
            }
            if let Err(r) =
                rules::no_conflicting_holding(policy, &role.name, actor, &checks.holdings)
            {
                let r = self.conflict_lifts(tx, now, r, None)?;
                return self.refuse(tx, now, &attempt, r);
            }
            let asked = Asked {
                actor,
                role,
                req: &req,
                ttl,
                principals: &principals,
            };
            let row = self.new_row(tx, now, &asked, (candidate, checks.id_taken))?;
            rq::insert(tx, &row)?;
            if let (Some(key), Some(fingerprint)) = (key, fingerprint.clone()) {
                let made = Remembered {
                    fingerprint,
                    request_id: row.id.clone(),
                };
                idem::remember(tx, actor, key, &made, unix(now), remembered_since)?;
            }
            audit::append(
                tx,
                now,
                &NewEvent::on_request(
                    actor.as_str(),
                    row.id.as_str(),
                    RequestCreated {
                        role: row.role.to_string(),
                        reason: row.reason.clone(),
                        ttl_seconds: row.ttl_seconds,
                        principals: row.principals.clone(),
                        public_key_fingerprint: row.key_fingerprint.clone(),
                        role_digest: row.role_digest.clone(),
                        expires_at: view::rfc3339(row.expires_at),
                    },
                ),
            )?;
            self.tell(tx, now, NotifyEvent::RequestCreated, &row.id)?;
            let role = row.role.to_string();
            self.count(tx, move |m| m.request_created(&role));
            // A new request has no approvals and no certificate yet: nothing to read back.
            // Its requester was just checked to be enabled, in this transaction.
            Ok(Ok(Created {
                view: view::assemble(&people, row, Vec::new(), None, false, now),
                replayed: false,
            }))
        }))?;
        // Committed: its approvals need not read these again (`service/facts.rs`).
        if self.store.is_postgres()
            && let Ok(id) = RequestId::parse(&created.view.id)
        {
            self.facts.put(id, role.name.clone(), actor.clone());
        }
        Ok(created)
    }

    /// A `sod_conflict` through a certificate revoked (or given back) less than
    /// `revocation_grace` ago, told when it lifts; any other refusal as it is.
    pub(in crate::service) fn conflict_lifts(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        refusal: Refusal,
        except: Option<&RequestId>,
    ) -> Result<Refusal, ServiceError> {
        Ok(match refusal {
            Refusal::SodConflict {
                user,
                role,
                held,
                reason,
                lifts_at: None,
            } => {
                let lifts =
                    rq::revoked_hold_lifts(tx, &user, &held, unix(now), self.held(), except)?;
                Refusal::SodConflict {
                    user,
                    role,
                    held,
                    reason,
                    lifts_at: lifts.map(view::rfc3339),
                }
            }
            other => other,
        })
    }

    /// What `actor`'s idempotency `key` already made for a request with this
    /// `fingerprint` ([`NewRequest::fingerprint`]), `actor`'s disabled mark first, in a
    /// read of its own: for a front end to answer a retry before it submits the create
    /// (then planned with `looked_up`), off the writer thread. The create checks again
    /// inside its write, so a retry racing its first attempt still creates nothing.
    pub fn replay_created(
        &self,
        actor: &UserName,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Option<Created>, ServiceError> {
        self.replay_before(actor, key, fingerprint, self.now())
    }

    /// The role `req` asks for and the principals it gives `actor`: `invalid_request`
    /// for an unknown role, the CA's own key, or principals the role cannot give them.
    pub(super) fn role_asked<'p>(
        &self,
        policy: &'p crate::policy::Policy,
        req: &NewRequest,
        actor: &UserName,
    ) -> Result<(&'p Role, Vec<Principal>), ServiceError> {
        let role = policy
            .roles
            .get(&req.role)
            .ok_or_else(|| ServiceError::Invalid(format!("unknown role {}", req.role)))?;
        if self.is_ca_key(&req.public_key) {
            return Err(ServiceError::Invalid(
                "the CA key cannot be certified".into(),
            ));
        }
        let principals = role
            .principals_for(actor)
            .map_err(|e| ServiceError::Invalid(format!("role {}: {e}", role.name)))?;
        Ok((role, principals))
    }

    /// [`Service::replay_created`] at `now`.
    pub(super) fn replay_before(
        &self,
        actor: &UserName,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Created>, ServiceError> {
        let remembered_since = unix(now) - IDEMPOTENCY_KEY_LIFETIME;
        self.store.read(|tx| {
            self.require_enabled(tx, actor)?;
            self.replay(tx, actor, key, fingerprint, remembered_since, now)
        })
    }

    /// The answer to a retry: the request `actor`'s `key` created since
    /// `remembered_since`, if it did, as it is now; `idempotency_mismatch` if it was made
    /// for another request than `fingerprint` says.
    fn replay(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        key: &IdempotencyKey,
        fingerprint: &str,
        remembered_since: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Created>, ServiceError> {
        let Some(seen) = idem::lookup(tx, actor, key, remembered_since)? else {
            return Ok(None);
        };
        if seen.fingerprint != fingerprint {
            return Err(ServiceError::IdempotencyMismatch(format!(
                "Idempotency-Key {key} was used for a different request ({}); use a new key \
                 for a new request",
                seen.request_id
            )));
        }
        let row = rq::get(tx, &seen.request_id)?
            .ok_or_else(|| StoreError::Corrupt(format!("no request {}", seen.request_id)))?;
        Ok(Some(Created {
            view: self.request_view(tx, row, now)?,
            replayed: true,
        }))
    }

    /// The row of a new pending request, under an id not taken yet: `candidate`, read in
    /// this transaction to be free or taken, or another one found free.
    fn new_row(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        asked: &Asked<'_>,
        candidate: (RequestId, bool),
    ) -> Result<RequestRow, ServiceError> {
        let Asked {
            actor,
            role,
            req,
            ttl,
            principals,
        } = *asked;
        let id = super::plan::free_id(tx, now, candidate, &mut rand::rng())?;
        let pending_ttl = self.config().requests.pending_ttl.as_secs() as i64;
        Ok(RequestRow {
            id,
            role: role.name.clone(),
            requester: actor.clone(),
            reason: req.reason.as_str().to_owned(),
            ttl_seconds: ttl.as_secs() as i64,
            public_key: req.public_key.to_openssh(),
            key_fingerprint: req.public_key.fingerprint(),
            principals: principals.iter().map(|p| p.as_str().to_owned()).collect(),
            role_digest: role.digest(),
            status: Status::Pending,
            created_at: unix(now),
            expires_at: unix(now) + pending_ttl,
            decided_at: None,
            decided_by: None,
            decision_code: None,
            decision_note: None,
            approvals_required: Some(i64::from(role.approvals_needed())),
        })
    }
}
