//! The operations every front end shares: create, approve, deny, cancel, revoke, disable
//! and enable users, reload, and the reads; and, for the operator commands on the CA host,
//! [`Local`] (tokens, backup, audit verification and checkpoints).
//!
//! Each operation is one transaction that gathers the facts from the store, asks
//! `policy::rules` for the decision, and records the outcome with its audit row. The HTTP
//! API, the SSH front door and the CLI only parse input into types, call these, and format
//! the result; no rule is implemented twice. Refusals are committed too (their audit row
//! is the record of who tried what) and then returned as errors.

mod calls;
mod credential;
mod decide;
mod device;
mod error;
mod facts;
mod forgotten;
mod hosts;
mod identity;
mod inbox;
mod issue;
mod keys;
mod local;
mod migrate;
mod notify;
mod observe;
mod people;
mod read;
mod ready;
mod recheck;
mod reload;
mod review;
mod revoke;
mod sessions;
mod signin;
mod signoff;
pub mod skew;
mod token;
mod users;
mod view;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use crate::policy::rules::break_glass::Verdict;
pub use crate::state::Access;
pub use crate::store::device::DeviceLogin;
pub use crate::store::identities::Binding as IdentityBinding;
pub use crate::store::recheck::Due as DueSession;
pub use crate::store::requests::Status;
pub use crate::store::sessions::{LoginRow as SignInInProgress, SESSION_PREFIX};
pub use crate::store::tokens::TokenListing;
pub use calls::{blocking, quick, submit, submit_planned};
pub use credential::{Authenticated, Credential, ScopeSet, StepUp, SteppedUp};
pub use decide::{
    Allowance, ApprovePlan, CreatePlan, Created, IDEMPOTENCY_KEY_LIFETIME, NewRequest,
};
pub use device::{DEVICE_CODE_GRANT, DEVICE_VIA, DeviceGrant, DeviceWait, format_user_code};
pub use error::{ErrorKind, ServiceError, chain};
pub use forgotten::Relisted;
pub use hosts::{
    HOST_CHALLENGE_LIFETIME, HOST_KRL_NAMESPACE, HOST_LIST_LIMIT, HOST_RENEW_NAMESPACE,
    HOST_TOKEN_DEFAULT_TTL, HOST_TOKEN_MAX_TTL, HOST_TOKEN_PREFIX, HostCertView, HostRenewal,
    NewHostToken,
};
pub use identity::{list_identities, unbind_identity};
pub use inbox::ListFilter;
pub use keys::{
    CHALLENGE_LIFETIME, KEY_NAMESPACE, KeyListing, KeySource, MAX_KEYS_PER_USER, ProvenKey,
    Removed as RemovedKey, check_proof, prove,
};
pub use local::Local;
pub use migrate::{MigrateError, Migrated, migrate_to_postgres};
pub use notify::{notify_retry, notify_status};
pub use read::{AUDIT_PAGE, LIST_LIMIT, ListPage};
pub use recheck::{RECHECK_EVERY, Recheck};
pub use reload::{Ready, Reloaded};
pub use review::{Flag, HeldConflict, Review, RoleTerms, ViewerRights};
pub use revoke::{KRL_NAMESPACE, Krl, UserRevocation};
pub use signin::{NewSession, WEB_VIA, WebPath, check_challenge, check_cli_redirect};
pub use signoff::{SignerKey, Unknown, first_policy_outcome};
pub use token::{Scope, TokenSpec, create_token, revoke_tokens, token_end};
pub use users::EnabledUser;
pub use view::{
    ApprovalView, BreakGlassView, CertificateView, RequestView, RevocationView, StepView,
    VerdictView, WhoAmI, rfc3339,
};

use crate::audit;
use crate::ca::{CaPublic, CertificateAuthority};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::names::UserName;
use crate::state::{self, Guard};
use crate::store::certificates as certs;
use crate::store::requests as rq;
use crate::store::{Store, StoreError, Tx, meta, users as disabled};

/// The running CA: configuration, key and database.
pub struct Service {
    /// Replaced whole by a reload; readers clone the `Arc` and keep their snapshot.
    config: std::sync::RwLock<Arc<Config>>,
    ca: CertificateAuthority,
    /// The host CA of `[host_ca]`, opened at start (`service/hosts.rs`).
    host_ca: Option<Arc<crate::ca::HostAuthority>>,
    store: Store,
    /// The last KRL built, reused while it is still exact (see `Service::krl`).
    krl: std::sync::Mutex<Option<revoke::CachedKrl>>,
    /// The host KRL last built ([`Service::host_krl`]), as `krl` for the user KRL.
    host_krl: std::sync::Mutex<Option<revoke::CachedKrl>>,
    /// Keeps the high-water mark of published state (`state.rs`).
    guard: Arc<Guard>,
    /// Where every operation reads the time (`clock.rs`).
    clock: Arc<dyn Clock>,
    /// This replica's clock against the database's (`service/skew.rs`).
    skew: skew::Skew,
    /// The identity provider of `[oidc]`, if configured (its secret read at start).
    oidc: Option<Arc<crate::oidc::Provider>>,
    /// The `[[notify]]` sinks, their URLs and keys read at start (`serve` only).
    sinks: Arc<Vec<crate::notify::Sink>>,
    /// When this replica last recorded each API token's use (by hash): at most once a
    /// minute per token, so authenticating stays a read.
    token_use: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// What this process did, for `GET /metrics` (`metrics.rs`).
    metrics: Arc<crate::metrics::Metrics>,
    /// Requests' roles and requesters, for approvals on PostgreSQL (`service/facts.rs`).
    facts: facts::RequestFacts,
    /// When readiness last proved a write and a signature (`service/ready.rs`).
    probed: ready::Probed,
    /// Set at SIGTERM: readiness says no from then on (`service/ready.rs`).
    stopping: std::sync::atomic::AtomicBool,
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
        let metrics = Arc::new(crate::metrics::Metrics::new());
        metrics.know_roles(config.policy.roles.keys().map(|r| r.as_str()));
        Service {
            config: std::sync::RwLock::new(Arc::new(config)),
            ca,
            host_ca: None,
            store,
            krl: std::sync::Mutex::new(None),
            host_krl: std::sync::Mutex::new(None),
            guard,
            clock,
            skew: skew::Skew::default(),
            oidc: None,
            sinks: Arc::new(Vec::new()),
            token_use: std::sync::Mutex::new(std::collections::HashMap::new()),
            metrics,
            facts: facts::RequestFacts::default(),
            probed: ready::Probed::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The identity provider `config` names, with its client secret read now (so a
    /// missing or unsafe secret file stops the start, not the first sign-in).
    fn provider_for(config: &Config) -> Result<Option<Arc<crate::oidc::Provider>>, ServiceError> {
        let Some(oidc) = &config.oidc else {
            return Ok(None);
        };
        let unreadable =
            |e: String| ServiceError::Invalid(format!("[oidc] client_secret_file: {e}"));
        let path = oidc.client_secret_file.resolve().map_err(unreadable)?;
        let secret = crate::ca::read_secret_file(&path).map_err(unreadable)?;
        let secret = String::from_utf8(secret.to_vec())
            .map_err(|_| unreadable(format!("{}: not UTF-8", path.display())))?;
        let provider = crate::oidc::Provider::new(oidc.clone(), secret)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(Some(Arc::new(provider)))
    }

    /// The identity provider (`[oidc]`), if sign-in is configured.
    pub fn identity_provider(&self) -> Option<Arc<crate::oidc::Provider>> {
        self.oidc.clone()
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
        let (ca, created) = CertificateAuthority::open(&config.ca, plan.create_key)?;
        let public = ssh_key::PublicKey::new(ca.public_key_data().clone(), "");
        let now = clock.now();
        let (store, guard) = state::open_store(&config, &public, &access, plan, operator, now)
            .map_err(|e| state::forget_unbound_key(&config, &public, created, e))?;
        audit::verify_store(&store)?;
        if matches!(access, Access::Serve { .. }) {
            // A file that must not take effect writes nothing else (no host CA key).
            signoff::judge_at_start(&store, &config, operator, now)?;
        }
        let oidc = Self::provider_for(&config)?;
        let host_ca = hosts::open_host_ca(&config, &store, public.key_data(), operator, now)?;
        let mut service = Self::with_guard(config, ca, store, guard, clock);
        service.oidc = oidc;
        service.host_ca = host_ca;
        service.check_clock()?;
        if matches!(access, Access::Serve { .. }) {
            service.sinks = Arc::new(notify::load_sinks(&service.config())?);
            let changes = service.record_policy(operator, "start")?;
            if changes.as_object().is_some_and(|c| !c.is_empty()) {
                tracing::info!(
                    changes = %changes,
                    "this start changed the policy in force; policy.loaded recorded"
                );
            }
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
        self.authenticate_credential(secret)
            .map(|who| who.user().clone())
    }

    /// `user_disabled` if `user` is disabled: for front ends that identify users
    /// otherwise than by token (the SSH front door's keys), at login and before each
    /// command of a connection that stays open.
    pub fn check_enabled(&self, user: &UserName) -> Result<(), ServiceError> {
        self.store.read(|tx| self.require_enabled(tx, user))
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
            return Err(disabled_error(user));
        }
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
        let (version, head, revoked, host_revoked) = self.store.read(|tx| {
            Ok::<_, StoreError>((
                certs::krl_version(tx)?,
                meta::audit_head(tx)?,
                certs::revoked_unexpired(tx, unix(now) - self.skew())?,
                crate::store::hosts::revoked_unexpired(tx, unix(now) - self.skew())?,
            ))
        })?;
        self.guard
            .advance(version, &head, &revoked, &host_revoked, follow_head, now)?;
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
                n += usize::from(self.expire(tx, now, &row)?);
            }
            Ok(n)
        })
    }
}

/// Seconds since the epoch of `now`.
fn unix(now: DateTime<Utc>) -> i64 {
    now.timestamp()
}

/// `user_disabled`: what a disabled user hears, whatever they ask.
fn disabled_error(user: &UserName) -> ServiceError {
    ServiceError::Disabled(format!(
        "user {user} is disabled: every token and SSH key of theirs is refused until an admin \
         enables them again"
    ))
}
