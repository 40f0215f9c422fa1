//! The HTTP API (`/v1`): router, server lifecycle, and the shared extractors.
//!
//! Handlers parse input into types (`names.rs`, `pubkey.rs`), call one [`Service`]
//! operation (state changes on the store's writer thread, reads on a blocking thread or
//! inline), and format the result. Every error leaves as
//! `{"error":{"code","message"}}` through [`ApiError`]. `api/openapi.rs` describes
//! every route for `GET /v1/openapi.json`, and its tests hold the two together.
//!
//! Abuse limits (`[server]` in the config) sit in two places: the accept loop in
//! `api/server.rs` bounds connections, header size and header read time; the layers in
//! `api/limits.rs` bound time per request, requests in flight and failed authentications.

mod audit;
mod auth;
mod breakglass;
mod cookies;
mod device;
mod error;
mod extract;
mod forwarded;
mod hosts;
mod keys;
mod limits;
mod metrics;
mod misc;
mod oidc;
mod openapi;
mod requests;
mod revoke;
mod server;
mod sessions;
mod signin_limit;
mod span;
mod users;
mod web;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Extension, Router};
use tokio::net::TcpListener;

pub use auth::{Actor, Caller};
pub use error::ApiError;
pub use limits::AuthLimiter;
pub use metrics::serve_metrics;
pub use openapi::document as openapi_document;
pub use server::ClientAddr;

pub(crate) use requests::parse_create_body;

use crate::service::{Service, ServiceError};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;

/// Shared state of every handler.
pub type AppState = Arc<Service>;

/// Every route of the API, behind the per-request limits of the config.
pub fn router(state: AppState) -> Router {
    let limits = &state.config().server.limits;
    let auth_limiter = Arc::new(AuthLimiter::new(limits));
    let routes = Router::new()
        .route("/v1/health", get(misc::health_get))
        .route("/v1/ready", get(misc::ready_get))
        .route("/v1/ca.pub", get(misc::ca_pub_get))
        .route("/v1/openapi.json", get(openapi::openapi_get))
        .route("/v1/whoami", get(misc::whoami_get))
        .route(
            "/v1/requests",
            post(requests::requests_create).get(requests::requests_list),
        )
        .route("/v1/requests/{id}", get(requests::request_get))
        .route("/v1/requests/{id}/approve", post(requests::request_approve))
        .route("/v1/requests/{id}/deny", post(requests::request_deny))
        .route("/v1/requests/{id}/cancel", post(requests::request_cancel))
        .route(
            "/v1/requests/{id}/certificate",
            get(requests::certificate_get),
        )
        .route("/v1/requests/{id}/done", post(revoke::request_done))
        .route("/v1/requests/{id}/review", post(breakglass::request_review))
        .route("/v1/breakglass", post(breakglass::breakglass_use))
        .route("/v1/breakglass/allow", post(breakglass::breakglass_allow))
        .route(
            "/v1/certificates/{serial}/revoke",
            post(revoke::certificate_revoke),
        )
        .route("/v1/users/{name}/revoke", post(revoke::user_revoke))
        .route("/v1/users/{name}/enable", post(users::user_enable))
        .route("/v1/krl", get(revoke::krl_get))
        .route("/v1/krl.sig", get(revoke::krl_sig_get))
        .route("/v1/krl/forgotten", post(revoke::krl_forgotten))
        .route("/v1/audit", get(audit::audit_list))
        .route("/v1/audit/verify", get(audit::audit_verify))
        .merge(sign_in_routes(state.clone()))
        .route("/v1/sessions", get(sessions::sessions_list))
        .route("/v1/sessions/{id}/revoke", post(sessions::session_revoke))
        .route("/v1/keys", get(keys::keys_list).post(keys::keys_register))
        .route("/v1/keys/challenge", post(keys::keys_challenge))
        .route("/v1/keys/remove", post(keys::keys_remove))
        .route("/v1/host_ca.pub", get(hosts::host_ca_pub))
        .route("/v1/krl/host", get(hosts::host_krl_get))
        .route("/v1/krl/host.sig", get(hosts::host_krl_sig_get))
        .route("/v1/hosts/tokens", post(hosts::host_token_create))
        .route("/v1/hosts/enroll", post(hosts::host_enroll))
        .route(
            "/v1/hosts/renew/challenge",
            post(hosts::host_renew_challenge),
        )
        .route("/v1/hosts/renew", post(hosts::host_renew))
        .route("/v1/hosts/certificates", get(hosts::host_list))
        .route("/v1/hosts/certificates/{serial}", get(hosts::host_get))
        .route(
            "/v1/hosts/certificates/{serial}/revoke",
            post(hosts::host_revoke),
        )
        .merge(web::routes())
        .fallback(misc::not_found)
        .method_not_allowed_fallback(misc::method_not_allowed)
        .layer(Extension(auth_limiter))
        .layer(Extension(misc::HealthChecks::default()));
    // Outermost: what the limits answer (408, 503) is counted too.
    with_request_limits(routes, limits)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics().clone(),
            crate::metrics::track_http,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            span::http_span,
        ))
        .with_state(state)
}

/// The sign-in endpoints, behind their cap per address.
fn sign_in_routes(state: AppState) -> Router<AppState> {
    let per_minute = state.config().server.limits.sign_in_requests_per_minute;
    let limiter = Arc::new(signin_limit::SignInLimiter::new(per_minute));
    Router::new()
        .route("/v1/oidc/login", get(oidc::login_get))
        .route("/v1/oidc/callback", get(oidc::callback_get))
        .route("/v1/oidc/token", post(oidc::token_post))
        .route("/v1/oidc/logout", post(sessions::logout_post))
        .route(
            "/v1/oidc/device",
            get(device::device_get).post(device::device_post),
        )
        .route("/v1/oidc/device/confirm", post(device::confirm_post))
        .merge(web::login_route())
        .route_layer(axum::middleware::from_fn_with_state(
            (state, limiter),
            signin_limit::limit_sign_in,
        ))
}

/// `routes` behind the per-request layers: the body size limit, then (outermost) the
/// time limit per request and the bound on requests in flight.
fn with_request_limits<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    limits: &crate::config::Limits,
) -> Router<S> {
    let guards = Arc::new(limits::RequestGuards::new(limits));
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            guards,
            limits::guard_request,
        ))
}

/// Serves `routes` on `listener` over plain HTTP with the default limits (but no cap per
/// address: the load generator is one address), behind the same per-request layers and
/// through the same accept loop and hyper settings as the API, until `shutdown` resolves:
/// the benchmark's HTTP-only baseline.
pub async fn serve_plain(
    listener: TcpListener,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = crate::config::Limits {
        // Every load-generator client comes from 127.0.0.1.
        max_connections_per_address: 65_536,
        ..crate::config::Limits::default()
    };
    let app = with_request_limits(routes, &limits);
    server::accept_loop(listener, app, &limits, None, shutdown).await
}

/// Serves the API on `listener` (HTTPS when the config names a certificate) until
/// `shutdown` resolves. The background tasks (expiry sweep, state mark) are not the
/// server's: `daemon.rs` runs them beside it.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = state.config().server.clone();
    let tls = match &settings.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(files).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%address, scheme, "countersign listening");
    if state
        .config()
        .oidc
        .as_ref()
        .is_some_and(|o| o.public_url.starts_with("http://"))
    {
        tracing::warn!(
            "[oidc] public_url is plain HTTP (loopback): browsers send the web UI's session \
             cookie to every service on this host, whatever its port; use https:// outside \
             tests and demos"
        );
    }
    server::accept_loop(listener, router(state), &settings.limits, tls, shutdown).await
}

/// Runs the short point read `f` (one request, a certificate, who the caller is): on
/// SQLite right here on the async worker (a pooled reader connection answers in
/// microseconds and never waits for writers, so another thread would cost more than the
/// work); on PostgreSQL on the blocking pool, since a network round trip must not hold
/// an async worker (one that waits first hands its other tasks to another thread, a new
/// one when none is idle: docs/benchmark.md measured the cost). Anything that writes goes
/// through [`submit`].
pub(crate) async fn inline<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::service::quick(state, f).await?)
}

/// [`crate::service::blocking`], answering errors as the API does. For reads that may
/// take a while (lists, the audit log, the KRL); state changes go through [`submit`].
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::service::blocking(state, f).await?)
}

/// [`crate::service::submit`], answering errors as the API does: the state change `f`
/// runs on the store's writer thread, and the answer leaves once it is durable.
pub(crate) async fn submit<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::service::submit(state, f).await?)
}

/// [`submit`] planned first ([`crate::service::submit_planned`]).
pub(crate) async fn submit_planned<P: 'static, T: Send + 'static>(
    state: &AppState,
    plan: impl FnOnce(&Service) -> P + Send + 'static,
    f: impl FnOnce(&Service, P) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::service::submit_planned(state, plan, f).await?)
}
