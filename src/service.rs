//! The operations every front end shares: create, approve, deny, cancel, read.
//!
//! Each operation is one transaction that gathers the facts from the store, asks
//! `policy::rules` for the decision, and records the outcome with its audit row. The HTTP
//! API (and any other front end) only parses input into types, calls these, and formats
//! the result; no rule is implemented twice. Refusals are committed too (their audit row
//! is the record of who tried what) and then returned as errors.

mod calls;
mod decide;
mod error;
mod issue;
mod reload;
mod revoke;
mod users;
mod view;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use calls::{blocking, submit};
pub use decide::NewRequest;
pub use error::{ErrorKind, ServiceError, chain};
pub use reload::Reloaded;
pub use revoke::{KRL_NAMESPACE, Krl, UserRevocation};
pub use users::EnabledUser;
pub use view::{ApprovalView, CertificateView, RequestView, RevocationView, StepView, WhoAmI};

use crate::audit::{self, NewEvent, TokenCreated, TokenRevoked};
use crate::ca::{CaPublic, CertificateAuthority};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::names::{RequestId, RoleName, UserName};
use crate::policy::Policy;
use crate::policy::rules;
use crate::state::{self, Access, Guard};
use crate::store::certificates as certs;
use crate::store::requests::{self as rq, Status};
use crate::store::{Store, StoreError, Tx, meta, tokens, users as disabled};

/// The running CA: configuration, key and database.
pub struct Service {
    /// Replaced whole by a reload; readers clone the `Arc` and keep their snapshot.
    config: std::sync::RwLock<Arc<Config>>,
    ca: CertificateAuthority,
    store: Store,
    /// The last KRL built, reused while it is still exact (see `Service::krl`).
    krl: std::sync::Mutex<Option<revoke::CachedKrl>>,
    /// Keeps the high-water mark of published state (`state.rs`).
    guard: Arc<Guard>,
    /// Where every operation reads the time (`clock.rs`).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("ca", &self.ca)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Puts the parts together, keeping no high-water mark; see `Service::open` for the
    /// usual way.
    pub fn new(config: Config, ca: CertificateAuthority, store: Store) -> Self {
        let clock = Arc::new(SystemClock);
        Self::with_guard(config, ca, store, Arc::new(Guard::detached()), clock)
    }

    fn with_guard(
        config: Config,
        ca: CertificateAuthority,
        store: Store,
        guard: Arc<Guard>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Service {
            config: std::sync::RwLock::new(Arc::new(config)),
            ca,
            store,
            krl: std::sync::Mutex::new(None),
            guard,
            clock,
        }
    }

    /// Opens the state named by `config` as `access` allows (`state.rs`: the database
    /// and the CA key must belong together and not be behind the high-water mark; only
    /// an empty data folder gets both created), and checks the audit chain: a broken
    /// chain refuses to start. `operator` is recorded as the actor of what opening
    /// writes to the audit log (the CA key's record, an accepted rollback).
    pub fn open(config: Config, access: Access, operator: &str) -> Result<Self, ServiceError> {
        Self::open_with_clock(config, access, operator, Arc::new(SystemClock))
    }

    /// [`Service::open`] with the time read from `clock` instead of the system's: what
    /// it writes on opening, and every operation after. For tests that move time
    /// (`clock::ManualClock`) instead of waiting for it.
    pub fn open_with_clock(
        config: Config,
        access: Access,
        operator: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let plan = state::plan(&config, &access)?;
        let (ca, _) = CertificateAuthority::open(&config.ca, plan.create_key)?;
        let public = ssh_key::PublicKey::new(ca.public_key_data().clone(), "");
        let now = clock.now();
        let (store, guard) = state::open_store(&config, &public, &access, plan, operator, now)?;
        audit::verify_store(&store)?;
        let service = Self::with_guard(config, ca, store, guard, clock);
        if matches!(access, Access::Serve { .. }) {
            service.record_policy(operator, "start")?;
        }
        Ok(service)
    }

    /// The configuration in force now: a reload (`Service::reload`) replaces it, so an
    /// operation takes it once and decides with that one.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The time by the service's clock: what front ends that show times relative to now
    /// go by, so that they agree with the service about what has expired.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The CA's public half (signing stays inside the service).
    pub fn ca(&self) -> CaPublic {
        self.ca.public()
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Wakes whenever a request may have changed (approved, issued, denied, cancelled,
    /// expired: after any committed write); the receiver then reads the request again
    /// with [`Service::get`].
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.subscribe_commits()
    }

    /// The user a bearer token belongs to. A token of a disabled user is refused as
    /// such (`user_disabled`); a revoked token, or one of a user no longer in the config,
    /// authenticates nobody.
    pub fn authenticate(&self, secret: &str) -> Result<UserName, ServiceError> {
        self.store.read(|tx| {
            let owner = tokens::lookup(tx, secret)?.ok_or(ServiceError::Unauthenticated)?;
            let user = UserName::parse(&owner.user).map_err(|_| ServiceError::Unauthenticated)?;
            self.require_enabled(tx, &user)?;
            if owner.revoked || !self.config().policy.users.contains_key(&user) {
                return Err(ServiceError::Unauthenticated);
            }
            Ok(user)
        })
    }

    /// `user_disabled` if `user` is disabled: for front ends that identify users
    /// otherwise than by token (the SSH front door's keys), at login and before each
    /// command of a connection that stays open.
    pub fn check_enabled(&self, user: &UserName) -> Result<(), ServiceError> {
        self.store.read(|tx| self.require_enabled(tx, user))
    }

    /// Who the caller is and what they may do.
    pub fn whoami(&self, actor: &UserName) -> Result<WhoAmI, ServiceError> {
        let is_disabled = self.store.read(|tx| disabled::is_disabled(tx, actor))?;
        Ok(view::whoami(&self.config().policy, actor, is_disabled))
    }

    /// One request, if the caller may see it.
    ///
    /// A read only: a pending request past its deadline shows as `expired` here, and the
    /// expiry sweep (or the next attempt to act on it) records that durably.
    pub fn get(&self, actor: &UserName, id: &RequestId) -> Result<RequestView, ServiceError> {
        let now = self.now();
        self.store.read(|tx| {
            let row = self.visible(tx, actor, id)?;
            view::request(tx, &self.config().policy, row, now)
        })
    }

    /// Requests the caller may see (own, those they may approve; admins all), newest
    /// first: at most `limit` (1 to [`LIST_LIMIT`]), starting after request `after`
    /// (which the caller must be able to see) when given.
    pub fn list(
        &self,
        actor: &UserName,
        status: Option<Status>,
        after: Option<&RequestId>,
        limit: u32,
    ) -> Result<ListPage, ServiceError> {
        if !(1..=LIST_LIMIT).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {LIST_LIMIT}"
            )));
        }
        // Best effort: a list is a read, and must work while writes cannot (disk full,
        // another process holding the write lock). Overdue requests show as expired
        // either way; the background sweep records them.
        if let Err(e) = self.expire_overdue() {
            // Debug keeps the cause (SQLite's message); Display says only "database error".
            tracing::warn!(
                error = ?e,
                "could not expire overdue requests before a list; listing anyway"
            );
        }
        let config = self.config();
        let policy = &config.policy;
        // Non-admins: their own requests and those of roles they may approve, chosen by
        // the store before the limit (filtering the newest 10,000 of everyone's
        // afterwards hid a user's older requests once others had made 10,000 newer ones).
        let approvable: Vec<RoleName> = policy
            .roles
            .values()
            .filter(|r| policy.approves_for(actor, r))
            .map(|r| r.name.clone())
            .collect();
        let admin = policy.is_admin(actor);
        let now = self.now();
        self.store.read(|tx| {
            let cursor = match after {
                Some(id) => Some(rq::Cursor::after(&self.visible(tx, actor, id)?)),
                None => None,
            };
            // One more than asked tells whether another page follows.
            let mut rows = if admin {
                rq::list(tx, status, cursor.as_ref(), limit + 1)?
            } else {
                rq::list_visible(tx, status, actor, &approvable, cursor.as_ref(), limit + 1)?
            };
            let more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            let next = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
            let requests = rows
                .into_iter()
                .map(|row| view::request(tx, policy, row, now))
                .collect::<Result<_, _>>()?;
            Ok(ListPage { requests, next })
        })
    }

    /// The issued certificate line; only the requester may fetch it.
    pub fn certificate(&self, actor: &UserName, id: &RequestId) -> Result<String, ServiceError> {
        self.store.read(|tx| {
            // The one read that hands out a credential: a waiting SSH `request` fetches it
            // after its user may have been disabled.
            self.require_enabled(tx, actor)?;
            let row = self.visible(tx, actor, id)?;
            if &row.requester != actor {
                return Err(ServiceError::Forbidden(
                    "only the requester may fetch the certificate".into(),
                ));
            }
            match certs::for_request(tx, id)? {
                Some(c) => Ok(c.certificate),
                None => Err(ServiceError::Conflict {
                    code: crate::error_code::ErrorCode::NotIssued,
                    message: format!(
                        "request {id} is {}, no certificate was issued",
                        row.status.as_str()
                    ),
                }),
            }
        })
    }

    /// Audit events (admins only).
    pub fn audit_events(
        &self,
        actor: &UserName,
        filter: &audit::Filter,
    ) -> Result<Vec<audit::Event>, ServiceError> {
        self.require_admin(actor, "read the audit log")?;
        Ok(self.store.read(|tx| audit::query(tx, filter))?)
    }

    /// Recomputes the audit chain (admins only over the API; the CLI runs it locally).
    pub fn audit_verify(&self, actor: Option<&UserName>) -> Result<audit::Verified, ServiceError> {
        if let Some(actor) = actor {
            self.require_admin(actor, "read the audit log")?;
        }
        Ok(audit::verify_store(&self.store)?)
    }

    /// `forbidden` ("only admins may WHAT") unless `actor` is an admin.
    fn require_admin(&self, actor: &UserName, what: &str) -> Result<(), ServiceError> {
        if self.config().policy.is_admin(actor) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!("only admins may {what}")))
        }
    }

    /// `user_disabled` if `user` is disabled. Authentication refuses disabled users; each
    /// state change checks again in its own transaction, for a caller authenticated
    /// before the disabling committed (an SSH connection left open, a request in flight).
    fn require_enabled(&self, tx: &Tx<'_>, user: &UserName) -> Result<(), ServiceError> {
        if disabled::is_disabled(tx, user)? {
            return Err(ServiceError::Disabled(format!(
                "user {user} is disabled: every token and SSH key of theirs is refused until an admin enables them again"
            )));
        }
        Ok(())
    }

    /// Whether the database answers a read of the audit log's head: what `/v1/health`
    /// reports, so that a server whose storage has failed does not look healthy.
    pub fn check_storage(&self) -> Result<(), ServiceError> {
        self.store.read(crate::store::audit::last_seq)?;
        Ok(())
    }

    /// Writes the high-water mark if a KRL version was committed that it does not hold:
    /// called after a batch of writes that revoked something (before their answers
    /// leave) and by the KRL before serving a version the mark does not hold.
    pub fn publish_state(&self) -> Result<(), ServiceError> {
        self.advance_mark(false)
    }

    /// Brings the high-water mark up to the audit head too (periodically, and at stop),
    /// so that a restore of an older copy is noticed even when nothing was revoked since.
    pub fn mark_head(&self) -> Result<(), ServiceError> {
        self.advance_mark(true)
    }

    fn advance_mark(&self, follow_head: bool) -> Result<(), ServiceError> {
        let now = self.now();
        // One snapshot: the KRL version with exactly the revocations it lists.
        let (version, head, revoked) = self.store.read(|tx| {
            Ok::<_, StoreError>((
                certs::krl_version(tx)?,
                meta::audit_head(tx)?,
                certs::revoked_unexpired(tx, unix(now) - self.skew())?,
            ))
        })?;
        self.guard
            .advance(version, &head, &revoked, follow_head, now)?;
        Ok(())
    }

    /// Whether a revocation was made that the high-water mark does not hold yet: then
    /// [`Service::publish_state`] must run before any answer leaves.
    pub fn state_behind(&self) -> bool {
        self.guard.behind()
    }

    /// The backdate in seconds: how far behind the CA's clock a server's may be, so how
    /// long after `valid_before` a certificate may still be accepted somewhere.
    fn skew(&self) -> i64 {
        self.config().ca.backdate.as_secs() as i64
    }

    /// How long certificates count as held after their end by the CA's clock: the
    /// backdate after expiry (servers' clocks may lag by that much), the configured
    /// `revocation_grace` after a revocation (until servers have fetched the KRL).
    fn held(&self) -> rq::Held {
        rq::Held {
            after_expiry: self.skew(),
            after_revocation: self.config().requests.revocation_grace.as_secs() as i64,
        }
    }

    /// The request `id` if `actor` may see it; otherwise not found, so ids of other
    /// people's requests are not confirmed to exist.
    fn visible(
        &self,
        tx: &Tx<'_>,
        actor: &UserName,
        id: &RequestId,
    ) -> Result<rq::RequestRow, ServiceError> {
        let config = self.config();
        let policy = &config.policy;
        match rq::get(tx, id)? {
            Some(row)
                if rules::may_view(policy, policy.roles.get(&row.role), &row.requester, actor) =>
            {
                Ok(row)
            }
            _ => Err(ServiceError::NotFound(format!("no request {id}"))),
        }
    }

    /// Marks every overdue pending request expired, with its audit row; returns how many.
    pub fn expire_overdue(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let overdue = self.store.read(|tx| rq::overdue(tx, now.timestamp()))?;
        if overdue.is_empty() {
            return Ok(0);
        }
        self.store.write(|tx| {
            let mut n = 0;
            for row in rq::overdue(tx, now.timestamp())? {
                n += usize::from(decide::expire(tx, now, &row)?);
            }
            Ok(n)
        })
    }
}

/// Most requests one page of a list returns (and the default page size).
pub const LIST_LIMIT: u32 = 10_000;

/// One page of [`Service::list`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListPage {
    pub requests: Vec<RequestView>,
    /// When more requests follow: the id to pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<RequestId>,
}

/// Seconds since the epoch of `now`.
fn unix(now: DateTime<Utc>) -> i64 {
    now.timestamp()
}

/// Creates a token for a configured user; returns the secret (shown once). Needs only
/// the database (opened with `state::open_existing`: after `init` or a first `serve`),
/// and so goes by the system clock.
pub fn create_token(
    store: &Store,
    policy: &Policy,
    user: &UserName,
    operator: &str,
) -> Result<String, ServiceError> {
    if !policy.users.contains_key(user) {
        return Err(ServiceError::Invalid(format!(
            "user {user} is not defined in the config"
        )));
    }
    let token = tokens::generate();
    let now = SystemClock.now();
    store.write(|tx| {
        // A token made now would come alive when the user is enabled: enabling gives
        // back no token, old or new, that nobody asked for after it.
        if disabled::is_disabled(tx, user)? {
            return Err(ServiceError::Invalid(format!(
                "user {user} is disabled; an admin enables them first (countersign user enable {user})"
            )));
        }
        tokens::insert(tx, &token.hash, user, now.timestamp())?;
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: operator,
                request_id: None,
                serial: None,
                event: TokenCreated {
                    user: user.to_string(),
                }
                .into(),
            },
        )?;
        Ok::<_, ServiceError>(())
    })?;
    Ok(token.secret)
}

/// Revokes every token of `user`; returns how many there were. A name neither in
/// `policy` nor in the database (a typo) is `NotFound`, not a silent success. Like
/// [`create_token`], by the system clock.
pub fn revoke_tokens(
    store: &Store,
    policy: &Policy,
    user: &UserName,
    operator: &str,
) -> Result<usize, ServiceError> {
    let now = SystemClock.now();
    store.write(|tx| {
        if !policy.users.contains_key(user) && !disabled::has_record_of(tx, user)? {
            return Err(ServiceError::NotFound(format!(
                "no user {user}: not in the config and never seen by this CA"
            )));
        }
        let n = tokens::revoke_all(tx, user)?;
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: operator,
                request_id: None,
                serial: None,
                event: TokenRevoked {
                    user: user.to_string(),
                    tokens: n,
                    reason: None,
                }
                .into(),
            },
        )?;
        Ok::<_, ServiceError>(n)
    })
}
