//! The background work of a running server: requests past their deadline are marked
//! expired, and the high-water mark follows the audit head.

use std::sync::Arc;
use std::time::Duration;

use crate::service::{ErrorKind, Service, ServiceError, blocking, chain};

/// How often the sweep brings the high-water mark up to the audit head.
const MARK_PERIOD: Duration = Duration::from_secs(60);

/// Marks overdue requests expired every few seconds, so they end with an audit row even
/// if nobody looks at them.
pub(super) async fn sweep_expired(state: Arc<Service>) {
    let period = (state.config().requests.pending_ttl / 10)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    // The first sweep comes one period after start, not at once: a sweep whose task first
    // runs at some later moment would otherwise act on whatever the clock says then (a
    // test's moved clock; nothing is lost meanwhile, since a request past its deadline
    // counts as expired whether or not a sweep has recorded it).
    tick.tick().await;
    let mut marked = tokio::time::Instant::now();
    let mut clock_checked = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        // A replica on PostgreSQL compares its clock with the database's (it was
        // measured at start too); a clock that strays stops it signing.
        // (Within a second of the period: the tick that brings it may come just before,
        // which measured every other tick, once a minute.)
        if state.store().is_postgres()
            && clock_checked.elapsed() + Duration::from_secs(1) >= crate::service::skew::CHECK_EVERY
        {
            clock_checked = tokio::time::Instant::now();
            if let Err(e) = blocking(&state, |s| s.check_clock()).await {
                tracing::warn!(
                    code = e.code().as_str(),
                    "could not compare the clock with the database's"
                );
            }
        }
        // The high-water mark follows the audit head about once a minute, so that a
        // restore of an older copy is noticed even when nothing was revoked since.
        if marked.elapsed() >= MARK_PERIOD {
            marked = tokio::time::Instant::now();
            if let Err(e) = blocking(&state, |s| s.mark_head()).await {
                failed("advancing the state mark", e);
            }
        }
        let s = state.clone();
        match state.store().submit(move || s.expire_overdue()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(expired = n, "expired overdue requests"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failed("expiry sweep", e),
            Err(e) => failed("expiry sweep", e.into()),
        }
        let s = state.clone();
        match state.store().submit(move || s.remind_breakglass()).await {
            Ok(Ok(n)) if n > 0 => tracing::warn!(
                notices = n,
                "break-glass reviews are late: reminders or overdue notices sent"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failed("break-glass reminders", e),
            Err(e) => failed("break-glass reminders", e.into()),
        }
    }
}

/// Logs a background task's failure: a database that is unavailable, or this replica left
/// behind on the policy, is said by `log_internal`'s lines (once every 10 s, not once per
/// task and round); anything else as an error naming the task.
fn failed(what: &str, e: ServiceError) {
    if e.kind() == ErrorKind::Unavailable {
        e.log_internal();
        return;
    }
    tracing::error!(error = %chain(&e), "{what} failed");
}
