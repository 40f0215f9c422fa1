//! Prometheus metrics (`[metrics] listen`, `GET /metrics` on a listener of its own):
//! what the CA did since this process started, and what the database holds now.
//!
//! Counters and histograms count this process's work, each only once its transaction
//! committed ([`crate::store::Tx::after_commit`]); sum them over replicas. Gauges read
//! at scrape time from the database (pending requests, audit head, KRL, notification
//! outbox, sessions) are the same on every replica of one database: take their `max`.
//!
//! Labels carry role names, route templates, methods, status codes, outcomes and
//! refusal codes, all from the configuration or the code: never a user name, a token, a
//! key, a request id or a raw path.

mod breakglass;
mod families;
mod http;
mod labels;
mod store;

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use families::audit_append_histogram;
pub use http::track_http;

use families::{build_info, fast_buckets, wait_buckets};
pub use labels::Outcome;

use labels::*;

/// The `Content-Type` of `GET /metrics` (the Prometheus text format, version 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What the database holds now, read at scrape time (`Service::metrics_text`).
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Pending requests by role: how many, and the age of the oldest (seconds).
    pub pending: Vec<(String, i64, i64)>,
    /// The audit log's last sequence number.
    pub audit_head: i64,
    /// The KRL's version and the serials it lists.
    pub krl: (u64, usize),
    /// Notification deliveries waiting, and given up.
    pub notifications: (i64, i64),
    /// Sign-in sessions neither expired nor revoked.
    pub sessions: i64,
    /// Break-glass reviews open, and how many of them are overdue.
    pub breakglass: (u64, u64),
}

/// Every metric of one running CA, and the registry that writes them out.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests_created: Family<RoleLabel, Counter>,
    requests_decided: Family<DecidedLabels, Counter>,
    decision_seconds: Family<DecidedLabels, Histogram, fn() -> Histogram>,
    certificates_issued: Family<RoleLabel, Counter>,
    signing_seconds: Histogram,
    sod_refusals: Family<CodeLabel, Counter>,
    revocations: Counter,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    ssh_connections: Counter,
    ssh_refusals: Family<ReasonLabel, Counter>,
    pending: Family<RoleLabel, Gauge>,
    oldest_pending: Family<RoleLabel, Gauge>,
    audit_head: Gauge,
    krl_version: Gauge,
    krl_entries: Gauge,
    notifications: Family<StateLabel, Gauge>,
    sessions: Gauge,
    database_up: Gauge,
    store: store::StoreMetrics,
    breakglass: breakglass::BreakGlass,
    /// The roles configured (since start): their pending gauge shows 0, not nothing.
    roles: Mutex<std::collections::BTreeSet<String>>,
    /// One scrape at a time refreshes the gauges (and the store's counters).
    scraping: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("countersign");
        let m = Metrics {
            registry: Registry::default(),
            requests_created: Family::default(),
            requests_decided: Family::default(),
            decision_seconds: Family::new_with_constructor(wait_buckets),
            certificates_issued: Family::default(),
            signing_seconds: fast_buckets(),
            sod_refusals: Family::default(),
            revocations: Counter::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(fast_buckets),
            ssh_connections: Counter::default(),
            ssh_refusals: Family::default(),
            pending: Family::default(),
            oldest_pending: Family::default(),
            audit_head: Gauge::default(),
            krl_version: Gauge::default(),
            krl_entries: Gauge::default(),
            notifications: Family::default(),
            sessions: Gauge::default(),
            database_up: Gauge::default(),
            store: store::StoreMetrics::default(),
            breakglass: breakglass::BreakGlass::default(),
            roles: Mutex::new(std::collections::BTreeSet::new()),
            scraping: Mutex::new(()),
        };
        let r = &mut registry;
        r.register(
            "requests_created",
            "Access requests created, by role",
            m.requests_created.clone(),
        );
        r.register(
            "requests_decided",
            "Access requests ended, by role and outcome (approved, denied, cancelled, \
             expired, refused)",
            m.requests_decided.clone(),
        );
        r.register_with_unit(
            "request_decision",
            "Time from a request's creation to its end, by role and outcome",
            Unit::Seconds,
            m.decision_seconds.clone(),
        );
        r.register(
            "certificates_issued",
            "User certificates signed, by role",
            m.certificates_issued.clone(),
        );
        r.register_with_unit(
            "signing_duration",
            "Time to sign one certificate with the CA key",
            Unit::Seconds,
            m.signing_seconds.clone(),
        );
        r.register(
            "sod_refusals",
            "Attempts refused by a policy rule (self-approval, conflicts, not an approver, \
             ...), by error code",
            m.sod_refusals.clone(),
        );
        r.register(
            "revocations",
            "Certificates revoked (one by one, with their user, or given back)",
            m.revocations.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            m.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route template",
            Unit::Seconds,
            m.http_seconds.clone(),
        );
        r.register(
            "ssh_connections",
            "Connections accepted by the SSH front door",
            m.ssh_connections.clone(),
        );
        r.register(
            "ssh_refusals",
            "SSH front door connections or logins refused, by reason",
            m.ssh_refusals.clone(),
        );
        r.register(
            "requests_pending",
            "Requests waiting for a decision now, by role (from the database)",
            m.pending.clone(),
        );
        r.register_with_unit(
            "requests_oldest_pending",
            "How long the oldest pending request of each role has waited (0: none waits; \
             from the database)",
            Unit::Seconds,
            m.oldest_pending.clone(),
        );
        r.register(
            "build_info",
            "1, labelled with this binary's version and git commit",
            build_info(),
        );
        r.register(
            "audit_head_seq",
            "Sequence number of the newest audit event (from the database)",
            m.audit_head.clone(),
        );
        r.register(
            "krl_version",
            "Version of the KRL served now",
            m.krl_version.clone(),
        );
        r.register(
            "krl_entries",
            "Certificate serials the KRL lists now",
            m.krl_entries.clone(),
        );
        r.register(
            "notifications",
            "Notification deliveries in the outbox, by state (pending, dead)",
            m.notifications.clone(),
        );
        r.register(
            "sessions_active",
            "Sign-in sessions neither expired nor revoked (from the database)",
            m.sessions.clone(),
        );
        r.register(
            "database_up",
            "1 if the database answered this scrape's reads, else 0",
            m.database_up.clone(),
        );
        m.store.register(r);
        r.register_with_unit(
            "audit_append_duration",
            "Time to append one audit event (hash and insert), in this process",
            Unit::Seconds,
            audit_append_histogram(),
        );
        m.breakglass.register(r);
        // Known label values start at 0, so that every family is described from the
        // first scrape and `rate()` sees the first increase.
        for code in REFUSAL_CODES {
            m.sod_refusals.get_or_create_owned(&CodeLabel {
                code: (*code).to_owned(),
            });
        }
        for reason in SSH_REFUSALS {
            m.ssh_refusals.get_or_create_owned(&ReasonLabel {
                reason: (*reason).to_owned(),
            });
        }
        for state in ["pending", "dead"] {
            m.notifications.get_or_create_owned(&state_label(state));
        }
        Metrics { registry, ..m }
    }

    /// Starts the per-role series of `roles` at 0 (at start, and for roles a reload
    /// adds); series of roles no longer configured keep their counts.
    pub fn know_roles<'a>(&self, roles: impl IntoIterator<Item = &'a str>) {
        let mut known = lock(&self.roles);
        for role in roles {
            known.insert(role.to_owned());
            self.requests_created.get_or_create_owned(&role_label(role));
            self.certificates_issued
                .get_or_create_owned(&role_label(role));
            self.breakglass.know(role);
            for outcome in OUTCOMES {
                let labels = DecidedLabels {
                    role: role.to_owned(),
                    outcome: outcome.as_str().to_owned(),
                };
                self.requests_decided.get_or_create_owned(&labels);
            }
        }
    }

    /// A request for `role` was created.
    pub fn request_created(&self, role: &str) {
        self.requests_created.get_or_create(&role_label(role)).inc();
    }

    /// A request for `role` ended with `outcome`, `waited` after its creation.
    pub fn request_decided(&self, role: &str, outcome: Outcome, waited: Duration) {
        let labels = DecidedLabels {
            role: role.to_owned(),
            outcome: outcome.as_str().to_owned(),
        };
        self.requests_decided.get_or_create(&labels).inc();
        self.decision_seconds
            .get_or_create(&labels)
            .observe(waited.as_secs_f64());
    }

    /// A certificate for `role` was signed and recorded.
    pub fn certificate_issued(&self, role: &str) {
        self.certificates_issued
            .get_or_create(&role_label(role))
            .inc();
    }

    /// Someone broke the glass for `role`.
    pub fn breakglass_used(&self, role: &str) {
        self.breakglass.used(role);
    }

    /// Signing one certificate took `took`.
    pub fn signed(&self, took: Duration) {
        self.signing_seconds.observe(took.as_secs_f64());
    }

    /// A policy rule refused an attempt with `code`.
    pub fn refused(&self, code: &str) {
        let labels = CodeLabel {
            code: code.to_owned(),
        };
        self.sod_refusals.get_or_create(&labels).inc();
    }

    /// A certificate was revoked.
    pub fn revoked(&self) {
        self.revocations.inc();
    }

    /// The SSH front door accepted a connection.
    pub fn ssh_connection(&self) {
        self.ssh_connections.inc();
    }

    /// The SSH front door refused a connection or a login, for `reason` (a fixed word).
    pub fn ssh_refused(&self, reason: &'static str) {
        let labels = ReasonLabel {
            reason: reason.to_owned(),
        };
        self.ssh_refusals.get_or_create(&labels).inc();
    }

    /// An HTTP request to `route` (a template) answered `status` after `took`.
    fn http_answered(&self, route: String, method: &'static str, status: u16, took: Duration) {
        let labels = HttpLabels {
            route,
            method,
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        let route = RouteLabel {
            route: labels.route,
        };
        self.http_seconds
            .get_or_create(&route)
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the gauges set from `snapshot` (`None`: the database did
    /// not answer; its gauges keep their last values and `database_up` is 0) and the
    /// store's counters from `store`.
    pub fn encode(&self, snapshot: Option<&Snapshot>, store: crate::store::Stats) -> String {
        let _one = lock(&self.scraping);
        self.database_up.set(i64::from(snapshot.is_some()));
        if let Some(s) = snapshot {
            // A role with nothing pending shows 0, never its last count.
            self.pending.clear();
            self.oldest_pending.clear();
            for role in lock(&self.roles).iter() {
                self.pending.get_or_create(&role_label(role)).set(0);
                self.oldest_pending.get_or_create(&role_label(role)).set(0);
            }
            for (role, n, age) in &s.pending {
                self.pending.get_or_create(&role_label(role)).set(*n);
                let age = (*age).max(0);
                self.oldest_pending
                    .get_or_create(&role_label(role))
                    .set(age);
            }
            self.audit_head.set(s.audit_head);
            self.krl_version
                .set(i64::try_from(s.krl.0).unwrap_or(i64::MAX));
            self.krl_entries
                .set(i64::try_from(s.krl.1).unwrap_or(i64::MAX));
            self.notifications
                .get_or_create(&state_label("pending"))
                .set(s.notifications.0);
            self.notifications
                .get_or_create(&state_label("dead"))
                .set(s.notifications.1);
            self.sessions.set(s.sessions);
            self.breakglass.set(s.breakglass);
        }
        self.store.set(store);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// `m`'s guard; what it guards is replaced whole, so a poisoned lock is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
