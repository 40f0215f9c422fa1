//! `GET /metrics` on the `[metrics] listen` address: a listener of its own, never the
//! API's port, so that the API's limits and authentication are not in its way and the
//! metrics are not reachable wherever the API is.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::AppState;

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "metrics listening (GET /metrics)");
    let routes = Router::new()
        .route("/metrics", get(metrics_get))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only GET /metrics here\n") })
        .with_state(state);
    // The API's accept loop, with limits of its own: a client that opens connections
    // and sends nothing must not use up the file descriptors the API needs.
    let limits = metrics_limits();
    super::server::accept_loop(listener, routes, &limits, None, shutdown).await
}

/// The metrics listener's limits: a few scrapers, quick answers.
fn metrics_limits() -> crate::config::Limits {
    crate::config::Limits {
        max_connections: MAX_CONNECTIONS,
        max_connections_per_address: MAX_CONNECTIONS / 2,
        request_timeout: std::time::Duration::from_secs(10),
        trusted_proxies: Vec::new(),
        ..crate::config::Limits::default()
    }
}

/// Connections the metrics listener keeps open at once; more wait in the kernel's
/// backlog (Prometheus keeps one per server it scrapes from).
const MAX_CONNECTIONS: usize = 16;

/// The Prometheus text exposition (`Service::metrics_text`, on a blocking thread: it
/// reads the database).
async fn metrics_get(State(state): State<AppState>) -> Response {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || state.metrics_text()).await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics: the scrape failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the scrape failed\n").into_response()
        }
    }
}
