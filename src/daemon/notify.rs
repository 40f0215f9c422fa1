//! The dispatcher of notifications: every second it claims the deliveries due (a lease
//! keeps another replica off them), sends them at once, each within
//! [`DELIVERY_TIMEOUT`](crate::notify::DELIVERY_TIMEOUT), and records how each went. It
//! runs beside the API and shares nothing with a request but the database: a sink that
//! hangs holds a few of the in-flight slots for the timeout, never an approval.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::notify::{self, Delivered};
use crate::service::{Service, blocking};

/// How often the dispatcher looks for deliveries due.
const ROUND_EVERY: Duration = Duration::from_secs(1);

/// How often deliveries made long ago are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The most deliveries one round claims.
const BATCH: i64 = 32;

/// The most deliveries in flight at once (and so held in memory): a hanging sink fills
/// at most this many slots, each for the delivery timeout.
const MAX_IN_FLIGHT: usize = 128;

/// Delivers notifications for as long as it runs; nothing when no sink is configured.
pub(super) async fn dispatch(service: Arc<Service>) {
    let sinks = service.sinks();
    if sinks.is_empty() {
        return;
    }
    let http = match notify::client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the notification client: nothing is delivered");
            return;
        }
    };
    let mut tick = tokio::time::interval(ROUND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sending = JoinSet::new();
    let mut pruned = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = tokio::time::Instant::now();
            if let Err(e) = blocking(&service, |s| s.prune_deliveries()).await {
                e.log_internal();
            }
        }
        while sending.try_join_next().is_some() {}
        let room = MAX_IN_FLIGHT.saturating_sub(sending.len());
        if room > 0 {
            round(&service, &sinks, &http, &mut sending, room).await;
        }
    }
}

/// One round: up to `room` deliveries due, each sent on its own task, its outcome
/// recorded when it ends.
async fn round(
    service: &Arc<Service>,
    sinks: &Arc<Vec<notify::Sink>>,
    http: &reqwest::Client,
    sending: &mut JoinSet<()>,
    room: usize,
) {
    let limit = i64::try_from(room).unwrap_or(BATCH).min(BATCH);
    let due = match blocking(service, move |s| s.claim_deliveries(limit)).await {
        Ok(due) => due,
        Err(e) => {
            e.log_internal();
            return;
        }
    };
    for d in due {
        let (sinks, http, service) = (sinks.clone(), http.clone(), service.clone());
        sending.spawn(async move {
            let outcome = match sinks.iter().find(|s| s.config.name == d.sink) {
                Some(sink) => {
                    let now = service.now().timestamp();
                    notify::deliver(&http, sink, &d.event_id, &d.payload, now).await
                }
                None => Delivered::No {
                    why: "the sink is no longer configured".into(),
                    retry_after: None,
                },
            };
            if let Delivered::No { why, .. } = &outcome {
                tracing::warn!(sink = %d.sink, event = %d.event, id = %d.event_id, attempt = d.attempts + 1, why = %why, "a notification was not delivered");
            }
            let (sink, event, id) = (d.sink.clone(), d.event.clone(), d.event_id.clone());
            match blocking(&service, move |s| s.record_delivery(&d, &outcome)).await {
                Ok(true) => tracing::warn!(%sink, %event, %id, "a notification was given up"),
                Ok(false) => {}
                Err(e) => e.log_internal(),
            }
        });
    }
}
