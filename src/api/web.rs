//! The web UI: server-rendered pages for people who approve from a browser (or a phone
//! at 3 a.m.). No JavaScript; every page is plain HTML with one stylesheet of ours.
//!
//! - `GET /` — requests: waiting for me, mine, recent (admins: all), with filters.
//! - `GET /requests/{id}` — the review page; `POST /requests/{id}/approve`, `/deny`,
//!   `/cancel`; `GET /requests/{id}/certificate` — the certificate, to download.
//! - `GET /requests/new`, `POST /requests` — a new request.
//! - `GET /audit` (admins) — a certificate's story by serial or sshd log line, a
//!   request's history, the access-review report.
//! - `GET /login?next=PATH[&step_up=1]`, `POST /logout` — sign-in through the identity
//!   provider (`[oidc]`), the session held in the `cs_session` cookie (`__Host-cs_session`
//!   under an `https://` `public_url`; `HttpOnly`, `SameSite=Strict`, `Path=/`).
//!
//! Every page that needs a person sends a browser without a session straight to the
//! provider's sign-in, and back to the page afterwards. Every POST must carry the
//! session's CSRF token and come from a page of ours (`Origin`/`Sec-Fetch-Site`), else
//! 403 with an explanation and nothing changed. Decisions go through the same
//! [`Service`](crate::service::Service) calls as the API: one implementation of the rules.

mod audit;
mod forms;
mod layout;
mod new;
mod pages;
mod review;
mod signin;

use axum::Router;
use axum::routing::{get, post};

pub(super) use signin::{finish_sign_in, sign_in_failed};

/// The page of an address that is nothing here.
pub(super) fn not_found_page() -> axum::response::Response {
    layout::error_page_back(
        &super::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            crate::error_code::ErrorCode::NotFound,
            "there is no page at this address",
        ),
        None,
        "/",
        "To the requests",
    )
}

use super::AppState;

/// `GET /login`: behind the sign-in endpoints' cap per address (it needs no credential
/// and records a sign-in in progress).
pub(super) fn login_route() -> Router<AppState> {
    Router::new().route("/login", get(signin::login_get))
}

/// The web UI's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::requests_page))
        .route("/requests", post(new::create_post))
        .route("/requests/new", get(new::new_page))
        .route("/requests/{id}", get(review::review_page))
        .route("/requests/{id}/approve", post(forms::approve_post))
        .route("/requests/{id}/deny", post(forms::deny_post))
        .route("/requests/{id}/cancel", post(forms::cancel_post))
        .route("/requests/{id}/review", post(forms::review_post))
        .route("/requests/{id}/certificate", get(review::certificate_get))
        .route("/audit", get(audit::audit_page))
        .route("/logout", post(signin::logout_post))
        .route("/static/style.css", get(layout::style_get))
}
