//! Families built once: the histograms' buckets, build_info, and the process-wide
//! histogram of audit appends.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::labels::BuildLabels;

/// Buckets for request handling and signing: 0.1 ms to about 13 s.
pub(super) fn fast_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Buckets for the wait from a request to its decision: 5 s to about 3 days.
pub(super) fn wait_buckets() -> Histogram {
    Histogram::new(exponential_buckets(5.0, 3.0, 11))
}

/// `countersign_build_info`: 1, with the version and commit (`countersign --version`)
/// as labels.
pub(super) fn build_info() -> Family<BuildLabels, Gauge> {
    let family = Family::<BuildLabels, Gauge>::default();
    family
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: env!("COUNTERSIGN_GIT_COMMIT").to_owned(),
        })
        .set(1);
    family
}

/// The time each audit append takes, for the whole process: appends happen deep in the
/// store's transactions, where no [`Metrics`] is at hand. One server per process in
/// production; test processes that run several share it.
pub fn audit_append_histogram() -> Histogram {
    static APPENDS: std::sync::LazyLock<Histogram> = std::sync::LazyLock::new(fast_buckets);
    APPENDS.clone()
}
