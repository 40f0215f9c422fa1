//! Every HTTP request's log span: its client address (behind `server.trusted_proxies`,
//! the client they name), method and route template, and once the caller's credential is
//! accepted the user it names, so that each line logged while it is handled says whose
//! request it was (`span` in JSON logs, a prefix in text ones).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use super::server::ClientAddr;

/// Runs the request inside its `http` span.
pub(super) async fn http_span(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let client = request.extensions().get::<ClientAddr>().map(|c| {
        let trusted = &state.config().server.limits.trusted_proxies;
        super::forwarded::client_ip(c.0.ip(), request.headers(), trusted)
    });
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http",
        client = client.map(tracing::field::display),
        method = %request.method(),
        route,
        user = tracing::field::Empty,
    );
    next.run(request).instrument(span).await
}
