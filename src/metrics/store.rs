//! The store's metrics: the writer thread's batches and busy time (either backend),
//! SQLite's WAL checkpoints and PostgreSQL's connection pool, from `Store::stats` at
//! scrape time.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{OutcomeLabel, StateLabel, outcome_label, state_label};

/// `countersign_store_*`.
#[derive(Debug, Default)]
pub(super) struct StoreMetrics {
    batches: Counter,
    operations: Counter,
    writer_busy: Counter<f64, std::sync::atomic::AtomicU64>,
    pool: Family<StateLabel, Gauge>,
    pool_size: Gauge,
    reads_ahead: Family<OutcomeLabel, Counter>,
    token_lookups: Family<OutcomeLabel, Counter>,
    wal_checkpoints: Family<OutcomeLabel, Counter>,
}

impl StoreMetrics {
    /// Registers them in `r`.
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "store_batches",
            "Write batches this process ran (group commit: one COMMIT for many operations)",
            self.batches.clone(),
        );
        r.register_with_unit(
            "store_writer_busy",
            "Time the writer thread spent running write batches: a rate near 1 means writes \
             queue behind it",
            Unit::Seconds,
            self.writer_busy.clone(),
        );
        r.register(
            "store_batched_operations",
            "Operations run in those write batches",
            self.operations.clone(),
        );
        r.register(
            "store_pool_connections",
            "PostgreSQL connections of this replica, by state (idle, in_use)",
            self.pool.clone(),
        );
        r.register(
            "store_reads_ahead",
            "PostgreSQL: operations' first reads sent with their batch's BEGIN, by outcome: \
             used (a round trip saved), stale (an earlier write of the batch touched what \
             they read: read again), unused",
            self.reads_ahead.clone(),
        );
        r.register(
            "store_token_lookups",
            "PostgreSQL: API token and session lookups, by outcome: remembered (a row this \
             replica read less than a second ago, with nothing changed since), read (from \
             the database)",
            self.token_lookups.clone(),
        );
        r.register(
            "store_wal_checkpoints",
            "SQLite: WAL checkpoints beside the writer, by outcome: copied, restarted (the \
             WAL starts again), gave_up (a RESTART stopped waiting for readers), on_writer \
             (the writer's own after a COMMIT: the WAL is not restarting), failed",
            self.wal_checkpoints.clone(),
        );
        r.register(
            "store_pool_size",
            "Most PostgreSQL connections this replica opens ([storage] pool_size)",
            self.pool_size.clone(),
        );
    }

    /// Brings them to what the store says now (the caller holds the scrape lock).
    pub(super) fn set(&self, store: crate::store::Stats) {
        catch_up(&self.batches, store.batches);
        catch_up(&self.operations, store.operations);
        let busy = store.writer_busy.as_secs_f64();
        let counted = self.writer_busy.get();
        if busy > counted {
            self.writer_busy.inc_by(busy - counted);
        }
        // Every series of this backend from the first scrape, at 0 until counted (an
        // alert on `failed` must have a series to watch: an operator's trial); none of
        // the other backend's.
        let postgres = store.pool.is_some();
        let ahead = ["used", "stale", "unused"];
        follow(&self.reads_ahead, &ahead, &store.reads_ahead, postgres);
        let lookups = ["remembered", "read"];
        follow(
            &self.token_lookups,
            &lookups,
            &store.tokens_remembered,
            postgres,
        );
        let checkpoints = ["copied", "restarted", "gave_up", "on_writer", "failed"];
        follow(
            &self.wal_checkpoints,
            &checkpoints,
            &store.wal_checkpoints,
            !postgres,
        );
        if let Some((open, idle, size)) = store.pool {
            let in_use = open.saturating_sub(idle);
            self.pool
                .get_or_create(&state_label("idle"))
                .set(count(idle));
            self.pool
                .get_or_create(&state_label("in_use"))
                .set(count(in_use));
            self.pool_size.set(count(size));
        }
    }
}

/// Raises each outcome's counter of `family` to its count: every one when the family is
/// `ours` (this backend's), else only those counted (none, normally).
fn follow(
    family: &Family<OutcomeLabel, Counter>,
    outcomes: &[&'static str],
    counts: &[u64],
    ours: bool,
) {
    for (outcome, &n) in outcomes.iter().zip(counts) {
        if ours || n > 0 {
            catch_up(&family.get_or_create(&outcome_label(outcome)), n);
        }
    }
}

/// Raises `counter` to `total` (the store counts; the counter follows).
fn catch_up(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
