//! The service's side of the metrics (`metrics.rs`): what an operation counts once its
//! transaction commits, and what a scrape reads from the database.

use std::sync::Arc;
use std::time::Duration;

use super::{Service, unix};
use crate::metrics::{Metrics, Outcome, Snapshot};
use crate::store::{Tx, audit as stored_audit, notify as outbox, stats};

impl Service {
    /// This process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Runs `count` on the metrics once `tx` commits (never if it rolls back).
    pub(super) fn count(&self, tx: &Tx<'_>, count: impl FnOnce(&Metrics) + 'static) {
        let metrics = self.metrics.clone();
        tx.after_commit(move || count(&metrics));
    }

    /// Counts, once `tx` commits, a request for `role` made at `created_at` (unix
    /// seconds) ending with `outcome` now.
    pub(super) fn count_decided(&self, tx: &Tx<'_>, role: &str, created_at: i64, outcome: Outcome) {
        let waited = unix(self.now()).saturating_sub(created_at);
        let waited = Duration::from_secs(u64::try_from(waited).unwrap_or(0));
        let role = role.to_owned();
        self.count(tx, move |m| m.request_decided(&role, outcome, waited));
    }

    /// The Prometheus text exposition: this process's counters, and gauges read from
    /// the database now (a database that does not answer leaves them out of date and
    /// sets `countersign_database_up` to 0; the cause goes to the log). Blocking.
    pub fn metrics_text(&self) -> String {
        let snapshot = match self.snapshot() {
            Ok(s) => Some(s),
            Err(e) => {
                let e = anyhow::Error::new(e);
                tracing::warn!(
                    error = format!("{e:#}"),
                    "metrics: the database did not answer"
                );
                None
            }
        };
        self.metrics.encode(snapshot.as_ref(), self.store.stats())
    }

    fn snapshot(&self) -> Result<Snapshot, super::ServiceError> {
        let now = unix(self.now());
        let (pending, audit_head, notifications, sessions, breakglass) = self.store.read(|tx| {
            Ok::<_, crate::store::StoreError>((
                stats::pending_by_role(tx, now)?
                    .into_iter()
                    .map(|(role, n, oldest)| (role, n, now.saturating_sub(oldest)))
                    .collect(),
                stored_audit::last_seq(tx)?,
                outbox::counts(tx)?,
                stats::active_sessions(tx, now)?,
                crate::store::breakglass::open_counts(tx, now)?,
            ))
        })?;
        let krl = self.krl()?;
        Ok(Snapshot {
            pending,
            audit_head,
            krl: (krl.version, krl.entries),
            notifications,
            sessions,
            breakglass,
        })
    }
}
