//! The break-glass metrics: uses counted by role, and the reviews open and overdue now
//! (gauges read from the database at scrape time).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{RoleLabel, role_label};

/// `countersign_breakglass_total`, `countersign_breakglass_unreviewed` and
/// `countersign_breakglass_overdue`.
#[derive(Debug, Default)]
pub(super) struct BreakGlass {
    total: Family<RoleLabel, Counter>,
    unreviewed: Gauge,
    overdue: Gauge,
}

impl BreakGlass {
    /// Registers the three in `r`.
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "breakglass",
            "Break-glass uses (roles taken at once, without approval), by role",
            self.total.clone(),
        );
        r.register(
            "breakglass_unreviewed",
            "Break-glass uses whose review is not closed (from the database)",
            self.unreviewed.clone(),
        );
        r.register(
            "breakglass_overdue",
            "Break-glass uses whose review is past its review_within (from the database)",
            self.overdue.clone(),
        );
    }

    /// Starts `role`'s series at 0.
    pub(super) fn know(&self, role: &str) {
        self.total.get_or_create_owned(&role_label(role));
    }

    /// The glass was broken for `role`.
    pub(super) fn used(&self, role: &str) {
        self.total.get_or_create(&role_label(role)).inc();
    }

    /// The open and overdue reviews now.
    pub(super) fn set(&self, (open, overdue): (u64, u64)) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.unreviewed.set(gauge(open));
        self.overdue.set(gauge(overdue));
    }
}
