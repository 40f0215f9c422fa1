//! Health, CA public key, whoami, and the 404 for unknown paths.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{Actor, ApiError, AppState};
use crate::error_code::ErrorCode;
use crate::service::WhoAmI;

/// `GET /v1/health` (no auth): liveness. `{"status":"ok"}` once the database answers a
/// read within [`HEALTH_WAIT`], else 503 `unavailable` (the cause in the server log). Not
/// subject to the in-flight limit, so a busy server still answers it.
pub(super) async fn health_get(
    State(state): State<AppState>,
    Extension(checks): Extension<HealthChecks>,
) -> Result<Json<Value>, ApiError> {
    checks
        .answer(Check::Health, || {
            probe(&state, &checks, "health", |s| s.check_storage())
        })
        .await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// `GET /v1/ready` (no auth): readiness for a load balancer. `{"status":"ready"}` once the
/// database answers within [`HEALTH_WAIT`] and this replica runs the policy the database
/// records as the newest; else 503, `unavailable` (the database) or `not_ready` (the
/// reason in the message). Like `/v1/health`, not subject to the in-flight limit.
pub(super) async fn ready_get(
    State(state): State<AppState>,
    Extension(checks): Extension<HealthChecks>,
) -> Result<Json<Value>, ApiError> {
    checks
        .answer(Check::Ready, || async {
            let ready = probe(&state, &checks, "readiness", |s| s.readiness()).await?;
            // The digest only in the log: the answer needs no token.
            tracing::debug!(policy = %ready.policy, "ready");
            Ok(())
        })
        .await?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Runs `check` on a blocking thread, at most [`HEALTH_CHECKS`] at once (each holds its
/// thread until its read returns, even past the wait), and waits [`HEALTH_WAIT`] for it.
/// A database that fails or does not answer in time is 503 `unavailable`, its cause in
/// the log only; the check's own `not_ready` passes through.
async fn probe<T: Send + 'static>(
    state: &AppState,
    checks: &HealthChecks,
    what: &'static str,
    check: impl FnOnce(&crate::service::Service) -> Result<T, crate::service::ServiceError>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    let unavailable =
        |why: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, why);
    let Ok(permit) = checks.0.clone().try_acquire_owned() else {
        return Err(unavailable(
            "health checks are already waiting for the database",
        ));
    };
    let answer = super::blocking(state, move |s| {
        let _permit = permit;
        check(s)
    });
    match tokio::time::timeout(HEALTH_WAIT, answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if e.code() == ErrorCode::NotReady.as_str() => Err(e),
        Ok(Err(_)) => {
            // Its cause is logged where it was met (`ServiceError::log_internal`).
            // Its cause is logged where it was met (`ServiceError::log_internal`); a
            // probe every few seconds says so once every 10 s.
            static PROBES: crate::logging::Throttle = crate::logging::Throttle::new();
            if let Some(left_out) = PROBES.allow() {
                tracing::warn!(check = what, left_out, "the database does not answer");
            }
            Err(unavailable("the database does not answer"))
        }
        Err(_) => {
            tracing::error!(check = what, "the database did not answer in time");
            Err(unavailable("the database did not answer in time"))
        }
    }
}

/// The health checks of one server reading the database now (at most [`HEALTH_CHECKS`]),
/// and the last answer of each with when it was made: callers that arrive while a check
/// runs take its answer (one check at a time, however many callers: a flood of probes,
/// which need no token, neither reads the database once per probe nor takes every place
/// from the load balancer's own probe), and a caller that arrives after it asks anew.
#[derive(Clone)]
pub(super) struct HealthChecks(
    std::sync::Arc<tokio::sync::Semaphore>,
    std::sync::Arc<tokio::sync::Mutex<[Option<Answer>; 2]>>,
);

/// A check's answer and when it was made.
type Answer = (std::time::Instant, Result<(), ApiError>);

/// Which check an answer is of.
#[derive(Clone, Copy)]
enum Check {
    Health = 0,
    Ready = 1,
}

impl Default for HealthChecks {
    fn default() -> Self {
        HealthChecks(
            std::sync::Arc::new(tokio::sync::Semaphore::new(HEALTH_CHECKS)),
            std::sync::Arc::new(tokio::sync::Mutex::new([None, None])),
        )
    }
}

impl HealthChecks {
    /// The answer of `check` made while this caller waited for it (another caller's
    /// run), else a fresh one from `run`: an answer is never older than the call.
    async fn answer<F, Fut>(&self, check: Check, run: F) -> Result<(), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), ApiError>>,
    {
        let arrived = std::time::Instant::now();
        let mut answers = self.1.lock().await;
        if let Some((made, answer)) = &answers[check as usize]
            && *made >= arrived
        {
            return answer.clone();
        }
        let answer = run().await;
        answers[check as usize] = Some((std::time::Instant::now(), answer.clone()));
        answer
    }
}

/// Longest a health check waits for the database.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Health checks reading the database at once.
const HEALTH_CHECKS: usize = 4;

/// `GET /v1/ca.pub` (no auth): the line for `TrustedUserCAKeys`.
pub(super) async fn ca_pub_get(State(state): State<AppState>) -> impl IntoResponse {
    let line = format!("{}\n", state.ca().public_key_line());
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line)
}

/// `GET /v1/whoami`.
pub(super) async fn whoami_get(
    State(state): State<AppState>,
    Actor(actor): Actor,
    axum::Extension(credential): axum::Extension<crate::service::Credential>,
) -> Result<Json<WhoAmI>, ApiError> {
    let mut me = super::inline(&state, move |s| s.whoami(&actor)).await?;
    // A bot's token never approves, whoever its user is.
    if let crate::service::Credential::Bot(scopes) = credential {
        me.can_approve.clear();
        me.can_break_glass.clear();
        me.can_review.clear();
        me.scopes = Some(scopes.names().into_iter().map(str::to_owned).collect());
    }
    if let crate::service::Credential::Session { device: true, .. } = credential {
        me.session = Some(crate::service::DEVICE_VIA.to_owned());
    }
    Ok(Json(me))
}

/// A method the endpoint does not take (the `Allow` header lists those it does).
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}

/// Any path that is not an endpoint.
pub(super) async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let e = ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such endpoint",
    );
    // A person's browser (it asks for HTML) gets a page; API clients the JSON error.
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser {
        super::web::not_found_page()
    } else {
        e.into_response()
    }
}
