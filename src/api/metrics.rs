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
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}

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
